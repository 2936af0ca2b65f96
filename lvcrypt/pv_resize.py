"""pvresize: a PV takes the size of its device after the device (an image file, a partition, a LUN)
grew or shrank, or the size given by --setphysicalvolumesize.

What is written is lvm2 2.03's (lib/metadata/pv_manip.c pv_resize_single, format_text's
_text_pv_resize), measured against lvm2 2.03.16:
- a PV of a VG: the VG's metadata only, always committed (a new seqno even when the extent count stays),
  with `pe_count` the extents that fit and `dev_size` the size *less pe_start* (lvm2's quirk, kept so
  that both tools write the same text); the PV header keeps its old device size, as lvm2 leaves it;
- an orphan PV: the label, with the new device size in its PV header, and empty metadata area headers
  (lvm2's pv_write).
Shrinking keeps every allocated extent: it refuses, as lvm2, when fewer extents would remain than are
allocated or when an allocated one lies past the new end.

A PV with a second metadata area (at the device's end, `pvcreate --pvmetadatacopies 2`) is refused:
lvm2 moves that area to the new end and rewrites the label; lvcrypt does not move metadata areas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lvcrypt.command_mode import verbose
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.pvops import Confirm, pv_owner
from lvcrypt.store.commit import Scan, clear_metadata, scan
from lvcrypt.store.devices import devices_with
from lvcrypt.store.disk import Disk
from lvcrypt.store.lock import GLOBAL, VgLock
from lvcrypt.store.physical import PvOnDisk, write_label

SECTOR = 512
PV_MIN_SIZE_KIB = 2048  # lvm.conf devices/pv_min_size's default


@dataclass
class PvResizeOutcome:
    """What pvresize said of one PV: lvm2's warnings, and its error when the PV was not resized."""

    path: str
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


class _NotResized(LvcryptError):
    """One PV's refusal; the command goes on with the next PV, as lvm2's process_each_pv."""


def _display(sectors: int) -> str:
    from lvcrypt.units import SHORT, parse_units, size_to_string

    return size_to_string(sectors * SECTOR, parse_units("r"), style=SHORT)


def _pv_min_sectors() -> int:
    from lvcrypt.store import lvm_config

    value = lvm_config.setting("devices/pv_min_size", PV_MIN_SIZE_KIB)
    return (value if isinstance(value, int) else PV_MIN_SIZE_KIB) * 2


def target_sectors(path: str, real: int, requested: int | None, confirm: Confirm, warnings: list[str]) -> int:
    """The size the PV is given: the device's, or --setphysicalvolumesize after lvm2's questions (a
    size past the device's end can lose data: the extents there do not exist)."""
    if requested is None or requested == real:
        return real
    if requested > real:
        warnings.append(f"WARNING: {path}: Overriding real size {_display(real)}. You could lose data.")
        question = f"{path}: Requested size {_display(requested)} exceeds real size {_display(real)}. Proceed?  [y/n]: "
    else:
        question = f"{path}: Requested size {_display(requested)} is less than real size {_display(real)}. " \
                   "Proceed?  [y/n]: "
    if not confirm(question):
        raise _NotResized(f"Physical Volume {path} not resized.")
    warnings.append(f"WARNING: {path}: Pretending size is {requested} not {real} sectors.")
    return requested


def check_size(path: str, size: int, pe_start: int) -> None:
    """lvm2's floor for any PV: devices/pv_min_size, and room past the first extent's start."""
    minimum = _pv_min_sectors()
    if size < minimum:
        raise _NotResized(f"Size must exceed minimum of {minimum} sectors on PV {path}.")
    if size < pe_start:
        raise _NotResized(f"Size must exceed physical extent start of {pe_start} sectors on PV {path}.")


def resize_in_vg(vg: VolumeGroup, uuid: str, path: str, size: int) -> None:
    """The VG's record of the PV at `size` sectors: its extent count, and lvm2's dev_size (the size
    less pe_start); refused when allocated extents would be cut off."""
    pv = vg.pv_by_id(uuid)
    if pv is None:  # vgreduce'd since the scan
        raise _NotResized(f"Failed to find physical volume \"{path}\".")
    key = pv.key
    pe_count = (size - pv.pe_start) // vg.extent_size
    if pe_count == 0:
        raise _NotResized(f"Size must leave space for at least one physical extent of {vg.extent_size} sectors "
                          f"on PV {path}.")
    if pe_count < pv.pe_count:
        allocated = vg.used_extents(key)
        if pe_count < allocated:
            raise _NotResized(f"{path}: cannot resize to {pe_count} extents as {allocated} are allocated.")
        if any(stop > pe_count for _, stop in vg.used_spans(key).get(key, [])):
            raise _NotResized(f"{path}: cannot resize to {pe_count} extents as later ones are allocated.")
    if pe_count == pv.pe_count:
        verbose(f"No change to size of physical volume {path}.")
    else:
        verbose(f"Resizing physical volume {path} from {pv.pe_count} to {pe_count} extents.")
    pv.pe_count = pe_count
    pv.dev_size = size - pv.pe_start
    pv.usable_extents = None


def resize_orphan(pv: PvOnDisk, size: int) -> None:
    """An orphan PV's label with its new size; its metadata areas' headers written empty, as lvm2's pv_write."""
    pv.header.device_size = size * SECTOR
    with Disk(pv.path, writable=True) as disk:
        write_label(disk, pv)
        disk.flush()
    clear_metadata(pv)


def _resize_one(devices: str | None, found: Scan, path: str, requested: int | None,
                confirm: Confirm) -> PvResizeOutcome:
    from lvcrypt.store.transaction import VgTransaction

    outcome = PvResizeOutcome(path)
    pv = found.pv_at(path)
    if pv is None:
        raise LvcryptError(f"Failed to find physical volume \"{path}\".")
    try:
        if len(pv.mdas) > 1:
            raise _NotResized(f"{path}: the PV has a second metadata area, at its end, which lvcrypt does not "
                              "move (lvm2's pvresize does)")
        with Disk(pv.path) as disk:
            real = disk.size // SECTOR
        size = target_sectors(path, real, requested, confirm, outcome.warnings)
        verbose(f"Resizing volume \"{path}\" to {size} sectors.")
        check_size(path, size, pv.header.pe_start // SECTOR)
        with VgLock(GLOBAL, exclusive=True):  # membership read under the lock vgextend/vgreduce take
            now = scan(devices_with(devices, [path]))
            pv = now.pv_at(path)
            if pv is None:
                raise _NotResized(f"Failed to find physical volume \"{path}\".")
            vg_name = pv_owner(now, pv.uuid)
            if vg_name is None:  # still an orphan: its label is ours to rewrite, its empty areas too
                resize_orphan(pv, size)
        if vg_name is not None:
            with VgTransaction(devices, vg_name) as tx:
                resize_in_vg(tx.vg, pv.uuid, path, size)
                tx.commit()
    except _NotResized as refused:
        outcome.error = str(refused)
    return outcome


def resize_pvs(devices: str | None, paths: list[str], requested: int | None, confirm: Confirm,
               each: Callable[[PvResizeOutcome], None]) -> list[PvResizeOutcome]:
    """pvresize of each PV in turn (sizes in sectors; `requested` None: the device's own size), one
    commit per PV; `each` reports a PV as it is done. A PV's refusal does not stop the others."""
    found = scan(devices_with(devices, paths))
    outcomes = []
    for path in paths:
        outcome = _resize_one(devices, found, path, requested, confirm)
        each(outcome)
        outcomes.append(outcome)
    return outcomes
