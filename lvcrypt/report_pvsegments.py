"""`pvs --segments` and the pvseg_* fields: one report row per run of a PV's extents, as lvm2.

lvm2 splits each PV into segments: every LV segment's area on it, in extent order, and the free
runs between them (lib/metadata/pv_manip.c); a PV in no VG has one empty segment (start 0, size 0).
Naming `pvseg_start` or `pvseg_size` anywhere, or `--segments`, makes these rows.
"""

from __future__ import annotations

from lvcrypt.records import replace

from lvcrypt.reportfields import PV_DEFAULT, Field, PvRow

PVSEG_FIELDS: dict[str, Field] = {
    "pvseg_start": Field("Start", lambda r: r.pvseg[0] if r.pvseg else 0),
    "pvseg_size": Field("SSize", lambda r: r.pvseg[1] if r.pvseg else 0),
}
PVSEG_DEFAULT = [*PV_DEFAULT, "pvseg_start", "pvseg_size"]
LABEL_FIELDS_UNTIL = "pv_ext_vsn"  # `pvs --segments -o all`: the PV label's fields, then the segment's


def runs(used: list[tuple[int, int]], pe_count: int) -> list[tuple[int, int]]:
    """(start, length) of a PV's segments from its used runs: those, and the gaps as free runs."""
    found: list[tuple[int, int]] = []
    position = 0
    for start, length in sorted(used):
        if start > position:
            found.append((position, start - position))
        found.append((start, length))
        position = max(position, start + length)
    if position < pe_count:
        found.append((position, pe_count - position))
    return found


def _used(row: PvRow) -> list[tuple[int, int]]:
    assert row.vg is not None
    return [(area.extent, length) for lv in row.vg.lvs.values() for segment in lv.segments
            for area, length in segment.pv_areas() if area.pv == row.key and length]


def pv_segment_rows(rows: list[PvRow]) -> list[PvRow]:
    """Each PV row as its segments' rows, in extent order."""
    split: list[PvRow] = []
    for row in rows:
        if row.vg is None or row.key is None:
            split.append(replace(row, pvseg=(0, 0)))
            continue
        split += [replace(row, pvseg=run) for run in runs(_used(row), row.vg.pvs[row.key].pe_count)]
    return split
