"""Shared VGs (lvmlockd's lock_type, lock_args, the hidden lvmlock LV, LV lock_args) as lvm2 writes them.

lvm2 without lvmlockd cannot create a shared VG, but restores one: the text is a backup of a local
VG that lvm2 wrote, edited as lvm2 2.03.16's lib/format_text/export.c writes a sanlock VG (the
lvmlock LV hidden, read_ahead None, LV lock_args after creation_host), and lvm2 is the oracle for
what it reports and for reading back what lvcrypt writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.write import write_text
from metadata_helpers import significant
from shared_vg_text import DLM, SANLOCK, lvm2_written, make_shared
from store_helpers import Pair, digests

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    return Pair(loop_devices(1, 320), tmp_path)


@pytest.mark.parametrize("kind", [SANLOCK, DLM], ids=["sanlock", "dlm"])
def test_reports_of_a_shared_vg_match_lvm2(pair: Pair, kind: tuple[str, str, str]) -> None:
    make_shared(pair, kind)
    fields = "vg_name,vg_attr,vg_lock_type,vg_lock_args,lv_count,vg_free"
    ours, theirs = pair.report("lvcrypt", "vgs", fields, "--shared"), pair.report("lvm2", "vgs", fields, "--shared")
    assert ours == theirs
    assert ours[0]["vg_attr"] == "wz--ns" and ours[0]["vg_lock_type"] == kind[0]
    fields = "lv_name,lv_lockargs,lv_size"
    ours, theirs = pair.report("lvcrypt", "lvs", fields, "--shared"), pair.report("lvm2", "lvs", fields, "--shared")
    assert ours == theirs
    expected = {"l1": kind[2], "[lvmlock]": ""} if kind == SANLOCK else {"l1": kind[2]}
    assert {row["lv_name"]: row["lv_lockargs"] for row in ours} == expected


def test_lvm2s_shared_vg_text_round_trips_and_lvm2_restores_what_lvcrypt_writes(pair: Pair) -> None:
    make_shared(pair)
    written_by_lvm2 = lvm2_written(pair)
    assert 'flags = ["WRITE_LOCKED"]' in written_by_lvm2
    vg = tree_to_vg(parse_text(written_by_lvm2))
    assert (vg.lock_type, vg.lock_args, vg.shared) == ("sanlock", "1.0.0:lvmlock", True)
    assert vg.lvs["l1"].lock_args == "1.0.0:70254592" and vg.lvs["lvmlock"].lock_args is None
    # the model holds WRITE, as lvm2's import does; writing gives the flag back
    assert "WRITE" in vg.status and "WRITE" in vg.lvs["l1"].status and vg.lvs["l1"].flags == []
    assert significant(write_text(vg_to_tree(vg, vg_first=True), layout="disk")) == significant(written_by_lvm2)
    fields = "lv_name,lv_uuid,lv_attr,lv_lockargs,devices"
    before = pair.report("lvm2", "lvs", fields, "--shared")
    (pair.tmp / "ours.vg").write_text(write_text(vg_to_tree(vg)))
    pair.lvm("vgcfgrestore", "--force", "-f", str(pair.tmp / "ours.vg"), "vgx")
    assert pair.report("lvm2", "lvs", fields, "--shared") == before
    assert pair.report("lvm2", "vgs", "vg_attr,vg_lock_args", "--shared") == [
        {"vg_attr": "wz--ns", "vg_lock_args": "1.0.0:lvmlock"}]
    assert lvm2_written(pair).count("WRITE_LOCKED") == written_by_lvm2.count("WRITE_LOCKED") == 3


def test_lock_keys_set_on_the_model_land_where_lvm2_writes_them(pair: Pair) -> None:
    """What `vgcreate --shared` and init_lv need: keys set on a local VG are written as lvm2 writes them."""
    local, _ = make_shared(pair)
    vg = tree_to_vg(parse_text(local))
    vg.lock_type, vg.lock_args = "sanlock", "1.0.0:lvmlock"
    vg.lvs["l1"].lock_args = "1.0.0:70254592"
    expected = tree_to_vg(parse_text(lvm2_written(pair)))
    del expected.lvs["lvmlock"]
    vg.seqno, vg.header = expected.seqno, expected.header
    vg.pvs["pv0"].device = expected.pvs["pv0"].device
    assert significant(write_text(vg_to_tree(vg, vg_first=True), layout="disk")) == \
        significant(write_text(vg_to_tree(expected, vg_first=True), layout="disk"))
    cleared = tree_to_vg(parse_text(local))
    cleared.lock_type, cleared.lock_args = "sanlock", "1.0.0:lvmlock"
    cleared.lock_type = cleared.lock_args = None
    assert significant(write_text(vg_to_tree(cleared))) == significant(local)


@pytest.mark.parametrize("options", [("--shared",), ("--lock-type", "sanlock"), ("--lock-type", "dlm")],
                         ids=" ".join)
def test_vgcreate_shared_refused_without_lvmlockd_as_lvm2(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                          options: tuple[str, ...]) -> None:
    pair = Pair(loop_devices(1, 16), tmp_path)
    before = digests(pair.devices)
    theirs = pair.lvm("vgcreate", *options, "vgs1", *pair.devices, check=False)
    ours = pair.lvc("vgcreate", *options, "vgs1", *pair.devices, check=False)
    assert theirs.returncode == ours.returncode == 3
    assert ours.stderr.count("\n") == 1
    assert ours.stderr.removeprefix("lvcrypt: ").strip() == theirs.stderr.splitlines()[0].strip()
    assert digests(pair.devices) == before


@pytest.mark.parametrize("option", ["--lock-start", "--lock-stop"])
def test_lock_start_without_lvmlockd_says_so_as_lvm2(pair: Pair, option: str) -> None:
    make_shared(pair)
    theirs, ours = pair.lvm("vgchange", option, "vgx"), pair.lvc("vgchange", option, "vgx")
    assert "Using lock start and lock stop requires lvmlockd." in theirs.stderr
    assert ours.stderr == "  Using lock start and lock stop requires lvmlockd.\n"
