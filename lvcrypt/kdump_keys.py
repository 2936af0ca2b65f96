"""kdump's volume keys for LVs: registering them in the first kernel, restoring and activating in the kdump kernel.

`lvcrypt.kdump` speaks to the kernel (configfs, the user keyring); this
module decides which LVs and keys: register puts each LV's `logon` key in
@u and a configfs entry beside it (undone as a whole on failure), restore
checks each restored `user` key against its keystore (no passphrase, no
PBKDF) and activates the LV, or says how to read it without device-mapper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from lvcrypt import kdump
from lvcrypt.errors import KdumpError, LvcryptError, UsageError
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.lv_checks import find_lv
from lvcrypt.records import dataclass, field
from lvcrypt.unlock import KeySources, adopt_volume_key, unlock_lv

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction

Targets = dict[str, list[str]]  # VG name -> LV names


def vg_names(devices: str | None) -> list[str]:
    from lvcrypt.store.commit import scan
    from lvcrypt.store.devices import candidate_devices

    return scan(candidate_devices(devices)).vg_names()


def every_vg(devices: str | None) -> Iterator["VgTransaction"]:
    """Each VG found, read under its shared lock; one this host must not touch (shared without lvmlockd,
    foreign) does not stop `--all` or `restore` for the others."""
    from lvcrypt.store.transaction import each_vg

    return each_vg(devices, vg_names(devices), True, exclusive=False)


def active_crypt_lvs(devices: str | None, sysfs_root: str) -> Targets:
    """--all: every crypt LV whose dm device the kernel has now (sysfs `block/dm-N/dm/uuid`)."""
    from lvcrypt.lv_names import dm_uuid
    from lvcrypt.inuse import live_devices

    live = live_devices(sysfs_root)
    targets: Targets = {}
    for tx in every_vg(devices):
        names = [lv.name for lv in tx.vg.lvs.values()
                 if lv.visible and lv.keystores() and dm_uuid(tx.vg, lv) in live]
        if names:
            targets[tx.vg.name] = sorted(names)
    return targets


def register_targets(devices: str | None, named: Targets, all_active: bool, sysfs_root: str) -> Targets:
    """The LVs `register` works on: those named, or with --all every active crypt LV (one of the two)."""
    if all_active == bool(named):
        raise UsageError("kdump register: give VG/LV... or --all")
    targets = active_crypt_lvs(devices, sysfs_root) if all_active else named
    if not targets:
        raise KdumpError("no encrypted LV is active: nothing to register")
    return targets


def descriptions(tx: "VgTransaction", lv: "LogicalVolume") -> list[tuple[str, str]]:
    """(keystore, key description) of each key the LV's table needs."""
    from lvcrypt.lv_names import key_description
    from lvcrypt.keystores import keystores_used_by

    pairs = [(store, key_description(lv, store)) for store in keystores_used_by(tx.vg, lv)]
    for _, description in pairs:
        kdump.check_description(description)
    return pairs


def _ensure_key(tx: "VgTransaction", lv_name: str, store: str, description: str, keys: KeyCache,
                sources: KeySources) -> bool:
    """The LV's logon key in @u: already there, linked from this process's keyrings, or unlocked and added.

    Returns whether the user keyring changed (so a failure can undo it).
    """
    if kdump.registered_key(description) is not None:
        return False
    if kdump.link_existing_key(description) is None:
        unlock_lv(tx, lv_name, keys, sources)
        kdump.add_logon_key(description, keys[store])
    return True


@dataclass(frozen=True)
class Registered:
    vg: str
    lv: str
    description: str


def register(devices: str | None, targets: Targets, configfs_root: str, sources: KeySources) -> list[Registered]:
    """Each target LV's keys in @u and in crash_dm_crypt_keys; on any failure both are undone."""
    from lvcrypt.store.transaction import VgTransaction

    crash = kdump.CrashKeys(configfs_root)
    crash.check()
    existing = {entry.description for entry in crash.entries()}
    wanted: dict[str, list[tuple[str, str, str]]] = {}
    for vg_name, names in targets.items():
        with VgTransaction(devices, vg_name, exclusive=False) as tx:
            for name in names:
                lv = find_lv(tx.vg, name)
                wanted.setdefault(vg_name, []).extend((name, store, text) for store, text in descriptions(tx, lv))
    adding = {text for items in wanted.values() for _, _, text in items} - existing
    kdump.check_room(crash.count(), len(adding))
    made_entries: list[str] = []
    made_keys: list[str] = []
    done: list[Registered] = []
    try:
        for vg_name, items in wanted.items():
            with VgTransaction(devices, vg_name, exclusive=False) as tx, KeyCache() as keys:
                for name, store, description in items:
                    if _ensure_key(tx, name, store, description, keys, sources):
                        made_keys.append(description)
                    if description not in existing:
                        entry = kdump.Entry(kdump.entry_id(description), description)
                        crash.add(entry)
                        made_entries.append(entry.id)
                        existing.add(description)
                    done.append(Registered(vg_name, name, description))
    except BaseException:
        for entry_id in made_entries:
            crash.remove(entry_id)
        for description in made_keys:
            kdump.drop_user_keyring_link(description)
        raise
    return done


def registered_count(configfs_root: str) -> int:
    return kdump.CrashKeys(configfs_root).count()


def unregister(devices: str | None, named: Targets, all_keys: bool, configfs_root: str) -> list[str]:
    """Remove the named LVs' entries (or every lvcrypt entry) and their @u links; returns their descriptions."""
    from lvcrypt.store.transaction import VgTransaction

    if all_keys == bool(named):
        raise UsageError("kdump unregister: give VG/LV... or --all")
    crash = kdump.CrashKeys(configfs_root)
    crash.check()
    entries = [entry for entry in crash.entries() if entry.description.startswith(kdump.PREFIX)]
    if not all_keys:
        prefixes = []
        for vg_name, names in named.items():
            with VgTransaction(devices, vg_name, exclusive=False) as tx:
                prefixes += [f"{kdump.PREFIX}{find_lv(tx.vg, name).id}" for name in names]
        entries = [entry for entry in entries
                   if any(entry.description == p or entry.description.startswith(p + ":") for p in prefixes)]
        if not entries:
            raise KdumpError("none of these LVs is registered for kdump")
    for entry in entries:
        crash.remove(entry.id)
        kdump.drop_user_keyring_link(entry.description)
    return [entry.description for entry in entries]


def _lv_names_by_uuid(devices: str | None) -> dict[str, str]:
    """LV uuid -> VG/LV over the VGs found (best effort: a status report must not fail on one bad VG)."""
    from lvcrypt.store.transaction import VgTransaction

    names: dict[str, str] = {}
    try:
        found = vg_names(devices)
    except LvcryptError:
        return names
    for vg_name in found:
        try:
            with VgTransaction(devices, vg_name, exclusive=False) as tx:
                names.update({lv.id: f"{vg_name}/{lv.name}" for lv in tx.vg.lvs.values()})
        except LvcryptError:
            continue
    return names


@dataclass(frozen=True)
class StatusRow:
    """One configfs entry: its id, the key it names, the LV that key opens (if found) and whether it is there."""

    id: str
    description: str
    lv: str
    present: bool


def status(devices: str | None, configfs_root: str) -> list[StatusRow]:
    crash = kdump.CrashKeys(configfs_root)
    crash.check()
    entries = crash.entries()
    names = _lv_names_by_uuid(devices) if any(e.description.startswith(kdump.PREFIX) for e in entries) else {}
    return [StatusRow(entry.id, entry.description,
                      names.get(kdump.lv_uuid_of(entry.description), "")
                      if entry.description.startswith(kdump.PREFIX) else "",
                      bool(entry.description and kdump.registered_key(entry.description)))
            for entry in entries]


def _restore_lv(tx: "VgTransaction", lv: "LogicalVolume", restored: dict[str, int], keys: KeyCache,
                sessions: KeystoreSessions) -> list[int]:
    """Each keystore's volume key from its restored user key, checked by the handler's digest (no PBKDF)."""
    from lvcrypt import keyring
    from lvcrypt.handlers.secret import Secret

    used = []
    for store, description in descriptions(tx, lv):
        serial = restored.get(description)
        if serial is None:
            raise KdumpError(f"{tx.vg.name}/{lv.name}: the kernel restored no key {description}")
        adopt_volume_key(tx, store, Secret.adopt(keyring.read_key(serial)), keys, sessions)
        used.append(serial)
    return used


@dataclass
class RestoreReport:
    """What `restore` did: one line per LV (`errors` for stderr), and the LVs it could not activate."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def raise_if_failed(self) -> None:
        if self.failed:
            raise KdumpError(f"could not activate {', '.join(self.failed)} from the restored keys")


def restore(devices: str | None, configfs_root: str, sysfs_root: str, keep_keys: bool) -> RestoreReport:
    """In the kdump kernel: restore the keys, activate each LV they open (or verify them without dm)."""
    from lvcrypt.activation import build_lv_table

    kdump.trigger_restore(kdump.restore_file(configfs_root, sysfs_root))
    restored = kdump.restored_keys()
    if not restored:
        raise KdumpError("the kernel restored no lvcrypt keys (registered before the kdump kernel was loaded?)")
    wanted = {kdump.lv_uuid_of(description) for description in restored}
    kernel_backend = kdump.dm_available()
    report = RestoreReport()
    done: set[str] = set()
    spent: list[int] = []
    for tx in every_vg(devices):
        vg_name = tx.vg.name
        for lv in [lv for lv in tx.vg.lvs.values() if lv.id in wanted]:
            done.add(lv.id)
            try:
                with KeyCache() as keys, KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
                    used = _restore_lv(tx, lv, restored, keys, sessions)
                    if kernel_backend:
                        from lvcrypt.activate import kernel

                        made = kernel.activate(build_lv_table(tx, lv.name, sessions), keys)
                        spent += used
                        report.lines.append(f"  {vg_name}/{lv.name}: " + ("activated from the restored volume key."
                                                                          if made else "already active."))
                    else:
                        description = descriptions(tx, lv)[0][1]
                        report.lines.append(f"  {vg_name}/{lv.name}: restored volume key verified; no device-mapper "
                                            f"here, read it with: lvcrypt read --volume-key-keyring "
                                            f"%user:{description} {vg_name}/{lv.name}")
            except LvcryptError as error:
                report.failed.append(f"{vg_name}/{lv.name}")
                report.errors.append(f"  {error}")
    for uuid in sorted(wanted - done):
        report.errors.append(f"  WARNING: a key for LV uuid {uuid} was restored but no VG here has that LV.")
    if not keep_keys:
        for serial in spent:
            kdump.unlink_restored(serial)
    return report
