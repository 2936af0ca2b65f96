"""`lvchange -ay|-an [--refresh] VG/LV` and `vgchange -ay|-an VG`: the kernel backend.

Volume keys for crypt LVs come, in cryptsetup's order, from
`--volume-key-keyring` (a key already in the kernel keyring, checked against
the keystore before use), from --key-file, from a LUKS2 `luks2-keyring`
token (the passphrase is a keyring key the token names), or from a prompt.
`--link-vk-to-keyring` also leaves the volume key in a keyring of the
user's choice.  Keys live in the command's KeyCache and are wiped at exit;
dm-crypt gets them as `logon` keys, never as hex.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from lvcrypt.cli import common_options
from lvcrypt.cli.crypt import add_key_file_option, split_lv

if TYPE_CHECKING:
    from lvcrypt.handlers.base import KeystoreSession
    from lvcrypt.keycache import KeyCache
    from lvcrypt.store.transaction import VgTransaction


@contextmanager
def _opened_keystore(tx: "VgTransaction", store: str) -> Iterator["KeystoreSession"]:
    """The keystore's handler session (its area closed afterwards)."""
    from lvcrypt.keystores import KeystoreSessions

    with KeystoreSessions(tx.vg, tx.loaded.device_of) as stores:
        yield stores.session(store)


def _unlock_from_volume_key_keyring(args: argparse.Namespace, tx: "VgTransaction", stores: list[str],
                                    keys: "KeyCache") -> None:
    """--volume-key-keyring: a `user` key whose payload must verify as each keystore's volume key."""
    from lvcrypt import keyring
    from lvcrypt.errors import KeyringError
    from lvcrypt.handlers.secret import Secret

    spec = keyring.parse_key_spec(args.volume_key_keyring)
    if spec.type != "user":
        raise KeyringError(f"{spec}: a logon key cannot be read back to check it against the keystore; "
                           "use a %user: key")
    serial = keyring.find_key(spec)
    if serial is None:
        raise KeyringError(f"no key {spec} in this process's keyrings")
    for store in stores:
        key = Secret.adopt(keyring.read_key(serial))
        try:
            with _opened_keystore(tx, store) as session:
                session.verify_volume_key(key)
        except BaseException:
            key.close()
            raise
        keys.put(store, key)


def _unlock_from_token(tx: "VgTransaction", store: str, keys: "KeyCache") -> bool:
    """The keystore's keyring tokens (LUKS2's `luks2-keyring`): try each whose passphrase is in the keyring."""
    from lvcrypt import keyring
    from lvcrypt.errors import WrongPassphrase
    from lvcrypt.handlers.secret import Secret

    with _opened_keystore(tx, store) as session:
        for token in session.keyring_tokens():
            serial = keyring.request_key("user", token.key_description)
            if serial is None:
                continue
            with Secret.adopt(keyring.read_key(serial)) as passphrase:
                for slot in token.keyslots:
                    try:
                        keys.put(store, session.unlock(passphrase, slot))
                        return True
                    except WrongPassphrase:
                        continue
    return False


def unlock_for_activation(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, keys: "KeyCache") -> None:
    """Every keystore of the LV unlocked into `keys`, from the first source that applies."""
    from lvcrypt.cli.crypt import unlock_lv

    stores = tx.vg.lvs[lv_name].keystores()
    if not stores or all(store in keys for store in stores):
        return
    if getattr(args, "volume_key_keyring", None):
        _unlock_from_volume_key_keyring(args, tx, [s for s in stores if s not in keys], keys)
    elif args.key_file is None:
        for store in stores:
            if store not in keys:
                _unlock_from_token(tx, store, keys)
    if not all(store in keys for store in stores):
        unlock_lv(args, tx, lv_name, keys)


def _link_volume_key(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, keys: "KeyCache") -> None:
    """--link-vk-to-keyring KEYRING::%TYPE:DESC once the LV is active, as cryptsetup does."""
    from lvcrypt import keyring

    stores = tx.vg.lvs[lv_name].keystores()
    if args.link_vk_to_keyring and stores and stores[0] in keys:
        keyring.link_volume_key(args.link_vk_to_keyring, keys[stores[0]])


def _check_pvs_present(tx: "VgTransaction", lv_name: str) -> None:
    """Refuse before asking for a passphrase when a PV the LV (or its keystore) needs is missing."""
    from lvcrypt.errors import DeviceError

    lv = tx.vg.lvs[lv_name]
    for name in [lv_name, *lv.keystores()]:
        for segment in tx.vg.lvs[name].segments:
            for area, _ in segment.pv_areas():
                if area.pv in tx.loaded.missing:
                    raise DeviceError(f"cannot activate {tx.vg.name}/{lv_name}: physical volume "
                                      f"{tx.vg.pvs[area.pv].id} is missing")


def _check_before_starting(args: argparse.Namespace) -> None:
    """Keyring spellings checked, and device-mapper there (else one line naming the userspace
    alternatives), before any passphrase is asked for or anything is created."""
    from lvcrypt import keyring
    from lvcrypt.activate.dm_ioctl import DeviceMapper

    if args.link_vk_to_keyring:
        keyring.parse_link_spec(args.link_vk_to_keyring)
    if args.volume_key_keyring:
        keyring.parse_key_spec(args.volume_key_keyring)
    DeviceMapper().close()


def change_lv(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, keys: "KeyCache") -> None:
    from lvcrypt.activate import kernel
    from lvcrypt.activate.dm_ioctl import DeviceMapper
    from lvcrypt.activate.tables import dm_name, dm_uuid
    from lvcrypt.cli.crypt import build_lv_table
    from lvcrypt.errors import LvcryptError
    from lvcrypt.lvops import find_lv, refuse_unless_changeable

    lv = find_lv(tx.vg, lv_name)
    refuse_unless_changeable(tx.vg, lv, "activate")
    if args.activate == "n":
        kernel.deactivate(dm_name(tx.vg.name, lv.name), dm_uuid(tx.vg, lv))
        return
    table = build_lv_table(tx, lv.name)
    _check_pvs_present(tx, lv.name)
    with DeviceMapper() as dm:
        active = kernel.is_active(dm, table)
    if args.refresh:
        if not active:
            raise kernel.ActivationError(f"{tx.vg.name}/{lv.name} is not active: nothing to refresh")
        if not kernel.keys_present(table) or args.volume_key_keyring or args.key_file:
            unlock_for_activation(args, tx, lv.name, keys)
            kernel.refresh(table, keys)
        else:
            kernel.refresh(table, None)
        return
    if active:
        return
    unlock_for_activation(args, tx, lv.name, keys)
    kernel.activate(table, keys)
    try:
        _link_volume_key(args, tx, lv.name, keys)
    except LvcryptError:
        kernel.deactivate(table.name, table.uuid)  # as if the activation had failed: nothing stays behind
        raise


def cmd_lvchange(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.keycache import KeyCache
    from lvcrypt.store.transaction import VgTransaction

    if args.activate is None and not args.refresh:
        raise UsageError("lvchange: give -ay, -an or --refresh")
    if args.refresh and args.activate == "n":
        raise UsageError("lvchange: --refresh reloads an active LV; it does not go with -an")
    if args.refresh:
        args.activate = "y"
    targets = [split_lv(item) for item in args.lvs]
    _check_before_starting(args)
    for vg_name, lv_name in targets:
        with VgTransaction(args.devices, vg_name, exclusive=False, allow_missing=True) as tx, KeyCache() as keys:
            change_lv(args, tx, lv_name, keys)
    return 0


def cmd_vgchange(args: argparse.Namespace) -> int:
    """Every visible LV of each VG (keystores are metadata, never activated themselves)."""
    from lvcrypt.errors import UsageError
    from lvcrypt.keycache import KeyCache
    from lvcrypt.metadata.segtypes import change_problem
    from lvcrypt.store.transaction import VgTransaction, warn

    if args.activate is None:
        raise UsageError("vgchange: give -ay or -an")
    args.refresh = False
    _check_before_starting(args)
    for vg_name in args.vgs:
        with VgTransaction(args.devices, vg_name, exclusive=False, allow_missing=True) as tx, KeyCache() as keys:
            names = []
            for lv in sorted(tx.vg.lvs.values(), key=lambda lv: lv.name):
                if not lv.visible or lv.is_keystore:
                    continue
                problem = change_problem(tx.vg, lv, "activate")
                if problem:
                    warn(f"skipping: {problem}")  # lvm2's LVs stay lvm2's; the rest are activated
                else:
                    names.append(lv.name)
            for lv_name in names:
                change_lv(args, tx, lv_name, keys)
            state = "active" if args.activate == "y" else "inactive"
            print(f"  {len(names)} logical volume(s) in volume group \"{vg_name}\" now {state}")
    return 0


def add_keyring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link-vk-to-keyring", metavar="KEYRING::%TYPE:DESC",
                        help="also put the volume key into a keyring after unlocking (e.g. @s::%%user:vk1)")
    parser.add_argument("--volume-key-keyring", metavar="%TYPE:DESC",
                        help="use a volume key from the kernel keyring instead of a passphrase")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, parents=[common_options()],
                            help="activate or deactivate an LV (device-mapper)" if name == "lvchange"
                            else "activate or deactivate every LV of a VG (device-mapper)")
    parser.add_argument("-a", "--activate", choices=("y", "n"), help="y: create the dm devices; n: remove them")
    add_key_file_option(parser)
    add_keyring_options(parser)
    if name == "lvchange":
        parser.add_argument("--refresh", action="store_true", help="reload an active LV's tables (after lvextend)")
        parser.add_argument("lvs", nargs="+", metavar="VG/LV")
        parser.set_defaults(func=cmd_lvchange)
    else:
        parser.add_argument("vgs", nargs="+", metavar="VG")
        parser.set_defaults(func=cmd_vgchange)
