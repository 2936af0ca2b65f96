"""LUKS anti-forensic information splitter (AF), as cryptsetup's lib/luks1/af.c.

A volume key is stored expanded to `stripes` blocks (4000 in LUKS) so that
destroying any small part of a keyslot's area makes the key unrecoverable,
even on disks that remap sectors.  Every stripe but the last is random; the
last one is the key XOR a running value that is re-hashed ("diffused") after
each stripe, so all stripes are needed to merge the key back.

The XOR goes through Python integers rather than numpy: importing numpy
costs about a third of `unlock-test`'s start-up, and the running value's
integers are no worse than the hashlib digests diffusion already produces.
"""

from __future__ import annotations

import hashlib
import os

from lvcrypt.errors import HandlerError
from lvcrypt.handlers.secret import Secret, wipe

LUKS_STRIPES = 4000


def _digest_size(hash_name: str) -> int:
    try:
        return hashlib.new(_hashlib_name(hash_name)).digest_size
    except ValueError:
        raise HandlerError(f"hash {hash_name} is not available") from None


def _hashlib_name(hash_name: str) -> str:
    """cryptsetup spells hashes `sha3-256`, hashlib `sha3_256`."""
    return hash_name.lower().replace("-", "_")


def _diffuse(block: bytearray, hash_name: str) -> None:
    """Replace `block` by the hash of its digest-sized pieces, each prefixed by its big-endian index."""
    name = _hashlib_name(hash_name)
    size = _digest_size(hash_name)
    for index, start in enumerate(range(0, len(block), size)):
        piece = memoryview(block)[start:start + size]
        digest = hashlib.new(name, index.to_bytes(4, "big") + piece).digest()
        piece[:] = digest[:len(piece)]


def _xor_into(target: bytearray | memoryview, other: bytes | bytearray | memoryview) -> None:
    size = len(target)
    value = int.from_bytes(target, "little") ^ int.from_bytes(other, "little")
    target[:] = value.to_bytes(size, "little")


def split(material: Secret, stripes: int, hash_name: str) -> Secret:
    """Expand `material` to `stripes` blocks of its size (random ones first, the key last)."""
    size = len(material)
    out = Secret(size * stripes)
    running = bytearray(size)
    try:
        view = memoryview(out.buffer)
        for index in range(stripes - 1):
            stripe = view[index * size:(index + 1) * size]
            stripe[:] = os.urandom(size)
            _xor_into(running, stripe)
            _diffuse(running, hash_name)
        last = view[(stripes - 1) * size:]
        last[:] = running
        _xor_into(last, material.buffer)
    finally:
        wipe(running)
    return out


def merge(split_material: Secret | bytearray, size: int, stripes: int, hash_name: str) -> Secret:
    """Recover the `size`-byte material from its split form."""
    data = split_material.buffer if isinstance(split_material, Secret) else split_material
    if len(data) < size * stripes:
        raise HandlerError("anti-forensic material is shorter than its stripes")
    view = memoryview(data)
    out = Secret(size)
    for index in range(stripes - 1):
        _xor_into(out.buffer, view[index * size:(index + 1) * size])
        _diffuse(out.buffer, hash_name)
    _xor_into(out.buffer, view[(stripes - 1) * size:stripes * size])
    return out


def split_sectors(key_bytes: int, stripes: int = LUKS_STRIPES, sector: int = 512) -> int:
    """512-byte sectors a keyslot's split material occupies (rounded up)."""
    return -(-key_bytes * stripes // sector)
