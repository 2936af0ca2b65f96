"""Command-line entry point: argument parsing, dispatch and the exit-status policy.

Commands live in one module per family; only the module of the command being
run is imported, because interpreter start-up and imports dominate the run
time of report commands such as `lvs` (see benchmarks/).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Any, NoReturn

from lvcrypt.errors import LvcryptError, UsageError

# command name -> module that registers it (each module has `register(subparsers, name)`).
COMMANDS: dict[str, str] = {
    "metadata": "lvcrypt.cli.metadata",
    "keystore": "lvcrypt.cli.keystore",
    "keyslot": "lvcrypt.cli.keystore",
    "pvcreate": "lvcrypt.cli.pv",
    "pvremove": "lvcrypt.cli.pv",
    "vgcreate": "lvcrypt.cli.vg",
    "vgextend": "lvcrypt.cli.vg",
    "vgreduce": "lvcrypt.cli.vg",
    "vgremove": "lvcrypt.cli.vg",
    "vgrename": "lvcrypt.cli.vg",
    "vgck": "lvcrypt.cli.vg",
    "vgcfgbackup": "lvcrypt.cli.vg",
    "vgcfgrestore": "lvcrypt.cli.vg",
    "lvcreate": "lvcrypt.cli.lv",
    "lvremove": "lvcrypt.cli.lv",
    "lvextend": "lvcrypt.cli.lv",
    "lvreduce": "lvcrypt.cli.lv",
    "lvrename": "lvcrypt.cli.lv",
    "lvconvert": "lvcrypt.cli.convert",
    "pvs": "lvcrypt.cli.report",
    "vgs": "lvcrypt.cli.report",
    "lvs": "lvcrypt.cli.report",
    "table": "lvcrypt.cli.crypt",
    "read": "lvcrypt.cli.crypt",
    "write": "lvcrypt.cli.crypt",
    "mount": "lvcrypt.cli.crypt",
    "umount": "lvcrypt.cli.crypt",
    "kdump": "lvcrypt.cli.kdump",
    "lvchange": "lvcrypt.cli.activate",
    "vgchange": "lvcrypt.cli.activate",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports mistakes as `UsageError` (exit 3) instead of exiting with 2.

    lvm2 takes relative sizes as separate words (`lvreduce -L -1M`, `-l -10%FREE`):
    such words are values, not options, as argparse already treats `-1`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-[0-9]*\.?[0-9]+[A-Za-z]?(%[A-Za-z]+)?\Z")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def common_options() -> ArgumentParser:
    """Options every command accepts, as lvm2 accepts them on every command."""
    common = ArgumentParser(add_help=False)
    common.add_argument("-d", "--debug", "-v", "--verbose", dest="debug", action="store_true",
                        help="show tracebacks and debugging output")
    common.add_argument("--devices", metavar="PATH,PATH",
                        help="only look at these devices or image files (default: the devices file and udev)")
    return common


def build_parser(command: str | None) -> ArgumentParser:
    parser = ArgumentParser(prog="lvcrypt", description="LVM-style volume manager with encrypted logical volumes")
    parser.add_argument("-d", "--debug", "-v", "--verbose", dest="debug", action="store_true",
                        help="show tracebacks and debugging output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    names = [command] if command in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(COMMANDS[name]).register(sub, name)
    return parser


def _print_traceback() -> None:
    """Only --debug shows tracebacks, so only then is `traceback` (with linecache, tokenize) imported."""
    import traceback

    traceback.print_exc()


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; as the process itself (no `argv`: the console
    script, `python -m lvcrypt`) end the process there instead (`_end_process`)."""
    if argv is None:
        _end_process(run(sys.argv[1:]))
    return run(argv)


def _end_process(status: int) -> NoReturn:
    """Flush what the command printed and exit without tearing the interpreter down.

    Teardown frees every object of every module (numpy's too) and runs the garbage collector
    over them: about a fifth of the CPU time of a 4 KiB `read` (benchmarks/startup.py), for
    nothing, since the command already closed its files and locks and wiped its keys in its
    own `with` blocks, and lvcrypt registers no atexit handler and starts no threads that
    outlive a command.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        status = 5
    os._exit(status)


def run(argv: list[str]) -> int:
    argv = list(argv)
    # numpy's OpenBLAS starts a thread per core when numpy is imported and joins them at exit;
    # lvcrypt does no linear algebra (numpy only computes XTS tweaks), so that is pure start-up cost.
    if not os.environ.get("OPENBLAS_NUM_THREADS"):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    debug = any(a in ("-d", "--debug", "-v", "--verbose") for a in argv)
    try:
        args = build_parser(_command_name(argv)).parse_args(argv)
        return int(args.func(args) or 0)
    except LvcryptError as error:
        if debug:
            _print_traceback()
        print(f"lvcrypt: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("lvcrypt: interrupted", file=sys.stderr)
        return 5
    except BrokenPipeError:
        return 5
    except OSError as error:
        if debug:
            _print_traceback()
        print(f"lvcrypt: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 5
    except Exception as error:  # noqa: BLE001 - the one place that turns bugs into a one-line report
        if debug:
            _print_traceback()
        print(f"lvcrypt: internal error: {type(error).__name__}: {error} (run with --debug for details)",
              file=sys.stderr)
        return 5
