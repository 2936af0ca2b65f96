"""pvresize against lvm2: each step runs on twins, lvcrypt on one PV and lvm2 on the other (both made by
lvm2, their image files grown alike), and the tools must answer alike and leave the same PV behind:
lvm2's report of both, the PV's lines in the metadata lvm2 backs up (dev_size, pe_count), and the
PV header on disk (which lvm2 rewrites only for an orphan PV).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.store.disk import Disk
from lvcrypt.store.physical import read_pv
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle
MIB = 1 << 20
FIELDS = "pv_size,dev_size,pe_start,pv_pe_count,pv_pe_alloc_count,pv_free,vg_seqno,vg_extent_count,vg_free_count"


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    return Pair(loop_devices(2, 64), tmp_path)


def _grow(pair: Pair, size_mib: int) -> None:
    """The twins' image files made `size_mib` long, and their loop devices told (losetup -c)."""
    for number, device in enumerate(pair.devices):
        os.truncate(pair.tmp / f"pv{number}.img", size_mib * MIB)
        subprocess.run(["losetup", "-c", device], check=True)


def _lines(text: str, device: str) -> list[str]:
    """A tool's lines, its device called PV; lvcrypt's prefixes and lvm2's WARNING: alike."""
    return [re.sub(r"^(lvcrypt: )?(warning: |WARNING: )?", "", line.strip()).replace(device, "PV")
            for line in text.splitlines() if line.strip()]


def _step(pair: Pair, *options: str) -> int:
    """`pvresize OPTIONS PV` on each twin: the same status, stdout, and lvm2's words on stderr (lvm2 also
    prints its question when nobody can answer it: lvcrypt does not ask then)."""
    ours, theirs = pair.devices
    before = digests([ours])
    mine = pair.lvc("pvresize", *options, ours, check=False)
    lvm2 = pair.lvm("pvresize", *options, theirs, check=False)
    assert mine.returncode == lvm2.returncode, (options, mine.stderr, lvm2.stderr)
    assert _lines(mine.stdout, ours) == _lines(lvm2.stdout, theirs), (options, mine.stdout, lvm2.stdout)
    assert set(_lines(mine.stderr, ours)) <= set(_lines(lvm2.stderr, theirs)), (options, mine.stderr, lvm2.stderr)
    if mine.returncode:
        assert digests([ours]) == before, options
    return mine.returncode


def _pv_lines(pair: Pair, vg: str) -> list[str]:
    path = pair.tmp / f"{vg}.vg"
    pair.lvm("vgcfgbackup", "-f", str(path), vg)
    text = path.read_text()
    return re.findall(r"\n\s*(seqno|dev_size|pe_start|pe_count) = ([0-9]+)", text)


def _header(device: str) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]], int, int]:
    """The PV header's fields but the uuid."""
    with Disk(device) as disk:
        pv = read_pv(disk)
    assert pv is not None
    header = pv.header
    return (header.device_size, [(area.offset, area.size) for area in header.data_areas],
            [(area.offset, area.size) for area in header.metadata_areas], header.ext_version, header.ext_flags)


def _assert_twins(pair: Pair, vgs: tuple[str, str] | None) -> None:
    ours, theirs = pair.devices
    rows = {row.pop("pv_name"): row for row in pair.report("lvm2", "pvs", "pv_name," + FIELDS)}
    assert rows[ours] == rows[theirs]
    assert _header(ours) == _header(theirs)
    if vgs:
        assert _pv_lines(pair, vgs[0]) == _pv_lines(pair, vgs[1])
        for vg in vgs:
            pair.assert_lvm2_clean(vg)


def test_pvresize_of_a_vg_pv_as_lvm2(pair: Pair) -> None:
    """Grown, shrunk, refused (extents allocated, past the end or too many; below lvm2's minimum or one
    extent; a question nobody answers) and pretended larger than the device: lvm2's extent counts, its
    dev_size (the size less pe_start), a new seqno each time, and the PV header left as it was."""
    ours, theirs = pair.devices
    for vg, device in (("vgo", ours), ("vgt", theirs)):
        pair.lvm("vgcreate", vg, device)
        for name in ("first", "second"):
            pair.lvm("lvcreate", "-L", "8m", "-n", name, vg)
        pair.lvm("lvremove", "-y", f"{vg}/first")
    twins = ("vgo", "vgt")
    assert _step(pair) == 0  # the same size: lvm2 still writes the VG, with its dev_size
    _assert_twins(pair, twins)
    _grow(pair, 100)
    assert _step(pair) == 0
    _assert_twins(pair, twins)
    assert [row["pv_pe_count"] for row in pair.report("lvm2", "pvs", "pv_pe_count")] == ["24", "24"]
    for size in ("12m", "10m", "3m", "1m", "1500k"):
        assert _step(pair, "-y", "--setphysicalvolumesize", size) == 5, size
    assert _step(pair, "--setphysicalvolumesize", "30m") == 5  # no terminal to answer lvm2's question
    assert _step(pair, "-y", "--setphysicalvolumesize", "30m") == 0
    _assert_twins(pair, twins)
    assert _step(pair, "-y", "--setphysicalvolumesize", "150m") == 0  # past the device's end: lvm2 warns
    assert _step(pair) == 0
    _assert_twins(pair, twins)


def test_extents_up_to_the_device_end_after_lvm2s_pvresize(pair: Pair) -> None:
    """1 MiB extents filling a grown device: lvm2's pvresize records dev_size less pe_start, so the
    extents end past dev_size. lvcrypt reads what lvm2 wrote (it refused the whole VG) and writes the
    same for its own twin."""
    ours, theirs = pair.devices
    for number, (vg, device) in enumerate((("vgo", ours), ("vgt", theirs))):
        os.truncate(pair.tmp / f"pv{number}.img", 33 * MIB)
        subprocess.run(["losetup", "-c", device], check=True)
        pair.lvm("vgcreate", "-s", "1m", vg, device)
    _grow(pair, 41)
    assert _step(pair) == 0
    _assert_twins(pair, ("vgo", "vgt"))
    assert [row["pv_pe_count"] for row in pair.report("lvm2", "pvs", "pv_pe_count")] == ["40", "40"]
    assert pair.report("lvcrypt", "vgs", "vg_name,vg_extent_count") == \
        [{"vg_name": "vgo", "vg_extent_count": "40"}, {"vg_name": "vgt", "vg_extent_count": "40"}]


def test_pvresize_of_an_orphan_as_lvm2(pair: Pair) -> None:
    """A PV of no VG: its PV header takes the new size, as lvm2 writes it."""
    pair.lvm("pvcreate", *pair.devices)
    _grow(pair, 80)
    assert _step(pair) == 0
    _assert_twins(pair, None)
    assert _header(pair.devices[0])[0] == 80 * MIB
    assert _step(pair, "-y", "--setphysicalvolumesize", "20m") == 0
    _assert_twins(pair, None)
    assert _step(pair, "-y", "--setphysicalvolumesize", "1m") == 5
    _assert_twins(pair, None)


def test_pvresize_refusals_change_nothing(pair: Pair) -> None:
    """A PV with a metadata area at its end (lvcrypt does not move it), a device that is no PV (lvm2's
    words and status), a signed or missing size (exit 3): nothing written."""
    ours, blank = pair.devices
    pair.lvm("pvcreate", "--pvmetadatacopies", "2", ours)
    pair.lvm("vgcreate", "vg2", ours)
    _grow(pair, 80)
    before = digests(pair.devices)
    refused = pair.lvc("pvresize", ours, check=False)
    assert refused.returncode == 5 and "second metadata area" in refused.stderr, refused.stderr
    assert "0 physical volume(s) resized or updated / 1 physical volume(s) not resized" in refused.stdout
    mine, lvm2 = pair.lvc("pvresize", blank, check=False), pair.lvm("pvresize", blank, check=False)
    assert (mine.returncode, _lines(mine.stdout, blank), _lines(mine.stderr, blank)) == \
        (lvm2.returncode, _lines(lvm2.stdout, blank), _lines(lvm2.stderr, blank)) == \
        (5, ["0 physical volume(s) resized or updated / 0 physical volume(s) not resized"],
         ['Failed to find physical volume "PV".'])
    for argv in (("--setphysicalvolumesize", "-5m", ours), ("--setphysicalvolumesize", "5q", ours), ()):
        result = pair.lvc("pvresize", *argv, check=False)
        assert result.returncode == 3 and "Traceback" not in result.stderr, argv
        assert pair.lvm("pvresize", *argv, check=False).returncode == 3, argv
    assert digests(pair.devices) == before
    pair.assert_lvm2_clean("vg2")
