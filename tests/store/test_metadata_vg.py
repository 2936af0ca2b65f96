"""Editing the metadata of a VG on disk: get/set/del/diff/edit and the API, with lvm2 as the oracle.

The VGs here are made by lvm2; lvcrypt changes them and lvm2 must see the
change (and a seqno one higher), or see nothing at all when lvcrypt refuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from lvcrypt.api import MetadataFile
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import ordered_items
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text
from metadata_helpers import significant
from store_helpers import Pair

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]
LVM2_SAMPLE = Path(__file__).parent.parent / "data" / "lvm2_thin_raid_integrity.vg"


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 64), tmp_path)
    pair.lvm("pvcreate", *pair.devices)
    pair.lvm("vgcreate", "vge", *pair.devices)
    pair.lvm("lvcreate", "-L", "8M", "-n", "lv0", "vge")
    pair.lvm("lvcreate", "-L", "8M", "-n", "lv1", "--addtag", "old", "vge")
    return pair


def seqno(pair: Pair) -> int:
    return int(pair.report("lvm2", "vgs", "vg_seqno", "vge")[0]["vg_seqno"])


def tags(pair: Pair) -> dict[str, str]:
    return {row["lv_name"]: row["lv_tags"] for row in pair.report("lvm2", "lvs", "lv_name,lv_tags", "vge")}


def lvc(pair: Pair, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", "metadata", *args, "--devices", pair.device_list],
                          capture_output=True, text=True, env=env or pair.env, cwd=ROOT, stdin=subprocess.DEVNULL)


def editor(tmp: Path, name: str, body: str) -> dict[str, str]:
    script = tmp / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return {"EDITOR": str(script)}


def test_get_set_del_on_a_vg_commit_what_lvm2_then_shows(pair: Pair) -> None:
    before = seqno(pair)
    assert lvc(pair, "get", "vge", "logical_volumes.lv1.tags").stdout == '["old"]\n'
    result = lvc(pair, "set", "vge", 'logical_volumes.lv0.tags=["new", "two"]', "logical_volumes.lv0.note=kept")
    assert result.returncode == 0, result.stderr
    assert tags(pair) == {"lv0": "new,two", "lv1": "old"}
    assert seqno(pair) == before + 1
    assert lvc(pair, "get", "vge", "logical_volumes.lv0.note").stdout == "kept\n"
    assert lvc(pair, "del", "vge", "logical_volumes.lv1.tags").returncode == 0
    assert tags(pair) == {"lv0": "new,two", "lv1": ""}
    assert seqno(pair) == before + 2
    archives = list((pair.tmp / "state" / "archive").glob("vge_*.vg"))
    assert len(archives) == 2
    pair.lvm("vgck", "vge")


@pytest.mark.parametrize("change,message", [
    (["set", "vge", "logical_volumes.lv0.segment1.stripes=[\"pv0\", 9999]"], "lie beyond"),
    (["set", "vge", "id=aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg"], "uuid of volume group vge cannot change"),
    (["set", "vge", "physical_volumes.pv0.id=aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg"], "uuid of physical volume"),
    (["set", "vge", "logical_volumes.lv1.segment1.stripes=[\"pv0\", 0]"], "overlap"),
    (["del", "vge", "physical_volumes.pv1"], "physical volume"),
])
def test_refused_vg_changes_write_nothing(pair: Pair, change: list[str], message: str) -> None:
    before = seqno(pair)
    result = lvc(pair, *change)
    assert result.returncode == 5 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert seqno(pair) == before


def test_edit_commits_a_valid_change_and_writes_nothing_otherwise(pair: Pair) -> None:
    before = seqno(pair)
    add_tag = editor(pair.tmp, "tag.sh", 'sed -i \'/^\\t\\tlv0 {/,/flags/s/flags = \\[\\]/flags = []\\n\\t\\t\\ttags = ["edited"]/\' "$1"\n')
    result = lvc(pair, "edit", "-y", "vge", env={**pair.env, **add_tag})
    assert result.returncode == 0, result.stderr
    assert '+\t\t\ttags = ["edited"]' in result.stdout and "LV lv0: tags or status changed" in result.stdout
    assert tags(pair)["lv0"] == "edited" and seqno(pair) == before + 1

    unchanged = lvc(pair, "edit", "-y", "vge", env={**pair.env, **editor(pair.tmp, "none.sh", "true\n")})
    assert unchanged.returncode == 0 and "No changes" in unchanged.stdout
    broken = editor(pair.tmp, "broken.sh", 'sed -i \'s/segment_count = 1/segment_count = 2/\' "$1"\n')
    refused = lvc(pair, "edit", "-y", "vge", env={**pair.env, **broken})
    assert refused.returncode == 5 and "segment_count is 2" in refused.stderr
    overlap = editor(pair.tmp, "overlap.sh", 'sed -i \'0,/"pv0", 2/s//"pv0", 0/\' "$1"\n')
    refused = lvc(pair, "edit", "-y", "vge", env={**pair.env, **overlap})
    assert refused.returncode == 5 and "overlap" in refused.stderr, refused.stderr
    no_confirmation = lvc(pair, "edit", "vge", env={**pair.env, **add_tag})  # no -y and no terminal: abort
    assert no_confirmation.returncode == 5 and "aborted" in no_confirmation.stderr
    assert seqno(pair) == before + 1


def test_concurrent_edits_take_turns_on_the_vg_lock(pair: Pair) -> None:
    gate = pair.tmp / "gate"
    slow = editor(pair.tmp, "slow.sh", f'touch "{pair.tmp}/first-in"\nwhile [ ! -e "{gate}" ]; do sleep 0.1; done\n'
                                     'sed -i \'0,/flags = \\[\\]/s//flags = []\\n\\ttags = ["one"]/\' "$1"\n')
    quick = editor(pair.tmp, "quick.sh", f'touch "{pair.tmp}/second-in"\n'
                                      'sed -i \'s/^\\t\\t\\tflags = \\[\\]$/\\t\\t\\tflags = []\\n\\t\\t\\tlv_note = 2/\' "$1"\n')
    command = [sys.executable, "-m", "lvcrypt", "metadata", "edit", "-y", "vge", "--devices", pair.device_list]
    first = subprocess.Popen(command, env={**pair.env, **slow}, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    second = None
    try:
        for _ in range(300):
            if (pair.tmp / "first-in").exists():
                break
            time.sleep(0.1)
        second = subprocess.Popen(command, env={**pair.env, **quick}, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        time.sleep(2)
        assert not (pair.tmp / "second-in").exists()  # blocked on the lock while the first edits
        gate.touch()
        assert first.wait(60) == 0, first.stderr.read() if first.stderr else ""
        assert second.wait(60) == 0, second.stderr.read() if second.stderr else ""
    finally:
        gate.touch()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    # Both edits landed, one after the other: lvm2 sees the VG tag of the first; the key the second
    # added is one lvm2 does not know (and drops from its own reports), so lvcrypt reads it back.
    assert pair.report("lvm2", "vgs", "vg_tags", "vge") == [{"vg_tags": "one"}]
    assert lvc(pair, "get", "vge", "logical_volumes.lv0.lv_note", "logical_volumes.lv1.lv_note").stdout == "2\n2\n"


def test_diff_of_a_file_against_the_vg(pair: Pair) -> None:
    backup = pair.tmp / "b.txt"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vge")
    assert lvc(pair, "diff", str(backup), "vge").returncode == 0
    assert lvc(pair, "set", "vge", 'logical_volumes.lv0.tags=["x"]').returncode == 0
    result = lvc(pair, "diff", str(backup), "vge")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert '+ logical_volumes.lv0.tags = ["x"]' in lines and any(line.startswith("~ seqno:") for line in lines)


def test_api_opens_a_vg_by_devices_and_commits_under_its_lock(pair: Pair) -> None:
    os.environ["LVCRYPT_STATE_DIR"] = str(pair.tmp / "state")
    os.environ["LVCRYPT_RUN_DIR"] = str(pair.tmp / "run")
    try:
        from lvcrypt.api import open_vg

        before = seqno(pair)
        with open_vg("vge", pair.device_list) as vg:
            vg.add_tag("lv1", "api")
            vg.rename_lv("lv0", "renamed")
            vg.commit()
        assert tags(pair) == {"renamed": "", "lv1": "api,old"}  # lvm2 lists tags sorted
        assert seqno(pair) == before + 1
    finally:
        del os.environ["LVCRYPT_STATE_DIR"], os.environ["LVCRYPT_RUN_DIR"]
    listing = subprocess.run([sys.executable, str(ROOT / "examples/list_crypt_lvs.py"), "vge", "--devices",
                              pair.device_list], capture_output=True, text=True, env=pair.env)
    assert listing.returncode == 0 and listing.stdout == ""  # lvm2's VG has no crypt LVs


def test_unknown_segment_types_written_by_lvm2_survive_every_path(tmp_path: Path) -> None:
    """thin, thin-pool, raid1 and integrity segments, made by lvm2 in the kernel guest (tests/data)."""
    text = LVM2_SAMPLE.read_text()
    tree = parse_text(text)
    vg = tree_to_vg(tree)
    validate(vg)
    assert {s.type for lv in vg.lvs.values() for s in lv.segments} >= {"thin", "thin-pool", "raid1", "integrity"}
    assert ordered_items(vg_to_tree(vg)) == ordered_items(tree)
    assert significant(write_text(vg_to_tree(vg))) == significant(text)
    path = tmp_path / "vgx.txt"
    path.write_text(text)
    with MetadataFile.open(path) as md:
        md.add_tag("thin1", "api")
        md.save()
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "metadata", "set", str(path),
                             "logical_volumes.ri_rimage_0.segment1.made_up=1", "logical_volumes.pool.x=[1, 2]"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    after = parse_text(path.read_text())
    for name in ("pool", "thin1", "r1", "ri", "ri_rimage_0"):
        old = tree["vgx"]["logical_volumes"][name]
        new = after["vgx"]["logical_volumes"][name]
        assert [k for k in new if k in old] == list(old)  # every key kept, in its place
        assert new["segment1"]["type"] == old["segment1"]["type"]
    assert after["vgx"]["logical_volumes"]["thin1"]["tags"] == ["api"]
    assert after["vgx"]["logical_volumes"]["ri_rimage_0"]["segment1"]["made_up"] == 1
    assert json.dumps(after["vgx"]["logical_volumes"]["r1"]["segment1"]["raids"]) == \
        json.dumps(tree["vgx"]["logical_volumes"]["r1"]["segment1"]["raids"])
