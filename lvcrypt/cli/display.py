"""`pvdisplay`, `vgdisplay`, `lvdisplay`, `pvscan`, `vgscan`, `lvscan`: lvm2's display and scan commands.

The lines come from the core (lvcrypt/displays.py); here they get lvm2's
two-space prefix.  `-C/--columns` is the report (`pvs`, `vgs`, `lvs`) and is
turned into that command in lvcrypt.cli before these parsers run.
"""

from __future__ import annotations

import argparse
import sys

from lvcrypt.cli import not_found_status, read_options


def _print(lines: list[str]) -> None:
    sys.stdout.write("".join(f"  {line}\n" for line in lines))


def _silent(args: argparse.Namespace) -> bool:
    """-qq: lvm2 then prints none of what it logs (the scans' lines), only displays and reports."""
    return args.quiet >= 2


def _verbose(args: argparse.Namespace) -> bool:
    """vgdisplay -v lists the VG's LVs and PVs; -v is lvm2's verbosity, counted as `verbose` where parsed so."""
    return bool(getattr(args, "verbose", None) or getattr(args, "debug", False))


def _refuse(args: argparse.Namespace, *pairs: tuple[str, str, str]) -> None:
    from lvcrypt.errors import UsageError

    for first, second, message in pairs:
        if getattr(args, first) and getattr(args, second):
            raise UsageError(message)


def cmd_pvdisplay(args: argparse.Namespace) -> int:
    from lvcrypt import displays

    _refuse(args, ("colon", "maps", "Option -c not allowed with option -m"),
            ("colon", "short", "Option -c is not allowed with option -s"))
    missing: list[str] = []
    loaded = displays.load(args.devices, [], "pvs")
    rows = displays.pv_rows(loaded, args.names, missing)
    _print(displays.pvdisplay(rows, displays.DisplayOptions(args.units), args.colon, args.short, args.maps,
                              _silent(args)))
    return not_found_status(missing)


def cmd_vgdisplay(args: argparse.Namespace) -> int:
    from lvcrypt import displays
    from lvcrypt.errors import UsageError

    _refuse(args, ("colon", "short", "Option -c is not allowed with option -s"))
    if args.names and args.activevolumegroups:
        raise UsageError("Option -A is not allowed with volume group names")
    missing: list[str] = []
    loaded = displays.load(args.devices, args.names, "vgs", missing)
    rows = displays.vg_rows(loaded)
    if args.activevolumegroups:  # lvcrypt shows no VG with an active LV unless its dm devices are live
        rows = [row for row in rows if displays.active_lvs(row)]
    verbose = _verbose(args)
    lvs = {vg.vg.name: displays.lv_rows(displays.Loaded([vg], {}, set(), False), [], False) for vg in loaded.vgs} \
        if verbose else {}
    pvs = {vg.vg.name: displays.pv_rows_in_vg(vg) for vg in loaded.vgs} if verbose else {}
    _print(displays.vgdisplay(rows, lvs, pvs, displays.DisplayOptions(args.units), args.colon, args.short, verbose))
    return not_found_status(missing)


def cmd_lvdisplay(args: argparse.Namespace) -> int:
    from lvcrypt import displays

    _refuse(args, ("colon", "maps", "Options -c and -m are incompatible."))
    missing: list[str] = []
    loaded = displays.load(args.devices, [name.split("/")[0] for name in args.names], "lvs", missing)
    rows = displays.lv_rows(loaded, args.names, args.all, missing)
    _print(displays.lvdisplay(rows, displays.DisplayOptions(args.units), args.colon, args.maps))
    return not_found_status(missing)


def cmd_pvscan(args: argparse.Namespace) -> int:
    from lvcrypt import displays
    from lvcrypt.errors import UsageError

    if args.novolumegroup and args.exported:
        raise UsageError("Options -e and -n are incompatible")
    if args.novolumegroup or args.exported:
        print("  WARNING: only considering physical volumes "
              + ("of exported volume group(s)" if args.exported else "in no volume group"), file=sys.stderr)
    loaded = displays.load(args.devices, [], "pvs")
    rows = displays.pv_rows(loaded, [])
    vg_names = [vg.vg.name for vg in loaded.vgs]
    lines = displays.pvscan(rows, list(loaded.pv_paths), vg_names, displays.DisplayOptions(),
                            args.short, args.uuid, args.novolumegroup, args.exported)
    _print([] if _silent(args) else lines)
    return 0


def cmd_vgscan(args: argparse.Namespace) -> int:
    from lvcrypt import displays

    lines = displays.vgscan(displays.vg_rows(displays.load(args.devices, [], "vgs")))
    _print([] if _silent(args) else lines)
    return 0


def cmd_lvscan(args: argparse.Namespace) -> int:
    from lvcrypt import displays

    loaded = displays.load(args.devices, [], "lvs")
    lines = displays.lvscan(displays.lv_rows(loaded, [], args.all), displays.DisplayOptions())
    _print([] if _silent(args) else lines)
    return 0


_HELP = {"pvdisplay": "display physical volumes (lvm2's format)", "vgdisplay": "display volume groups",
         "lvdisplay": "display logical volumes", "pvscan": "list physical volumes",
         "vgscan": "list volume groups", "lvscan": "list logical volumes"}


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, parents=[read_options()], help=_HELP[name])
    if name in ("pvdisplay", "vgdisplay", "lvdisplay"):  # lvm2's scans have no --units
        parser.add_argument("--units", default="r", help="r h H b s k m g t p e (upper case: powers of 1000), "
                            "or a number and a letter (3m: in units of 3 MiB)")
        parser.add_argument("-C", "--columns", action="store_true", help="the report (pvs, vgs, lvs) instead")
        parser.add_argument("-c", "--colon", action="store_true", help="one colon-separated line each")
    if name in ("pvdisplay", "lvdisplay"):
        parser.add_argument("-m", "--maps", action="store_true", help="also the extent map")
    if name in ("pvdisplay", "vgdisplay"):
        parser.add_argument("-s", "--short", action="store_true", help="one short line each")
    if name in ("lvdisplay", "lvscan"):
        parser.add_argument("-a", "--all", action="store_true", help="hidden LVs too")
    if name == "vgdisplay":
        parser.add_argument("-A", "--activevolumegroups", action="store_true", help="only VGs with active LVs")
    if name == "pvscan":
        parser.add_argument("-s", "--short", action="store_true", help="device names only")
        parser.add_argument("-u", "--uuid", action="store_true", help="with PV UUIDs")
        parser.add_argument("-n", "--novolumegroup", action="store_true", help="only PVs in no VG")
        parser.add_argument("-e", "--exported", action="store_true", help="only PVs of exported VGs")
    if name not in ("pvscan", "vgscan", "lvscan"):
        parser.add_argument("names", nargs="*", help={"pvdisplay": "PVs", "vgdisplay": "VGs",
                                                      "lvdisplay": "VGs or VG/LVs"}[name])
    parser.set_defaults(func={"pvdisplay": cmd_pvdisplay, "vgdisplay": cmd_vgdisplay, "lvdisplay": cmd_lvdisplay,
                              "pvscan": cmd_pvscan, "vgscan": cmd_vgscan, "lvscan": cmd_lvscan}[name])
