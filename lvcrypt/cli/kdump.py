"""`lvcrypt kdump register|unregister|status|restore`: volume keys handed to the kdump kernel.

register/unregister/status run in the first kernel, before and after the
distribution's kdump service loads the crash kernel; restore runs in the
kdump kernel and activates the LVs from the restored keys without a
passphrase and without any PBKDF (lvcrypt.kdump explains the kernel side).
"""

from __future__ import annotations

import argparse
import sys

from lvcrypt.cli import common_options
from lvcrypt.cli.options import add_key_file_option, key_sources, split_lv


def _named(args: argparse.Namespace) -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    for item in args.lvs:
        vg_name, lv_name = split_lv(item)
        targets.setdefault(vg_name, []).append(lv_name)
    return targets


def cmd_register(args: argparse.Namespace) -> int:
    from lvcrypt.kdump import SUBSYSTEM
    from lvcrypt.kdump_keys import register, register_targets, registered_count

    targets = register_targets(args.devices, _named(args), args.all, args.sysfs_root)
    for item in register(args.devices, targets, args.configfs_root, key_sources(args)):
        print(f"  {item.vg}/{item.lv}: key {item.description} registered for kdump.")
    print(f"  {SUBSYSTEM} count: {registered_count(args.configfs_root)}")
    return 0


def cmd_unregister(args: argparse.Namespace) -> int:
    from lvcrypt.kdump import SUBSYSTEM
    from lvcrypt.kdump_keys import registered_count, unregister

    for description in unregister(args.devices, _named(args), args.all, args.configfs_root):
        print(f"  key {description} unregistered.")
    print(f"  {SUBSYSTEM} count: {registered_count(args.configfs_root)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from lvcrypt.kdump import SUBSYSTEM
    from lvcrypt.kdump_keys import registered_count, status

    rows = [[row.id, row.description or "(none)", row.lv, "present" if row.present else "missing"]
            for row in status(args.devices, args.configfs_root)]
    if rows:
        text = tabulate(rows, headers=["ID", "Description", "LV", "Key"], tablefmt="plain", disable_numparse=True)
        print("\n".join("  " + line.rstrip() for line in text.splitlines()))
    print(f"  {SUBSYSTEM} count: {registered_count(args.configfs_root)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from lvcrypt.kdump_keys import restore

    report = restore(args.devices, args.configfs_root, args.sysfs_root, args.keep_keys)
    for line in report.lines:
        print(line)
    for line in report.errors:
        print(line, file=sys.stderr)
    report.raise_if_failed()
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
