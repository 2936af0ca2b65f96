"""One report command's columns and rows: `-o`, `-S`, `-O` and `--segments` put together.

The CLI lays out what this returns.  It lives apart from the field model
(reportfields.py) because the choices between fields are lvm2's report rules:
a segment field named anywhere (`-o`, `-S`, `-O`) or `--segments` makes one row
per segment, `-S` keeps rows, `-O` orders them from lvm2's collection order.
"""

from __future__ import annotations

import os
from lvcrypt.records import field
from typing import TYPE_CHECKING

from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.records import dataclass

if TYPE_CHECKING:
    from typing import Callable

    from lvcrypt.report_select import Node
    from lvcrypt.reportfields import Field

# lvm2's field prefix per report (what `size`, `name`, `tags` mean), lib/report/report.c.
PREFIX = {"lv": "lv_", "vg": "vg_", "pv": "pv_", "seg": "seg_"}
SEGMENT_DEFAULT = ["lv_name", "vg_name", "lv_attr", "stripes", "segtype", "seg_size"]


@dataclass
class ReportRequest:
    """What the user asked of a report, as lvm2's options say it."""

    options: list[str] | None = None
    select: str | None = None
    sort: list[str] | None = None
    segments: bool = False
    names: list[str] = field(default_factory=list)
    history: bool = False  # lvs -H: removed LVs lvm2 remembers, as rows (report_history)
    # Filled by the report: what lvm2 says of each object named and not found; the report shows
    # the others and the command then fails, as lvm2's.
    missing: list[str] = field(default_factory=list)


def merged_options(spec: list[str] | None, default: list[str], prefix: str) -> list[str]:
    """The field words of repeated `-o` options as lvm2 merges them (tools/reporter.c): each `-o` is one
    group whose first character acts on the list so far, the default first: `+a,b` adds both, `-a,b`
    removes the last occurrence of each (by name, with or without the report's prefix), anything else
    replaces the list.  So `-o lv_name -o lv_size` shows LSize alone, and `+` inside a group is no prefix."""
    words = list(default)
    for item in spec or []:
        if not item:
            raise UsageError("Invalid options string: ")
        action, body = (item[0], item[1:]) if item[0] in "+-" else ("", item)
        group = [word.strip() for word in body.split(",") if word.strip()]
        if action == "+":
            words += group
        elif action == "-":
            for word in group:
                bare = word.removeprefix(prefix)
                last = next((i for i in range(len(words) - 1, -1, -1)
                             if words[i] == word or words[i].removeprefix(prefix) == bare), None)
                if last is not None:
                    del words[last]
        else:
            words = group
    return words


def columns_of(spec: list[str] | None, default: list[str], fields: dict[str, "Field"], prefix: str,
               all_fields: list[str] | None = None) -> list[str]:
    """The columns of `-o` (merged_options), `all` being every field of the report (`all_fields`),
    names as -S reads them."""
    if not spec:  # the default columns: report_select (the field-name resolver) is not needed
        return list(default)
    from lvcrypt.report_select import resolve

    columns: list[str] = []
    for word in merged_options(spec, default, prefix):
        if all_fields is not None and word.lower() == "all":
            columns += all_fields
            continue
        group = _field_groups().get(word.lower()) if all_fields is not None else None
        if group is not None:
            columns += group
            continue
        name = resolve(word, fields, prefix)
        if name is None:
            raise UsageError(f"unrecognised field: {word} (known: {', '.join(sorted(fields))})")
        columns.append(name)
    return columns


def wants_help(spec: list[str] | None) -> bool:
    """`-o help` (or `-o ?`): lvm2 lists the report's fields instead of reporting."""
    return any(word.strip() in ("help", "?") for item in spec or [] for word in item.split(","))


def _all_parts() -> list[tuple[str, list[str]]]:
    """lvm2's fields by type (lib/report/columns.h), in its table's order: an LV's own, what the kernel
    says of it (info, status, lv_attr needing both), a PV's label and the rest, VG, segment, PV segment."""
    from lvcrypt.report_all import LV_ALL, PV_ALL, VG_ALL
    from lvcrypt.report_pvsegments import LABEL_FIELDS_UNTIL, PVSEG_FIELDS
    from lvcrypt.report_segments import SEG_ALL

    info, status, attr = (LV_ALL.index(name) for name in ("lv_kernel_major", "data_percent", "lv_attr"))
    label = PV_ALL.index(LABEL_FIELDS_UNTIL) + 1
    return [("lv", LV_ALL[:info]), ("lvinfo", LV_ALL[info:status]), ("lvstatus", LV_ALL[status:attr]),
            ("lvattr", LV_ALL[attr:]), ("label", PV_ALL[:label]), ("pv", PV_ALL[label:]), ("vg", VG_ALL),
            ("seg", SEG_ALL), ("pvseg", list(PVSEG_FIELDS))]


def _field_groups() -> dict[str, list[str]]:
    """lvm2's `-o lv_all`, `vg_all`, `pv_all`, `seg_all`, `pvseg_all`: every field of one object."""
    parts = dict(_all_parts())
    return {"lv_all": parts["lv"] + parts["lvinfo"] + parts["lvstatus"] + parts["lvattr"], "vg_all": parts["vg"],
            "pv_all": parts["label"] + parts["pv"], "seg_all": parts["seg"], "pvseg_all": parts["pvseg"]}


def all_columns(own: set[str], request: ReportRequest, fields: dict[str, "Field"], prefix: str,
                default: list[str]) -> list[str]:
    """What `-o all` lists, as lvm2 2.03.16: every field of the report's own types (`own`, of
    _all_parts) and of the type of each field named in -o or -O (not -S), the default ones too
    when `-o` adds to them, in lvm2's table order; so `vgs -o all,lv_name` lists the LV fields
    too, `pvs -o all,vg_name` and `pvs -o +all` the VG fields."""
    from lvcrypt.report_select import resolve

    parts = _all_parts()
    words = {word.strip().lstrip("+-") for item in request.sort or [] for word in item.split(",")}
    words |= set(merged_options(request.options, default, prefix))
    named = {resolve(word, fields, prefix) for word in words if word}
    kinds = own | {kind for kind, names in parts if named & set(names)}
    return [name for kind, names in parts if kind in kinds for name in names]


def _named_words(request: ReportRequest) -> set[str]:
    """The field names a request mentions in -o, -O and -S, as typed."""
    import re

    words = {word.strip().lstrip("+-") for item in (request.options or []) + (request.sort or [])
             for word in item.split(",")}
    if request.select:  # no regex to compile for a plain report
        words |= set(re.findall(r"([A-Za-z0-9_-]+)\s*(?:=~|!~|!=|>=|<=|=|>|<|(?:since|after|until|before)\b)",
                                request.select))
    return {word for word in words if word}


def _extended(request: ReportRequest, fields: dict[str, "Field"], prefix: str) -> bool:
    """Whether the request names a field beyond the common ones (or `all`): only then is report_all
    loaded, which keeps a plain `lvs` as fast as before."""
    words = _named_words(request)
    if not words:
        return False
    from lvcrypt.report_select import resolve

    return any(word.lower() == "all" or resolve(word, fields, prefix) is None for word in words)


def lv_report(devices: str | None, request: ReportRequest, every: bool, shared: bool, foreign: bool,
              sysfs_root: str) -> tuple[list[str], dict[str, "Field"], list[object]]:
    from lvcrypt.reportfields import LV_DEFAULT, LV_FIELDS, SEGMENT_FIELDS, VG_FIELDS, lv_rows

    fields = {**VG_FIELDS, **LV_FIELDS}  # lvm2's lvs also reports the LV's VG fields
    prefix = PREFIX["seg" if request.segments else "lv"]
    all_fields = None
    segment_fields = set(SEGMENT_FIELDS)
    if _extended(request, fields, prefix):
        from lvcrypt.report_all import EXTRA_LV_FIELDS, EXTRA_VG_FIELDS
        from lvcrypt.report_segments import SEG_EXTRA_FIELDS

        fields = {**fields, **EXTRA_LV_FIELDS, **EXTRA_VG_FIELDS, **SEG_EXTRA_FIELDS}
        segment_fields |= set(SEG_EXTRA_FIELDS)
        own = {"lv", "vg", "seg"} if request.segments else {"lv", "lvinfo", "lvstatus", "lvattr", "vg"}
        all_fields = all_columns(own, request, fields, prefix, SEGMENT_DEFAULT if request.segments else LV_DEFAULT)
    if request.history:
        from lvcrypt.report_history import with_history

        fields = with_history(fields)
    try:
        columns = columns_of(request.options, SEGMENT_DEFAULT if request.segments else LV_DEFAULT, fields, prefix,
                             all_fields)
        keys = _sort_keys(request, fields, prefix)
    except UsageError:
        _refuse_pv_fields(request, prefix)
        raise
    try:
        test, used = _selection(request, fields, prefix)
    except LvcryptError:
        _refuse_pv_fields(request, prefix)
        raise
    named = set(columns) | used | {name for name, _ in keys}
    per_segment = request.segments or bool(named & segment_fields)
    rows = lv_rows(devices, request.names, every, per_segment, shared, foreign, sysfs_root, request.history,
                   request.missing)
    rows = _kept(rows, test, fields)
    if keys:
        from lvcrypt.report_sort import sort_rows

        rows = sort_rows(rows, keys, fields, sorted(rows, key=_collection_order(request.names)))
    return columns, fields, rows


def _sort_keys(request: ReportRequest, fields: dict[str, "Field"], prefix: str) -> list[tuple[str, bool]]:
    """-O's keys; report_sort (and report_select, report_time under it) imported only when -O is given."""
    if not request.sort:
        return []
    from lvcrypt.report_sort import sort_keys

    return sort_keys(request.sort, fields, prefix)


def _selection(request: ReportRequest, fields: dict[str, "Field"], prefix: str) -> tuple["Node | None", set[str]]:
    """-S as a test of one row and the fields it reads; report_select imported only when -S is given."""
    if not request.select:
        return None, set()
    from lvcrypt.report_select import parse

    return parse(request.select, fields, prefix)


def _kept(rows: list[object], test: "Node | None", fields: dict[str, "Field"]) -> list[object]:
    """The rows -S keeps (all without one); report_select imported only when there is a selection."""
    if test is None:
        return rows
    from lvcrypt.report_select import select

    return select(rows, test, fields)


def _refuse_pv_fields(request: ReportRequest, prefix: str) -> None:
    """lvs naming a PV field (in -o, -O or -S) fails as lvm2's does (status 5), not as an unknown field."""
    from lvcrypt.report_all import EXTRA_PV_FIELDS
    from lvcrypt.report_joined import refuse_lv_and_pv
    from lvcrypt.report_pvsegments import PVSEG_FIELDS
    from lvcrypt.report_select import resolve
    from lvcrypt.reportfields import PV_FIELDS

    pv_only = {name: field for name, field in {**PV_FIELDS, **EXTRA_PV_FIELDS, **PVSEG_FIELDS}.items()
               if name != "vg_name"}
    refuse_lv_and_pv("seg" if request.segments else "lv", True,
                     any(word and resolve(word, pv_only, prefix) for word in _named_words(request)))


def _device_rank(path: str) -> int:
    try:
        status = os.stat(path)
    except OSError:
        return 0
    return status.st_rdev or status.st_ino


def _vg_rank(loaded: object, names: list[str]) -> tuple[int, int]:
    """Where lvm2 handles a VG: in the order named, else the reverse of its device scan (by device
    number), which gives the order of rows that -O keys leave equal."""
    vg = loaded.vg  # type: ignore[attr-defined]
    named = [item.split("/")[0] for item in names]
    if vg.name in named:
        return 0, named.index(vg.name)
    paths = [pv.path for pv in loaded.pvs.values()]  # type: ignore[attr-defined]
    return 1, -min((_device_rank(path) for path in paths), default=0)


def _collection_order(names: list[str]) -> "Callable[[object], tuple[object, ...]]":
    """lvm2 collects each VG's LVs in metadata order (then segment order), except thin pools,
    which it puts at the front as it meets them (toollib's process_each_lv_in_vg)."""
    from lvcrypt.report_history import HistoricalRow

    def key(row: object) -> tuple[object, ...]:
        if isinstance(row, HistoricalRow):  # after the VG's LVs
            return _vg_rank(row.loaded, names), (2, row.name), 0
        vg, lv, segment = row.vg, row.lv, row.segment  # type: ignore[attr-defined]
        index = list(vg.lvs).index(lv.name)
        pool = row.view.family(lv) == "thin-pool"  # type: ignore[attr-defined]
        return (_vg_rank(row.loaded, names), (0, -index) if pool else (1, index),  # type: ignore[attr-defined]
                segment.start_extent if segment is not None else 0)
    return key


def _vg_collection_order(names: list[str]) -> "Callable[[object], tuple[object, ...]]":
    return lambda row: (_vg_rank(row.loaded, names),)  # type: ignore[attr-defined]


def _pv_collection_order(row: object) -> tuple[object, ...]:
    """PVs of each VG in metadata order, in lvm2's VG order; PVs of no VG last."""
    loaded, vg, key = row.loaded, row.vg, row.key  # type: ignore[attr-defined]
    start = row.pvseg[0] if row.pvseg else 0  # type: ignore[attr-defined]
    if loaded is None or vg is None:
        return (1, (0, 0), 0, _device_rank(row.path), start)  # type: ignore[attr-defined]
    return (0, _vg_rank(loaded, []), list(vg.pvs).index(key), 0, start)


def vg_report(devices: str | None, request: ReportRequest, shared: bool,
              foreign: bool) -> tuple[list[str], dict[str, "Field"], list[object]]:
    """vgs: a row per VG; with LV fields a row per LV (per LV segment with segment fields), with PV
    fields a row per PV (per PV segment with pvseg_* fields), as lvm2 joins them."""
    from lvcrypt.report_joined import refuse_lv_and_pv, vg_lv_rows, vg_pv_rows
    from lvcrypt.report_pvsegments import PVSEG_FIELDS, pv_segment_rows
    from lvcrypt.reportfields import LV_FIELDS, PV_FIELDS, SEGMENT_FIELDS, VG_DEFAULT, VG_FIELDS, lv_rows, vg_rows

    vg_fields, lv_fields, pv_fields = dict(VG_FIELDS), dict(LV_FIELDS), {**PV_FIELDS, **PVSEG_FIELDS}
    segment_fields = set(SEGMENT_FIELDS)
    all_fields = None
    if _extended(request, {**lv_fields, **pv_fields, **vg_fields}, PREFIX["vg"]):
        from lvcrypt.report_all import EXTRA_LV_FIELDS, EXTRA_PV_FIELDS, EXTRA_VG_FIELDS
        from lvcrypt.report_segments import SEG_EXTRA_FIELDS

        vg_fields.update(EXTRA_VG_FIELDS)
        lv_fields.update({**EXTRA_LV_FIELDS, **SEG_EXTRA_FIELDS})
        pv_fields.update(EXTRA_PV_FIELDS)
        segment_fields |= set(SEG_EXTRA_FIELDS)
        all_fields = all_columns({"vg"}, request, {**lv_fields, **pv_fields, **vg_fields}, PREFIX["vg"], VG_DEFAULT)
    lv_names = set(lv_fields) - set(vg_fields)
    pv_names = set(pv_fields) - set(vg_fields)

    def load(named: set[str]) -> list[object]:
        refuse_lv_and_pv("vg", bool(named & lv_names), bool(named & pv_names))
        if named & lv_names:
            return list(vg_lv_rows(lv_rows(devices, list(request.names), False, bool(named & segment_fields),
                                           shared, foreign, missing=request.missing)))
        rows = vg_rows(devices, list(request.names), shared, foreign, request.missing)
        if not named & pv_names:
            return list(rows)
        joined = vg_pv_rows(list(rows))
        return list(pv_segment_rows(joined) if named & set(PVSEG_FIELDS) else joined)

    fields = {**lv_fields, **pv_fields, **vg_fields}
    return _plain_report(VG_DEFAULT, fields, all_fields, _vg_collection_order(request.names), PREFIX["vg"],
                         request, load)


def pv_report(devices: str | None, request: ReportRequest, shared: bool,
              foreign: bool) -> tuple[list[str], dict[str, "Field"], list[object]]:
    """pvs: a row per PV (per PV segment with --segments or pvseg_* fields, each carrying its LV
    area with LV or segment fields); VG fields read the PV's VG, the orphan VG's for a PV of none."""
    from lvcrypt.metadata.lvreport import VgReport
    from lvcrypt.report_joined import area_rows, pv_lv_fields, pv_vg_fields, with_views
    from lvcrypt.report_pvsegments import PVSEG_DEFAULT, PVSEG_FIELDS, pv_segment_rows
    from lvcrypt.reportfields import LV_FIELDS, PV_DEFAULT, PV_FIELDS, VG_FIELDS, pv_rows

    pv_fields = {**PV_FIELDS, **PVSEG_FIELDS}
    lv_all, vg_all = dict(LV_FIELDS), dict(VG_FIELDS)
    all_fields = None
    if _extended(request, {**lv_all, **vg_all, **pv_fields}, PREFIX["pv"]):
        from lvcrypt.report_all import EXTRA_LV_FIELDS, EXTRA_PV_FIELDS, EXTRA_VG_FIELDS
        from lvcrypt.report_segments import SEG_EXTRA_FIELDS

        pv_fields.update(EXTRA_PV_FIELDS)
        lv_all.update({**EXTRA_LV_FIELDS, **SEG_EXTRA_FIELDS})
        vg_all.update(EXTRA_VG_FIELDS)
        all_fields = all_columns({"label", "pvseg"} if request.segments else {"label", "pv"}, request,
                                 {**vg_all, **lv_all, **pv_fields}, PREFIX["pv"],
                                 PVSEG_DEFAULT if request.segments else PV_DEFAULT)
    lv_fields = pv_lv_fields(lv_all, pv_fields)
    vg_fields = pv_vg_fields(vg_all, {**pv_fields, **lv_fields})

    def load(named: set[str]) -> list[object]:
        rows = pv_rows(devices, request.names, shared, foreign)
        if named & set(lv_fields):
            return list(area_rows(rows, VgReport))
        if request.segments or named & set(PVSEG_FIELDS):
            rows = pv_segment_rows(rows)
        return list(with_views(rows, VgReport) if named & set(vg_fields) else rows)

    return _plain_report(PVSEG_DEFAULT if request.segments else PV_DEFAULT, {**vg_fields, **lv_fields, **pv_fields},
                         all_fields, _pv_collection_order, PREFIX["pv"], request, load)


def _plain_report(default: list[str], fields: dict[str, "Field"], all_fields: list[str] | None,
                  collection: "Callable[[object], tuple[object, ...]]", prefix: str, request: ReportRequest,
                  load: "Callable[[set[str]], list[object]]") -> tuple[list[str], dict[str, "Field"], list[object]]:
    columns = columns_of(request.options, default, fields, prefix, all_fields)
    test, used = _selection(request, fields, prefix)
    keys = _sort_keys(request, fields, prefix)
    rows = _kept(load(set(columns) | used | {name for name, _ in keys}), test, fields)
    if not keys:
        return columns, fields, rows
    from lvcrypt.report_sort import sort_rows

    return columns, fields, sort_rows(rows, keys, fields, sorted(rows, key=collection))
