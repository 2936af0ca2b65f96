"""PV-level changes that touch devices directly: pvcreate, pvremove, and PV membership checks.

Like lvops, these are functions that commands and other code call; the CLI
only parses arguments.
"""

from __future__ import annotations

from typing import Callable

from lvcrypt.errors import DeviceError, LvcryptError
from lvcrypt.lvops import new_uuid
from lvcrypt.metadata.validate import uuid_valid
from lvcrypt.store.commit import Scan, clear_metadata, scan
from lvcrypt.store.devices import devices_with, remember_devices
from lvcrypt.store.disk import Disk
from lvcrypt.store.lock import GLOBAL, VgLock
from lvcrypt.store.physical import PvOnDisk, plan_layout, wipe_pv, write_label, write_new_pv
from lvcrypt.store.pv_header import PV_EXT_USED


def pv_owner(found: Scan, uuid: str) -> str | None:
    """The VG whose newest metadata lists this PV uuid (PVs without metadata areas included)."""
    needle = f'id = "{uuid}"'.encode()
    newest: dict[str, tuple[int, bytes]] = {}
    for _, copy in found.copies():
        if copy.vg_name not in newest or copy.seqno > newest[copy.vg_name][0]:
            newest[copy.vg_name] = (copy.seqno, copy.text)
    for name, (_, text) in sorted(newest.items()):
        if needle in text:
            return name
    return None


# Asked before a PV that belongs to a VG is overwritten (-ff); answers True to go ahead.
Confirm = Callable[[str], bool]


def answer_no(question: str) -> bool:
    """The answer when nobody can be asked: no."""
    return False


def check_unused(path: str, found: Scan, command: str, force: int = 0, confirm: Confirm = answer_no) -> bool:
    """Refuse to (re)initialise a PV that belongs to a VG, as lvm2 refuses it; True when it does belong
    and -ff was confirmed.

    Membership is known from any metadata copy that lists the PV, or, when that VG's metadata lives
    only on PVs not scanned, from the PV header's PV_EXT_USED flag alone.
    """
    pv = found.pv_at(path)
    if pv is None:
        return False
    if any(other.uuid == pv.uuid for other in found.duplicates.values()):  # not even -ff: which is the copy?
        raise DeviceError(f"Cannot use device {path} with duplicates.")
    owner = pv_owner(found, pv.uuid)
    if owner is None and not pv.header.in_use:
        return False
    if force < 2:
        if owner is None:
            raise LvcryptError(f"PV {path} is used by a VG but its metadata is missing.")
        if command == "pvcreate":
            raise LvcryptError(f"Can't initialize physical volume \"{path}\" of volume group \"{owner}\" without -ff")
        raise LvcryptError(f"Physical volume '{path}' is already in volume group '{owner}'")
    name = owner or "<unknown>"
    if not confirm(f"Really INITIALIZE physical volume \"{path}\" of volume group \"{name}\" [y/n]? "):
        raise LvcryptError(f"physical volume \"{path}\" of volume group \"{name}\" not initialized "
                           "(-ff needs a yes: answer on a terminal or add -y)")
    return True


def check_creatable(path: str, found: Scan, uuid: str | None = None, force: int = 0, confirm: Confirm = answer_no,
                    command: str = "pvcreate") -> None:
    """Every reason pvcreate refuses `path`, checked for all devices before the first is written."""
    if uuid is not None and not uuid_valid(uuid):
        raise LvcryptError(f"invalid uuid '{uuid}'")
    if uuid is not None and any(pv.uuid == uuid and pv.path != path for pv in found.pvs.values()):
        raise LvcryptError(f"uuid {uuid} is already used by another PV")
    if found.pv_at(path) is None and path in found.problems and force < 2:
        raise DeviceError(f"{found.problems[path]} (use -ff to overwrite it)")
    check_unused(path, found, command, force, confirm)


def create_pv(path: str, found: Scan, uuid: str | None = None, metadata_size: int | None = None,
              data_alignment: int | None = None, metadata_copies: int = 1, force: int = 0,
              confirm: Confirm = answer_no, command: str = "pvcreate") -> PvOnDisk:
    """Label a device as an orphan PV (lvm2's pvcreate); a PV that belongs to a VG needs a confirmed -ff."""
    check_creatable(path, found, uuid, force, confirm, command)
    with Disk(path, writable=True) as disk:
        layout = plan_layout(disk.size, metadata_size, data_alignment, metadata_copies)
        return write_new_pv(disk, uuid or new_uuid(), layout)


def check_removable(path: str, found: Scan, force: int = 0, confirm: Confirm = answer_no) -> PvOnDisk:
    """The PV pvremove may wipe; a PV of a VG (known from metadata or PV_EXT_USED alone) needs a confirmed -ff."""
    pv = found.pv_at(path)
    if pv is None:
        raise DeviceError(found.problems.get(path) or f"{path}: not a physical volume (no LVM2 label)")
    owner = pv_owner(found, pv.uuid)
    if not owner and not pv.header.in_use:
        return pv
    if force < 2:
        if owner is None:
            raise LvcryptError(f"PV {path} is used by a VG but its metadata is missing (use -ff to wipe it)")
        raise LvcryptError(f"physical volume {path} is used by volume group \"{owner}\" (use -ff to wipe it)")
    name = owner or "<unknown>"
    if not confirm(f"Really WIPE LABELS from physical volume \"{path}\" of volume group \"{name}\" [y/n]? "):
        raise LvcryptError(f"labels on physical volume \"{path}\" of volume group \"{name}\" not wiped "
                           "(-ff needs a yes: answer on a terminal or add -y)")
    return pv


def remove_pv_label(path: str, found: Scan, force: int = 0, confirm: Confirm = answer_no) -> None:
    pv = check_removable(path, found, force, confirm)
    with Disk(path, writable=True) as disk:
        wipe_pv(disk, pv)


def set_in_use(pv: PvOnDisk, used: bool) -> None:
    """Keep the PV header's PV_EXT_USED flag in step with membership, as lvm2 checks it."""
    flags = (pv.header.ext_flags | PV_EXT_USED) if used else (pv.header.ext_flags & ~PV_EXT_USED)
    if flags == pv.header.ext_flags and pv.header.ext_version >= 2:
        return
    pv.header.ext_flags = flags
    pv.header.ext_version = max(pv.header.ext_version, 2)
    with Disk(pv.path, writable=True) as disk:
        write_label(disk, pv)
        disk.flush()


def make_orphan(pv: PvOnDisk) -> None:
    clear_metadata(pv)
    set_in_use(pv, False)


def orphan_pv(path: str, found: Scan, command: str) -> PvOnDisk:
    """The PV on `path` for adding to a VG: it must be labelled and belong to no VG."""
    pv = found.pv_at(path)
    if pv is None:
        raise DeviceError(found.problems.get(path) or f"{path}: not a physical volume (run pvcreate first)")
    check_unused(path, found, command)
    return pv


def reinitialise_pv(path: str) -> PvOnDisk:
    """A fresh orphan PV over a PV of another VG, after a confirmed -ff (lvm2's default layout)."""
    with Disk(path, writable=True) as disk:
        return write_new_pv(disk, new_uuid(), plan_layout(disk.size, None, None))


def create_pvs(devices: str | None, paths: list[str], uuid: str | None = None, metadata_size: int | None = None,
               data_alignment: int | None = None, metadata_copies: int = 1, force: int = 0,
               confirm: Confirm = answer_no, created: Callable[[str], None] = lambda path: None) -> None:
    """pvcreate: every refusal for every device first, then each is labelled (`created` hears of it);
    remembered as devices to scan when no --devices list was given."""
    with VgLock(GLOBAL, exclusive=True):
        found = scan(devices_with(devices, paths))
        for path in paths:
            check_creatable(path, found, uuid, force, confirm)
        for path in paths:
            create_pv(path, found, uuid, metadata_size, data_alignment, metadata_copies, force=force,
                      confirm=confirm)
            created(path)
    if not devices:
        remember_devices(paths)


def remove_pvs(devices: str | None, paths: list[str], force: int = 0, confirm: Confirm = answer_no,
               wiped: Callable[[str], None] = lambda path: None) -> None:
    """pvremove: every refusal for every device first, then each label is wiped (`wiped` hears of it)."""
    with VgLock(GLOBAL, exclusive=True):
        found = scan(devices_with(devices, paths))
        for path in paths:
            check_removable(path, found, force, confirm)
        for path in paths:
            remove_pv_label(path, found, force=force, confirm=confirm)
            wiped(path)
