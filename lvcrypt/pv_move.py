"""`pvmove SourcePV [DestPV...] [-n LV]`, bare `pvmove` (resume) and `pvmove --abort`, with lvm2's meaning.

The extent mover with the identity transform: each chunk's extents are copied
byte for byte into free extents (crypt extents stay ciphertext: no key is
needed, IVs follow the LV, not the PV), then one commit points the segment at
the copy.  The VG records the move (lvcrypt/conversion_record.py), so bare
`pvmove` finds and finishes it after a crash; `--abort` forgets it and, as
lvm2's non-atomic pvmove, leaves the extents already moved where they are.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

from lvcrypt.activation import ChunkSwitch
from lvcrypt.chunk_copy import Pace, Progress, copy_raw
from lvcrypt.conversion_record import PvMove, read_pvmove, write_pvmove
from lvcrypt.errors import LvcryptError
from lvcrypt.extent_mover import MoveRefused, check_live, check_movable, next_area_move
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.lv_checks import find_lv
from lvcrypt.lv_conversion import DEFAULT_CHUNK_BYTES
from lvcrypt.records import dataclass, field

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
    from lvcrypt.store.transaction import VgTransaction


@dataclass
class PvMoveDone:
    """What one pvmove did: per VG, the source PV's device and the LVs moved (or aborted: nothing moved)."""

    moves: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (vg, source device, lvs)
    aborted: list[str] = field(default_factory=list)
    longest_pause: float | None = None  # seconds; None when no LV moved was active in the kernel


def _vg_names(devices: str | None) -> list[str]:
    from lvcrypt.store.commit import scan
    from lvcrypt.store.devices import candidate_devices

    return scan(candidate_devices(devices)).vg_names()


def _vg_of_pv(devices: str | None, path: str) -> str:
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import candidate_devices

    found = scan(candidate_devices(devices))
    pv = found.pv_at(path)
    if pv is None:
        raise LvcryptError(f"Failed to find physical volume \"{path}\".")
    for name in found.vg_names():
        if any(member.uuid == pv.uuid for member in load_vg(found, name).pvs.values()):
            return name
    raise LvcryptError(f"Physical volume {path} not in a volume group.")


def _key_of(tx: "VgTransaction", path: str) -> str:
    import os

    for key, pv in tx.loaded.pvs.items():
        if pv.path == path or (os.path.exists(path) and os.path.samefile(pv.path, path)):
            return key
    raise LvcryptError(f"Physical volume {path} not in volume group {tx.vg.name}.")


def _on_pv(lv: "LogicalVolume", key: str) -> bool:
    return any(area.pv == key for segment in lv.segments for area, count in segment.pv_areas() if count)


def _lvs_to_move(tx: "VgTransaction", record: PvMove, sysfs_root: str) -> dict[str, bool]:
    """LVs with extents on the source PV (the named one only), checked before anything is written, each
    with whether it is active in the kernel (then moved online)."""
    vg = tx.vg
    if record.lv is not None:
        names = [find_lv(vg, record.lv).name] if _on_pv(find_lv(vg, record.lv), record.source) else []
    else:
        names = [name for name, lv in vg.lvs.items() if _on_pv(lv, record.source)]
    live = {}
    for name in names:
        lv = vg.lvs[name]
        live[name] = not lv.is_keystore and check_live(vg, lv, sysfs_root)
        check_movable(vg, lv)
    return live


def pvmove(devices: str | None, source: str | None, destinations: list[str], lv_name: str | None, abort: bool,
           chunk_bytes: int | None = None, rate: int | None = None, progress: Progress | None = None,
           sysfs_root: str = "/sys") -> PvMoveDone:
    """Move (or resume, or abort) as lvm2's pvmove; see the module docstring."""
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import candidate_devices
    from lvcrypt.store.transaction import VgTransaction

    done = PvMoveDone()
    if source is None:
        found = scan(candidate_devices(devices))
        names = [name for name in found.vg_names() if read_pvmove(load_vg(found, name).vg) is not None]
        if not names and not abort:
            raise LvcryptError("No pvmove in progress - nothing to resume.")
    else:
        names = [_vg_of_pv(devices, source)]
    for name in names:
        with VgTransaction(devices, name) as tx:
            record = read_pvmove(tx.vg)
            if source is not None:
                asked = PvMove(_key_of(tx, source), tuple(_key_of(tx, path) for path in destinations), lv_name)
                if record is not None and record.source != asked.source:
                    raise MoveRefused(f"a pvmove of {tx.loaded.device_of(record.source)} is in progress in "
                                      f"{name}; finish it (pvmove) or abort it (pvmove --abort) first")
                record = record or asked
            if abort:
                if record is not None:
                    write_pvmove(tx.vg, None)
                    tx.commit()
                    done.aborted.append(name)
                continue
            assert record is not None
            moved, pause = _move(tx, record, chunk_bytes, Pace(rate, progress), sysfs_root)
            done.moves.append((name, tx.loaded.device_of(record.source), moved))
            if pause is not None:
                done.longest_pause = max(pause, done.longest_pause or 0.0)
    return done


def _check_room(vg: "VolumeGroup", names: list[str], source: str, chunk: int, targets: list[str],
                name_of: Callable[[str], str]) -> None:
    """The whole move planned on a copy of the model: a stripe that fits nowhere (free space, or only on
    PVs its segment's other stripes use) is refused before anything is written."""
    plan = copy.deepcopy(vg)
    for name in names:
        while next_area_move(plan, plan.lvs[name], source, chunk, targets, name_of) is not None:
            pass


def _move(tx: "VgTransaction", record: PvMove, chunk_bytes: int | None, pace: Pace,
          sysfs_root: str) -> tuple[list[str], float | None]:
    """The LVs moved and the longest I/O pause (seconds) of those active in the kernel (None: none was)."""
    vg = tx.vg
    if record.source in record.destinations:
        raise MoveRefused("the source PV cannot also be a destination")
    live = _lvs_to_move(tx, record, sysfs_root)
    names = list(live)
    if not names:
        if read_pvmove(vg) is None:
            raise MoveRefused(f"No data to move for {vg.name}.")
        write_pvmove(vg, None)  # a resumed move whose last chunk was committed: only the record is left
        tx.commit()
        return [], None
    targets = list(record.destinations) or [key for key in vg.pvs if key != record.source]
    chunk = max(1, (chunk_bytes or DEFAULT_CHUNK_BYTES) // vg.extent_bytes)
    pace.total = sum(count for name in names for segment in vg.lvs[name].segments
                     for area, count in segment.pv_areas() if area.pv == record.source) * vg.extent_bytes
    _check_room(vg, names, record.source, chunk, targets, tx.loaded.device_of)
    write_pvmove(vg, record)
    tx.commit()
    with KeystoreSessions(vg, tx.loaded.device_of) as sessions, ChunkSwitch(tx, sessions, None) as switch:
        for name in names:
            if live[name]:
                switch.settle(name)
            while True:
                before = copy.deepcopy(vg)
                move = next_area_move(vg, vg.lvs[name], record.source, chunk, targets, tx.loaded.device_of)
                if move is None:
                    break
                switch.commit(name, before, lambda: copy_raw(vg, tx.loaded.device_of, move.source, move.target,
                                                              move.count, pace), live[name])
    write_pvmove(vg, None)
    tx.commit()
    return names, switch.longest
