"""`vgcreate vgextend vgreduce vgremove vgrename vgck vgcfgbackup vgcfgrestore`, with lvm2's options."""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import ALLOC_POLICIES, add_tag_options, alloc_policy


def _created(path: str) -> None:
    print(f"  Physical volume \"{path}\" successfully created.")


def cmd_vgcreate(args: argparse.Namespace) -> int:
    from lvcrypt.cli.options import yes_no
    from lvcrypt.errors import UsageError
    from lvcrypt.store.lockspaces import new_lock_type
    from lvcrypt.vgops import create_vg

    if args.alloc == "inherit":
        raise UsageError("Volume Group allocation policy cannot inherit from anything")
    lock_type = new_lock_type(args.shared, args.lock_type)
    activate_lock_lv = None
    if lock_type == "sanlock":
        from lvcrypt.activation import activate_lock_lv
    create_vg(args.devices, args.vg, args.device, args.physicalextentsize, args.command, args.force, yes_no(args),
              _created, args.addtag, lock_type, activate_lock_lv,
              lambda: print(f"  Volume group \"{args.vg}\" successfully created"), args.alloc)
    return 0


def cmd_vgextend(args: argparse.Namespace) -> int:
    from lvcrypt.cli.options import yes_no
    from lvcrypt.vgops import extend_vg

    extend_vg(args.devices, args.vg, args.device, args.command, args.force, yes_no(args), _created)
    print(f"  Volume group \"{args.vg}\" successfully extended")
    return 0


def cmd_vgreduce(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.vgops import reduce_vg

    if not args.device and not args.all:
        raise UsageError("vgreduce: name the physical volumes to remove, or use -a")
    for path in reduce_vg(args.devices, args.vg, args.device, args.all):
        print(f"  Removed \"{path}\" from volume group \"{args.vg}\"")
    return 0


def cmd_vgremove(args: argparse.Namespace) -> int:
    from lvcrypt.object_names import expand_vg_arguments
    from lvcrypt.vgops import remove_vg

    for name in expand_vg_arguments(args.devices, args.vg):
        remove_vg(args.devices, name, bool(args.force), args.sysfs_root)
        print(f"  Volume group \"{name}\" successfully removed")
    return 0


def cmd_vgrename(args: argparse.Namespace) -> int:
    from lvcrypt.vgops import rename_vg

    rename_vg(args.devices, args.old, args.new)
    print(f"  Volume group \"{args.old}\" successfully renamed to \"{args.new}\"")
    return 0


def cmd_vgck(args: argparse.Namespace) -> int:
    from lvcrypt.vgops import check_vgs

    check_vgs(args.devices, args.vg, args.updatemetadata)
    return 0


def cmd_vgcfgbackup(args: argparse.Namespace) -> int:
    from lvcrypt.vgops import backup_vgs

    backup_vgs(args.devices, args.vg, args.file,
               lambda name: print(f"  Volume group \"{name}\" successfully backed up."))
    return 0


def cmd_vgcfgrestore(args: argparse.Namespace) -> int:
    from lvcrypt.vgops import restore_vg

    restore_vg(args.devices, args.vg, args.file)
    print(f"  Restored volume group {args.vg}.")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.units import parse_size

    common = [lvm2_options()]
    if name == "vgcreate":
        parser = sub.add_parser(name, parents=common, help="create a volume group")
        parser.add_argument("-s", "--physicalextentsize", type=lambda t: parse_size(t, "m"), default=4 << 20)
        add_tag_options(parser, delete=False)
        parser.add_argument("--alloc", type=alloc_policy, choices=ALLOC_POLICIES,
                            help="allocation policy of the VG's LVs that set none (default normal)")
        parser.add_argument("--shared", action="store_true", help="a VG shared between hosts (lvmlockd, sanlock)")
        parser.add_argument("--lock-type", "--locktype", metavar="sanlock|dlm|none", help="the shared VG's lock manager")
        parser.add_argument("vg")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_vgcreate)
    elif name == "vgextend":
        parser = sub.add_parser(name, parents=common, help="add physical volumes to a volume group")
        parser.add_argument("vg")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_vgextend)
    elif name == "vgreduce":
        parser = sub.add_parser(name, parents=common, help="remove physical volumes from a volume group")
        parser.add_argument("-a", "--all", action="store_true", help="remove every unused PV")
        parser.add_argument("vg")
        parser.add_argument("device", nargs="*")
        parser.set_defaults(func=cmd_vgreduce)
    elif name == "vgremove":
        parser = sub.add_parser(name, parents=common, help="remove volume groups")
        parser.add_argument("vg", nargs="+")
        parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                            help="where active LVs' device-mapper devices are read")
        parser.set_defaults(func=cmd_vgremove)
    elif name == "vgrename":
        parser = sub.add_parser(name, parents=common, help="rename a volume group")
        parser.add_argument("old")
        parser.add_argument("new")
        parser.set_defaults(func=cmd_vgrename)
    elif name == "vgck":
        parser = sub.add_parser(name, parents=common, help="check VG metadata; --updatemetadata repairs it")
        parser.add_argument("--updatemetadata", action="store_true",
                            help="write the good metadata to every metadata area of the VG")
        parser.add_argument("vg", nargs="*")
        parser.set_defaults(func=cmd_vgck)
    elif name == "vgcfgbackup":
        parser = sub.add_parser(name, parents=[lvm2_options(force=False)], help="write VG metadata to backup files")
        parser.add_argument("-f", "--file", help="file to write (%%s is replaced by the VG name)")
        parser.add_argument("vg", nargs="*")
        parser.set_defaults(func=cmd_vgcfgbackup)
    else:
        parser = sub.add_parser(name, parents=[lvm2_options(force=False)],
                                help="write VG metadata from a backup file to its PVs")
        parser.add_argument("-f", "--file", help="backup file (default: the VG's backup in the state directory)")
        parser.add_argument("vg")
        parser.set_defaults(func=cmd_vgcfgrestore)
