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
    "token": "lvcrypt.cli.token",
    "pvcreate": "lvcrypt.cli.pv",
    "pvremove": "lvcrypt.cli.pv",
    "pvchange": "lvcrypt.cli.pv",
    "pvresize": "lvcrypt.cli.pv",
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
    "lvresize": "lvcrypt.cli.lv",
    "lvrename": "lvcrypt.cli.lv",
    "lvconvert": "lvcrypt.cli.convert",
    "pvmove": "lvcrypt.cli.move",
    "pvs": "lvcrypt.cli.report",
    "vgs": "lvcrypt.cli.report",
    "lvs": "lvcrypt.cli.report",
    "pvdisplay": "lvcrypt.cli.display",
    "vgdisplay": "lvcrypt.cli.display",
    "lvdisplay": "lvcrypt.cli.display",
    "pvscan": "lvcrypt.cli.display",
    "vgscan": "lvcrypt.cli.display",
    "lvscan": "lvcrypt.cli.display",
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

    command = ""  # the command being parsed, for mistakes the top-level parser reports (unknown options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._checking_metavar = False
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-[0-9]*\.?[0-9]+[A-Za-z]?(%[A-Za-z]+)?\Z")

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """argparse checks each argument's metavar with a help formatter, and a formatter asks the
        terminal's width, importing shutil (with bz2 and lzma): a cost to every command for help it
        never prints.  The check gets a formatter of a fixed width (the metavar does not depend on it)."""
        self._checking_metavar = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._checking_metavar = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        self._given: set[argparse.Action] = set()
        return super().parse_known_args(args, namespace)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        """lvm2 refuses an option given twice unless it counts or groups them (`lvs --units k --units m`:
        "Option --units may not be repeated.", exit 3): a script that says two things gets neither."""
        if action.option_strings and not isinstance(action, _REPEATABLE):
            if action in self._given:
                self.error(f"Option {'/'.join(action.option_strings)} may not be repeated.")
            self._given.add(action)
        return super()._get_values(action, arg_strings)

    def _get_formatter(self) -> argparse.HelpFormatter:
        if self._checking_metavar:
            return self.formatter_class(prog=self.prog, width=80)
        return super()._get_formatter()

    def error(self, message: str) -> NoReturn:
        """The message names the command (`lvcreate: ...`), not the program: main adds `lvcrypt: `."""
        command = self.prog.removeprefix("lvcrypt").strip() or self.command
        raise UsageError(f"{command}: {message}" if command else message)


class JoinedList(argparse.Action):
    """An option lvm2 lets a command repeat and joins (`--devices A --devices B` looks at both)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        before = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{before},{values}" if before else values)


class LastGiven(argparse._StoreAction):
    """An option lvm2 lets a command repeat of which only the last counts (`lvs -S a -S b` selects b;
    -O too)."""


# What lvm2 lets a command line repeat: its countable options (-v, -d, -q, -f) and its groupable ones
# (--addtag, -o, -O, -S, --devices...), which lvcrypt declares as counts, lists, JoinedList or LastGiven.
_REPEATABLE = (argparse._CountAction, argparse._AppendAction, argparse._AppendConstAction, argparse._ExtendAction,
               JoinedList, LastGiven)


def common_options() -> ArgumentParser:
    """Options every command accepts: debugging, verbosity and the devices to look at.

    `-v` only makes a command say more; tracebacks are `-d`'s alone.
    """
    common = ArgumentParser(add_help=False)
    # No default here: a command's parser would otherwise reset `lvcrypt -d COMMAND`'s count to 0.
    common.add_argument("-d", "--debug", action="count", default=argparse.SUPPRESS,
                        help="show tracebacks and debugging output")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="say more (repeatable)")
    common.add_argument("--version", action="version", version=_version_text(),
                        help="print lvcrypt's version and the lvm2 and cryptsetup versions it follows")
    common.add_argument("--devices", action=JoinedList, metavar="PATH,PATH",
                        help="only look at these devices or image files (default: the devices file and udev)")
    common.add_argument("--config", metavar="SETTINGS",
                        help="lvm.conf settings for this command, over lvm.conf (lvm2's syntax)")
    return common


def not_found_status(missing: list[str]) -> int:
    """After a report or display of what was found: lvm2's message for each object named and not found,
    and its status 5 (the last message as the command's error, which `-d` traces)."""
    for message in missing[:-1]:
        print(f"lvcrypt: {message}", file=sys.stderr)
    if missing:
        raise LvcryptError(missing[-1])
    return 0


def read_options() -> ArgumentParser:
    """`common_options` and what lvm2 accepts on its commands that only read (reports, displays,
    scans): `-y`, `-q` and `-t` (its TEST MODE line), but neither `-f` nor `-A`, as lvm2."""
    common = ArgumentParser(add_help=False, parents=[common_options()])
    common.add_argument("-y", "--yes", action="store_true", help="answer yes to every question")
    common.add_argument("-q", "--quiet", action="count", default=0, help="accepted, as lvm2 (which prints the same)")
    common.add_argument("-t", "--test", action="store_true",
                        help="run every check, write nothing to the devices and state files")
    return common


def lvm2_options(force: bool = True) -> ArgumentParser:
    """`read_options` and what lvm2 accepts on every one of its commands that change something.

    `force=False` for the commands where lvm2 spells `--file` as `-f` (vgcfgbackup, vgcfgrestore).
    """
    common = ArgumentParser(add_help=False, parents=[read_options()])
    if force:
        common.add_argument("-f", "--force", action="count", default=0, help="override checks (-ff: more)")
    common.add_argument("-A", "--autobackup", choices=("y", "n"), default="y",
                        help="n: do not refresh the VG's backup file after a change")
    return common


def _version_text() -> str:
    from lvcrypt import __version__

    return f"lvcrypt {__version__} (lvm2 2.03.16 metadata and commands, cryptsetup 2.6 formats)"


def build_parser(command: str | None) -> ArgumentParser:
    parser = ArgumentParser(prog="lvcrypt", description="LVM-style volume manager with encrypted logical volumes")
    parser.add_argument("-d", "--debug", action="count", default=0, help="show tracebacks and debugging output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say more (repeatable)")
    parser.add_argument("--version", action="version", version=_version_text())
    parser.command = command if command in COMMANDS else ""
    # prog given, as argparse would compute it (the usage of `lvcrypt` alone) with a formatter, asking the terminal
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser, prog="lvcrypt")
    sub.required = True
    names = [command] if command in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(COMMANDS[name]).register(sub, name)
    return parser


def _unknown_command(name: str) -> UsageError:
    """lvm2's `No such command`, with the nearest command lvcrypt has."""
    import difflib

    close = difflib.get_close_matches(name, list(COMMANDS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UsageError(f"No such command '{name}'.{hint} Try 'lvcrypt --help'.")


def _apply_command_mode(args: argparse.Namespace) -> None:
    """`-t`, `-A n`, `-v` and `--config` hold for the whole command: every write checks the first ones
    (lvcrypt.command_mode), every lvm.conf lookup sees the last."""
    from lvcrypt.command_mode import TEST_MODE_NOTICE, set_autobackup, set_test_mode, set_verbosity

    set_verbosity(getattr(args, "verbose", 0))
    set_autobackup(getattr(args, "autobackup", "y") != "n")
    set_test_mode(bool(getattr(args, "test", False)))
    from lvcrypt.store import lvm_config

    lvm_config.override(getattr(args, "config", None))  # also rereads the files: one command, one reading
    if getattr(args, "test", False):
        print(TEST_MODE_NOTICE, file=sys.stderr)


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


# `pvdisplay -C` is `pvs` in lvm2 (and so on): the report with all of its options.
_COLUMN_FORMS = {"pvdisplay": "pvs", "vgdisplay": "vgs", "lvdisplay": "lvs"}


def _columns_form(argv: list[str]) -> list[str]:
    """argv of the report command when a display command asks for -C/--columns, else argv unchanged."""
    command = _command_name(argv)
    if command not in _COLUMN_FORMS or not {"-C", "--columns"} & set(argv):
        return argv
    if {"-c", "--colon", "-m", "--maps", "-s", "--short", "-A", "--activevolumegroups"} & set(argv):
        raise UsageError("Incompatible options selected")
    return [_COLUMN_FORMS[command] if arg == command else arg for arg in argv if arg not in ("-C", "--columns")]


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status; as the process itself (no `argv`: the console
    script, `python -m lvcrypt`) end the process there instead (`_end_process`)."""
    if argv is None:  # the process's own command, short-lived: big metadata trees need no collector walk
        from lvcrypt.metadata.gc_pause import for_a_command_process

        for_a_command_process()
        _end_process(run(sys.argv[1:]))
    return run(argv)


def _end_process(status: int) -> NoReturn:
    """Flush what the command printed and exit without tearing the interpreter down.

    Teardown frees every object of every module and runs the garbage collector
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
    args: argparse.Namespace | None = None
    try:
        argv = _columns_form(argv)
        command = _command_name(argv)
        if command is not None and command not in COMMANDS:
            raise _unknown_command(command)
        args = build_parser(command).parse_args(argv)
        _apply_command_mode(args)
        return int(args.func(args) or 0)
    except LvcryptError as error:
        _traceback_if_debug(args)
        print(f"lvcrypt: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("lvcrypt: interrupted", file=sys.stderr)
        return 5
    except BrokenPipeError:
        return 5
    except OSError as error:
        _traceback_if_debug(args)
        print(f"lvcrypt: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 5
    except Exception as error:  # noqa: BLE001 - the one place that turns bugs into a one-line report
        _traceback_if_debug(args)
        print(f"lvcrypt: internal error: {type(error).__name__}: {error} (run with --debug for details)",
              file=sys.stderr)
        return 5
    finally:
        from lvcrypt.command_mode import reset

        reset()
        if args is not None and getattr(args, "config", None) is not None:
            from lvcrypt.store import lvm_config

            lvm_config.override(None)


def _traceback_if_debug(args: argparse.Namespace | None) -> None:
    """Only --debug shows tracebacks, so only then is `traceback` (with linecache, tokenize) imported."""
    if args is not None and getattr(args, "debug", 0):
        import traceback

        traceback.print_exc()
