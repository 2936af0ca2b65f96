"""The report field model of `pvs`, `vgs`, `lvs`: which rows a report has and each field's value.

Fields are lvm2's (`-o lv_name,lv_size,devices`, `+field` appends to the
default list); a segment field (segtype, devices, stripes...) gives one row
per segment as in lvm2.  Values are raw (sizes in bytes); laying them out
(columns, --units, separators, JSON) is the CLI's (lvcrypt/cli/report.py).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import sys
from typing import TYPE_CHECKING, Callable

from lvcrypt.records import dataclass

if TYPE_CHECKING:
    from lvcrypt.activate.dm_ioctl import DeviceInfo
    from lvcrypt.metadata.lvreport import VgReport
    from lvcrypt.metadata.model import LogicalVolume, Segment, VolumeGroup
    from lvcrypt.store.commit import LoadedVg, Scan
    from lvcrypt.store.physical import PvOnDisk

LV_DEFAULT = ["lv_name", "vg_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent",
              "metadata_percent", "move_pv", "mirror_log", "copy_percent", "convert_lv"]
VG_DEFAULT = ["vg_name", "pv_count", "lv_count", "snap_count", "vg_attr", "vg_size", "vg_free"]
PV_DEFAULT = ["pv_name", "vg_name", "pv_fmt", "pv_attr", "pv_size", "pv_free"]
SEGMENT_FIELDS = {"segtype", "devices", "stripes", "stripe_size", "seg_start", "seg_size", "seg_pe_ranges",
                  "seg_start_pe"}


@dataclass
class LvRow:
    vg: "VolumeGroup"
    loaded: "LoadedVg"
    lv: "LogicalVolume"
    segment: "Segment | None"
    view: "VgReport | LvsView"  # lvm2's view of the VG (visibility, roles, links), built once per VG by the command
    sysfs_root: str = "/sys"
    cells: tuple[object, ...] | None = None  # this LV's row of an LvsView's table (whole_column reads it)

    @classmethod
    def of_view(cls, loaded: "LoadedVg", name: str, view: "LvsView", sysfs_root: str,
                cells: tuple[object, ...]) -> "LvRow":
        """The row of LV `name` without its VG's model: `vg` and `lv` are read (the model loaded) when a field
        first asks for them (__getattr__), which lvs' default fields, answered by the view's cells, never do."""
        row = object.__new__(cls)
        row.loaded, row.segment, row.view, row.sysfs_root, row.cells = loaded, None, view, sysfs_root, cells
        row._lv_name = name
        return row

    def __getattr__(self, name: str) -> object:
        """`vg` and `lv` of a row made by `of_view`, on first use (only missing attributes come here)."""
        if name not in ("vg", "lv") or "_lv_name" not in self.__dict__:
            raise AttributeError(name)
        self.vg = self.loaded.vg
        self.lv = self.vg.lvs[self._lv_name]
        return self.__dict__[name]


@dataclass
class VgRow:
    vg: "VolumeGroup"
    loaded: "LoadedVg"
    view: "VgReport"


@dataclass
class PvRow:
    path: str
    pv: "PvOnDisk | None"
    vg: "VolumeGroup | None"
    key: str | None
    loaded: "LoadedVg | None"
    pvseg: tuple[int, int] | None = None  # pvs --segments: this row's run of extents (report_pvsegments)
    area: LvRow | None = None  # pvs -o +lv_name: the LV segment on this run, None for free (report_joined)
    view: "VgReport | None" = None  # vgs -o +pv_name: the VG's fields read on this PV's row (report_joined)


@dataclass(frozen=True)
class Field:
    heading: str
    get: Callable[..., object]
    size: bool = False  # value in bytes, formatted with --units
    width: int = 0  # lvm2's minimum column width (lib/report/columns.h), when wider than the heading
    right: bool | None = None  # right-aligned (lvm2's numeric types); None: sizes and numbers are
    key: Callable[..., object] | None = None  # what -S and -O compare when not what is printed (times)

    def __init__(self, heading: str, get: Callable[..., object], size: bool = False, width: int = 0,
                 right: bool | None = None, key: Callable[..., object] | None = None) -> None:
        """Written out (records keeps it): the report modules make some eighty fields, past the objects records
        makes before it compiles an `__init__`, and a process's first compile() sets up the AST types, about
        10M instructions, 4% of a warm `lvs` that compiles nothing else."""
        for name, value in (("heading", heading), ("get", get), ("size", size), ("width", width),
                            ("right", right), ("key", key)):
            object.__setattr__(self, name, value)


@functools.lru_cache(maxsize=1)
def _no_dm() -> bool:
    """lvm2 shows state X (unknown) when the kernel has no device-mapper to ask."""
    return not os.path.exists("/sys/class/misc/device-mapper")


@functools.lru_cache(maxsize=1)
def _active_devices() -> dict[str, "DeviceInfo"]:
    """dm devices by uuid, asked once per command (empty without /dev/mapper/control)."""
    from lvcrypt.activate.kernel import active_devices

    return active_devices()


def _vg_report(vg: "VolumeGroup") -> "VgReport":
    from lvcrypt.metadata.lvreport import VgReport

    return VgReport(vg)


# A listed LV's row of the view: display name, visible, lv_attr's static letters (3), never queried, the
# links of lvs' default columns (others, rarer, are asked of the VgReport), its size in bytes, and its lv_attr
# where there is no device-mapper to ask and no PV missing.
_VIEW_TYPES = (str, bool, str, str, str, bool, str, str, str, int, str)
_SIZE_COLUMN = 9
_OFFLINE_ATTR_COLUMN = 10
_LINK_COLUMN = {"pool_lv": 6, "origin": 7, "mirror_log": 8}


class LvsView:
    """lvm2's view of a VG (VgReport) as `lvs` asks it for every row, answered by one lookup per LV.

    Built from a VgReport (`_view_table`) and kept in the model cache beside the model, under the same
    text digest and code stamp (this module's too), so a warm `lvs` of thousands of LVs builds no
    VgReport and derives no letter again.  Whatever the table does not hold (another question, an LV not
    in it) is asked of a VgReport made on first use, so both give the same answers (tests/services)."""

    __slots__ = ("_source", "_rows", "_report")

    def __init__(self, vg: "VolumeGroup | LoadedVg", rows: dict[str, tuple[object, ...] | None],
                 report: "VgReport | None" = None):
        self._source = vg  # a LoadedVg's model is loaded only if a question needs the VgReport
        self._rows = rows  # every LV of the VG: listed LVs their row, LVs lvm2 never lists None
        self._report = report

    def report(self) -> "VgReport":
        if self._report is None:
            from lvcrypt.metadata.model import VolumeGroup

            source = self._source
            self._report = _vg_report(source if isinstance(source, VolumeGroup) else source.vg)
        return self._report

    def names(self) -> list[str]:
        """The names of the VG's LVs, listed or not."""
        return list(self._rows)

    def __getattr__(self, name: str) -> object:
        return getattr(self.report(), name)

    def listed(self, lv: "LogicalVolume") -> bool:
        if lv.name in self._rows:
            return self._rows[lv.name] is not None
        return self.report().listed(lv)

    def visible(self, lv: "LogicalVolume") -> bool:
        row = self._rows.get(lv.name)
        return row[1] if row else self.report().visible(lv)  # type: ignore[return-value]

    def display(self, name: str) -> str:
        row = self._rows.get(name)
        return row[0] if row else self.report().display(name)  # type: ignore[return-value]

    def static_attr(self, lv: "LogicalVolume") -> tuple[str, str, str]:
        row = self._rows.get(lv.name)
        return row[2:5] if row else self.report().static_attr(lv)  # type: ignore[return-value]

    def never_queried(self, lv: "LogicalVolume") -> bool:
        row = self._rows.get(lv.name)
        return row[5] if row else self.report().never_queried(lv)  # type: ignore[return-value]

    def cells(self, name: str) -> tuple[object, ...] | None:
        """The LV's row of the table (None when not in it): what LvRow.cells holds."""
        return self._rows.get(name)

    def link(self, lv: "LogicalVolume", report_field: str) -> str:
        row = self._rows.get(lv.name)
        column = _LINK_COLUMN.get(report_field)
        return row[column] if row and column else self.report().link(lv, report_field)  # type: ignore[return-value]


def _view_table(report: "VgReport") -> tuple[list[str], list[str], list[list[object]]]:
    """The view's data by column (names listed, names never listed, one list per value of a row)."""
    listed: list[str] = []
    unlisted: list[str] = []
    rows = []
    offlines: dict[tuple[object, ...], str] = {}  # per view_row: thousands of LVs share a handful
    extent_bytes = report.vg.extent_bytes
    for name, lv in report.vg.lvs.items():
        view = report.view_row(lv)
        if view is None:
            unlisted.append(name)
            continue
        listed.append(name)
        offline = offlines.get(view)
        if offline is None:
            _, head, target, skip, never = view[:5]
            offline = offlines[view] = f"{head}{'--' if never else 'XX'}{target}-{skip}"
        rows.append((name if view[0] else f"[{name}]", *view, lv.extent_count * extent_bytes, offline))
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in _VIEW_TYPES]
    return listed, unlisted, columns


def _view_rows(data: object) -> dict[str, tuple[object, ...] | None] | None:
    """The rows of a table read back from the cache, or None unless it has exactly `_view_table`'s shape."""
    if type(data) is not tuple or len(data) != 3:
        return None
    names, unlisted, columns = data
    if (type(names) is not list or type(unlisted) is not list or type(columns) is not list
            or len(columns) != len(_VIEW_TYPES) or not _all_of(str, names + unlisted)):
        return None
    for column, kind in zip(columns, _VIEW_TYPES):
        if type(column) is not list or len(column) != len(names) or not _all_of(kind, column):
            return None
    return _rows(names, unlisted, columns)


def _all_of(kind: type, values: list[object]) -> bool:
    """Whether every value is of exactly this type (marshal makes no subclass): strings by joining them in C,
    three times as fast as the set of their types that checks the others."""
    if kind is not str:
        return set(map(type, values)) <= {kind}
    try:
        "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _rows(names: list[str], unlisted: list[str], columns: list[list[object]]) -> dict[str, tuple[object, ...] | None]:
    rows: dict[str, tuple[object, ...] | None] = dict(zip(names, zip(*columns)))
    rows.update(dict.fromkeys(unlisted))
    return rows


def lvs_view(loaded: "LoadedVg") -> LvsView:
    """The view of a loaded VG `lvs` reads, from the model cache when this text's is there."""
    from lvcrypt.store import cache

    from lvcrypt.metadata.gc_pause import gc_paused

    vg_id = loaded.head.id
    with gc_paused():  # thousands of rows, none garbage (see gc_pause)
        rows = _view_rows(cache.lookup_derived("lvs", vg_id, loaded.text, (__file__,)))
    if rows is not None:
        return LvsView(loaded, rows)
    vg = loaded.vg
    report = _vg_report(vg)
    names, unlisted, columns = _view_table(report)
    cache.store_derived("lvs", vg.id, loaded.text, (__file__,), (names, unlisted, columns))
    return LvsView(vg, _rows(names, unlisted, columns), report)


def _lv_size(lv: "LogicalVolume", vg: "VolumeGroup") -> int:
    return lv.extent_count * vg.extent_bytes


def _lv_attr(row: LvRow) -> str:
    """lvm2's ten letters; the metadata's part comes from VgReport, the kernel's (state, open) from here."""
    lv = row.lv
    cells = row.cells
    head, target, skip = cells[2:5] if cells else row.view.static_attr(lv)  # type: ignore[misc]
    state = opened = "X" if _no_dm() else "-"
    if cells[5] if cells else row.view.never_queried(lv):
        state = opened = "-"
    elif state != "X":
        from lvcrypt.lv_names import dm_uuid

        info = _active_devices().get(dm_uuid(row.vg, lv))
        if info is not None:
            state, opened = "a", "o" if info.open_count > 0 else "-"
    missing = row.loaded.missing
    partial = "p" if missing and any(area.pv in missing for s in lv.segments for area, _ in s.pv_areas()) else "-"
    return f"{head}{state}{opened}{target}{partial}{skip}"


def _lv_attrs(rows: list[LvRow]) -> list[object]:
    """lv_attr of all rows at once.  Without a device-mapper to ask, rows with the view's cells and no missing
    PV have the table's offline lv_attr (the static letters around state and open `XX`, `--` for LVs lvm2 never
    asks about, and partial `-`), read with no call per row; any other row, and every row where the kernel has
    devices, is _lv_attr's."""
    if not _no_dm():
        return [_lv_attr(row) for row in rows]
    table = _cells_table(rows)
    if table is not None and not any(map(_MISSING_OF, rows)):
        return list(map(operator.itemgetter(_OFFLINE_ATTR_COLUMN), table))
    return [cells[_OFFLINE_ATTR_COLUMN] if cells is not None and not row.loaded.missing else _lv_attr(row)
            for row in rows for cells in [getattr(row, "cells", None)]]


def _segtype(segment: "Segment") -> str:
    from lvcrypt.metadata.lvreport import report_type

    return report_type(segment)


def _devices(row: LvRow) -> str:
    """PV areas as `device(extent)`, areas on other LVs (images, pool data, origins) as `lv(extent)`."""
    from lvcrypt.metadata.lvreport import areas

    segments = [row.segment] if row.segment else row.lv.segments
    return ",".join(f"{row.loaded.device_of(area.name) if area.is_pv else area.name}({area.offset})"
                    for segment in segments for area in areas(segment, row.vg.pvs))


def _pe_ranges(row: LvRow) -> str:
    from lvcrypt.metadata.lvreport import areas

    segments = [row.segment] if row.segment else row.lv.segments
    return " ".join(f"{row.loaded.device_of(area.name) if area.is_pv else area.name}:"
                    f"{area.offset}-{area.offset + area.length - 1}"
                    for segment in segments for area in areas(segment, row.vg.pvs))


def _stripes(segment: "Segment | None") -> int:
    """lvm2's #Str is the segment's area count: a mirror's images, a raid's images, 0 for a thin volume."""
    from lvcrypt.metadata.lvreport import areas
    from lvcrypt.metadata.segtypes import handler_of, managed

    if segment is None:
        return 1
    if managed(segment):
        return handler_of(segment).stripe_count(segment)
    return len(areas(segment, {}))


def _stripe_size(segment: "Segment | None") -> int | None:
    from lvcrypt.metadata.segtypes import handler_of

    if segment is None:
        return None
    size = handler_of(segment).stripe_size(segment)
    raw = segment.raw.get("stripe_size")  # lvm2's raid4/5/6/10 stripe size, which lvcrypt does not manage
    return size if size is not None else raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _keystore_segment(row: LvRow) -> "Segment | None":
    """The keystore segment describing this LV's encryption: its own, or its (first) keystore's."""
    from lvcrypt.metadata.model import KeystoreSegment

    lv = row.lv
    if not lv.is_keystore:
        stores = lv.keystores()
        lv = row.vg.lvs.get(stores[0]) if stores else None  # type: ignore[assignment]
    segment = lv.segments[0] if lv is not None and lv.segments else None
    return segment if isinstance(segment, KeystoreSegment) else None


def _crypt(attribute: str) -> Callable[[LvRow], object]:
    def get(row: LvRow) -> object:
        segment = _keystore_segment(row)
        value = getattr(segment, attribute, None) if segment else None
        return "" if value is None else value
    return get


def _inline_crypto(row: LvRow) -> str:
    """What the LV's dm device would pass through of blk-crypto hardware (lvcrypt.inline); empty for none."""
    from lvcrypt.activate.tables import build_table
    from lvcrypt.errors import LvcryptError
    from lvcrypt.inline import stack_caps
    from lvcrypt.keystores import data_mapping

    try:
        table = build_table(row.vg, row.lv.name, row.loaded.device_of,
                            lambda store: data_mapping(row.vg, store, row.loaded.device_of))
    except (LvcryptError, OSError):
        return ""
    caps = stack_caps(table, row.sysfs_root).by_table.get(table.name)
    return caps.describe() if caps else ""


def _conversion(row: LvRow, part: int) -> str:
    """lvconvert --encrypt/--decrypt/--reencrypt in progress: its action, or the percentage done."""
    from lvcrypt.extent_mover import conversion_progress

    progress = conversion_progress(row.lv)
    if progress is None:
        return ""
    return progress[0] if part == 0 else f"{progress[1]:.2f}"


def _lv_name(row: LvRow) -> str:
    return row.view.display(row.lv.name)


def _link(report_field: str) -> Callable[[LvRow], str]:
    return lambda row: row.view.link(row.lv, report_field)


def _vg_name(row: "LvRow | VgRow") -> str:
    return row.vg.name


def _vg_names(rows: list[LvRow]) -> list[object]:
    """vg_name of all rows; rows with the view's cells are lv_rows', of their loaded VG: read from the VG's head,
    which a warm `lvs` has without loading the model."""
    if _cells_table(rows) is not None:
        return list(map(_HEAD_NAME, rows))
    return [row.loaded.head.name if getattr(row, "cells", None) is not None else row.vg.name for row in rows]


def _blank(row: object) -> str:
    """Fields lvm2 leaves empty for every LV lvcrypt reports (see LV_FIELDS)."""
    return ""


LV_FIELDS: dict[str, Field] = {
    "lv_name": Field("LV", _lv_name, width=4),
    "vg_name": Field("VG", _vg_name),
    "lv_attr": Field("Attr", _lv_attr),
    "lv_lockargs": Field("LLockArgs", lambda r: r.lv.lock_args or ""),
    "lv_size": Field("LSize", lambda r: _lv_size(r.lv, r.vg), size=True),
    "pool_lv": Field("Pool", _link("pool_lv")),
    "origin": Field("Origin", _link("origin")),
    "data_lv": Field("Data", _link("data_lv")),
    "metadata_lv": Field("Meta", _link("metadata_lv")),
    # Percentages come from the kernel's status of active thin, snapshot, raid, mirror and cache
    # LVs; lvcrypt activates none of those, and lvm2 leaves them empty for inactive LVs.
    "data_percent": Field("Data%", _blank, width=6),
    "metadata_percent": Field("Meta%", _blank, width=6),
    "snap_percent": Field("Snap%", _blank, width=6),
    "move_pv": Field("Move", _blank),
    "mirror_log": Field("Log", _link("mirror_log")),
    "copy_percent": Field("Cpy%Sync", _blank),
    "convert_lv": Field("Convert", _blank),
    "lv_uuid": Field("LV UUID", lambda r: r.lv.id),
    "lv_role": Field("Role", lambda r: r.view.role(r.lv), width=10),
    "lv_path": Field("Path", lambda r: f"/dev/{r.vg.name}/{r.lv.name}" if r.view.has_path(r.lv) else ""),
    "lv_full_name": Field("LV", lambda r: f"{r.vg.name}/{r.lv.name}", width=4),
    "lv_host": Field("Host", lambda r: r.lv.creation_host or "", width=10),
    "seg_count": Field("#Seg", lambda r: len(r.lv.segments)),
    "segtype": Field("Type", lambda r: _segtype(r.segment) if r.segment else ",".join(
        dict.fromkeys(_segtype(s) for s in r.lv.segments))),
    "devices": Field("Devices", _devices),
    "seg_pe_ranges": Field("PE Ranges", _pe_ranges),
    "stripes": Field("#Str", lambda r: _stripes(r.segment or (r.lv.segments[0] if r.lv.segments else None))),
    "stripe_size": Field("Stripe", lambda r: (_stripe_size(r.segment) or 0) * 512, size=True),
    "seg_start": Field("Start", lambda r: (r.segment.start_extent if r.segment else 0) * r.vg.extent_bytes,
                       size=True),
    "seg_start_pe": Field("Start", lambda r: r.segment.start_extent if r.segment else 0),
    "crypt_handler": Field("Handler", _crypt("handler")),
    "crypt_cipher": Field("Cipher", _crypt("cipher")),
    "crypt_key_size": Field("KeySize", _crypt("key_size")),
    "crypt_keystore": Field("Keystore", lambda r: ",".join(r.lv.keystores()) or (r.lv.name if r.lv.is_keystore
                                                                                  else "")),
    "inline_crypto": Field("InlineCrypto", _inline_crypto),
    "crypt_users": Field("Users", lambda r: ",".join(u.name for u in r.vg.users_of_keystore(r.lv.name))),
    "crypt_convert": Field("CryptConvert", lambda r: _conversion(r, 0)),
    "crypt_convert_percent": Field("CryptConv%", lambda r: _conversion(r, 1)),
    "seg_size": Field("SSize", lambda r: (r.segment.extent_count if r.segment else r.lv.extent_count)
                      * r.vg.extent_bytes, size=True),
    "lv_tags": Field("LV Tags", lambda r: ",".join(sorted(r.lv.tags))),
}



_CELLS = operator.attrgetter("cells")
_HEAD_NAME = operator.attrgetter("loaded.head.name")
_MISSING_OF = operator.attrgetter("loaded.missing")


def _cells_table(rows: list[LvRow]) -> list[tuple[object, ...]] | None:
    """The rows' cells when every row has them (read in C, no call of ours per row), else None."""
    try:
        table = list(map(_CELLS, rows))
    except AttributeError:  # another kind of row (report_history's)
        return None
    return None if None in table else table


def _from_cells(index: int, get: Callable[[LvRow], object]) -> Callable[[list[LvRow]], list[object]]:
    """A column read from the rows' table cells, no call of ours per row; a row without cells (another kind of
    row, an LvRow built elsewhere) asks `get`."""
    cell = operator.itemgetter(index)

    def column(rows: list[LvRow]) -> list[object]:
        table = _cells_table(rows)
        if table is not None:
            return list(map(cell, table))
        return [cells[index] if cells is not None else get(row) for row in rows
                for cells in [getattr(row, "cells", None)]]
    return column


# Whole columns for the fields of a plain `lvs` (thousands of rows), by the `get` they stand for: a field whose
# `get` was replaced (report_history, report_joined) is no longer here and is read row by row.
_WHOLE_COLUMNS: dict[Callable[..., object], Callable[[list[LvRow]], list[object]]] = {
    _blank: lambda rows: [""] * len(rows),
    _lv_name: _from_cells(0, _lv_name),
    _lv_attr: _lv_attrs,
    _vg_name: _vg_names,
    LV_FIELDS["lv_size"].get: _from_cells(_SIZE_COLUMN, LV_FIELDS["lv_size"].get),
    **{LV_FIELDS[name].get: _from_cells(column, LV_FIELDS[name].get) for name, column in _LINK_COLUMN.items()},
}


def whole_column(get: Callable[..., object]) -> Callable[[list[object]], list[object]] | None:
    """How to read a field's values for all rows at once (the same values `get` gives), if there is a way.
    Each such field that is no size gives text (`str`), which the layout prints as it is."""
    return _WHOLE_COLUMNS.get(get)  # type: ignore[return-value]


VG_FIELDS: dict[str, Field] = {
    "vg_name": Field("VG", _vg_name),
    "pv_count": Field("#PV", lambda r: len(r.vg.pvs)),
    "lv_count": Field("#LV", lambda r: r.view.lv_count()),
    "snap_count": Field("#SN", lambda r: r.view.snap_count()),
    "vg_attr": Field("Attr", lambda r: _vg_attr(r.vg, bool(r.loaded.missing))),
    "vg_size": Field("VSize", lambda r: r.vg.extent_count() * r.vg.extent_bytes, size=True),
    "vg_free": Field("VFree", lambda r: r.vg.free_extents() * r.vg.extent_bytes, size=True),
    "vg_uuid": Field("VG UUID", lambda r: r.vg.id),
    "vg_extent_size": Field("Ext", lambda r: r.vg.extent_bytes, size=True),
    "vg_extent_count": Field("#Ext", lambda r: r.vg.extent_count()),
    "vg_free_count": Field("Free", lambda r: r.vg.free_extents()),
    "vg_seqno": Field("Seq", lambda r: r.vg.seqno),
    "max_lv": Field("MaxLV", lambda r: r.vg.max_lv),
    "max_pv": Field("MaxPV", lambda r: r.vg.max_pv),
    "vg_lock_type": Field("LockType", lambda r: r.vg.lock_type or ""),
    "vg_lock_args": Field("VLockArgs", lambda r: r.vg.lock_args or ""),
    "vg_mda_count": Field("#VMda", lambda r: sum(len(pv.mdas) for pv in r.loaded.pvs.values())),
    "vg_tags": Field("VG Tags", lambda r: ",".join(sorted(r.vg.tags))),
}


def _pv_size(r: PvRow) -> int:
    if r.vg is not None and r.key is not None:
        return r.vg.pvs[r.key].pe_count * r.vg.extent_bytes
    return r.pv.header.device_size if r.pv else 0


def _pv_free(r: PvRow) -> int:
    if r.vg is not None and r.key is not None:
        return r.vg.free_extents(r.key) * r.vg.extent_bytes
    return _pv_size(r)


def _vg_attr(vg: "VolumeGroup", missing: bool) -> str:
    """lvm2's six letters: permissions, resizeable, exported, partial, allocation policy, shared."""
    from lvcrypt.metadata.lvreport import ALLOCATION_LETTERS
    from lvcrypt.store.access import is_exported, is_writable, lock_type

    policy = ALLOCATION_LETTERS.get(vg.allocation_policy or "normal", "-")
    return (f"{'w' if is_writable(vg) else 'r'}{'z' if 'RESIZEABLE' in vg.status else '-'}"
            f"{'x' if is_exported(vg) else '-'}{'p' if missing else '-'}{policy}{'s' if lock_type(vg) else '-'}")


def _pv_attr(r: PvRow) -> str:
    from lvcrypt.store.access import is_exported

    if r.vg is None or r.key is None:
        return "---"
    # A PV of a VG that is not allocatable is lvm2's "used" (u).
    return (f"{'a' if r.vg.pvs[r.key].allocatable else 'u'}{'x' if is_exported(r.vg) else '-'}"
            f"{'m' if r.pv is None else '-'}")


PV_FIELDS: dict[str, Field] = {
    "pv_name": Field("PV", lambda r: r.path, width=10),
    "vg_name": Field("VG", lambda r: r.vg.name if r.vg else ""),
    "pv_fmt": Field("Fmt", lambda r: "lvm2"),
    "pv_attr": Field("Attr", _pv_attr),
    "pv_size": Field("PSize", _pv_size, size=True),
    "pv_free": Field("PFree", _pv_free, size=True),
    "pv_used": Field("Used", lambda r: _pv_size(r) - _pv_free(r), size=True),
    "pv_uuid": Field("PV UUID", lambda r: r.pv.uuid if r.pv else r.vg.pvs[r.key].id),
    "dev_size": Field("DevSize", lambda r: r.pv.header.device_size if r.pv else r.vg.pvs[r.key].dev_size * 512,
                      size=True),
    "pe_start": Field("1st PE", lambda r: r.pv.header.pe_start if r.pv else r.vg.pvs[r.key].pe_start * 512,
                      size=True, width=7),
    "pv_pe_count": Field("PE", lambda r: r.vg.pvs[r.key].pe_count if r.vg and r.key else 0, width=3),
    "pv_pe_alloc_count": Field("Alloc", lambda r: r.vg.used_extents(r.key) if r.vg and r.key else 0),
    "pv_mda_count": Field("#PMda", lambda r: len(r.pv.mdas) if r.pv else 0),
    "pv_mda_size": Field("PMdaSize", lambda r: min((m.locn.size for m in r.pv.mdas), default=0) if r.pv else 0,
                         size=True, width=9),
    "pv_tags": Field("PV Tags", lambda r: ",".join(sorted(r.vg.pvs[r.key].tags)) if r.vg and r.key else ""),
}


def load_vgs(devices: str | None, names: list[str], command: str, shared: bool = False,
             foreign: bool = False, missing: list[str] | None = None) -> tuple["Scan", list["LoadedVg"], set[str]]:
    """Load the requested VGs (all when none named), each read under its shared lock.

    VGs lvm2 would not show on this host (shared without --shared, foreign without --foreign,
    exported for lvs) are left out as lvm2 leaves them out; naming one is an error.  A named VG
    that is not found is an error too, or, given `missing`, a message added there (a report then
    shows the others, as lvm2's does).  Returns also the uuids of the PVs of the VGs left out, which pvs does not list as orphans either.
    """
    from lvcrypt.errors import LvcryptError
    from lvcrypt.store.access import Access, local_system_id, refusal, system_id
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import candidate_devices
    from lvcrypt.store.lock import GLOBAL, VgLock

    paths = candidate_devices(devices)
    access = Access(exported=command != "lvs", shared=shared, foreign=foreign)
    local_id = local_system_id()
    hidden: set[str] = set()
    unfound = False
    with contextlib.ExitStack() as held:
        wanted = names
        if not names:  # as lvm2: a report over every VG holds the global lock shared, then each VG's
            held.enter_context(VgLock(GLOBAL, exclusive=False))
            wanted = scan(paths).vg_names()  # names the VGs to lock; they are read again under their locks
        for name in sorted(set(wanted)):
            held.enter_context(VgLock(name, exclusive=False))
        found = scan(paths)
        loaded = []
        for name in wanted:
            try:
                vg = load_vg(found, name, whole=command != "lvs")  # lvs reads its own view (lvs_view)
            except LvcryptError as error:
                if missing is None or not names:
                    raise
                missing.append(str(error))
                unfound = True
                continue
            head = vg.head  # the VG's own fields and PVs: what deciding whether to show it reads (not its LVs)
            refused = refusal(head, access, local_id)
            if refused and names:
                raise LvcryptError(refused)
            if refused:
                if system_id(head) and system_id(head) != local_id and not foreign:
                    print(f"  {refused}", file=sys.stderr)
                hidden.update(pv.id for pv in head.pvs.values())
                continue
            for note in vg.stale:
                print(f"  WARNING: {note}", file=sys.stderr)
            for key in vg.missing:
                print(f"  WARNING: VG {name} is missing PV {head.pvs[key].id} (last written to "
                      f"{head.pvs[key].device or 'unknown device'}).", file=sys.stderr)
            loaded.append(vg)
    for path, problem in found.problems.items():
        if devices:
            print(f"  WARNING: {problem}", file=sys.stderr)
    members = {pv.uuid for vg in loaded for pv in vg.pvs.values()}
    for pv in found.pvs.values():  # damage on PVs of no VG shown (the notes of members came with their VG)
        if pv.uuid not in members and pv.uuid not in hidden and not unfound:  # a VG not found names its damage
            for mda in pv.mdas:
                if mda.problem:
                    print(f"  WARNING: {mda.problem}", file=sys.stderr)
    return found, loaded, hidden


_NAME = operator.attrgetter("name")


def lv_rows(devices: str | None, names: list[str], every: bool = False, per_segment: bool = False,
            shared: bool = False, foreign: bool = False, sysfs_root: str = "/sys",
            history: bool = False, missing: list[str] | None = None) -> list[object]:
    """The rows of `lvs NAMES` (VGs or VG/LVs; hidden LVs too with `every`, removed LVs lvm2
    remembers with `history`), one per segment with `per_segment`, in lvm2's order (by name).
    A VG or LV named and not found is an error, or a message added to `missing` (load_vgs)."""
    from lvcrypt.errors import LvcryptError

    historical = None
    if history:  # report_history brings report_all's fields: imported only when asked
        from lvcrypt import report_history as historical
    _active_devices.cache_clear()  # once per command, also when several run in one process
    vg_names = list(dict.fromkeys(item.split("/")[0] for item in names))
    only = {tuple(item.split("/", 1)) for item in names if "/" in item}
    whole = {item for item in names if "/" not in item}  # a VG named alone: all its LVs, even if some are named
    _, loaded, _ = load_vgs(devices, vg_names, "lvs", shared, foreign, missing)
    rows: list[object] = []
    shown: set[tuple[str, str]] = set()
    for vg in sorted(loaded, key=lambda item: item.head.name):
        view = lvs_view(vg)
        vg_name = vg.head.name
        named = vg_name in {v for v, _ in only} and vg_name not in whole

        def keep(name: str, visible: bool) -> bool:
            # An LV named on the command line is shown even if hidden, as lvm2 shows it.
            return (vg_name, name) in only if named else every or visible

        if vg.model is not None and not per_segment and historical is None:
            rows += _rows_of_view(vg, view, keep, sysfs_root, shown)
            continue
        gone = historical.historical_rows(vg.vg, vg, view) if historical else []
        for item in sorted([*vg.vg.lvs.values(), *gone], key=_NAME):
            if historical and isinstance(item, historical.HistoricalRow):
                if not named or (vg_name, historical.PREFIX + item.name) in only:
                    shown.add((vg_name, historical.PREFIX + item.name))
                    rows.append(item)
                continue
            lv = item
            cells = view.cells(lv.name)  # a listed LV's cached row: its visibility is cells[1]
            if cells is None and not view.listed(lv):
                continue
            if not keep(lv.name, cells[1] if cells is not None else view.visible(lv)):
                continue
            shown.add((vg_name, lv.name))
            if per_segment:
                rows += [LvRow(vg.vg, vg, lv, segment, view, sysfs_root, cells) for segment in lv.segments]
            else:
                rows.append(LvRow(vg.vg, vg, lv, None, view, sysfs_root, cells))
    present = {vg.head.name for vg in loaded}
    for item in dict.fromkeys(names):
        vg_name, _, lv_name = item.partition("/")
        if lv_name and vg_name in present and vg_name not in whole and (vg_name, lv_name) not in shown:
            message = f'Failed to find logical volume "{vg_name}/{lv_name}"'
            if missing is None:
                raise LvcryptError(message)
            missing.append(message)
    return rows


def _rows_of_view(loaded: "LoadedVg", view: LvsView, keep: Callable[[str, bool], bool], sysfs_root: str,
                  shown: set[tuple[str, str]]) -> list[object]:
    """lv_rows of a VG whose model is not loaded (only its head, from the model cache), one per LV, from the
    view alone: it names every LV, and its cells answer which are listed (cells) and visible (cells[1])."""
    rows: list[object] = []
    for name in sorted(view.names()):
        cells = view.cells(name)
        if cells is not None and keep(name, cells[1]):  # type: ignore[arg-type]
            shown.add((loaded.head.name, name))
            rows.append(LvRow.of_view(loaded, name, view, sysfs_root, cells))
    return rows


def vg_rows(devices: str | None, names: list[str], shared: bool = False, foreign: bool = False,
            missing: list[str] | None = None) -> list[VgRow]:
    """The rows of `vgs NAMES` (every VG shown on this host when none is named), by name; a VG
    named and not found is an error, or a message added to `missing` (load_vgs)."""
    _, loaded, _ = load_vgs(devices, names, "vgs", shared, foreign, missing)
    return [VgRow(vg.vg, vg, _vg_report(vg.vg)) for vg in sorted(loaded, key=lambda item: item.vg.name)]


def pv_rows(devices: str | None, names: list[str], shared: bool = False, foreign: bool = False) -> list[PvRow]:
    """The rows of `pvs NAMES`: PVs of the VGs shown (missing ones as [unknown]) and orphans, by path."""
    found, loaded, hidden = load_vgs(devices, [], "pvs", shared, foreign)
    rows: list[PvRow] = []
    members: set[str] = set()
    for vg in loaded:
        for key, pv in vg.vg.pvs.items():
            on_disk = vg.pvs.get(key)
            members.add(pv.id)
            rows.append(PvRow(on_disk.path if on_disk else "[unknown]", on_disk, vg.vg, key, vg))
    for path, pv in found.pvs.items():
        if pv.uuid not in members and pv.uuid not in hidden:
            rows.append(PvRow(path, pv, None, None, None))
    if names:
        rows = [row for row in rows if row.path in names]
    rows.sort(key=lambda row: row.path)
    return rows
