"""`lvcrypt lvconvert --type crypt|linear VG/LV`: import a LUKS volume on an LV, or export it back.

Only metadata changes (see lvcrypt/convert_luks.py); no passphrase is needed
unless `--verify` asks to prove one before the import is committed.
"""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import add_key_file_option, add_sysfs_root_option, key_sources, split_lv

TYPES = ("crypt", "linear")


def cmd_lvconvert(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.luks_lv_conversion import export_luks_lv, import_luks_lv
    from lvcrypt.store.transaction import warn

    vg_name, lv_name = split_lv(args.lv)
    if args.type == "linear" and (args.handler or args.keystore or args.verify):
        raise UsageError("lvconvert --type linear takes no --handler, --keystore or --verify")
    if args.type == "linear":
        store = export_luks_lv(args.devices, vg_name, lv_name, args.sysfs_root)
        print(f"  Logical volume {vg_name}/{lv_name} is a plain LUKS device again (keystore {store} removed).")
        return 0
    done = import_luks_lv(args.devices, vg_name, lv_name, args.handler, args.keystore,
                          key_sources(args) if args.verify else None, args.sysfs_root)
    if done.verified_slot is not None:
        print(f"  Key slot {done.verified_slot} unlocked.")
    for warning in done.warnings:
        warn(f"{vg_name}/{done.keystore}: {warning}")
    print(f"  Logical volume {vg_name}/{lv_name} converted to crypt ({done.handler} keystore {done.keystore}, "
          f"payload at byte {done.payload_offset}).")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.handlers import registry

    parser = sub.add_parser(name, parents=[lvm2_options()],
                            help="import a LUKS volume on an LV as a crypt LV (--type crypt) or export it back "
                                 "(--type linear)", description=__doc__)
    parser.add_argument("--type", required=True, choices=TYPES,
                        help="crypt: the LV holds a LUKS1/LUKS2 volume to import; linear: export a crypt LV")
    parser.add_argument("--handler", choices=[handler.name for handler in registry.loadable() if handler.has_header],
                        help="expected header format, e.g. luks1 or luks2 (detected by default)")
    parser.add_argument("--keystore", metavar="NAME", help="name of the new keystore (default: next cryptostoreN)")
    parser.add_argument("--verify", action="store_true", help="unlock once with the passphrase before importing")
    add_key_file_option(parser)
    add_sysfs_root_option(parser)
    parser.add_argument("lv", metavar="VG/LV")
    parser.set_defaults(func=cmd_lvconvert)
