"""`lvs -H/--history`: the removed LVs lvm2 remembers (`historical_logical_volumes`) as report rows.

lvm2 keeps a removed thin snapshot's name, times and origin while an LV that descended from it
lives, and `lvs -H` lists it as `-NAME`, attribute `h`, size 0, one segment of type
`historical`.  A historical LV has no extents nor segments, so it is a row of its own kind here,
and the fields that mean something for it are given below; every other field is empty, as
lvm2 prints it (lvm2 2.03.16 crashes on a few of them, which no script can rely on).
"""

from __future__ import annotations

import time
from lvcrypt.records import replace
from typing import TYPE_CHECKING, Callable

from lvcrypt.records import dataclass

if TYPE_CHECKING:
    from lvcrypt.metadata.lvreport import VgReport
    from lvcrypt.metadata.model import VolumeGroup
    from lvcrypt.reportfields import Field
    from lvcrypt.store.commit import LoadedVg

PREFIX = "-"  # lvm2 writes a historical LV's name with a leading dash (`lvs -H vg/-name`)


@dataclass
class HistoricalRow:
    """One removed LV of a VG, as `lvs -H` lists it."""

    vg: "VolumeGroup"
    loaded: "LoadedVg"
    name: str  # without the dash
    section: dict[str, object]
    view: "VgReport"
    segment: None = None
    sysfs_root: str = "/sys"


def historical_rows(vg: "VolumeGroup", loaded: "LoadedVg", view: "VgReport") -> list[HistoricalRow]:
    from lvcrypt.metadata.segtypes import historical_lvs

    return [HistoricalRow(vg, loaded, name, dict(section.items()), view)
            for name, section in historical_lvs(vg).items()]


def _stamp(row: HistoricalRow, key: str) -> int:
    value = row.section.get(key)
    return value if isinstance(value, int) else 0


def _clock(key: str) -> Callable[[HistoricalRow], str]:
    def get(row: HistoricalRow) -> str:
        stamp = _stamp(row, key)
        return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(stamp)) if stamp else ""
    return get


def _own_name(row: object) -> str:
    return PREFIX + row.name if isinstance(row, HistoricalRow) else row.lv.name  # type: ignore[attr-defined]


def _ancestry(descend: bool, full: bool) -> Callable[[object], str]:
    """lvm2's ancestors and descendants with `-H`: removed LVs count, by their `-NAME`, for every row."""
    from lvcrypt.metadata.segtypes import historical_lvs
    from lvcrypt.report_all import ancestors_of

    def get(row: object) -> str:
        own = _own_name(row)
        if not descend:
            return ",".join(sorted(ancestors_of(row, own, full, True)))  # type: ignore[arg-type]
        names = [*row.vg.lvs, *(PREFIX + name for name in historical_lvs(row.vg))]  # type: ignore[attr-defined]
        return ",".join(sorted(other for other in names if other != own
                               and own in ancestors_of(row, other, full, True)))  # type: ignore[arg-type]
    return get


def _escaped(name: str) -> str:
    return name.replace("-", "--")


# What lvm2 prints for a historical LV, per field; any other field is empty.
VALUES: dict[str, Callable[[HistoricalRow], object]] = {
    "lv_name": lambda row: PREFIX + row.name,
    "vg_name": lambda row: row.vg.name,
    "lv_attr": lambda row: "----h-----",
    "lv_size": lambda row: 0,
    "seg_size": lambda row: 0,
    "segtype": lambda row: "historical",
    "seg_count": lambda row: 1,
    "stripes": lambda row: 0,
    "lv_uuid": lambda row: row.section.get("id", ""),
    "lv_path": lambda row: f"/dev/{row.vg.name}/{row.name}",
    "lv_dm_path": lambda row: f"/dev/mapper/{_escaped(row.vg.name)}-{_escaped(row.name)}",
    "lv_role": lambda row: "public",
    "lv_layout": lambda row: "history,none",
    "lv_time": _clock("creation_time"),
    "lv_time_removed": _clock("removal_time"),
    "lv_historical": lambda row: "historical",
    "lv_ancestors": _ancestry(False, False),
    "lv_full_ancestors": _ancestry(False, True),
    "lv_descendants": _ancestry(True, False),
    "lv_full_descendants": _ancestry(True, True),
}
EVERY_ROW = {"lv_ancestors", "lv_full_ancestors", "lv_descendants", "lv_full_descendants"}
KEYS: dict[str, Callable[[HistoricalRow], object]] = {
    "lv_time": lambda row: _stamp(row, "creation_time"),
    "lv_time_removed": lambda row: _stamp(row, "removal_time"),
}


def _for_history(name: str, field: "Field") -> "Field":
    value = VALUES.get(name, lambda row: "")
    key = KEYS.get(name, value)

    def get(row: object) -> object:
        if isinstance(row, HistoricalRow) or name in EVERY_ROW:
            return value(row)  # type: ignore[arg-type]
        return field.get(row)

    def sort_key(row: object) -> object:
        if isinstance(row, HistoricalRow):
            return key(row)  # type: ignore[arg-type]
        return (field.key or field.get)(row)
    return replace(field, get=get, key=sort_key if field.key is not None or name in KEYS else None)


def with_history(fields: dict[str, "Field"]) -> dict[str, "Field"]:
    """The report's fields, each also answering for historical rows (only `-H` pays for this)."""
    return {name: _for_history(name, field) for name, field in fields.items()}
