"""`pvs`, `vgs`, `lvs`: lvm2's report commands, laid out as lvm2 lays them out.

The rows and each field's value come from the core (lvcrypt/reportfields.py);
here sizes follow `--units` (lvm2's letters), columns are aligned as lvm2
aligns them, and `--separator` and `--reportformat json` print what lvm2
prints for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from lvcrypt.cli import lvm2_options

if TYPE_CHECKING:
    from lvcrypt.reportfields import Field

def format_size(size: int, units: str) -> str:
    """lvm2's rendering: `8.00m`, `8388608B` for --units b, `16384S` for --units s."""
    if units in ("b", "B"):
        return f"{size}B"
    if units in ("s", "S"):
        return f"{size // 512}S"
    if size == 0:
        return "0 " if units in ("h", "H") else f"0{units}"
    from lvcrypt.units import format_size as lvm_format

    if units == "H":  # lvm2 marks rounding with "<" only in its default (r) and h units
        return lvm_format(size, units).lstrip("<")
    return lvm_format(size, units)


def _render(kind: str, columns: list[str], fields: dict[str, "Field"], rows: list[object],
            args: argparse.Namespace) -> None:
    def value(row: object, name: str) -> str:
        field = fields[name]
        raw = field.get(row)
        return format_size(int(raw), args.units) if field.size else str(raw)  # type: ignore[call-overload]

    table = [[value(row, name) for name in columns] for row in rows]
    if args.reportformat == "json":
        body = ",\n".join("                  {" + ", ".join(f"{json.dumps(name)}:{json.dumps(cell)}"
                                                          for name, cell in zip(columns, line)) + "}"
                          for line in table)
        print("  {\n      \"report\": [\n          {\n              \"" + kind + "\": [\n"
              + (body + "\n" if body else "") + "              ]\n          }\n      ]\n  }")
        return
    if args.separator is not None:
        if not args.noheadings:
            print("  " + args.separator.join(fields[name].heading for name in columns))
        for line in table:
            print("  " + args.separator.join(line))
        return
    right = [fields[name].size or bool(rows) and isinstance(fields[name].get(rows[0]), int) for name in columns]
    headings = [fields[name].heading for name in columns]
    minimum = [max(fields[name].width, len(heading)) for name, heading in zip(columns, headings)]
    lines = [headings, *table]
    out = aligned(lines, right, skip_first=True, minimum=minimum)
    sys.stdout.write("".join(f"  {row}\n" for row in (out if not args.noheadings else out[1:])))


def aligned(lines: list[list[str]], right: list[bool], skip_first: bool,
            minimum: list[int] | None = None) -> list[str]:
    """lvm2's column layout: one space between columns, numbers and sizes right-aligned
    (headings always left-aligned), every column padded to its widest cell, its heading or
    lvm2's minimum width for the field, with or without --noheadings.

    Not tabulate: for 2,000 LVs tabulate alone takes longer than lvm2's whole `lvs`.
    """
    if not lines:
        return []
    widths = [max([len(line[index]) for line in lines] + [minimum[index] if minimum else 0])
              for index in range(len(right))]
    out = []
    for number, line in enumerate(lines):
        heading = skip_first and number == 0
        out.append(" ".join(cell.rjust(width) if flush and not heading else cell.ljust(width)
                            for cell, width, flush in zip(line, widths, right)))
    return out


def _selected(args: argparse.Namespace) -> list[str] | None:
    """The objects named, in any form lvm2 takes (`/dev/VG/LV`, `@tag`...); None when tags alone were
    given and matched nothing: lvm2 then prints nothing at all, not even headings, and succeeds."""
    from lvcrypt.object_names import expand_lv_arguments, expand_pv_arguments, expand_vg_arguments

    expand = {"lvs": expand_lv_arguments, "vgs": expand_vg_arguments, "pvs": expand_pv_arguments}[args.command]
    names = expand(args.devices, args.names)
    return None if args.names and not names else names


def cmd_lvs(args: argparse.Namespace) -> int:
    from lvcrypt.reportfields import LV_DEFAULT, LV_FIELDS, SEGMENT_FIELDS, VG_FIELDS, lv_rows, select_columns

    fields = {**VG_FIELDS, **LV_FIELDS}  # lvm2's lvs also reports the LV's VG fields
    columns = select_columns(args.options, LV_DEFAULT, fields)
    per_segment = any(name in SEGMENT_FIELDS for name in columns)
    names = _selected(args)
    if names is None:
        return 0
    rows = lv_rows(args.devices, names, args.all, per_segment, args.shared, args.foreign, args.sysfs_root)
    _render("lv", columns, fields, list(rows), args)
    return 0


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
    from lvcrypt.reportfields import VG_DEFAULT, VG_FIELDS, select_columns, vg_rows

    if args.map:
        return _print_map(args, "vgs")
    columns = select_columns(args.options, VG_DEFAULT, VG_FIELDS)
    names = _selected(args)
    if names is None:
        return 0
    rows = vg_rows(args.devices, names, args.shared, args.foreign)
    _render("vg", columns, VG_FIELDS, list(rows), args)
    return 0


def cmd_pvs(args: argparse.Namespace) -> int:
    from lvcrypt.reportfields import PV_DEFAULT, PV_FIELDS, pv_rows, select_columns

    if args.map:
        return _print_map(args, "pvs")
    names = _selected(args)
    if names is None:
        return 0
    rows = pv_rows(args.devices, names, args.shared, args.foreign)
    columns = select_columns(args.options, PV_DEFAULT, PV_FIELDS)
    _render("pv", columns, PV_FIELDS, list(rows), args)
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    what = {"pvs": "physical volumes", "vgs": "volume groups", "lvs": "logical volumes"}[name]
    parser = sub.add_parser(name, parents=[lvm2_options()], help=f"report on {what}")
    parser.add_argument("-o", "--options", action="append", help="fields (lvm2 names), +FIELD to add")
    parser.add_argument("-a", "--all", action="store_true", help="hidden LVs too")
    parser.add_argument("--noheadings", action="store_true")
    parser.add_argument("--units", default="h", help="h H b s k m g t p e (upper case: powers of 1000)")
    parser.add_argument("--separator", help="separate fields with this instead of aligning them")
    parser.add_argument("--reportformat", choices=("basic", "json"), default="basic")
    parser.add_argument("--shared", action="store_true", help="also VGs with a lock type (read without lvmlockd)")
    parser.add_argument("--foreign", action="store_true", help="also VGs with another host's system ID")
    if name in ("pvs", "vgs"):
        parser.add_argument("--map", action="store_true",
                            help="a picture of each PV's extents: which LV, encrypted or keystore, free")
    if name == "lvs":
        parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                            help="where inline_crypto reads block devices' queue/crypto capabilities")
    parser.add_argument("names", nargs="*", help={"pvs": "PVs", "vgs": "VGs", "lvs": "VGs or VG/LVs"}[name])
    parser.set_defaults(func={"pvs": cmd_pvs, "vgs": cmd_vgs, "lvs": cmd_lvs}[name])
