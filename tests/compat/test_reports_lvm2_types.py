"""issue 12 item 2: on VGs lvm2 made, `lvcrypt lvs/vgs/pvs` print what `lvm lvs/vgs/pvs` print.

Every fixture of tests/data/lvm2_types (thin pools with thin snapshots, old-style and merging
snapshots, raid1/5/10, mirrors, cache and writecache, raid with integrity, historical LVs, a
mix) is restored by lvm2 onto image files (the matrix's helpers), attached read-only, and
each report command runs under both tools with the same `--devices`.  The outputs must be
byte-equal and the exit statuses equal: lv_attr's ten letters, the Origin/Pool/Data/Meta/Log
columns, hidden sub-LVs in brackets, the snapshot COW LV shown as the snapshot (never the
`snapshotN` LV), lv_role, #LV and #SN, devices and #Str of layered LVs, column widths and order.

This host has no device-mapper, so lvm2 shows every LV's state as unknown (`XX`) except thin
pools and used cache pools (`--`, it never asks the kernel about them), and every
percentage empty; lvcrypt activates none of these types, so the same holds for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import ROOT
from sampling import cover
from test_lvm2_types_matrix import FIXTURES, Fixture, detach, lvm, lvm2_problems, templates  # noqa: F401

pytestmark = pytest.mark.slow  # restores ten lvm2 VGs (shared with the matrix when both run in one worker)
FIXTURES_PER_COMMAND = 4  # per run (tests/sampling.py; LVCRYPT_TEST_FULL=1: every fixture)

# The brief's list, then the fields lvm2 has for layered LVs, segment fields and script formats.
COMMANDS: list[list[str]] = [
    ["lvs"],
    ["lvs", "-a"],
    ["vgs"],
    ["pvs"],
    ["lvs", "-a", "-o", "lv_name,lv_attr,origin,pool_lv,data_lv,metadata_lv,mirror_log,lv_size,devices"],
    ["lvs", "-a", "--reportformat", "json"],
    ["vgs", "-o", "+lv_count,snap_count"],
    ["lvs", "--noheadings", "--units", "b"],
    ["lvs", "-a", "-o", "lv_name,move_pv,copy_percent,data_percent,metadata_percent,snap_percent,convert_lv"],
    ["lvs", "-a", "-o", "lv_name,lv_role"],
    ["lvs", "-a", "-o", "lv_name,lv_path,lv_full_name,seg_count,segtype,stripes,seg_size,seg_pe_ranges"],
    ["lvs", "-a", "--units", "s", "--separator", ":", "-o", "lv_name,lv_attr,origin,pool_lv,devices"],
    ["lvs", "-a", "--noheadings", "--reportformat", "json", "-o", "+data_lv,metadata_lv"],
    ["vgs", "--noheadings", "-o", "vg_name,lv_count,snap_count,vg_free_count"],
]


def _attach_read_only(images: list[Path]) -> list[str]:
    """Reports must not write: the template images are attached read-only and shared by every case."""
    devices: list[str] = []
    try:
        for image in images:
            devices.append(subprocess.run(["losetup", "-r", "-f", "--show", str(image)], capture_output=True,
                                          text=True, check=True).stdout.strip())
    except subprocess.CalledProcessError:
        detach(devices)
        raise
    return devices


@pytest.fixture(scope="module")
def attached(templates: Callable[[Fixture], list[Path]]) -> Iterator[Callable[[Fixture], str]]:
    """A factory: the fixture's restored PVs on read-only loop devices, as a --devices list."""
    devices: dict[str, list[str]] = {}

    def get(fixture: Fixture) -> str:
        if fixture.name not in devices:
            devices[fixture.name] = _attach_read_only(templates(fixture))
        return ",".join(devices[fixture.name])

    yield get
    for found in devices.values():
        detach(found)


def _case_id(words: list[str]) -> str:
    return " ".join(words).replace(",", "+")


def cases() -> Iterator[object]:
    """Every command on FIXTURES_PER_COMMAND fixtures, every fixture on some commands, drawn anew each run."""
    for words, fixture in sorted(cover(COMMANDS, FIXTURES, FIXTURES_PER_COMMAND, "type reports"),
                                 key=lambda case: FIXTURES.index(case[1])):
        yield pytest.param(fixture, words, id=f"{fixture.name}-{_case_id(words)}")


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,words", list(cases()))
def test_report_matches_lvm2(fixture: Fixture, words: list[str], attached: Callable[[Fixture], str],
                             tmp_path: Path) -> None:
    devices = attached(fixture)
    names = [] if words[0] == "pvs" else [fixture.vg]
    theirs = lvm(*words, "--devices", devices, *names)
    assert not lvm2_problems(theirs), theirs.stderr
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path / "state"), "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    ours = subprocess.run([sys.executable, "-m", "lvcrypt", *words, "--devices", devices, *names],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert ours.stderr == ""
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (
        f"lvm {' '.join(words)}:\n{theirs.stdout}\nlvcrypt:\n{ours.stdout}")


def test_every_fixture_shows_layered_types() -> None:
    """The comparison means something only if the fixtures hold the types lvm2 marks specially."""
    types = {str(segment.get("type", "")).split("+")[0] for fixture in FIXTURES
             for lv in fixture.layout.lvs for segment in fixture.layout.segments(lv)}
    assert {"thin-pool", "thin", "snapshot", "raid1", "raid5", "raid10", "mirror", "cache", "cache-pool",
            "writecache", "integrity"} <= types


NAMED = [("thin", ["thin/pool_tdata", "thin/thin1"]), ("snap", ["snap/msnap"]), ("mirror", ["mirror/mdisk_mlog"]),
         ("snap", ["snap/snapshot0"]), ("cache", ["cache/nosuchlv"])]


@pytest.mark.parametrize("name,lvs", NAMED, ids=[" ".join(lvs) for _, lvs in NAMED])
def test_named_lvs_match_lvm2(name: str, lvs: list[str], attached: Callable[[Fixture], str], tmp_path: Path) -> None:
    """A hidden LV named on the command line is listed without -a; lvm2's `snapshotN` LVs and
    LVs that do not exist are not found (exit 5, one `lvcrypt:` line, nothing on stdout)."""
    devices = attached(next(fixture for fixture in FIXTURES if fixture.name == name))
    theirs = lvm("lvs", "--devices", devices, *lvs)
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path / "state"), "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    ours = subprocess.run([sys.executable, "-m", "lvcrypt", "lvs", "--devices", devices, *lvs],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    if theirs.returncode:
        assert ours.stderr == f'lvcrypt: Failed to find logical volume "{lvs[0]}"\n'
        assert f'Failed to find logical volume "{lvs[0]}"' in theirs.stderr
