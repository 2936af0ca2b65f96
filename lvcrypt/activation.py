"""An LV's table stack, and the LV made live from it: in the kernel (with rollback) or in userspace.

`lvchange`/`vgchange` activate, deactivate and refresh through the kernel
backend; `read`, `write`, `table`, `mount` and wiping open the same stack in
userspace.  Keys come from `lvcrypt.unlock`, live in the command's KeyCache
and reach dm-crypt as `logon` keys, never as hex.  An activation that fails
after its devices exist (linking the volume key into a keyring) removes them
again, so nothing stays behind.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from lvcrypt import activation_filter
from lvcrypt.command_mode import verbose
from lvcrypt.errors import DeviceError, LockError, LvcryptError
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.lv_checks import find_lv, refuse_change, refuse_unless_changeable
from lvcrypt.records import dataclass
from lvcrypt.store import lvmlockd
from lvcrypt.unlock import KeySources, keystore_sessions, unlock_lv

if TYPE_CHECKING:
    from lvcrypt.activate import kernel
    from lvcrypt.activate.tables import KeyFormat, Table
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.handlers.base import DataMapping
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
    from lvcrypt.store.transaction import VgTransaction


def build_lv_table(tx: "VgTransaction", lv_name: str, sessions: KeystoreSessions | None = None) -> "Table":
    """The LV's table stack, to activate or open it; `sessions` are the command's open keystores, when it
    asks them more than this.  Not while a PV shows on several devices: which one holds the data is
    not ours to guess (lvm2 refuses activation alike)."""
    tx.loaded.refuse_duplicates(f"Cannot activate LVs in VG {tx.vg.name} while PVs appear on duplicate devices.")
    return _table(tx, lv_name, sessions)


def _table(tx: "VgTransaction", lv_name: str, sessions: KeystoreSessions | None = None) -> "Table":
    from lvcrypt.activate.tables import build_table

    with keystore_sessions(tx, sessions) as opened:
        return build_table(tx.vg, lv_name, tx.loaded.device_of, opened.data_mapping)


@dataclass(frozen=True)
class ActivationRequest:
    """What `lvchange`/`vgchange` asked for, beyond the key sources."""

    activate: bool
    refresh: bool = False
    link_vk_to_keyring: str | None = None  # KEYRING::%TYPE:DESC
    shared: bool = False  # -asy: in a shared VG the LV lock is taken sh (other hosts may activate too), else ex
    ignore_skip: bool = False  # -K: activate LVs carrying lvm2's activation-skip flag too


def check_before_starting(request: ActivationRequest, sources: KeySources) -> None:
    """Keyring spellings checked, and device-mapper there (else one line naming the userspace
    alternatives), before any passphrase is asked for or anything is created."""
    from lvcrypt import keyring
    from lvcrypt.activate.dm_ioctl import DeviceMapper

    if request.link_vk_to_keyring:
        keyring.parse_link_spec(request.link_vk_to_keyring)
    if sources.volume_key_keyring:
        keyring.parse_key_spec(sources.volume_key_keyring)
    DeviceMapper().close()


def check_pvs_present(tx: "VgTransaction", lv_name: str) -> None:
    """Refuse before asking for a passphrase when a PV the LV (or its keystore) needs is missing."""
    lv = tx.vg.lvs[lv_name]
    for name in [lv_name, *lv.keystores()]:
        for segment in tx.vg.lvs[name].segments:
            for area, _ in segment.pv_areas():
                if area.pv in tx.loaded.missing:
                    raise DeviceError(f"cannot activate {tx.vg.name}/{lv_name}: physical volume "
                                      f"{tx.vg.pvs[area.pv].id} is missing")


def _link_volume_key(request: ActivationRequest, tx: "VgTransaction", lv_name: str, keys: KeyCache) -> None:
    """--link-vk-to-keyring KEYRING::%TYPE:DESC once the LV is active, as cryptsetup does."""
    from lvcrypt import keyring

    stores = tx.vg.lvs[lv_name].keystores()
    if request.link_vk_to_keyring and stores and stores[0] in keys:
        keyring.link_volume_key(request.link_vk_to_keyring, keys[stores[0]])


def change_lv(tx: "VgTransaction", lv_name: str, keys: KeyCache, request: ActivationRequest,
              sources: KeySources, sessions: KeystoreSessions | None = None) -> None:
    """Activate, deactivate or refresh one LV in the kernel; an activation that fails half-way is undone.

    `sessions` are the command's open keystores (vgchange's LVs share them);
    without them the keystores are opened for this LV only.
    """
    from lvcrypt.activate import kernel
    from lvcrypt.lv_names import dm_name, dm_uuid

    from lvcrypt.command_mode import test_mode

    lv = find_lv(tx.vg, lv_name)
    refuse_unless_changeable(tx.vg, lv, "activate")
    if request.activate and not request.refresh:  # lvm2 passes over these and succeeds
        if "ACTIVATION_SKIP" in lv.status + lv.flags and not request.ignore_skip:
            verbose(f"ACTIVATION_SKIP flag set for LV {tx.vg.name}/{lv.name}, skipping activation.")
            return
        if not activation_filter.passes(tx.vg, lv):  # another host owns it (activation_filter)
            verbose(f"Not activating {tx.vg.name}/{lv.name} since it does not pass activation filter.")
            return
    if test_mode():  # lvm2's -t: the LV is checked, nothing is (de)activated
        check_pvs_present(tx, lv.name)
        return
    lock = _lv_lock(tx, lv)
    if not request.activate:
        kernel.deactivate(dm_name(tx.vg.name, lv.name), dm_uuid(tx.vg, lv))
        if lock is not None:
            lvmlockd.lock_lv(lock, "un")
        return
    if lock is not None and not request.refresh:
        lvmlockd.lock_lv(lock, "sh" if request.shared else "ex")
    try:
        with keystore_sessions(tx, sessions) as opened:
            _activate_or_refresh(tx, lv.name, keys, request, sources, opened)
    except BaseException:
        if lock is not None and not request.refresh:
            lvmlockd.lock_lv(lock, "un")
        raise


def _lv_lock(tx: "VgTransaction", lv: "LogicalVolume") -> "lvmlockd.LvTarget | None":
    """The LV lock lvm2 takes to activate an LV of a shared VG (persistent: it outlives the command,
    so no other host activates the LV meanwhile); None for a local VG.  Keystores get none: they are
    never activated themselves, and their headers change under the VG lock."""
    if not (tx.vg.shared and lvmlockd.enabled()) or not lvmlockd.needs_lock(lv) or lv.is_keystore:
        return None
    return lvmlockd.target(tx.vg, lv.id, lv.name, lv.lock_args)


def activate_lock_lv(vg: "VolumeGroup", pv_path: Callable[[str], str]) -> Callable[[], None]:
    """lvm2's _activate_sanlock_lv for vgcreate --shared: the lvmlock LV (plain, no keys) live here,
    /dev/mapper/VG-lvmlock included, so that lvmlockd's sanlock can write the leases in it.  Returns
    its deactivation, for a creation that fails after; a VG that was made stays active, as lvm2's."""
    from lvcrypt.activate import kernel
    from lvcrypt.activate.tables import build_table

    def no_keystore(name: str) -> "DataMapping":
        raise LvcryptError(f"{vg.name}/{lvmlockd.LVMLOCK_LV} has no keystore {name}")

    table = build_table(vg, lvmlockd.LVMLOCK_LV, pv_path, no_keystore)
    kernel.activate(table, {})
    return lambda: kernel.deactivate(table.name, table.uuid)


# How long `vgchange --lock-stop` waits for sanlock to close the lvmlock device (seen above 5 s under load).
LOCK_LV_RELEASE_SECONDS = 30.0
LOCK_LV_POLL_SECONDS = 0.2


class LockLvStep(Enum):
    """What `--lock-stop` does next with a VG's lvmlock device after stop_vg."""

    GONE = "gone"  # not active here: nothing to do
    REMOVE = "remove"  # nobody has it open: deactivate it now
    WAIT = "wait"  # sanlock still has it open: look again shortly
    GIVE_UP = "give up"  # still open after the bounded wait: say so


def lock_lv_step(open_count: int | None, waited: float, limit: float = LOCK_LV_RELEASE_SECONDS) -> LockLvStep:
    """lvmlockd answers stop_vg before sanlock has left the lockspace and closed lvmlock; removing it
    then fails (busy) and the device stays, which broke the next lockspace init on this host (lvm2's own
    race, seen under load).  So wait until nobody has it open, for at most `limit` seconds.
    `open_count` None: the device is not active."""
    if open_count is None:
        return LockLvStep.GONE
    if open_count == 0:
        return LockLvStep.REMOVE
    return LockLvStep.WAIT if waited < limit else LockLvStep.GIVE_UP


def deactivate_lock_lv(vg: "VolumeGroup") -> None:
    """lvm2's _deactivate_sanlock_lv after stop_vg: the lvmlock LV taken down (nothing if it is not live),
    once sanlock has let it go (`lock_lv_step`).  A remove that still fails (opened again meanwhile) is
    retried within the same bound."""
    from lvcrypt.activate import kernel
    from lvcrypt.lv_names import dm_name, dm_uuid

    name, uuid = dm_name(vg.name, lvmlockd.LVMLOCK_LV), dm_uuid(vg, vg.lvs[lvmlockd.LVMLOCK_LV])
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        step = lock_lv_step(kernel.open_count(name), waited)
        if step is LockLvStep.GONE:
            return
        if step is LockLvStep.GIVE_UP:
            raise LockError(f"VG {vg.name} lockspace stopped, but {name} is still open {waited:.0f} s later "
                            f"(sanlock has not let it go); deactivate it with dmsetup remove {name} once it is "
                            "closed")
        if step is LockLvStep.REMOVE:
            try:
                kernel.deactivate(name, uuid)
                return
            except LvcryptError:
                if waited >= LOCK_LV_RELEASE_SECONDS:
                    raise
        time.sleep(LOCK_LV_POLL_SECONDS)


def change_lvs(tx: "VgTransaction", names: list[str], keys: KeyCache, request: ActivationRequest,
               sources: KeySources) -> None:
    """`change_lv` for each of a VG's LVs in turn, with the keystores they share opened once."""
    with KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        for name in names:
            change_lv(tx, name, keys, request, sources, sessions)


def _activate_or_refresh(tx: "VgTransaction", lv_name: str, keys: KeyCache, request: ActivationRequest,
                         sources: KeySources, sessions: KeystoreSessions) -> None:
    """The -ay/--refresh half of `change_lv`: table and keys from the same open keystores."""
    from lvcrypt.activate import kernel
    from lvcrypt.activate.dm_ioctl import DeviceMapper

    lv = tx.vg.lvs[lv_name]
    table = build_lv_table(tx, lv.name, sessions)
    if "WRITE" not in lv.status or activation_filter.read_only(tx.vg, lv):
        for device in table.walk():  # the hidden layers too: none is written through
            device.read_only = True
    check_pvs_present(tx, lv.name)
    with DeviceMapper() as dm:
        active = kernel.is_active(dm, table)
    if request.refresh:
        if not active:
            raise kernel.ActivationError(f"{tx.vg.name}/{lv.name} is not active: nothing to refresh")
        if not kernel.keys_present(table) or sources.volume_key_keyring or sources.key_file:
            unlock_lv(tx, lv.name, keys, sources, sessions)
            kernel.refresh(table, keys)
        else:
            kernel.refresh(table, None)
        return
    if active:
        return
    unlock_lv(tx, lv.name, keys, sources, sessions)
    kernel.activate(table, keys)
    try:
        _link_volume_key(request, tx, lv.name, keys)
    except LvcryptError:
        kernel.deactivate(table.name, table.uuid)  # as if the activation had failed: nothing stays behind
        raise


def active_lv_count(vg: "VolumeGroup", sysfs_root: str = "/sys") -> int:
    """The visible LVs of the VG the kernel has now, whoever activated them: what lvm2's vgchange reports."""
    from lvcrypt.inuse import live_devices
    from lvcrypt.lv_names import dm_uuid

    live = live_devices(sysfs_root)
    return sum(1 for lv in vg.lvs.values() if lv.visible and dm_uuid(vg, lv) in live)


def vg_activation_targets(vg: "VolumeGroup") -> tuple[list[str], list[str]]:
    """(LVs `vgchange` changes, one line per LV it passes over): visible LVs lvcrypt may change.

    Keystores are metadata, never activated themselves; lvm2's LVs stay lvm2's.
    """
    from lvcrypt.metadata.segtypes import change_problem

    names, skipped = [], []
    for lv in sorted(vg.lvs.values(), key=lambda lv: lv.name):
        if not lv.visible or lv.is_keystore:
            continue
        problem = change_problem(vg, lv, "activate")
        if problem:
            skipped.append(problem)
        else:
            names.append(lv.name)
    return names, skipped


@contextmanager
def open_lv_stack(devices: str | None, vg_name: str, lv_name: str, writable: bool, sources: KeySources,
                  sysfs_root: str = "/sys") -> Iterator["Stack"]:
    """The LV's stack in userspace, under a shared VG lock so no metadata change moves its extents meanwhile."""
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, vg_name, exclusive=False) as tx, KeyCache() as keys, \
            KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        lv = find_lv(tx.vg, lv_name)
        if writable:
            refuse_change(tx.vg, lv, "data-write", sysfs_root)
        with _data_lock(tx, lv, writable, sysfs_root):
            table = build_lv_table(tx, lv_name, sessions)
            unlock_lv(tx, lv_name, keys, sources, sessions)
            with Stack(table, keys, writable=writable) as stack:
                yield stack


@contextmanager
def _data_lock(tx: "VgTransaction", lv: "LogicalVolume", writable: bool, sysfs_root: str) -> Iterator[None]:
    """The LV lock lvm2's activation would take, for the command only: sh to read (other hosts may
    read or have it active sh), ex to write; refused with lvm2's message when another host holds it.
    It is transient (lvmlockd drops it when this process goes, even killed) and asked before any
    passphrase.  An LV active here already has this host's persistent lock, which lvmlockd lets the
    transient one share and which must outlive the command: then nothing is released at the end
    (lvmlockd keeps no record of a transient lock granted under a persistent one)."""
    lock = _lv_lock(tx, lv)
    if lock is None:
        yield
        return
    from lvcrypt.inuse import live_devices  # a shared VG's alone: inuse imports pathlib
    from lvcrypt.lv_names import dm_uuid

    lvmlockd.lock_lv(lock, "ex" if writable else "sh", persistent=False)
    try:
        yield
    finally:
        if dm_uuid(tx.vg, lv) not in live_devices(sysfs_root):
            lvmlockd.lock_lv(lock, "un", persistent=False)


def take_mount_lock(tx: "VgTransaction", lv: "LogicalVolume", writable: bool,
                    sysfs_root: str = "/sys") -> "lvmlockd.LvTarget | None":
    """`lvcrypt mount` is an activation: in a shared VG it takes the LV lock lvm2's activation takes,
    persistent (it outlives the command, for the mount's lifetime), ex read-write as `lvchange -aey`,
    sh read-only as `-asy`; refused with lvm2's message when another host holds it.  Asked before
    any passphrase.  An LV live in this host's kernel already has its activation's lock (asking
    again in another mode would convert it): then the mount takes none.  Returns what
    `release_mount_lock` gives back at unmount."""
    from lvcrypt.inuse import live_devices
    from lvcrypt.lv_names import dm_uuid

    lock = _lv_lock(tx, lv)
    if lock is None or dm_uuid(tx.vg, lv) in live_devices(sysfs_root):
        return None
    lvmlockd.lock_lv(lock, "ex" if writable else "sh")
    return lock


def release_mount_lock(vg: "VolumeGroup", lv: "LogicalVolume", lock: "lvmlockd.LvTarget | None",
                       sysfs_root: str = "/sys") -> None:
    """At unmount, as `lvchange -an`: the persistent LV lock released (lock_lv un), unless the LV is
    still active here otherwise (a kernel device, another lvcrypt mount), whose activation it serves."""
    from lvcrypt.inuse import live_devices, userspace_mountpoint
    from lvcrypt.lv_names import dm_uuid

    if lock is None or dm_uuid(vg, lv) in live_devices(sysfs_root) or userspace_mountpoint(vg, lv) is not None:
        return
    lvmlockd.lock_lv(lock, "un")


def lv_table_text(devices: str | None, vg_name: str, lv_name: str, key_format: "KeyFormat", sources: KeySources,
                  sysfs_root: str = "/sys") -> str:
    """The LV's tables in dmsetup syntax with inline-crypto comments; keys as hex only after unlocking."""
    from lvcrypt.activate.tables import KeyFormat, render
    from lvcrypt.inline import comment_lines, stack_caps
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, vg_name, exclusive=False) as tx, KeyCache() as keys, \
            KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        find_lv(tx.vg, lv_name)
        table = build_lv_table(tx, lv_name, sessions)
        comments = comment_lines(stack_caps(table, sysfs_root))
        if key_format is KeyFormat.HEX:
            unlock_lv(tx, lv_name, keys, sources, sessions)
            return render(table, KeyFormat.HEX, keys, comments)
        return render(table, key_format, comments=comments)


def live_table(tx: "VgTransaction", name: str, sysfs_root: str = "/sys") -> "Table | None":
    """The LV's table stack as it is now, when the kernel has its device (sysfs `block/dm-N/dm/uuid`)."""
    from lvcrypt.lv_names import dm_uuid
    from lvcrypt.inuse import live_devices

    if dm_uuid(tx.vg, tx.vg.lvs[name]) not in live_devices(sysfs_root):
        return None
    return _table(tx, name)  # what is live already: deactivating it stays possible with duplicates


def check_reload(tx: "VgTransaction", name: str, live: "Table", force: bool, sysfs_root: str = "/sys") -> str | None:
    """Refuse (before the commit) a new table the kernel would refuse to load over the active one.

    With `force` the change goes ahead: returns the warning to show, None when nothing is dropped.
    """
    from lvcrypt.inline import reload_drops

    drops = reload_drops(live, build_lv_table(tx, name), sysfs_root)
    if not drops:
        return None
    text = "; ".join(drop.message() for drop in drops)
    if not force:
        raise LvcryptError(f"lvextend {tx.vg.name}/{name} is active and {text}; nothing changed "
                           "(--force extends anyway)")
    return f"{text}; extending anyway (--force)."


@dataclass
class ChunkSwitch:
    """How the extent mover commits one chunk: copy then commit, and for an LV active in the kernel the
    same under `kernel.switch` (new tables loaded, the LV suspended for the copy and the commit only, then
    resumed on its new extents).  `volume_keys` are the keys new tables need (None: pvmove, whose tables
    keep the keys already in the session keyring).  `longest` is the longest I/O pause so far, in seconds
    (None while no chunk of an active LV was switched)."""

    tx: "VgTransaction"
    sessions: KeystoreSessions
    volume_keys: "Mapping[str, bytes | bytearray] | None"
    longest: float | None = None
    _memory: ExitStack | None = None  # the memory lock its live LVs' chunks share (see `settle`)

    def __enter__(self) -> "ChunkSwitch":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._memory is not None:
            self._memory.close()

    def table(self, vg: "VolumeGroup", lv_name: str) -> "Table":
        from lvcrypt.activate.tables import build_table

        return build_table(vg, lv_name, self.tx.loaded.device_of, self.sessions.data_mapping)

    def settle(self, lv_name: str) -> None:
        """Put an active LV on its committed mapping before its first chunk: a move killed between its
        commit and its resume left the device suspended on the old tables, whose extents the metadata
        now calls free (owed wipes).  The archive is written now, not while the LV is suspended."""
        from lvcrypt.activate import kernel

        self.tx.archive_now()
        if self._memory is None:  # locked once for every chunk to come, until the switch ends
            self._memory = ExitStack()
            self._memory.enter_context(kernel.memory_locked(f"{self.tx.vg.name}/{lv_name}"))
        table = self.table(self.tx.vg, lv_name)
        if self.volume_keys is None and not kernel.keys_present(table):
            raise kernel.ActivationError(
                f"the key of active {self.tx.vg.name}/{lv_name} is not in this session's keyring; load it "
                f"with lvcrypt lvchange --refresh {self.tx.vg.name}/{lv_name} and a key source, then retry")
        kernel.refresh(table, self.volume_keys)

    def commit(self, lv_name: str, before: "VolumeGroup", copy: Callable[[], None], live: bool) -> None:
        """`copy()` (into extents free in `before`), then the commit of `self.tx.vg`; for a `live` LV both
        happen while it is suspended (the backup file is left to the transaction's last commit or end, as for
        every chunk: nothing touches a file system meanwhile, the LV may hold it).  If the copy fails, it runs
        on its old tables again; if the commit fails, on the tables of the metadata read back from the PVs
        (see `after_failed_commit`)."""
        from lvcrypt.activate import kernel

        if not live:
            copy()
            self.tx.commit(backup=False)  # the backup file once per command, as lvm2 (the transaction's end)
            return
        committing = False
        outcome: list[tuple["kernel.Resume", str]] = []

        def during() -> None:
            nonlocal committing
            copy()
            committing = True
            self.tx.commit(backup=False)

        def after_failure(error: BaseException) -> "kernel.Resume":
            if not committing:
                return kernel.Resume.OLD
            read_back, why = read_back_vg(self.tx)
            outcome.append((after_failed_commit(read_back, self.tx.vg.seqno), why))
            return outcome[0][0]
        name = f"{self.tx.vg.name}/{lv_name}"
        try:
            held = kernel.switch(self.table(self.tx.vg, lv_name), self.table(before, lv_name), self.volume_keys,
                                 during, after_failure)
        except kernel.ResumeFailed as error:
            raise kernel.ActivationError(f"{error}, though its metadata is committed; run lvcrypt lvchange "
                                         f"--refresh {name} to put it on its new extents") from None
        except (LvcryptError, OSError) as error:
            if not outcome:
                raise
            reason = str(error) if isinstance(error, LvcryptError) else (error.strerror or str(error))
            raise LvcryptError(failed_commit_message(name, reason, *outcome[0], self.tx.vg.seqno)) from None
        self.longest = max(held, self.longest or 0.0)


def read_back_vg(tx: "VgTransaction") -> tuple["VolumeGroup | None", str]:
    """The VG as the next command reads it from its PVs (highest valid seqno), or None and why not."""
    from lvcrypt.store.commit import load_vg, scan

    paths = [pv.path for pv in tx.loaded.pvs.values()]
    try:
        return load_vg(scan(paths), tx.vg.name).vg, ""
    except LvcryptError as error:
        return None, str(error)


def after_failed_commit(read_back: "VolumeGroup | None", new_seqno: int) -> "kernel.Resume":
    """Which tables a suspended LV resumes after its chunk's commit (of `new_seqno`) failed part-way: the
    ones of the mapping the next reader gets from the PVs.  Once one PV's header holds the new seqno, it
    wins (for lvm2 too), and the chunk was copied while the LV was suspended, so the new tables see the
    same bytes; the old tables would send writes to extents the metadata calls free.  Unreadable, or a
    seqno this commit did not write: neither mapping is known to be right, so the LV stays suspended."""
    from lvcrypt.activate import kernel

    if read_back is None:
        return kernel.Resume.NONE
    if read_back.seqno == new_seqno:
        return kernel.Resume.NEW
    if read_back.seqno == new_seqno - 1:
        return kernel.Resume.OLD
    return kernel.Resume.NONE


def failed_commit_message(name: str, reason: str, resume: "kernel.Resume", why: str, new_seqno: int) -> str:
    """One line for a chunk commit that failed while LV `name` was suspended, by what was resumed."""
    from lvcrypt.activate import kernel
    from lvcrypt.store.transaction import command_line

    if resume is kernel.Resume.NEW:
        return (f"committing a chunk of {name} failed ({reason}) after the metadata (seqno {new_seqno}) reached "
                f"only some PVs; {name} runs on its new extents, as the PVs now say, and the next command "
                "rewrites the other PVs' copies")
    if resume is kernel.Resume.OLD:
        return f"committing a chunk of {name} failed ({reason}) before any PV took it; {name} runs on its old extents"
    unreadable = f"its metadata cannot be read back ({why})" if why else "the metadata read back is neither version"
    return (f"committing a chunk of {name} failed ({reason}) and {unreadable}; {name} stays suspended, as either "
            f"mapping could be wrong: once the PVs are readable, run {command_line()} again or lvcrypt lvchange "
            f"--refresh {name}")
