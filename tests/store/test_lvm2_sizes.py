"""Sizes given as N%FREE, N%VG, N%PVS (with and without a PV list) and stripe rounding, against lvm2.

Twin VGs on loop devices of the same size: lvm2 runs each command on one, lvcrypt on the
other, and lvm2 reads both, so the LVs must come out with the same segments on the same
(corresponding) PVs.  The in-process tests pin the arithmetic the oracle confirmed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.lvops import add_pv, create_lv, new_vg
from lvcrypt.lvsize import SizeRequest, create_extents, percent_base, resize_extents
from store_helpers import Pair

MIB = 1 << 20


@pytest.fixture
def twins(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    return Pair(loop_devices(6, 64), tmp_path)


def _sizes(pair: Pair, vg: str, pvs: list[str]) -> tuple[list[str], list[int]]:
    """As lvm2 reads the VG: each LV's size in extents and stripe count, each PV's free extents.

    Which free run the allocator takes first is not the size arithmetic's business and is not
    compared; the PVs the test names are.
    """
    extents = int(pair.lvm("vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size",
                           vg).stdout)
    lvs = pair.lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", ";",
                   "-o", "lv_name,lv_size,stripes", "-O", "lv_name,seg_start_pe", vg).stdout.split()
    sizes = sorted(dict.fromkeys(f"{line.split(';')[0]}:{int(line.split(';')[1]) // extents}"
                                 for line in lvs))
    stripes = sorted(line.split(";")[0] + ":" + line.split(";")[2] for line in lvs)
    free = []
    for path in pvs:
        count, used = pair.lvm("pvs", "--noheadings", "-o", "pv_pe_count,pv_pe_alloc_count", path).stdout.split()
        free.append(int(count) - int(used))
    return sizes + stripes, free


def test_percent_sizes_match_lvm2(twins: Pair) -> None:
    """Each command runs on both VGs; after each, lvm2 sees the same LVs in both."""
    theirs, ours = twins.devices[:3], twins.devices[3:]
    twins.lvm("vgcreate", "-s", "1m", "vgm", *theirs)
    twins.lvc("vgcreate", "-s", "1m", "vgc", *ours)
    steps: list[tuple[str, ...]] = [
        ("lvcreate", "-l", "20", "-n", "fill0", "VG", "PV0"),
        ("lvcreate", "-l", "30", "-n", "fill1", "VG", "PV1"),
        # An odd stripe share rounds up when the VG has the space; extending keeps whole stripes.
        ("lvcreate", "-i", "2", "-l", "21%FREE", "-n", "str", "VG", "PV0", "PV2"),
        ("lvextend", "-l", "+3%VG", "VG/str", "PV0", "PV2"),
        # %PVS with a PV list: a share of that PV's free extents, not of its size.
        ("lvcreate", "-l", "50%PVS", "-n", "pvs", "VG", "PV1"),
        # %FREE with a PV list: a share of the VG's free extents, as much as fits on the PV.
        ("lvcreate", "-l", "50%FREE", "-n", "free", "VG", "PV0"),
        # %PVS with no PV named: a share of the VG's size.
        ("lvcreate", "-l", "9%PVS", "-n", "all", "VG"),
        ("lvextend", "-l", "+50%PVS", "VG/pvs", "PV2"),
        ("lvextend", "-l", "+10%FREE", "VG/fill1"),
        ("lvreduce", "-y", "-l", "10%VG", "VG/fill1"),
        ("lvreduce", "-y", "-l", "-5%VG", "VG/all"),
        # An absolute %VG beyond what is free is cut to the free space.
        ("lvextend", "-l", "100%VG", "VG/fill0"),
    ]
    for step in steps:
        for run, vg, pvs in ((twins.lvm, "vgm", theirs), (twins.lvc, "vgc", ours)):
            args = [vg if arg == "VG" else arg.replace("VG/", f"{vg}/") for arg in step]
            args = [pvs[int(arg[2:])] if arg.startswith("PV") else arg for arg in args]
            run(*args)
        ours_now, theirs_now = _sizes(twins, "vgc", ours), _sizes(twins, "vgm", theirs)
        assert ours_now == theirs_now, (step, ours_now, theirs_now)
    twins.assert_lvm2_clean("vgc")


def _vg(*pe_counts: int) -> "object":
    vg = new_vg("vg", 8192)
    for index, count in enumerate(pe_counts):
        add_pv(vg, f"Uuid{index:02d}-aaaa-bbbb-cccc-dddd-eeee-ffffff", f"/dev/fake{index}", (count + 1) * 4 * MIB,
               MIB, (count + 1) * 4 * MIB)
    return vg


def test_percent_bases_are_lvm2s() -> None:
    """%FREE counts all free extents whatever PVs are named; %PVS the named PVs' free extents."""
    vg = _vg(100, 100)
    create_lv(vg, "used", 60, pv_keys=["pv0"])
    assert percent_base(vg, "FREE", ["pv0"]) == 140
    assert percent_base(vg, "PVS", ["pv0"]) == 40
    assert percent_base(vg, "PVS", None) == 200
    assert percent_base(vg, "VG", ["pv0"]) == 200
    sizing = create_extents(SizeRequest("", extents=50, percent_of="PVS"), vg, 1, ["pv0"])
    assert (sizing.extents, sizing.approximate) == (20, True)
    # 100% of the VG's 140 free extents, limited to pv0: what pv0 has.
    assert create_extents(SizeRequest("", extents=100, percent_of="FREE"), vg, 1, ["pv0"]).extents == 40


def test_stripe_rounding_goes_up_unless_the_vg_lacks_space() -> None:
    vg = _vg(100, 100)
    assert create_extents(SizeRequest("", extents=5, percent_of="FREE"), vg, 2).extents == 10
    create_lv(vg, "used", 199)
    # 1 extent free: 100% of it cannot be rounded up to 2 stripes, so it goes down to nothing.
    assert create_extents(SizeRequest("", extents=100, percent_of="FREE"), vg, 2).extents == 0
    assert create_extents(SizeRequest("", extents=3), vg, 2).extents == 4


def test_resize_rounds_percentages_up_and_relative_reductions_down() -> None:
    vg = _vg(100)
    lv = create_lv(vg, "lv", 10)
    assert resize_extents(SizeRequest("+", extents=1, percent_of="VG"), vg, lv.extent_count).extents == 11
    assert resize_extents(SizeRequest("", extents=15, percent_of="VG"), vg, lv.extent_count).extents == 15
    assert resize_extents(SizeRequest("-", bytes=6 * MIB), vg, lv.extent_count).extents == 9
    assert resize_extents(SizeRequest("+", bytes=6 * MIB), vg, lv.extent_count).extents == 12
