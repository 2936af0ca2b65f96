"""`lvcrypt metadata check|format|json|show|get|set|del|diff`: metadata text for people and scripts."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import subprocess
import sys
import tempfile

from lvcrypt.atomic_file import write_atomically
from lvcrypt.cli import common_options
from lvcrypt.errors import LvcryptError, MetadataError, UsageError
from lvcrypt.metadata import paths
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.diff import differences, show
from lvcrypt.metadata.parse import parse_bytes
from lvcrypt.metadata.tree import Section, Value, to_plain
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text
from lvcrypt.metadata_text import about, change_target, read_target, read_tree, read_vg, summarise_vg
from lvcrypt.units import format_size


def cmd_check(args: argparse.Namespace) -> int:
    for path in args.files:
        _, vg = read_vg(path)
        if not args.quiet:
            print(f"{path}: volume group {vg.name} (seqno {vg.seqno}, {len(vg.pvs)} PVs, {len(vg.lvs)} LVs) is valid")
    return 0


def cmd_format(args: argparse.Namespace) -> int:
    tree, _ = read_vg(args.file)
    text = write_text(tree)
    if args.in_place:
        write_atomically(args.file, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_json(args: argparse.Namespace) -> int:
    tree = read_tree(args.file)
    if not args.no_validate:
        validate(tree_to_vg(tree, args.file), args.file)
    json.dump(to_plain(tree), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    _, vg = read_vg(args.file)
    summary = summarise_vg(vg)
    print(tabulate([[vg.name, vg.id, vg.seqno, format_size(summary.extent_bytes), len(vg.pvs), len(vg.lvs),
                     format_size(summary.size), format_size(summary.free)]],
                   headers=["VG", "UUID", "Seqno", "Extent", "#PV", "#LV", "VSize", "VFree"]))
    print()
    print(tabulate([[pv.key, pv.device, pv.id, format_size(pv.size), format_size(pv.free), pv.pe_start]
                    for pv in summary.pvs],
                   headers=["PV", "Device hint", "UUID", "PSize", "PFree", "PE start"]))
    print()
    print(tabulate([[lv.name, format_size(lv.size), lv.segments, lv.types, lv.devices, lv.encryption]
                    for lv in summary.lvs],
                   headers=["LV", "LSize", "#Seg", "Type", "Devices", "Encryption"]))
    return 0


def _print_value(value: Value, as_json: bool) -> None:
    if as_json:
        print(json.dumps(to_plain(value)))
    elif isinstance(value, Section):
        sys.stdout.write(write_text(value, header=False))
    elif isinstance(value, str):
        print(value)
    else:
        print(show(value))


def cmd_get(args: argparse.Namespace) -> int:
    tree = read_target(args.target, args.devices)
    with about(args.target):
        values = [paths.get(tree, path) for path in args.paths]
    for value in values:
        _print_value(value, args.json)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    def edit(tree: Section) -> None:
        for assignment in args.assignments:
            path, equals, text = assignment.partition("=")
            if not equals:
                raise UsageError(f"'{assignment}' is not PATH=VALUE")
            paths.set_value(tree, path.strip(), paths.parse_value(text.strip()))
    change_target(args.target, args.devices, edit)
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    def edit(tree: Section) -> None:
        for path in args.paths:
            paths.delete(tree, path)
    change_target(args.target, args.devices, edit)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    found = differences(read_target(args.old, args.devices), read_target(args.new, args.devices),
                        vg_relative=True)
    for difference in found:
        print(difference)
    return 1 if found else 0


def cmd_edit(args: argparse.Namespace) -> int:
    """$EDITOR on the VG's metadata, under the VG lock: validate, show the diff, confirm, commit."""
    from lvcrypt.api import open_vg
    from lvcrypt.metadata.edit_summary import summarise

    with open_vg(args.vg, args.devices) as handle:
        original = write_text(vg_to_tree(handle.vg))
        fd, temp = tempfile.mkstemp(prefix=f"lvcrypt-{args.vg}-", suffix=".vg")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(original)
            while True:
                _run_editor(temp)
                with open(temp, "rb") as f:
                    edited = f.read()
                if edited.decode(errors="replace") == original:
                    print("  No changes: nothing written.")
                    return 0
                try:
                    new_vg = tree_to_vg(parse_bytes(edited, temp), temp)
                    handle.replace(new_vg)
                    break
                except MetadataError as error:
                    print(f"lvcrypt: {error}", file=sys.stderr)
                    if not _ask("Edit again (e) or abort (a)?", ("e", "a"), default="a", assume=None) == "e":
                        raise LvcryptError("edit aborted: nothing written") from None
            sys.stdout.writelines(difflib.unified_diff(original.splitlines(True), edited.decode().splitlines(True),
                                                       f"{args.vg} (seqno {handle.transaction.vg.seqno})",
                                                       f"{args.vg} (edited)"))
            for line in summarise(handle.transaction.vg, handle.vg):
                print(f"  {line}")
            if not args.yes and _ask("Commit these changes?", ("y", "n"), default="n", assume=None) != "y":
                raise LvcryptError("edit aborted: nothing written")
            handle.commit()
            print(f"  Volume group \"{args.vg}\" metadata committed (seqno {handle.vg.seqno}).")
        finally:
            os.unlink(temp)
    return 0


def _run_editor(path: str) -> None:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        status = subprocess.call(shlex.split(editor) + [path])
    except OSError as error:
        raise LvcryptError(f"cannot run editor '{editor}': {error.strerror}") from None
    if status != 0:
        raise LvcryptError(f"editor '{editor}' exited with status {status}: nothing written")


def _ask(question: str, answers: tuple[str, ...], default: str, assume: str | None) -> str:
    """A one-letter answer from the terminal; without a terminal the (safe) default."""
    if not sys.stdin.isatty():
        return default
    reply = input(f"{question} [{'/'.join(answers)}] ").strip().lower()[:1]
    return reply if reply in answers else default


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, help="check, format, convert and show metadata text files",
                            description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    common = [common_options()]

    check = actions.add_parser("check", parents=common, help="validate metadata files (exit 5 on the first error)")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    check.set_defaults(func=cmd_check)

    fmt = actions.add_parser("format", parents=common, help="print the canonical text (lvm2's backup layout)")
    fmt.add_argument("file", metavar="FILE")
    fmt.add_argument("-i", "--in-place", action="store_true", help="rewrite FILE atomically instead of printing")
    fmt.set_defaults(func=cmd_format)

    to_json = actions.add_parser("json", parents=common, help="print the metadata tree as JSON")
    to_json.add_argument("file", metavar="FILE")
    to_json.add_argument("--no-validate", action="store_true", help="convert text that parses but does not validate")
    to_json.set_defaults(func=cmd_json)

    show = actions.add_parser("show", parents=common, help="summarise the VG, its PVs and LVs as tables")
    show.add_argument("file", metavar="FILE")
    show.set_defaults(func=cmd_show)

    get = actions.add_parser("get", parents=common, help="print values by dotted path (logical_volumes.lv0.tags)")
    get.add_argument("target", metavar="FILE|VG")
    get.add_argument("paths", nargs="+", metavar="PATH")
    get.add_argument("--json", action="store_true", help="print each value as JSON")
    get.set_defaults(func=cmd_get)

    set_ = actions.add_parser("set", parents=common, help="change values; the result must validate",
                              description="Values use the metadata syntax: \"text\", 12, [\"a\", 1]; "
                                          "a bare word is a string. A file is replaced atomically; a VG is "
                                          "committed under its lock (archived, seqno + 1).")
    set_.add_argument("target", metavar="FILE|VG")
    set_.add_argument("assignments", nargs="+", metavar="PATH=VALUE")
    set_.set_defaults(func=cmd_set)

    delete = actions.add_parser("del", parents=common, help="remove keys or sections; the result must validate")
    delete.add_argument("target", metavar="FILE|VG")
    delete.add_argument("paths", nargs="+", metavar="PATH")
    delete.set_defaults(func=cmd_del)

    diff = actions.add_parser("diff", parents=common, help="semantic differences (order and comments ignored); "
                                                            "exit 1 when there are some")
    diff.add_argument("old", metavar="A", help="a metadata file or a VG")
    diff.add_argument("new", metavar="B", help="a metadata file or a VG")
    diff.set_defaults(func=cmd_diff)

    edit = actions.add_parser("edit", parents=common, help="edit a VG's metadata with $EDITOR and commit it",
                              description="Opens $VISUAL or $EDITOR (else vi) on the VG's metadata under the VG "
                                          "lock; on save validates, shows the diff and a summary, asks, archives "
                                          "the old version and commits the new one as seqno + 1 on all PVs.")
    edit.add_argument("vg", metavar="VG")
    edit.add_argument("-y", "--yes", action="store_true", help="commit without asking")
    edit.set_defaults(func=cmd_edit)
