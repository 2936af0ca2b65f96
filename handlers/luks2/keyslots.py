"""LUKS2 keyslots of type `luks2`: opening one and storing the volume key in one.

A keyslot holds the volume key split by the anti-forensic splitter (4000
stripes) and encrypted, sector by sector with IVs counted from the start of
its area, with a key derived from the passphrase (PBKDF2 or Argon2).  The
area is placed in the first gap of the keyslots area that fits it, rounded
up to 4096 bytes as cryptsetup does, so slots cryptsetup adds later fit too.
"""

from __future__ import annotations

import os

from lvcrypt.crypto import CipherSpec
from lvcrypt.errors import HandlerError
from lvcrypt.handlers import af
from lvcrypt.handlers.base import Area
from lvcrypt.handlers.kdf import Pbkdf, PbkdfRequest, derive
from lvcrypt.handlers.secret import Secret, wipe

from lvcrypt.handlers.luks2.json_area import AfSpec, AreaSpec, KdfSpec, Keyslot, Metadata, material_size

SALT_SIZE = 32
AREA_ALIGN = 4096
PRIORITY_IGNORE, PRIORITY_NORMAL, PRIORITY_PREFER = 0, 1, 2


def _pbkdf_of(kdf: KdfSpec) -> Pbkdf:
    if kdf.type == "pbkdf2":
        return Pbkdf("pbkdf2", kdf.hash, kdf.iterations or 0)
    return Pbkdf(kdf.type, None, kdf.time or 0, kdf.memory or 0, kdf.cpus or 0)


def open_keyslot(area: Area, slot: Keyslot, passphrase: Secret) -> Secret:
    """The candidate volume key this slot yields for `passphrase` (not yet checked against a digest)."""
    from lvcrypt.crypto.sector import SectorCipher
    if slot.type != "luks2" or slot.kdf is None or slot.af is None or slot.area.encryption is None:
        raise HandlerError(f"keyslot type {slot.type!r} cannot be opened with a passphrase")
    spec = CipherSpec.parse(slot.area.encryption)
    length = material_size(slot.key_size, slot.af.stripes)
    encrypted = area.read(slot.area.offset, length)
    with derive(_pbkdf_of(slot.kdf), passphrase, slot.kdf.salt, slot.area.key_size or 0) as key:
        with SectorCipher(spec, key) as cipher:
            material = cipher.decrypt(encrypted, 0)
    try:
        return af.merge(material, slot.key_size, slot.af.stripes, slot.af.hash)
    finally:
        wipe(material)


def area_length(key_size: int, stripes: int = af.LUKS_STRIPES) -> int:
    """Bytes a keyslot area gets for a `key_size`-byte key (cryptsetup: AF sectors rounded to 4 KiB)."""
    return -(-material_size(key_size, stripes) // AREA_ALIGN) * AREA_ALIGN


def find_gap(metadata: Metadata, length: int, ignore: int | None = None) -> int:
    """Offset of the first free stretch of the keyslots area that holds `length` bytes."""
    config = metadata.config
    taken = sorted((slot.area.offset, slot.area.offset + slot.area.size)
                   for number, slot in metadata.keyslots.items() if number != ignore)
    cursor = 2 * config.metadata_size
    for start, end in taken:
        if start - cursor >= length:
            return cursor
        cursor = max(cursor, end)
    if config.keyslots_end - cursor >= length:
        return cursor
    raise HandlerError("no room left in the LUKS2 keyslots area for another keyslot")


def free_slot(metadata: Metadata, wanted: int | None, limit: int) -> int:
    if wanted is not None:
        if not 0 <= wanted < limit:
            raise HandlerError(f"keyslot {wanted} is out of range (0-{limit - 1})")
        if wanted in metadata.keyslots:
            raise HandlerError(f"keyslot {wanted} is already in use")
        return wanted
    for number in range(limit):
        if number not in metadata.keyslots:
            return number
    raise HandlerError(f"all {limit} keyslots are in use")


def kdf_spec(pbkdf: Pbkdf) -> KdfSpec:
    salt = os.urandom(SALT_SIZE)
    if pbkdf.kind == "pbkdf2":
        return KdfSpec("pbkdf2", salt, hash=pbkdf.hash, iterations=pbkdf.iterations)
    return KdfSpec(pbkdf.kind, salt, time=pbkdf.iterations, memory=pbkdf.memory_kib, cpus=pbkdf.parallel)


def store_keyslot(area: Area, metadata: Metadata, volume_key: Secret, passphrase: Secret,
                  request: PbkdfRequest, cipher: str, offset: int, priority: int | None = None) -> Keyslot:
    """Write the encrypted split key at `offset` and return the keyslot describing it.

    The keyslot's area cipher and key size are the data segment's, as
    cryptsetup chooses them by default.
    """
    from lvcrypt.crypto.sector import SectorCipher
    spec = CipherSpec.parse(cipher)
    spec.check_key_size(len(volume_key))
    key_size = len(volume_key)
    length = area_length(key_size)
    if offset + length > metadata.config.keyslots_end:
        raise HandlerError("the keyslot does not fit in the LUKS2 keyslots area")
    kdf = kdf_spec(request.resolve(key_size))
    af_spec = AfSpec("luks1", af.LUKS_STRIPES, request.hash)
    with af.split(volume_key, af.LUKS_STRIPES, af_spec.hash) as split:
        material = bytearray(material_size(key_size, af.LUKS_STRIPES))
        material[:len(split)] = split.buffer
        try:
            with derive(_pbkdf_of(kdf), passphrase, kdf.salt, key_size) as key:
                with SectorCipher(spec, key) as cipher:
                    encrypted = cipher.encrypt(material, 0)
        finally:
            wipe(material)
    area.write(offset, encrypted + os.urandom(length - len(encrypted)))
    return Keyslot("luks2", key_size, AreaSpec("raw", offset, length, str(spec), key_size),
                   af=af_spec, kdf=kdf, priority=priority)


def wipe_area(area: Area, slot: Keyslot) -> None:
    """Overwrite a removed keyslot's material so the old passphrase can no longer recover the key."""
    area.write(slot.area.offset, bytes(slot.area.size))


def try_order(metadata: Metadata, only: int | None) -> list[int]:
    """Slots to try for a passphrase: preferred first, ignored ones only when asked for by number."""
    if only is not None:
        if only not in metadata.keyslots:
            raise HandlerError(f"keyslot {only} is not in use")
        return [only]
    prefer = [n for n, s in sorted(metadata.keyslots.items()) if s.priority == PRIORITY_PREFER]
    normal = [n for n, s in sorted(metadata.keyslots.items()) if s.priority in (None, PRIORITY_NORMAL)]
    return prefer + normal
