"""`lvcrypt kdump register|unregister|status|restore`: volume keys handed to the kdump kernel.

register/unregister/status run in the first kernel, before and after the
distribution's kdump service loads the crash kernel; restore runs in the
kdump kernel and activates the LVs from the restored keys without a
passphrase and without any PBKDF (lvcrypt.kdump explains the kernel side).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Iterator

from lvcrypt.cli import common_options
from lvcrypt.cli.crypt import add_key_file_option, split_lv

if TYPE_CHECKING:
    from lvcrypt.keycache import KeyCache
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction


def _vg_names(args: argparse.Namespace) -> list[str]:
    from lvcrypt.store.commit import scan
    from lvcrypt.store.devices import candidate_devices

    return scan(candidate_devices(args.devices)).vg_names()


def _every_vg(args: argparse.Namespace) -> Iterator["VgTransaction"]:
    """Each VG found, read under its shared lock; one this host must not touch (shared without lvmlockd,
    foreign) does not stop `--all` or `restore` for the others."""
    from lvcrypt.store.transaction import each_vg

    return each_vg(args.devices, _vg_names(args), True, exclusive=False)


def _named(args: argparse.Namespace) -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    for item in args.lvs:
        vg_name, lv_name = split_lv(item)
        targets.setdefault(vg_name, []).append(lv_name)
    return targets


def _active_crypt_lvs(args: argparse.Namespace) -> dict[str, list[str]]:
    """--all: every crypt LV whose dm device the kernel has now (sysfs `block/dm-N/dm/uuid`)."""
    from lvcrypt.activate.tables import dm_uuid
    from lvcrypt.inline import live_devices

    live = live_devices(args.sysfs_root)
    targets: dict[str, list[str]] = {}
    for tx in _every_vg(args):
        names = [lv.name for lv in tx.vg.lvs.values()
                 if lv.visible and lv.keystores() and dm_uuid(tx.vg, lv) in live]
        if names:
            targets[tx.vg.name] = sorted(names)
    return targets


def _targets(args: argparse.Namespace) -> dict[str, list[str]]:
    from lvcrypt.errors import KdumpError, UsageError

    if bool(args.all) == bool(args.lvs):
        raise UsageError(f"kdump {args.action}: give VG/LV... or --all")
    targets = _active_crypt_lvs(args) if args.all else _named(args)
    if not targets:
        raise KdumpError("no encrypted LV is active: nothing to register")
    return targets


def _descriptions(tx: "VgTransaction", lv: "LogicalVolume") -> list[tuple[str, str]]:
    """(keystore, key description) of each key the LV's table needs."""
    from lvcrypt.activate.tables import key_description
    from lvcrypt.kdump import check_description
    from lvcrypt.keystores import keystores_used_by

    pairs = [(store, key_description(lv, store)) for store in keystores_used_by(tx.vg, lv)]
    for _, description in pairs:
        check_description(description)
    return pairs


def _ensure_key(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, store: str, description: str,
                keys: "KeyCache") -> bool:
    """The LV's logon key in @u: already there, linked from this process's keyrings, or unlocked and added.

    Returns whether the user keyring changed (so a failure can undo it).
    """
    from lvcrypt import kdump
    from lvcrypt.cli.activate import unlock_for_activation

    if kdump.registered_key(description) is not None:
        return False
    if kdump.link_existing_key(description) is None:
        unlock_for_activation(args, tx, lv_name, keys)
        kdump.add_logon_key(description, keys[store])
    return True


def cmd_register(args: argparse.Namespace) -> int:
    from lvcrypt import kdump
    from lvcrypt.keycache import KeyCache
    from lvcrypt.lvops import find_lv
    from lvcrypt.store.transaction import VgTransaction

    targets = _targets(args)
    crash = kdump.CrashKeys(args.configfs_root)
    crash.check()
    existing = {entry.description for entry in crash.entries()}
    wanted: dict[str, list[tuple[str, str, str]]] = {}
    for vg_name, names in targets.items():
        with VgTransaction(args.devices, vg_name, exclusive=False) as tx:
            for name in names:
                lv = find_lv(tx.vg, name)
                wanted.setdefault(vg_name, []).extend((name, store, text) for store, text in _descriptions(tx, lv))
    adding = {text for items in wanted.values() for _, _, text in items} - existing
    kdump.check_room(crash.count(), len(adding))
    made_entries: list[str] = []
    made_keys: list[str] = []
    try:
        for vg_name, items in wanted.items():
            with VgTransaction(args.devices, vg_name, exclusive=False) as tx, KeyCache() as keys:
                for name, store, description in items:
                    if _ensure_key(args, tx, name, store, description, keys):
                        made_keys.append(description)
                    if description not in existing:
                        entry = kdump.Entry(kdump.entry_id(description), description)
                        crash.add(entry)
                        made_entries.append(entry.id)
                        existing.add(description)
                    print(f"  {vg_name}/{name}: key {description} registered for kdump.")
    except BaseException:
        for entry_id in made_entries:
            crash.remove(entry_id)
        for description in made_keys:
            kdump.drop_user_keyring_link(description)
        raise
    print(f"  {kdump.SUBSYSTEM} count: {crash.count()}")
    return 0


def cmd_unregister(args: argparse.Namespace) -> int:
    from lvcrypt import kdump
    from lvcrypt.errors import KdumpError, UsageError
    from lvcrypt.lvops import find_lv
    from lvcrypt.store.transaction import VgTransaction

    if bool(args.all) == bool(args.lvs):
        raise UsageError("kdump unregister: give VG/LV... or --all")
    crash = kdump.CrashKeys(args.configfs_root)
    crash.check()
    entries = [entry for entry in crash.entries() if entry.description.startswith(kdump.PREFIX)]
    if not args.all:
        prefixes = []
        for vg_name, names in _named(args).items():
            with VgTransaction(args.devices, vg_name, exclusive=False) as tx:
                prefixes += [f"{kdump.PREFIX}{find_lv(tx.vg, name).id}" for name in names]
        entries = [entry for entry in entries
                   if any(entry.description == p or entry.description.startswith(p + ":") for p in prefixes)]
        if not entries:
            raise KdumpError("none of these LVs is registered for kdump")
    for entry in entries:
        crash.remove(entry.id)
        kdump.drop_user_keyring_link(entry.description)
        print(f"  key {entry.description} unregistered.")
    print(f"  {kdump.SUBSYSTEM} count: {crash.count()}")
    return 0


def _lv_names_by_uuid(args: argparse.Namespace) -> dict[str, str]:
    """LV uuid -> VG/LV over the VGs found (best effort: a status report must not fail on one bad VG)."""
    from lvcrypt.errors import LvcryptError
    from lvcrypt.store.transaction import VgTransaction

    names = {}
    try:
        vg_names = _vg_names(args)
    except LvcryptError:
        return names
    for vg_name in vg_names:
        try:
            with VgTransaction(args.devices, vg_name, exclusive=False) as tx:
                names.update({lv.id: f"{vg_name}/{lv.name}" for lv in tx.vg.lvs.values()})
        except LvcryptError:
            continue
    return names


def cmd_status(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from lvcrypt import kdump

    crash = kdump.CrashKeys(args.configfs_root)
    crash.check()
    entries = crash.entries()
    names = _lv_names_by_uuid(args) if any(e.description.startswith(kdump.PREFIX) for e in entries) else {}
    rows = [[entry.id, entry.description or "(none)",
             names.get(kdump.lv_uuid_of(entry.description), "") if entry.description.startswith(kdump.PREFIX)
             else "", "present" if entry.description and kdump.registered_key(entry.description) else "missing"]
            for entry in entries]
    if rows:
        text = tabulate(rows, headers=["ID", "Description", "LV", "Key"], tablefmt="plain", disable_numparse=True)
        print("\n".join("  " + line.rstrip() for line in text.splitlines()))
    print(f"  {kdump.SUBSYSTEM} count: {crash.count()}")
    return 0


def _restore_lv(tx: "VgTransaction", lv: "LogicalVolume", restored: dict[str, int], keys: "KeyCache") -> list[int]:
    """Each keystore's volume key from its restored user key, checked by the handler's digest (no PBKDF)."""
    from lvcrypt import keyring
    from lvcrypt.errors import KdumpError
    from lvcrypt.handlers.secret import Secret
    from lvcrypt.keystores import attrs_of, close_area, handler_of, keystore_segment, open_area

    used = []
    for store, description in _descriptions(tx, lv):
        serial = restored.get(description)
        if serial is None:
            raise KdumpError(f"{tx.vg.name}/{lv.name}: the kernel restored no key {description}")
        key = Secret.adopt(keyring.read_key(serial))
        area = open_area(tx.vg, store, tx.loaded.device_of)
        try:
            handler_of(tx.vg, store).verify_volume_key(area, attrs_of(keystore_segment(tx.vg, store)), key)
        except BaseException:
            key.close()
            raise
        finally:
            close_area(area)
        keys.put(store, key)
        used.append(serial)
    return used


def cmd_restore(args: argparse.Namespace) -> int:
    from lvcrypt import kdump
    from lvcrypt.cli.crypt import build_lv_table
    from lvcrypt.errors import KdumpError, LvcryptError
    from lvcrypt.keycache import KeyCache

    kdump.trigger_restore(kdump.restore_file(args.configfs_root, args.sysfs_root))
    restored = kdump.restored_keys()
    if not restored:
        raise KdumpError("the kernel restored no lvcrypt keys (registered before the kdump kernel was loaded?)")
    wanted = {kdump.lv_uuid_of(description) for description in restored}
    kernel_backend = kdump.dm_available()
    failed: list[str] = []
    done: set[str] = set()
    spent: list[int] = []
    for tx in _every_vg(args):
        vg_name = tx.vg.name
        for lv in [lv for lv in tx.vg.lvs.values() if lv.id in wanted]:
            done.add(lv.id)
            try:
                with KeyCache() as keys:
                    used = _restore_lv(tx, lv, restored, keys)
                    if kernel_backend:
                        from lvcrypt.activate import kernel

                        made = kernel.activate(build_lv_table(tx, lv.name), keys)
                        spent += used
                        print(f"  {vg_name}/{lv.name}: " + ("activated from the restored volume key."
                                                             if made else "already active."))
                    else:
                        description = _descriptions(tx, lv)[0][1]
                        print(f"  {vg_name}/{lv.name}: restored volume key verified; no device-mapper here, "
                              f"read it with: lvcrypt read --volume-key-keyring %user:{description} "
                              f"{vg_name}/{lv.name}")
            except LvcryptError as error:
                failed.append(f"{vg_name}/{lv.name}")
                print(f"  {error}", file=sys.stderr)
    for uuid in sorted(wanted - done):
        print(f"  WARNING: a key for LV uuid {uuid} was restored but no VG here has that LV.", file=sys.stderr)
    if not args.keep_keys:
        for serial in spent:
            kdump.unlink_restored(serial)
    if failed:
        raise KdumpError(f"could not activate {', '.join(failed)} from the restored keys")
    return 0


def _roots(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfs-root", default="/sys/kernel/config", metavar="DIR",
                        help="where configfs is mounted (crash_dm_crypt_keys lives under it)")
    parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                        help="sysfs: active dm devices (--all), the restore file's fallback location")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.cli import ArgumentParser

    parser = sub.add_parser(name, help="hand volume keys to the kdump kernel (crash_dm_crypt_keys)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=ArgumentParser)
    actions.required = True
    common = [common_options()]
    register_parser = actions.add_parser("register", parents=common,
                                         help="put LVs' volume keys in the user keyring and register them")
    register_parser.add_argument("--all", action="store_true", help="every encrypted LV active now")
    add_key_file_option(register_parser)
    register_parser.add_argument("--volume-key-keyring", metavar="%TYPE:DESC",
                                 help="take the volume key from this keyring key instead of a passphrase")
    register_parser.add_argument("lvs", nargs="*", metavar="VG/LV")
    register_parser.set_defaults(func=cmd_register)
    unregister = actions.add_parser("unregister", parents=common, help="remove registered keys")
    unregister.add_argument("--all", action="store_true", help="every key lvcrypt registered")
    unregister.add_argument("lvs", nargs="*", metavar="VG/LV")
    unregister.set_defaults(func=cmd_unregister)
    status = actions.add_parser("status", parents=common, help="list registered keys and whether each is present")
    status.set_defaults(func=cmd_status)
    restore = actions.add_parser("restore", parents=common,
                                 help="in the kdump kernel: restore the keys and activate their LVs")
    restore.add_argument("--keep-keys", action="store_true",
                         help="leave the restored keys in the user keyring after activation")
    restore.set_defaults(func=cmd_restore)
    for action in (register_parser, unregister, status, restore):
        _roots(action)
