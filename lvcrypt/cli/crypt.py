"""An LV's data on the command line: `table`, `read`, `write`, `mount`, `umount`.

`read` and `write` are the userspace backend as streams: the LV's table stack
interpreted over its PVs, so encrypted data is reachable on a kernel without
device-mapper.  Passphrases come from --key-file (`-` is standard input) or
a terminal prompt; keys stay in the command's key cache and are wiped at exit.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, ContextManager

from lvcrypt.cli import common_options
from lvcrypt.cli.options import (ProgressLine, add_key_file_option, add_sysfs_root_option, add_token_options,
                                 key_sources, split_lv)

if TYPE_CHECKING:
    from lvcrypt.activate.userspace import Stack


def _open_lv(args: argparse.Namespace, writable: bool) -> ContextManager["Stack"]:
    from lvcrypt.activation import open_lv_stack

    vg_name, lv_name = split_lv(args.lv)
    return open_lv_stack(args.devices, vg_name, lv_name, writable, key_sources(args),
                         args.sysfs_root)


def _offset_and_length(args: argparse.Namespace, size: int) -> tuple[int, int]:
    from lvcrypt.errors import UsageError

    offset = args.offset
    length = size - offset if getattr(args, "length", None) is None else args.length
    if offset < 0 or offset > size or length < 0 or offset + length > size:
        raise UsageError(f"range {offset}+{length} lies outside the LV ({size} bytes)")
    return offset, length


def cmd_read(args: argparse.Namespace) -> int:
    from lvcrypt.activate.stream import copy_out

    with _open_lv(args, writable=False) as stack:
        offset, length = _offset_and_length(args, stack.size)
        with ProgressLine(f"Reading {args.lv}", length) as progress:
            copy_out(stack, offset, length, sys.stdout.buffer, progress.update)
    return 0


def _input_size() -> int | None:
    """The bytes standard input will give when it is a regular file (`< image`), else unknown
    (a pipe, a terminal, or a stream with no file behind it, as when `main` is called in process)."""
    import io
    import os
    import stat

    try:
        info = os.fstat(sys.stdin.fileno())
    except (OSError, io.UnsupportedOperation):
        return None
    return info.st_size - sys.stdin.buffer.tell() if stat.S_ISREG(info.st_mode) and info.st_size else None


def cmd_write(args: argparse.Namespace) -> int:
    from lvcrypt.activate.stream import copy_in
    from lvcrypt.errors import UsageError

    if args.key_file == "-":
        raise UsageError("write reads the data from standard input: give the key file by name")
    with _open_lv(args, writable=True) as stack:
        offset, _ = _offset_and_length(args, stack.size)
        with ProgressLine(f"Writing {args.lv}", _input_size(), expected=stack.size - offset) as progress:
            copy_in(stack, offset, sys.stdin.buffer, args.lv, progress.update)
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from lvcrypt.activate.tables import KeyFormat
    from lvcrypt.activation import lv_table_text

    vg_name, lv_name = split_lv(args.lv)
    key_format = KeyFormat.HEX if args.show_keys else KeyFormat.KEYRING if args.keyring else KeyFormat.MASKED
    sys.stdout.write(lv_table_text(args.devices, vg_name, lv_name, key_format, key_sources(args), args.sysfs_root))
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    """Unlock, fork a FUSE daemon that owns the key, and return once the file is there."""
    from lvcrypt.fuse_mount import mount_lv

    vg_name, lv_name = split_lv(args.lv)
    path = mount_lv(args.devices, vg_name, lv_name, args.dir, args.read_only, key_sources(args))
    print(f"  {path} is the decrypted logical volume; unmount with: lvcrypt umount {args.dir}")
    return 0


def cmd_umount(args: argparse.Namespace) -> int:
    from lvcrypt.fuse_mount import unmount

    unmount(args.dir)
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
        add_token_options(parser)
        add_sysfs_root_option(parser)
        parser.set_defaults(func=cmd_read)
    elif name == "write":
        parser = sub.add_parser(name, parents=common, help="write standard input into an LV (encrypting it)")
        parser.add_argument("--offset", type=_bytes, default=0, help="where to start (bytes; k/m/g suffixes)")
        add_key_file_option(parser)
        parser.add_argument("--volume-key-keyring", metavar="%user:DESC",
                            help="use this keyring key as the volume key instead of a passphrase")
        add_sysfs_root_option(parser)
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
