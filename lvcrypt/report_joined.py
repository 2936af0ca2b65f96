"""Reports that join objects, as lvm2 2.03.16 does: `pvs -o +lv_name`, `vgs -o +lv_name,pv_name`.

lvm2 lets a report name another object's fields and then changes its rows
(tools/reporter.c `_get_final_report_type`): pvs naming an LV or segment field
reports PV segments, each LV area with its LV and LV segment and each free run
as a `free` segment of no LV; vgs naming LV fields reports one row per LV (per
LV segment with segment fields), naming PV fields one row per PV.  lvs and vgs
refuse LV and PV fields together.  A script written against lvm2 gets its rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from lvcrypt.errors import LvcryptError
from lvcrypt.reportfields import Field, LvRow, PvRow

if TYPE_CHECKING:
    from lvcrypt.metadata.lvreport import VgReport
    from lvcrypt.metadata.model import LogicalVolume, Segment, VolumeGroup


def _free_size(row: PvRow) -> int:
    return row.pvseg[1] * row.vg.extent_bytes if row.vg is not None and row.pvseg else 0


# What lvm2 prints for a free run (its `_free_logical_volume`, lib/report/report.c); other LV fields: empty.
FREE_VALUES: dict[str, Callable[[PvRow], object]] = {
    "segtype": lambda r: "free",
    "seg_size": _free_size,
    "lv_size": lambda r: 0, "seg_count": lambda r: 0, "stripes": lambda r: 0, "stripe_size": lambda r: 0,
    "seg_start": lambda r: 0, "seg_start_pe": lambda r: 0,
    "lv_full_name": lambda r: f"{r.vg.name if r.vg else ''}/",
    "lv_path": lambda r: f"/dev/{r.vg.name}/" if r.vg else "",
}


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


def _owner(vg: "VolumeGroup", key: str, start: int) -> "tuple[LogicalVolume, Segment] | None":
    for lv in vg.lvs.values():
        for segment in lv.segments:
            if any(area.pv == key and area.extent == start and length for area, length in segment.pv_areas()):
                return lv, segment
    return None


def area_rows(rows: list[PvRow], view_of: "Callable[[VolumeGroup], VgReport]") -> list[PvRow]:
    """PV segment rows (report_pvsegments), each LV area carrying its LV and LV segment."""
    from lvcrypt.report_pvsegments import pv_segment_rows

    views: dict[int, "VgReport"] = {}
    joined: list[PvRow] = []
    for row in pv_segment_rows(rows):
        found = _owner(row.vg, row.key, row.pvseg[0]) if row.vg and row.key and row.pvseg else None
        if found is None or row.loaded is None:
            joined.append(row)
            continue
        assert row.vg is not None
        view = views.setdefault(id(row.vg), view_of(row.vg))
        joined.append(replace(row, area=LvRow(row.vg, row.loaded, found[0], found[1], view)))
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
