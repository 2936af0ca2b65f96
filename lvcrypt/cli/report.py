"""`pvs`, `vgs`, `lvs`: lvm2's report commands, laid out as lvm2 lays them out.

The rows and each field's value come from the core (lvcrypt/reportfields.py);
here sizes follow `--units` (lvm2's letters), columns are aligned as lvm2
aligns them, and `--separator` and `--reportformat json` print what lvm2
prints for scripts.
"""

from __future__ import annotations

import argparse
import sys
from itertools import repeat
from typing import TYPE_CHECKING, Callable

from lvcrypt.cli import LastGiven, not_found_status, read_options

if TYPE_CHECKING:
    from lvcrypt.report_query import ReportRequest
    from lvcrypt.reportfields import Field
    from lvcrypt.units import Units

def _units(text: str) -> "Units":
    """lvm2's --units: a letter, or a number and a letter (`3m`: sizes in units of 3 MiB)."""
    from lvcrypt.errors import UsageError
    from lvcrypt.units import parse_units

    try:
        return parse_units(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _values(field: "Field") -> Callable[[list[object]], list[object]]:
    """A column's raw values, read for all rows at once where reportfields has a way (whole_column)."""
    from lvcrypt.reportfields import whole_column

    get = field.get
    return whole_column(get) or (lambda rows: list(map(get, rows)))


def _column(field: "Field", name: str, args: argparse.Namespace) -> Callable[[list[object]], list[str]]:
    """How one column prints its rows' values, chosen once per column and run over the whole column (`map`,
    no call of ours per cell): a report of 2,000 LVs has 24,000 cells by default."""
    from lvcrypt.reportfields import whole_column
    from lvcrypt.units import size_to_string

    values = _values(field)
    if args.binary:  # report_select knows the two-valued fields; imported only for --binary
        from lvcrypt.report_select import BINARY_FIELDS, binary

        if name in BINARY_FIELDS:
            return lambda rows: [str(binary(value)) for value in values(rows)]
    if not field.size:  # a whole column of a field that is no size is already text
        return values if whole_column(field.get) else lambda rows: list(map(str, values(rows)))
    units, suffix = args.units, not args.nosuffix

    def sizes(rows: list[object]) -> list[str]:
        """LVs of one size are common: each distinct size formatted once, then looked up (`map`, no call of
        ours per cell); sizes lvm2 leaves empty or names (`auto`) are strings, printed as they are."""
        raws = values(rows)
        texts = {raw: raw if isinstance(raw, str) else size_to_string(int(raw), units,  # type: ignore[call-overload]
                                                                      suffix=suffix) for raw in set(raws)}
        return list(map(texts.__getitem__, raws))

    return sizes


def _render(kind: str, columns: list[str], fields: dict[str, "Field"], rows: list[object],
            args: argparse.Namespace) -> None:
    cells = [_column(fields[name], name, args)(rows) for name in columns]
    if args.reportformat == "json":
        import json

        body = ",\n".join("                  {" + ", ".join(f"{json.dumps(name)}:{json.dumps(cell)}"
                                                          for name, cell in zip(columns, line)) + "}"
                          for line in _table(cells, rows))
        print("  {\n      \"report\": [\n          {\n              \"" + kind + "\": [\n"
              + (body + "\n" if body else "") + "              ]\n          }\n      ]\n  }")
        return
    if not rows:  # lvm2 prints no headings for a report without rows
        return
    headings = [fields[name].heading for name in columns]
    separator = " " if args.separator is None else args.separator
    if args.nameprefixes:
        quote = "" if args.unquoted else "'"
        cells = [[f"LVM2_{name.upper()}={quote}{cell}{quote}" for cell in column]
                 for name, column in zip(columns, cells)]
    if args.rows:  # one line per field, not aligned (lvm2 ignores --aligned here)
        lines = [[heading] * (not args.noheadings) + column for heading, column in zip(headings, cells)]
        sys.stdout.write("".join(f"  {separator.join(line)}\n" for line in lines))
        return
    if args.nameprefixes or (args.separator is not None and not args.aligned):
        lines = map(separator.join, _table(cells, rows))
        sys.stdout.write("".join(f"  {line}\n" for line in ([] if args.noheadings else
                                                              [separator.join(headings)]) + list(lines)))
        return
    # the first row's value through the column's own way (whole_column): lvs' rows read from the cached view
    right = [fields[name].right if fields[name].right is not None else
             fields[name].size or bool(rows) and isinstance(_values(fields[name])(rows[:1])[0], int)
             for name in columns]
    # lvm2's width is the field's own (columns.h) or its heading's, cut to it, unless a value is wider
    minimum = [fields[name].width or len(heading) for name, heading in zip(columns, headings)]
    lines = aligned(headings, cells, right, minimum, separator, len(rows))
    sys.stdout.write("".join(map("  {}\n".format, lines if not args.noheadings else lines[1:])))


def _table(cells: list[list[str]], rows: list[object]) -> list[tuple[str, ...]]:
    """The cells by row (one tuple per row, empty ones for a report of no columns)."""
    return list(zip(*cells)) if cells else [() for _ in rows]


def aligned(headings: list[str], cells: list[list[str]], right: list[bool], minimum: list[int],
            separator: str, count: int) -> list[str]:
    """lvm2's column layout: the headings' line, then one line per row; numbers and sizes right-aligned
    (headings always left-aligned), every column padded to its widest cell or lvm2's minimum width for
    the field, the heading cut to that width.

    Not tabulate: for 2,000 LVs tabulate alone takes longer than lvm2's whole `lvs`.  Each column is padded as
    a whole (`map` of `str.ljust` or `str.rjust`, no call of ours per cell), a column of one value (six of lvs'
    twelve default ones are empty) padded once and joined to its neighbours of one value, then the columns
    are joined by row.
    """
    parts: list[list[str] | str] = []  # padded columns, and the text of each run of columns of one value
    widths = []
    for column, flush, least in zip(cells, right, minimum):
        pad = str.rjust if flush else str.ljust
        if not column or column.count(column[0]) < len(column):
            widths.append(max(least, max(map(len, column), default=0)))
            parts.append(list(map(pad, column, repeat(widths[-1]))))
            continue
        widths.append(max(least, len(column[0])))
        if parts and isinstance(parts[-1], str):
            parts[-1] += separator + pad(column[0], widths[-1])
        else:
            parts.append(pad(column[0], widths[-1]))
    top = separator.join(heading[:width].ljust(width) for heading, width in zip(headings, widths))
    columns = [repeat(part, count) if isinstance(part, str) else part for part in parts]
    return [top, *map(separator.join, zip(*columns) if columns else [()] * count)]


def _selected(args: argparse.Namespace, missing: list[str]) -> list[str] | None:
    """The objects named, in any form lvm2 takes (`/dev/VG/LV`, `@tag`...); None when tags alone were
    given and matched nothing: lvm2 then prints nothing at all, not even headings, and succeeds.
    A PV named and not found goes to `missing` (the others are reported)."""
    from lvcrypt.object_names import expand_lv_arguments, expand_pv_arguments, expand_vg_arguments

    if args.command == "pvs":
        names = expand_pv_arguments(args.devices, args.names, missing)
    else:
        names = {"lvs": expand_lv_arguments, "vgs": expand_vg_arguments}[args.command](args.devices, args.names)
    return None if args.names and not names and not missing else names


def _request(args: argparse.Namespace, names: list[str]) -> "ReportRequest":
    from lvcrypt.report_query import ReportRequest, wants_help

    options = None if wants_help(args.options) else args.options
    sort = [args.sort] if args.sort else None
    return ReportRequest(options, args.select, sort, getattr(args, "segments", False), names,
                         getattr(args, "history", False))


def _help(args: argparse.Namespace) -> bool:
    """`-o help`: lvm2 lists every report's fields on standard error and reports nothing, but still
    looks the objects up (a missing VG exits 5 after the list); True when the report is not printed."""
    from lvcrypt.report_query import wants_help

    if not wants_help(args.options):
        return False
    from lvcrypt.report_help import field_help

    sys.stderr.write(field_help())
    return True


def cmd_lvs(args: argparse.Namespace) -> int:
    from lvcrypt.metadata.gc_pause import gc_paused
    from lvcrypt.report_query import lv_report

    help_only = _help(args)
    names = _selected(args, [])
    if names is None:
        return 0
    request = _request(args, names)
    with gc_paused():  # rows and cells by the thousand, none garbage: the collector would walk them again and again
        columns, fields, rows = lv_report(args.devices, request, args.all, args.shared, args.foreign,
                                          args.sysfs_root)
        if not help_only:
            _render("seg" if args.segments else "lv", columns, fields, rows, args)
    return not_found_status(request.missing)


def _print_map(args: argparse.Namespace, command: str) -> int:
    """`--map`: the extent picture (lvcrypt.extent_map), in colour only on a terminal without NO_COLOR."""
    import os
    import shutil

    from lvcrypt.extent_map import MapOptions, extent_maps

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    columns = max(16, shutil.get_terminal_size().columns - 12) if sys.stdout.isatty() else 64
    names = list(args.names)
    lines = extent_maps(args.devices, names if command == "vgs" else [], names if command == "pvs" else [],
                        MapOptions(colour, columns), command)
    sys.stdout.write("".join(f"  {line}\n" for line in lines))
    return 0


def cmd_vgs(args: argparse.Namespace) -> int:
    from lvcrypt.report_query import vg_report

    help_only = _help(args)
    if args.map and not help_only:
        return _print_map(args, "vgs")
    names = _selected(args, [])
    if names is None:
        return 0
    request = _request(args, names)
    columns, fields, rows = vg_report(args.devices, request, args.shared, args.foreign)
    if not help_only:
        _render("vg", columns, fields, rows, args)
    return not_found_status(request.missing)


def cmd_pvs(args: argparse.Namespace) -> int:
    from lvcrypt.report_query import pv_report

    help_only = _help(args)
    if args.map and not help_only:
        return _print_map(args, "pvs")
    missing: list[str] = []
    names = _selected(args, missing)
    if names is None:
        return 0
    if args.names and not names:  # every PV named is missing: no report at all
        return not_found_status(missing)
    columns, fields, rows = pv_report(args.devices, _request(args, names), args.shared, args.foreign)
    if not help_only:
        _render("pvseg" if args.segments else "pv", columns, fields, rows, args)
    return not_found_status(missing)


def _report_parser(base: type[argparse.ArgumentParser]) -> type[argparse.ArgumentParser]:
    class ReportParser(base):  # type: ignore[valid-type, misc]
        """lvm2 takes `-O -lv_size` and `-o -lv_tags`: a dashed word that is no option is a value."""

        def _parse_optional(self, arg_string: str) -> object:
            if arg_string.startswith("-") and not arg_string.startswith("--") and len(arg_string) > 2 \
                    and arg_string not in self._option_string_actions:
                action = self._option_string_actions.get(arg_string[:2])
                if action is None or (action.nargs == 0 and not self._flags(arg_string[1:])):
                    return None
            return super()._parse_optional(arg_string)  # type: ignore[misc]

        def _flags(self, letters: str) -> bool:
            """`-qq`, `-vv`: every letter a flag of this command (else `-devices` is a field to remove)."""
            return all(getattr(self._option_string_actions.get(f"-{letter}"), "nargs", None) == 0
                       for letter in letters)

    return ReportParser


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    what = {"pvs": "physical volumes", "vgs": "volume groups", "lvs": "logical volumes"}[name]
    plain = sub._parser_class
    sub._parser_class = _report_parser(plain)
    try:
        parser = sub.add_parser(name, parents=[read_options()], help=f"report on {what}")
    finally:
        sub._parser_class = plain
    parser.add_argument("-o", "--options", action="append", help="fields (lvm2 names), +FIELD to add")
    parser.add_argument("-a", "--all", action="store_true", help="hidden LVs too")
    parser.add_argument("--noheadings", action="store_true")
    parser.add_argument("--units", default="r", type=_units,
                        help="r R h H b s k m g t p e (upper case: powers of 1000; r, R mark rounding with <), "
                        "or a number and a letter (3m: in units of 3 MiB)")
    parser.add_argument("-S", "--select", action=LastGiven,
                        help="lvm2's selection, e.g. 'lv_size>1g && lv_tags=db' (the last -S counts)")
    parser.add_argument("-O", "--sort", action=LastGiven,
                        help="fields to sort by, -FIELD descending (the last -O counts)")
    parser.add_argument("--nosuffix", action="store_true", help="sizes without their unit letter (not h, H, r, R)")
    parser.add_argument("--nameprefixes", action="store_true", help="FIELD='value' pairs, LVM2_ prefixed")
    parser.add_argument("--unquoted", action="store_true", help="no quotes around --nameprefixes values")
    parser.add_argument("--rows", action="store_true", help="one line per field instead of per object")
    parser.add_argument("--aligned", action="store_true", help="align columns also with --separator")
    parser.add_argument("--binary", action="store_true", help="0/1 for fields with two values")
    parser.add_argument("--separator", help="separate fields with this instead of aligning them")
    parser.add_argument("--reportformat", choices=("basic", "json"), default="basic")
    parser.add_argument("--shared", action="store_true", help="also VGs with a lock type (read without lvmlockd)")
    parser.add_argument("--foreign", action="store_true", help="also VGs with another host's system ID")
    if name in ("pvs", "vgs"):
        parser.add_argument("--map", action="store_true",
                            help="a picture of each PV's extents: which LV, encrypted or keystore, free")
    if name in ("lvs", "pvs"):
        parser.add_argument("--segments", action="store_true", help="one row per segment, segment fields shown")
    if name == "lvs":
        parser.add_argument("-H", "--history", action="store_true", help="removed LVs lvm2 remembers too (-NAME)")
        parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                            help="where inline_crypto reads block devices' queue/crypto capabilities")
    parser.add_argument("names", nargs="*", help={"pvs": "PVs", "vgs": "VGs", "lvs": "VGs or VG/LVs"}[name])
    parser.set_defaults(func={"pvs": cmd_pvs, "vgs": cmd_vgs, "lvs": cmd_lvs}[name])
