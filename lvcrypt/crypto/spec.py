"""dm-crypt cipher specifications: the kernel's grammar, and what lvcrypt can compute.

The same strings appear in dm-crypt tables, LUKS headers and lvcrypt
metadata, so lvcrypt parses exactly dm-crypt's syntax (drivers/md/dm-crypt.c,
`crypt_ctr_cipher_old` and `crypt_ctr_cipher_new`):

- ``cipher[:keycount]-chainmode-ivmode[:ivopts]``; a bare ``cipher`` (or
  ``cipher-plain``) means ``cipher-cbc-plain``; ``ecb`` needs no IV mode
  (dm-crypt ignores one if given), every other chain mode does; the key
  count is a power of two;
- ``capi:<crypto API name>[-ivmode[:ivopts]]``, e.g. ``capi:xts(aes)-plain64``;
- ``essiv`` needs its hash as the IV option.

Two questions are asked of a spec, at different times, and kept apart here:

- would dm-crypt accept it (`parse_kernel_cipher_spec`)? Enough to import an
  existing volume and activate it with the kernel;
- can lvcrypt's sector cipher compute it (`parse_cipher_spec`,
  `check_data_cipher`)? Needed to create a volume, to open LUKS keyslot
  areas and for the userspace data path.  OpenSSL provides the block
  ciphers (through the compiled sector loop, `_sectors.c`); what it lacks
  (twofish, serpent, ...) is refused, not emulated.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from lvcrypt.errors import HandlerError
from lvcrypt.records import dataclass

# IV generators dm-crypt knows (crypt_ctr_ivmode); only some are computed here.
KERNEL_IV_MODES = ("plain", "plain64", "plain64be", "essiv", "benbi", "null", "lmk", "tcw", "random", "eboiv",
                   "elephant")
# What the sector cipher computes: block ciphers OpenSSL has with a 16-byte block, their chain modes,
# their key sizes in bytes, and the IV generators.
BLOCK_CIPHERS = {"aes": ((16, 24, 32), ("xts", "cbc", "ecb")), "sm4": ((16,), ("cbc", "ecb"))}
XTS_KEY_BYTES = (32, 64)  # two AES-128 or AES-256 keys: OpenSSL has no AES-192-XTS
IV_MODES = ("plain", "plain64", "plain64be", "essiv", "null")
# ESSIV hashes recognised (the SHA names cryptsetup users write); ESSIV keys the cipher with the digest, so
# only one whose size is a key size of the cipher works: sha256 for AES.  sha1's 160-bit digest is no AES key,
# which is why the kernel refuses aes-cbc-essiv:sha1 too; the refusal says so (`_essiv_problem`).
ESSIV_HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")
_CAPI_SIMPLE = r"(?P<chain>[a-z0-9]+)\((?P<cipher>[a-z0-9]+)\)"  # compiled at first use: kernel specs are rare


@dataclass(frozen=True)
class CipherSpec:
    """One parsed cipher string.

    `iv_option` is essiv's hash (empty otherwise); `iv_mode` is empty for
    ecb without an IV mode.  `api` keeps the crypto API name of the capi
    form (``xts(aes)``) so the string is written back as it was given;
    `cipher` and `chain_mode` are filled in when that name is a plain
    ``mode(cipher)`` and empty otherwise.
    """

    cipher: str
    chain_mode: str
    iv_mode: str
    iv_option: str = ""
    keycount: int = 1
    api: str = ""

    @classmethod
    def parse(cls, text: str) -> "CipherSpec":
        """A spec lvcrypt's sector cipher computes; see `parse_cipher_spec`."""
        return parse_cipher_spec(text)

    def __str__(self) -> str:
        iv = f"{self.iv_mode}:{self.iv_option}" if self.iv_option else self.iv_mode
        if self.api:
            return f"capi:{self.api}-{iv}" if iv else f"capi:{self.api}"
        cipher = f"{self.cipher}:{self.keycount}" if self.keycount != 1 else self.cipher
        return f"{cipher}-{self.chain_mode}-{iv}" if iv else f"{cipher}-{self.chain_mode}"

    def check_key_size(self, key_bytes: int) -> None:
        """Refuse a key the sector cipher cannot use: XTS takes two equal-size keys, AES 16, 24 or 32 bytes."""
        problem = _compute_problem(self)
        if problem:
            raise HandlerError(f"unsupported cipher '{self}': {problem}")
        valid = XTS_KEY_BYTES if self.chain_mode == "xts" else BLOCK_CIPHERS[self.cipher][0]
        if key_bytes not in valid:
            sizes = ", ".join(str(size * 8) for size in valid[:-1])
            sizes = f"{sizes} or {valid[-1] * 8}" if sizes else str(valid[-1] * 8)
            raise HandlerError(f"key size {key_bytes * 8} bits is not valid for {self}: it needs a {sizes}-bit key")


def parse_kernel_cipher_spec(text: str) -> CipherSpec:
    """`text` as dm-crypt reads a table's cipher field; a string it would refuse is a one-line HandlerError.

    Only the grammar is checked: whether the kernel has the named algorithm
    is for the kernel to say when the table is loaded.
    """
    if text.startswith("capi:"):
        return _parse_capi(text)
    head, dash, rest = text.partition("-")
    cipher, colon, count = head.partition(":")
    chain, _, rest = rest.partition("-")
    iv_mode, _, iv_option = rest.partition(":")
    if not cipher or (dash and not chain):
        raise HandlerError(f"cipher '{text}': expected cipher-mode-iv, e.g. aes-xts-plain64")
    keycount = _keycount(text, count) if colon else 1
    if not dash or (chain == "plain" and not iv_mode):  # dm-crypt's original format: cipher alone is cbc-plain
        chain, iv_mode = "cbc", "plain"
    if chain != "ecb" and not iv_mode:
        raise HandlerError(f"cipher '{text}': expected cipher-mode-iv: chain mode {chain} needs an IV mode, "
                           f"e.g. {cipher}-{chain}-plain64")
    _check_iv(text, iv_mode, iv_option)
    return CipherSpec(cipher, chain, iv_mode, iv_option, keycount)


def _parse_capi(text: str) -> CipherSpec:
    """``capi:name[-ivmode[:ivopts]]``: the IV parts are split off at the last ``:`` and ``-``, as dm-crypt does."""
    rest = text[len("capi:"):]
    rest, colon, iv_option = rest.rpartition(":") if ":" in rest else (rest, "", "")
    api, dash, iv_mode = rest.rpartition("-") if "-" in rest else (rest, "", "")
    if not api:
        raise HandlerError(f"cipher '{text}': expected capi:mode(cipher)-ivmode, e.g. capi:xts(aes)-plain64")
    if colon and not dash:
        raise HandlerError(f"cipher '{text}': an IV option needs an IV mode")
    _check_iv(text, iv_mode, iv_option)
    simple = re.fullmatch(_CAPI_SIMPLE, api)
    cipher, chain = (simple["cipher"], simple["chain"]) if simple else ("", "")
    return CipherSpec(cipher, chain, iv_mode, iv_option, 1, api)


def _keycount(text: str, count: str) -> int:
    if not count.isdigit() or int(count) < 1 or int(count) & (int(count) - 1):
        raise HandlerError(f"cipher '{text}': the key count must be a power of two")
    return int(count)


def _check_iv(text: str, iv_mode: str, iv_option: str) -> None:
    if iv_mode and iv_mode not in KERNEL_IV_MODES:
        raise HandlerError(f"cipher '{text}': dm-crypt has no IV generator '{iv_mode}'")
    if iv_mode == "essiv" and not iv_option:
        raise HandlerError(f"cipher '{text}': IV generator essiv needs a hash (essiv:sha256)")


def parse_cipher_spec(text: str) -> CipherSpec:
    """A spec in dm-crypt's grammar that lvcrypt's sector cipher computes; anything else is a one-line HandlerError."""
    spec = parse_kernel_cipher_spec(text)
    problem = _compute_problem(spec)
    if problem:
        raise HandlerError(f"unsupported cipher '{text}': {problem}")
    return spec


def _compute_problem(spec: CipherSpec) -> str | None:
    """Why the sector cipher cannot compute `spec`, or None."""
    if spec.api and not spec.chain_mode:
        return f"crypto API name '{spec.api}' is not computed by lvcrypt (use capi:mode(cipher) or cipher-mode-iv)"
    if spec.keycount != 1:
        return "multi-key (keycount) mode is not supported"
    if spec.cipher not in BLOCK_CIPHERS:
        return f"lvcrypt's sector cipher has no {spec.cipher} (it computes {', '.join(BLOCK_CIPHERS)})"
    if spec.chain_mode not in BLOCK_CIPHERS[spec.cipher][1]:
        return f"mode {spec.chain_mode} is not available for {spec.cipher}"
    if spec.chain_mode == "ecb":
        return None  # dm-crypt ignores any IV mode given with ecb
    if spec.iv_mode not in IV_MODES:
        return f"IV generator '{spec.iv_mode}' is not supported (use {', '.join(IV_MODES)})"
    if spec.iv_option and spec.iv_mode != "essiv":
        return f"IV generator {spec.iv_mode} takes no option"
    if spec.iv_mode == "essiv":
        return _essiv_problem(spec)
    return None


def _essiv_problem(spec: CipherSpec) -> str | None:
    """ESSIV keys a second instance of the cipher with the hash of the key: the digest must be a key size."""
    if spec.iv_option not in ESSIV_HASHES:
        return f"essiv hash '{spec.iv_option}' is not supported (use essiv:sha256)"
    digest_bytes = hashlib.new(spec.iv_option).digest_size
    if digest_bytes not in BLOCK_CIPHERS[spec.cipher][0]:
        return (f"essiv:{spec.iv_option} gives a {digest_bytes * 8}-bit salt, which is not a key size of {spec.cipher} "
                "(dm-crypt refuses it too; use essiv:sha256)")
    return None


def check_data_cipher(text: str, key_bits: int) -> CipherSpec:
    """The one test of "can lvcrypt read and write this data in userspace": creation and the data path ask it.

    Creating an LV whose data no lvcrypt command could then read is refused
    before anything is written, with the same message `read` would give.
    """
    spec = parse_cipher_spec(text)
    if key_bits % 8:
        raise HandlerError(f"key size {key_bits} bits is not a whole number of bytes")
    spec.check_key_size(key_bits // 8)
    return spec


def check_kernel_cipher(text: str, key_bits: int) -> CipherSpec:
    """What an imported volume needs for kernel activation: dm-crypt's grammar and a key it can split."""
    spec = parse_kernel_cipher_spec(text)
    if key_bits <= 0 or key_bits % (8 * spec.keycount):
        raise HandlerError(f"cipher '{text}': a {key_bits}-bit key does not split into {spec.keycount} key(s)")
    if spec.chain_mode == "xts" and key_bits % 16:
        raise HandlerError(f"cipher '{text}': an XTS key has two halves of equal size, not {key_bits} bits")
    return spec


def check_new_volume_key(spec: CipherSpec, key: bytes | bytearray | memoryview) -> None:
    """Refuse a key lvcrypt is about to start encrypting new data with, when XTS would be weak with it.

    XTS is defined for two independent keys (IEEE 1619; NIST SP 800-38E), and
    OpenSSL and the kernel in FIPS mode refuse equal halves; dm-crypt outside
    FIPS mode computes them, so existing volumes stay readable (see
    `sector`), but no new one is made with such a key.
    """
    view = memoryview(key)
    half = view.nbytes // 2
    if spec.chain_mode == "xts" and hmac.compare_digest(view[:half], view[half:]):
        raise HandlerError(f"{spec}: the two halves of the XTS key are equal; XTS needs two different keys")
