"""`pvdisplay`, `vgdisplay`, `lvdisplay`, `pvscan`, `vgscan`, `lvscan`: lvm2's display commands, line for line.

Scripts parse these outputs by position and by label, so every line follows
lvm2 2.03.16's lib/display/display.c and tools/*scan.c: labels padded to
lvm2's columns, tabs in the segment maps, the lone " " line closing a block,
sizes in lvm2's long units ("64.00 MiB") with its `<` for values rounded up.
The values themselves come from the report field model (lvcrypt.reportfields),
so a display and `pvs/vgs/lvs` never disagree.

Encrypted LVs show what lvm2 shows for a striped LV of the same extents (a
crypt or keystore segment is a stripe set over its areas), plus one line of
their own after the creation line (`LV Keystore name` or `LV Keystore
handler`), in lvm2's "label value" form.  Lines are returned without lvm2's
two-space log prefix; the CLI adds it.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from lvcrypt.records import dataclass
from lvcrypt.reportfields import LV_FIELDS, PV_FIELDS, VG_FIELDS, LvRow, PvRow, VgRow

if TYPE_CHECKING:
    from lvcrypt.activate.dm_ioctl import DeviceInfo
    from lvcrypt.metadata.lvreport import Area as ReportArea
    from lvcrypt.metadata.model import LogicalVolume, Segment, VolumeGroup
    from lvcrypt.metadata.tree import Section
    from lvcrypt.store.commit import LoadedVg
    from lvcrypt.store.physical import PvOnDisk

# lvm2's status bits as `-c` prints them (lib/metadata/metadata-exported.h).
_VG_BITS = {"EXPORTED": 0x2, "RESIZEABLE": 0x4, "READ": 0x100, "WRITE": 0x200, "CLUSTERED": 0x400,
            "SHARED": 0x800, "PVMOVE": 0x2000}
_PARTIAL_VG = 0x1
_ALLOCATABLE_PV = 0x8
_EXPORTED = 0x2
_READ_AHEAD_AUTO = -1  # DM_READ_AHEAD_AUTO (UINT32_MAX) printed with %d
_ORPHAN_VG = "#orphans_lvm2"  # lvm2's orphan VG name, which pvscan's column width counts

def display_size(size: int, units: str = "r") -> str:
    """lvm2's display_size (dm_size_to_string, short suffixes): `64.00 MiB`, `<1.99 GiB` with units r,
    `4.00 Un` with a custom unit (`--units 3m`); lvcrypt/units.py has lvm2's rules for both."""
    from lvcrypt.units import SHORT, parse_units, size_to_string

    return size_to_string(size, parse_units(units), style=SHORT)


@dataclass(frozen=True)
class DisplayOptions:
    """What the display commands share: lvm2's `--units` (default r, its lvm.conf default)."""

    units: str = "r"


# --- physical volumes -------------------------------------------------------------------------------

def _pv_member(row: PvRow) -> bool:
    return row.vg is not None and row.key is not None


def _pv_exported(row: PvRow) -> bool:
    from lvcrypt.store.access import is_exported

    return row.vg is not None and is_exported(row.vg)


def _pv_counts(row: PvRow) -> tuple[int, int, int]:
    """(extent bytes, PE count, allocated PEs); all zero for a PV in no VG, as lvm2 has them."""
    if not _pv_member(row):
        return 0, 0, 0
    assert row.vg is not None and row.key is not None
    return row.vg.extent_bytes, row.vg.pvs[row.key].pe_count, row.vg.used_extents(row.key)


def _pv_size(row: PvRow) -> int:
    """lvm2's pv->size: the device size the PV records (the label's for a PV in no VG)."""
    return int(PV_FIELDS["dev_size"].get(row))  # type: ignore[call-overload]


def _pe_start(row: PvRow) -> int:
    return int(PV_FIELDS["pe_start"].get(row))  # type: ignore[call-overload]


def _pv_allocatable(row: PvRow) -> bool:
    return _pv_member(row) and row.vg.pvs[row.key].allocatable  # type: ignore[union-attr, index]


def pv_full(row: PvRow, opts: DisplayOptions) -> list[str]:
    """pvdisplay_full."""
    extent, count, used = _pv_counts(row)
    size = _pv_size(row)
    data = count * extent
    pv_size, unusable = (size, size - data) if size > data + _pe_start(row) else \
        (data + _pe_start(row), data + _pe_start(row) - size)
    shown = display_size(pv_size, opts.units)
    free = count - used
    allocatable = "NO"
    if count and _pv_allocatable(row):
        allocatable = "yes " + ("(but full)" if not free else "")
    return [f"--- {'' if extent else 'NEW '}Physical volume ---",
            f"PV Name               {row.path}",
            f"VG Name               {row.vg.name if _pv_member(row) else ''}"  # type: ignore[union-attr]
            f"{' (exported)' if _pv_exported(row) else ''}",
            f"PV Size               {shown} / not usable {display_size(unusable, opts.units)}" if data
            else f"PV Size               {shown}",
            f"Allocatable           {allocatable}",
            f"PE Size               {display_size(extent, opts.units)}",
            f"Total PE              {count}",
            f"Free PE               {free}",
            f"Allocated PE          {used}",
            f"PV UUID               {PV_FIELDS['pv_uuid'].get(row) or 'none'}",
            " "]


def pv_colons(row: PvRow) -> str:
    """pvdisplay_colons: name, VG, size, -1, status, allocatable, -1, PE size (KiB), PEs, free, used, uuid."""
    extent, count, used = _pv_counts(row)
    status = (_ALLOCATABLE_PV if _pv_allocatable(row) else 0) | (_EXPORTED if _pv_exported(row) else 0)
    vg_name = row.vg.name if _pv_member(row) else ""  # type: ignore[union-attr]
    return (f"{row.path}:{vg_name}:{_pv_size(row) // 512}:-1:{status}:{status & _ALLOCATABLE_PV}:-1:"
            f"{extent // 1024}:{count}:{count - used}:{used}:{PV_FIELDS['pv_uuid'].get(row) or 'none'}")


def pv_segments(row: PvRow) -> list[str]:
    """pvdisplay_segments: the PV's extents in order, each run an LV segment's area or FREE."""
    extent, count, _ = _pv_counts(row)
    lines = ["--- Physical Segments ---"] if extent else []
    position = 0
    for start, length, lv, segment in _pv_runs(row):
        if start > position:
            lines += [f"Physical extent {position} to {start - 1}:", "  FREE"]
        lines += [f"Physical extent {start} to {start + length - 1}:",
                  f"  Logical volume\t/dev/{row.vg.name}/{lv.name}",  # type: ignore[union-attr]
                  f"  Logical extents\t{segment.start_extent} to "
                  f"{segment.start_extent + segment.extent_count - 1}"]
        position = max(position, start + length)
    if extent and position < count:
        lines += [f"Physical extent {position} to {count - 1}:", "  FREE"]
    return [*lines, " "]


def _pv_runs(row: PvRow) -> list[tuple[int, int, "LogicalVolume", "Segment"]]:
    """(first extent, length, LV, LV segment) of every area on this PV, in extent order."""
    if not _pv_member(row):
        return []
    assert row.vg is not None
    runs = [(area.extent, length, lv, segment) for lv in row.vg.lvs.values() for segment in lv.segments
            for area, length in segment.pv_areas() if area.pv == row.key and length]
    return sorted(runs, key=lambda run: run[0])


def pv_short(row: PvRow, opts: DisplayOptions) -> str:
    """pvdisplay -s: what is free on a PV of a VG, the whole device for a PV in no VG."""
    extent, count, used = _pv_counts(row)
    size = (count - used) * extent if _pv_member(row) else _pv_size(row)
    return f'Device "{row.path}" has a capacity of {display_size(size, opts.units)}'


def pv_in_vg_short(row: PvRow) -> list[str]:
    """pvdisplay_short, the PV part of `vgdisplay -v`."""
    _, count, used = _pv_counts(row)
    return [f"PV Name               {row.path}     ",
            f"PV UUID               {PV_FIELDS['pv_uuid'].get(row) or 'none'}",
            f"PV Status             {'' if _pv_allocatable(row) else 'NOT '}allocatable",
            f"Total PE / Free PE    {count} / {count - used}",
            " "]


def pvdisplay(rows: list[PvRow], opts: DisplayOptions, colon: bool = False, short: bool = False,
              maps: bool = False, silent: bool = False) -> list[str]:
    """`silent` (-qq) leaves out the line lvm2 logs of a PV in no VG, not the PV's own lines."""
    lines: list[str] = []
    for row in rows:
        if short:
            lines.append(pv_short(row, opts))
            continue
        if _pv_exported(row):
            lines.append(f'Physical volume "{row.path}" of volume group "{row.vg.name}" is exported')  # type: ignore
        if not _pv_member(row) and not silent:
            lines.append(f'"{row.path}" is a new physical volume of "{display_size(_pv_size(row), opts.units)}"')
        if colon:
            lines.append(pv_colons(row))
            continue
        lines += pv_full(row, opts)
        if maps:
            lines += pv_segments(row)
    return lines


def pvscan(rows: list[PvRow], every_pv_path: list[str], vg_names: list[str], opts: DisplayOptions,
           short: bool = False, uuid: bool = False, orphans: bool = False, exported: bool = False) -> list[str]:
    """pvscan's listing and totals; columns are as wide as the longest PV path and VG name lvm2 knows of."""
    pv_width = max([len(path) for path in every_pv_path] + [0]) + 2
    vg_width = max([len(name) for name in vg_names] + [len(_ORPHAN_VG)]) + 2
    lines: list[str] = []
    found = new = 0
    total = new_size = 0
    for row in rows:
        if (exported and not _pv_exported(row)) or (orphans and _pv_member(row)):
            continue
        found += 1
        extent, count, used = _pv_counts(row)
        if _pv_member(row):
            total += count * extent
        else:
            new += 1
            new_size += _pv_size(row)
            total += _pv_size(row)
        if short:
            lines.append(row.path)
            continue
        name, width = row.path, pv_width
        if uuid:
            name = f"{row.path:<{pv_width - 2}} with UUID {PV_FIELDS['pv_uuid'].get(row)}"
            width += 50  # lvm2 adds the room of the uuid text (sizeof(uuid) + 10) to the column
        if not _pv_member(row):
            lines.append(f"PV {name:<{width}}    {' ':<{vg_width}} lvm2 [{display_size(_pv_size(row), opts.units)}]")
        elif _pv_exported(row):
            lines.append(f"PV {name:<{width}}  is in exported VG {row.vg.name} "  # type: ignore[union-attr]
                         f"[{display_size(count * extent, opts.units)} / "
                         f"{display_size((count - used) * extent, opts.units)} free]")
        else:
            lines.append(f"PV {name:<{width}} VG {row.vg.name:<{vg_width}} lvm2 "  # type: ignore[union-attr]
                         f"[{display_size(count * extent, opts.units)} / "
                         f"{display_size((count - used) * extent, opts.units)} free]")
    if not found:
        return [*lines, "No matching physical volumes found"]
    return [*lines, f"Total: {found} [{display_size(total, opts.units)}] / in use: {found - new} "
                    f"[{display_size(total - new_size, opts.units)}] / in no VG: {new} "
                    f"[{display_size(new_size, opts.units)}]"]


# --- volume groups ----------------------------------------------------------------------------------

def _vg_status(row: VgRow) -> int:
    bits = sum(_VG_BITS.get(flag, 0) for flag in set(row.vg.status))
    if "WRITE_LOCKED" in row.vg.status + row.vg.flags:
        bits |= _VG_BITS["WRITE"]
    return bits | (_PARTIAL_VG if row.loaded.missing else 0)


def _vg_access(row: VgRow, colon: bool) -> str:
    from lvcrypt.store.access import is_writable

    readable = "READ" in row.vg.status
    writable = is_writable(row.vg)
    if colon:
        return "r/w" if readable and writable else "r" if readable else "w" if writable else ""
    return "read/write" if readable and writable else "read" if readable else "write" if writable else "error"


def _open_lvs(row: VgRow) -> int:
    """LVs of the VG whose dm device is open (lvs_in_vg_opened)."""
    return sum(1 for lv in row.vg.lvs.values() if (info := _device(row.vg, lv)) is not None and info.open_count)


def _used(row: VgRow) -> int:
    return row.vg.extent_count() - row.vg.free_extents()


def vg_full(row: VgRow, opts: DisplayOptions) -> list[str]:
    """vgdisplay_full."""
    from lvcrypt.store.access import is_exported, lock_type, system_id

    vg = row.vg
    extent = vg.extent_bytes
    lines = ["--- Volume group ---",
             f"VG Name               {vg.name}",
             f"System ID             {system_id(vg) or ''}",
             f"Format                {vg.format}",
             f"Metadata Areas        {VG_FIELDS['vg_mda_count'].get(row)}",
             f"Metadata Sequence No  {vg.seqno}",
             f"VG Access             {_vg_access(row, colon=False)}",
             f"VG Status             {'exported/' if is_exported(vg) else ''}"
             f"{'' if 'RESIZEABLE' in vg.status else 'NOT '}resizable"]
    if lock_type(vg) == "clvm":
        lines += ["Clustered             yes", f"Shared                {'yes' if 'SHARED' in vg.status else 'no'}"]
    lines += [f"MAX LV                {vg.max_lv}",
              f"Cur LV                {row.view.lv_count()}",
              f"Open LV               {_open_lvs(row)}",
              f"Max PV                {vg.max_pv}",
              f"Cur PV                {len(vg.pvs)}",
              f"Act PV                {len(vg.pvs) - len(row.loaded.missing)}",
              f"VG Size               {display_size(vg.extent_count() * extent, opts.units)}",
              f"PE Size               {display_size(extent, opts.units)}",
              f"Total PE              {vg.extent_count()}",
              f"Alloc PE / Size       {_used(row)} / {display_size(_used(row) * extent, opts.units)}",
              f"Free  PE / Size       {vg.free_extents()} / {display_size(vg.free_extents() * extent, opts.units)}",
              f"VG UUID               {vg.id}",
              " "]
    return lines


def vg_colons(row: VgRow) -> str:
    vg = row.vg
    kib = vg.extent_bytes // 1024
    return (f"{vg.name}:{_vg_access(row, colon=True)}:{_vg_status(row)}:-1:{vg.max_lv}:{row.view.lv_count()}:"
            f"{_open_lvs(row)}:-1:{vg.max_pv}:{len(vg.pvs)}:{len(vg.pvs) - len(row.loaded.missing)}:"
            f"{vg.extent_count() * kib}:{kib}:{vg.extent_count()}:{_used(row)}:{vg.free_extents()}:{vg.id or 'none'}")


def vg_short(row: VgRow, opts: DisplayOptions) -> str:
    extent = row.vg.extent_bytes
    return (f'"{row.vg.name}" {display_size(row.vg.extent_count() * extent, opts.units):<9} '
            f"[{display_size(_used(row) * extent, opts.units):<9} used / "
            f"{display_size(row.vg.free_extents() * extent, opts.units)} free]")


def vgdisplay(rows: list[VgRow], lvs_by_vg: dict[str, list[LvRow]], pvs_by_vg: dict[str, list[PvRow]],
              opts: DisplayOptions, colon: bool = False, short: bool = False, verbose: bool = False) -> list[str]:
    """`vgdisplay`; with `verbose` each VG's LVs (lvdisplay) and PVs (short form) follow it, as in lvm2."""
    lines: list[str] = []
    for row in rows:
        if colon:
            lines.append(vg_colons(row))
        elif short:
            lines.append(vg_short(row, opts))
        else:
            lines += vg_full(row, opts)
            if verbose:
                for lv_row in lvs_by_vg.get(row.vg.name, []):
                    lines += lv_full(lv_row, opts)
                lines.append("--- Physical volumes ---")
                for pv_row in pvs_by_vg.get(row.vg.name, []):
                    lines += pv_in_vg_short(pv_row)
    return lines


def vgscan(rows: list[VgRow]) -> list[str]:
    from lvcrypt.store.access import is_exported

    return [f'Found {"exported " if is_exported(row.vg) else ""}volume group "{row.vg.name}" using metadata type '
            f"{row.vg.format}" for row in rows]


# --- logical volumes --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _live_devices() -> dict[str, "DeviceInfo"]:
    """dm devices by uuid, asked of the kernel once per command (none without device-mapper)."""
    from lvcrypt.activate.kernel import active_devices

    return active_devices()


def _device(vg: "VolumeGroup", lv: "LogicalVolume") -> "DeviceInfo | None":
    """The LV's live dm device, if any: what decides lvm2's "available", "# open" and "Block device"."""
    from lvcrypt.lv_names import dm_uuid

    return _live_devices().get(dm_uuid(vg, lv))


def _kernel_read_ahead(info: "DeviceInfo") -> int | None:
    """The live device's read-ahead in sectors (what lvm2's BLKRAGET returns), None if sysfs does not say."""
    try:
        with open(f"/sys/dev/block/{info.major}:{info.minor}/queue/read_ahead_kb") as f:
            return int(f.read()) * 2
    except (OSError, ValueError):
        return None


def _read_ahead(lv: "LogicalVolume") -> int | None:
    """lvm2's read_ahead: None for auto (key absent or 0), 0 for none (-1), else sectors."""
    value = lv.raw.get("read_ahead")
    if not isinstance(value, int) or value == 0:
        return None
    return 0 if value == -1 else value


def _allocation(lv: "LogicalVolume") -> str:
    return lv.allocation_policy or "inherit"


def _partial(row: LvRow) -> bool:
    return any(area.pv in row.loaded.missing for segment in row.lv.segments for area, _ in segment.pv_areas())


def _creation(lv: "LogicalVolume") -> str:
    if not lv.creation_time:
        return f"{lv.creation_host or ''}, "
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(lv.creation_time))
    return f"{lv.creation_host or ''}, {stamp}"


def _snapshot_of(row: LvRow) -> "Segment | None":
    """The snapshot segment when this LV is a (thick) snapshot's COW store: lvm2 displays it as the snapshot."""
    return row.view.snapshot_segment(row.lv)


def _type_lines(row: LvRow) -> list[str]:
    """The per-type lines lvdisplay_full prints after the creation line."""
    vg, lv, view = row.vg, row.lv, row.view
    lines: list[str] = []
    snapshots = [other.segments[0].raw for other in vg.lvs.values() if view.family(other) == "snapshot"
                 and other.segments[0].raw.get("origin") == lv.name]
    if snapshots:
        lines.append("LV snapshot status     source of")
        lines += [f"                       {raw.get('cow_store') or raw.get('merging_store')} [INACTIVE]"
                  for raw in snapshots]
    elif (snapshot := _snapshot_of(row)) is not None:
        lines.append(f"LV snapshot status     INACTIVE destination for {snapshot.raw.get('origin')}")
    family = view.family(lv)
    first = lv.segments[0].raw if lv.segments else {}
    if family == "thin":
        lines.append(f"LV Pool name           {first.get('thin_pool')}")
        for key, label in (("origin", "LV Thin origin name    "), ("external_origin", "LV External origin name "),
                           ("merge", "LV merging to          ")):
            if isinstance(first.get(key), str):
                lines.append(f"{label}{first.get(key)}")
    elif family in ("thin-pool", "cache-pool"):
        data = first.get("pool" if family == "thin-pool" else "data")
        lines += [f"LV Pool metadata       {first.get('metadata')}", f"LV Pool data           {data}"]
    elif family == "vdo-pool":
        lines.append(f"LV VDO Pool data       {first.get('vdo_pool_data')}")
    elif family == "vdo":
        lines.append(f"LV VDO Pool name       {first.get('vdo_pool')}")
    else:
        cached = [other for other in vg.lvs.values() if view.family(other) == "cache"
                  and other.segments[0].raw.get("origin") == lv.name]
        if len(cached) == 1:
            lines.append(f"LV origin of Cache LV  {cached[0].name}")
    lines += _crypt_lines(row)
    return lines


def _crypt_lines(row: LvRow) -> list[str]:
    """lvcrypt's own line (README): the keystore of an encrypted LV, the handler of a keystore."""
    if row.lv.is_keystore:
        return [f"LV Keystore handler    {LV_FIELDS['crypt_handler'].get(row)}"]
    if row.lv.is_crypt:
        return [f"LV Keystore name       {','.join(row.lv.keystores())}"]
    return []


def lv_full(row: LvRow, opts: DisplayOptions) -> list[str]:
    """lvdisplay_full."""
    vg, lv, view = row.vg, row.lv, row.view
    info = _device(vg, lv)
    access = "read/write" if "WRITE" in lv.status else "read only"
    if info is not None and info.readonly and "WRITE" in lv.status:
        access = "read/write (activated read only)"
    lines = ["--- Logical volume ---"]
    if view.visible(lv):
        if view.family(lv) != "thin-pool":
            lines.append(f"LV Path                /dev/{vg.name}/{lv.name}")
        lines.append(f"LV Name                {lv.name}")
    else:
        lines.append(f"Internal LV Name       {lv.name}")
    lines += [f"VG Name                {vg.name}",
              f"LV UUID                {lv.id}",
              f"LV Write Access        {access}",
              f"LV Creation host, time {_creation(lv)}",
              *_type_lines(row)]
    if info is not None and info.suspended:
        lines.append("LV Status              suspended")
    else:
        lines.append(f"LV Status              {'' if info is not None else 'NOT '}available"
                     f"{' (partial)' if _partial(row) else ''}")
    if info is not None:
        lines.append(f"# open                 {info.open_count}")
    snapshot = _snapshot_of(row)
    origin = vg.lvs.get(str(snapshot.raw.get("origin"))) if snapshot is not None else None
    shown = origin if origin is not None else lv
    lines += [f"LV Size                {display_size(shown.extent_count * vg.extent_bytes, opts.units)}",
              f"Current LE             {shown.extent_count}"]
    if snapshot is not None:
        chunk = snapshot.raw.get("chunk_size")
        lines += [f"COW-table size         {display_size(lv.extent_count * vg.extent_bytes, opts.units)}",
                  f"COW-table LE           {lv.extent_count}",
                  f"Snapshot chunk size    {display_size((chunk if isinstance(chunk, int) else 0) * 512, opts.units)}"]
    if lv.segments and lv.segments[0].type.startswith(("mirror", "raid1")):  # lvm2's lv_is_mirrored
        from lvcrypt.metadata.lvreport import areas

        lines.append(f"Mirrored volumes       {len(areas(lv.segments[0], vg.pvs))}")
        if "CONVERTING" in lv.status:
            lines.append("LV type        Mirror undergoing conversion")
    lines.append(f"Segments               {len(lv.segments)}")
    lines.append(f"Allocation             {_allocation(lv)}")
    read_ahead = _read_ahead(lv)
    lines.append(f"Read ahead sectors     {'auto' if read_ahead is None else read_ahead}")
    live_read_ahead = _kernel_read_ahead(info) if info is not None else None
    if live_read_ahead is not None and live_read_ahead != read_ahead:
        lines.append(f"- currently set to     {live_read_ahead}")
    if "FIXED_MINOR" in lv.status:
        major, minor = lv.raw.get("major"), lv.raw.get("minor")
        if isinstance(major, int) and major >= 0:
            lines.append(f"Persistent major       {major}")
        lines.append(f"Persistent minor       {minor if isinstance(minor, int) else -1}")
    if info is not None:
        lines.append(f"Block device           {info.major}:{info.minor}")
    return [*lines, " "]


def lv_colons(row: LvRow) -> str:
    vg, lv = row.vg, row.lv
    info = _device(vg, lv)
    access = (1 if "READ" in lv.status else 0) | (2 if "WRITE" in lv.status else 0)
    if info is not None and info.readonly:
        access |= 4
    read_ahead = _read_ahead(lv)
    return (f"/dev/{vg.name}/{lv.name}:{vg.name}:{access}:{1 if info else 0}:-1:{info.open_count if info else 0}:"
            f"{lv.extent_count * vg.extent_size}:{lv.extent_count}:-1:"
            f"{2 if _allocation(lv) == 'contiguous' else 0}:"
            f"{_READ_AHEAD_AUTO if read_ahead is None else read_ahead}:"
            f"{info.major if info else -1}:{info.minor if info else -1}")


def _area_lines(row: LvRow, area_name: str, offset: int, is_pv: bool, length: int, prefix: str) -> list[str]:
    """display_stripe: one area of a segment, on a PV or on another LV."""
    if is_pv:
        return [f"{prefix}Physical volume\t{row.loaded.device_of(area_name)}",
                f"{prefix}Physical extents\t{offset} to {offset + length - 1}"]
    return [f"{prefix}Logical volume\t{area_name}", f"{prefix}Logical extents\t{offset} to {offset + length - 1}"]


def _is_stripe_set(segment: "Segment") -> bool:
    """Striped, linear, and lvcrypt's crypt and keystore segments (shown as the stripe set they map)."""
    from lvcrypt.metadata.model import CryptSegment, KeystoreSegment, StripedSegment

    return isinstance(segment, (StripedSegment, CryptSegment, KeystoreSegment))


# Segment types whose lvm2 segtype has a target_monitored op: lvdisplay -m prints a Monitoring line,
# empty for an inactive LV.
_MONITORED = ("mirror", "raid", "thin-pool", "snapshot", "vdo-pool")


def lv_segments(row: LvRow, opts: DisplayOptions) -> list[str]:
    """lvdisplay_segments."""
    from lvcrypt.metadata.lvreport import areas, report_type

    lines = ["--- Segments ---"]
    virtual = row.view.family(row.lv) in ("thin", "vdo")
    for segment in row.lv.segments:
        found = areas(segment, row.vg.pvs)
        stripe_set = _is_stripe_set(segment)
        kind = ("linear" if len(found) == 1 else "striped") if stripe_set else report_type(segment)
        lines += [f"{'Virtual' if virtual else 'Logical'} extents {segment.start_extent} to "
                  f"{segment.start_extent + segment.extent_count - 1}:",
                  f"  Type\t\t{kind}"]
        family = row.view.family(row.lv) or ""
        if not stripe_set and family.startswith(_MONITORED):
            lines.append("  Monitoring\t\t")
        lines += _segment_body(row, segment, found, kind, opts)
    return [*lines, " "]


def _segment_body(row: LvRow, segment: "Segment", found: list["ReportArea"], kind: str,
                  opts: DisplayOptions) -> list[str]:
    """The segment type's display op (lvm2's striped, mirrored, raid and thin displays)."""
    if _is_stripe_set(segment) or kind == "linear":
        if len(found) == 1:
            area = found[0]
            return [*_area_lines(row, area.name, area.offset, area.is_pv, area.length, "  "), " "]
        stripe = LV_FIELDS["stripe_size"].get(LvRow(row.vg, row.loaded, row.lv, segment, row.view))
        lines = [f"  Stripes\t\t{len(found)}",
                 f"  Stripe size\t\t{display_size(int(stripe), opts.units)}"]  # type: ignore[call-overload]
        for number, area in enumerate(found):
            lines += [f"  Stripe {number}:", *_area_lines(row, area.name, area.offset, area.is_pv, area.length,
                                                         "    ")]
        return [*lines, " "]
    raw = segment.raw
    if kind == "mirror":
        lines = [f"  Mirrors\t\t{len(found)}", f"  Mirror size\t\t{found[0].length if found else 0}"]
        if isinstance(raw.get("mirror_log"), str):
            lines.append(f"  Mirror log volume\t{raw.get('mirror_log')}")
        region = raw.get("region_size")
        if isinstance(region, int) and region:
            lines.append(f"  Mirror region size\t{display_size(region * 512, opts.units)}")
        lines.append("  Mirror original:")
        lines += _area_lines(row, found[0].name, found[0].offset, found[0].is_pv, found[0].length, "    ")
        lines.append("  Mirror destinations:")
        for area in found[1:]:
            lines += _area_lines(row, area.name, area.offset, area.is_pv, area.length, "    ")
        return [*lines, " "]
    if kind.startswith("raid"):
        length = _raid_area_len(kind, segment.extent_count, len(found))
        lines = []
        for number, area in enumerate(found):
            lines += [f"  Raid Data LV{number:2d}",
                      *_area_lines(row, area.name, area.offset, area.is_pv, length, "    ")]
        pairs = raw.get("raids")
        metas = pairs[0::2] if isinstance(pairs, list) else []
        lines += [f"  Raid Metadata LV{number:2d}\t{name}" for number, name in enumerate(metas)
                  if isinstance(name, str) and name]
        return [*lines, " "]
    if kind == "thin-pool":
        users = sum(1 for other in row.vg.lvs.values() if row.view.family(other) == "thin"
                    and other.segments[0].raw.get("thin_pool") == row.lv.name)
        chunk = raw.get("chunk_size")
        return [f"  Chunk size\t\t{display_size((chunk if isinstance(chunk, int) else 0) * 512, opts.units)}",
                f"  Discards\t\t{raw.get('discards', 'passdown')}",
                f"  Thin count\t\t{users}",
                f"  Transaction ID\t{raw.get('transaction_id', 0)}",
                f"  Zero new blocks\t{'yes' if raw.get('zero_new_blocks') == 1 else 'no'}",
                " "]
    if kind == "thin":
        return [f"  Device ID\t\t{raw.get('device_id', 0)}", " "]
    if kind in ("cache", "cache-pool"):
        return _cache_lines(row, raw, kind, opts)
    return []


def _raid_area_len(kind: str, extents: int, images: int) -> int:
    """lvm2's seg->area_len as its text import sets it: shared by the data images of raid0 and of the
    parity types (raid4/5/6), the whole segment for raid1 and raid10 (whose lvs fields differ)."""
    parity = 2 if kind.startswith("raid6") else 1 if kind.startswith(("raid4", "raid5")) else 0
    if kind.startswith("raid0") or parity:
        return extents // max(images - parity, 1)
    return extents


def _cache_lines(row: LvRow, raw: "Section", kind: str, opts: DisplayOptions) -> list[str]:
    """lvm2's _cache_display: a cache LV shows its cache pool's settings (a cachevol keeps its own)."""
    settings = raw
    pool = row.vg.lvs.get(str(raw.get("cache_pool"))) if kind == "cache" else None
    if pool is not None and row.view.family(pool) == "cache-pool" and pool.segments:
        settings = pool.segments[0].raw
    chunk = settings.get("chunk_size")
    lines = [f"  Chunk size\t\t{display_size((chunk if isinstance(chunk, int) else 0) * 512, opts.units)}"]
    if isinstance(settings.get("metadata_format"), int):
        lines.append(f"  Metadata format\t{settings.get('metadata_format')}")
    if isinstance(settings.get("cache_mode"), str):
        lines.append(f"  Mode\t\t{settings.get('cache_mode')}")
    if isinstance(settings.get("policy"), str):
        lines.append(f"  Policy\t\t{settings.get('policy')}")
    return [*lines, " "]


def lvdisplay(rows: list[LvRow], opts: DisplayOptions, colon: bool = False, maps: bool = False) -> list[str]:
    lines: list[str] = []
    for row in rows:
        if colon:
            lines.append(lv_colons(row))
            continue
        lines += lv_full(row, opts)
        if maps:
            lines += lv_segments(row, opts)
    return lines


def lvscan(rows: list[LvRow], opts: DisplayOptions) -> list[str]:
    lines = []
    for row in rows:
        info = _device(row.vg, row.lv)
        cows = any(row.view.family(other) == "snapshot" and other.segments[0].raw.get("origin") == row.lv.name
                   for other in row.vg.lvs.values())
        kind = "Original" if cows else "Snapshot" if _snapshot_of(row) is not None else "        "
        lines.append(f"{'ACTIVE   ' if info is not None else 'inactive '}{kind} '/dev/{row.vg.name}/{row.lv.name}' "
                     f"[{display_size(row.lv.extent_count * row.vg.extent_bytes, opts.units)}] {_allocation(row.lv)}")
    return lines


# --- what each command shows, in lvm2's order ---------------------------------------------------------

@dataclass
class Loaded:
    """The VGs a display command shows (by name, as lvm2 walks them) and what the scan found."""

    vgs: list["LoadedVg"]
    pv_paths: dict[str, "PvOnDisk"]  # every PV the scan found, by path
    hidden: set[str]  # uuids of PVs of VGs not shown on this host
    filtered: bool  # lvm.conf's device filters apply (no --devices, which bypasses them as in lvm2)


def load(devices: str | None, vg_names: list[str], command: str, missing: list[str] | None = None) -> Loaded:
    """The VGs named (all when none); one named and not found is an error, or, given `missing`, a
    message added there: lvm2 displays the others, then exits 5."""
    from lvcrypt.reportfields import load_vgs

    _live_devices.cache_clear()  # once per command, also when several run in one process
    found, loaded, hidden = load_vgs(devices, list(dict.fromkeys(vg_names)), command, missing=missing)
    return Loaded(sorted(loaded, key=lambda vg: vg.vg.name), dict(found.pvs), hidden, devices is None)


def vg_rows(loaded: Loaded) -> list[VgRow]:
    from lvcrypt.metadata.lvreport import VgReport

    return [VgRow(vg.vg, vg, VgReport(vg.vg)) for vg in loaded.vgs]


def pv_rows_in_vg(vg: "LoadedVg") -> list[PvRow]:
    """A VG's PVs in its metadata order (missing ones as [unknown])."""
    return [PvRow(vg.pvs[key].path if key in vg.pvs else "[unknown]", vg.pvs.get(key), vg.vg, key, vg)
            for key in vg.vg.pvs]


def _not_found(message: str, missing: list[str] | None) -> None:
    """An object named and not found: the command's error, or (given `missing`) one of the messages
    printed after the objects that were found."""
    from lvcrypt.errors import LvcryptError

    if missing is None:
        raise LvcryptError(message)
    missing.append(message)


def pv_rows(loaded: Loaded, names: list[str], missing: list[str] | None = None) -> list[PvRow]:
    """process_each_pv's order: each VG's PVs, then the PVs in no VG by path; NAMES (devices) filter them
    (one not found: see `_not_found`)."""
    import os

    rows = [row for vg in loaded.vgs for row in pv_rows_in_vg(vg)]
    members = {pv.id for vg in loaded.vgs for pv in vg.vg.pvs.values()}
    rows += [PvRow(path, pv, None, None, None) for path, pv in sorted(loaded.pv_paths.items())
             if pv.uuid not in members and pv.uuid not in loaded.hidden]
    if not names:
        return rows
    wanted = []
    for name in names:
        if not os.path.exists(name):
            _not_found(f"Cannot use {name}: device not found", missing)
            continue
        match = [row for row in rows if row.path != "[unknown]" and os.path.samefile(row.path, name)]
        if not match:
            from lvcrypt.store.device_filter import rejection

            _not_found(loaded.filtered and rejection(name) or f'Failed to find physical volume "{name}".', missing)
        wanted += [row for row in match if row not in wanted]
    return [row for row in rows if row in wanted]


def lv_rows(loaded: Loaded, names: list[str], every: bool, missing: list[str] | None = None) -> list[LvRow]:
    """process_each_lv's order: VGs by name, each VG's LVs in metadata order; hidden ones only with -a
    (lvdisplay skips them even when named, unlike lvs).  An LV named and not found: see `_not_found`
    (an LV of a VG not found has the VG's message only)."""
    from lvcrypt.metadata.lvreport import VgReport

    named = {tuple(item.split("/", 1)) for item in names if "/" in item}
    whole = {item for item in names if "/" not in item}
    rows: list[LvRow] = []
    for vg in loaded.vgs:
        view = VgReport(vg.vg)
        pools: list[LvRow] = []  # lvm2 processes thin pools first, each new one in front of the others
        others: list[LvRow] = []
        for lv in vg.vg.lvs.values():
            by_name = (vg.vg.name, lv.name) in named
            if not view.listed(lv) or (names and vg.vg.name not in whole and not by_name):
                continue
            if every or view.visible(lv):
                row = LvRow(vg.vg, vg, lv, None, view)
                if view.family(lv) == "thin-pool":
                    pools.insert(0, row)
                else:
                    others.append(row)
        rows += pools + others
    for vg_name, lv_name in sorted(named):
        vg_found = next((vg.vg for vg in loaded.vgs if vg.vg.name == vg_name), None)
        if vg_found is None and missing is not None:
            continue  # the VG's own message is there already (load)
        if vg_found is None or lv_name not in vg_found.lvs or not VgReport(vg_found).listed(vg_found.lvs[lv_name]):
            _not_found(f'Failed to find logical volume "{vg_name}/{lv_name}"', missing)
    return rows


def active_lvs(row: VgRow) -> int:
    """LVs of the VG with a live dm device (vgdisplay -A shows only VGs that have some)."""
    return sum(1 for lv in row.vg.lvs.values() if _device(row.vg, lv) is not None)
