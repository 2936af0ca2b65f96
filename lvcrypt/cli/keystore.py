"""`lvcrypt keystore format|dump|repair|header-backup|header-restore|erase|config|unlock-test` and `lvcrypt keyslot add|remove|change|convert|list`.

TARGET is an image file or block device holding a keystore (a LUKS header,
or lvcrypt's key check block for plain/hashed), or VG/KEYSTORE naming a
keystore LV (its extents, under the VG lock, with the attributes from the VG
metadata).  Passphrases come from --key-file (`-` = stdin) or a terminal
prompt, never from argv.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from lvcrypt.cli import common_options
from lvcrypt.cli.options import add_key_file_option, cipher_spec_argument, key_sources, keystore_request, non_negative
from lvcrypt.handlers.kdf import DEFAULT_ITER_TIME_MS, DEFAULT_MEMORY_KIB, PBKDF_KINDS


def _confirm(args: argparse.Namespace) -> Callable[[str], None]:
    """cryptsetup's "type YES" confirmation (asked with no VG lock held); --batch-mode answers it."""
    from lvcrypt.errors import LvcryptError, UsageError

    def confirm(question: str) -> None:
        if args.batch_mode:
            return
        if not sys.stdin.isatty():
            raise UsageError(f"{question} Confirmation needed: run on a terminal or add --batch-mode")
        from lvcrypt.store.lock import released_while

        if released_while(lambda: input(f"{question} (Type 'yes' in capital letters): ")) != "YES":
            raise LvcryptError("operation aborted")
    return confirm


def cmd_format(args: argparse.Namespace) -> int:
    from lvcrypt.handlers.base import FormatOptions
    from lvcrypt.keystore_admin import format_target

    options = FormatOptions(keyslot=args.key_slot, uuid=args.uuid, label=args.label)
    format_target(args.target, keystore_request(args, args.type), options, key_sources(args), _confirm(args))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import dump_target, dump_with_volume_key

    if not args.dump_volume_key:
        sys.stdout.write(dump_target(args.target, args.devices))
        return 0
    text, key = dump_with_volume_key(args.target, args.devices, key_sources(args), args.key_slot, _confirm(args))
    with key:
        sys.stdout.write(text)
        sys.stdout.write(f"Volume key ({len(key) * 8} bits): {key.buffer.hex()}\n")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """`cryptsetup repair`: every header copy rewritten from the good one, after a confirmation (or -q)."""
    from lvcrypt.keystore_admin import repair_target

    handler, problem = repair_target(args.target, args.devices, _confirm(args))
    if problem is None:
        print(f"No known problems detected for the {handler} header of {args.target}.")
        return 0
    print(f"Keystore header of {args.target} repaired.")
    return 0


def cmd_header_backup(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_header import header_backup

    size = header_backup(args.target, args.devices, args.header_backup_file)
    print(f"Header of {args.target} ({size} bytes) saved in {args.header_backup_file}.")
    return 0


def cmd_header_restore(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_header import header_restore

    header_restore(args.target, args.devices, args.header_backup_file, _confirm(args))
    print(f"Header of {args.target} restored from {args.header_backup_file}.")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_header import erase

    slots = erase(args.target, args.devices, _confirm(args))
    print(f"Key slots {', '.join(map(str, slots))} of {args.target} destroyed.")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_header import configure

    configure(args.target, args.devices, args.label, args.subsystem, args.priority, args.key_slot)
    return 0


def cmd_unlock_test(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import unlock_test

    slot = unlock_test(args.target, args.devices, key_sources(args), args.key_slot, args.link_vk_to_keyring)
    print(f"Key slot {slot} unlocked.")
    return 0


def cmd_keyslot_add(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import add_keyslot

    slot = add_keyslot(args.target, args.devices, key_sources(args), key_sources(args, new_key=True),
                       keystore_request(args, None), args.key_slot, args.volume_key_file)
    print(f"Key slot {slot} created.")
    return 0


def cmd_keyslot_remove(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import remove_keyslot

    remove_keyslot(args.target, args.devices, args.slot, _confirm(args))
    print(f"Key slot {args.slot} removed.")
    return 0


def cmd_keyslot_change(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import change_keyslot

    slot = change_keyslot(args.target, args.devices, key_sources(args), key_sources(args, new_key=True),
                          keystore_request(args, None), args.key_slot)
    print(f"Key slot {slot} now holds the new passphrase.")
    return 0


def cmd_keyslot_convert(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import convert_keyslot

    slot = convert_keyslot(args.target, args.devices, key_sources(args), keystore_request(args, None), args.key_slot)
    print(f"Key slot {slot} converted.")
    return 0


def cmd_keyslot_list(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_admin import active_keyslots

    for info in active_keyslots(args.target, args.devices):
        details = " ".join(f"{k}={v}" for k, v in info.details.items())
        print(f"{info.slot}\t{info.kind}\t{details}")
    return 0


def _key_options(parser: argparse.ArgumentParser) -> None:
    add_key_file_option(parser)
    parser.add_argument("-S", "--key-slot", type=non_negative, metavar="N")
    parser.add_argument("-q", "--batch-mode", action="store_true", help="do not ask for confirmation")


def _pbkdf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pbkdf", choices=PBKDF_KINDS)
    parser.add_argument("--hash", metavar="HASH", help="PBKDF2 hash (LUKS) or key hash (hashed)")
    parser.add_argument("-i", "--iter-time", type=non_negative, default=DEFAULT_ITER_TIME_MS, metavar="MS")
    parser.add_argument("--pbkdf-memory", type=non_negative, default=DEFAULT_MEMORY_KIB, metavar="KIB")
    parser.add_argument("--pbkdf-parallel", type=non_negative, default=4, metavar="THREADS")
    parser.add_argument("--pbkdf-force-iterations", type=non_negative, metavar="N")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    if name == "keystore":
        _register_keystore(sub, name)
    else:
        _register_keyslot(sub, name)


def _register_keystore(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    from lvcrypt.handlers import registry

    parser = sub.add_parser(name, help="format, dump and test keystores", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    common = [common_options()]

    fmt = actions.add_parser("format", parents=common, help="create a keystore (like luksFormat)")
    fmt.add_argument("target", metavar="TARGET")
    fmt.add_argument("--type", choices=registry.available(), default=registry.DEFAULT)
    fmt.add_argument("-c", "--cipher", type=cipher_spec_argument, metavar="SPEC")
    fmt.add_argument("-s", "--key-size", type=non_negative, metavar="BITS")
    fmt.add_argument("--sector-size", type=non_negative, metavar="BYTES", help="default: the handler's")
    fmt.add_argument("--uuid")
    fmt.add_argument("--label")
    _key_options(fmt)
    _pbkdf_options(fmt)
    fmt.set_defaults(func=cmd_format)

    dump = actions.add_parser("dump", parents=common, help="describe a keystore (like luksDump)")
    dump.add_argument("target", metavar="TARGET")
    dump.add_argument("--dump-volume-key", action="store_true", help="also print the volume key (asks first)")
    _key_options(dump)
    dump.set_defaults(func=cmd_dump)

    repair = actions.add_parser("repair", parents=common,
                                help="rewrite a damaged or stale header copy from the good one (like repair)")
    repair.add_argument("target", metavar="TARGET")
    repair.add_argument("-q", "--batch-mode", "-y", "--yes", dest="batch_mode", action="store_true",
                        help="do not ask for confirmation")
    repair.set_defaults(func=cmd_repair)

    backup = actions.add_parser("header-backup", parents=common,
                                help="save the header and keyslots in a new file (like luksHeaderBackup)")
    backup.add_argument("target", metavar="TARGET")
    backup.add_argument("--header-backup-file", required=True, metavar="FILE")
    backup.set_defaults(func=cmd_header_backup)

    restore = actions.add_parser("header-restore", parents=common,
                                 help="write a header backup back, after a confirmation (like luksHeaderRestore)")
    restore.add_argument("target", metavar="TARGET")
    restore.add_argument("--header-backup-file", required=True, metavar="FILE")
    restore.add_argument("-q", "--batch-mode", "-y", "--yes", dest="batch_mode", action="store_true",
                         help="do not ask for confirmation")
    restore.set_defaults(func=cmd_header_restore)

    erase = actions.add_parser("erase", parents=common,
                               help="destroy every keyslot, after a confirmation naming the LVs (like luksErase)")
    erase.add_argument("target", metavar="TARGET")
    erase.add_argument("-q", "--batch-mode", "-y", "--yes", dest="batch_mode", action="store_true",
                       help="do not ask for confirmation")
    erase.set_defaults(func=cmd_erase)

    config = actions.add_parser("config", parents=common,
                                help="set the label, subsystem or a keyslot's priority (like config)")
    config.add_argument("target", metavar="TARGET")
    config.add_argument("--label", help="the header's label (at most 47 bytes)")
    config.add_argument("--subsystem", help="the header's subsystem (at most 47 bytes)")
    config.add_argument("--priority", choices=("prefer", "normal", "ignore"),
                        help="the priority of the keyslot --key-slot names")
    config.add_argument("-S", "--key-slot", type=non_negative, metavar="N")
    config.set_defaults(func=cmd_config)

    test = actions.add_parser("unlock-test", parents=common, help="check a passphrase (like --test-passphrase)")
    test.add_argument("target", metavar="TARGET")
    test.add_argument("--link-vk-to-keyring", metavar="KEYRING::%TYPE:DESC",
                      help="put the unlocked volume key into a keyring (e.g. @s::%%user:vk1)")
    _key_options(test)
    test.set_defaults(func=cmd_unlock_test)


def _register_keyslot(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, help="add, remove, change and list keyslots", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    common = [common_options()]

    add = actions.add_parser("add", parents=common, help="add a passphrase (like luksAddKey)")
    add.add_argument("target", metavar="TARGET")
    add.add_argument("--new-key-file", metavar="FILE", help="the new passphrase's file ('-' = stdin)")
    add.add_argument("--volume-key-file", metavar="FILE",
                     help="take the volume key from this file instead of an existing passphrase")
    add.add_argument("--volume-key-keyring", metavar="%TYPE:DESC",
                     help="take the volume key from a %%user: key in the kernel keyring")
    _key_options(add)
    _pbkdf_options(add)
    add.set_defaults(func=cmd_keyslot_add)

    remove = actions.add_parser("remove", parents=common, help="destroy a keyslot (like luksKillSlot)")
    remove.add_argument("target", metavar="TARGET")
    remove.add_argument("slot", type=non_negative, metavar="SLOT")
    remove.add_argument("-q", "--batch-mode", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=cmd_keyslot_remove)

    change = actions.add_parser("change", parents=common, help="replace a passphrase (like luksChangeKey)")
    change.add_argument("target", metavar="TARGET")
    change.add_argument("--new-key-file", metavar="FILE", help="the new passphrase's file ('-' = stdin)")
    _key_options(change)
    _pbkdf_options(change)
    change.set_defaults(func=cmd_keyslot_change)

    convert = actions.add_parser("convert", parents=common,
                                 help="store a keyslot again with another PBKDF or cost (like luksConvertKey)")
    convert.add_argument("target", metavar="TARGET")
    _key_options(convert)
    _pbkdf_options(convert)
    convert.set_defaults(func=cmd_keyslot_convert)

    listing = actions.add_parser("list", parents=common, help="list active keyslots: PBKDF, cost, priority")
    listing.add_argument("target", metavar="TARGET")
    listing.set_defaults(func=cmd_keyslot_list)
