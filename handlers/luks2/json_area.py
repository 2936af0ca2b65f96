"""The LUKS2 JSON area: parsed into dataclasses, validated, written back.

The JSON object has five sections (`config`, `keyslots`, `segments`,
`digests`, `tokens`).  Every object keeps the fields this module does not
know in `extra`, in their original order, and objects of unknown types
(a `reencrypt` keyslot, a third-party token) keep all their fields, so
rewriting a header made by a newer cryptsetup loses nothing.

Validation follows cryptsetup's `LUKS2_hdr_validate`
(lib/luks2/luks2_json_metadata.c) so that what lvcrypt accepts cryptsetup
accepts too: numbered object keys, 64-bit sizes and offsets as decimal
strings, references between sections that point at existing objects,
keyslot areas inside the keyslots area without overlaps, segment offsets on
512-byte boundaries, and a JSON text that fits its area.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from lvcrypt.errors import FormatError

from lvcrypt.handlers.luks2.header import BINARY_SIZE, METADATA_SIZES
from lvcrypt.records import dataclass, field

MAX_KEYSLOTS = 32
MAX_TOKENS = 32
MAX_KEYSLOTS_SIZE = 128 * 1024 * 1024  # cryptsetup's LUKS2_MAX_KEYSLOTS_SIZE
KEYSLOTS_ALIGN = 4096
UINT64_LIMIT = (1 << 64) - 1  # json_str_to_uint64 rejects UINT64_MAX itself
UINT32_LIMIT = 1 << 32
SECTIONS = ("keyslots", "tokens", "segments", "digests", "config")

Json = dict[str, Any]


class _Where:
    """Names the object being parsed, so every error says where it is."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, problem: str) -> FormatError:
        return FormatError(f"LUKS2 {self.name}: {problem}")

    def obj(self, value: Json, key: str) -> Json:
        item = value.get(key)
        if not isinstance(item, dict):
            raise self.fail(f"{key} must be an object")
        return item

    def string(self, value: Json, key: str) -> str:
        item = value.get(key)
        if not isinstance(item, str):
            raise self.fail(f"{key} must be a string")
        return item

    def integer(self, value: Json, key: str, limit: int = UINT32_LIMIT) -> int:
        item = value.get(key)
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < limit:
            raise self.fail(f"{key} must be a non-negative integer below {limit}")
        return item

    def ident(self, value: Json, key: str) -> str:
        """An algorithm or cipher name: printable ASCII without spaces, so it is safe in messages."""
        text = self.string(value, key)
        if not text or len(text) > 64 or not text.isascii() or not text.isprintable() or " " in text:
            raise self.fail(f"{key} {text[:24]!r} is not a valid name")
        return text

    def hash(self, value: Json, key: str) -> str:
        """A hash usable for PBKDF2, AF diffusion and digests (fixed-size output)."""
        text = self.ident(value, key)
        try:
            size = hashlib.new(text.lower().replace("-", "_")).digest_size
        except (ValueError, TypeError):
            size = 0
        if not size or text.lower().startswith("shake"):
            raise self.fail(f"unsupported hash {text!r}")
        return text

    def uint64(self, value: Json, key: str) -> int:
        return parse_uint64(self.string(value, key), self, key)

    def blob(self, value: Json, key: str) -> bytes:
        text = self.string(value, key)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{key} is not valid base64") from None

    def numbers(self, value: Json, key: str) -> list[int]:
        """An array of numbered references (`"keyslots": ["0", "3"]`)."""
        items = value.get(key)
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise self.fail(f"{key} must be an array of strings")
        return [parse_number(item, self, key) for item in items]

    def strings(self, value: Json, key: str) -> list[str] | None:
        if key not in value:
            return None
        items = value[key]
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise self.fail(f"{key} must be an array of strings")
        return list(items)


def parse_number(text: str, where: _Where, what: str) -> int:
    """A numbered key or reference: decimal digits only (cryptsetup's `numbered`)."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 20:
        raise where.fail(f"{what} {text[:24]!r} is not a number")
    return int(text)


def parse_uint64(text: str, where: _Where, what: str) -> int:
    value = parse_number(text, where, what)
    if value >= UINT64_LIMIT:
        raise where.fail(f"{what} is out of range")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rest(value: Json, known: tuple[str, ...]) -> Json:
    return {key: item for key, item in value.items() if key not in known}


@dataclass
class _Ordered:
    """A JSON object that remembers the key order it was read with.

    json-c keeps insertion order, so cryptsetup's headers list keys in the
    order they were added (token 3 before token 0, a reencrypt keyslot with
    `area` first); writing them back in that order makes an unchanged header
    byte-identical and keeps diffs of changed ones small.
    """

    order: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def parse(cls, value: Json, where: _Where) -> Any:
        parsed = cls._parse(value, where)
        parsed.order = tuple(value)
        return parsed

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> Any:
        raise NotImplementedError

    def to_json(self) -> Json:
        return _in_order(self._json(), self.order)

    def _json(self) -> Json:
        raise NotImplementedError


def _in_order(value: Json, order: tuple[str, ...]) -> Json:
    ordered = {key: value[key] for key in order if key in value}
    ordered.update(value)
    return ordered


@dataclass
class AfSpec(_Ordered):
    type: str = "luks1"
    stripes: int = 4000
    hash: str = "sha256"
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "stripes", "hash")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "AfSpec":
        spec = cls(where.string(value, "type"), 0, "", _rest(value, cls.KNOWN))
        if spec.type != "luks1":
            raise where.fail(f"unsupported anti-forensic splitter {spec.type!r}")
        spec.stripes = where.integer(value, "stripes")
        spec.hash = where.hash(value, "hash")
        if spec.stripes != 4000:
            raise where.fail(f"anti-forensic stripes must be 4000, not {spec.stripes}")
        return spec

    def _json(self) -> Json:
        return {"type": self.type, "stripes": self.stripes, "hash": self.hash, **self.extra}


@dataclass
class AreaSpec(_Ordered):
    """Where a keyslot's encrypted material lives, relative to the header start."""

    type: str
    offset: int
    size: int
    encryption: str | None = None
    key_size: int | None = None
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "offset", "size", "encryption", "key_size")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "AreaSpec":
        area = cls(where.string(value, "type"), where.uint64(value, "offset"), where.uint64(value, "size"),
                   extra=_rest(value, cls.KNOWN))
        if area.type == "raw":
            area.encryption = where.ident(value, "encryption")
            area.key_size = where.integer(value, "key_size")
            if not 0 < area.key_size <= 512:
                raise where.fail(f"invalid area key_size {area.key_size}")
        else:
            area.extra = _rest(value, ("type", "offset", "size"))
        return area

    def _json(self) -> Json:
        value: Json = {"type": self.type, "offset": str(self.offset), "size": str(self.size)}
        if self.encryption is not None:
            value["encryption"] = self.encryption
        if self.key_size is not None:
            value["key_size"] = self.key_size
        value.update(self.extra)
        return value


@dataclass
class KdfSpec(_Ordered):
    """A keyslot's PBKDF: PBKDF2 (`hash`, `iterations`) or Argon2 (`time`, `memory`, `cpus`)."""

    type: str
    salt: bytes
    hash: str | None = None
    iterations: int | None = None
    time: int | None = None
    memory: int | None = None
    cpus: int | None = None
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "hash", "iterations", "time", "memory", "cpus", "salt")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "KdfSpec":
        kind = where.string(value, "type")
        kdf = cls(kind, where.blob(value, "salt"), extra=_rest(value, cls.KNOWN))
        if kind == "pbkdf2":
            kdf.hash = where.hash(value, "hash")
            kdf.iterations = where.integer(value, "iterations")
            if kdf.iterations < 1:
                raise where.fail("PBKDF2 iterations must be positive")
        elif kind in ("argon2i", "argon2id"):
            kdf.time = where.integer(value, "time")
            kdf.memory = where.integer(value, "memory")
            kdf.cpus = where.integer(value, "cpus")
            if kdf.time < 1 or kdf.cpus < 1 or kdf.memory < 8 * kdf.cpus:
                raise where.fail(f"invalid {kind} parameters")
            if kdf.memory > 4 * 1024 * 1024 or kdf.cpus > 16:
                raise where.fail(f"{kind} asks for more memory or threads than LUKS2 allows")
        else:
            raise where.fail(f"unsupported PBKDF {kind!r}")
        if not kdf.salt:
            raise where.fail("kdf salt is empty")
        return kdf

    def _json(self) -> Json:
        value: Json = {"type": self.type}
        if self.type == "pbkdf2":
            value.update(hash=self.hash, iterations=self.iterations)
        else:
            value.update(time=self.time, memory=self.memory, cpus=self.cpus)
        value["salt"] = _b64(self.salt)
        value.update(self.extra)
        return value


@dataclass
class Keyslot(_Ordered):
    """A keyslot; for types other than `luks2` only `type`, `key_size` and `area` are interpreted."""

    type: str
    key_size: int
    area: AreaSpec
    af: AfSpec | None = None
    kdf: KdfSpec | None = None
    priority: int | None = None
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "key_size", "af", "area", "kdf", "priority")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "Keyslot":
        kind = where.string(value, "type")
        slot = cls(kind, where.integer(value, "key_size"), AreaSpec.parse(where.obj(value, "area"), where))
        if kind != "luks2":
            slot.extra = _rest(value, ("type", "key_size", "area"))
            return slot
        slot.extra = _rest(value, cls.KNOWN)
        if slot.area.type != "raw":
            raise where.fail(f"unsupported keyslot area type {slot.area.type!r}")
        slot.af = AfSpec.parse(where.obj(value, "af"), where)
        slot.kdf = KdfSpec.parse(where.obj(value, "kdf"), where)
        if "priority" in value:
            slot.priority = where.integer(value, "priority")
            if slot.priority > 2:
                raise where.fail(f"invalid priority {slot.priority}")
        if not 0 < slot.key_size <= 512:
            raise where.fail(f"invalid key_size {slot.key_size}")
        if slot.area.size < material_size(slot.key_size, slot.af.stripes):
            raise where.fail("area is smaller than the anti-forensic material")
        return slot

    def _json(self) -> Json:
        value: Json = {"type": self.type, "key_size": self.key_size}
        if self.af is not None:
            value["af"] = self.af.to_json()
        value["area"] = self.area.to_json()
        if self.kdf is not None:
            value["kdf"] = self.kdf.to_json()
        if self.priority is not None:
            value["priority"] = self.priority
        value.update(self.extra)
        return value


def material_size(key_size: int, stripes: int) -> int:
    """Bytes of split key material, rounded up to whole 512-byte sectors as cryptsetup stores it."""
    return -(-key_size * stripes // 512) * 512


@dataclass
class Segment(_Ordered):
    """A data segment; `size` None means "dynamic" (to the end of the device)."""

    type: str
    offset: int
    size: int | None
    iv_tweak: int | None = None
    encryption: str | None = None
    sector_size: int | None = None
    flags: list[str] | None = None
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "offset", "size", "iv_tweak", "encryption", "sector_size", "flags")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "Segment":
        kind = where.string(value, "type")
        offset = where.uint64(value, "offset")
        size_text = where.string(value, "size")
        size = None if size_text == "dynamic" else parse_uint64(size_text, where, "size")
        if size == 0:
            raise where.fail("size must not be zero")
        if offset % 512 or (size or 0) % 512:
            raise where.fail("offset and size must be multiples of 512 bytes")
        segment = cls(kind, offset, size, flags=where.strings(value, "flags"))
        if kind != "crypt":
            segment.extra = _rest(value, ("type", "offset", "size", "flags"))
            return segment
        segment.extra = _rest(value, cls.KNOWN)
        segment.iv_tweak = where.uint64(value, "iv_tweak")
        segment.encryption = where.ident(value, "encryption")
        segment.sector_size = where.integer(value, "sector_size")
        if segment.sector_size == 0 or segment.sector_size % 512:
            raise where.fail(f"invalid sector size {segment.sector_size}")
        if (size or 0) % segment.sector_size:
            raise where.fail("size must be a multiple of the sector size")
        if "integrity" in value:
            raise where.fail("segments with integrity protection are not supported")
        return segment

    def _json(self) -> Json:
        value: Json = {"type": self.type, "offset": str(self.offset),
                       "size": "dynamic" if self.size is None else str(self.size)}
        if self.type == "crypt":
            value.update(iv_tweak=str(self.iv_tweak), encryption=self.encryption, sector_size=self.sector_size)
        if self.flags is not None:
            value["flags"] = list(self.flags)
        value.update(self.extra)
        return value


@dataclass
class Digest(_Ordered):
    """A volume-key digest binding keyslots to segments (type `pbkdf2`)."""

    type: str
    keyslots: list[int]
    segments: list[int]
    hash: str | None = None
    iterations: int | None = None
    salt: bytes = b""
    digest: bytes = b""
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "keyslots", "segments", "hash", "iterations", "salt", "digest")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "Digest":
        kind = where.string(value, "type")
        digest = cls(kind, where.numbers(value, "keyslots"), where.numbers(value, "segments"))
        if kind != "pbkdf2":
            digest.extra = _rest(value, ("type", "keyslots", "segments"))
            return digest
        digest.extra = _rest(value, cls.KNOWN)
        digest.hash = where.hash(value, "hash")
        digest.iterations = where.integer(value, "iterations")
        digest.salt = where.blob(value, "salt")
        digest.digest = where.blob(value, "digest")
        if digest.iterations < 1 or not digest.salt or not digest.digest:
            raise where.fail("digest iterations, salt and value must be non-empty")
        return digest

    def _json(self) -> Json:
        value: Json = {"type": self.type, "keyslots": [str(n) for n in self.keyslots],
                       "segments": [str(n) for n in self.segments]}
        if self.type == "pbkdf2":
            value.update(hash=self.hash, iterations=self.iterations, salt=_b64(self.salt),
                         digest=_b64(self.digest))
        value.update(self.extra)
        return value


@dataclass
class Token(_Ordered):
    """A token; `key_description` is the kernel-keyring key of a `luks2-keyring` token."""

    type: str
    keyslots: list[int]
    key_description: str | None = None
    extra: Json = field(default_factory=dict)

    KNOWN = ("type", "keyslots", "key_description")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "Token":
        kind = where.string(value, "type")
        token = cls(kind, where.numbers(value, "keyslots"))
        if kind == "luks2-keyring":
            token.key_description = where.string(value, "key_description")
            token.extra = _rest(value, cls.KNOWN)
        else:
            token.extra = _rest(value, ("type", "keyslots"))
        return token

    def _json(self) -> Json:
        value: Json = {"type": self.type, "keyslots": [str(n) for n in self.keyslots]}
        if self.key_description is not None:
            value["key_description"] = self.key_description
        value.update(self.extra)
        return value


@dataclass
class Config(_Ordered):
    json_size: int
    keyslots_size: int
    flags: list[str] | None = None
    requirements: list[str] | None = None  # config.requirements.mandatory
    extra: Json = field(default_factory=dict)

    KNOWN = ("json_size", "keyslots_size", "flags", "requirements")

    @classmethod
    def _parse(cls, value: Json, where: _Where) -> "Config":
        config = cls(where.uint64(value, "json_size"), where.uint64(value, "keyslots_size"),
                     flags=where.strings(value, "flags"), extra=_rest(value, cls.KNOWN))
        if "requirements" in value:
            requirements = where.obj(value, "requirements")
            config.requirements = where.strings(requirements, "mandatory")
            others = _rest(requirements, ("mandatory",))
            if others:
                config.extra["requirements"] = others  # re-merged by to_json
        if config.json_size + BINARY_SIZE not in METADATA_SIZES:
            raise where.fail(f"unsupported json_size {config.json_size}")
        if config.keyslots_size % KEYSLOTS_ALIGN or config.keyslots_size > MAX_KEYSLOTS_SIZE:
            raise where.fail(f"unsupported keyslots_size {config.keyslots_size}")
        return config

    @property
    def metadata_size(self) -> int:
        return self.json_size + BINARY_SIZE

    @property
    def keyslots_end(self) -> int:
        """First byte after the keyslots area (relative to the header start)."""
        return 2 * self.metadata_size + self.keyslots_size

    def _json(self) -> Json:
        value: Json = {"json_size": str(self.json_size), "keyslots_size": str(self.keyslots_size)}
        if self.flags is not None:
            value["flags"] = list(self.flags)
        extra = dict(self.extra)
        requirements = extra.pop("requirements", {})
        if self.requirements is not None or requirements:
            value["requirements"] = {**({"mandatory": list(self.requirements)}
                                        if self.requirements is not None else {}), **requirements}
        value.update(extra)
        return value


@dataclass
class Metadata:
    """The whole JSON object."""

    config: Config
    keyslots: dict[int, Keyslot] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)
    digests: dict[int, Digest] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    extra: Json = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> Json:
        """Sections and numbered entries in the order read, new entries last (as json-c appends them)."""
        def numbered(items: dict[int, Any]) -> Json:
            return {str(key): item.to_json() for key, item in items.items()}

        return _in_order({"keyslots": numbered(self.keyslots), "tokens": numbered(self.tokens),
                          "segments": numbered(self.segments), "digests": numbered(self.digests),
                          "config": self.config.to_json(), **self.extra}, self.order)

    def digest_of_keyslot(self, slot: int) -> tuple[int, Digest] | None:
        for number, digest in self.digests.items():
            if slot in digest.keyslots:
                return number, digest
        return None

    def default_segment(self) -> int | None:
        """cryptsetup's default segment: the lowest-numbered one that is not a reencryption backup."""
        for number in sorted(self.segments):
            if not any(flag.startswith("backup-") for flag in self.segments[number].flags or ()):
                return number
        return None

    def data_segment(self) -> tuple[int, Segment]:
        """The crypt segment holding data: the default segment, which must be of type crypt."""
        number = self.default_segment()
        if number is None:
            raise FormatError("LUKS2 header has no data segment")
        segment = self.segments[number]
        if segment.type != "crypt":
            raise FormatError(f"LUKS2 data segment {number} is of type {segment.type!r}, not crypt")
        return number, segment


def parse_token(value: Any, number: int) -> Token:
    """One token object on its own (`cryptsetup token import`); references are checked with the header."""
    if not isinstance(value, dict):
        raise FormatError(f"LUKS2 token {number}: not a JSON object")
    return Token.parse(value, _Where(f"token {number}"))


def _section(document: Json, name: str, limit: int | None) -> dict[int, Json]:
    where = _Where(f"{name} section")
    section = document.get(name)
    if not isinstance(section, dict):
        raise FormatError(f"LUKS2 JSON has no {name} section")
    items: dict[int, Json] = {}
    for key, value in section.items():
        number = parse_number(key, where, "key")
        if limit is not None and number >= limit:
            raise where.fail(f"number {number} is beyond the limit of {limit}")
        if not isinstance(value, dict):
            raise where.fail(f"entry {number} is not an object")
        items[number] = value
    return items


def parse(document: Any) -> Metadata:
    """Dataclasses from the decoded JSON object, each object checked on its own."""
    if not isinstance(document, dict):
        raise FormatError("LUKS2 JSON area does not hold an object")
    config = Config.parse(_Where("config").obj(document, "config"), _Where("config"))
    metadata = Metadata(config, extra=_rest(document, SECTIONS), order=tuple(document))
    for number, value in _section(document, "keyslots", MAX_KEYSLOTS).items():
        metadata.keyslots[number] = Keyslot.parse(value, _Where(f"keyslot {number}"))
    for number, value in _section(document, "segments", None).items():
        metadata.segments[number] = Segment.parse(value, _Where(f"segment {number}"))
    for number, value in _section(document, "digests", None).items():
        metadata.digests[number] = Digest.parse(value, _Where(f"digest {number}"))
    for number, value in _section(document, "tokens", MAX_TOKENS).items():
        metadata.tokens[number] = Token.parse(value, _Where(f"token {number}"))
    return metadata


def validate(metadata: Metadata) -> None:
    """The rules that tie sections together (cryptsetup's hdr_validate_* checks)."""
    _validate_references(metadata)
    if not metadata.segments:
        raise FormatError("LUKS2 header has no segments")
    for number, segment in metadata.segments.items():
        if segment.type == "crypt" and not any(number in d.segments for d in metadata.digests.values()):
            raise FormatError(f"LUKS2 segment {number}: no digest refers to it")
    crypt_offsets = [s.offset for s in metadata.segments.values() if s.type == "crypt"]
    first_offset = min(crypt_offsets) if crypt_offsets else 0
    config = metadata.config
    if first_offset and first_offset < config.keyslots_end:
        raise FormatError("LUKS2 keyslots area overlaps the data segment")
    _validate_areas(metadata)
    for number, slot in metadata.keyslots.items():
        owners = [d for d in metadata.digests.values() if number in d.keyslots]
        if len(owners) > 1:
            raise FormatError(f"LUKS2 keyslot {number} belongs to more than one digest")


def _validate_references(metadata: Metadata) -> None:
    for number, token in metadata.tokens.items():
        missing = [n for n in token.keyslots if n not in metadata.keyslots]
        if missing:
            raise FormatError(f"LUKS2 token {number} refers to missing keyslot {missing[0]}")
    for number, digest in metadata.digests.items():
        missing = [n for n in digest.keyslots if n not in metadata.keyslots]
        if missing:
            raise FormatError(f"LUKS2 digest {number} refers to missing keyslot {missing[0]}")
        missing = [n for n in digest.segments if n not in metadata.segments]
        if missing:
            raise FormatError(f"LUKS2 digest {number} refers to missing segment {missing[0]}")


def _validate_areas(metadata: Metadata) -> None:
    config = metadata.config
    spans = sorted((slot.area.offset, slot.area.size, number) for number, slot in metadata.keyslots.items())
    previous_end, previous = 0, -1
    for offset, size, number in spans:
        if offset < 2 * config.metadata_size or size == 0 or offset + size > config.keyslots_end:
            raise FormatError(f"LUKS2 keyslot {number}: area {offset}+{size} is outside the keyslots area")
        if offset < previous_end:
            raise FormatError(f"LUKS2 keyslots {previous} and {number} have overlapping areas")
        previous_end, previous = offset + size, number


def decode(json_area: bytes) -> Metadata:
    """Parse and validate a JSON area as cryptsetup reads it: `{`, JSON text, then only NULs."""
    if not json_area.startswith(b"{"):
        raise FormatError("LUKS2 JSON area does not start with '{'")
    end = json_area.find(b"\0")
    if end < 0:
        raise FormatError("LUKS2 JSON area is not NUL-terminated")
    if any(json_area[end:]):
        raise FormatError("LUKS2 JSON area has data after the JSON text")
    try:
        document = json.loads(json_area[:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("LUKS2 JSON area is not valid JSON") from None
    metadata = parse(document)
    if metadata.config.json_size != len(json_area):
        raise FormatError(f"LUKS2 json_size {metadata.config.json_size} does not match the header's "
                          f"{len(json_area)}")
    validate(metadata)
    return metadata


def encode(metadata: Metadata) -> bytes:
    """The JSON area bytes: compact JSON as cryptsetup writes it, NUL-padded to json_size."""
    text = json.dumps(metadata.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) >= metadata.config.json_size:
        raise FormatError(f"LUKS2 metadata ({len(text)} bytes) does not fit the {metadata.config.json_size}-byte "
                          "JSON area")
    return text.ljust(metadata.config.json_size, b"\0")
