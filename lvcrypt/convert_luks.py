"""Importing a LUKS volume that lives on a plain LV into a crypt LV, and exporting it back.

Both directions change metadata only; no data byte moves.  A LUKS device is
its header followed by the payload at the header's data offset H.  Import
gives the extents holding bytes [0, H) of the LV to a hidden keystore LV
(the LUKS handler, the header stays where cryptsetup wrote it) and the
rest of the LV to crypt segments; the crypt LV's sector 0 is the first
payload sector, so IVs keep LUKS's numbering.  When H is not a multiple of
the extent size, the extent holding the header's end also holds the start of
the payload: the keystore keeps it as its last extent, the first crypt
segment starts in it and skips the header bytes with `data_offset` (the one
overlap metadata validation allows).  Export is the inverse: the header's
extents and the data's extents, in order, as plain segments, so the LV's
bytes are the LUKS device cryptsetup knows.

A LUKS volume on a striped LV (its first segment striped) has its header
spread over the stripes, and a keystore is one run of extents: import copies
the header's extents, in LV order, into a new linear keystore, keeps the whole
striped segment in the crypt LV with `data_offset` at the payload (the header's
rows stay allocated, unused), and after the commit wipes the header's old copy
there, so a keyslot removed later leaves no copy behind.  Export writes the
keystore's header back into those rows and makes the segment plain again: the
LV is the striped LUKS device cryptsetup wrote, with the keyslots of today.

Header parsing stays in the handlers: this module only asks them to probe,
and asks one session per area to validate, check importability, unlock and
report the data mapping.  Any handler that keeps a header in front of its
data can be imported; the handler says what it cannot keep.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

from lvcrypt.crypto.spec import check_data_cipher, check_kernel_cipher
from lvcrypt.alloc import allocate
from lvcrypt.errors import DeviceError, FormatError, HandlerError, LvcryptError, UsageError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import DataMapping, FileArea, KeyHandler, KeystoreAttrs
from lvcrypt.handlers.secret import Secret
from lvcrypt.inuse import in_use_problem
from lvcrypt.keystores import KEYSTORE_PREFIX, KeystoreSessions, keystore_segment, next_keystore_name
from lvcrypt.lvops import new_uuid
from lvcrypt.metadata.model import (
    SECTOR,
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    Segment,
    StripedSegment,
    VolumeGroup,
)
from lvcrypt.metadata.segtypes import handler_of
from lvcrypt.metadata.validate import KEYSTORE_NAME
from lvcrypt.records import dataclass

DeviceOf = Callable[[str], str]
COPY_BYTES = 1 << 20  # a header is copied and wiped a MiB at a time


class ConvertRefused(LvcryptError):
    """The LV cannot be converted as asked; nothing was changed."""


@dataclass(frozen=True)
class FoundLuks:
    """A LUKS header at the start of an LV, as its handler reads it."""

    handler: KeyHandler
    attrs: KeystoreAttrs
    mapping: DataMapping
    warnings: tuple[str, ...]  # e.g. one damaged LUKS2 copy: imported, but keyslot changes need a repair first

    @property
    def payload_offset(self) -> int:
        """Bytes from the LV start to the first payload sector."""
        return self.mapping.data_offset * SECTOR


def _area_start(vg: VolumeGroup, area: Area) -> int:
    return (vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * SECTOR


def _linear_area(vg: VolumeGroup, segment: Segment) -> Area | None:
    entry = handler_of(segment)
    areas = entry.data_areas(segment) if entry.plain else None
    if areas is not None and len(areas) == 1:
        return areas[0]
    return None


class StripedArea:
    """The first bytes of a striped segment in LV order (dm-striped's chunk rotation over its
    areas), read and written like a FileArea: a header cryptsetup wrote on a striped LV."""

    def __init__(self, parts: list[FileArea], chunk_bytes: int, size: int):
        self.parts = parts
        self.chunk = chunk_bytes
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _pieces(self, offset: int, length: int) -> list[tuple[FileArea, int, int]]:
        if offset < 0 or length < 0 or offset + length > self._size:
            raise DeviceError(f"striped area: bytes {offset}+{length} outside its {self._size}")
        pieces = []
        while length:
            chunk, within = divmod(offset, self.chunk)
            row, stripe = divmod(chunk, len(self.parts))
            count = min(length, self.chunk - within)
            pieces.append((self.parts[stripe], row * self.chunk + within, count))
            offset, length = offset + count, length - count
        return pieces

    def read(self, offset: int, length: int) -> bytes:
        return b"".join(part.read(at, count) for part, at, count in self._pieces(offset, length))

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for part, at, count in self._pieces(offset, len(view)):
            part.write(at, view[:count])
            view = view[count:]

    def close(self) -> None:
        for part in self.parts:
            part.close()


def _striped(segment: Segment) -> tuple[list[Area], int] | None:
    """A plain (or crypt) segment's stripes and chunk size in sectors, when it has several."""
    entry = handler_of(segment)
    areas = entry.data_areas(segment)
    size = entry.stripe_size(segment)
    return (areas, size) if areas is not None and len(areas) > 1 and size else None


def _open_lv_start(vg: VolumeGroup, segment: Segment, extents: int, device_of: DeviceOf, where: str,
                   writable: bool = False) -> FileArea | StripedArea:
    """The first `extents` extents of an LV whose first segment is `segment`, linear or striped."""
    area = _linear_area(vg, segment)
    if area is not None:
        return FileArea(device_of(area.pv), _area_start(vg, area), extents * vg.extent_bytes, writable=writable)
    striped = _striped(segment)
    if striped is None:
        raise ConvertRefused(f"{where}: the first segment is neither linear nor striped; a LUKS header must lie "
                             "on plain extents")
    areas, chunk = striped
    per_area = segment.extent_count // len(areas) * vg.extent_bytes
    parts: list[FileArea] = []
    try:
        for stripe in areas:
            parts.append(FileArea(device_of(stripe.pv), _area_start(vg, stripe), per_area, writable=writable))
    except BaseException:
        for part in parts:
            part.close()
        raise
    return StripedArea(parts, chunk * SECTOR, extents * vg.extent_bytes)


def _detect(head: FileArea, where: str) -> KeyHandler:
    """The handler whose header starts the LV (a LUKS2 volume whose primary copy is gone by its secondary)."""
    try:
        handler = registry.get(registry.detect(head))
    except (FormatError, HandlerError):
        handler = None
    if handler is None or not handler.has_header:
        raise ConvertRefused(f"{where}: no LUKS header at the start of the LV")
    return handler


def inspect(vg: VolumeGroup, lv: LogicalVolume, device_of: DeviceOf, handler_name: str | None = None) -> FoundLuks:
    """The LUKS header at the start of `lv`, checked the way the keystore will later read it."""
    where = f"{vg.name}/{lv.name}"
    first = lv.segments[0]
    head = _open_lv_start(vg, first, first.extent_count, device_of, where)
    try:
        handler = _detect(head, where)
        name = handler.name
        if handler_name and handler_name != name:
            raise ConvertRefused(f"{where}: holds a {name.upper()} header, not {handler_name.upper()}")
        try:
            session = handler.open(head, KeystoreAttrs(name))  # the header's own attributes once it is importable
            problem = session.import_problem()
            if problem:
                raise ConvertRefused(f"{where}: {problem}")
            attrs = session.attrs = session.read_attrs()
            session.validate()
            mapping = session.data_mapping()
        except FormatError as error:
            raise ConvertRefused(f"{where}: damaged {name.upper()} header: {error}") from None
        try:
            check_kernel_cipher(mapping.cipher, mapping.key_size)
        except HandlerError as error:
            raise ConvertRefused(f"{where}: {error}; dm-crypt could not activate the imported LV") from None
        warnings: list[str] = []
        try:
            check_data_cipher(mapping.cipher, mapping.key_size)  # the check lvcreate --encrypt makes
        except HandlerError as error:  # an existing volume is kept: the kernel computes what lvcrypt cannot
            warnings.append(f"{error}; only kernel activation (lvchange -ay) can read or write the imported LV")
        repair = session.repair_problem()
        if repair:
            warnings.append(f"{repair}; repair it before changing keyslots")
        if mapping.iv_offset:
            warnings.append(f"the {name.upper()} header's iv_tweak {mapping.iv_offset} is ignored, as cryptsetup "
                            "2.6 ignores it when it opens the volume")
    finally:
        head.close()
    found = FoundLuks(handler, attrs, mapping, tuple(warnings))
    lv_bytes = lv.extent_count * vg.extent_bytes
    if found.payload_offset == 0:
        raise ConvertRefused(f"{where}: the LUKS header is detached (payload offset 0): no payload in the LV")
    if found.payload_offset >= lv_bytes:
        raise ConvertRefused(f"{where}: the LUKS payload starts at byte {found.payload_offset}, beyond the LV's "
                             f"{lv_bytes} bytes (a detached header?)")
    header_extents = -(-found.payload_offset // vg.extent_bytes)
    if header_extents > lv.segments[0].extent_count:
        raise ConvertRefused(f"{where}: the LUKS header ({found.payload_offset} bytes) spans several LV segments; "
                             "a keystore needs it in one")
    _check_keystore_view(vg, first, header_extents, found, device_of, where, lv_bytes)
    return found


def _check_keystore_view(vg: VolumeGroup, first: Segment, extents: int, found: FoundLuks, device_of: DeviceOf,
                         where: str, lv_bytes: int) -> None:
    """The header read through the future keystore area (only its extents) must say the same."""
    area = _open_lv_start(vg, first, extents, device_of, where)
    try:
        session = found.handler.open(area, found.attrs)
        session.validate()
        if session.data_mapping() != found.mapping:
            raise ConvertRefused(f"{where}: the LUKS header reads differently from its own extents")
        problem = session.import_problem(lv_bytes - found.payload_offset)
        if problem:
            raise ConvertRefused(f"{where}: {problem}")
    except FormatError as error:
        raise ConvertRefused(f"{where}: damaged LUKS header: {error}") from None
    finally:
        area.close()


def verify_passphrase(vg: VolumeGroup, lv: LogicalVolume, found: FoundLuks, device_of: DeviceOf,
                      passphrase: Secret) -> int:
    """Unlock once (WrongPassphrase otherwise); returns the keyslot that opened."""
    first = lv.segments[0]
    head = _open_lv_start(vg, first, first.extent_count, device_of, f"{vg.name}/{lv.name}")
    try:
        slot, key = found.handler.open(head, found.attrs).unlock_keyslot(passphrase)
        key.close()
        return slot
    finally:
        head.close()


def _keystore_name(vg: VolumeGroup, wanted: str | None) -> str:
    if wanted is None:
        return next_keystore_name(vg)
    if not KEYSTORE_NAME.match(wanted):
        raise UsageError(f"keystore name '{wanted}' must be {KEYSTORE_PREFIX}N")
    if wanted in vg.lvs:
        raise ConvertRefused(f"keystore name {vg.name}/{wanted} is already taken")
    return wanted


def _crypt_from(segment: Segment, start: int, keystore: str) -> Segment:
    entry = handler_of(segment)
    if not entry.plain:
        raise ConvertRefused(f"segment type '{segment.type}' cannot become encrypted")
    return entry.encrypted(segment, start, keystore)


def refuse_unless_importable(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str = "/sys") -> None:
    where = f"{vg.name}/{lv.name}"
    if lv.is_crypt:
        raise ConvertRefused(f"{where} is already a crypt LV")
    if lv.is_keystore or not lv.visible:
        raise ConvertRefused(f"{where} is a hidden LV; only visible plain LVs can be imported")
    kinds = sorted({segment.type for segment in lv.segments if not handler_of(segment).plain})
    if kinds:
        raise ConvertRefused(f"{where} has {', '.join(kinds)} segments; only linear and striped LVs can be imported")
    problem = in_use_problem(vg, lv, sysfs_root)
    if problem:
        raise ConvertRefused(f"{where} is in use: {problem}")


def import_luks(vg: VolumeGroup, lv: LogicalVolume, found: FoundLuks, device_of: DeviceOf,
                keystore: str | None = None) -> LogicalVolume:
    """Rewrite `lv` in the model as keystore + crypt segments over the same extents (a striped LV:
    its header copied into new keystore extents); returns the keystore LV."""
    name = _keystore_name(vg, keystore)
    if _linear_area(vg, lv.segments[0]) is None:
        return _import_striped(vg, lv, found, device_of, name)
    extent_sectors = vg.extent_size
    offset = found.mapping.data_offset  # sectors
    shared_extent, skip = divmod(offset, extent_sectors)
    header_extents = shared_extent + (1 if skip else 0)
    first, rest = lv.segments[0], lv.segments[1:]
    area = _linear_area(vg, first)
    assert area is not None
    store = KeystoreSegment(0, header_extents, "crypt-keystore", handler=found.attrs.handler,
                            cipher=found.attrs.cipher or None, key_size=found.attrs.key_size or None,
                            key_hash=found.attrs.key_hash, areas=[area])
    segments: list[Segment] = []
    data_extents = first.extent_count - shared_extent
    if data_extents:
        segments.append(CryptSegment(0, data_extents, "crypt", crypto_store=name,
                                     areas=[Area(area.pv, area.extent + shared_extent)], data_offset=skip or None))
    for segment in rest:
        segments.append(_crypt_from(segment, segment.start_extent - shared_extent, name))
    if found.mapping.iv_offset:
        for crypt in segments:
            assert isinstance(crypt, CryptSegment)
            crypt.iv_offset = 0  # cryptsetup's IVs: a single-segment LUKS2 volume opens without its iv_tweak
    keystore_lv = LogicalVolume(name, new_uuid(), ["READ"], [], [], int(time.time()), socket.gethostname(), [store])
    vg.lvs[name] = keystore_lv
    lv.segments = segments
    return keystore_lv


def _keystore_lv(name: str, found: FoundLuks, extents: int, area: Area) -> LogicalVolume:
    store = KeystoreSegment(0, extents, "crypt-keystore", handler=found.attrs.handler,
                            cipher=found.attrs.cipher or None, key_size=found.attrs.key_size or None,
                            key_hash=found.attrs.key_hash, areas=[area])
    return LogicalVolume(name, new_uuid(), ["READ"], [], [], int(time.time()), socket.gethostname(), [store])


def _copy(source: FileArea | StripedArea, target: FileArea | StripedArea, length: int) -> None:
    for offset in range(0, length, COPY_BYTES):
        target.write(offset, source.read(offset, min(COPY_BYTES, length - offset)))


def _import_striped(vg: VolumeGroup, lv: LogicalVolume, found: FoundLuks, device_of: DeviceOf,
                    name: str) -> LogicalVolume:
    """The header's extents copied into a new linear keystore; the crypt LV keeps every extent and
    starts its first (striped) segment at the payload."""
    where = f"{vg.name}/{lv.name}"
    first = lv.segments[0]
    header_extents = -(-found.mapping.data_offset // vg.extent_size)
    try:
        (piece,) = allocate(vg, header_extents, 1, "contiguous")
    except LvcryptError as error:
        raise ConvertRefused(f"{where}: no room for the keystore's {header_extents} contiguous extents, where "
                             f"the striped LV's LUKS header is copied: {error}") from None
    source = _open_lv_start(vg, first, header_extents, device_of, where)
    try:
        target = FileArea(device_of(piece.areas[0].pv), _area_start(vg, piece.areas[0]),
                          header_extents * vg.extent_bytes)
        try:
            _copy(source, target, header_extents * vg.extent_bytes)
        finally:
            target.close()
    finally:
        source.close()
    keystore_lv = _keystore_lv(name, found, header_extents, piece.areas[0])
    crypt = [_crypt_from(segment, segment.start_extent, name) for segment in lv.segments]
    head = crypt[0]
    assert isinstance(head, CryptSegment)
    head.data_offset = found.mapping.data_offset
    if found.mapping.iv_offset:
        for segment in crypt:
            assert isinstance(segment, CryptSegment)
            segment.iv_offset = 0
    vg.lvs[name] = keystore_lv
    lv.segments = crypt
    return keystore_lv


def wipe_old_header(vg: VolumeGroup, lv: LogicalVolume, device_of: DeviceOf) -> None:
    """Zero the header's first copy in an imported striped LV's unused rows (after the commit: the
    keystore is then the header of record, and a keyslot removed from it must leave no copy)."""
    first = lv.segments[0] if lv.segments else None
    if not isinstance(first, CryptSegment) or len(first.areas) < 2 or not first.data_offset:
        return
    length = first.data_offset * SECTOR
    area = _open_lv_start(vg, first, -(-length // vg.extent_bytes), device_of, f"{vg.name}/{lv.name}",
                          writable=True)
    try:
        for offset in range(0, length, COPY_BYTES):
            area.write(offset, bytes(min(COPY_BYTES, length - offset)))
    finally:
        area.close()


def _export_mapping(vg: VolumeGroup, lv: LogicalVolume, device_of: DeviceOf) -> tuple[str, KeystoreSegment,
                                                                                       DataMapping]:
    """The keystore of `lv` and its header's data mapping, refusing what cannot become a LUKS device again."""
    where = f"{vg.name}/{lv.name}"
    if not lv.is_crypt or any(not isinstance(segment, CryptSegment) for segment in lv.segments):
        raise ConvertRefused(f"{where} is not a crypt LV")
    stores = lv.keystores()
    if len(stores) != 1:
        raise ConvertRefused(f"{where} uses {len(stores)} keystores (reencryption in progress?)")
    name = stores[0]
    others = [user.name for user in vg.users_of_keystore(name) if user is not lv]
    if others:
        raise ConvertRefused(f"keystore {vg.name}/{name} is shared with {', '.join(others)}; "
                             "exporting would take their header away")
    segment = keystore_segment(vg, name)
    handler = registry.get(segment.handler)
    if not handler.has_header:
        raise ConvertRefused(f"keystore {vg.name}/{name} uses the {segment.handler} handler, which keeps no "
                             "on-disk header: there is no LUKS device to export")
    if len(segment.areas) != 1 or not segment.extent_count:
        raise ConvertRefused(f"keystore {vg.name}/{name} has no area on disk")
    with KeystoreSessions(vg, device_of) as stores:
        session = stores.session(name)
        session.validate()
        mapping = session.data_mapping()
    if mapping.data_offset == 0:
        raise ConvertRefused(f"keystore {vg.name}/{name} is a detached header (payload offset 0): cryptsetup "
                             "could not find the data behind it")
    if mapping.data_offset > segment.extent_count * vg.extent_size:
        raise ConvertRefused(f"keystore {vg.name}/{name}: its header puts the payload at sector "
                             f"{mapping.data_offset}, beyond the keystore's extents")
    for number, crypt in enumerate(lv.segments, 1):
        assert isinstance(crypt, CryptSegment)
        iv_offset = mapping.iv_offset if crypt.iv_offset is None else crypt.iv_offset
        if iv_offset or crypt.sector_size not in (None, mapping.sector_size):
            raise ConvertRefused(f"{where}: segment{number} has an IV offset or a sector size other than the "
                                 "ones cryptsetup opens the header with; it would decrypt differently")
    return name, segment, mapping


def _plain(start: int, count: int, areas: list[Area], stripe_size: int | None) -> StripedSegment:
    return StripedSegment(start, count, "striped", stripe_count=len(areas),
                          stripe_size=stripe_size if len(areas) > 1 else None, stripes=list(areas))


def export_luks(vg: VolumeGroup, lv: LogicalVolume, device_of: DeviceOf, sysfs_root: str = "/sys") -> str:
    """Rewrite crypt `lv` in the model as a plain LV that starts with its LUKS header; returns the keystore removed."""
    where = f"{vg.name}/{lv.name}"
    problem = in_use_problem(vg, lv, sysfs_root)
    if problem:
        raise ConvertRefused(f"{where} is in use: {problem}")
    name, store, mapping = _export_mapping(vg, lv, device_of)
    header_area = store.areas[0]
    first = lv.segments[0]
    assert isinstance(first, CryptSegment)
    if len(first.areas) > 1 and first.data_offset == mapping.data_offset:
        return _export_striped(vg, lv, name, store, mapping, device_of)
    extent_sectors = vg.extent_size
    header_full, header_tail = divmod(mapping.data_offset, extent_sectors)
    skipped, into = divmod(first.data_offset or 0, extent_sectors)
    if len(first.areas) != 1 and first.data_offset:
        raise ConvertRefused(f"{where}: a striped first segment with a data offset has no plain equivalent")
    data_start = Area(first.areas[0].pv, first.areas[0].extent + skipped)
    shares = header_tail != 0
    if into != header_tail or (shares and data_start != Area(header_area.pv, header_area.extent + header_full)):
        raise ConvertRefused(f"{where}: the header's payload offset ({mapping.data_offset} sectors) and the data's "
                             "position in its extent differ; a plain LV cannot express this layout")
    segments: list[Segment] = []
    if header_full:
        segments.append(_plain(0, header_full, [header_area], None))
    first_count = first.extent_count - skipped
    if len(first.areas) == 1:
        contiguous = segments and data_start == Area(header_area.pv, header_area.extent + header_full)
        if contiguous:
            segments[0].extent_count += first_count
        else:
            segments.append(_plain(header_full, first_count, [data_start], None))
    else:
        segments.append(_plain(header_full, first.extent_count, first.areas, first.stripe_size))
    position = sum(segment.extent_count for segment in segments)
    for crypt in lv.segments[1:]:
        assert isinstance(crypt, CryptSegment)
        segments.append(_plain(position, crypt.extent_count, crypt.areas, crypt.stripe_size))
        position += crypt.extent_count
    lv.segments = segments
    del vg.lvs[name]
    return name


def _export_striped(vg: VolumeGroup, lv: LogicalVolume, name: str, store: KeystoreSegment, mapping: DataMapping,
                    device_of: DeviceOf) -> str:
    """The keystore's header written back into the striped rows before the payload; then every
    segment plain again and the keystore gone."""
    length = mapping.data_offset * SECTOR
    first = lv.segments[0]
    source = FileArea(device_of(store.areas[0].pv), _area_start(vg, store.areas[0]), store.extent_count * vg.extent_bytes,
                      writable=False)
    try:
        target = _open_lv_start(vg, first, -(-length // vg.extent_bytes), device_of, f"{vg.name}/{lv.name}",
                                writable=True)
        try:
            _copy(source, target, length)
        finally:
            target.close()
    finally:
        source.close()
    segments: list[Segment] = []
    for crypt in lv.segments:
        assert isinstance(crypt, CryptSegment)
        segments.append(_plain(crypt.start_extent, crypt.extent_count, crypt.areas, crypt.stripe_size))
    lv.segments = segments
    del vg.lvs[name]
    return name
