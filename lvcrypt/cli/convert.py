"""`lvcrypt lvconvert --type crypt|linear VG/LV`: import a LUKS volume on an LV, or export it back;
`lvconvert --encrypt|--decrypt|--reencrypt [--abort] VG/LV`: convert the LV's data in place.

--type changes metadata only (see lvcrypt/convert_luks.py); no passphrase is needed
unless `--verify` asks to prove one before the import is committed.  The in-place
conversions move the data chunk by chunk (lvcrypt/lv_conversion.py); run again, they resume.
"""

from __future__ import annotations

import argparse

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import (
    add_key_file_option,
    add_keystore_options,
    add_mover_options,
    add_sysfs_root_option,
    key_sources,
    move_progress,
    mover_pace,
    split_lv,
)

TYPES = ("crypt", "linear")
ACTIONS = ("encrypt", "decrypt", "reencrypt")


def cmd_lvconvert(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.luks_lv_conversion import export_luks_lv, import_luks_lv
    from lvcrypt.store.transaction import warn

    vg_name, lv_name = split_lv(args.lv)
    action = next((name for name in ACTIONS if getattr(args, name)), None)
    if action or args.abort:
        return _convert_in_place(args, vg_name, lv_name, action or "")
    for option in ("all_users", "new_keystore", "chunk_size", "rate", "cipher", "key_size", "pbkdf"):
        if getattr(args, option):
            raise UsageError(f"lvconvert: --{option.replace('_', '-')} needs --encrypt, --decrypt or --reencrypt")
    if args.type is None:
        raise UsageError("lvconvert: one of --type, --encrypt, --decrypt, --reencrypt or --abort is required")
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


def _convert_in_place(args: argparse.Namespace, vg_name: str, lv_name: str, action: str) -> int:
    from lvcrypt.cli.options import keystore_request
    from lvcrypt.errors import UsageError
    from lvcrypt.lv_conversion import ConversionRequest, convert_lv

    if args.type or args.verify:
        raise UsageError("lvconvert: --type and --verify do not go with --encrypt, --decrypt, --reencrypt, --abort")
    if (args.all_users or args.new_keystore) and action != "reencrypt":
        raise UsageError("lvconvert: --all-users and --new-keystore go with --reencrypt")
    if args.keystore and action != "encrypt":
        raise UsageError("lvconvert: --keystore names the keystore --encrypt shares")
    if args.keystore and (args.handler or args.cipher or args.key_size or args.pbkdf):
        raise UsageError("lvconvert --encrypt --keystore reuses a keystore: --handler, --cipher, --key-size, "
                         "--pbkdf do not apply")
    chunk, rate = mover_pace(args)
    request = ConversionRequest(action, args.keystore, keystore_request(args, args.handler), args.all_users,
                                args.new_keystore, args.abort, chunk, rate)
    label = f"{'Aborting ' if args.abort else ''}{action or 'conversion'} {vg_name}/{lv_name}"
    done = convert_lv(args.devices, vg_name, lv_name, request, key_sources(args), move_progress(label.capitalize()),
                      args.sysfs_root)
    if done.created and action == "reencrypt":
        print(f"  New keystore {vg_name}/{done.created} has one keyslot, for the passphrase given; the old "
              "keystore's other keyslots were not carried over.")
    for store in done.removed:
        print(f"  Keystore {vg_name}/{store} removed.")
    what = "aborted" if args.abort else {"encrypt": "encrypted", "decrypt": "decrypted",
                                         "reencrypt": "re-encrypted"}.get(action, "converted")
    print(f"  Logical volume {vg_name}/{', '.join(done.lvs)} {what}.")
    if done.longest_pause is not None:
        print(f"  longest I/O pause: {done.longest_pause * 1000:.0f} ms")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.handlers import registry

    parser = sub.add_parser(name, parents=[lvm2_options()],
                            help="import a LUKS volume on an LV as a crypt LV (--type crypt) or export it back "
                                 "(--type linear)", description=__doc__)
    parser.add_argument("--type", choices=TYPES,
                        help="crypt: the LV holds a LUKS1/LUKS2 volume to import; linear: export a crypt LV")
    parser.add_argument("--handler", choices=registry.Choices(with_header=True), metavar="HANDLER",
                        help="expected header format: %(choices)s (detected by default)")
    parser.add_argument("--keystore", metavar="NAME", help="name of the new keystore (default: next cryptostoreN)")
    parser.add_argument("--verify", action="store_true", help="unlock once with the passphrase before importing")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--encrypt", action="store_true", help="encrypt the LV's data in place (new keystore, or "
                        "--keystore to share one)")
    action.add_argument("--decrypt", action="store_true", help="decrypt the LV's data in place")
    action.add_argument("--reencrypt", action="store_true", help="re-encrypt the LV with a new volume key "
                        "(and --cipher/--key-size) in a new keystore")
    parser.add_argument("--abort", action="store_true", help="take the done part of an interrupted conversion "
                        "back to its original form")
    parser.add_argument("--all-users", action="store_true", help="--reencrypt every LV of a shared keystore")
    parser.add_argument("--new-keystore", action="store_true", help="--reencrypt this LV alone into a keystore "
                        "of its own (its keystore is shared)")
    add_keystore_options(parser)
    add_mover_options(parser)
    add_key_file_option(parser)
    add_sysfs_root_option(parser)
    parser.add_argument("lv", metavar="VG/LV")
    parser.set_defaults(func=cmd_lvconvert)
