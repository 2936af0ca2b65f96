"""The `aeskw` key handler: the volume key wrapped with AES key wrap (RFC 3394) under passphrase-derived keys.

A deliberately small third-party handler: everything lvcrypt needs from a
handler, written only against lvcrypt's public handler interface
(`lvcrypt.handlers.base`, `secret`, `kdf`), registered by one entry point.

Area layout (big-endian, 4096 bytes, rest zero):

    offset size field
    0      8    magic             b"LVCRAKW\\x01"
    8      32   cipher            dm-crypt spec of the data, NUL-padded
    40     4    key_size          bits
    44     32   digest_salt
    76     4    digest_iterations PBKDF2-SHA256 iterations of the digest
    80     32   digest            PBKDF2-SHA256(volume key, digest_salt), recognises --volume-key-file keys
    112    4x110 keyslots: active (1), iterations (4), salt (32), wrapped length (1), wrapped key (72)

A keyslot's wrapping key is PBKDF2-SHA256(passphrase, salt, iterations, 32);
AES-KW's own integrity check tells a wrong passphrase, the digest confirms
the unwrapped key.  cryptography's unwrap returns immutable bytes, so one
copy of the key outlives its Secret until garbage collection: acceptable for
a test handler, not for a production one.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from lvcrypt.errors import FormatError, HandlerError, WrongPassphrase
from lvcrypt.handlers.base import Area, DataMapping, FormatOptions, KeyHandler, KeyslotInfo, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest, pbkdf2
from lvcrypt.handlers.secret import Secret, require_passphrase

MAGIC = b"LVCRAKW\x01"
AREA_SIZE = 4096
SLOTS = 4
_HEADER = struct.Struct(">8s32sI32sI32s")
_SLOT = struct.Struct(">BI32sB72s")


@dataclass(frozen=True)
class Slot:
    active: bool
    iterations: int = 0
    salt: bytes = bytes(32)
    wrapped: bytes = b""


@dataclass(frozen=True)
class Header:
    cipher: str
    key_size: int
    digest_salt: bytes
    digest_iterations: int
    digest: bytes
    slots: tuple[Slot, ...]

    def pack(self) -> bytes:
        head = _HEADER.pack(MAGIC, self.cipher.encode(), self.key_size, self.digest_salt, self.digest_iterations,
                            self.digest)
        return head + b"".join(_SLOT.pack(slot.active, slot.iterations, slot.salt, len(slot.wrapped), slot.wrapped)
                               for slot in self.slots)

    def with_slot(self, number: int, slot: Slot) -> "Header":
        slots = list(self.slots)
        slots[number] = slot
        return Header(self.cipher, self.key_size, self.digest_salt, self.digest_iterations, self.digest,
                      tuple(slots))


def _read(area: Area) -> Header:
    if area.size < AREA_SIZE or area.read(0, 8) != MAGIC:
        raise FormatError("not an aeskw keystore")
    raw = area.read(0, _HEADER.size + SLOTS * _SLOT.size)
    _, cipher, key_size, salt, iterations, digest = _HEADER.unpack_from(raw)
    slots = []
    for number in range(SLOTS):
        offset = _HEADER.size + number * _SLOT.size
        active, slot_iterations, slot_salt, length, wrapped = _SLOT.unpack_from(raw, offset)
        if length > len(wrapped):
            raise FormatError(f"aeskw keyslot {number} is damaged")
        slots.append(Slot(bool(active), slot_iterations, slot_salt, wrapped[:length]))
    return Header(cipher.rstrip(b"\0").decode("ascii", "replace"), key_size, salt, iterations, digest, tuple(slots))


def _digest(volume_key: Secret, salt: bytes, iterations: int) -> bytes:
    with pbkdf2("sha256", volume_key.buffer, salt, iterations, 32) as value:
        return bytes(value.buffer)


def _iterations(request: PbkdfRequest, key_bytes: int) -> int:
    if request.kind != "pbkdf2":
        raise HandlerError(f"aeskw keyslots use pbkdf2, not {request.kind}")
    return request.resolve(key_bytes).iterations


def _seal(volume_key: Secret, passphrase: Secret, iterations: int) -> Slot:
    salt = os.urandom(32)
    with pbkdf2("sha256", passphrase.buffer, salt, iterations, 32) as wrapping:
        return Slot(True, iterations, salt, aes_key_wrap(wrapping.buffer, volume_key.buffer))


def _open(slot: Slot, passphrase: Secret) -> Secret | None:
    with pbkdf2("sha256", passphrase.buffer, slot.salt, slot.iterations, 32) as wrapping:
        try:
            return Secret(aes_key_unwrap(wrapping.buffer, slot.wrapped))
        except InvalidUnwrap:
            return None


class AesKwHandler(KeyHandler):
    name = "aeskw"
    has_header = False  # the area holds wrapped keys, not data: nothing to import or export
    max_keyslots = SLOTS
    default_pbkdf = "pbkdf2"

    def probe(self, area: Area) -> bool:
        return area.size >= 8 and area.read(0, 8) == MAGIC

    def area_size(self, attrs: KeystoreAttrs, options: FormatOptions) -> int:
        return AREA_SIZE

    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret, options: FormatOptions) -> Secret:
        require_passphrase(passphrase)
        key_bytes = attrs.key_bytes
        if attrs.key_size % 64 or not 16 <= key_bytes <= 64:
            raise HandlerError("aeskw wraps keys of 128 to 512 bits in steps of 64")
        if area.size < AREA_SIZE:
            raise HandlerError(f"aeskw keystores need {AREA_SIZE} bytes")
        iterations = _iterations(options.pbkdf, key_bytes)
        volume_key = Secret(key_bytes)
        with open("/dev/urandom", "rb", buffering=0) as source:
            source.readinto(volume_key.buffer)
        salt = os.urandom(32)
        empty = tuple(Slot(False) for _ in range(SLOTS))
        header = Header(attrs.cipher, attrs.key_size, salt, iterations, _digest(volume_key, salt, iterations), empty)
        area.write(0, bytes(AREA_SIZE))
        area.write(0, header.with_slot(0, _seal(volume_key, passphrase, iterations)).pack())
        return volume_key

    def unlock_keyslot(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
                       keyslot: int | None = None) -> tuple[int, Secret]:
        header = _read(area)
        for number, slot in enumerate(header.slots):
            if slot.active and keyslot in (None, number):
                key = _open(slot, passphrase)
                if key is not None and hmac.compare_digest(_digest(key, header.digest_salt,
                                                                   header.digest_iterations), header.digest):
                    return number, key
                if key is not None:
                    key.close()
        raise WrongPassphrase("no aeskw keyslot opens with this passphrase")

    def verify_volume_key(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret) -> None:
        header = _read(area)
        if not hmac.compare_digest(_digest(volume_key, header.digest_salt, header.digest_iterations), header.digest):
            raise WrongPassphrase("the volume key does not match this aeskw keystore")

    def add_keyslot(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret, passphrase: Secret,
                    pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        require_passphrase(passphrase)
        self.verify_volume_key(area, attrs, volume_key)
        header = _read(area)
        free = [n for n, slot in enumerate(header.slots) if not slot.active and keyslot in (None, n)]
        if not free:
            raise HandlerError("no free aeskw keyslot" if keyslot is None else f"keyslot {keyslot} is in use")
        slot = _seal(volume_key, passphrase, _iterations(pbkdf, len(volume_key)))
        area.write(0, header.with_slot(free[0], slot).pack())
        return free[0]

    def remove_keyslot(self, area: Area, attrs: KeystoreAttrs, keyslot: int) -> None:
        header = _read(area)
        if not 0 <= keyslot < SLOTS or not header.slots[keyslot].active:
            raise HandlerError(f"keyslot {keyslot} is not in use")
        area.write(0, header.with_slot(keyslot, Slot(False)).pack())

    def change_keyslot(self, area: Area, attrs: KeystoreAttrs, old: Secret, new: Secret,
                       pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        number, volume_key = self.unlock_keyslot(area, attrs, old, keyslot)
        with volume_key:
            added = self.add_keyslot(area, attrs, volume_key, new, pbkdf)
        self.remove_keyslot(area, attrs, number)
        return added

    def list_keyslots(self, area: Area, attrs: KeystoreAttrs) -> list[KeyslotInfo]:
        return [KeyslotInfo(number, "pbkdf2", slot.active, {"hash": "sha256", "iterations": slot.iterations})
                for number, slot in enumerate(_read(area).slots)]

    def dump(self, area: Area, attrs: KeystoreAttrs) -> str:
        header = _read(area)
        lines = ["Handler:       \taeskw", f"Cipher:        \t{header.cipher}",
                 f"Key size:      \t{header.key_size} bits"]
        for number, slot in enumerate(header.slots):
            state = f"AES-KW, PBKDF2-SHA256 {slot.iterations} iterations" if slot.active else "unused"
            lines.append(f"Keyslot {number}:     \t{state}")
        return "\n".join(lines) + "\n"

    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        header = _read(area)
        if (attrs.cipher, attrs.key_size) != (header.cipher, header.key_size):
            raise FormatError(f"keystore says {attrs.cipher}/{attrs.key_size} but its aeskw header says "
                              f"{header.cipher}/{header.key_size}")

    def data_mapping(self, area: Area, attrs: KeystoreAttrs) -> DataMapping:
        header = _read(area)
        return DataMapping(header.cipher, header.key_size)

    def read_attrs(self, area: Area) -> KeystoreAttrs:
        header = _read(area)
        return KeystoreAttrs(self.name, header.cipher, header.key_size)
