"""Both directions between lvcrypt and lvm2 2.03 on loop devices: each reads what the other wrote,
field by field, and each can go on changing the other's VGs.  lvm2 runs with --devices and
--driverloaded n (no device-mapper here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.store.commit import scan
from lvcrypt.store.physical import read_pv
from lvcrypt.store.disk import Disk
from conftest import ROOT
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    return Pair(loop_devices(3, 64), tmp_path)


def test_lvcrypt_reads_what_lvm2_wrote(pair: Pair) -> None:
    """Non-default PV layouts, two mdas on a PV, linear/striped/extended LVs and holes left by removals."""
    a, b, c = pair.devices
    pair.lvm("pvcreate", "--metadatasize", "2m", "--dataalignment", "2m", a)
    pair.lvm("pvcreate", "--pvmetadatacopies", "2", b)
    pair.lvm("pvcreate", "--metadatasize", "128k", "--dataalignment", "64k", c)
    pair.lvm("vgcreate", "-s", "2m", "vg1", a, b, c)
    pair.lvm("lvcreate", "-L", "8M", "-n", "lin", "vg1")
    pair.lvm("lvcreate", "-i", "3", "-I", "64k", "-L", "24M", "-n", "str", "vg1")
    pair.lvm("lvcreate", "-L", "12M", "-n", "gone", "vg1")
    pair.lvm("lvcreate", "-i", "2", "-L", "8M", "-n", "two", "vg1", b, c)
    pair.lvm("lvextend", "-L", "+10M", "vg1/lin")
    pair.lvm("lvextend", "-l", "+3", "vg1/str")
    pair.lvm("lvremove", "-y", "vg1/gone")
    pair.lvm("lvcreate", "-L", "4M", "-n", "small", "vg1")
    pair.assert_agree()

    # The binary layer sees the layouts lvm2 chose.
    with Disk(a) as disk:
        pv_a = read_pv(disk)
    assert pv_a is not None and pv_a.header.pe_start == 4 << 20 and pv_a.header.in_use
    with Disk(b) as disk:
        pv_b = read_pv(disk)
    assert pv_b is not None and len(pv_b.mdas) == 2
    assert {mda.copy.seqno for mda in pv_b.mdas if mda.copy} == {pv_a.newest_copy().seqno}

    # Sizes as people read them, in every unit: the same strings as lvm2 prints.
    for units in ("h", "H", "b", "s", "k", "m", "g"):
        for command, fields in (("lvs", "lv_name,lv_size,seg_size,stripe_size"), ("vgs", "vg_name,vg_size,vg_free"),
                                ("pvs", "pv_name,pv_size,pv_free,pe_start")):
            args = (command, "--noheadings", "-o", fields, "--units", units, "--separator", ":")
            assert pair.lvc(*args).stdout.split() == pair.lvm(*args).stdout.split(), (command, units)
    # And the default tables carry the same cells.
    for command in ("lvs", "vgs", "pvs"):
        assert pair.lvc(command).stdout.split() == pair.lvm(command).stdout.split(), command


def test_lvm2_reads_and_changes_what_lvcrypt_wrote(pair: Pair, tmp_path: Path) -> None:
    a, b, c = pair.devices
    uuid = "AbCdEf-0123-4567-89ab-cdef-ghij-KLmnop"
    pair.lvc("pvcreate", "--uuid", uuid, "--norestorefile", "--metadatasize", "2m", "--dataalignment", "2m", a)
    pair.lvc("pvcreate", "--pvmetadatacopies", "2", b)
    pair.lvc("vgcreate", "-s", "2m", "vg2", a, b)
    pair.lvc("lvcreate", "-L", "10M", "-n", "lin", "vg2")
    pair.lvc("lvcreate", "-i", "2", "-I", "128k", "-l", "8", "-n", "str", "vg2")
    pair.lvc("lvcreate", "-l", "3", "-n", "hole", "vg2")
    pair.lvc("lvextend", "-L", "+6M", "vg2/lin")
    pair.lvc("lvremove", "vg2/hole")
    pair.lvc("lvreduce", "-y", "-l", "-1", "vg2/lin")
    pair.lvc("vgextend", "vg2", c)
    pair.lvc("lvcreate", "-l", "100%FREE", "-n", "rest", "vg2", c)
    pair.lvc("lvreduce", "-y", "-L", "8M", "vg2/rest")
    pair.lvc("lvrename", "vg2", "rest", "tail")
    pair.assert_agree()
    pair.assert_lvm2_clean("vg2")
    assert pair.lvm("pvs", "--noheadings", "-o", "pv_uuid", a).stdout.strip() == uuid

    # lvm2 goes on changing the VG; lvcrypt reads lvm2's version.
    pair.lvm("lvcreate", "-L", "6M", "-n", "bylvm", "vg2")
    pair.lvm("lvextend", "-L", "+4M", "vg2/str")
    pair.lvm("lvextend", "-L", "+2M", "vg2/lin")
    pair.assert_agree()
    pair.lvc("lvextend", "-l", "+1", "vg2/bylvm")
    pair.assert_agree()
    pair.assert_lvm2_clean("vg2")

    # Backups go both ways: lvm2 restores lvcrypt's file and lvcrypt restores lvm2's.
    ours = tmp_path / "ours.vg"
    pair.lvc("vgcfgbackup", "-f", str(ours), "vg2")
    pair.lvc("lvremove", "vg2/bylvm")
    pair.lvm("vgcfgrestore", "-f", str(ours), "vg2")
    assert "bylvm" in pair.lvc("lvs", "--noheadings", "-o", "lv_name", "vg2").stdout
    theirs = tmp_path / "theirs.vg"
    pair.lvm("vgcfgbackup", "-f", str(theirs), "vg2")
    pair.lvm("lvremove", "-y", "vg2/bylvm")
    pair.lvc("vgcfgrestore", "-f", str(theirs), "vg2")
    assert "bylvm" in pair.lvm("lvs", "--noheadings", "-o", "lv_name", "vg2").stdout
    pair.assert_agree()

    # Membership changes: vgreduce, vgrename, vgremove, pvremove are seen by lvm2.
    pair.lvc("lvremove", "vg2/tail")
    pair.lvc("vgreduce", "vg2", c)
    pair.lvc("vgrename", "vg2", "vg3")
    pair.assert_agree()
    pair.assert_lvm2_clean("vg3")
    pair.lvc("vgremove", "-f", "vg3")
    pvs = pair.report("lvm2", "pvs", "pv_name,vg_name")
    assert pvs == [{"pv_name": device, "vg_name": ""} for device in sorted(pair.devices)]
    pair.lvc("pvremove", a)
    assert a not in pair.lvm("pvs", "--noheadings", "-o", "pv_name").stdout
    assert not scan([a]).pvs


@pytest.mark.slow
def test_metadata_ring_wraps_around_and_both_tools_read_it(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of commits on a 32 KiB ring (lvm2's minimum) wrap it many times, from both tools."""
    from lvcrypt.lvops import create_lv, remove_lv
    from lvcrypt.store.transaction import VgTransaction

    a, b, _ = pair.devices
    pair.lvc("pvcreate", "--metadatasize", "32k", "--dataalignment", "64k", a, b)
    pair.lvc("vgcreate", "vgw", a, b)
    for index in range(6):
        pair.lvc("lvcreate", "-l", "1", "-n", f"base{index}", "vgw")
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    wrapped = 0
    for round_ in range(300):
        with VgTransaction(pair.device_list, "vgw") as tx:
            if round_ % 2 == 0:
                create_lv(tx.vg, "churn", 1 + round_ % 3)
            else:
                remove_lv(tx.vg, "churn")
            tx.commit()
        if round_ % 50 == 49:
            pair.assert_agree("vgw")
        with Disk(a) as disk:
            pv = read_pv(disk)
        assert pv is not None
        header = pv.mdas[0].header
        assert header is not None
        if header.committed.offset + header.committed.size > header.size:
            wrapped += 1
            if wrapped == 1:
                pair.assert_agree("vgw")
                pair.assert_lvm2_clean("vgw")
    assert wrapped >= 5, "the text never straddled the end of the ring"
    # lvm2 keeps writing into the same ring; lvcrypt follows it.
    for index in range(12):
        pair.lvm("lvcreate", "-l", "1", "-n", f"lvm{index}", "vgw")
    pair.assert_agree("vgw")
    pair.assert_lvm2_clean("vgw")


def test_ignored_metadata_areas_stay_ignored(pair: Pair) -> None:
    """lvm2's --metadataignore: lvcrypt commits skip those areas and lvm2 still counts them as unused."""
    a, b, _ = pair.devices
    pair.lvm("pvcreate", a)
    pair.lvm("pvcreate", "--pvmetadatacopies", "2", "--metadataignore", "y", b)
    pair.lvm("vgcreate", "vgi", a, b)
    fields = "pv_name,pv_mda_count,pv_mda_used_count"
    before = pair.report("lvm2", "pvs", fields)
    pair.lvc("lvcreate", "-l", "2", "-n", "one", "vgi")
    pair.lvc("lvextend", "-l", "+1", "vgi/one")
    assert pair.report("lvm2", "pvs", fields) == before
    assert [mda.copy for mda in scan([b]).pvs[b].mdas] == [None, None]
    pair.assert_agree("vgi")
    pair.assert_lvm2_clean("vgi")


def test_a_read_only_lv_lvm2_made_is_read_not_written(pair: Pair) -> None:
    """lvm2 maps an LV without write permission read-only; lvcrypt's userspace writes refuse it."""
    pair.lvm("vgcreate", "vg0", *pair.devices)
    pair.lvm("lvcreate", "-pr", "-L", "4m", "-n", "ro", "vg0")
    before = digests(pair.devices)
    refused = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, "vg0/ro"],
                             input=b"\x5a" * 4096, capture_output=True, env=pair.env, cwd=ROOT, text=False)
    assert refused.returncode == 5 and refused.stderr.decode().strip() == (
        "lvcrypt: cannot write to vg0/ro: the logical volume is read-only"), refused.stderr
    assert digests(pair.devices) == before
    assert pair.lvc("read", "vg0/ro", "--length", "4096").returncode == 0
    assert pair.lvc("lvs", "--noheadings", "-o", "lv_attr", "vg0/ro").stdout.split()[0].startswith("-r")


def test_a_vg_lvm2_made_not_resizeable_is_neither_extended_nor_reduced(pair: Pair) -> None:
    """`vgchange -xn` freezes the VG's PV list: both tools refuse vgextend and vgreduce, lvcrypt before it
    writes a label (lvm2 labels the new device first)."""
    a, b, c = pair.devices
    pair.lvm("vgcreate", "vg0", a, b)
    pair.lvm("vgchange", "-xn", "vg0")
    for argv in (("vgextend", "vg0", c), ("vgreduce", "vg0", b), ("vgreduce", "-a", "vg0")):
        before = digests(pair.devices)
        ours = pair.lvc(*argv, check=False)
        assert digests(pair.devices) == before
        theirs = pair.lvm(*argv, check=False)
        assert ours.returncode == theirs.returncode == 5, (argv, ours.stderr, theirs.stderr)
        assert ours.stderr.strip().removeprefix("lvcrypt: ") == theirs.stderr.strip().splitlines()[-1].strip()
    assert pair.report("lvcrypt", "vgs", "pv_count", "vg0") == pair.report("lvm2", "vgs", "pv_count", "vg0") \
        == [{"pv_count": "2"}]


def test_the_lv_and_pv_limits_of_a_vg_lvm2_made_hold(pair: Pair) -> None:
    """vgcreate -l/-p: lvm2 refuses the LV or PV past the limit (hidden LVs do not count), and so does
    lvcrypt, before it writes anything."""
    a, b, c = pair.devices
    pair.lvm("vgcreate", "-l", "1", "-p", "2", "vg0", a, b)
    pair.lvm("lvcreate", "-L", "4m", "-n", "one", "vg0")
    for argv in (("lvcreate", "-L", "4m", "-n", "two", "vg0"), ("vgextend", "vg0", c)):
        before = digests(pair.devices)
        ours = pair.lvc(*argv, check=False)
        assert digests(pair.devices) == before
        theirs = pair.lvm(*argv, check=False)
        assert ours.returncode == theirs.returncode == 5, (argv, ours.stderr, theirs.stderr)
        line = ours.stderr.strip().removeprefix("lvcrypt: ")
        assert line in [item.strip() for item in theirs.stderr.splitlines()], (line, theirs.stderr)


def test_the_allocation_policy_an_lv_or_vg_records_is_kept(pair: Pair) -> None:
    """lvm2's --alloc recorded in the metadata (LV's own, else the VG's) decides where new extents go:
    a contiguous LV is not extended across a gap, a cling LV stays on its PVs, a contiguous VG's new LV
    is one run; both tools refuse the same requests (lvcrypt before it writes) and accept the same."""
    a, b, _ = pair.devices
    pair.lvm("vgcreate", "vg0", a, b)
    pair.lvm("lvcreate", "--alloc", "contiguous", "-L", "4m", "-n", "c", "vg0", a)
    pair.lvm("lvcreate", "-L", "4m", "-n", "d", "vg0", a)
    pair.lvm("lvcreate", "--alloc", "cling", "-L", "4m", "-n", "k", "vg0", b)
    pair.lvm("lvcreate", "-l", "100%PVS", "-n", "fill", "vg0", b)
    refused = [("lvextend", "-L", "8m", "vg0/c"), ("lvextend", "-L", "8m", "vg0/k")]
    for argv in refused:
        before = digests(pair.devices)
        ours = pair.lvc(*argv, check=False)
        assert digests(pair.devices) == before
        theirs = pair.lvm(*argv, check=False)
        assert ours.returncode == theirs.returncode == 5, (argv, ours.stderr, theirs.stderr)
    ours, theirs = pair.lvc(*refused[0], check=False), pair.lvm(*refused[0], check=False)
    assert ours.stderr.strip().removeprefix("lvcrypt: ") == theirs.stderr.strip().splitlines()[-1].strip() == \
        "Insufficient suitable contiguous allocatable extents for logical volume c: 1 more required"
    pair.lvm("lvremove", "-y", "vg0/fill")
    pair.lvm("vgchange", "--alloc", "contiguous", "vg0")
    pair.lvc("lvextend", "-L", "8m", "vg0/k")  # the cling LV grows on its own PV again
    pair.lvc("lvcreate", "-L", "8m", "-n", "e", "vg0")
    fields = "lv_name,seg_pe_ranges"
    ranges = {row["lv_name"]: row["seg_pe_ranges"] for row in pair.report("lvm2", "lvs", fields, "vg0")}
    assert ranges["k"].count(b) == 1 and a not in ranges["k"]
    assert " " not in ranges["e"].strip()  # one run: the VG's policy
    assert pair.lvm("vgck", "vg0").returncode == 0


def test_lvcreate_records_the_allocation_policy_given_as_lvm2_does(pair: Pair) -> None:
    """`lvcreate --alloc P` keeps P in the LV's metadata (lvm2 extends it by P later), except inherit;
    an lvextend --alloc is for that extension only.  lvm2 reads back what each tool recorded."""
    a, b, _ = pair.devices
    pair.lvm("vgcreate", "vg0", a, b)
    policies = ["cling", "normal", "anywhere", "contiguous", "inherit", "cling_by_tags"]
    for policy in policies:
        pair.lvc("lvcreate", "--alloc", policy, "-L", "4m", "-n", f"c_{policy}", "vg0")
        pair.lvm("lvcreate", "--alloc", policy, "-L", "4m", "-n", f"m_{policy}", "vg0")
    pair.lvc("lvextend", "--alloc", "cling", "-L", "8m", "vg0/c_normal")
    rows = {row["lv_name"]: row["lv_allocation_policy"]
            for row in pair.report("lvm2", "lvs", "lv_name,lv_allocation_policy", "vg0")}
    for policy in policies:
        assert rows[f"c_{policy}"] == rows[f"m_{policy}"], (policy, rows)
    assert rows["c_cling"] == "cling" and rows["c_inherit"] == "inherit" and rows["c_normal"] == "normal"
    assert pair.lvm("vgck", "vg0").returncode == 0
