"""`vgchange --lock-start/--lock-stop`: join or leave the lvmlockd lockspaces of shared VGs, as lvm2.

lvm2 2.03.16 (tools/vgchange.c, lib/locking/lvmlockd.c): without use_lvmlockd the command says so
and succeeds; --lock-start takes the global lock sh, reads each VG without a VG lock (its
lockspace is what is being started), sends start_vg (sanlock with this host's local/host_id)
and ends with start_wait; --lock-stop reads each VG under a sh VG lock and sends stop_vg.
Local VGs are passed over.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from lvcrypt.records import dataclass
from typing import Callable

from lvcrypt.errors import LockError, UsageError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.store import lvm_config, lvmlockd
from lvcrypt.store.commit import load_vg, scan
from lvcrypt.store.devices import candidate_devices
from lvcrypt.store.lock import GLOBAL, VgLock


def _say(message: str) -> None:
    print(f"  {message}")


def _start_failure(vg: VolumeGroup, result: int) -> str:
    kind = vg.lock_type
    reasons = {-lvmlockd.ELOCKD: "lvmlockd not available", -lvmlockd.EARGS: f"invalid parameters for {kind}",
               -lvmlockd.EHOSTID: "invalid sanlock host_id, set in lvmlocal.conf",
               -lvmlockd.EMANAGER: f"lock manager {kind} is not running",
               -errno.EPROTONOSUPPORT: f"lock manager {kind} is not supported by lvmlockd"}
    return f"VG {vg.name} start failed: {reasons.get(result, str(result))}"


def _host_id() -> int:
    value = lvm_config.setting("local/host_id", 0)
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class LockLvSwitch:
    """How this host makes a sanlock VG's lvmlock LV live and takes it down (activation services,
    which the store layer cannot import): lvm2 activates it before start_vg (sanlock reads its
    leases through /dev/mapper/VG-lvmlock) and deactivates it after stop_vg."""

    activate: Callable[[VolumeGroup, Callable[[str], str]], object]
    deactivate: Callable[[VolumeGroup], None]


def _start(vg: VolumeGroup, start_init: bool = False) -> bool:
    """start_vg for one VG; True when its lockspace is (being) started."""
    host_id = _host_id() if vg.lock_type == "sanlock" else 0
    result = lvmlockd.start_vg(vg.name, vg.lock_type or "none", vg.lock_args or "none", vg.id, vg.seqno, host_id,
                               start_init)
    if result == 0:
        _say(f"VG {vg.name} starting {vg.lock_type} lockspace")
        return True
    if result in (-errno.EEXIST, -lvmlockd.ESTARTING):
        return True
    raise LockError(_start_failure(vg, result))


def _stop(vg: VolumeGroup) -> None:
    result = lvmlockd.stop_vg(vg.name)
    if result == -errno.EBUSY:
        raise LockError(f"VG {vg.name} stop failed: LVs must first be deactivated")
    if result not in (0, -lvmlockd.ENOLS):
        raise LockError(f"VG {vg.name} stop failed: {result}")


def change_lockspaces(devices: str | None, names: list[str], start: bool, lock_lv: LockLvSwitch) -> None:
    """Start or stop the lockspaces of the named shared VGs (all of them when none is named)."""
    if not lvmlockd.enabled():
        print("  Using lock start and lock stop requires lvmlockd.", file=sys.stderr)
        return
    paths = candidate_devices(devices)
    started: list[VolumeGroup] = []
    with contextlib.ExitStack() as held:
        if start:
            held.enter_context(VgLock(GLOBAL, exclusive=False))
            held.enter_context(lvmlockd.without_vg_locks())
        for name in names or sorted(scan(paths).vg_names()):
            with VgLock(name, exclusive=False):
                loaded = load_vg(scan(paths), name)
                vg = loaded.vg
                if not vg.shared:
                    continue
                sanlock = vg.lock_type == "sanlock" and lvmlockd.LVMLOCK_LV in vg.lvs
                if not start:
                    _stop(vg)
                    if sanlock:
                        lock_lv.deactivate(vg)
                    continue
                if sanlock:
                    lock_lv.activate(vg, loaded.device_of)
                if _start(vg):
                    started.append(vg)
    if started:
        if any(vg.lock_type == "sanlock" for vg in started):
            _say("Starting locking.  Waiting for sanlock may take 20 sec to 3 min...")
        else:
            _say("Starting locking.  Waiting until locks are ready...")
        lvmlockd.start_wait()


def new_lock_type(shared: bool, lock_type: str | None) -> str | None:
    """vgcreate --shared / --lock-type, as lvm2's vgcreate_params_set_from_args: the lock type of the
    new VG (None: local); --shared alone takes the lock manager lvmlockd finds running.  Refusals
    are usage errors, as lvm2's."""
    if lock_type is None and shared:
        if not lvmlockd.enabled():
            raise UsageError("Using a shared lock type requires lvmlockd (lvm.conf use_lvmlockd.)")
        return lvmlockd.running_lock_type()
    if lock_type in (None, "none"):
        return None
    if lock_type not in ("sanlock", "dlm"):
        raise UsageError(f"lock_type {lock_type} is invalid")
    if not lvmlockd.enabled():
        raise UsageError("Using a shared lock type requires lvmlockd.")
    return lock_type


def start_new(vg: VolumeGroup) -> None:
    """vgcreate --shared's last steps, as lvm2: start the new VG's lockspace (start_init), give the
    global lock back, wait until the locks are ready."""
    _start(vg, start_init=True)
    lvmlockd.unlock_gl()
    _say("Starting locking.  Waiting until locks are ready...")
    lvmlockd.start_wait()
