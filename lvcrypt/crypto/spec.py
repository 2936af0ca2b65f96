"""dm-crypt cipher specifications: ``cipher[:keycount]-chainmode-ivmode[:ivopts]``.

The same strings appear in dm-crypt tables, LUKS headers and lvcrypt
metadata, so the userspace data path parses exactly that syntax (and the
``capi:xts(aes)-plain64`` spelling of the kernel crypto API) instead of an
option set of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lvcrypt.errors import HandlerError

CHAIN_MODES = ("xts", "cbc")
IV_MODES = ("plain", "plain64", "plain64be", "essiv")
# Volume key sizes in bytes each chain mode takes (XTS: two AES keys).
KEY_BYTES = {"xts": (32, 64), "cbc": (16, 24, 32)}
# The salt is the key of an AES instance: only a 256-bit digest fits.
ESSIV_HASHES = ("sha256",)
_CAPI = re.compile(r"capi:(?P<chain>[a-z0-9]+)\((?P<cipher>[a-z0-9]+)\)-(?P<iv>.+)")


@dataclass(frozen=True)
class CipherSpec:
    """One parsed cipher string; `iv_option` is the hash of essiv, else empty."""

    cipher: str
    chain_mode: str
    iv_mode: str
    iv_option: str = ""

    def __str__(self) -> str:
        iv = f"{self.iv_mode}:{self.iv_option}" if self.iv_option else self.iv_mode
        return f"{self.cipher}-{self.chain_mode}-{iv}"


def parse_cipher_spec(text: str) -> CipherSpec:
    """The supported subset of dm-crypt's syntax; anything else is a one-line HandlerError."""
    capi = _CAPI.fullmatch(text)
    if capi:
        cipher, chain, iv = capi["cipher"], capi["chain"], capi["iv"]
    else:
        parts = text.split("-")
        if len(parts) != 3:
            raise HandlerError(f"cipher '{text}': expected cipher-chainmode-ivmode, e.g. aes-xts-plain64")
        cipher, chain, iv = parts
    if ":" in cipher:
        raise HandlerError(f"cipher '{text}': multi-key (keycount) mode is not supported")
    iv_mode, _, iv_option = iv.partition(":")
    if cipher != "aes":
        raise HandlerError(f"cipher '{text}': only aes is supported by the userspace data path")
    if chain not in CHAIN_MODES:
        raise HandlerError(f"cipher '{text}': chain mode '{chain}' is not supported (use xts or cbc)")
    if iv_mode not in IV_MODES:
        raise HandlerError(f"cipher '{text}': IV mode '{iv_mode}' is not supported (use plain64, plain64be, plain or essiv)")
    if (iv_mode == "essiv") != bool(iv_option):
        raise HandlerError(f"cipher '{text}': essiv needs a hash (essiv:sha256) and only essiv takes one")
    if iv_option and iv_option not in ESSIV_HASHES:
        raise HandlerError(f"cipher '{text}': essiv hash '{iv_option}' is not supported")
    return CipherSpec(cipher, chain, iv_mode, iv_option)


def check_data_cipher(text: str, key_bits: int) -> CipherSpec:
    """The one test of "can lvcrypt read and write this data in userspace": creation and the data path ask it.

    Creating an LV whose data no lvcrypt command could then read is refused
    before anything is written, with the same message `read` would give.
    """
    spec = parse_cipher_spec(text)
    valid = KEY_BYTES[spec.chain_mode]
    if key_bits % 8 or key_bits // 8 not in valid:
        sizes = ", ".join(str(size * 8) for size in valid[:-1]) + f" or {valid[-1] * 8}"
        raise HandlerError(f"{spec} needs a {sizes}-bit key, not {key_bits} bits")
    return spec
