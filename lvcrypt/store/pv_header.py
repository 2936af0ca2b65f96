"""lvm2's PV header (`struct pv_header` and `struct pv_header_extension`), inside the label sector.

Two zero-terminated lists of (offset, size) byte ranges follow the PV uuid and
device size: data areas (one, whose size 0 means "to the end") and metadata
areas.  Version 2 of the extension adds flags (PV_EXT_USED: the PV belongs to
a VG) and a list of bootloader areas.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from lvcrypt.errors import FormatError

ID_LEN = 32
# pv_uuid (32 characters, no dashes), device_size in bytes
PV_HEADER = struct.Struct("<32sQ")
PV_HEADER_FIELDS = ("uuid", "device_size")
# offset, size (bytes) of one area; (0, 0) ends a list
DISK_LOCN = struct.Struct("<QQ")
DISK_LOCN_FIELDS = ("offset", "size")
# version, flags
PV_HEADER_EXTENSION = struct.Struct("<II")
PV_HEADER_EXTENSION_FIELDS = ("version", "flags")
EXTENSION_VERSION = 2
PV_EXT_USED = 0x1
_UUID_CHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#")


@dataclass(frozen=True)
class DiskLocn:
    offset: int
    size: int


@dataclass
class PvHeader:
    uuid: str  # dashed form, as in metadata text
    device_size: int
    data_areas: list[DiskLocn]
    metadata_areas: list[DiskLocn]
    ext_version: int = EXTENSION_VERSION
    ext_flags: int = 0
    bootloader_areas: list[DiskLocn] = field(default_factory=list)

    @property
    def pe_start(self) -> int:
        """Byte offset of the first extent (the first data area)."""
        return self.data_areas[0].offset if self.data_areas else 0

    @property
    def in_use(self) -> bool:
        return bool(self.ext_flags & PV_EXT_USED)

    @classmethod
    def parse(cls, data: bytes) -> "PvHeader":
        """The PV header from the label contents (the rest of the label sector)."""
        if len(data) < PV_HEADER.size:
            raise FormatError("PV header is truncated")
        raw_uuid, device_size = PV_HEADER.unpack_from(data)
        if len(raw_uuid) != ID_LEN or not set(raw_uuid) <= _UUID_CHARS:
            raise FormatError("PV header holds an invalid PV uuid")
        position = PV_HEADER.size
        data_areas, position = _locn_list(data, position, "data area")
        metadata_areas, position = _locn_list(data, position, "metadata area")
        version = flags = 0
        boot: list[DiskLocn] = []
        if position + PV_HEADER_EXTENSION.size <= len(data):
            version, flags = PV_HEADER_EXTENSION.unpack_from(data, position)
            if version:
                boot, _ = _locn_list(data, position + PV_HEADER_EXTENSION.size, "bootloader area")
        if not data_areas:
            raise FormatError("PV header lists no data area")
        return cls(format_uuid(raw_uuid.decode()), device_size, data_areas, metadata_areas, version, flags, boot)

    def to_bytes(self) -> bytes:
        out = bytearray(PV_HEADER.pack(self.uuid.replace("-", "").encode(), self.device_size))
        for areas in (self.data_areas, self.metadata_areas):
            for area in areas:
                out += DISK_LOCN.pack(area.offset, area.size)
            out += DISK_LOCN.pack(0, 0)
        out += PV_HEADER_EXTENSION.pack(self.ext_version, self.ext_flags)
        for area in self.bootloader_areas:
            out += DISK_LOCN.pack(area.offset, area.size)
        out += DISK_LOCN.pack(0, 0)
        return bytes(out)


def _locn_list(data: bytes, position: int, what: str) -> tuple[list[DiskLocn], int]:
    areas = []
    while True:
        if position + DISK_LOCN.size > len(data):
            raise FormatError(f"PV header: {what} list runs past the label sector")
        offset, size = DISK_LOCN.unpack_from(data, position)
        position += DISK_LOCN.size
        if not offset and not size:
            return areas, position
        areas.append(DiskLocn(offset, size))


def format_uuid(raw: str) -> str:
    """lvm2's 6-4-4-4-4-4-6 dashed form of a 32-character id."""
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(raw[a:b] for a, b in zip(cuts, cuts[1:]))
