"""`lvcrypt keystore format|dump|repair|unlock-test` and `lvcrypt keyslot add|remove|change|list`.

TARGET is an image file or block device holding a keystore (a LUKS header,
or lvcrypt's key check block for plain/hashed), or VG/KEYSTORE naming a
keystore LV (its extents, under the VG lock, with the attributes from the VG
metadata).  Passphrases come from --key-file (`-` = stdin) or a terminal
prompt, never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from lvcrypt.cli import cipher_spec_argument, common_options
from lvcrypt.errors import FormatError, HandlerError, LvcryptError, NeedsRepair, UsageError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FileArea, FormatOptions, KeyHandler, KeystoreSession
from lvcrypt.handlers.kdf import DEFAULT_ITER_TIME_MS, DEFAULT_MEMORY_KIB, PBKDF_KINDS, PbkdfRequest
from lvcrypt.handlers.secret import Secret, read_key_file


@dataclass
class Keystore:
    """An opened target: the handler session every action goes through."""

    session: KeystoreSession

    @property
    def handler(self) -> KeyHandler:
        return self.session.handler


def _names_keystore_lv(target: str) -> bool:
    return not os.path.exists(target) and target.count("/") == 1 and not target.startswith(("/", "."))


@contextmanager
def open_target(target: str, writable: bool, devices: str | None = None) -> Iterator[Keystore]:
    """Open TARGET and identify its handler from what the area records (or, for VG/KEYSTORE, the metadata).

    A change refused because a header copy needs repair names the repair
    command with TARGET as the user wrote it.
    """
    try:
        with _open_target(target, writable, devices) as store:
            yield store
    except NeedsRepair as error:
        raise error.at(target) from None


@contextmanager
def _open_target(target: str, writable: bool, devices: str | None) -> Iterator[Keystore]:
    if _names_keystore_lv(target):
        with _open_keystore_lv(target, writable, devices) as store:
            yield store
        return
    area = _area(target, writable)
    try:
        try:
            session = registry.get(registry.detect(area)).open(area)
        except FormatError as error:
            raise FormatError(f"{target}: {error}") from None
        yield Keystore(session)
    finally:
        area.close()


@contextmanager
def _open_keystore_lv(target: str, writable: bool, devices: str | None) -> Iterator[Keystore]:
    """A keystore LV's extents, held under the VG lock (exclusive when writing) while in use."""
    from lvcrypt.keystores import KeystoreSessions
    from lvcrypt.store.transaction import VgTransaction

    vg_name, name = target.split("/")
    with VgTransaction(devices, vg_name, exclusive=writable) as tx, \
            KeystoreSessions(tx.vg, tx.loaded.device_of, writable=writable) as stores:
        session = stores.session(name)
        if not isinstance(session.area, FileArea):
            raise HandlerError(f"keystore {target} has no extents on disk")
        yield Keystore(session)


def _area(target: str, writable: bool) -> FileArea:
    if _names_keystore_lv(target):
        raise UsageError(f"{target}: keystore LVs are made by lvcreate --encrypt; format an image file here")
    return FileArea(target, writable=writable)


def read_passphrase(args: argparse.Namespace, key_file: str | None, prompt: str,
                    verify: bool = False) -> Secret:
    """A passphrase from a key file (honouring --keyfile-offset/--keyfile-size) or the terminal.

    As cryptsetup: `--key-file -` on a terminal is the prompt (and takes no offset).
    A source that can keep us waiting (a prompt, stdin, a pipe) is read with
    no VG lock held, so `lvs` and lvm2 never block behind a prompt; the
    locks are taken again afterwards and the command stops if its VG changed.
    """
    if key_file is not None and key_file != "-" and os.path.isfile(key_file):
        return _read_passphrase(args, key_file, prompt, verify)
    from lvcrypt.store.lock import released_while

    return released_while(lambda: _read_passphrase(args, key_file, prompt, verify))


def _read_passphrase(args: argparse.Namespace, key_file: str | None, prompt: str, verify: bool) -> Secret:
    offset = getattr(args, "keyfile_offset", 0) or 0
    size = getattr(args, "keyfile_size", None)
    if key_file == "-" and sys.stdin.isatty():
        if offset:
            raise HandlerError("Cannot use offset with terminal input.")
        key_file = None
    if key_file == "-":
        return read_key_file(sys.stdin.buffer, offset, size)
    if key_file is not None:
        try:
            with open(key_file, "rb") as f:
                return read_key_file(f, offset, size)
        except OSError as error:
            raise HandlerError(f"cannot read key file {key_file}: {error.strerror}") from None
    if not sys.stdin.isatty():
        raise UsageError("no passphrase: give --key-file FILE (or '-' for stdin) or run on a terminal")
    secret = _prompt(prompt)
    if verify:
        with _prompt("Verify passphrase: ") as again:
            if again != secret:
                secret.close()
                raise HandlerError("passphrases do not match")
    return secret


def _prompt(prompt: str) -> Secret:
    text = getpass.getpass(prompt)
    encoded = bytearray(text.encode())
    return Secret.adopt(encoded)


def confirm(args: argparse.Namespace, question: str) -> None:
    """cryptsetup's "type YES" confirmation (asked with no VG lock held); --batch-mode answers it."""
    if args.batch_mode:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Confirmation needed: run on a terminal or add --batch-mode")
    from lvcrypt.store.lock import released_while

    if released_while(lambda: input(f"{question} (Type 'yes' in capital letters): ")) != "YES":
        raise LvcryptError("operation aborted")


def pbkdf_request(args: argparse.Namespace, handler_name: str) -> PbkdfRequest:
    kind = args.pbkdf or registry.get(handler_name).default_pbkdf
    return PbkdfRequest(kind=kind, hash=args.hash or "sha256", iter_time_ms=args.iter_time,
                        memory_kib=args.pbkdf_memory, parallel=args.pbkdf_parallel,
                        force_iterations=args.pbkdf_force_iterations)


def cmd_format(args: argparse.Namespace) -> int:
    handler = registry.get(args.type)
    attrs = handler.new_attrs(args.cipher, args.key_size, args.hash)
    sector_size = handler.default_sector_size if args.sector_size is None else args.sector_size
    options = FormatOptions(pbkdf=pbkdf_request(args, args.type), sector_size=sector_size,
                            keyslot=args.key_slot, uuid=args.uuid, label=args.label)
    area = _area(args.target, writable=True)
    try:
        if area.size < handler.area_size(attrs, options):
            raise HandlerError(f"{args.target}: {area.size} bytes is too small for a {args.type} keystore "
                               f"({handler.area_size(attrs, options)} bytes needed)")
        confirm(args, f"This will overwrite data on {args.target} irrevocably. Are you sure?")
        with read_passphrase(args, args.key_file, "Enter passphrase: ", verify=True) as passphrase:
            handler.format(area, attrs, passphrase, options).close()
    finally:
        area.close()
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    with open_target(args.target, writable=False, devices=args.devices) as store:
        text = store.session.dump()
        if not args.dump_volume_key:
            sys.stdout.write(text)
            return 0
        confirm(args, "The volume key opens the data without a passphrase. Dump it?")
        with read_passphrase(args, args.key_file, "Enter passphrase: ") as passphrase:
            with store.session.unlock(passphrase, args.key_slot) as key:
                sys.stdout.write(text)
                sys.stdout.write(f"Volume key ({len(key) * 8} bits): {key.buffer.hex()}\n")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """`cryptsetup repair`: every header copy rewritten from the good one, after a confirmation (or -q)."""
    with open_target(args.target, writable=True, devices=args.devices) as store:
        problem = store.session.repair_problem()
        if problem is None:
            print(f"No known problems detected for the {store.handler.name} header of {args.target}.")
            return 0
        confirm(args, f"{args.target}: {problem}. Rewrite every header copy from the good one?")
        store.session.repair()
    print(f"Keystore header of {args.target} repaired.")
    return 0


def cmd_unlock_test(args: argparse.Namespace) -> int:
    with open_target(args.target, writable=False, devices=args.devices) as store:
        with read_passphrase(args, args.key_file, "Enter passphrase: ") as passphrase:
            slot, key = store.session.unlock_keyslot(passphrase, args.key_slot)
            with key:
                if args.link_vk_to_keyring:
                    from lvcrypt.keyring import link_volume_key

                    link_volume_key(args.link_vk_to_keyring, key.buffer)
    print(f"Key slot {slot} unlocked.")
    return 0


def _one_stdin(args: argparse.Namespace) -> None:
    if args.key_file == "-" and args.new_key_file == "-":
        raise UsageError("only one of --key-file and --new-key-file can be stdin")


def cmd_keyslot_add(args: argparse.Namespace) -> int:
    _one_stdin(args)
    with open_target(args.target, writable=True, devices=args.devices) as store:
        with read_passphrase(args, args.key_file, "Enter any existing passphrase: ") as old:
            key = store.session.unlock(old)
        with key, read_passphrase(args, args.new_key_file, "Enter new passphrase for key slot: ",
                                  verify=True) as new:
            slot = store.session.add_keyslot(key, new, pbkdf_request(args, store.handler.name), args.key_slot)
    print(f"Key slot {slot} created.")
    return 0


def cmd_keyslot_remove(args: argparse.Namespace) -> int:
    with open_target(args.target, writable=True, devices=args.devices) as store:
        active = [s.slot for s in store.session.list_keyslots() if s.active]
        if active == [args.slot]:
            confirm(args, f"Keyslot {args.slot} is the last one: removing it makes the data inaccessible.")
        store.session.remove_keyslot(args.slot)
    print(f"Key slot {args.slot} removed.")
    return 0


def cmd_keyslot_change(args: argparse.Namespace) -> int:
    _one_stdin(args)
    with open_target(args.target, writable=True, devices=args.devices) as store:
        with read_passphrase(args, args.key_file, "Enter passphrase to be changed: ") as old, \
                read_passphrase(args, args.new_key_file, "Enter new passphrase: ", verify=True) as new:
            slot = store.session.change_keyslot(old, new, pbkdf_request(args, store.handler.name), args.key_slot)
    print(f"Key slot {slot} now holds the new passphrase.")
    return 0


def cmd_keyslot_list(args: argparse.Namespace) -> int:
    with open_target(args.target, writable=False, devices=args.devices) as store:
        for info in store.session.list_keyslots():
            if info.active:
                details = " ".join(f"{k}={v}" for k, v in info.details.items())
                print(f"{info.slot}\t{info.kind}\t{details}")
    return 0


def non_negative(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_key_file_option(parser: argparse.ArgumentParser) -> None:
    """cryptsetup's key-file options, for every command that reads a passphrase or key file."""
    parser.add_argument("--key-file", metavar="FILE", help="passphrase or key file ('-' = standard input)")
    parser.add_argument("--keyfile-offset", type=non_negative, default=0, metavar="BYTES",
                        help="skip bytes of the key file")
    parser.add_argument("--keyfile-size", type=non_negative, metavar="BYTES", help="read at most this many bytes")


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

    listing = actions.add_parser("list", parents=common, help="list active keyslots")
    listing.add_argument("target", metavar="TARGET")
    listing.set_defaults(func=cmd_keyslot_list)
