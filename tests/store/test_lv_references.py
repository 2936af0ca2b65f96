"""LVs that other LVs refer to (issue 12, item 2): lvcrypt refuses to change what lvm2 manages, and keeps
working next to it.

The VG is lvm2's own sample (tests/data/lvm2_thin_raid_integrity.vg: thin pool, thin volume, raid1,
raid1 with integrity images, a pmspare) plus a snapshot, a mirror, an LV of a type nobody knows that
names another LV, and a historical LV naming a plain one.  lvm2 restores it (`vgcfgrestore --force`),
so lvm2 is the oracle that the VG is valid before and after; lvcrypt then restores the same text once
more to put back the historical LV, which lvm2 drops on write but reads and keeps (`vgck` is clean).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from lvcrypt.api import MetadataFile
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.convert import tree_to_vg
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.segtypes import ACTIONS, change_problem, referenced_by, references_of
from lvcrypt.metadata.tree import Section
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text
from lvm2_references_vg import VG, VISIBLE, lv_section, references_vg_text, restore_with_lvm2
from store_helpers import Pair, digests

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]
def model() -> VolumeGroup:
    vg = tree_to_vg(parse_text(references_vg_text()))
    validate(vg)
    return vg


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 200), tmp_path)
    text = restore_with_lvm2(pair)
    pair.lvc("vgcfgrestore", "-f", str(text), VG)  # the historical LV, which lvm2 drops when it writes
    lvm2_reads_cleanly(pair)
    return pair


def lvm2_reads_cleanly(pair: Pair) -> list[str]:
    """`lvm vgck` finds nothing but the unknown type, and `lvm lvs -a` lists every LV; returns the names."""
    check = pair.lvm("vgck", VG)
    noise = ("Unrecognised segment type", "device-mapper", "/dev/mapper/control", "libdevmapper",
             "Failed to check for active")
    assert [line for line in check.stderr.splitlines() if not any(text in line for text in noise)] == [], \
        check.stderr
    backup = pair.tmp / "lvm2-view.vg"
    pair.lvm("vgcfgbackup", "-q", "-f", str(backup), VG)
    assert "historical_logical_volumes" in backup.read_text()
    listed = pair.lvm("lvs", "-a", "--noheadings", "-o", "lv_name", VG).stdout.split()
    return sorted(name.strip("[]") for name in listed)


def lvc_in(pair: Pair, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", *args, "--devices", pair.device_list],
                          input=data, capture_output=True, env=pair.env, cwd=ROOT)


REFUSALS = [
    (("lvrename", VG, "pool", "pool2"), "thin pool used by thin volume thin1"),
    (("lvremove", f"{VG}/pool"), "thin pool used by thin volume thin1"),
    (("lvremove", f"{VG}/thin1"), "it is a thin volume (lvcrypt does not change thin segments; use lvm2)"),
    (("lvrename", f"{VG}/pool_tdata", "data2"), "thin pool data used by thin pool pool"),
    (("lvextend", "-l", "+1", f"{VG}/pool_tmeta"), "thin pool metadata used by thin pool pool"),
    (("lvextend", "-l", "+1", f"{VG}/r1_rimage_0"), "raid image used by raid LV r1"),
    (("lvreduce", "-y", "-l", "-1", f"{VG}/ri_rimage_0_iorig"), "integrity origin used by integrity LV ri_rimage_0"),
    (("lvremove", f"{VG}/r1"), "it is a raid LV; lvcrypt does not remove raid or mirror LVs together with their"),
    (("lvextend", "-l", "+1", f"{VG}/r1"), "it is a raid LV"),
    (("lvrename", VG, "origin", "o2"), "snapshot origin used by snapshot snapshot0"),
    (("lvremove", f"{VG}/origin"), "snapshot origin used by snapshot snapshot0"),
    (("lvextend", "-l", "+1", f"{VG}/origin"), "snapshot origin used by snapshot snapshot0"),
    (("lvreduce", "-y", "-l", "-1", f"{VG}/origin"), "Snapshot origin volumes cannot be reduced in size yet"),
    (("lvremove", f"{VG}/snap"), "snapshot exception store used by snapshot snapshot0"),
    (("lvremove", f"{VG}/snapshot0"), "it is a snapshot"),
    (("lvremove", f"{VG}/m"), "it is a mirror; lvcrypt does not remove raid or mirror LVs"),
    (("lvremove", f"{VG}/m_mlog"), "mirror log used by mirror m"),
    (("lvextend", "-l", "+1", f"{VG}/m_mimage_1"), "mirror image used by mirror m"),
    (("lvremove", f"{VG}/hplain"), "named by historical LV -gone"),
    (("lvrename", VG, "hplain", "h2"), "named by historical LV -gone"),
    (("lvremove", f"{VG}/backing"), "named by LV of segment type 'futuretype' futur"),
    (("lvremove", f"{VG}/futur"), "it is an LV of segment type 'futuretype'"),
    (("lvremove", f"{VG}/lvol0_pmspare"), "internal LV of lvm2"),
    (("lvremove", "-f", VG), "cannot remove"),
    (("lvrename", VG, "plain", "gone"), "historical logical volume vgx/-gone"),
    (("lvcreate", "-l", "1", "-n", "gone", VG), "historical logical volume vgx/-gone"),
    (("lvconvert", "--type", "crypt", f"{VG}/origin"), "snapshot origin used by snapshot snapshot0"),
    (("lvconvert", "--type", "crypt", f"{VG}/pool_tdata"), "thin pool data used by thin pool pool"),
    (("write", f"{VG}/origin"), "cannot write to vgx/origin: snapshot origin"),
    (("write", f"{VG}/r1_rimage_1"), "cannot write to vgx/r1_rimage_1: raid image used by raid LV r1"),
    (("read", f"{VG}/thin1"), "type 'thin', which lvcrypt cannot activate"),
    (("table", f"{VG}/r1"), "type 'raid1', which lvcrypt cannot activate"),
    (("keyslot", "add", "--key-file", "/dev/null", "--new-key-file", "/dev/null", f"{VG}/pool_tdata"),
     "vgx/pool_tdata is not a keystore"),
    (("metadata", "del", VG, "logical_volumes.pool_tdata"), "pool names 'pool_tdata' (thin pool data), which does "
                                                            "not exist"),
    (("metadata", "del", VG, "logical_volumes.r1_rmeta_1"), "names 'r1_rmeta_1' (raid metadata)"),
]


def test_every_change_of_what_lvm2_manages_is_refused_and_writes_nothing(pair: Pair) -> None:
    names = lvm2_reads_cleanly(pair)
    before = digests(pair.devices)  # of a few MiB: the 2 x 200 MiB images are sparse
    for args, text in REFUSALS:
        result = lvc_in(pair, *args, data=b"x" * 4096)
        err = result.stderr.decode()
        assert result.returncode == 5, (args, result.returncode, err)
        assert err.startswith("lvcrypt: ") and err.count("\n") == 1 and "Traceback" not in err, (args, err)
        assert text in err, (args, err)
        assert digests(pair.devices) == before, args
    assert lvm2_reads_cleanly(pair) == names


def lv_bytes(pair: Pair, vg: VolumeGroup, skip: set[str]) -> dict[str, bytes]:
    """The raw extents of every LV except `skip`, read from the PVs (for 'nothing else changed')."""
    path = {key: device for key, device in zip(("pv0", "pv1"), pair.devices)}
    out = {}
    for lv in vg.lvs.values():
        if lv.name in skip:
            continue
        chunks = []
        for segment in lv.segments:
            for area, count in segment.pv_areas():
                with open(path[area.pv], "rb") as f:
                    f.seek((vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * 512)
                    chunks.append(f.read(count * vg.extent_bytes))
        out[lv.name] = b"".join(chunks)
    return out


def current(pair: Pair) -> VolumeGroup:
    backup = pair.tmp / "now.vg"
    pair.lvc("vgcfgbackup", "-f", str(backup), VG)
    return tree_to_vg(parse_text(backup.read_text()))


def test_plain_and_crypt_lvs_keep_working_next_to_lvm2s(pair: Pair) -> None:
    """Create, extend, rename, write, read, reduce, remove plain and crypt LVs that nothing refers to;
    lvm2 reads the VG after each step and no other LV's extents change."""
    fill = subprocess.run(["dd", "if=/dev/urandom", f"of={pair.devices[0]}", "bs=1M", "seek=1", "count=120",
                           "conv=notrunc,fsync"], capture_output=True)
    assert fill.returncode == 0, fill.stderr
    names = set(lvm2_reads_cleanly(pair))
    others = lv_bytes(pair, current(pair), set())
    key = pair.tmp / "vk"
    key.write_bytes(bytes(range(64)))
    steps: list[tuple[tuple[str, ...], set[str], set[str]]] = [
        (("lvcreate", "-L", "8M", "-n", "new", VG), {"new"}, set()),
        (("lvextend", "-L", "+4M", f"{VG}/new"), set(), set()),
        (("lvrename", VG, "new", "newer"), {"newer"}, {"new"}),
        (("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
          "--key-file", str(key), "-L", "8M", "-n", "sec", VG), {"sec", "cryptostore0"}, set()),
        (("lvextend", "-l", "+1", f"{VG}/sec"), set(), set()),
        (("lvreduce", "-y", "-l", "-1", f"{VG}/newer"), set(), set()),
        (("lvrename", VG, "plain", "plain2"), {"plain2"}, {"plain"}),
    ]
    for args, added, gone in steps:
        pair.lvc(*args)
        names = (names | added) - gone
        assert set(lvm2_reads_cleanly(pair)) == names, args
    data = bytes(range(256)) * 4096
    for lv, extra in (("newer", ()), ("sec", ("--key-file", str(key)))):
        result = lvc_in(pair, "write", *extra, f"{VG}/{lv}", data=data)
        assert result.returncode == 0, result.stderr
        back = lvc_in(pair, "read", *extra, "--length", str(len(data)), f"{VG}/{lv}")
        assert back.returncode == 0 and back.stdout == data, back.stderr
    after = lv_bytes(pair, current(pair), {"newer", "sec", "cryptostore0"})
    after["plain"] = after.pop("plain2")
    assert after == others
    for args, gone in ((("lvremove", f"{VG}/newer"), {"newer"}), (("lvremove", f"{VG}/sec"), {"sec", "cryptostore0"})):
        pair.lvc(*args)
        names -= gone
        assert set(lvm2_reads_cleanly(pair)) == names, args
    after = lv_bytes(pair, current(pair), set())
    after["plain"] = after.pop("plain2")
    assert after == others


def test_registry_finds_every_reference_of_the_sample() -> None:
    vg = model()
    refs = {(ref.holder, ref.target, ref.role) for lv in vg.lvs.values() for ref in references_of(vg, lv)}
    assert {("pool", "pool_tdata", "thin pool data"), ("pool", "pool_tmeta", "thin pool metadata"),
            ("thin1", "pool", "thin pool"), ("r1", "r1_rmeta_0", "raid metadata"), ("r1", "r1_rimage_1", "raid image"),
            ("ri_rimage_0", "ri_rimage_0_imeta", "integrity metadata"), ("snapshot0", "origin", "snapshot origin"),
            ("snapshot0", "snap", "snapshot exception store"), ("m", "m_mlog", "mirror log"),
            ("m", "m_mimage_0", "mirror image"), ("futur", "backing", "named")} <= refs
    assert [(ref.holder, ref.segment_type) for ref in referenced_by(vg, vg.lvs["hplain"])] == [("-gone", "historical")]
    # The mirror's images are LVs, not PVs: no extents are counted twice, none is taken for a PV.
    assert vg.lvs["m"].segments[0].pv_areas() == []
    for action in ACTIONS:
        assert change_problem(vg, vg.lvs["plain"], action) is None
        for name in ("pool", "thin1", "pool_tdata", "pool_tmeta", "r1", "r1_rmeta_0", "ri_rimage_1_imeta", "origin",
                     "snap", "snapshot0", "m", "m_mlog", "hplain", "backing", "futur", "lvol0_pmspare"):
            assert change_problem(vg, vg.lvs[name], action) is not None, (name, action)


def test_api_and_validation_refuse_dangling_references(tmp_path: Path) -> None:
    path = tmp_path / "vgx.vg"
    path.write_text(references_vg_text())
    with MetadataFile.open(path) as md:
        for call in (lambda: md.rename_lv("pool", "p2"), lambda: md.remove_lv("pool_tmeta"),
                     lambda: md.remove_lv("origin"), lambda: md.rename_lv("hplain", "h2"),
                     lambda: md.rename_lv("plain", "gone")):
            with pytest.raises(LvcryptError):
                call()
        md.rename_lv("plain", "plain2")
        md.remove_lv("plain2")
        md.save()
    assert "plain" not in MetadataFile.open(path).vg.lvs
    broken = references_vg_text().replace('thin_pool = "pool"', 'thin_pool = "nopool"')
    with pytest.raises(LvcryptError, match="thin_pool names 'nopool' \\(thin pool\\), which does not exist"):
        validate(tree_to_vg(parse_text(broken)))
    orphan = references_vg_text().replace('origin = "hplain"', 'origin = "nothere"')
    with pytest.raises(LvcryptError, match="historical logical volume -gone: origin names 'nothere'"):
        validate(tree_to_vg(parse_text(orphan)))


def test_an_lv_being_moved_by_pvmove_is_kept_as_it_is() -> None:
    """lvm2's pvmove: the moved LV's segment is striped over the mirror `pvmove0`, whose areas are PVs."""
    tree = parse_text(references_vg_text())
    lvs = tree[VG]["logical_volumes"]
    assert isinstance(lvs, Section)
    lvs["pvmove0"] = lv_section(12, ["READ", "WRITE", "PVMOVE", "LOCKED"],
                         Section(start_extent=0, extent_count=1, type="mirror", mirror_count=2,
                                 mirrors=["pv0", 40, "pv1", 40]))
    lvs["moving"] = lv_section(13, VISIBLE, Section(start_extent=0, extent_count=1, type="striped", stripe_count=1,
                                             stripes=["pvmove0", 0]))
    vg = tree_to_vg(parse_text(write_text(tree)))
    validate(vg)
    assert [(area.pv, area.extent, count) for area, count in vg.lvs["pvmove0"].segments[0].pv_areas()] == \
        [("pv0", 40, 1), ("pv1", 40, 1)]
    assert vg.lvs["moving"].segments[0].pv_areas() == []
    assert "striped LV built on other LVs" in (change_problem(vg, vg.lvs["moving"], "extend") or "")
    refused = change_problem(vg, vg.lvs["pvmove0"], "remove") or ""
    assert "stripe used by striped LV built on other LVs moving" in refused
