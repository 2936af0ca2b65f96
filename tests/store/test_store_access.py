"""VGs lvm2 will not change on a host without lvmlockd: lvcrypt refuses them as lvm2 does.

lvm2 makes every VG here (shared and foreign ones by its own vgcfgrestore of an edited backup,
exported by vgexport) and is the oracle: for each command both tools refuse with the same
message and the devices stay byte-identical; reports leave out what lvm2 leaves out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle

VG_STATUS = 'status = ["RESIZEABLE", "READ", "WRITE"]'
LV_STATUS = 'status = ["READ", "WRITE", "VISIBLE"]'
NOISE = re.compile(r"WARNING|/dev/mapper/control|device-mapper|libdevmapper")
CHANGES = [("lvcreate", "-l", "1", "-n", "new", "vgx"), ("lvextend", "-l", "+1", "vgx/l1"),
           ("lvrename", "vgx", "l1", "l9"), ("lvremove", "-y", "vgx/l1"), ("vgremove", "-f", "vgx"),
           ("vgrename", "vgx", "vgy")]


def _edit(text: str, kind: str) -> str:
    if kind == "shared":
        text = text.replace(VG_STATUS, VG_STATUS + '\n\tlock_type = "sanlock"\n\tlock_args = "1.0.0:lvmlock"', 1)
        return text.replace(LV_STATUS, LV_STATUS + '\n\t\t\tlock_args = "1.0.0:70254592"')
    if kind == "foreign":
        return text.replace(VG_STATUS, VG_STATUS + '\n\tsystem_id = "otherhost"', 1)
    assert kind == "readonly"
    return text.replace(VG_STATUS, 'status = ["RESIZEABLE", "READ"]', 1)


def _make(pair: Pair, kind: str) -> None:
    """vgx (1 LV, in the given state) and vgc (plain), both written by lvm2."""
    x, c = pair.devices
    pair.lvm("vgcreate", "-s", "1m", "vgx", x)
    pair.lvm("vgcreate", "-s", "1m", "vgc", c)
    pair.lvm("lvcreate", "-l", "4", "-n", "l1", "vgx")
    if kind == "exported":
        pair.lvm("vgexport", "vgx")
        return
    backup = pair.tmp / "vgx.txt"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgx")
    backup.write_text(_edit(backup.read_text(), kind))
    pair.lvm("vgcfgrestore", "-f", str(backup), "vgx")


def _lvm2_errors(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip() and not NOISE.search(line)]


def _vg_names(pair: Pair, tool: str, *options: str) -> list[str]:
    run = pair.lvc if tool == "lvcrypt" else pair.lvm
    return run("vgs", "--noheadings", "-o", "vg_name,vg_attr", *options).stdout.split()


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], lvm2: None, tmp_path: Path) -> Pair:
    return Pair(loop_devices(2, 32), tmp_path)


@pytest.mark.parametrize("kind", ["shared", "foreign", "exported", "readonly"])
def test_changes_refused_with_lvm2s_reason(pair: Pair, kind: str) -> None:
    _make(pair, kind)
    before = digests(pair.devices)
    for command in CHANGES:
        if kind == "exported" and command[0] == "vgrename":
            continue  # lvm2 renames exported VGs (checked below)
        theirs = pair.lvm(*command, check=False)
        ours = pair.lvc(*command, check=False)
        assert theirs.returncode != 0, (command, theirs.stdout)
        assert ours.returncode == 5, (command, ours.stdout, ours.stderr)
        assert ours.stderr.count("\n") == 1 and ours.stderr.startswith("lvcrypt: "), ours.stderr
        assert ours.stderr[len("lvcrypt: "):].strip() in _lvm2_errors(theirs.stderr), (command, ours.stderr,
                                                                                      theirs.stderr)
        assert digests(pair.devices) == before, command
    if kind == "exported":
        pair.lvc("vgrename", "vgx", "vgy")
        assert _vg_names(pair, "lvm2") == ["vgc", "wz--n-", "vgy", "wzx-n-"]
    # the plain VG next to it is changed as before
    pair.lvc("lvcreate", "-l", "2", "-n", "ok", "vgc")
    pair.assert_lvm2_clean("vgc")


@pytest.mark.parametrize("kind,option", [("shared", "--shared"), ("foreign", "--foreign")])
def test_reports_leave_out_what_lvm2_leaves_out(pair: Pair, kind: str, option: str) -> None:
    _make(pair, kind)
    assert _vg_names(pair, "lvcrypt") == _vg_names(pair, "lvm2") == ["vgc", "wz--n-"]
    assert _vg_names(pair, "lvcrypt", option) == _vg_names(pair, "lvm2", option)
    assert "vgx" in _vg_names(pair, "lvcrypt", option)
    ours, theirs = pair.lvc("lvs", "vgx", check=False), pair.lvm("lvs", "vgx", check=False)
    assert ours.returncode == theirs.returncode == 5
    assert ours.stderr[len("lvcrypt: "):].strip() in _lvm2_errors(theirs.stderr)
    pvs = pair.lvc("pvs", "--noheadings", "-o", "pv_name,vg_name").stdout.split()
    assert pvs == pair.lvm("pvs", "--noheadings", "-o", "pv_name,vg_name").stdout.split() == [pair.devices[1], "vgc"]


@pytest.mark.parametrize("kind", ["exported", "readonly"])
def test_reports_show_exported_and_read_only_as_lvm2(pair: Pair, kind: str) -> None:
    _make(pair, kind)
    fields = "vg_name,vg_attr"
    assert pair.report("lvcrypt", "vgs", fields) == pair.report("lvm2", "vgs", fields)
    fields = "pv_name,vg_name,pv_attr"
    assert pair.report("lvcrypt", "pvs", fields) == pair.report("lvm2", "pvs", fields)


@pytest.mark.parametrize("kind", ["shared", "foreign"])
def test_commands_over_all_vgs_pass_over_the_ones_lvm2_does_not_touch(pair: Pair, kind: str) -> None:
    _make(pair, kind)
    result = pair.lvc("vgcfgbackup", "-f", str(pair.tmp / "%s.backup"))
    assert (pair.tmp / "vgc.backup").exists() and not (pair.tmp / "vgx.backup").exists()
    assert "skipped: Cannot access VG vgx" in result.stderr
    assert pair.lvc("vgcfgbackup", "-f", str(pair.tmp / "x"), "vgx", check=False).returncode == 5
    pair.lvc("vgck")
