"""`vgcreate vgextend vgreduce vgremove vgrename vgck vgcfgbackup vgcfgrestore`, with lvm2's options."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import TYPE_CHECKING

from lvcrypt.cli import common_options

if TYPE_CHECKING:
    from lvcrypt.metadata.model import VolumeGroup
    from lvcrypt.store.commit import Scan
    from lvcrypt.store.physical import PvOnDisk


def _new_members(paths: list[str], found: "Scan", args: argparse.Namespace) -> dict[str, "PvOnDisk"]:
    """Orphan PVs for the given paths; unlabelled devices are initialised first, as lvm2 does.

    `found` must include a scan of `paths` themselves: a PV of another VG is only recognised
    from its own label and metadata, whatever --devices says.
    """
    from lvcrypt.cli.options import yes_no
    from lvcrypt.errors import DeviceError
    from lvcrypt.pvops import check_unused, create_pv, orphan_pv, reinitialise_pv

    ask = yes_no(args)  # every refusal and question before the first write
    for path in paths:
        if found.pv_at(path) is None and path in found.problems:
            raise DeviceError(found.problems[path])
    overwrite = {path: check_unused(path, found, args.command, args.force, ask) for path in paths}
    members = {}
    for path in paths:
        if overwrite[path]:
            pv = reinitialise_pv(path)
            print(f"  Physical volume \"{path}\" successfully created.")
        elif found.pv_at(path) is None and path not in found.problems:
            pv = create_pv(path, found, command=args.command)
            print(f"  Physical volume \"{path}\" successfully created.")
        else:
            pv = orphan_pv(path, found, args.command)
        members[os.path.abspath(path)] = pv  # the device hint in metadata: never relative to a cwd
    return members


def _add_members(vg: "VolumeGroup", members: dict[str, "PvOnDisk"]) -> dict[str, "PvOnDisk"]:
    from lvcrypt.lvops import add_pv
    from lvcrypt.store.physical import data_end

    keyed = {}
    for path, pv in members.items():
        key = add_pv(vg, pv.uuid, path, pv.header.device_size, pv.header.pe_start, data_end(pv))
        keyed[key] = pv
    return keyed


def cmd_vgcreate(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError
    from lvcrypt.lvops import new_vg
    from lvcrypt.pvops import set_in_use
    from lvcrypt.store.commit import commit, scan
    from lvcrypt.store.devices import candidate_devices, remember_devices
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import command_line, write_backup_after_commit

    vg = new_vg(args.vg, args.physicalextentsize // 512)
    with VgLock(GLOBAL, exclusive=True), VgLock(args.vg, exclusive=True):
        found = scan(list(dict.fromkeys(candidate_devices(args.devices) + args.device)))
        if args.vg in found.vg_names():
            raise LvcryptError(f"a volume group called {args.vg} already exists")
        keyed = _add_members(vg, _new_members(args.device, found, args))
        vg.seqno = 1
        commit(vg, keyed, f"Write from {command_line()}.")
        for pv in keyed.values():
            set_in_use(pv, True)
        write_backup_after_commit(vg)
    if not args.devices:
        remember_devices(args.device)
    print(f"  Volume group \"{args.vg}\" successfully created")
    return 0


def cmd_vgextend(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError
    from lvcrypt.pvops import set_in_use
    from lvcrypt.store.devices import remember_devices
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import VgTransaction

    with VgLock(GLOBAL, exclusive=True), VgTransaction(args.devices, args.vg, also_scan=args.device) as tx:
        for path in args.device:  # not even -ff: that would relabel a PV of the VG being extended
            pv = tx.scan.pv_at(path)
            if pv is not None and tx.vg.pv_by_id(pv.uuid) is not None:
                raise LvcryptError(f"Physical volume '{path}' is already in volume group '{args.vg}'")
        keyed = _add_members(tx.vg, _new_members(args.device, tx.scan, args))
        tx.commit(extra=keyed)
        for pv in keyed.values():
            set_in_use(pv, True)
    if not args.devices:
        remember_devices(args.device)
    print(f"  Volume group \"{args.vg}\" successfully extended")
    return 0


def cmd_vgreduce(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError, UsageError
    from lvcrypt.lvops import remove_pv
    from lvcrypt.pvops import make_orphan
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import VgTransaction

    if not args.device and not args.all:
        raise UsageError("vgreduce: name the physical volumes to remove, or use -a")
    with VgLock(GLOBAL, exclusive=True), VgTransaction(args.devices, args.vg) as tx:
        by_path = {pv.path: key for key, pv in tx.loaded.pvs.items()}
        if args.all:
            used = {area.pv for lv in tx.vg.lvs.values() for s in lv.segments for area, _ in s.pv_areas()}
            keys = [key for key in tx.vg.pvs if key not in used][:max(len(tx.vg.pvs) - 1, 0)]
        else:
            keys = []
            for path in args.device:
                if path not in by_path:
                    raise LvcryptError(f"physical volume {path} is not in volume group {args.vg}")
                keys.append(by_path[path])
        dropped = [tx.loaded.pvs[key] for key in keys]
        for key in keys:
            remove_pv(tx.vg, key)
        members = {key: pv for key, pv in tx.loaded.pvs.items() if key in tx.vg.pvs}
        tx.loaded.pvs = members
        tx.commit()
        for pv in dropped:
            make_orphan(pv)
            print(f"  Removed \"{pv.path}\" from volume group \"{args.vg}\"")
    return 0


def cmd_vgremove(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError
    from lvcrypt.inuse import vg_in_use
    from lvcrypt.pvops import make_orphan
    from lvcrypt.store import archive
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import VgTransaction, archive_text, command_line

    for name in args.vg:
        with VgLock(GLOBAL, exclusive=True), VgTransaction(args.devices, name) as tx:
            if tx.vg.lvs and not args.force:
                raise LvcryptError(f"volume group \"{name}\" still contains {len(tx.vg.lvs)} logical volume(s) "
                                   "(remove them first or use -f)")
            busy = vg_in_use(tx.vg, args.sysfs_root)
            if busy:
                raise LvcryptError(f"cannot remove volume group {name}: logical volume {busy}")
            archive.archive_version(name, archive_text(tx.loaded.text,
                                                       f"Created *before* executing '{command_line()}'"))
            for pv in tx.loaded.pvs.values():
                make_orphan(pv)
            archive.remove_backup(name)
        print(f"  Volume group \"{name}\" successfully removed")
    return 0


def cmd_vgrename(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError
    from lvcrypt.lvops import check_vg_name
    from lvcrypt.store import archive
    from lvcrypt.store.access import Access
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import VgTransaction

    check_vg_name(args.new)
    access = Access(change=True, exported=True)
    with VgLock(GLOBAL, exclusive=True), VgTransaction(args.devices, args.old, access=access) as tx, \
            VgLock(args.new, exclusive=True):
        check_vg_name(args.new, tx.vg)
        if args.new in tx.scan.vg_names():
            raise LvcryptError(f"a volume group called {args.new} already exists")
        tx.vg.name = args.new
        tx.commit()
        archive.remove_backup(args.old)
    print(f"  Volume group \"{args.old}\" successfully renamed to \"{args.new}\"")
    return 0


def cmd_vgck(args: argparse.Namespace) -> int:
    """Read each VG and warn about every damaged or outdated copy; --updatemetadata rewrites them all.

    As lvm2's `vgck --updatemetadata`: the good copy is written to every metadata area, headers
    that point outside their area included (ordinary commits leave those alone).
    """
    from lvcrypt.store.commit import scan
    from lvcrypt.store.devices import candidate_devices
    from lvcrypt.store.transaction import each_vg

    names = args.vg or scan(candidate_devices(args.devices)).vg_names()
    for tx in each_vg(args.devices, names, not args.vg, exclusive=args.updatemetadata):
        if args.updatemetadata:
            tx.commit(repair=True)
    return 0


def cmd_vgcfgbackup(args: argparse.Namespace) -> int:
    from lvcrypt.store.commit import scan
    from lvcrypt.store.devices import candidate_devices
    from lvcrypt.store.lock import GLOBAL, VgLock

    # As lvm2: a command that looks at every VG on the system holds the global lock shared.
    with contextlib.nullcontext() if args.vg else VgLock(GLOBAL, exclusive=False):
        _backup(args, args.vg or scan(candidate_devices(args.devices)).vg_names())
    return 0


def _backup(args: argparse.Namespace, names: list[str]) -> None:
    from lvcrypt.errors import UsageError
    from lvcrypt.store import archive
    from lvcrypt.store.access import Access
    from lvcrypt.store.transaction import backup_text, command_line, each_vg

    if args.file and len(names) > 1 and "%s" not in args.file:
        raise UsageError("vgcfgbackup: -f with several VGs needs %s in the file name")
    for tx in each_vg(args.devices, names, not args.vg, exclusive=False, allow_missing=True,
                      access=Access(exported=True)):
        name = tx.vg.name
        text = backup_text(tx.vg, f"Created *after* executing '{command_line()}'")
        if args.file:
            from lvcrypt.atomic_file import write_atomically

            write_atomically(args.file.replace("%s", name), text)
        else:
            archive.write_backup(name, text)
        print(f"  Volume group \"{name}\" successfully backed up.")


def cmd_vgcfgrestore(args: argparse.Namespace) -> int:
    from lvcrypt.errors import DeviceError, LvcryptError
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.parse import parse_bytes
    from lvcrypt.metadata.validate import validate
    from lvcrypt.pvops import pv_owner, set_in_use
    from lvcrypt.store import archive
    from lvcrypt.store.commit import commit, scan
    from lvcrypt.store.devices import candidate_devices
    from lvcrypt.store.lock import GLOBAL, VgLock
    from lvcrypt.store.transaction import command_line, write_backup_after_commit

    path = args.file or str((archive.existing_state_path("backup") or archive.state_dir() / "backup")
                            / archive.file_name_of(args.vg))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise LvcryptError(f"{path}: {error.strerror}") from None
    vg = tree_to_vg(parse_bytes(data, path), path)
    validate(vg, path)
    if vg.name != args.vg:
        raise LvcryptError(f"{path} holds volume group {vg.name}, not {args.vg}")
    with VgLock(GLOBAL, exclusive=True), VgLock(args.vg, exclusive=True):
        found = scan(candidate_devices(args.devices))
        by_uuid = found.by_uuid()
        members = {}
        for key, pv in vg.pvs.items():
            if pv.id not in by_uuid:
                raise DeviceError(f"cannot restore {args.vg}: no device holds PV {pv.id} ({key})")
            owner = pv_owner(found, pv.id)
            if owner and owner != args.vg:
                raise LvcryptError(f"cannot restore {args.vg}: PV {by_uuid[pv.id].path} belongs to "
                                   f"volume group {owner}")
            members[key] = by_uuid[pv.id]
            pv.device = by_uuid[pv.id].path
        current = max((copy.seqno for _, copy in found.copies(args.vg)), default=0)
        vg.seqno = max(vg.seqno, current) + 1
        commit(vg, members, f"Write from {command_line()}.")
        for pv in members.values():
            set_in_use(pv, True)
        write_backup_after_commit(vg)
    print(f"  Restored volume group {args.vg}.")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.units import parse_size

    common = [common_options()]
    if name == "vgcreate":
        parser = sub.add_parser(name, parents=common, help="create a volume group")
        parser.add_argument("-s", "--physicalextentsize", type=lambda t: parse_size(t, "m"), default=4 << 20)
        parser.add_argument("-y", "--yes", action="store_true")
        parser.add_argument("-f", "--force", action="count", default=0, help="-ff: overwrite a PV of a VG")
        parser.add_argument("vg")
        parser.add_argument("device", nargs="+")
        parser.set_defaults(func=cmd_vgcreate)
    elif name == "vgextend":
        parser = sub.add_parser(name, parents=common, help="add physical volumes to a volume group")
        parser.add_argument("-y", "--yes", action="store_true")
        parser.add_argument("-f", "--force", action="count", default=0, help="-ff: overwrite a PV of a VG")
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
        parser.add_argument("-f", "--force", action="count", default=0, help="also remove its LVs")
        parser.add_argument("-y", "--yes", action="store_true")
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
        parser = sub.add_parser(name, parents=common, help="write VG metadata to backup files")
        parser.add_argument("-f", "--file", help="file to write (%%s is replaced by the VG name)")
        parser.add_argument("vg", nargs="*")
        parser.set_defaults(func=cmd_vgcfgbackup)
    else:
        parser = sub.add_parser(name, parents=common, help="write VG metadata from a backup file to its PVs")
        parser.add_argument("-f", "--file", help="backup file (default: the VG's backup in the state directory)")
        parser.add_argument("vg")
        parser.set_defaults(func=cmd_vgcfgrestore)
