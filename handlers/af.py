"""LUKS anti-forensic information splitter (AF), as cryptsetup's lib/luks1/af.c.

A volume key is stored expanded to `stripes` blocks (4000 in LUKS) so that
destroying any small part of a keyslot's area makes the key unrecoverable,
even on disks that remap sectors.  Every stripe but the last is random; the
last one is the key XOR a running value that is re-hashed ("diffused") after
each stripe, so all stripes are needed to merge the key back.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

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


def split(material: Secret, stripes: int, hash_name: str) -> Secret:
    """Expand `material` to `stripes` blocks of its size (random ones first, the key last)."""
    size = len(material)
    out = Secret(size * stripes)
    running = bytearray(size)
    running_np = np.frombuffer(running, dtype=np.uint8)
    try:
        for index in range(stripes - 1):
            stripe = memoryview(out.buffer)[index * size:(index + 1) * size]
            stripe[:] = os.urandom(size)
            running_np ^= np.frombuffer(stripe, dtype=np.uint8)
            _diffuse(running, hash_name)
        last = np.frombuffer(out.buffer, dtype=np.uint8)[(stripes - 1) * size:]
        last[:] = running_np ^ np.frombuffer(material.buffer, dtype=np.uint8)
    finally:
        wipe(running)
    return out


def merge(split_material: Secret | bytearray, size: int, stripes: int, hash_name: str) -> Secret:
    """Recover the `size`-byte material from its split form."""
    data = split_material.buffer if isinstance(split_material, Secret) else split_material
    if len(data) < size * stripes:
        raise HandlerError("anti-forensic material is shorter than its stripes")
    stripes_np = np.frombuffer(data, dtype=np.uint8)
    running = bytearray(size)
    running_np = np.frombuffer(running, dtype=np.uint8)
    try:
        for index in range(stripes - 1):
            running_np ^= stripes_np[index * size:(index + 1) * size]
            _diffuse(running, hash_name)
        out = Secret(size)
        np.frombuffer(out.buffer, dtype=np.uint8)[:] = running_np ^ stripes_np[(stripes - 1) * size:stripes * size]
        return out
    finally:
        wipe(running)


def split_sectors(key_bytes: int, stripes: int = LUKS_STRIPES, sector: int = 512) -> int:
    """512-byte sectors a keyslot's split material occupies (rounded up)."""
    return -(-key_bytes * stripes // sector)
