"""`lvcrypt pvmove SourcePV [DestPV...] [-n LV]`, bare `pvmove` (resume) and `pvmove --abort`, as lvm2's."""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import add_mover_options, add_sysfs_root_option, move_progress, mover_pace


def cmd_pvmove(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.pv_move import pvmove

    if args.abort and (args.source or args.destinations or args.name):
        raise UsageError("pvmove --abort takes no PV or LV")
    if args.source is None and (args.destinations or args.name):
        raise UsageError("pvmove: destination PVs and -n need a source PV")
    chunk, rate = mover_pace(args)
    label = f"{args.source or 'pvmove'}: Moved"
    done = pvmove(args.devices, args.source, args.destinations, args.name, args.abort, chunk, rate,
                  move_progress(label), args.sysfs_root)
    for vg in done.aborted:
        print(f"  pvmove in {vg} aborted; extents already moved stay where they are.")
    for _, device, _lvs in done.moves:
        print(f"  {device}: Moved: 100.00%")
    if done.longest_pause is not None:
        print(f"  longest I/O pause: {done.longest_pause * 1000:.0f} ms")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, parents=[lvm2_options()], description=__doc__,
                            help="move extents off a PV (plain and encrypted, as ciphertext); bare: resume")
    parser.add_argument("-n", "--name", metavar="LV", help="move only this LV's extents")
    parser.add_argument("--abort", action="store_true",
                        help="forget the interrupted move; extents already moved stay where they are")
    add_mover_options(parser)
    add_sysfs_root_option(parser)
    parser.add_argument("source", metavar="SourcePV", nargs="?")
    parser.add_argument("destinations", metavar="DestPV", nargs="*")
    parser.set_defaults(func=cmd_pvmove)
