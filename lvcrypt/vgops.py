"""VG-level commands: vgcreate, vgextend, vgreduce, vgremove, vgrename, vgck, vgcfgbackup, vgcfgrestore.

Each is one function that commands (and the Python API) call; every write goes through
the VG transaction (lvcrypt.store.transaction), which locks, archives, commits and
refreshes the backup.  Questions (-ff) and progress lines are the caller's: `confirm`
answers a question, `created` hears of each device labelled as a new PV.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

from lvcrypt.errors import DeviceError, LvcryptError, UsageError
from lvcrypt.lvops import add_pv, check_vg_name, create_lv, new_vg, remove_pv
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.pvops import (Confirm, answer_no, check_unused, create_pv, make_orphan, orphan_pv, pv_owner,
                           reinitialise_pv, set_in_use)
from lvcrypt.store.access import Access
from lvcrypt.store import archive, lvmlockd
from lvcrypt.store.commit import Scan, scan
from lvcrypt.store.devices import candidate_devices, remember_devices
from lvcrypt.store.lock import GLOBAL, VgLock
from lvcrypt.store.physical import PvOnDisk, data_end
from lvcrypt.store.transaction import VgCreation, VgTransaction, backup_text, command_line, each_vg

# Told the path of each device labelled as a new PV on the way (lvm2 prints a line for each).
Created = Callable[[str], None]


def _quiet(path: str) -> None:
    return None


def _new_members(paths: list[str], found: Scan, command: str, force: int, ask: Confirm,
                 created: Created) -> dict[str, PvOnDisk]:
    """Orphan PVs for the given paths; unlabelled devices are initialised first, as lvm2 does.

    `found` must include a scan of `paths` themselves: a PV of another VG is only recognised
    from its own label and metadata, whatever --devices says.
    """
    for path in paths:
        if found.pv_at(path) is None and path in found.problems:
            raise DeviceError(found.problems[path])
    overwrite = {path: check_unused(path, found, command, force, ask) for path in paths}
    members = {}
    for path in paths:
        if overwrite[path]:
            pv = reinitialise_pv(path)
            created(path)
        elif found.pv_at(path) is None and path not in found.problems:
            pv = create_pv(path, found, command=command)
            created(path)
        else:
            pv = orphan_pv(path, found, command)
        members[os.path.abspath(path)] = pv  # the device hint in metadata: never relative to a cwd
    return members


def _add_members(vg: VolumeGroup, members: dict[str, PvOnDisk]) -> dict[str, PvOnDisk]:
    keyed = {}
    for path, pv in members.items():
        key = add_pv(vg, pv.uuid, path, pv.header.device_size, pv.header.pe_start, data_end(pv))
        keyed[key] = pv
    return keyed


# Makes a sanlock VG's lvmlock LV live on this host (the VG as written, a PV key's path); returns
# what takes it down again.  An activation service: the store layer cannot activate.
LockLvActivation = Callable[[VolumeGroup, Callable[[str], str]], Callable[[], None]]


def create_vg(devices: str | None, name: str, paths: list[str], extent_bytes: int, command: str = "vgcreate",
              force: int = 0, confirm: Confirm = answer_no, created: Created = _quiet,
              tags: list[str] | None = None, lock_type: str | None = None,
              activate_lock_lv: LockLvActivation | None = None,
              announce: Callable[[], None] = lambda: None, alloc: str | None = None) -> None:
    """A new VG on `paths` (labelled as PVs first where they are not); remembered as devices to scan
    when no --devices list was given.  `announce` runs once the VG is written (lvm2 says so before a
    shared VG's lockspace starts); a `lock_type` (sanlock, dlm) makes it shared, as lvm2's vgcreate;
    `alloc` is its allocation policy (lvm2 writes none for normal)."""
    vg = new_vg(name, extent_bytes // 512)
    vg.tags = list(dict.fromkeys(tags or []))
    vg.allocation_policy = None if alloc == "normal" else alloc
    with VgCreation(devices, name, also_scan=paths, lock_type=lock_type or "none") as new:
        if name in new.scan.vg_names():
            raise LvcryptError(f"a volume group called {name} already exists")
        keyed = _add_members(vg, _new_members(paths, new.scan, command, force, confirm, created))
        vg.seqno = 1
        new.commit(vg, keyed)
        for pv in keyed.values():
            set_in_use(pv, True)
        if lock_type:
            _make_shared(new, vg, keyed, lock_type, activate_lock_lv)
        announce()
        if lock_type:
            start_created(vg)
    if not devices:
        remember_devices(paths)


def _make_shared(new: VgCreation, vg: VolumeGroup, keyed: dict[str, PvOnDisk], lock_type: str,
                 activate_lock_lv: LockLvActivation | None) -> None:
    """lvm2's lockd_init_vg after the VG was written local: for sanlock the lvmlock LV (written
    visible, activated so that lvmlockd's sanlock can write the leases in it, then hidden); init_vg;
    the VG written again with lvmlockd's lock_args, and vg_update as after any shared VG's write.
    When lvmlockd refuses, the VG is removed again, as lvm2 does (its PVs stay PVs)."""
    deactivate: Callable[[], None] = lambda: None
    try:
        if lock_type == "sanlock":
            lock_lv = create_lv(vg, lvmlockd.LVMLOCK_LV, _lock_lv_extents(vg, [pv.path for pv in keyed.values()]))
            lock_lv.raw["read_ahead"] = -1  # lvm2 makes it with read-ahead off ("None")
            vg.seqno += 1
            new.commit(vg, keyed)
            print(f"  Logical volume \"{lvmlockd.LVMLOCK_LV}\" created.")
            if activate_lock_lv is None:
                raise LvcryptError("a sanlock VG needs its lvmlock LV active here")
            deactivate = activate_lock_lv(vg, lambda key: keyed[key].path)
            lock_lv.status.remove("VISIBLE")
        vg.lock_args = lvmlockd.init_vg(vg.name, lock_type)
    except BaseException:
        deactivate()
        for pv in keyed.values():
            make_orphan(pv)
        archive.remove_backup(vg.name)
        raise
    vg.lock_type = lock_type
    vg.seqno += 1
    new.commit(vg, keyed)
    lvmlockd.vg_update(vg.name, vg.seqno)


def _lock_lv_extents(vg: VolumeGroup, paths: list[str]) -> int:
    """lvm2's size for the lvmlock LV: 256 MiB of leases on 512-byte sectors, 1 GiB when a PV has
    4096-byte sectors (sanlock's leases grow with the sector size)."""
    mib = 1024 if any(_sector_size(path) == 4096 for path in paths) else 256
    return mib * 1024 * 1024 // vg.extent_bytes


def _sector_size(path: str) -> int:
    """The larger of a block device's logical and physical sector sizes (lvm2's
    dev_get_direct_block_sizes); 512 for an image file."""
    import fcntl
    import stat
    import struct

    blksszget, blkpbszget = 0x1268, 0x127B
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 512
    try:
        if not stat.S_ISBLK(os.fstat(fd).st_mode):
            return 512
        sizes = [struct.unpack("I", fcntl.ioctl(fd, request, b"\0" * 4))[0] for request in (blksszget, blkpbszget)]
        return max(sizes)
    except OSError:
        return 512
    finally:
        os.close(fd)


def start_created(vg: VolumeGroup) -> None:
    """After vgcreate --shared, as lvm2: the new VG's lockspace started (start_init), the global lock
    given back, then the wait for the lockspace to be ready."""
    from lvcrypt.store.lockspaces import start_new

    start_new(vg)


def refuse_unless_resizeable(vg: VolumeGroup) -> None:
    """lvm2's `vgchange -xn` keeps the VG's PVs as they are: vgextend and vgreduce refuse, before any label
    is written (lvm2 itself labels a new device first)."""
    if "RESIZEABLE" not in vg.status:
        raise LvcryptError(f"Volume group {vg.name} is not resizeable.")


def extend_vg(devices: str | None, name: str, paths: list[str], command: str = "vgextend", force: int = 0,
              confirm: Confirm = answer_no, created: Created = _quiet) -> None:
    """Add the devices on `paths` to the VG (labelled as PVs first where they are not)."""
    with VgTransaction(devices, name, also_scan=paths, membership=True) as tx:
        refuse_unless_resizeable(tx.vg)
        if tx.vg.max_pv and len(tx.vg.pvs) + len(paths) > tx.vg.max_pv:  # lvm2's vgcreate -p
            raise LvcryptError(f"No space for '{paths[max(tx.vg.max_pv - len(tx.vg.pvs), 0)]}' - volume group "
                               f"'{name}' holds max {tx.vg.max_pv} physical volume(s).")
        for path in paths:  # not even -ff: that would relabel a PV of the VG being extended
            pv = tx.scan.pv_at(path)
            if pv is not None and tx.vg.pv_by_id(pv.uuid) is not None:
                raise LvcryptError(f"Physical volume '{path}' is already in volume group '{name}'")
        keyed = _add_members(tx.vg, _new_members(paths, tx.scan, command, force, confirm, created))
        tx.commit(extra=keyed)
        for pv in keyed.values():
            set_in_use(pv, True)
    if not devices:
        remember_devices(paths)


def reduce_vg(devices: str | None, name: str, paths: list[str], every_unused: bool = False) -> list[str]:
    """Take PVs out of the VG (with `every_unused`, each PV no LV uses, all but one); their paths."""
    with VgTransaction(devices, name, membership=True) as tx:
        refuse_unless_resizeable(tx.vg)
        by_uuid = {pv.uuid: key for key, pv in tx.loaded.pvs.items()}
        if every_unused:
            used = {area.pv for lv in tx.vg.lvs.values() for s in lv.segments for area, _ in s.pv_areas()}
            keys = [key for key in tx.vg.pvs if key not in used][:max(len(tx.vg.pvs) - 1, 0)]
        else:
            keys = []
            for path in paths:  # as the user named it: relative, a symlink, another node of the device
                pv = tx.scan.pv_at(path)
                if pv is None or pv.uuid not in by_uuid:
                    raise LvcryptError(f"physical volume {path} is not in volume group {name}")
                keys.append(by_uuid[pv.uuid])
        dropped = [tx.loaded.pvs[key] for key in keys]
        for key in keys:
            remove_pv(tx.vg, key)
        members = {key: pv for key, pv in tx.loaded.pvs.items() if key in tx.vg.pvs}
        tx.loaded.pvs = members
        tx.commit()
        for pv in dropped:
            make_orphan(pv)
    return [pv.path for pv in dropped]


def remove_vg(devices: str | None, name: str, with_lvs: bool = False, sysfs_root: str = "/sys") -> None:
    """Remove the VG, its PVs becoming orphans; LVs only `with_lvs` (-f), and none in use."""
    from lvcrypt.inuse import vg_in_use

    with VgTransaction(devices, name, membership=True) as tx:
        if tx.vg.lvs and not with_lvs:
            raise LvcryptError(f"volume group \"{name}\" still contains {len(tx.vg.lvs)} logical volume(s) "
                               "(remove them first or use -f)")
        busy = vg_in_use(tx.vg, sysfs_root)
        if busy:
            raise LvcryptError(f"cannot remove volume group {name}: logical volume {busy}")
        tx.remove(make_orphan)


def rename_vg(devices: str | None, old: str, new: str) -> None:
    """Rename a VG (an exported one too, as lvm2 allows)."""
    check_vg_name(new)
    access = Access(change=True, exported=True)
    with VgTransaction(devices, old, access=access, membership=True) as tx, VgLock(new, exclusive=True):
        check_vg_name(new, tx.vg)
        if new in tx.scan.vg_names():
            raise LvcryptError(f"a volume group called {new} already exists")
        tx.vg.name = new
        tx.commit()


def read_backup(name: str, path: str | None = None) -> VolumeGroup:
    """The VG `name` from a backup file (default: its backup in the state directory), validated."""
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.parse import parse_bytes
    from lvcrypt.metadata.validate import validate

    path = path or str((archive.existing_state_path("backup") or archive.state_dir() / "backup")
                       / archive.file_name_of(name))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise LvcryptError(f"{path}: {error.strerror}") from None
    vg = tree_to_vg(parse_bytes(data, path), path)
    validate(vg, path)
    if vg.name != name:
        raise LvcryptError(f"{path} holds volume group {vg.name}, not {name}")
    return vg


def restore_vg(devices: str | None, name: str, path: str | None = None) -> None:
    """Write the VG from a backup file (see read_backup) to the devices holding its PVs (lvm2's vgcfgrestore).

    Its seqno passes every copy on the devices, so the restored version is the one read.
    """
    vg = read_backup(name, path)
    with VgCreation(devices, vg.name) as new:
        by_uuid = new.scan.by_uuid()
        members = {}
        for key, pv in vg.pvs.items():
            if pv.id not in by_uuid:
                raise DeviceError(f"cannot restore {vg.name}: no device holds PV {pv.id} ({key})")
            owner = pv_owner(new.scan, pv.id)
            if owner and owner != vg.name:
                raise LvcryptError(f"cannot restore {vg.name}: PV {by_uuid[pv.id].path} belongs to "
                                   f"volume group {owner}")
            members[key] = by_uuid[pv.id]
            pv.device = by_uuid[pv.id].path
        vg.seqno = max(vg.seqno, new.newest_seqno()) + 1
        new.commit(vg, members)
        for pv in members.values():
            set_in_use(pv, True)


def check_vgs(devices: str | None, names: list[str], update: bool = False) -> None:
    """Read each VG (every one when none is named), warning about each damaged or outdated copy;
    `update` rewrites them all.

    As lvm2's `vgck --updatemetadata`: the good copy is written to every metadata area, headers
    that point outside their area included (ordinary commits leave those alone).
    """
    for tx in each_vg(devices, names or scan(candidate_devices(devices)).vg_names(), not names, exclusive=update):
        if update:
            tx.commit(repair=True)


def backup_vgs(devices: str | None, names: list[str], file: str | None = None,
               done: Callable[[str], None] = _quiet) -> None:
    """Write each VG's metadata (every VG when none is named) to its backup file, or to `file`
    (%s for the VG name); `done` hears of each VG backed up."""
    # As lvm2: a command that looks at every VG on the system holds the global lock shared.
    with contextlib.nullcontext() if names else VgLock(GLOBAL, exclusive=False):
        wanted = names or scan(candidate_devices(devices)).vg_names()
        if file and len(wanted) > 1 and "%s" not in file:
            raise UsageError("vgcfgbackup: -f with several VGs needs %s in the file name")
        for tx in each_vg(devices, wanted, not names, exclusive=False, allow_missing=True,
                          access=Access(exported=True)):
            name = tx.vg.name
            text = backup_text(tx.vg, f"Created *after* executing '{command_line()}'")
            if file:
                from lvcrypt.atomic_file import write_atomically

                write_atomically(file.replace("%s", name), text)
            else:
                archive.write_backup(name, text)
            done(name)
