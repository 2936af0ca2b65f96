"""issue 15: README's "lvm2 commands and options" says what each command takes; `--help` agrees.

A user reads the README's table to know whether a script's lvm2 options work with lvcrypt.
Every option it lists for a command must be one that command's parser takes, and every
option the "does not have" list names for lvchange/vgchange/pvchange and the reports must
really be missing (the README would otherwise send users away from what works).
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from conftest import ROOT

SECTION = re.compile(r"## lvm2 commands and options\n(.*?)\n## ", re.S)


def _section() -> str:
    match = SECTION.search((ROOT / "README.md").read_text())
    assert match, "README lost its 'lvm2 commands and options' section"
    return match.group(1)


def _table() -> dict[str, set[str]]:
    """command -> the options its rows list (`-u/--uuid` gives both spellings; a command may have
    a row of its own besides its family's)."""
    rows: dict[str, set[str]] = {}
    for line in _section().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")] if line.startswith("| ") else []
        if len(cells) < 2 or cells[0] in ("command", "---"):
            continue
        options = {word for code in re.findall(r"`([^`]*)`", " ".join(cells[1:]))
                   for word in re.split(r"[/\s]", code) if re.fullmatch(r"--?[A-Za-z][A-Za-z-]*", word)}
        for command in cells[0].split(", "):
            rows.setdefault(command, set()).update(options)
    return rows


def _help(command: str) -> str:
    from lvcrypt.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([command, "--help"])
    return out.getvalue()


def _takes(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


TABLE = _table()


def test_the_table_covers_every_lvm2_command_lvcrypt_has() -> None:
    from lvcrypt.cli import COMMANDS

    lvm2_like = {name for name in COMMANDS if re.fullmatch(r"(pv|vg|lv)[a-z]+", name)}
    assert lvm2_like <= set(TABLE), sorted(lvm2_like - set(TABLE))


@pytest.mark.parametrize("command", sorted(TABLE))
def test_every_listed_option_is_taken(command: str) -> None:
    text = _help(command)
    missing = sorted(option for option in TABLE[command] if not _takes(text, option))
    assert not missing, f"README lists {missing} for {command}, which its --help does not show"


# Options the README says lvcrypt lacks, per command: each must be absent from that --help.
NOT_THERE = {"lvchange": ["--readahead", "--monitor", "--resync", "--select"],
             "vgchange": ["--refresh", "--locktype", "--systemid", "--select"],
             "pvchange": ["--uuid", "--metadataignore", "--all"],
             "lvs": ["--configreport", "--unbuffered"],
             "pvmove": ["--atomic", "--background", "--interval", "--alloc"],
             "lvcreate": ["--thin", "--snapshot", "--mirrors", "--readahead", "--nosync"]}


@pytest.mark.parametrize("command", sorted(NOT_THERE))
def test_options_said_missing_are_missing(command: str) -> None:
    section = _section()
    text = _help(command)
    for option in NOT_THERE[command]:
        assert option in section, f"{option} is not in README's list"
        assert not _takes(text, option), f"README says {command} lacks {option}, but --help shows it"
