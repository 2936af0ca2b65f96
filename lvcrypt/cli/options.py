"""Argument helpers several command families share: the one cli module other cli modules import.

Options keep cryptsetup's and lvm2's names; what they mean is decided in the
core (lvcrypt.unlock, lvcrypt.keystore_admin, ...), which these helpers turn
the parsed arguments into.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from lvcrypt.encrypted_lv import EncryptedLvRequest
    from lvcrypt.handlers.secret import Secret
    from lvcrypt.keystore_admin import KeystoreRequest
    from lvcrypt.unlock import KeySources

# lvm2's --alloc words; lvcrypt allocates anywhere as normal (lvcrypt.alloc).
ALLOC_POLICIES = ("contiguous", "cling", "cling_by_tags", "normal", "anywhere", "inherit")


def alloc_policy(text: str) -> str:
    """lvm2 reads cling_by_tags as cling (get_alloc_from_string), and so records it."""
    return "cling" if text == "cling_by_tags" else text


def split_lv(text: str) -> tuple[str, str]:
    """An LV as lvm2 takes it: `VG/LV`, `/dev/VG/LV` or `/dev/mapper/VG-LV`."""
    from lvcrypt.object_names import lv_argument

    return lv_argument(text)


def add_tag_options(parser: argparse.ArgumentParser, delete: bool = True) -> None:
    """lvm2's --addtag (and --deltag where lvm2 has it), each repeatable; `@tag` is accepted too."""
    def tag_of(option: str) -> Callable[[str], str]:
        def check(text: str) -> str:
            from lvcrypt.tags import tag_argument

            return tag_argument(text, option)
        return check

    parser.add_argument("--addtag", action="append", default=[], type=tag_of("--addtag"), metavar="TAG",
                        help="add a tag (repeatable)")
    if delete:
        parser.add_argument("--deltag", action="append", default=[], type=tag_of("--deltag"), metavar="TAG",
                            help="remove a tag (repeatable; applied after every --addtag, as lvm2)")


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


def add_keyring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link-vk-to-keyring", metavar="KEYRING::%TYPE:DESC",
                        help="also put the volume key into a keyring after unlocking (e.g. @s::%%user:vk1)")
    parser.add_argument("--volume-key-keyring", metavar="%TYPE:DESC",
                        help="use a volume key from the kernel keyring instead of a passphrase")


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """cryptsetup open's token switches: which LUKS2 tokens to try, and whether to try only them."""
    parser.add_argument("--token-only", action="store_true",
                        help="unlock only through tokens (no key file, no prompt)")
    parser.add_argument("--token-id", type=non_negative, metavar="N", help="try only this token")
    parser.add_argument("--token-type", metavar="TYPE", help="try only tokens of this type (luks2-keyring)")


def add_sysfs_root_option(parser: argparse.ArgumentParser) -> None:
    """Where live dm devices (LVs in use) and inline-crypto capabilities are read; tests point it at a tree."""
    parser.add_argument("--sysfs-root", default="/sys", metavar="DIR",
                        help="where active LVs' dm devices and inline-crypto capabilities are read")


def add_encrypt_options(parser: argparse.ArgumentParser) -> None:
    """lvcreate's options for encrypted LVs (cryptsetup's names and defaults)."""
    from lvcrypt.handlers import registry

    group = parser.add_argument_group("encryption")
    group.add_argument("--encrypt", action="store_true", help="create an encrypted LV (same as --type crypt)")
    group.add_argument("--handler", choices=registry.Choices(), metavar="HANDLER",
                       help=f"key handler of a new keystore, any installed one: %(choices)s (default "
                            f"{registry.DEFAULT})")
    group.add_argument("--keystore", metavar="NAME", help="use an existing keystore (one passphrase for many LVs)")
    add_keystore_options(group)
    group.add_argument("--sector-size", type=int, choices=(512, 1024, 2048, 4096), help="encryption sector size")
    group.add_argument("--wipe", action="store_true",
                       help="fill the new LV with random data through the mapping (else old data is only "
                            "unreadable, not gone: new LVs are not wiped by default)")
    add_key_file_option(parser)


def add_keystore_options(group: "argparse._ActionsContainer") -> None:
    """A new keystore's cipher and PBKDF options (cryptsetup's names): lvcreate --encrypt, lvconvert --encrypt."""
    from lvcrypt.handlers.kdf import PBKDF_KINDS

    group.add_argument("--cipher", type=cipher_spec_argument, help="cipher of a new keystore, e.g. aes-xts-plain64")
    group.add_argument("--key-size", type=non_negative, metavar="BITS", help="volume key size in bits")
    group.add_argument("--hash", help="hash of the PBKDF (luks) or of the passphrase (hashed)")
    group.add_argument("--pbkdf", choices=PBKDF_KINDS, help="pbkdf2, argon2i or argon2id")
    group.add_argument("--iter-time", type=non_negative, metavar="MS", help="PBKDF time cost in milliseconds")
    group.add_argument("--pbkdf-memory", type=non_negative, metavar="KIB", help="Argon2 memory cost")
    group.add_argument("--pbkdf-parallel", type=non_negative, metavar="THREADS", help="Argon2 parallel cost")
    group.add_argument("--pbkdf-force-iterations", type=non_negative, metavar="N", help="fixed PBKDF cost (tests)")


def keystore_request(args: argparse.Namespace, handler: str | None) -> "KeystoreRequest":
    """`keystore format` and `keyslot add|change`: the keystore options as given (argparse supplies the costs)."""
    from lvcrypt.keystore_admin import KeystoreRequest

    return KeystoreRequest(handler=handler, cipher=getattr(args, "cipher", None),
                           key_bits=getattr(args, "key_size", None), hash=args.hash, pbkdf=args.pbkdf,
                           iter_time_ms=args.iter_time, memory_kib=args.pbkdf_memory,
                           parallel=args.pbkdf_parallel, force_iterations=args.pbkdf_force_iterations,
                           sector_size=getattr(args, "sector_size", None))


def encrypted_lv_request(args: argparse.Namespace) -> "EncryptedLvRequest":
    """lvcreate's encryption options; its PBKDF costs have no argparse default, and 0 means the default."""
    from lvcrypt.encrypted_lv import EncryptedLvRequest
    from lvcrypt.keystore_admin import KeystoreRequest

    new = KeystoreRequest(handler=args.handler, cipher=args.cipher, key_bits=args.key_size, hash=args.hash,
                          pbkdf=args.pbkdf, iter_time_ms=args.iter_time or None,
                          memory_kib=args.pbkdf_memory or None, parallel=args.pbkdf_parallel or None,
                          force_iterations=args.pbkdf_force_iterations)
    return EncryptedLvRequest(keystore=args.keystore, new=new, sector_size=args.sector_size)


def terminal_prompt(prompt: str) -> "Secret":
    """One passphrase typed on the terminal (no echo), straight into a Secret."""
    import getpass  # only for a terminal prompt: key files and keyrings need no termios

    from lvcrypt.handlers.secret import Secret

    text = getpass.getpass(prompt)
    encoded = bytearray(text.encode())
    return Secret.adopt(encoded)


def key_sources(args: argparse.Namespace, new_key: bool = False) -> "KeySources":
    """Where this command may take keys from: --key-file (--new-key-file with `new_key`) and friends.

    The key-file offset and size apply to either file, as they always have.
    """
    from lvcrypt.unlock import KeySources

    return KeySources(key_file=args.new_key_file if new_key else args.key_file,
                      keyfile_offset=getattr(args, "keyfile_offset", 0) or 0,
                      keyfile_size=getattr(args, "keyfile_size", None),
                      volume_key_keyring=None if new_key else getattr(args, "volume_key_keyring", None),
                      prompt=terminal_prompt, token_only=getattr(args, "token_only", False),
                      token_id=getattr(args, "token_id", None), token_type=getattr(args, "token_type", None))


def wipe_progress(name: str) -> Callable[[int, int], None] | None:
    """`Wiping VG/LV: NN%` on a terminal's stderr, rewritten in place, ended by a newline; nothing elsewhere."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, size: int) -> None:
        print(f"\r  Wiping {name}: {100 * done // size:3d}%", end="", file=sys.stderr, flush=True)
        if done >= size:
            print(file=sys.stderr)
    return show


PROGRESS_MIN_BYTES = 16 << 20  # smaller copies are over before a progress line could be read


class ProgressLine:
    """`  Reading VG/LV: NN%` (`N MiB` when the total is unknown) on stderr, rewritten in place and ended
    by a newline; only when stderr is a terminal and the work is large, so that data on stdout and
    logs of scripts never carry it."""

    def __init__(self, label: str, total: int | None, expected: int | None = None):
        self.label = label
        self.total = total
        size = expected if expected is not None else total
        self.enabled = sys.stderr.isatty() and (size is None or size >= PROGRESS_MIN_BYTES)
        self.shown = ""

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        text = f"{100 * done // self.total:3d}%" if self.total else f"{done >> 20} MiB"
        if text != self.shown:
            self.shown = text
            print(f"\r  {self.label}: {text}", end="", file=sys.stderr, flush=True)

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            print(file=sys.stderr)


def yes_no(args: argparse.Namespace) -> Callable[[str], bool]:
    """lvm2's y/n question before -ff overwrites a PV of a VG: -y answers it, else a terminal must."""
    answers: dict[str, bool] = {}  # each question once, though checked again before each write

    def ask(question: str) -> bool:
        if question not in answers:
            answers[question] = bool(args.yes) or (sys.stdin.isatty()
                                                   and input(question).strip().lower().startswith("y"))
        return answers[question]
    return ask


def cipher_spec_argument(text: str) -> str:
    """`--cipher`: dm-crypt's grammar checked while arguments are parsed, so a malformed spec is exit 3.

    A well-formed spec lvcrypt cannot compute is the command's refusal (exit 5).
    """
    from lvcrypt.crypto.spec import parse_kernel_cipher_spec
    from lvcrypt.errors import HandlerError

    try:
        parse_kernel_cipher_spec(text)
    except HandlerError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_mover_options(parser: argparse.ArgumentParser) -> None:
    """The extent mover's pace: chunk size and rate (lvconvert --encrypt/--decrypt/--reencrypt, pvmove)."""
    parser.add_argument("--chunk-size", metavar="SIZE",
                        help="data moved per metadata commit, rounded down to whole extents (default 32M)")
    parser.add_argument("--rate", metavar="SIZE", help="limit the copy to SIZE per second, e.g. 50M")


def mover_pace(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(chunk bytes, rate in bytes per second) from --chunk-size and --rate; a zero is a bad argument."""
    from lvcrypt.errors import UsageError
    from lvcrypt.units import parse_size

    values = []
    for name in ("chunk_size", "rate"):
        text = getattr(args, name)
        value = None if text is None else parse_size(text)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be more than zero")
        values.append(value)
    return values[0], values[1]


def move_progress(label: str) -> Callable[[int, int], None] | None:
    """`LABEL: NN.N% at R MiB/s, ETA Ns` on a terminal's stderr, rewritten in place; nothing elsewhere."""
    import time

    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate else 0.0
        percent = 100.0 * done / total if total else 100.0
        print(f"\r  {label}: {percent:5.1f}% at {rate / (1 << 20):.1f} MiB/s, ETA {eta:.0f}s ", end="",
              file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)
    return show
