"""issue 15: `pvdisplay`, `vgdisplay`, `lvdisplay`, `pvscan`, `vgscan`, `lvscan` print what lvm2 prints.

Two kinds of VG, both read by both tools on the same devices: every lvm2-made fixture of
tests/data/lvm2_types (thin, snapshots, raid, mirror, cache, integrity, history, linear and
striped; restored by lvm2 and attached read-only, as the report comparison does), and a VG
lvm2 makes here with linear, striped and multi-segment LVs plus a PV in no VG.  Standard
output and exit status must be byte-equal (stderr differs: lvm2 also complains about the
missing device-mapper).  Encrypted LVs are compared in tests/compat/test_displays_crypt.py.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import ROOT, lvm
from sampling import cover
from test_lvm2_types_matrix import FIXTURES, Fixture, detach, lvm2_problems, templates  # noqa: F401
from test_reports_lvm2_types import _attach_read_only

pytestmark = pytest.mark.slow
FIXTURES_PER_COMMAND = 3  # of the lvm2_types fixtures, per run (tests/sampling.py; LVCRYPT_TEST_FULL=1: all)

COMMANDS: list[list[str]] = [
    ["pvdisplay"], ["pvdisplay", "-m"], ["pvdisplay", "-c"], ["pvdisplay", "-s"],
    ["vgdisplay"], ["vgdisplay", "-v"], ["vgdisplay", "-c"], ["vgdisplay", "-s"],
    ["lvdisplay"], ["lvdisplay", "-a"], ["lvdisplay", "-a", "-m"], ["lvdisplay", "-a", "-c"],
    ["pvscan"], ["pvscan", "-u"], ["pvscan", "-s"], ["vgscan"], ["lvscan"], ["lvscan", "-a"],
    ["vgdisplay", "--units", "k"], ["lvdisplay", "--units", "b"], ["pvdisplay", "--units", "H"],
    ["lvdisplay", "-C"], ["vgdisplay", "-C"], ["pvdisplay", "-C"],
]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "LVCRYPT_STATE_DIR": str(tmp_path / "state"),
            "LVCRYPT_RUN_DIR": str(tmp_path / "run")}


def both(words: list[str], devices: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                   subprocess.CompletedProcess[str]]:
    theirs = lvm(*words, "--devices", devices, check=False)
    ours = subprocess.run([sys.executable, "-m", "lvcrypt", *words, "--devices", devices], capture_output=True,
                          text=True, env=_env(tmp_path), cwd=ROOT, timeout=120)
    return theirs, ours


def assert_same(words: list[str], devices: str, tmp_path: Path) -> None:
    theirs, ours = both(words, devices, tmp_path)
    problems = [line for line in lvm2_problems(theirs) if not line.startswith("WARNING: only considering")]
    assert theirs.returncode or not problems, theirs.stderr
    diff = "".join(difflib.unified_diff(theirs.stdout.splitlines(True), ours.stdout.splitlines(True), "lvm2",
                                        "lvcrypt"))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (
        f"{' '.join(words)} (exit {theirs.returncode} / {ours.returncode}, {ours.stderr}):\n{diff}")


@pytest.fixture(scope="module")
def attached(templates: Callable[[Fixture], list[Path]]) -> Iterator[Callable[[Fixture], str]]:
    devices: dict[str, list[str]] = {}

    def get(fixture: Fixture) -> str:
        if fixture.name not in devices:
            devices[fixture.name] = _attach_read_only(templates(fixture))
        return ",".join(devices[fixture.name])

    yield get
    for found in devices.values():
        detach(found)


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,words", [pytest.param(fixture, words, id=f"{fixture.name}-{' '.join(words)}")
                                           for words, fixture in sorted(
                                               cover(COMMANDS, FIXTURES, FIXTURES_PER_COMMAND, "displays"),
                                               key=lambda case: FIXTURES.index(case[1]))])
def test_display_matches_lvm2_on_lvm2_types(fixture: Fixture, words: list[str],
                                            attached: Callable[[Fixture], str], tmp_path: Path) -> None:
    assert_same(words, attached(fixture), tmp_path)


@pytest.fixture
def made_by_lvm2(loop_devices: Callable[..., list[str]], lvm2: None) -> str:
    """vg0 over two PVs (linear, striped, a two-segment LV spanning both) and a third PV in no VG."""
    pvs = loop_devices(3, 64)
    devices = ",".join(pvs)
    lvm("pvcreate", "--devices", devices, *pvs)
    lvm("vgcreate", "--devices", devices, "vg0", *pvs[:2])
    create = ["lvcreate", "--devices", devices, "--driverloaded", "n", "-an", "-Zn"]
    lvm(*create, "-n", "lin", "-L", "8M", "vg0")
    lvm(*create, "-n", "str", "-i2", "-I64", "-L", "16M", "vg0")
    lvm(*create, "-n", "two", "-L", "8M", "vg0", pvs[1])
    lvm("lvextend", "--devices", devices, "--driverloaded", "n", "-L", "+4M", "vg0/lin", pvs[1])
    return devices


EXTRA: list[list[str]] = [
    ["lvdisplay", "vg0/lin"], ["lvdisplay", "-m", "vg0/str", "vg0/lin"], ["lvdisplay", "vg0"],
    ["pvdisplay", "-m"], ["pvscan", "-n"], ["vgdisplay", "vg0"], ["vgdisplay", "-c", "vg0"],
    ["lvdisplay", "vg0/nosuch"], ["vgdisplay", "nosuch"], ["lvdisplay", "-c", "-m"], ["pvdisplay", "-c", "-m"],
    ["vgdisplay", "-s", "--units", "R"], ["vgdisplay", "--units", "s"], ["pvscan", "-e"],
    ["pvscan", "--units", "b"], ["lvscan", "--units", "b"], ["vgdisplay", "-c", "-s"], ["pvdisplay", "-C", "-m"],
    # --units with a number (issue 15): a custom unit (Un), a fraction keeping its letter, refused ones
    ["vgdisplay", "--units", "3m"], ["lvdisplay", "-m", "--units", "1.5k"], ["pvdisplay", "--units", "7s"],
    ["vgdisplay", "-s", "--units", "2.5M"], ["vgdisplay", "--units", "0m"], ["lvdisplay", "--units", "3mm"],
    # lvm2's options of the commands that only read: -y, -t, -q taken (-qq silences the scans' lines
    # and pvdisplay's new-PV line), -f refused
    ["pvscan", "-qq"], ["vgscan", "-t", "-y"], ["pvdisplay", "-qq", "-c"], ["lvscan", "-f"],
]


@pytest.mark.parametrize("words", EXTRA + COMMANDS, ids=[" ".join(words) for words in EXTRA + COMMANDS])
def test_display_matches_lvm2_on_a_vg_lvm2_made(made_by_lvm2: str, words: list[str], tmp_path: Path) -> None:
    assert_same(words, made_by_lvm2, tmp_path)


def test_named_pv_and_missing_objects_as_lvm2(made_by_lvm2: str, tmp_path: Path) -> None:
    """Named PVs in lvm2's order; a missing VG, LV or device exits 5 with one `lvcrypt:` line."""
    first, _, orphan = made_by_lvm2.split(",")
    assert_same(["pvdisplay", orphan, first], made_by_lvm2, tmp_path)
    for words, message in ((["lvdisplay", "vg0/nosuch"], 'Failed to find logical volume "vg0/nosuch"'),
                           (["pvdisplay", "/dev/nosuch"], "Cannot use /dev/nosuch: device not found")):
        theirs, ours = both(words, made_by_lvm2, tmp_path)
        assert theirs.returncode == ours.returncode == 5 and ours.stdout == ""
        assert message in theirs.stderr and ours.stderr == f"lvcrypt: {message}\n"


def test_exported_vg_as_lvm2(loop_devices: Callable[..., list[str]], lvm2: None, tmp_path: Path) -> None:
    """An exported VG: "(exported)" and "is exported" in pvdisplay, "is in exported VG" in pvscan,
    "Found exported volume group" in vgscan, status bit 2 in `-c`; lvs-type commands skip it."""
    (pv,) = loop_devices(1, 64)
    lvm("pvcreate", "--devices", pv, pv)
    lvm("vgcreate", "--devices", pv, "vgx", pv)
    lvm("lvcreate", "--devices", pv, "--driverloaded", "n", "-an", "-Zn", "-n", "a", "-L", "8M", "vgx")
    lvm("vgexport", "--devices", pv, "vgx")
    for words in (["pvdisplay"], ["pvdisplay", "-c"], ["pvscan"], ["pvscan", "-e"], ["vgscan"], ["vgdisplay"],
                  ["vgdisplay", "-c"], ["lvdisplay"], ["lvscan"]):
        assert_same(words, pv, tmp_path)
