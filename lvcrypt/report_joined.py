"""Reports that join objects, as lvm2 2.03.16 does: `pvs -o +lv_name`, `vgs -o +lv_name,pv_name`.

lvm2 lets a report name another object's fields and then changes its rows
(tools/reporter.c `_get_final_report_type`): pvs naming an LV or segment field
reports PV segments, each LV area with its LV and LV segment and each free run
as a `free` segment of no LV; vgs naming LV fields reports one row per LV (per
LV segment with segment fields), naming PV fields one row per PV.  lvs and vgs
refuse LV and PV fields together.  A script written against lvm2 gets its rows.
"""

from __future__ import annotations

from lvcrypt.records import replace
from typing import TYPE_CHECKING, Callable

from lvcrypt.errors import LvcryptError
from lvcrypt.reportfields import Field, LvRow, PvRow

if TYPE_CHECKING:
    from lvcrypt.metadata.lvreport import VgReport
    from lvcrypt.metadata.model import LogicalVolume, Segment, VolumeGroup


def _free_size(row: PvRow) -> int:
    return row.pvseg[1] * row.vg.extent_bytes if row.vg is not None and row.pvseg else 0


# What lvm2 prints for a free run (its `_free_logical_volume` and `_free_lv_segment`, lib/report/report.c,
# with lvm2's reserved values for an LV it cannot ask the kernel about); other LV fields: empty.
FREE_VALUES: dict[str, Callable[[PvRow], object]] = {
    "segtype": lambda r: "free",
    "seg_size": _free_size,
    "seg_size_pe": lambda r: r.pvseg[1] if r.vg is not None and r.pvseg else 0,
    "lv_full_name": lambda r: f"{r.vg.name if r.vg else ''}/",
    "lv_path": lambda r: f"/dev/{r.vg.name}/" if r.vg else "",
    "lv_dm_path": lambda r: f"/dev/mapper/{r.vg.name.replace('-', '--')}-" if r.vg else "",
    "parity_chunks": lambda r: 0xFFFFFFFF,
    **{name: (lambda r: 0) for name in ("lv_size", "seg_count", "stripes", "stripe_size", "seg_start", "seg_start_pe",
                                        "lv_read_ahead", "data_stripes", "region_size", "chunk_size")},
    **{name: (lambda r: -1) for name in ("lv_major", "lv_minor", "lv_kernel_major", "lv_kernel_minor",
                                         "lv_kernel_read_ahead", "raidintegrityblocksize", "writecache_block_size")},
    **{name: (lambda r: "unknown") for name in (
        "lv_layout", "lv_allocation_policy", "lv_permissions", "lv_suspended", "lv_live_table", "lv_inactive_table",
        "lv_device_open", "lv_check_needed", "lv_merge_failed", "lv_snapshot_invalid", "zero")},
    "lv_role": lambda r: "public",
    "lv_autoactivation": lambda r: "enabled",
}
# A VG field on the row of a PV in no VG: lvm2 reads its orphan VG (lib/metadata/vg.c), a nameless,
# read-only VG of no extents, no metadata areas and no allocation policy it can name.
ORPHAN_VG_VALUES: dict[str, object] = {
    "vg_fmt": "lvm2", "vg_attr": "r-----", "vg_permissions": "read-only", "vg_autoactivation": "enabled",
    "vg_allocation_policy": "unknown", "vg_mda_copies": "unmanaged",
    **{name: 0 for name in ("vg_size", "vg_free", "vg_extent_size", "vg_extent_count", "vg_free_count", "max_lv",
                            "max_pv", "pv_count", "vg_missing_pv_count", "lv_count", "snap_count", "vg_seqno",
                            "vg_mda_count", "vg_mda_used_count", "vg_mda_free", "vg_mda_size")},
}
# On the PV's segment rows (pvs --segments, or with LV fields) lvm2 leaves the orphan VG's format empty.
ORPHAN_SEGMENT_VALUES = {**ORPHAN_VG_VALUES, "vg_fmt": ""}


def _on_area(name: str, field: Field) -> Field:
    """An LV field read on a PV segment row: the LV's value on its area, lvm2's free value on a free run."""
    free = FREE_VALUES.get(name, lambda r: "")

    def get(row: PvRow) -> object:
        return field.get(row.area) if row.area is not None else free(row)

    def key(row: PvRow) -> object:
        assert field.key is not None
        return field.key(row.area) if row.area is not None else free(row)
    return replace(field, get=get, key=key if field.key is not None else None)


def pv_lv_fields(lv_fields: dict[str, Field], pv_fields: dict[str, Field]) -> dict[str, Field]:
    """The LV and segment fields pvs reports, reading each row's LV area (the PV's own fields win)."""
    return {name: _on_area(name, field) for name, field in lv_fields.items() if name not in pv_fields}


def _on_pv(name: str, field: Field) -> Field:
    """A VG field read on a PV's row: its VG's value, the orphan VG's for a PV in no VG."""
    def orphan(row: PvRow) -> object:
        return (ORPHAN_VG_VALUES if row.pvseg is None else ORPHAN_SEGMENT_VALUES).get(name, "")

    def get(row: PvRow) -> object:
        return field.get(row) if row.vg is not None else orphan(row)

    def key(row: PvRow) -> object:
        assert field.key is not None
        return field.key(row) if row.vg is not None else orphan(row)
    return replace(field, get=get, key=key if field.key is not None else None)


def pv_vg_fields(vg_fields: dict[str, Field], pv_fields: dict[str, Field]) -> dict[str, Field]:
    """The VG fields pvs reports (`pvs -o +vg_free`), on rows that carry their VG's view (with_views)."""
    return {name: _on_pv(name, field) for name, field in vg_fields.items() if name not in pv_fields}


def with_views(rows: list[PvRow], view_of: "Callable[[VolumeGroup], VgReport]") -> list[PvRow]:
    """Each PV row with its VG's view (one per VG), which the VG fields and LV areas read."""
    views: dict[int, "VgReport"] = {}
    return [row if row.vg is None or row.view is not None
            else replace(row, view=views.setdefault(id(row.vg), view_of(row.vg))) for row in rows]


def _owner(vg: "VolumeGroup", key: str, start: int) -> "tuple[LogicalVolume, Segment] | None":
    for lv in vg.lvs.values():
        for segment in lv.segments:
            if any(area.pv == key and area.extent == start and length for area, length in segment.pv_areas()):
                return lv, segment
    return None


def area_rows(rows: list[PvRow], view_of: "Callable[[VolumeGroup], VgReport]") -> list[PvRow]:
    """PV segment rows (report_pvsegments), each LV area carrying its LV and LV segment."""
    from lvcrypt.report_pvsegments import pv_segment_rows

    joined: list[PvRow] = []
    for row in with_views(pv_segment_rows(rows), view_of):
        found = _owner(row.vg, row.key, row.pvseg[0]) if row.vg and row.key and row.pvseg else None
        if found is None or row.loaded is None:
            joined.append(row)
            continue
        assert row.vg is not None and row.view is not None
        joined.append(replace(row, area=LvRow(row.vg, row.loaded, found[0], found[1], row.view)))
    return joined


def refuse_lv_and_pv(report: str, lv_named: bool, pv_named: bool) -> None:
    """lvm2 has no row that is both an LV and a PV: lvs with a PV field, vgs with both, fail."""
    if lv_named and pv_named:
        raise LvcryptError(f'Can\'t report LV and PV fields at the same time in report type "{report}".')


def vg_lv_rows(rows: list[LvRow]) -> list[LvRow]:
    """vgs with LV fields: lvm2 walks each VG's LVs in metadata order, not by name as lvs sorts them,
    except thin pools, which it puts at the front as it meets them (toollib's process_each_lv_in_vg)."""
    def key(row: LvRow) -> tuple[object, ...]:
        index = list(row.vg.lvs).index(row.lv.name)
        pool = row.view.family(row.lv) == "thin-pool"
        return (row.vg.name, (0, -index) if pool else (1, index),
                row.segment.start_extent if row.segment is not None else 0)
    return sorted(rows, key=key)


def vg_pv_rows(rows: "list[object]") -> list[PvRow]:
    """vgs with PV fields: each VG's PVs in metadata order, each row also the VG's (its `view`)."""
    joined: list[PvRow] = []
    for row in rows:
        vg, loaded, view = row.vg, row.loaded, row.view  # type: ignore[attr-defined]
        for key in vg.pvs:
            on_disk = loaded.pvs.get(key)
            joined.append(PvRow(on_disk.path if on_disk else "[unknown]", on_disk, vg, key, loaded, view=view))
    return joined
