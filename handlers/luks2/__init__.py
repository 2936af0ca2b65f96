"""The `luks2` key handler: LUKS2 headers byte-compatible with cryptsetup 2.6.

A keystore area holds what `cryptsetup luksFormat --type luks2` writes: two
metadata copies (binary header + JSON), then the keyslots area, and possibly
the data after it (an image file or an imported volume).  Modules:
`header` (binary header and checksum), `json_area` (the JSON object as
dataclasses, validation), `disk` (choosing and writing the copies),
`keyslots`, `digests`, `tokens` and `dump`.
"""

from __future__ import annotations

from typing import ClassVar

from lvcrypt.crypto import CipherSpec
from lvcrypt.errors import FormatError, HandlerError, WrongPassphrase
from lvcrypt.handlers.base import (SECTOR, Area, DataMapping, FormatOptions, KeyHandler, KeyringToken, KeyslotInfo,
                                   HeaderIdentity, KeystoreAttrs, KeystoreSession, TokenInfo)
from lvcrypt.handlers.kdf import PbkdfRequest, check_hash, check_kind
from lvcrypt.handlers.secret import Secret, require_passphrase

from lvcrypt.handlers.luks2 import digests, disk, json_area, keyslots, tokens
from lvcrypt.handlers.luks2.header import (BINARY_SIZE, DEFAULT_METADATA_SIZE, METADATA_SIZES, PRIMARY_MAGIC,
                                          PREFIX, SECONDARY_MAGIC, BinaryHeader, new_salt)
from lvcrypt.handlers.luks2.json_area import (KEYSLOTS_ALIGN, MAX_KEYSLOTS, MAX_KEYSLOTS_SIZE, Config, Digest,
                                              Metadata, Segment)
from lvcrypt.records import dataclass, replace

__all__ = ["Luks2Handler", "Luks2Session", "KeyringToken", "Layout"]

DEFAULT_CIPHER = "aes-xts-plain64"
DEFAULT_KEY_SIZE = 512
DEFAULT_DATA_OFFSET = 16 * 1024 * 1024  # cryptsetup's default LUKS2 data offset
_WIPE_CHUNK = 1024 * 1024
_SECTOR_SIZES = (512, 1024, 2048, 4096)


@dataclass(frozen=True)
class Layout:
    """Sizes of a new header in bytes: each metadata copy, the keyslots area, and where data starts."""

    metadata_size: int
    keyslots_size: int
    data_offset: int

    @property
    def keyslots_end(self) -> int:
        return 2 * self.metadata_size + self.keyslots_size

    @classmethod
    def choose(cls, options: FormatOptions) -> "Layout":
        """cryptsetup's rules: keyslots fill the space up to the data offset (16 MiB by default), at most 128 MiB."""
        metadata_size = int(options.extra.get("metadata_size", DEFAULT_METADATA_SIZE))
        if metadata_size not in METADATA_SIZES:
            raise HandlerError(f"LUKS2 metadata size must be one of {', '.join(map(str, METADATA_SIZES))}")
        data_offset = DEFAULT_DATA_OFFSET if options.data_offset is None else options.data_offset * SECTOR
        if "keyslots_size" in options.extra:
            keyslots_size = int(options.extra["keyslots_size"])
        elif options.header_size is not None:
            keyslots_size = options.header_size - 2 * metadata_size
        else:
            keyslots_size = min((data_offset or DEFAULT_DATA_OFFSET) - 2 * metadata_size, MAX_KEYSLOTS_SIZE)
            keyslots_size -= keyslots_size % KEYSLOTS_ALIGN
        if keyslots_size <= 0 or keyslots_size % KEYSLOTS_ALIGN or keyslots_size > MAX_KEYSLOTS_SIZE:
            raise HandlerError(f"LUKS2 keyslots area size {keyslots_size} must be a positive multiple of 4096 "
                               f"up to {MAX_KEYSLOTS_SIZE}")
        layout = cls(metadata_size, keyslots_size, data_offset)
        if options.data_offset is None and data_offset < layout.keyslots_end:
            mib = 1024 * 1024
            layout = cls(metadata_size, keyslots_size, -(-layout.keyslots_end // mib) * mib)
        if layout.data_offset and layout.data_offset < layout.keyslots_end:
            raise HandlerError(f"data offset {layout.data_offset} lies inside the LUKS2 keyslots area "
                               f"(ends at {layout.keyslots_end})")
        return layout


def _checked_uuid(text: str | None) -> str:
    """cryptsetup only takes UUIDs in the canonical form (it compares and prints them as such)."""
    import uuid as uuid_module  # with platform: only formatting needs it, not every unlock

    if text is None:
        return str(uuid_module.uuid4())
    try:
        return str(uuid_module.UUID(text))
    except ValueError:
        raise HandlerError(f"invalid UUID {text[:40]!r}") from None


def _random_key(length: int) -> Secret:
    """A new volume key read straight into locked memory (os.urandom would leave an immutable copy)."""
    key = Secret(length)
    with open("/dev/urandom", "rb", buffering=0) as source:
        if source.readinto(key.buffer) != length:
            key.close()
            raise HandlerError("short read from /dev/urandom")
    return key


def _wipe(area: Area, end: int) -> None:
    zeros = bytes(_WIPE_CHUNK)
    for offset in range(0, end, _WIPE_CHUNK):
        area.write(offset, zeros[:min(_WIPE_CHUNK, end - offset)])


def _has_header(area: Area, offset: int, magic: bytes) -> bool:
    if area.size < offset + PREFIX.size:
        return False
    head = PREFIX.unpack_from(area.read(offset, PREFIX.size))
    return head["magic"] == magic and head["version"] == 2


class Luks2Handler(KeyHandler):
    """LUKS2 keystores: 32 keyslots, PBKDF2/Argon2, tokens, two header copies.

    The work happens in `Luks2Session`, which parses the header once; the
    area methods here open a session for one call.
    """

    name: ClassVar[str] = "luks2"
    has_header: ClassVar[bool] = True
    max_keyslots: ClassVar[int] = MAX_KEYSLOTS

    # --- probing and sessions ------------------------------------------------------

    def probe(self, area: Area) -> bool:
        return _has_header(area, 0, PRIMARY_MAGIC)

    def probe_backup(self, area: Area) -> bool:
        """A secondary copy at one of the offsets cryptsetup probes when the primary's magic is gone."""
        return any(_has_header(area, offset, SECONDARY_MAGIC) for offset in METADATA_SIZES)

    def load(self, area: Area) -> disk.Loaded:
        """The parsed header (from the secondary copy if the primary is damaged)."""
        return disk.load(area)

    def open(self, area: Area, attrs: KeystoreAttrs | None = None) -> "Luks2Session":
        return Luks2Session(self, area, attrs, self.load(area))

    def _bare(self, area: Area) -> "Luks2Session":
        """A session for the calls that take no attributes (the header does not need them)."""
        return self.open(area, KeystoreAttrs(self.name))

    # --- the area methods: one session each ----------------------------------------

    def read_attrs(self, area: Area) -> KeystoreAttrs:
        return self.open(area).attrs

    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        self.open(area, attrs).validate()

    def data_mapping(self, area: Area, attrs: KeystoreAttrs) -> DataMapping:
        return self.open(area, attrs).data_mapping()

    def dump(self, area: Area, attrs: KeystoreAttrs) -> str:
        return self.open(area, attrs).dump()

    def list_keyslots(self, area: Area, attrs: KeystoreAttrs) -> list[KeyslotInfo]:
        return self.open(area, attrs).list_keyslots()

    def keyring_tokens(self, area: Area) -> list[KeyringToken]:
        return self._bare(area).keyring_tokens()

    def unlock_keyslot(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
                       keyslot: int | None = None) -> tuple[int, Secret]:
        return self.open(area, attrs).unlock_keyslot(passphrase, keyslot)

    def verify_volume_key(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret) -> None:
        self.open(area, attrs).verify_volume_key(volume_key)

    def add_keyslot(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret, passphrase: Secret,
                    pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        return self.open(area, attrs).add_keyslot(volume_key, passphrase, pbkdf, keyslot)

    def remove_keyslot(self, area: Area, attrs: KeystoreAttrs, keyslot: int) -> None:
        self.open(area, attrs).remove_keyslot(keyslot)

    def change_keyslot(self, area: Area, attrs: KeystoreAttrs, old: Secret, new: Secret,
                       pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        return self.open(area, attrs).change_keyslot(old, new, pbkdf, keyslot)

    def add_keyring_token(self, area: Area, key_description: str, keyslots_: list[int],
                          token: int | None = None) -> int:
        return self._bare(area).add_keyring_token(key_description, keyslots_, token)

    def remove_token(self, area: Area, token: int) -> None:
        self._bare(area).remove_token(token)

    def repair_problem(self, area: Area) -> str | None:
        return self._bare(area).repair_problem()

    def repair(self, area: Area) -> bool:
        return self._bare(area).repair()

    # --- formatting ----------------------------------------------------------------

    def area_size(self, attrs: KeystoreAttrs, options: FormatOptions) -> int:
        return Layout.choose(options).keyslots_end

    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret, options: FormatOptions) -> Secret:
        """A new header as `cryptsetup luksFormat --type luks2` makes it; returns the volume key."""
        require_passphrase(passphrase)
        cipher = attrs.cipher or DEFAULT_CIPHER
        key_bits = attrs.key_size or DEFAULT_KEY_SIZE
        spec = CipherSpec.parse(cipher)
        if key_bits % 8:
            raise HandlerError(f"key size {key_bits} is not a whole number of bytes")
        spec.check_key_size(key_bits // 8)
        if options.sector_size not in _SECTOR_SIZES:
            raise HandlerError(f"sector size {options.sector_size} must be one of 512, 1024, 2048, 4096")
        check_kind(options.pbkdf.kind)
        check_hash(options.pbkdf.hash)
        layout = Layout.choose(options)
        if layout.data_offset % options.sector_size:
            raise HandlerError(f"data offset must be a multiple of the {options.sector_size}-byte sector size")
        if area.size < layout.keyslots_end:
            raise HandlerError(f"keystore area of {area.size} bytes is smaller than the {layout.keyslots_end} "
                               "bytes of LUKS2 header and keyslots")
        slot_number = keyslots.free_slot(Metadata(Config(0, 0)), options.keyslot, MAX_KEYSLOTS)
        volume_uuid = _checked_uuid(options.uuid)
        header = BinaryHeader(hdr_size=layout.metadata_size, seqid=0, label=options.label or "",
                              checksum_alg="sha256", salt=new_salt(), uuid=volume_uuid,
                              subsystem=str(options.extra.get("subsystem", "")), hdr_offset=0)
        header.pack(bytes(header.json_size))  # label/uuid/subsystem lengths checked before anything is written
        metadata = Metadata(Config(layout.metadata_size - BINARY_SIZE, layout.keyslots_size))
        metadata.segments[0] = Segment("crypt", layout.data_offset, None, options.iv_offset, str(spec),
                                       options.sector_size)
        if options.volume_key is not None:
            if len(options.volume_key) * 8 != key_bits:
                raise HandlerError(f"the given volume key has {len(options.volume_key) * 8} bits, not {key_bits}")
            volume_key = Secret(options.volume_key.buffer)
        else:
            volume_key = _random_key(key_bits // 8)
        try:
            metadata.digests[0] = digests.create(volume_key, options.pbkdf.hash, options.pbkdf, [slot_number], [0])
            _wipe(area, layout.keyslots_end)
            metadata.keyslots[slot_number] = keyslots.store_keyslot(
                area, metadata, volume_key, passphrase, options.pbkdf, str(spec), 2 * layout.metadata_size)
            disk.commit(area, disk.Loaded(header, metadata, new_salt(), new_salt()), metadata)
        except BaseException:
            volume_key.close()
            raise
        attrs.cipher, attrs.key_size = str(spec), key_bits
        return volume_key


class Luks2Session(KeystoreSession):
    """A LUKS2 keystore for one command: the header parsed once, kept current across this session's writes.

    A change works on a copy of the metadata and adopts it only once both
    header copies are written, so a refused or failed change leaves the
    session showing what is on disk.  Before unlocking or changing, the
    session compares the seqid in the binary header of the copy it chose
    with the one it parsed (4 KiB, no JSON): another command may have
    changed the keyslots while this one waited for a passphrase with its
    locks dropped, and a change made from a stale header would overwrite
    that command's keyslot.
    """

    handler: Luks2Handler

    def __init__(self, handler: Luks2Handler, area: Area, attrs: KeystoreAttrs | None, loaded: disk.Loaded):
        self.loaded = loaded
        super().__init__(handler, area, self.read_attrs() if attrs is None else attrs)

    # --- reading -------------------------------------------------------------------

    def _segment_digest(self, metadata: Metadata) -> tuple[Segment, Digest]:
        number, segment = metadata.data_segment()
        for digest in metadata.digests.values():
            if number in digest.segments:
                return segment, digest
        raise FormatError(f"LUKS2 segment {number} has no digest")

    def _check_requirements(self, metadata: Metadata) -> None:
        if metadata.config.requirements:
            raise HandlerError(f"LUKS2 header requires {', '.join(metadata.config.requirements)}, "
                               "which this version of lvcrypt does not support")

    def read_attrs(self) -> KeystoreAttrs:
        """The attributes the header records (an image file has no metadata around it)."""
        metadata = self.loaded.metadata
        segment, digest = self._segment_digest(metadata)
        key_bits = self._key_bits(metadata, 0) if digest.keyslots else 0  # 0: unknown once every keyslot is erased
        return KeystoreAttrs("luks2", segment.encryption or "", key_bits)

    def _key_bits(self, metadata: Metadata, fallback: int) -> int:
        _, digest = self._segment_digest(metadata)
        for slot in digest.keyslots:
            return metadata.keyslots[slot].key_size * 8
        if not fallback:
            raise FormatError("LUKS2 header has no keyslot for its data segment: key size unknown")
        return fallback

    def validate(self) -> None:
        attrs, metadata = self.attrs, self.loaded.metadata
        segment, _ = self._segment_digest(metadata)
        if attrs.cipher and segment.encryption != attrs.cipher:
            raise FormatError(f"keystore says cipher {attrs.cipher} but its LUKS2 header says {segment.encryption}")
        if attrs.key_size and metadata.keyslots and self._key_bits(metadata, attrs.key_size) != attrs.key_size:
            raise FormatError(f"keystore says key size {attrs.key_size} but its LUKS2 header disagrees")

    def data_mapping(self) -> DataMapping:
        metadata = self.loaded.metadata
        segment, _ = self._segment_digest(metadata)
        return DataMapping(cipher=segment.encryption or "", key_size=self._key_bits(metadata, self.attrs.key_size),
                           sector_size=segment.sector_size or SECTOR, data_offset=segment.offset // SECTOR,
                           iv_offset=segment.iv_tweak or 0)

    def dump(self) -> str:
        from lvcrypt.handlers.luks2.dump import dump  # only `keystore dump` asks: not imported at every unlock

        return dump(self.loaded)

    def list_keyslots(self) -> list[KeyslotInfo]:
        metadata = self.loaded.metadata
        infos = []
        for number, slot in sorted(metadata.keyslots.items()):
            details: dict[str, str | int] = {"key_size": slot.key_size * 8, "area_offset": slot.area.offset,
                                             "area_size": slot.area.size}
            if slot.area.encryption:
                details["cipher"] = slot.area.encryption
            if slot.kdf is not None:
                details.update({k: v for k, v in (("hash", slot.kdf.hash), ("iterations", slot.kdf.iterations),
                                                  ("time", slot.kdf.time), ("memory", slot.kdf.memory),
                                                  ("cpus", slot.kdf.cpus)) if v is not None})
            details["priority"] = {0: "ignore", 2: "prefer"}.get(1 if slot.priority is None else slot.priority,
                                                                 "normal")
            owner = metadata.digest_of_keyslot(number)
            if owner is not None:
                details["digest"] = owner[0]
            kind = slot.kdf.type if slot.kdf is not None else slot.type
            infos.append(KeyslotInfo(number, kind, True, details))
        return infos

    def keyring_tokens(self) -> list[KeyringToken]:
        """`luks2-keyring` tokens: the kernel-keyring descriptions the core may fetch a passphrase from."""
        return tokens.keyring_tokens(self.loaded.metadata)

    def import_problem(self, size_after_header: int | None = None) -> str | None:
        """LUKS2 states an import cannot keep byte for byte: a reencryption in progress (requirements,
        segments), or a fixed-size segment that does not cover exactly the rest of the LV."""
        metadata = self.loaded.metadata
        if metadata.config.requirements:
            return f"the LUKS2 header requires {', '.join(metadata.config.requirements)} (reencryption in progress?)"
        if len(metadata.segments) != 1:
            return f"the LUKS2 header has {len(metadata.segments)} data segments; finish its reencryption first"
        if size_after_header is None:
            return None
        _, segment = metadata.data_segment()
        if segment.size is not None and segment.size != size_after_header:
            return (f"the LUKS2 data segment has a fixed size of {segment.size} bytes but the LV holds "
                    f"{size_after_header} bytes after the header")
        return None

    def _current(self) -> disk.Loaded:
        """The parsed header, parsed again only when the copy it came from has a new seqid on disk."""
        chosen = self.loaded.header
        try:
            on_disk = BinaryHeader.unpack(self.area.read(chosen.hdr_offset, BINARY_SIZE), chosen.hdr_offset)
            unchanged = on_disk.seqid == chosen.seqid
        except FormatError:
            unchanged = False
        if not unchanged:
            self.loaded = self.handler.load(self.area)
        return self.loaded

    # --- unlocking -----------------------------------------------------------------

    def unlock_keyslot(self, passphrase: Secret, keyslot: int | None = None) -> tuple[int, Secret]:
        area, metadata = self.area, self._current().metadata
        self._check_requirements(metadata)
        _, digest = self._segment_digest(metadata)
        skipped = 0
        for number in keyslots.try_order(metadata, keyslot):
            slot = metadata.keyslots[number]
            if number not in digest.keyslots or slot.type != "luks2":
                if keyslot is not None:
                    raise HandlerError(f"keyslot {number} does not hold the data segment's key "
                                       f"({'unbound' if slot.type == 'luks2' else slot.type} keyslot)")
                continue
            try:
                candidate = keyslots.open_keyslot(area, slot, passphrase)
            except HandlerError:
                if keyslot is not None:
                    raise
                skipped += 1
                continue
            if digests.matches(digest, candidate):
                return number, candidate
            candidate.close()
        note = f" ({skipped} keyslot(s) could not be tried)" if skipped else ""
        where = f"keyslot {keyslot}" if keyslot is not None else "any keyslot"
        raise WrongPassphrase(f"no key available with this passphrase in {where}{note}")

    def verify_volume_key(self, volume_key: Secret) -> None:
        _, digest = self._segment_digest(self.loaded.metadata)
        if not digests.matches(digest, volume_key):
            raise WrongPassphrase("the volume key does not match this LUKS2 header")

    # --- keyslot management --------------------------------------------------------

    def _writable(self) -> disk.Loaded:
        """A copy of the header to change: refused while a copy needs repair or a requirement is unknown."""
        loaded = self._current()
        disk.require_intact(loaded)
        self._check_requirements(loaded.metadata)
        import copy  # only a change copies the header; importing copy searches sys.path (for Jython's PyStringMap)

        return replace(loaded, metadata=copy.deepcopy(loaded.metadata))

    def _commit(self, loaded: disk.Loaded) -> None:
        self.loaded = disk.commit(self.area, loaded, loaded.metadata)

    def add_keyslot(self, volume_key: Secret, passphrase: Secret, pbkdf: PbkdfRequest,
                    keyslot: int | None = None) -> int:
        require_passphrase(passphrase)
        loaded = self._writable()
        metadata = loaded.metadata
        segment, digest = self._segment_digest(metadata)
        if not digests.matches(digest, volume_key):
            raise WrongPassphrase("the volume key does not match this LUKS2 header")
        number = keyslots.free_slot(metadata, keyslot, MAX_KEYSLOTS)
        offset = keyslots.find_gap(metadata, keyslots.area_length(len(volume_key)))
        metadata.keyslots[number] = keyslots.store_keyslot(self.area, metadata, volume_key, passphrase, pbkdf,
                                                           segment.encryption or DEFAULT_CIPHER, offset)
        digest.keyslots.append(number)
        self._commit(loaded)
        return number

    def remove_keyslot(self, keyslot: int) -> None:
        loaded = self._writable()
        metadata = loaded.metadata
        if keyslot not in metadata.keyslots:
            raise HandlerError(f"keyslot {keyslot} is not in use")
        removed = metadata.keyslots.pop(keyslot)
        for digest in metadata.digests.values():
            if keyslot in digest.keyslots:
                digest.keyslots.remove(keyslot)
        tokens.unassign_keyslot(metadata, keyslot)
        json_area.validate(metadata)
        keyslots.wipe_area(self.area, removed)
        self._commit(loaded)

    def change_keyslot(self, old: Secret, new: Secret, pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        """New passphrase for the slot `old` opens, written to a fresh area first so a crash loses nothing."""
        require_passphrase(new)
        loaded = self._writable()
        metadata = loaded.metadata
        number, volume_key = self.unlock_keyslot(old, keyslot)
        with volume_key:
            previous = metadata.keyslots[number]
            length = keyslots.area_length(len(volume_key))
            try:
                offset = keyslots.find_gap(metadata, length)
            except HandlerError:
                offset = previous.area.offset  # no free space: overwrite in place, as cryptsetup does
            segment, _ = self._segment_digest(metadata)
            replacement = keyslots.store_keyslot(self.area, metadata, volume_key, new, pbkdf,
                                                 segment.encryption or DEFAULT_CIPHER, offset, previous.priority)
        metadata.keyslots[number] = replacement
        self._commit(loaded)
        if offset != previous.area.offset:
            keyslots.wipe_area(self.area, previous)
        return number

    # --- tokens and repair ---------------------------------------------------------

    def add_keyring_token(self, key_description: str, keyslots: list[int], token: int | None = None) -> int:
        """Add a `luks2-keyring` token naming a kernel-keyring passphrase for these keyslots."""
        loaded = self._writable()
        number = tokens.add_keyring_token(loaded.metadata, key_description, keyslots, token)
        self._commit(loaded)
        return number

    def remove_token(self, token: int) -> None:
        loaded = self._writable()
        tokens.remove_token(loaded.metadata, token)
        self._commit(loaded)

    def list_tokens(self) -> list[TokenInfo]:
        return tokens.token_infos(self.loaded.metadata)

    def import_token(self, text: str, token: int | None = None, replace: bool = False) -> int:
        loaded = self._writable()
        number = tokens.import_token(loaded.metadata, text, token, replace)
        self._commit(loaded)
        return number

    def export_token(self, token: int) -> str:
        return tokens.export_token(self._current().metadata, token)

    def header_identity(self) -> HeaderIdentity:
        """UUID and layout of the chosen copy; a backup holds both copies and the keyslots area."""
        loaded = self._current()
        config = loaded.metadata.config
        layout = f"{config.metadata_size}-byte metadata copies, {config.keyslots_size}-byte keyslots area"
        default = loaded.metadata.default_segment()
        if default is not None:
            layout += f", data at byte {loaded.metadata.segments[default].offset}"
        return HeaderIdentity(loaded.header.uuid, config.keyslots_end, layout)

    def header_backup(self) -> bytes:
        return self.area.read(0, self.header_identity().size)

    def configure(self, label: str | None = None, subsystem: str | None = None,
                  priority: tuple[int, int] | None = None) -> None:
        """`cryptsetup config`: label and subsystem in both binary headers, a keyslot's priority in the JSON."""
        loaded = self._writable()
        header = replace(loaded.header, label=loaded.header.label if label is None else label,
                         subsystem=loaded.header.subsystem if subsystem is None else subsystem)
        header.pack(bytes(header.json_size))  # label and subsystem lengths checked before anything is written
        if priority is not None:
            slot, value = priority
            if slot not in loaded.metadata.keyslots:
                raise HandlerError(f"keyslot {slot} is not in use")
            loaded.metadata.keyslots[slot].priority = value
        self._commit(replace(loaded, header=header))

    def repair_problem(self) -> str | None:
        return self.loaded.primary_error or self.loaded.secondary_error

    def repair(self) -> bool:
        """Rewrite both copies from the valid one when a copy is damaged or stale; False if nothing to do."""
        if not self.loaded.needs_repair:
            return False
        self._commit(self.loaded)
        return True
