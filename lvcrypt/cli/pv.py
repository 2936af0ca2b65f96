"""`pvcreate` and `pvremove`, with lvm2's options."""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import yes_no


def _size(text: str) -> int:
    from lvcrypt.units import parse_size

    return parse_size(text, default_unit="k")


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
    else:
        parser = sub.add_parser(name, parents=common, help="wipe the PV label of devices")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_pvremove)
