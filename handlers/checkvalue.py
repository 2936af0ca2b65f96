"""The key check block of plain and hashed keystores that lvcrypt creates.

cryptsetup's plain mode has no header: a wrong key silently yields garbage.
SPEC gives lvcrypt-made plain/hashed keystores one extent; its first 512
bytes hold this block so a wrong key or passphrase is detected, and so an
image file alone says which handler, cipher and key size it was made for.

Layout (big-endian, 512 bytes, rest zero):

    offset size field
    0      8    magic       b"LVCRKCV\\x01"
    8      2    version     1
    10     2    block size  512
    12     32   handler     "plain" or "hashed", NUL-padded ASCII
    44     32   cipher      cryptsetup spelling, NUL-padded
    76     32   key_hash    hashed only (e.g. "sha256", "sha512:32"), NUL-padded
    108    4    key_size    bits
    112    4    iterations  PBKDF2-SHA256 iterations of the check value
    116    32   salt        random
    148    32   check       PBKDF2-HMAC-SHA256(volume key, salt, iterations, 32)
    180    4    crc32       zlib CRC-32 of bytes 0..179

The check value is derived from the volume key, never the passphrase, with a
salted PBKDF2 whose cost (cryptsetup's 125 ms digest budget) makes guessing a
hashed passphrase against it no cheaper than against known plaintext in the
data, which an attacker of plain dm-crypt always has.
"""

from __future__ import annotations

import hmac
import os
import zlib

from lvcrypt.binary_layout import Layout
from lvcrypt.errors import FormatError, WrongPassphrase
from lvcrypt.handlers.base import Area
from lvcrypt.handlers.kdf import pbkdf2
from lvcrypt.handlers.secret import Secret
from lvcrypt.records import dataclass

MAGIC = b"LVCRKCV\x01"
VERSION = 1
BLOCK_SIZE = 512
BLOCK_LAYOUT = Layout(">", (("magic", "8s"), ("version", "H"), ("block_size", "H"), ("handler", "32s"),
                            ("cipher", "32s"), ("key_hash", "32s"), ("key_size", "I"), ("iterations", "I"),
                            ("salt", "32s"), ("check", "32s")))
# zlib's CRC-32 of the fields above, right after them.
CRC_LAYOUT = Layout(">", (("crc", "I"),))


@dataclass(frozen=True)
class CheckBlock:
    handler: str
    cipher: str
    key_hash: str | None
    key_size: int
    iterations: int
    salt: bytes
    check: bytes

    def to_bytes(self) -> bytes:
        body = BLOCK_LAYOUT.pack({"magic": MAGIC, "version": VERSION, "block_size": BLOCK_SIZE,
                                  "handler": self.handler.encode(), "cipher": self.cipher.encode(),
                                  "key_hash": (self.key_hash or "").encode(), "key_size": self.key_size,
                                  "iterations": self.iterations, "salt": self.salt, "check": self.check})
        return (body + CRC_LAYOUT.pack({"crc": zlib.crc32(body)})).ljust(BLOCK_SIZE, b"\0")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CheckBlock":
        if len(raw) < BLOCK_SIZE or raw[:8] != MAGIC:
            raise FormatError("no lvcrypt key check block (bad magic)")
        body = raw[:BLOCK_LAYOUT.size]
        if zlib.crc32(body) != CRC_LAYOUT.unpack_from(raw, BLOCK_LAYOUT.size)["crc"]:
            raise FormatError("key check block checksum mismatch")
        values = BLOCK_LAYOUT.unpack_from(body)
        if values["version"] != VERSION or values["block_size"] != BLOCK_SIZE:
            raise FormatError(f"unsupported key check block version {values['version']}")
        try:
            text = {k: values[k].rstrip(b"\0").decode("ascii") for k in ("handler", "cipher", "key_hash")}
        except UnicodeDecodeError:
            raise FormatError("key check block has non-ASCII names") from None
        if values["iterations"] < 1 or values["key_size"] % 8 or not values["key_size"]:
            raise FormatError("key check block has invalid key size or iterations")
        return cls(text["handler"], text["cipher"], text["key_hash"] or None, values["key_size"],
                   values["iterations"], values["salt"], values["check"])


def make(handler: str, cipher: str, key_hash: str | None, key_size: int, volume_key: Secret,
         iterations: int) -> CheckBlock:
    salt = os.urandom(32)
    with pbkdf2("sha256", volume_key.buffer, salt, iterations, 32) as check:
        return CheckBlock(handler, cipher, key_hash, key_size, iterations, salt, bytes(check.buffer))


def verify(block: CheckBlock, volume_key: Secret) -> None:
    """Raise WrongPassphrase unless `volume_key` produced this block's check value."""
    with pbkdf2("sha256", volume_key.buffer, block.salt, block.iterations, 32) as check:
        if not hmac.compare_digest(check.buffer, block.check):
            raise WrongPassphrase("wrong key or passphrase (key check value does not match)")


def read(area: Area) -> CheckBlock:
    if area.size < BLOCK_SIZE:
        raise FormatError(f"keystore area is smaller than the {BLOCK_SIZE}-byte key check block")
    return CheckBlock.from_bytes(area.read(0, BLOCK_SIZE))


def read_handler_name(area: Area) -> str | None:
    """The handler recorded in the area, or None when the area has no check block."""
    if area.size < BLOCK_SIZE or area.read(0, 8) != MAGIC:
        return None
    return read(area).handler
