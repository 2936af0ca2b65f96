"""`lvcrypt lvconvert --type crypt|linear VG/LV`: import a LUKS volume on an LV, or export it back.

Only metadata changes (see lvcrypt/convert_luks.py); no passphrase is needed
unless `--verify` asks to prove one before the import is committed.
"""

from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from lvcrypt.cli import common_options
from lvcrypt.cli.options import add_key_file_option, add_sysfs_root_option, key_sources, split_lv

if TYPE_CHECKING:
    from lvcrypt.convert_luks import FoundLuks
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction

TYPES = ("crypt", "linear")


def cmd_lvconvert(args: argparse.Namespace) -> int:
    from lvcrypt.convert_luks import export_luks, import_luks, inspect, refuse_unless_importable
    from lvcrypt.errors import UsageError
    from lvcrypt.lvops import find_lv, refuse_unless_changeable
    from lvcrypt.store.transaction import VgTransaction, warn

    vg_name, lv_name = split_lv(args.lv)
    if args.type == "linear" and (args.handler or args.keystore or args.verify):
        raise UsageError("lvconvert --type linear takes no --handler, --keystore or --verify")
    with VgTransaction(args.devices, vg_name) as tx:
        lv = find_lv(tx.vg, lv_name)
        refuse_unless_changeable(tx.vg, lv, "convert")
        if args.type == "linear":
            store = export_luks(tx.vg, lv, tx.loaded.device_of, args.sysfs_root)
            tx.commit()
            print(f"  Logical volume {vg_name}/{lv_name} is a plain LUKS device again (keystore {store} removed).")
            return 0
        refuse_unless_importable(tx.vg, lv, args.sysfs_root)
        found = inspect(tx.vg, lv, tx.loaded.device_of, args.handler)
        if args.verify:
            _verify(args, tx, lv, found)
        store = import_luks(tx.vg, lv, found, args.keystore)
        for warning in found.warnings:
            warn(f"{vg_name}/{store.name}: {warning}")
        tx.commit()
    print(f"  Logical volume {vg_name}/{lv_name} converted to crypt ({found.handler.name} keystore {store.name}, "
          f"payload at byte {found.payload_offset}).")
    return 0


def _verify(args: argparse.Namespace, tx: "VgTransaction", lv: "LogicalVolume", found: "FoundLuks") -> None:
    from lvcrypt.convert_luks import verify_passphrase
    from lvcrypt.unlock import read_passphrase

    with read_passphrase(key_sources(args), f"Enter passphrase for {tx.vg.name}/{lv.name}: ") as passphrase:
        slot = verify_passphrase(tx.vg, lv, found, tx.loaded.device_of, passphrase)
    print(f"  Key slot {slot} unlocked.")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, parents=[common_options()],
                            help="import a LUKS volume on an LV as a crypt LV (--type crypt) or export it back "
                                 "(--type linear)", description=__doc__)
    parser.add_argument("--type", required=True, choices=TYPES,
                        help="crypt: the LV holds a LUKS1/LUKS2 volume to import; linear: export a crypt LV")
    parser.add_argument("--handler", choices=("luks1", "luks2"), help="expected LUKS version (detected by default)")
    parser.add_argument("--keystore", metavar="NAME", help="name of the new keystore (default: next cryptostoreN)")
    parser.add_argument("--verify", action="store_true", help="unlock once with the passphrase before importing")
    add_key_file_option(parser)
    add_sysfs_root_option(parser)
    parser.add_argument("lv", metavar="VG/LV")
    parser.set_defaults(func=cmd_lvconvert)
