"""LUKS1: cryptsetup's original on-disk format, byte for byte.

One 592-byte header (cipher, hash, payload offset, master-key digest, UUID
and eight keyslot descriptors) followed by the keyslots' key material: the
volume key split by the AF splitter (4000 stripes) and encrypted with a key
PBKDF2 derives from the passphrase, using the header's own cipher.  The
header's hash serves PBKDF2, the AF diffusion and the digest alike.

Layout choices follow cryptsetup's `LUKS_generate_phdr`: keyslot material
starts at 4096 bytes, each slot is rounded up to 4096 bytes, and the payload
starts on the next 1 MiB boundary when the area can hold it (a whole volume in
an image file) or at the caller's `data_offset`, 0 for a detached header (the
keystore of a crypt LV).
"""

from __future__ import annotations

import hmac
import os
import uuid as uuidlib

from lvcrypt.binary_layout import Layout, Record
from lvcrypt.crypto import CipherSpec
from lvcrypt.errors import FormatError, HandlerError, WrongPassphrase
from lvcrypt.handlers import af
from lvcrypt.handlers.base import (Area, DataMapping, FormatOptions, HeaderIdentity, KeyHandler, KeyslotInfo,
                                   KeystoreAttrs, SECTOR)
from lvcrypt.handlers.kdf import (DIGEST_ITER_TIME_MS, PBKDF2_MIN_ITERATIONS, PbkdfRequest,
                                  check_hash, pbkdf2, pbkdf2_iterations)
from lvcrypt.handlers.secret import Secret, require_passphrase, wipe
from lvcrypt.records import dataclass, replace

MAGIC = b"LUKS\xba\xbe"
NUM_KEYSLOTS = 8
SALT_SIZE = 32
DIGEST_SIZE = 20
KEY_ENABLED = 0x00AC71F3
KEY_DISABLED = 0x0000DEAD
ALIGN_KEYSLOTS = 4096
ALIGN_PAYLOAD = 1 << 20

# cryptsetup's struct luks_phdr up to its keyslots (big-endian, as on disk).
HEADER_LAYOUT = Layout(">", (("magic", "6s"), ("version", "H"), ("cipher_name", "32s"), ("cipher_mode", "32s"),
                             ("hash_spec", "32s"), ("payload_offset", "I"), ("key_bytes", "I"),
                             ("mk_digest", f"{DIGEST_SIZE}s"), ("mk_digest_salt", f"{SALT_SIZE}s"),
                             ("mk_digest_iterations", "I"), ("uuid", "40s")))
_TEXT_FIELDS = ("cipher_name", "cipher_mode", "hash_spec", "uuid")


@dataclass(frozen=True)
class Keyslot(Record):
    """One of the eight keyslot descriptors that follow the header."""

    LAYOUT = Layout(">", (("active", "I"), ("iterations", "I"), ("salt", f"{SALT_SIZE}s"),
                          ("material_offset", "I"), ("stripes", "I")))

    active: int
    iterations: int
    salt: bytes
    material_offset: int  # 512-byte sectors from the header start
    stripes: int

    @property
    def enabled(self) -> bool:
        return self.active == KEY_ENABLED


HEADER_SIZE = HEADER_LAYOUT.size + NUM_KEYSLOTS * Keyslot.LAYOUT.size  # 592


@dataclass(frozen=True)
class Header:
    cipher_name: str
    cipher_mode: str
    hash_spec: str
    payload_offset: int
    key_bytes: int
    mk_digest: bytes
    mk_digest_salt: bytes
    mk_digest_iterations: int
    uuid: str
    keyslots: tuple[Keyslot, ...]
    version: int = 1

    @property
    def cipher(self) -> str:
        return f"{self.cipher_name}-{self.cipher_mode}"

    def to_bytes(self) -> bytes:
        values = {name: getattr(self, name) for name in HEADER_LAYOUT.names if name != "magic"}
        values.update({name: values[name].encode() for name in _TEXT_FIELDS}, magic=MAGIC)
        head = HEADER_LAYOUT.pack(values)
        return head + b"".join(slot.pack() for slot in self.keyslots)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Header":
        if len(raw) < HEADER_SIZE:
            raise FormatError("LUKS1 header is truncated")
        values = HEADER_LAYOUT.unpack_from(raw)
        if values["magic"] != MAGIC:
            raise FormatError("not a LUKS header (bad magic)")
        if values["version"] != 1:
            raise FormatError(f"not a LUKS1 header (version {values['version']})")
        try:
            text = {k: _cstring(values[k]) for k in _TEXT_FIELDS}
        except UnicodeDecodeError:
            raise FormatError("LUKS1 header has non-ASCII cipher, hash or UUID") from None
        slots = tuple(Keyslot.unpack_from(raw, HEADER_LAYOUT.size + i * Keyslot.LAYOUT.size)
                      for i in range(NUM_KEYSLOTS))
        return cls(text["cipher_name"], text["cipher_mode"], text["hash_spec"], values["payload_offset"],
                   values["key_bytes"], values["mk_digest"], values["mk_digest_salt"],
                   values["mk_digest_iterations"], text["uuid"], slots)

    def with_slot(self, index: int, slot: Keyslot) -> "Header":
        slots = list(self.keyslots)
        slots[index] = slot
        return replace(self, keyslots=tuple(slots))


def _cstring(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii")


def _round_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def slot_sectors(key_bytes: int, stripes: int = af.LUKS_STRIPES) -> int:
    """Sectors one keyslot's material occupies, aligned like cryptsetup."""
    return _round_up(key_bytes * stripes, ALIGN_KEYSLOTS) // SECTOR


def header_sectors(key_bytes: int) -> int:
    """Sectors of the header plus all eight keyslots: the minimum detached-header size."""
    return _round_up(HEADER_SIZE, ALIGN_KEYSLOTS) // SECTOR + NUM_KEYSLOTS * slot_sectors(key_bytes)


def read_header(area: Area) -> Header:
    if area.size < HEADER_SIZE:
        raise FormatError(f"keystore area of {area.size} bytes cannot hold a LUKS1 header")
    header = Header.from_bytes(area.read(0, HEADER_SIZE))
    check_header(header, area.size)
    return header


def check_header(header: Header, area_size: int) -> None:
    """Refuse headers cryptsetup would refuse, before any of their numbers are used."""
    spec = CipherSpec.parse(header.cipher)
    if not 1 <= header.key_bytes <= 512:
        raise FormatError(f"LUKS1 header has invalid key size {header.key_bytes} bytes")
    spec.check_key_size(header.key_bytes)
    check_hash(header.hash_spec)
    if header.mk_digest_iterations < 1:
        raise FormatError("LUKS1 header has zero master-key digest iterations")
    used: list[tuple[int, int]] = []
    for index, slot in enumerate(header.keyslots):
        if slot.active not in (KEY_ENABLED, KEY_DISABLED):
            raise FormatError(f"LUKS1 keyslot {index} has an invalid state")
        if slot.stripes != af.LUKS_STRIPES:
            raise FormatError(f"LUKS1 keyslot {index} has {slot.stripes} stripes (expected 4000)")
        start = slot.material_offset
        end = start + af.split_sectors(header.key_bytes, slot.stripes)
        if start * SECTOR < HEADER_SIZE or end * SECTOR > area_size:
            raise FormatError(f"LUKS1 keyslot {index} material lies outside the keystore area")
        if header.payload_offset and end > header.payload_offset:
            raise FormatError(f"LUKS1 keyslot {index} overlaps the payload")
        if any(start < other_end and other_start < end for other_start, other_end in used):
            raise FormatError(f"LUKS1 keyslot {index} overlaps another keyslot")
        used.append((start, end))
        if slot.enabled and slot.iterations < 1:
            raise FormatError(f"LUKS1 keyslot {index} has zero iterations")


def _digest(header: Header, volume_key: Secret) -> bytes:
    with pbkdf2(header.hash_spec, volume_key.buffer, header.mk_digest_salt,
                header.mk_digest_iterations, DIGEST_SIZE) as digest:
        return bytes(digest.buffer)


def _key_matches(header: Header, volume_key: Secret) -> bool:
    return len(volume_key) == header.key_bytes and hmac.compare_digest(_digest(header, volume_key),
                                                                       header.mk_digest)


def _material_length(header: Header, slot: Keyslot) -> int:
    return af.split_sectors(header.key_bytes, slot.stripes) * SECTOR


def _open_slot(area: Area, header: Header, slot: Keyslot, passphrase: Secret) -> Secret | None:
    """The volume key if `passphrase` opens `slot`, else None."""
    from lvcrypt.crypto.sector import SectorCipher
    length = _material_length(header, slot)
    encrypted = area.read(slot.material_offset * SECTOR, length)
    with pbkdf2(header.hash_spec, passphrase.buffer, slot.salt, slot.iterations, header.key_bytes) as key:
        with SectorCipher(header.cipher, key) as cipher:
            material = cipher.decrypt(encrypted, 0)
    try:
        candidate = af.merge(material, header.key_bytes, slot.stripes, header.hash_spec)
    finally:
        wipe(material)
    if _key_matches(header, candidate):
        return candidate
    candidate.close()
    return None


def _seal_slot(header: Header, index: int, volume_key: Secret, passphrase: Secret,
               iterations: int) -> tuple[Keyslot, bytearray]:
    """A new enabled keyslot descriptor and its encrypted material."""
    from lvcrypt.crypto.sector import SectorCipher
    old = header.keyslots[index]
    salt = os.urandom(SALT_SIZE)
    length = _material_length(header, old)
    with af.split(volume_key, af.LUKS_STRIPES, header.hash_spec) as split:
        padded = Secret(length)
        with padded:
            padded.buffer[:len(split)] = split.buffer
            with pbkdf2(header.hash_spec, passphrase.buffer, salt, iterations, header.key_bytes) as key:
                with SectorCipher(header.cipher, key) as cipher:
                    encrypted = cipher.encrypt(padded.buffer, 0)
    return Keyslot(KEY_ENABLED, iterations, salt, old.material_offset, af.LUKS_STRIPES), encrypted


def _slot_iterations(header: Header, pbkdf: PbkdfRequest) -> int:
    if pbkdf.kind != "pbkdf2":
        raise HandlerError(f"LUKS1 keyslots use pbkdf2 only, not {pbkdf.kind}")
    if pbkdf.force_iterations:
        if pbkdf.force_iterations < PBKDF2_MIN_ITERATIONS:
            raise HandlerError(f"LUKS1 needs at least {PBKDF2_MIN_ITERATIONS} PBKDF2 iterations")
        return pbkdf.force_iterations
    return pbkdf2_iterations(header.hash_spec, pbkdf.iter_time_ms, header.key_bytes)


def _disabled_slot(offset: int) -> Keyslot:
    return Keyslot(KEY_DISABLED, 0, bytes(SALT_SIZE), offset, af.LUKS_STRIPES)


class Luks1Handler(KeyHandler):
    name = "luks1"
    has_header = True
    max_keyslots = NUM_KEYSLOTS
    default_pbkdf = "pbkdf2"  # the only PBKDF LUKS1 knows

    def key_hash(self, requested: str | None) -> str | None:
        """The header's hash (PBKDF2, AF and digest); None lets `format` take the PBKDF's."""
        return requested

    def probe(self, area: Area) -> bool:
        return area.size >= 8 and area.read(0, 8) == MAGIC + b"\x00\x01"

    def area_size(self, attrs: KeystoreAttrs, options: FormatOptions) -> int:
        key_bytes = attrs.key_bytes or 64
        sectors = header_sectors(key_bytes)
        if options.data_offset:
            sectors = max(sectors, options.data_offset)
        return sectors * SECTOR

    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
               options: FormatOptions) -> Secret:
        require_passphrase(passphrase)
        cipher = attrs.cipher or "aes-xts-plain64"
        key_bytes = attrs.key_bytes or (64 if CipherSpec.parse(cipher).chain_mode == "xts" else 32)
        hash_name = attrs.key_hash or options.pbkdf.hash or "sha256"
        check_hash(hash_name)
        spec = CipherSpec.parse(cipher)
        spec.check_key_size(key_bytes)
        if options.sector_size != SECTOR:
            raise HandlerError("LUKS1 supports only 512-byte sectors")
        needed = header_sectors(key_bytes)
        if area.size < needed * SECTOR:
            raise HandlerError(f"keystore area of {area.size} bytes is too small for a LUKS1 header "
                               f"({needed * SECTOR} bytes needed)")
        payload = options.data_offset
        if payload is None:
            aligned = _round_up(needed * SECTOR, ALIGN_PAYLOAD) // SECTOR
            payload = aligned if area.size > aligned * SECTOR else 0
        if payload and payload < needed:
            raise HandlerError(f"data offset {payload} would overlap the LUKS1 keyslots ({needed} sectors)")
        volume_key = Secret(options.volume_key.buffer) if options.volume_key else Secret(os.urandom(key_bytes))
        if len(volume_key) != key_bytes:
            volume_key.close()
            raise HandlerError(f"volume key has {len(volume_key) * 8} bits, expected {key_bytes * 8}")
        digest_iterations = (PBKDF2_MIN_ITERATIONS if options.pbkdf.force_iterations else
                             pbkdf2_iterations(hash_name, DIGEST_ITER_TIME_MS, key_bytes))
        base = _round_up(HEADER_SIZE, ALIGN_KEYSLOTS) // SECTOR
        slots = tuple(_disabled_slot(base + i * slot_sectors(key_bytes)) for i in range(NUM_KEYSLOTS))
        mode = cipher.split("-", 1)[1]
        header = Header(cipher.split("-", 1)[0], mode, hash_name, payload, key_bytes, b"",
                        os.urandom(SALT_SIZE), digest_iterations, options.uuid or str(uuidlib.uuid4()), slots)
        header = replace(header, mk_digest=_digest(header, volume_key))
        index = options.keyslot or 0
        self._check_index(index)
        pbkdf = replace(options.pbkdf, hash=hash_name, kind="pbkdf2")
        try:
            slot, material = _seal_slot(header, index, volume_key, passphrase, _slot_iterations(header, pbkdf))
        except BaseException:
            volume_key.close()
            raise
        header = header.with_slot(index, slot)
        area.write(0, bytes(needed * SECTOR))
        area.write(slot.material_offset * SECTOR, material)
        area.write(0, header.to_bytes())
        attrs.cipher, attrs.key_size = header.cipher, key_bytes * 8
        return volume_key

    def unlock_keyslot(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
                       keyslot: int | None = None) -> tuple[int, Secret]:
        header = read_header(area)
        for index in self._candidate_slots(header, keyslot):
            key = _open_slot(area, header, header.keyslots[index], passphrase)
            if key is not None:
                return index, key
        raise WrongPassphrase("no key available with this passphrase")

    def _candidate_slots(self, header: Header, keyslot: int | None) -> list[int]:
        if keyslot is None:
            return [i for i, s in enumerate(header.keyslots) if s.enabled]
        self._check_index(keyslot)
        if not header.keyslots[keyslot].enabled:
            raise HandlerError(f"keyslot {keyslot} is not active")
        return [keyslot]

    @staticmethod
    def _check_index(keyslot: int) -> None:
        if not 0 <= keyslot < NUM_KEYSLOTS:
            raise HandlerError(f"keyslot {keyslot} is out of range 0..{NUM_KEYSLOTS - 1}")

    def verify_volume_key(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret) -> None:
        if not _key_matches(read_header(area), volume_key):
            raise WrongPassphrase("volume key does not match this keystore")

    def add_keyslot(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret, passphrase: Secret,
                    pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        require_passphrase(passphrase)
        header = read_header(area)
        if not _key_matches(header, volume_key):
            raise WrongPassphrase("volume key does not match this keystore")
        index = self._free_slot(header, keyslot)
        self._write_slot(area, header, index, volume_key, passphrase, pbkdf)
        return index

    def _free_slot(self, header: Header, keyslot: int | None) -> int:
        if keyslot is not None:
            self._check_index(keyslot)
            if header.keyslots[keyslot].enabled:
                raise HandlerError(f"keyslot {keyslot} is already in use")
            return keyslot
        for index, slot in enumerate(header.keyslots):
            if not slot.enabled:
                return index
        raise HandlerError("all 8 LUKS1 keyslots are in use")

    def _write_slot(self, area: Area, header: Header, index: int, volume_key: Secret, passphrase: Secret,
                    pbkdf: PbkdfRequest) -> Header:
        iterations = _slot_iterations(header, replace(pbkdf, kind="pbkdf2", hash=header.hash_spec))
        slot, material = _seal_slot(header, index, volume_key, passphrase, iterations)
        updated = header.with_slot(index, slot)
        area.write(slot.material_offset * SECTOR, material)
        area.write(0, updated.to_bytes())
        return updated

    def remove_keyslot(self, area: Area, attrs: KeystoreAttrs, keyslot: int) -> None:
        header = read_header(area)
        self._check_index(keyslot)
        if not header.keyslots[keyslot].enabled:
            raise HandlerError(f"keyslot {keyslot} is not active")
        self._destroy_slot(area, header, keyslot)

    @staticmethod
    def _destroy_slot(area: Area, header: Header, index: int) -> Header:
        """Disable the slot, then overwrite its material so the old passphrase is useless."""
        old = header.keyslots[index]
        updated = header.with_slot(index, _disabled_slot(old.material_offset))
        area.write(0, updated.to_bytes())
        area.write(old.material_offset * SECTOR, os.urandom(_material_length(header, old)))
        return updated

    def change_keyslot(self, area: Area, attrs: KeystoreAttrs, old: Secret, new: Secret,
                       pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        """Like luksChangeKey: the new passphrase goes to a free slot when there is one
        (the old slot survives a crash until then), else over the old slot."""
        require_passphrase(new)
        index, volume_key = self.unlock_keyslot(area, attrs, old, keyslot)
        with volume_key:
            header = read_header(area)
            target = next((i for i, s in enumerate(header.keyslots) if not s.enabled), index)
            header = self._write_slot(area, header, target, volume_key, new, pbkdf)
            if target != index:
                self._destroy_slot(area, header, index)
        return target

    def list_keyslots(self, area: Area, attrs: KeystoreAttrs) -> list[KeyslotInfo]:
        header = read_header(area)
        return [KeyslotInfo(i, "pbkdf2", s.enabled,
                            {"hash": header.hash_spec, "iterations": s.iterations,
                             "material_offset": s.material_offset, "stripes": s.stripes})
                for i, s in enumerate(header.keyslots)]

    def header_identity(self, area: Area) -> HeaderIdentity:
        """cryptsetup's LUKS_device_sectors: up to the end of the last keyslot's split key (not aligned)."""
        header = read_header(area)
        last = max(header.keyslots, key=lambda slot: slot.material_offset)
        sectors = last.material_offset + -(-header.key_bytes * last.stripes // SECTOR)
        return HeaderIdentity(header.uuid, sectors * SECTOR,
                              f"payload offset {header.payload_offset} sectors, {header.key_bytes}-byte key")

    def header_backup(self, area: Area) -> bytes:
        """As luksHeaderBackup: the bytes between the header and aligned keyslots zeroed (no stale signatures)."""
        data = bytearray(area.read(0, self.header_identity(area).size))
        if read_header(area).keyslots[0].material_offset * SECTOR == ALIGN_KEYSLOTS:
            data[HEADER_SIZE:ALIGN_KEYSLOTS] = bytes(ALIGN_KEYSLOTS - HEADER_SIZE)
        return bytes(data)

    def dump(self, area: Area, attrs: KeystoreAttrs) -> str:
        header = read_header(area)
        lines = ["LUKS header information", "",
                 "Version:       \t1",
                 f"Cipher name:   \t{header.cipher_name}",
                 f"Cipher mode:   \t{header.cipher_mode}",
                 f"Hash spec:     \t{header.hash_spec}",
                 f"Payload offset:\t{header.payload_offset}",
                 f"MK bits:       \t{header.key_bytes * 8}",
                 f"MK digest:     \t{_hex(header.mk_digest)}",
                 f"MK salt:       \t{_hex(header.mk_digest_salt[:16])}",
                 f"               \t{_hex(header.mk_digest_salt[16:])}",
                 f"MK iterations: \t{header.mk_digest_iterations}",
                 f"UUID:          \t{header.uuid}", ""]
        for index, slot in enumerate(header.keyslots):
            if not slot.enabled:
                lines.append(f"Key Slot {index}: DISABLED")
                continue
            lines += [f"Key Slot {index}: ENABLED",
                      f"\tIterations:         \t{slot.iterations}",
                      f"\tSalt:               \t{_hex(slot.salt[:16])}",
                      f"\t                      \t{_hex(slot.salt[16:])}",
                      f"\tKey material offset:\t{slot.material_offset}",
                      f"\tAF stripes:            \t{slot.stripes}"]
        return "\n".join(lines) + "\n"

    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        header = read_header(area)
        if attrs.cipher and attrs.cipher != header.cipher:
            raise FormatError(f"keystore cipher {attrs.cipher} differs from the LUKS1 header's {header.cipher}")
        if attrs.key_size and attrs.key_size != header.key_bytes * 8:
            raise FormatError(f"keystore key_size {attrs.key_size} differs from the LUKS1 header's "
                              f"{header.key_bytes * 8}")

    def data_mapping(self, area: Area, attrs: KeystoreAttrs) -> DataMapping:
        header = read_header(area)
        return DataMapping(header.cipher, header.key_bytes * 8, SECTOR, header.payload_offset, 0)

    def read_attrs(self, area: Area) -> KeystoreAttrs:
        header = read_header(area)
        return KeystoreAttrs("luks1", header.cipher, header.key_bytes * 8, None, {"uuid": header.uuid})


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)
