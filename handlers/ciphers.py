"""cryptsetup cipher specifications (`aes-xts-plain64`, `aes-cbc-essiv:sha256`) as sector ciphers.

LUKS encrypts keyslot material, and dm-crypt encrypts data, sector by sector
with an IV derived from the sector number; the spec names the block cipher,
the chaining mode and the IV generator.  The block ciphers come from
`cryptography` (OpenSSL); a spec naming one it lacks (twofish, serpent) or a
mode it cannot combine (XTS with anything but AES) is refused with a one-line
error instead of being emulated here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lvcrypt.errors import HandlerError
from lvcrypt.handlers.secret import Secret

_BLOCK_CIPHERS = {"aes": algorithms.AES, "sm4": algorithms.SM4}
_MODES = ("xts", "cbc", "ecb")
_IV_GENERATORS = ("plain", "plain64", "plain64be", "essiv", "null")


@dataclass(frozen=True)
class CipherSpec:
    """A parsed `cipher-mode-iv[:ivopts]` spec."""

    cipher: str
    mode: str
    iv: str
    iv_hash: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "CipherSpec":
        parts = spec.lower().split("-", 2)
        if len(parts) == 2 and parts[1] == "ecb":
            parts.append("null")
        if len(parts) != 3 or not all(parts):
            raise HandlerError(f"cipher {spec!r} is not of the form cipher-mode-iv (e.g. aes-xts-plain64)")
        cipher, mode, iv = parts
        iv_name, _, iv_hash = iv.partition(":")
        if cipher not in _BLOCK_CIPHERS:
            raise HandlerError(f"unsupported cipher {spec}: the cryptography library has no {cipher}")
        if mode not in _MODES or (mode == "xts" and cipher != "aes"):
            raise HandlerError(f"unsupported cipher {spec}: mode {mode} is not available for {cipher}")
        if iv_name not in _IV_GENERATORS or (iv_name == "essiv") != bool(iv_hash):
            raise HandlerError(f"unsupported cipher {spec}: IV generator {iv!r}")
        if iv_hash:
            try:
                hashlib.new(iv_hash.replace("-", "_"))
            except ValueError:
                raise HandlerError(f"unsupported cipher {spec}: unknown hash {iv_hash}") from None
        return cls(cipher, mode, iv_name, iv_hash or None)

    def __str__(self) -> str:
        iv = f"{self.iv}:{self.iv_hash}" if self.iv_hash else self.iv
        return f"{self.cipher}-{self.mode}-{iv}"

    def check_key_size(self, key_bytes: int) -> None:
        """XTS takes two keys; AES itself takes 16, 24 or 32 bytes."""
        single = key_bytes // 2 if self.mode == "xts" else key_bytes
        valid = (16, 32) if self.mode == "xts" else (16, 24, 32)
        if self.cipher == "sm4":
            valid = (16,)
        if single not in valid or (self.mode == "xts" and key_bytes % 2):
            raise HandlerError(f"key size {key_bytes * 8} bits is not valid for {self}")


class SectorCipher:
    """Encrypts and decrypts whole sectors as dm-crypt does.

    `iv_sector_shift` converts a sector index to the number fed to the IV:
    cryptsetup's 4096-byte sectors still count 512-byte units (shift 3).
    """

    def __init__(self, spec: str | CipherSpec, key: Secret, sector_size: int = 512):
        self.spec = spec if isinstance(spec, CipherSpec) else CipherSpec.parse(spec)
        self.spec.check_key_size(len(key))
        self.sector_size = sector_size
        self.iv_sector_shift = (sector_size // 512).bit_length() - 1
        self._key = key
        algorithm = _BLOCK_CIPHERS[self.spec.cipher]
        self._block = algorithm.block_size // 8
        self._essiv = None
        if self.spec.iv == "essiv":
            salt = hashlib.new(self.spec.iv_hash.replace("-", "_"), key.buffer).digest()  # type: ignore[union-attr]
            self._essiv = Cipher(algorithm(salt), modes.ECB())

    def _iv(self, sector: int) -> bytes:
        """dm-crypt's IV generators; plain64be puts the big-endian number in the IV's last 8 bytes."""
        number = sector << self.iv_sector_shift
        size = 16 if self.spec.mode == "xts" else self._block
        if self.spec.iv == "plain64be":
            return number.to_bytes(8, "big").rjust(size, b"\0")
        if self.spec.iv == "plain":
            raw = (number & 0xFFFFFFFF).to_bytes(4, "little")
        elif self.spec.iv == "null":
            raw = b""
        else:
            raw = number.to_bytes(8, "little")
        iv = raw.ljust(size, b"\0")
        if self._essiv is not None:
            encryptor = self._essiv.encryptor()
            iv = encryptor.update(iv) + encryptor.finalize()
        return iv

    def _cipher(self, sector: int) -> Cipher:
        algorithm = _BLOCK_CIPHERS[self.spec.cipher](self._key.buffer)
        if self.spec.mode == "xts":
            return Cipher(algorithm, modes.XTS(self._iv(sector)))
        if self.spec.mode == "cbc":
            return Cipher(algorithm, modes.CBC(self._iv(sector)))
        return Cipher(algorithm, modes.ECB())

    def _run(self, data: bytes | bytearray | memoryview, first_sector: int, encrypt: bool) -> bytearray:
        if len(data) % self.sector_size:
            raise HandlerError(f"data is not a multiple of the {self.sector_size}-byte sector size")
        out = bytearray(len(data))
        view = memoryview(data)
        for index in range(len(data) // self.sector_size):
            cipher = self._cipher(first_sector + index)
            try:
                context = cipher.encryptor() if encrypt else cipher.decryptor()
            except ValueError as error:  # OpenSSL refuses e.g. XTS keys with equal halves
                raise HandlerError(f"{self.spec}: {error}") from None
            start = index * self.sector_size
            chunk = view[start:start + self.sector_size]
            out[start:start + self.sector_size] = context.update(chunk) + context.finalize()
        return out

    def encrypt(self, data: bytes | bytearray | memoryview, first_sector: int = 0) -> bytearray:
        return self._run(data, first_sector, True)

    def decrypt(self, data: bytes | bytearray | memoryview, first_sector: int = 0) -> bytearray:
        return self._run(data, first_sector, False)
