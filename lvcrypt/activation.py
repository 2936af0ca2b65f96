"""An LV's table stack, and the LV made live from it: in the kernel (with rollback) or in userspace.

`lvchange`/`vgchange` activate, deactivate and refresh through the kernel
backend; `read`, `write`, `table`, `mount` and wiping open the same stack in
userspace.  Keys come from `lvcrypt.unlock`, live in the command's KeyCache
and reach dm-crypt as `logon` keys, never as hex.  An activation that fails
after its devices exist (linking the volume key into a keyring) removes them
again, so nothing stays behind.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from lvcrypt.errors import DeviceError, LvcryptError
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.lvops import find_lv, refuse_change, refuse_unless_changeable
from lvcrypt.records import dataclass
from lvcrypt.store import lvmlockd
from lvcrypt.unlock import KeySources, keystore_sessions, unlock_lv

if TYPE_CHECKING:
    from lvcrypt.activate.tables import KeyFormat, Table
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
    from lvcrypt.store.transaction import VgTransaction


def build_lv_table(tx: "VgTransaction", lv_name: str, sessions: KeystoreSessions | None = None) -> "Table":
    """The LV's table stack; `sessions` are the command's open keystores, when it asks them more than this."""
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
        table = build_lv_table(tx, lv_name, sessions)
        unlock_lv(tx, lv_name, keys, sources, sessions)
        with Stack(table, keys, writable=writable) as stack:
            yield stack


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
    return build_lv_table(tx, name)


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
