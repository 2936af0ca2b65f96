"""PV-level changes that touch devices directly: pvcreate, pvremove, and PV membership checks.

Like lvops, these are functions that commands and other code call; the CLI
only parses arguments.
"""

from __future__ import annotations

from lvcrypt.errors import DeviceError, LvcryptError
from lvcrypt.lvops import new_uuid
from lvcrypt.metadata.validate import uuid_valid
from lvcrypt.store.commit import Scan, clear_metadata
from lvcrypt.store.disk import Disk
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


def create_pv(path: str, found: Scan, uuid: str | None = None, metadata_size: int | None = None,
              data_alignment: int | None = None, metadata_copies: int = 1, force: bool = False) -> PvOnDisk:
    """Label a device as an orphan PV (lvm2's pvcreate); refuses a PV that belongs to a VG unless forced."""
    if uuid is not None and not uuid_valid(uuid):
        raise LvcryptError(f"invalid uuid '{uuid}'")
    if uuid is not None and any(pv.uuid == uuid and pv.path != path for pv in found.pvs.values()):
        raise LvcryptError(f"uuid {uuid} is already used by another PV")
    with Disk(path, writable=True) as disk:
        existing = found.pv_at(path)
        if existing is None and path in found.problems and not force:
            raise DeviceError(f"{found.problems[path]} (use -ff to overwrite it)")
        if existing is not None:
            owner = pv_owner(found, existing.uuid)
            if owner and not force:
                raise LvcryptError(f"cannot initialize physical volume {path} of volume group \"{owner}\" "
                                   "without -ff")
        layout = plan_layout(disk.size, metadata_size, data_alignment, metadata_copies)
        return write_new_pv(disk, uuid or new_uuid(), layout)


def remove_pv_label(path: str, found: Scan, force: bool = False) -> None:
    pv = found.pv_at(path)
    if pv is None:
        raise DeviceError(found.problems.get(path) or f"{path}: not a physical volume (no LVM2 label)")
    owner = pv_owner(found, pv.uuid)
    if owner and not force:
        raise LvcryptError(f"physical volume {path} is used by volume group \"{owner}\" (use -ff to wipe it)")
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


def orphan_pv(path: str, found: Scan, what: str) -> PvOnDisk:
    """The PV on `path` for adding to a VG: it must be labelled and belong to no VG."""
    pv = found.pv_at(path)
    if pv is None:
        raise DeviceError(found.problems.get(path) or f"{path}: not a physical volume (run pvcreate first)")
    owner = pv_owner(found, pv.uuid)
    if owner:
        raise LvcryptError(f"{what}: physical volume {path} already belongs to volume group \"{owner}\"")
    return pv

