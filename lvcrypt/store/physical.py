"""One PV as found on a device: label, PV header and its metadata areas with their committed text.

Reading never raises for a damaged metadata area: the problem is recorded so
that another copy can be used and the damaged one repaired by the next commit.
A damaged label does raise: without it the device is not a PV.
"""

from __future__ import annotations

import re

from lvcrypt.errors import DeviceError, FormatError, LvcryptError
from lvcrypt.metadata.validate import uuid_valid
from lvcrypt.records import dataclass, field
from lvcrypt.store.disk import Disk
from lvcrypt.store.label import DEFAULT_SECTOR, SCAN_SECTORS, SECTOR, Label, find_label
from lvcrypt.store.mda import MDA_HEADER_SIZE, MdaHeader, RawLocn, text_checksum
from lvcrypt.store.pv_header import DiskLocn, PvHeader

# lvm2's layout defaults: first metadata area at 4 KiB, data at 1 MiB.
MDA0_START = SCAN_SECTORS * SECTOR * 2
DEFAULT_DATA_ALIGNMENT = 1 << 20
DEFAULT_METADATA_SIZE = DEFAULT_DATA_ALIGNMENT - MDA0_START
MDA_SIZE_MIN = 8 * 4096
# How far pvcreate zeroes the start of each new metadata area (lvm2's wipe_size).
MDA_WIPE = 8 * SECTOR
_SUMMARY = re.compile(rb'\A\s*([A-Za-z0-9+_.\-]+)\s*\{\s*id\s*=\s*"([^"]*)"\s*seqno\s*=\s*([0-9]+)')


@dataclass
class MetadataCopy:
    """The committed text of one metadata area, checked against its checksum."""

    text: bytes  # without the trailing NUL
    locn: RawLocn
    vg_name: str
    vg_id: str
    seqno: int


@dataclass
class MetadataArea:
    locn: DiskLocn
    header: MdaHeader | None = None
    copy: MetadataCopy | None = None
    problem: str | None = None
    # A header whose checksum is right but whose text location lies outside the area: commits leave
    # it alone (as lvm2 does) until `vgck --updatemetadata` rewrites it.
    bad_location: bool = False


@dataclass
class PvOnDisk:
    path: str
    label: Label
    header: PvHeader
    mdas: list[MetadataArea] = field(default_factory=list)
    size: int = 0  # bytes the device really has (a truncated image has fewer than its PV header says)

    @property
    def uuid(self) -> str:
        return self.header.uuid

    def newest_copy(self) -> MetadataCopy | None:
        copies = [mda.copy for mda in self.mdas if mda.copy is not None]
        return max(copies, key=lambda c: c.seqno) if copies else None


def read_pv(disk: Disk, with_text: bool = True) -> PvOnDisk | None:
    """The PV on `disk`, None when it has no LVM2 label; FormatError when the label is damaged."""
    if disk.size < SCAN_SECTORS * SECTOR:
        return None
    label = find_label(disk.read_at(0, SCAN_SECTORS * SECTOR))
    if label is None:
        return None
    try:
        header = PvHeader.parse(label.contents)
    except FormatError as error:
        raise FormatError(f"{disk.path}: {error}") from None
    pv = PvOnDisk(disk.path, label, header, size=disk.size)
    for locn in header.metadata_areas:
        pv.mdas.append(_read_mda(disk, locn, with_text))
    return pv


def _read_mda(disk: Disk, locn: DiskLocn, with_text: bool) -> MetadataArea:
    area = MetadataArea(locn)
    try:
        if locn.offset + locn.size > disk.size or locn.size <= MDA_HEADER_SIZE:
            raise FormatError(f"metadata area {locn.offset}+{locn.size} lies outside the device")
        area.header = MdaHeader.parse(disk.read_at(locn.offset, MDA_HEADER_SIZE), locn.offset)
        if area.header.size != locn.size:
            raise FormatError(f"metadata area at byte {locn.offset}: header size {area.header.size} differs "
                              f"from the PV header's {locn.size}")
        slot = area.header.committed
        if not slot.empty and not slot.ignored and not area.header.holds(slot):
            area.bad_location = True
            raise FormatError(f"{disk.path}: metadata area header at byte {locn.offset} points outside its area "
                              f"(text at {slot.offset}+{slot.size} in {area.header.size} bytes); "
                              "repair with vgck --updatemetadata")
        if with_text and not slot.empty and not slot.ignored:
            area.copy = _read_copy(disk, area.header, slot)
    except (FormatError, DeviceError) as error:
        area.problem = str(error)
    return area


def _read_copy(disk: Disk, header: MdaHeader, slot: RawLocn) -> MetadataCopy:
    text = b"".join(disk.read_at(header.start + offset, length) for offset, length in header.text_ranges(slot))
    if text_checksum(text) != slot.checksum:
        raise FormatError(f"metadata text at byte {header.start + slot.offset}: wrong checksum")
    text = text.rstrip(b"\0")
    where = f"metadata text at byte {header.start + slot.offset}"
    match = _SUMMARY.match(text)
    if not match:
        raise FormatError(f"{where}: no volume group found")
    vg_id = match.group(2).decode("ascii", errors="replace")
    if not uuid_valid(vg_id):
        raise FormatError(f"{where}: invalid VG id {vg_id!r}")
    return MetadataCopy(text, slot, match.group(1).decode(), vg_id, int(match.group(3)))


@dataclass(frozen=True)
class PvLayout:
    """Where pvcreate puts things, in bytes."""

    pe_start: int
    mdas: list[DiskLocn]


def plan_layout(device_size: int, metadata_size: int | None, data_alignment: int | None,
                metadata_copies: int = 1) -> PvLayout:
    """lvm2's placement: mda0 at 4 KiB ending on the data alignment, mda1 (if any) at the end."""
    alignment = data_alignment or DEFAULT_DATA_ALIGNMENT
    if alignment % SECTOR:
        raise LvcryptError(f"data alignment {alignment} is not a multiple of {SECTOR} bytes")
    size = DEFAULT_METADATA_SIZE if metadata_size is None else metadata_size
    size += -size % SECTOR
    if metadata_copies not in (0, 1, 2):
        raise LvcryptError("a PV holds 0, 1 or 2 metadata areas")
    mdas: list[DiskLocn] = []
    mda0_size = size + (-(MDA0_START + size) % alignment)
    pe_start = MDA0_START + mda0_size if metadata_copies else alignment
    if metadata_copies:
        if mda0_size < MDA_SIZE_MIN:
            raise LvcryptError(f"metadata area size {mda0_size} is below the minimum of {MDA_SIZE_MIN} bytes")
        mdas.append(DiskLocn(MDA0_START, mda0_size))
    if metadata_copies == 2:
        start = device_size - size
        start -= start % alignment
        mdas.append(DiskLocn(start, device_size - start))
    data_end = mdas[1].offset if metadata_copies == 2 else device_size
    if pe_start >= data_end:
        raise LvcryptError(f"device of {device_size} bytes is too small for data starting at byte {pe_start}")
    return PvLayout(pe_start, mdas)


def data_end(pv: PvOnDisk) -> int:
    """Byte where extents must stop: the device end or the start of a metadata area placed after the data."""
    ends = [mda.locn.offset for mda in pv.mdas if mda.locn.offset >= pv.header.pe_start]
    return min(ends + [pv.header.device_size])


def write_new_pv(disk: Disk, uuid: str, layout: PvLayout) -> PvOnDisk:
    """Label, PV header and empty metadata areas on a device (the writes of pvcreate)."""
    header = PvHeader(uuid, disk.size, [DiskLocn(layout.pe_start, 0)], list(layout.mdas))
    label = Label(DEFAULT_SECTOR, 32, header.to_bytes())
    disk.write_at(0, bytes(SCAN_SECTORS * SECTOR))
    for locn in layout.mdas:
        disk.write_at(locn.offset, bytes(min(MDA_WIPE, locn.size)))
        disk.write_at(locn.offset, MdaHeader(locn.offset, locn.size).to_bytes())
    disk.write_at(DEFAULT_SECTOR * SECTOR, label.to_bytes())
    disk.flush()
    return PvOnDisk(disk.path, label, header, [MetadataArea(locn, MdaHeader(locn.offset, locn.size))
                                               for locn in layout.mdas])


def write_label(disk: Disk, pv: PvOnDisk) -> None:
    """Rewrite the label sector (after a change of the PV header's flags)."""
    label = Label(pv.label.sector, pv.label.offset, pv.header.to_bytes(), pv.label.type)
    disk.write_at(pv.label.sector * SECTOR, label.to_bytes())
    pv.label = label


def wipe_pv(disk: Disk, pv: PvOnDisk) -> None:
    """pvremove: the label sector and the metadata area headers are zeroed."""
    disk.write_at(0, bytes(SCAN_SECTORS * SECTOR))
    for mda in pv.mdas:
        disk.write_at(mda.locn.offset, bytes(MDA_HEADER_SIZE))
    disk.flush()
