"""Encrypted LVs on the command line: `lvcreate --encrypt`, and `table`, `read`, `write`.

`read` and `write` are the userspace backend as streams: the LV's table stack
interpreted over its PVs, so encrypted data is reachable on a kernel without
device-mapper.  Passphrases come from --key-file (`-` is standard input) or
a terminal prompt; keys stay in the command's key cache and are wiped at exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from lvcrypt.cli import cipher_spec_argument, common_options
from lvcrypt.cli.keystore import add_key_file_option, non_negative

if TYPE_CHECKING:
    from lvcrypt.activate.tables import Table
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.handlers.secret import Secret
    from lvcrypt.keycache import KeyCache
    from lvcrypt.keystores import KeystoreSessions
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction

STREAM_CHUNK = 1 << 20


def split_lv(text: str) -> tuple[str, str]:
    from lvcrypt.errors import UsageError

    vg, slash, lv = text.partition("/")
    if not slash or not vg or not lv or "/" in lv:
        raise UsageError(f"'{text}': give the logical volume as VG/LV")
    return vg, lv


def add_encrypt_options(parser: argparse.ArgumentParser) -> None:
    """lvcreate's options for encrypted LVs (cryptsetup's names and defaults)."""
    from lvcrypt.handlers import registry
    from lvcrypt.handlers.kdf import PBKDF_KINDS

    group = parser.add_argument_group("encryption")
    group.add_argument("--encrypt", action="store_true", help="create an encrypted LV (same as --type crypt)")
    group.add_argument("--handler", choices=registry.available(),
                       help=f"key handler of a new keystore, any installed one (default {registry.DEFAULT})")
    group.add_argument("--keystore", metavar="NAME", help="use an existing keystore (one passphrase for many LVs)")
    group.add_argument("--cipher", type=cipher_spec_argument, help="cipher of a new keystore, e.g. aes-xts-plain64")
    group.add_argument("--key-size", type=non_negative, metavar="BITS", help="volume key size in bits")
    group.add_argument("--hash", help="hash of the PBKDF (luks) or of the passphrase (hashed)")
    group.add_argument("--pbkdf", choices=PBKDF_KINDS, help="pbkdf2, argon2i or argon2id")
    group.add_argument("--iter-time", type=non_negative, metavar="MS", help="PBKDF time cost in milliseconds")
    group.add_argument("--pbkdf-memory", type=non_negative, metavar="KIB", help="Argon2 memory cost")
    group.add_argument("--pbkdf-parallel", type=non_negative, metavar="THREADS", help="Argon2 parallel cost")
    group.add_argument("--pbkdf-force-iterations", type=non_negative, metavar="N", help="fixed PBKDF cost (tests)")
    group.add_argument("--sector-size", type=int, choices=(512, 1024, 2048, 4096), help="encryption sector size")
    group.add_argument("--wipe", action="store_true",
                       help="fill the new LV with random data through the mapping (else old data is only "
                            "unreadable, not gone: new LVs are not wiped by default)")
    add_key_file_option(parser)


def _pbkdf_args(args: argparse.Namespace) -> argparse.Namespace:
    """The names cli.keystore's PBKDF helper expects."""
    from lvcrypt.handlers.kdf import DEFAULT_ITER_TIME_MS, DEFAULT_MEMORY_KIB

    return argparse.Namespace(pbkdf=args.pbkdf, hash=args.hash, iter_time=args.iter_time or DEFAULT_ITER_TIME_MS,
                              pbkdf_memory=args.pbkdf_memory or DEFAULT_MEMORY_KIB,
                              pbkdf_parallel=args.pbkdf_parallel or 4,
                              pbkdf_force_iterations=args.pbkdf_force_iterations)


def create_encrypted(args: argparse.Namespace, tx: "VgTransaction", name: str, extents: int, stripes: int,
                     stripe_size: int | None, pv_keys: list[str] | None) -> tuple["LogicalVolume", "Secret | None"]:
    """Add an encrypted LV (and a new keystore unless --keystore) to tx.vg; format the keystore on disk.

    The keystore's header is written into extents that are still free in the
    committed metadata, so a failure before the commit leaves nothing visible.
    Returns the LV and, for a new keystore, its volume key (the caller wipes it).
    """
    from lvcrypt.cli.keystore import pbkdf_request, read_passphrase
    from lvcrypt.cryptlv import create_crypt_lv, new_keystore
    from lvcrypt.errors import UsageError
    from lvcrypt.handlers import registry
    from lvcrypt.handlers.base import FormatOptions
    from lvcrypt.keystores import close_area, open_area

    vg = tx.vg
    if args.keystore:
        if args.handler or args.cipher or args.key_size or args.pbkdf:
            raise UsageError("--keystore reuses a keystore: --handler, --cipher, --key-size, --pbkdf do not apply")
        lv = create_crypt_lv(vg, name, extents, args.keystore, stripes, stripe_size, args.sector_size,
                             args.alloc, pv_keys)
        return lv, None
    handler_name = args.handler or registry.DEFAULT
    handler = registry.get(handler_name)
    attrs = handler.new_attrs(args.cipher, args.key_size, args.hash)
    options = FormatOptions(pbkdf=pbkdf_request(_pbkdf_args(args), handler_name),
                            sector_size=args.sector_size or handler.default_sector_size, data_offset=0)
    store = new_keystore(vg, attrs, handler.area_size(attrs, options), pv_keys)
    lv = create_crypt_lv(vg, name, extents, store.name, stripes, stripe_size, args.sector_size, args.alloc, pv_keys)
    area = open_area(vg, store.name, tx.loaded.device_of, writable=True)
    try:
        with read_passphrase(args, args.key_file, "Enter passphrase for the new LV: ", verify=True) as passphrase:
            key = handler.format(area, attrs, passphrase, options)
    finally:
        close_area(area)
    segment = store.segments[0]
    for attr, value in attrs.extra.items():
        segment.raw[attr] = value
    return lv, key


def wipe_lv(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, key: "Secret | None") -> None:
    """Random data through the mapping, so the new LV shows no old plaintext; progress on a terminal.

    Takes ownership of `key` (the new keystore's); without one the LV's keystore is unlocked.
    """
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.keycache import KeyCache
    from lvcrypt.lvops import refuse_change

    refuse_change(tx.vg, tx.vg.lvs[lv_name], "data-write", getattr(args, "sysfs_root", "/sys"))
    with KeyCache() as keys:
        if key is not None:
            keys.put(tx.vg.lvs[lv_name].keystores()[0], key)
        else:
            unlock_lv(args, tx, lv_name, keys)
        with Stack(build_lv_table(tx, lv_name), keys, writable=True) as stack:
            show = sys.stderr.isatty()
            chunk = 4 * STREAM_CHUNK
            for offset in range(0, stack.size, chunk):
                stack.write(offset, os.urandom(min(chunk, stack.size - offset)))
                if show:
                    print(f"\r  Wiping {tx.vg.name}/{lv_name}: {100 * (offset + chunk) // stack.size:3d}%",
                          end="", file=sys.stderr)
            stack.sync()
            if show:
                print(file=sys.stderr)


@contextmanager
def _sessions(tx: "VgTransaction", given: "KeystoreSessions | None") -> Iterator["KeystoreSessions"]:
    """The command's open keystores if it passed them, else ones open for this step only."""
    from lvcrypt.keystores import KeystoreSessions

    if given is not None:
        yield given
        return
    with KeystoreSessions(tx.vg, tx.loaded.device_of) as own:
        yield own


def build_lv_table(tx: "VgTransaction", lv_name: str, sessions: "KeystoreSessions | None" = None) -> "Table":
    """The LV's table stack; `sessions` are the command's open keystores, when it asks them more than this."""
    from lvcrypt.activate.tables import build_table

    with _sessions(tx, sessions) as opened:
        return build_table(tx.vg, lv_name, tx.loaded.device_of, opened.data_mapping)


def unlock_lv(args: argparse.Namespace, tx: "VgTransaction", lv_name: str, keys: "KeyCache",
              sessions: "KeystoreSessions | None" = None) -> None:
    """Unlock every keystore the LV uses with one passphrase (a second keystore mid-reencryption too)."""
    from lvcrypt.cli.keystore import read_passphrase

    stores = tx.vg.lvs[lv_name].keystores()
    if not stores:
        return
    with read_passphrase(args, args.key_file, f"Enter passphrase for {tx.vg.name}/{lv_name}: ") as passphrase, \
            _sessions(tx, sessions) as opened:
        for store in stores:
            opened.unlock(store, passphrase, keys)


@contextmanager
def open_lv(args: argparse.Namespace, writable: bool) -> Iterator["Stack"]:
    """The LV's stack in userspace, under a shared VG lock so no metadata change moves its extents meanwhile."""
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.keycache import KeyCache
    from lvcrypt.keystores import KeystoreSessions
    from lvcrypt.lvops import find_lv, refuse_change
    from lvcrypt.store.transaction import VgTransaction

    vg_name, lv_name = split_lv(args.lv)
    with VgTransaction(args.devices, vg_name, exclusive=False) as tx, KeyCache() as keys, \
            KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        lv = find_lv(tx.vg, lv_name)
        if writable:
            refuse_change(tx.vg, lv, "data-write", getattr(args, "sysfs_root", "/sys"))
        table = build_lv_table(tx, lv_name, sessions)
        if getattr(args, "volume_key_keyring", None):
            from lvcrypt.cli.activate import unlock_for_activation

            unlock_for_activation(args, tx, lv_name, keys)  # a key from the keyring: no passphrase, no PBKDF
        else:
            unlock_lv(args, tx, lv_name, keys, sessions)
        with Stack(table, keys, writable=writable) as stack:
            yield stack


def _offset_and_length(args: argparse.Namespace, size: int) -> tuple[int, int]:
    from lvcrypt.errors import UsageError

    offset = args.offset
    length = size - offset if getattr(args, "length", None) is None else args.length
    if offset < 0 or offset > size or length < 0 or offset + length > size:
        raise UsageError(f"range {offset}+{length} lies outside the LV ({size} bytes)")
    return offset, length


def cmd_read(args: argparse.Namespace) -> int:
    with open_lv(args, writable=False) as stack:
        offset, length = _offset_and_length(args, stack.size)
        buffer = bytearray(min(STREAM_CHUNK, max(length, 1)))
        out = sys.stdout.buffer
        end = offset + length
        while offset < end:
            view = memoryview(buffer)[:min(len(buffer), end - offset)]
            stack.readinto(offset, view)
            out.write(view)
            offset += len(view)
        out.flush()
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    from lvcrypt.errors import LvcryptError, UsageError

    if args.key_file == "-":
        raise UsageError("write reads the data from standard input: give the key file by name")
    with open_lv(args, writable=True) as stack:
        offset, _ = _offset_and_length(args, stack.size)
        source = sys.stdin.buffer
        written = 0
        while True:
            data = source.read(STREAM_CHUNK)
            if not data:
                break
            if offset + len(data) > stack.size:
                stack.write(offset, data[:stack.size - offset])
                stack.sync()
                raise LvcryptError(f"{args.lv}: input is longer than the LV; wrote {written + stack.size - offset} "
                                   f"bytes up to its end")
            stack.write(offset, data)
            offset += len(data)
            written += len(data)
        stack.sync()
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from lvcrypt.activate.tables import KeyFormat, render
    from lvcrypt.inline import comment_lines, stack_caps
    from lvcrypt.keycache import KeyCache
    from lvcrypt.lvops import find_lv
    from lvcrypt.store.transaction import VgTransaction

    vg_name, lv_name = split_lv(args.lv)
    with VgTransaction(args.devices, vg_name, exclusive=False) as tx, KeyCache() as keys:
        find_lv(tx.vg, lv_name)
        table = build_lv_table(tx, lv_name)
        comments = comment_lines(stack_caps(table, args.sysfs_root))
        if args.show_keys:
            unlock_lv(args, tx, lv_name, keys)
            text = render(table, KeyFormat.HEX, keys, comments)
        else:
            text = render(table, KeyFormat.KEYRING if args.keyring else KeyFormat.MASKED, comments=comments)
    sys.stdout.write(text)
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    """Unlock, fork a FUSE daemon that owns the key, and return once the file is there."""
    from lvcrypt.activate.tables import mount_source
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.errors import LvcryptError, UsageError
    from lvcrypt.keycache import KeyCache
    from lvcrypt.lvops import find_lv, refuse_change
    from lvcrypt.store.transaction import VgTransaction

    try:
        from lvcrypt.activate import fuse
    except (ImportError, OSError) as error:
        raise LvcryptError(f"FUSE is not available ({error}): install fuse3 and mfusepy") from None
    if not os.path.isdir(args.dir):
        raise UsageError(f"{args.dir}: not a directory")
    if os.path.ismount(args.dir):
        raise LvcryptError(f"{args.dir}: something is already mounted there")
    vg_name, lv_name = split_lv(args.lv)
    with KeyCache() as keys:
        with VgTransaction(args.devices, vg_name, exclusive=False) as tx:
            lv = find_lv(tx.vg, lv_name)
            if not args.read_only:
                refuse_change(tx.vg, lv, "data-write")
            source = mount_source(tx.vg, lv)
            table = build_lv_table(tx, lv_name)
            unlock_lv(args, tx, lv_name, keys)
        stack = Stack(table, keys, writable=not args.read_only)
        ready, report = os.pipe()
        pid = os.fork()
        if pid == 0:
            _mount_daemon(stack, keys, args.dir, lv_name, source, ready, report, fuse)
        os.close(report)
        stack.close()
    return _await_mount(ready, pid, args.dir, f"{args.dir}/{lv_name}")


def _mount_daemon(stack: "Stack", keys: "KeyCache", mountpoint: str, name: str, fsname: str, ready: int,
                  report: int, fuse) -> None:  # type: ignore[no-untyped-def]
    """The forked daemon: detach, serve until unmounted, wipe the key, exit (never returns)."""
    status = 0
    try:
        os.close(ready)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)

        def on_ready() -> None:
            os.write(report, b"OK")
            os.close(report)

        def on_exit() -> None:
            stack.close()
            keys.close()

        fuse.serve(stack, mountpoint, name, fsname, on_ready, on_exit)
    except BaseException as error:  # noqa: BLE001 - reported to the waiting parent, never shown as a traceback
        status = 1
        try:
            os.write(report, f"ERR {type(error).__name__}: {error}".encode()[:500])
        except OSError:
            pass
    finally:
        stack.close()
        keys.close()
        os._exit(status)


def _await_mount(ready: int, pid: int, directory: str, path: str) -> int:
    import select

    from lvcrypt.errors import LvcryptError

    try:
        readable, _, _ = select.select([ready], [], [], 60)
        message = os.read(ready, 600) if readable else b""
    finally:
        os.close(ready)
    if message != b"OK":
        os.waitpid(pid, os.WNOHANG)
        text = message.decode(errors="replace").removeprefix("ERR ") or "the FUSE daemon did not start"
        raise LvcryptError(f"mounting on {directory} failed: {text}")
    print(f"  {path} is the decrypted logical volume; unmount with: lvcrypt umount {directory}")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from lvcrypt.errors import LvcryptError

    if not os.path.ismount(args.dir):
        raise LvcryptError(f"{args.dir}: not mounted")
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "umount"
    result = subprocess.run([tool, "-u", args.dir] if "fuser" in tool else [tool, args.dir],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise LvcryptError(f"unmounting {args.dir} failed: {result.stderr.strip().splitlines()[-1:] or '?'}")
    return 0


def _bytes(text: str) -> int:
    from lvcrypt.units import parse_size

    return parse_size(text, "b")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    common = [common_options()]
    if name == "table":
        parser = sub.add_parser(name, parents=common, help="print an LV's device-mapper tables (dmsetup syntax)")
        parser.add_argument("--show-keys", action="store_true", help="unlock and show volume keys as hex")
        parser.add_argument("--keyring", action="store_true",
                            help="show keys as the kernel backend loads them (:len:logon:description)")
        parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                            help="where to read inline-encryption capabilities (queue/crypto) from")
        add_key_file_option(parser)
        parser.set_defaults(func=cmd_table)
    elif name == "read":
        parser = sub.add_parser(name, parents=common, help="copy an LV's (decrypted) data to standard output")
        parser.add_argument("--offset", type=_bytes, default=0, help="start (bytes; k/m/g suffixes)")
        parser.add_argument("--length", type=_bytes, help="how much (default: to the end)")
        add_key_file_option(parser)
        parser.add_argument("--volume-key-keyring", metavar="%user:DESC",
                            help="use this keyring key as the volume key (e.g. restored by kdump) instead of a "
                                 "passphrase")
        parser.set_defaults(func=cmd_read)
    elif name == "write":
        parser = sub.add_parser(name, parents=common, help="write standard input into an LV (encrypting it)")
        parser.add_argument("--offset", type=_bytes, default=0, help="where to start (bytes; k/m/g suffixes)")
        add_key_file_option(parser)
        parser.add_argument("--volume-key-keyring", metavar="%user:DESC",
                            help="use this keyring key as the volume key instead of a passphrase")
        parser.set_defaults(func=cmd_write)
    elif name == "mount":
        parser = sub.add_parser(name, parents=common, help="expose an LV (decrypted) as the file DIR/LV via FUSE")
        parser.add_argument("-r", "--read-only", action="store_true", help="refuse writes")
        add_key_file_option(parser)
        parser.add_argument("lv", metavar="VG/LV")
        parser.add_argument("dir", metavar="DIR")
        parser.set_defaults(func=cmd_mount)
        return
    else:
        parser = sub.add_parser(name, parents=common, help="unmount what lvcrypt mount mounted")
        parser.add_argument("dir", metavar="DIR")
        parser.set_defaults(func=cmd_umount)
        return
    parser.add_argument("lv", metavar="VG/LV")
