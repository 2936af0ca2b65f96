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
from lvcrypt.errors import FormatError, HandlerError, LvcryptError, UsageError
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


def _open_head(vg: VolumeGroup, area: Area, extents: int, device_of: DeviceOf) -> FileArea:
    return FileArea(device_of(area.pv), _area_start(vg, area), extents * vg.extent_bytes, writable=False)


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
    first = _linear_area(vg, lv.segments[0])
    if first is None:
        raise ConvertRefused(f"{where}: the first segment is not linear; a LUKS header must lie on one PV")
    head = _open_head(vg, first, lv.segments[0].extent_count, device_of)
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


def _check_keystore_view(vg: VolumeGroup, first: Area, extents: int, found: FoundLuks, device_of: DeviceOf,
                         where: str, lv_bytes: int) -> None:
    """The header read through the future keystore area (only its extents) must say the same."""
    area = _open_head(vg, first, extents, device_of)
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
    first = _linear_area(vg, lv.segments[0])
    assert first is not None
    head = _open_head(vg, first, lv.segments[0].extent_count, device_of)
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


def import_luks(vg: VolumeGroup, lv: LogicalVolume, found: FoundLuks, keystore: str | None = None) -> LogicalVolume:
    """Rewrite `lv` in the model as keystore + crypt segments over the same extents; returns the keystore LV."""
    name = _keystore_name(vg, keystore)
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
