"""lvm2's PV header (`struct pv_header` and `struct pv_header_extension`), inside the label sector.

Two zero-terminated lists of (offset, size) byte ranges follow the PV uuid and
device size: data areas (one, whose size 0 means "to the end") and metadata
areas.  Version 2 of the extension adds flags (PV_EXT_USED: the PV belongs to
a VG) and a list of bootloader areas.
"""

from __future__ import annotations


from lvcrypt.binary_layout import Layout, Record
from lvcrypt.errors import FormatError
from lvcrypt.records import dataclass, field

ID_LEN = 32
# uuid: pv_uuid, 32 characters without dashes; device_size in bytes
PV_HEADER = Layout("<", (("uuid", f"{ID_LEN}s"), ("device_size", "Q")))
PV_HEADER_EXTENSION = Layout("<", (("version", "I"), ("flags", "I")))
EXTENSION_VERSION = 2
PV_EXT_USED = 0x1
_UUID_CHARS = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#")


@dataclass(frozen=True)
class DiskLocn(Record):
    """One area as (offset, size) in bytes; (0, 0) ends a list."""

    LAYOUT = Layout("<", (("offset", "Q"), ("size", "Q")))

    offset: int
    size: int


LIST_END = DiskLocn(0, 0)


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
        fixed = PV_HEADER.unpack_from(data)
        raw_uuid, device_size = fixed["uuid"], fixed["device_size"]
        if len(raw_uuid) != ID_LEN or not set(raw_uuid) <= _UUID_CHARS:
            raise FormatError("PV header holds an invalid PV uuid")
        position = PV_HEADER.size
        data_areas, position = _locn_list(data, position, "data area")
        metadata_areas, position = _locn_list(data, position, "metadata area")
        version = flags = 0
        boot: list[DiskLocn] = []
        if position + PV_HEADER_EXTENSION.size <= len(data):
            extension = PV_HEADER_EXTENSION.unpack_from(data, position)
            version, flags = extension["version"], extension["flags"]
            if version:
                boot, _ = _locn_list(data, position + PV_HEADER_EXTENSION.size, "bootloader area")
        if not data_areas:
            raise FormatError("PV header lists no data area")
        return cls(format_uuid(raw_uuid.decode()), device_size, data_areas, metadata_areas, version, flags, boot)

    def to_bytes(self) -> bytes:
        out = bytearray(PV_HEADER.pack({"uuid": self.uuid.replace("-", "").encode(),
                                        "device_size": self.device_size}))
        for areas in (self.data_areas, self.metadata_areas):
            for area in (*areas, LIST_END):
                out += area.pack()
        out += PV_HEADER_EXTENSION.pack({"version": self.ext_version, "flags": self.ext_flags})
        for area in (*self.bootloader_areas, LIST_END):
            out += area.pack()
        return bytes(out)


def _locn_list(data: bytes, position: int, what: str) -> tuple[list[DiskLocn], int]:
    areas = []
    while True:
        if position + DiskLocn.LAYOUT.size > len(data):
            raise FormatError(f"PV header: {what} list runs past the label sector")
        area = DiskLocn.unpack_from(data, position)
        position += DiskLocn.LAYOUT.size
        if area == LIST_END:
            return areas, position
        areas.append(area)


def format_uuid(raw: str) -> str:
    """lvm2's 6-4-4-4-4-4-6 dashed form of a 32-character id."""
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(raw[a:b] for a, b in zip(cuts, cuts[1:]))
