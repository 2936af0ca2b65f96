"""`pvcreate` and `pvremove`, with lvm2's options."""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import add_tag_options, yes_no


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


def cmd_pvchange(args: argparse.Namespace) -> int:
    """Only tags: the PV attributes lvm2's pvchange also sets (-x, --uuid, metadata ignore) are not here."""
    from lvcrypt.errors import UsageError
    from lvcrypt.object_names import expand_pv_arguments
    from lvcrypt.tags import change_pv_tags

    if not (args.addtag or args.deltag):
        raise UsageError("pvchange: give --addtag or --deltag")
    changed: list[str] = []

    def done(path: str) -> None:
        changed.append(path)
        print(f"  Physical volume \"{path}\" changed")

    change_pv_tags(args.devices, expand_pv_arguments(args.devices, args.device), args.addtag, args.deltag, done)
    count = len(changed)
    print(f"  {count} physical volume{'' if count == 1 else 's'} changed / 0 physical volumes not changed")
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
    elif name == "pvchange":
        parser = sub.add_parser(name, parents=common, help="add or remove tags of physical volumes")
        add_tag_options(parser)
        parser.add_argument("device", nargs="+", help="PVs, or @tag for the PVs carrying it")
        parser.set_defaults(func=cmd_pvchange)
    else:
        parser = sub.add_parser(name, parents=common, help="wipe the PV label of devices")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_pvremove)
