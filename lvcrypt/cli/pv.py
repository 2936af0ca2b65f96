"""`pvcreate`, `pvremove`, `pvchange` and `pvresize`, with lvm2's options."""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options, not_found_status
from lvcrypt.cli.options import add_tag_options, yes_no


def _size(text: str) -> int:
    from lvcrypt.units import parse_size

    return parse_size(text, default_unit="k")


def _size_mib(text: str) -> int:
    from lvcrypt.units import parse_size

    return parse_size(text, default_unit="m")


def cmd_pvcreate(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.pvops import create_pvs

    if args.uuid and len(args.device) != 1:
        raise UsageError("--uuid applies to exactly one device")
    create_pvs(args.devices, args.device, args.uuid, args.metadatasize, args.dataalignment, args.pvmetadatacopies,
               args.force, yes_no(args), lambda path: print(f"  Physical volume \"{path}\" successfully created."))
    return 0


def cmd_pvremove(args: argparse.Namespace) -> int:
    from lvcrypt.pvops import remove_pvs

    remove_pvs(args.devices, args.device, args.force, yes_no(args),
               lambda path: print(f"  Labels on physical volume \"{path}\" successfully wiped."))
    return 0


def cmd_pvchange(args: argparse.Namespace) -> int:
    """Tags and -x; lvm2's other PV attributes (--uuid, metadata ignore) are not here."""
    import sys

    from lvcrypt.errors import UsageError
    from lvcrypt.object_names import expand_pv_arguments
    from lvcrypt.property_changes import PvChange, PvOutcome, change_pvs

    if not (args.addtag or args.deltag or args.allocatable):
        raise UsageError("Please give one or more of -x, -uuid, --addtag, --deltag or --metadataignore")
    change = PvChange(tuple(args.addtag), tuple(args.deltag),
                      None if args.allocatable is None else args.allocatable == "y")

    errors: list[str] = []

    def each(outcome: PvOutcome) -> None:
        for warning in outcome.warnings:
            print(f"  {warning}", file=sys.stderr)
        if outcome.error:
            errors.extend([outcome.error, f"Physical volume {outcome.path} not changed"])
        elif outcome.changed:
            print(f"  Physical volume \"{outcome.path}\" changed")
        else:
            print(f"  Physical volume {outcome.path} not changed")

    outcomes = change_pvs(args.devices, expand_pv_arguments(args.devices, args.device), change, each)
    done = sum(outcome.changed for outcome in outcomes)
    left = len(outcomes) - done
    print(f"  {done} physical volume{'' if done == 1 else 's'} changed / "
          f"{left} physical volume{'' if left == 1 else 's'} not changed")
    return not_found_status(errors)  # lvm2's errors for the PVs it could not change, and its status 5


def cmd_pvresize(args: argparse.Namespace) -> int:
    """lvm2's lines: a line per PV changed, its errors and warnings on stderr, and the count of both."""
    import sys

    from lvcrypt.object_names import expand_pv_arguments
    from lvcrypt.pv_resize import PvResizeOutcome, resize_pvs

    errors: list[str] = []

    def each(outcome: PvResizeOutcome) -> None:
        for warning in outcome.warnings:
            print(f"  {warning}", file=sys.stderr)
        if outcome.error:
            errors.append(outcome.error)
        else:
            print(f"  Physical volume \"{outcome.path}\" changed")

    requested = None if args.setphysicalvolumesize is None else args.setphysicalvolumesize // 512
    missing: list[str] = []  # not PVs: lvm2 says so and counts them in neither number
    outcomes = resize_pvs(args.devices, expand_pv_arguments(args.devices, args.device, missing), requested or None,
                          yes_no(args), each)
    print(f"  {len(outcomes) - len(errors)} physical volume(s) resized or updated / "
          f"{len(errors)} physical volume(s) not resized")
    return not_found_status(missing + errors)


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    common = [lvm2_options()]
    if name == "pvcreate":
        parser = sub.add_parser(name, parents=common, help="initialize devices or image files as PVs")
        parser.add_argument("--uuid", "-u", help="PV uuid to use (lvm2's dashed form)")
        parser.add_argument("--norestorefile", action="store_true", help="accepted for lvm2 compatibility")
        parser.add_argument("--metadatasize", type=_size, help="size of the metadata area (default unit k)")
        parser.add_argument("--dataalignment", type=_size, help="align the data area to this size")
        parser.add_argument("--pvmetadatacopies", type=int, choices=(0, 1, 2), default=1,
                            help="number of metadata areas")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_pvcreate)
    elif name == "pvchange":
        parser = sub.add_parser(name, parents=common, help="add or remove tags of physical volumes, or make "
                                "them (not) allocatable")
        add_tag_options(parser)
        parser.add_argument("-x", "--allocatable", choices=("y", "n"),
                            help="n: no new extents are allocated on the PV")
        parser.add_argument("device", nargs="+", help="PVs, or @tag for the PVs carrying it")
        parser.set_defaults(func=cmd_pvchange)
    elif name == "pvresize":
        parser = sub.add_parser(name, parents=common, help="give PVs the size of their devices after these grew or "
                                "shrank (or the size given)")
        parser.add_argument("--setphysicalvolumesize", type=_size_mib, metavar="SIZE",
                            help="use this size instead of the device's (default unit m; -y skips the question)")
        parser.add_argument("device", nargs="+", help="PVs, or @tag for the PVs carrying it")
        parser.set_defaults(func=cmd_pvresize)
    else:
        parser = sub.add_parser(name, parents=common, help="wipe the PV label of devices")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_pvremove)
