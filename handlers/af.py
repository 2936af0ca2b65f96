"""LUKS anti-forensic information splitter (AF), as cryptsetup's lib/luks1/af.c.

A volume key is stored expanded to `stripes` blocks (4000 in LUKS) so that
destroying any small part of a keyslot's area makes the key unrecoverable,
even on disks that remap sectors.  Every stripe but the last is random; the
last one is the key XOR a running value that is re-hashed ("diffused") after
each stripe, so all stripes are needed to merge the key back.

A merge runs in lvcrypt's compiled module (`af_merge_into`, C over OpenSSL):
4000 stripes made 8,000 hashlib calls in Python, the most instructions of a
PBKDF2-1000 unlock (benchmarks/startup.py).  The key goes straight into its
wiped buffer and the running block is cleansed there.  Only a hash OpenSSL
cannot fetch merges here in Python: the stripes' XOR goes through Python
integers (no worse than the hashlib digests diffusion already produces), and
the last XOR, whose result is the key itself, goes byte by byte into the
key's wiped buffer, so no integer or bytes object ever holds the key.
"""

from __future__ import annotations

import hashlib
import os

from lvcrypt.crypto._sectors import af_merge_into
from lvcrypt.errors import HandlerError
from lvcrypt.handlers.secret import Secret, wipe

LUKS_STRIPES = 4000


class _Diffuser:
    """One hash set up for every stripe of a split or merge: looking the hash up again for each of
    the 4000 stripes cost more than hashing them (most of a PBKDF2-1000 unlock).  Each piece's hash
    starts as a copy of a hash already fed its index prefix."""

    def __init__(self, hash_name: str, block_size: int):
        name = _hashlib_name(hash_name)
        try:
            first = hashlib.new(name)
        except ValueError:
            raise HandlerError(f"hash {hash_name} is not available") from None
        self.digest_size = first.digest_size
        starts = range(0, block_size, self.digest_size)
        self._pieces = [(start, hashlib.new(name, index.to_bytes(4, "big"))) for index, start in enumerate(starts)]

    def diffused(self, block: bytes) -> bytes:
        """`diffuse` of an immutable block: the merge's running value, kept as an integer between stripes."""
        size = self.digest_size
        parts = []
        for start, prefixed in self._pieces:
            digest = prefixed.copy()
            digest.update(block[start:start + size])
            parts.append(digest.digest()[:len(block) - start])
        return b"".join(parts)

    def diffuse(self, block: bytearray) -> None:
        """Replace `block` by the hash of its digest-sized pieces, each prefixed by its big-endian index."""
        view = memoryview(block)
        size = self.digest_size
        for start, prefixed in self._pieces:
            piece = view[start:start + size]
            digest = prefixed.copy()
            digest.update(piece)
            piece[:] = digest.digest()[:len(piece)]


def _hashlib_name(hash_name: str) -> str:
    """cryptsetup spells hashes `sha3-256`, hashlib `sha3_256`."""
    return hash_name.lower().replace("-", "_")


def _xor_into(target: bytearray | memoryview, other: bytes | bytearray | memoryview) -> None:
    size = len(target)
    value = int.from_bytes(target, "little") ^ int.from_bytes(other, "little")
    target[:] = value.to_bytes(size, "little")


def _xor_bytewise(target: bytearray | memoryview, other: bytes | bytearray | memoryview) -> None:
    """XOR into `target` one byte at a time, for steps that involve the key: the small integers this
    makes are shared interpreter constants, not copies of it."""
    for index, value in enumerate(other):
        target[index] ^= value


def split(material: Secret, stripes: int, hash_name: str) -> Secret:
    """Expand `material` to `stripes` blocks of its size (random ones first, the key last)."""
    size = len(material)
    diffuser = _Diffuser(hash_name, size)
    out = Secret(size * stripes)
    running = bytearray(size)
    try:
        view = memoryview(out.buffer)
        for index in range(stripes - 1):
            stripe = view[index * size:(index + 1) * size]
            stripe[:] = os.urandom(size)
            _xor_into(running, stripe)
            diffuser.diffuse(running)
        last = view[(stripes - 1) * size:]
        last[:] = running
        _xor_bytewise(last, material.buffer)
    finally:
        wipe(running)
    return out


def merge(split_material: Secret | bytearray, size: int, stripes: int, hash_name: str) -> Secret:
    """Recover the `size`-byte material from its split form."""
    data = split_material.buffer if isinstance(split_material, Secret) else split_material
    if stripes < 1 or len(data) < size * stripes:
        raise HandlerError("anti-forensic material is shorter than its stripes")
    out = Secret(size)
    try:
        af_merge_into(hash_name.lower(), data, stripes, out.buffer)
    except LookupError:
        _merge_in_python(data, out.buffer, stripes, hash_name)
    return out


def _merge_in_python(data: bytes | bytearray, out: bytearray, stripes: int, hash_name: str) -> None:
    """`merge` with a hash only hashlib offers."""
    size = len(out)
    diffuser = _Diffuser(hash_name, size)
    view = memoryview(data)
    number = int.from_bytes
    running = 0  # an integer from stripe to stripe: a third fewer steps than XOR into a buffer (benchmarks/unlock.py)
    for index in range(stripes - 1):
        running = number(diffuser.diffused((running ^ number(view[index * size:(index + 1) * size], "little"))
                                           .to_bytes(size, "little")), "little")
    out[:] = view[(stripes - 1) * size:stripes * size]
    _xor_bytewise(out, running.to_bytes(size, "little"))


def split_sectors(key_bytes: int, stripes: int = LUKS_STRIPES, sector: int = 512) -> int:
    """512-byte sectors a keyslot's split material occupies (rounded up)."""
    return -(-key_bytes * stripes // sector)
