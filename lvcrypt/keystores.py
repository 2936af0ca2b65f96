"""Keystore LVs as the handlers see them: attributes from metadata, the area on its PV.

A keystore LV (`cryptostoreN`) keeps its handler's data in the extents of
its one segment; `open_area` turns those extents into the byte range the
handler may read and write.  Everything here goes through the handler
interface: the core never parses a LUKS header itself.  `KeystoreSessions`
keeps one handler session per keystore for a command, so each header is
parsed once however many questions the command asks.
"""

from __future__ import annotations

from typing import Callable

from lvcrypt.errors import HandlerError, LvcryptError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import Area, DataMapping, FileArea, KeystoreAttrs, KeystoreSession, MemoryArea
from lvcrypt.metadata.model import KeystoreSegment, LogicalVolume, VolumeGroup
from lvcrypt.metadata.segtype_crypt import KEYSTORE

KEYSTORE_PREFIX = "cryptostore"


def keystore_segment(vg: VolumeGroup, name: str) -> KeystoreSegment:
    lv = vg.lvs.get(name)
    if lv is None or not lv.is_keystore:
        raise LvcryptError(f"{vg.name}/{name} is not a keystore")
    if len(lv.segments) != 1:
        raise LvcryptError(f"keystore {vg.name}/{name} has {len(lv.segments)} segments; lvcrypt needs one")
    segment = lv.segments[0]
    assert isinstance(segment, KeystoreSegment)
    return segment


def attrs_of(segment: KeystoreSegment) -> KeystoreAttrs:
    """The handler's view of a keystore segment: the four attributes plus unknown keys kept verbatim."""
    known = {"start_extent", "extent_count", "type", *KEYSTORE.keys}
    extra = {key: value for key, value in segment.raw.items()
             if key not in known and isinstance(value, (str, int)) and not isinstance(value, bool)}
    return KeystoreAttrs(segment.handler, segment.cipher or "", segment.key_size or 0, segment.key_hash, extra)


def open_area(vg: VolumeGroup, name: str, device_of: Callable[[str], str], writable: bool = False) -> Area:
    """The byte range of a keystore's extents; an empty in-memory area for the RFC's zero-extent form."""
    segment = keystore_segment(vg, name)
    if not segment.areas or segment.extent_count == 0:
        return MemoryArea(0)
    area = segment.areas[0]
    pv = vg.pvs[area.pv]
    start = (pv.pe_start + area.extent * vg.extent_size) * 512
    return FileArea(device_of(area.pv), start, segment.extent_count * vg.extent_bytes, writable=writable)


def close_area(area: Area) -> None:
    if isinstance(area, FileArea):
        area.close()


class KeystoreSessions:
    """The keystores of one VG opened for one command: an area and a handler session each, made on first use.

    `with KeystoreSessions(vg, device_of) as stores:` closes every area at the end.
    """

    def __init__(self, vg: VolumeGroup, device_of: Callable[[str], str], writable: bool = False):
        self.vg = vg
        self.device_of = device_of
        self.writable = writable
        self._open: dict[str, KeystoreSession] = {}
        self._mappings: dict[str, DataMapping] = {}

    def session(self, name: str) -> KeystoreSession:
        """The session of keystore `name`, opening its area and parsing its header the first time."""
        session = self._open.get(name)
        if session is None:
            segment = keystore_segment(self.vg, name)
            area = open_area(self.vg, name, self.device_of, writable=self.writable)
            try:
                session = registry.get(segment.handler).open(area, attrs_of(segment))
            except BaseException:
                close_area(area)
                raise
            self._open[name] = session
        return session

    def data_mapping(self, name: str) -> DataMapping:
        """dm-crypt parameters of the data a keystore protects (read from its header where it has one)."""
        if name not in self._mappings:
            self._mappings[name] = self.session(name).data_mapping()
        return self._mappings[name]

    def close(self) -> None:
        for session in self._open.values():
            close_area(session.area)
        self._open.clear()
        self._mappings.clear()

    def __enter__(self) -> "KeystoreSessions":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def data_mapping(vg: VolumeGroup, name: str, device_of: Callable[[str], str]) -> DataMapping:
    """dm-crypt parameters of the data a keystore protects, for a caller that asks nothing else of it."""
    with KeystoreSessions(vg, device_of) as stores:
        return stores.data_mapping(name)


def next_keystore_name(vg: VolumeGroup) -> str:
    number = 0
    while f"{KEYSTORE_PREFIX}{number}" in vg.lvs:
        number += 1
    return f"{KEYSTORE_PREFIX}{number}"


def keystores_used_by(vg: VolumeGroup, lv: LogicalVolume) -> list[str]:
    stores = lv.keystores()
    if not stores:
        raise HandlerError(f"logical volume {vg.name}/{lv.name} is not encrypted")
    return stores
