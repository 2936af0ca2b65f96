"""lvm2's command line as scripts use it, with lvm2 as the oracle on the same loop devices.

Names in every form lvm2 takes (VG/LV, /dev/VG/LV, /dev/mapper/VG-LV with doubled dashes,
@tag), tags written by one tool and read by the other, `-t` leaving every PV byte as it
was, and missing VGs and LVs refused with lvm2's exit status and message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import LVM_ENV, ROOT
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle

# What lvm2 prints here because this machine has no device-mapper: not part of any answer.
_NOISE = ("Activation disabled", "/dev/mapper/control", "device-mapper", "libdevmapper", "not zeroed",
          "zeroing and wip")


def _lvm(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    """An lvm2 command on the pair's devices, without device-mapper, whatever the command."""
    return subprocess.run([args[0], "--devices", pair.device_list, "--driverloaded", "n", *args[1:]],
                          capture_output=True, text=True, env=LVM_ENV)


def _said(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.strip() for line in result.stderr.splitlines() if not any(n in line for n in _NOISE)]


def _rows(result: subprocess.CompletedProcess[str], kind: str) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["report"][0][kind] if result.stdout.strip() else []


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    """vg-a (a dash in its name) on two PVs with lv-1, plain and a striped LV, made by lvcrypt."""
    pair = Pair(loop_devices(3, 64), tmp_path)
    a, b, _ = pair.devices
    pair.lvc("pvcreate", a, b)
    pair.lvc("vgcreate", "vg-a", a, b)
    pair.lvc("lvcreate", "-l", "2", "-n", "lv-1", "vg-a")
    pair.lvc("lvcreate", "-l", "3", "-n", "plain", "vg-a")
    pair.lvc("lvcreate", "-i", "2", "-l", "4", "-n", "str", "vg-a")
    return pair


def test_name_forms_select_what_lvm2_selects(pair: Pair) -> None:
    pair.lvc("lvchange", "--addtag", "web", "vg-a/plain")
    pair.lvc("vgcreate", "--addtag", "spare", "vgb", pair.devices[2])
    pair.lvc("lvcreate", "-l", "1", "-n", "x", "vgb")
    for names in (["vg-a/lv-1"], ["/dev/vg-a/lv-1"], ["//dev/vg-a/plain"], ["/dev/mapper/vg--a-lv--1"],
                  ["/dev/mapper/vg--a-str", "vgb/x"], ["@web"], ["@spare"], ["@web", "vg-a"], ["vg-a", "@spare"],
                  ["/dev/vg-a"]):
        args = ("lvs", "-o", "lv_name,vg_name", "--reportformat", "json", *names)
        assert _rows(pair.lvc(*args, check=False), "lv") == _rows(_lvm(pair, *args), "lv"), names
    for names in (["@spare"], ["vgb", "@spare"]):
        args = ("vgs", "-o", "vg_name", "--reportformat", "json", *names)
        assert _rows(pair.lvc(*args, check=False), "vg") == _rows(_lvm(pair, *args), "vg"), names
    # A tag nothing carries selects nothing: no output at all, not even headings, and success.
    for command in ("lvs", "vgs", "pvs"):
        ours, theirs = pair.lvc(command, "@nothing", check=False), _lvm(pair, command, "@nothing")
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, "")


def test_tags_written_by_each_tool_are_read_by_the_other(pair: Pair) -> None:
    a, b, c = pair.devices
    pair.lvc("lvcreate", "--addtag", "t1", "--addtag", "@t2", "-l", "1", "-n", "tagged", "vg-a")
    pair.lvc("lvchange", "--addtag", "x:1", "--addtag", "t2", "--deltag", "t1", "vg-a/tagged", "vg-a/plain")
    pair.lvc("vgchange", "--addtag", "site=a", "vg-a")
    pair.lvc("pvchange", "--addtag", "fast", a)
    pair.lvc("vgcreate", "--addtag", "new", "vgb", c)
    lvs = {row["lv_name"]: row["lv_tags"] for row in _rows(_lvm(pair, "lvs", "-o", "lv_name,lv_tags",
                                                                    "--reportformat", "json", "vg-a"), "lv")}
    assert lvs == {"lv-1": "", "plain": "t2,x:1", "str": "", "tagged": "t2,x:1"}
    vgs = {row["vg_name"]: row["vg_tags"] for row in _rows(_lvm(pair, "vgs", "-o", "vg_name,vg_tags",
                                                                    "--reportformat", "json"), "vg")}
    assert vgs == {"vg-a": "site=a", "vgb": "new"}
    pvs = {row["pv_name"]: row["pv_tags"] for row in _rows(_lvm(pair, "pvs", "-o", "pv_name,pv_tags",
                                                                    "--reportformat", "json"), "pv")}
    assert pvs == {a: "fast", b: "", c: ""}
    assert _lvm(pair, "vgck", "vg-a").returncode == 0

    # lvm2 tags, lvcrypt selects by them (and removes them) as lvm2 does.
    assert _lvm(pair, "lvchange", "--addtag", "db", "vg-a/lv-1").returncode == 0
    assert _lvm(pair, "pvchange", "--addtag", "slow", b).returncode == 0
    for command, kind, field in (("lvs", "lv", "lv_name"), ("pvs", "pv", "pv_name"), ("vgs", "vg", "vg_name")):
        for tag in ("@db", "@slow", "@site=a", "@new", "@t2"):
            args = (command, "-o", field, "--reportformat", "json", tag)
            assert _rows(pair.lvc(*args), kind) == _rows(_lvm(pair, *args), kind), (command, tag)
    pair.lvc("lvchange", "--deltag", "db", "@db")
    assert _rows(_lvm(pair, "lvs", "--reportformat", "json", "@db"), "lv") == []
    pair.lvc("lvremove", "-y", "@t2")
    names = [row["lv_name"] for row in _rows(_lvm(pair, "lvs", "-o", "lv_name", "--reportformat", "json"), "lv")]
    assert sorted(names) == ["lv-1", "str"]


def test_bad_tags_refused_as_lvm2_refuses_them(pair: Pair) -> None:
    before = digests(pair.devices)
    for command in (("lvchange", "--addtag", "bad^tag", "vg-a/plain"), ("vgchange", "--deltag", "a b", "vg-a"),
                    ("lvcreate", "--addtag", "", "-l", "1", "vg-a")):
        ours, theirs = pair.lvc(*command, check=False), _lvm(pair, *command)
        assert ours.returncode == theirs.returncode == 3, (command, ours.stderr, theirs.stderr)
        assert ours.stderr.startswith("lvcrypt: ") and ours.stderr.count("\n") == 1
        assert ours.stderr[len("lvcrypt: "):].strip() == _said(theirs)[0], (ours.stderr, theirs.stderr)
    pvs = pair.lvc("pvchange", "--addtag", "x", pair.devices[2], check=False)  # a device that is no PV
    assert pvs.returncode == _lvm(pair, "pvchange", "--addtag", "x", pair.devices[2]).returncode == 5
    assert digests(pair.devices) == before


# Commands naming what does not exist: lvm2's status and its first (the user's) line of explanation.
MISSING = [
    ("lvs", "vg-a/missing"), ("lvs", "novg"), ("lvs", "novg/x"), ("vgs", "novg"), ("pvs", "/dev/nothing"),
    ("lvremove", "-y", "vg-a/missing"), ("lvremove", "-y", "novg/x"), ("lvextend", "-l+1", "vg-a/missing"),
    ("lvreduce", "-y", "-l-1", "vg-a/missing"), ("lvrename", "vg-a", "missing", "new"),
    ("lvchange", "--addtag", "t", "vg-a/missing"), ("vgchange", "--addtag", "t", "novg"),
    ("lvcreate", "-l", "1", "-n", "x", "novg"), ("vgremove", "novg"), ("lvs", "/dev/mapper/vg--a-missing"),
    ("lvconvert", "-y", "--type", "linear", "vg-a/missing"),
]


@pytest.mark.parametrize("command", MISSING, ids=lambda c: "-".join(c).replace("/", "_"))
def test_missing_objects_exit_and_say_what_lvm2_does(pair: Pair, command: tuple[str, ...]) -> None:
    before = digests(pair.devices)
    ours, theirs = pair.lvc(*command, check=False), _lvm(pair, *command)
    assert ours.returncode == theirs.returncode == 5, (ours.stderr, theirs.stderr)
    assert ours.stderr.startswith("lvcrypt: ") and ours.stderr.count("\n") == 1, ours.stderr
    assert ours.stderr[len("lvcrypt: "):].strip() == _said(theirs)[0]
    assert ours.stdout == ""
    assert digests(pair.devices) == before


# An option given twice that lvm2 neither counts (-v, -d, -q, -f) nor groups (-o, -O, -S, --addtag,
# --devices...): lvm2 refuses the command line.
REPEATED = [
    (("lvremove", "-yy", "vg-a/plain"), "-y/--yes"), (("lvremove", "-y", "--yes", "vg-a/plain"), "-y/--yes"),
    (("lvs", "-y", "-y", "vg-a"), "-y/--yes"), (("lvs", "--units", "k", "--units", "m"), "--units"),
    (("lvs", "--noheadings", "--noheadings"), "--noheadings"), (("lvs", "-a", "--all"), "-a/--all"),
    (("vgs", "--separator", ",", "--separator", ":"), "--separator"),
    (("lvcreate", "-L", "4m", "-L", "8m", "-n", "new", "vg-a"), "-L/--size"),
    (("lvextend", "-l", "+1", "-l", "+2", "vg-a/plain"), "-l/--extents"),
    (("lvchange", "-t", "--test", "--addtag", "x", "vg-a/plain"), "-t/--test"),
]


@pytest.mark.parametrize("command,option", REPEATED, ids=lambda c: "-".join(c) if isinstance(c, tuple) else None)
def test_options_given_twice_refused_as_lvm2(pair: Pair, command: tuple[str, ...], option: str) -> None:
    """A script that says one thing twice (`-yy`, `--units k --units m`, `-L 4m -L 8m`) gets exit 3 and
    nothing done, not whichever came last."""
    before = digests(pair.devices)
    ours, theirs = pair.lvc(*command, check=False), _lvm(pair, *command)
    assert ours.returncode == theirs.returncode == 3, (ours.stderr, theirs.stderr)
    assert f"Option {option} may not be repeated." in _said(theirs)
    assert ours.stderr == f"lvcrypt: {command[0]}: Option {option} may not be repeated.\n"
    assert digests(pair.devices) == before


# Options lvm2 lets a report repeat: each -o acts on the columns so far by its first character (+ adds,
# - removes, anything else replaces), the last -O and the last -S count.
REPEATED_REPORT_OPTIONS = [
    ("-o", "lv_name", "-o", "lv_size"), ("-o", "lv_name", "-o", "+lv_size", "-o", "-lv_name"),
    ("-o", "+lv_size", "-o", "lv_name"), ("-o", "-lv_name,lv_attr"), ("-o", "lv_name,lv_name,lv_size", "-o", "-lv_name"),
    ("-o", "size,name", "-o", "-lv_size"), ("-o", "lv_name,", "-o", "+,vg_name"),
    ("-o", "lv_name,lv_size", "-O", "-lv_size", "-O", "lv_name"), ("-o", "lv_name,lv_size", "-O", "lv_name", "-O", "-lv_size"),
    ("-o", "lv_name", "-S", "lv_name=plain", "-S", "lv_name=str"),
]


@pytest.mark.parametrize("options", REPEATED_REPORT_OPTIONS, ids="_".join)
def test_repeated_report_options_combine_as_lvm2(pair: Pair, options: tuple[str, ...]) -> None:
    command = ("lvs", *options, "vg-a")
    ours, theirs = pair.lvc(*command, check=False), _lvm(pair, *command)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout


def test_devices_given_twice_are_both_looked_at(pair: Pair) -> None:
    """--devices is one of lvm2's groupable options: `--devices A --devices B` looks at both (vg-a is on
    two PVs: neither alone shows it whole)."""
    a, b, _ = pair.devices
    args = ("vgs", "--devices", a, "--devices", b, "-o", "vg_name,pv_count,vg_missing_pv_count", "--reportformat",
            "json")
    ours = subprocess.run([sys.executable, "-m", "lvcrypt", *args], capture_output=True, text=True, env=pair.env,
                          cwd=ROOT)
    theirs = subprocess.run(["vgs", *args[1:]], capture_output=True, text=True, env=LVM_ENV)
    assert _rows(ours, "vg") == _rows(theirs, "vg") == [{"vg_name": "vg-a", "pv_count": "2",
                                                           "vg_missing_pv_count": "0"}]


# Every changing command under -t: it runs its checks and succeeds, and writes nothing anywhere.
TEST_MODE = [
    ("lvcreate", "-l", "2", "-n", "new", "vg-a"), ("lvcreate", "-i", "2", "-l", "2", "-n", "new", "vg-a"),
    ("lvextend", "-l", "+2", "vg-a/plain"), ("lvreduce", "-y", "-l", "-1", "vg-a/plain"),
    ("lvrename", "vg-a/plain", "renamed"), ("lvremove", "-y", "vg-a/lv-1"), ("lvremove", "-y", "-f", "vg-a"),
    ("lvchange", "--addtag", "t", "vg-a/plain"), ("vgchange", "--addtag", "t", "vg-a"),
    ("vgrename", "vg-a", "vgz"), ("vgremove", "-f", "vg-a"), ("vgreduce", "vg-a", "DEV1"),
    ("vgextend", "vg-a", "DEV2"), ("vgcreate", "vgn", "DEV2"), ("pvcreate", "DEV2"),
    ("pvchange", "--addtag", "t", "DEV0"), ("pvremove", "-ff", "-y", "DEV0"),
]


def _state_files(root: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("command", TEST_MODE, ids=lambda c: "-".join(c).replace("/", "_"))
def test_test_mode_writes_nothing_as_lvm2(pair: Pair, command: tuple[str, ...]) -> None:
    if command[0] == "vgreduce":
        pair.lvc("lvremove", "-y", "vg-a/str")  # the second PV then holds no LV and may leave the VG
    if command[0] == "vgcreate":  # lvm2's -t cannot make a VG of a blank device (its pvcreate wrote nothing)
        pair.lvc("pvcreate", pair.devices[2])
    args = tuple(pair.devices[int(word[3])] if word.startswith("DEV") else word for word in command)
    before, state = digests(pair.devices), _state_files(pair.tmp / "state")
    ours = pair.lvc(args[0], "-t", *args[1:], check=False)
    assert ours.returncode == 0, ours.stderr
    assert "Traceback" not in ours.stderr and "warning" not in ours.stderr.lower(), ours.stderr
    theirs = _lvm(pair, args[0], "-t", *args[1:])
    assert theirs.returncode == 0, theirs.stderr
    notice = "TEST MODE: Metadata will NOT be updated and volumes will not be (de)activated."
    assert ours.stderr.splitlines()[0].strip() == notice == _said(theirs)[0]
    assert digests(pair.devices) == before  # neither tool wrote a byte to any PV
    assert _state_files(pair.tmp / "state") == state  # nor an archive, a backup or the devices file
    # And without -t the same command does change the PVs (the test would prove nothing otherwise).
    pair.lvc(*args)
    assert digests(pair.devices) != before


def test_pv_named_as_the_user_named_it(pair: Pair, tmp_path: Path) -> None:
    """A symlink to a PV (as /dev/disk/by-id/... is) names the PV in lvcreate, vgreduce, pvs, pvchange."""
    a, b, c = pair.devices
    link = tmp_path / "by-id-disk-c"
    link.symlink_to(c)
    pair.lvc("vgextend", "vg-a", str(link))
    pair.lvc("lvcreate", "-l", "2", "-n", "onc", "vg-a", str(link))
    rows = _rows(_lvm(pair, "lvs", "-o", "lv_name,devices", "--reportformat", "json", "vg-a/onc"), "lv")
    assert rows == [{"lv_name": "onc", "devices": f"{c}(0)"}]
    pair.lvc("pvchange", "--addtag", "linked", str(link))
    assert _rows(_lvm(pair, "pvs", "-o", "pv_name", "--reportformat", "json", "@linked"), "pv") == [{"pv_name": c}]
    assert [row["pv_name"] for row in _rows(pair.lvc("pvs", "-o", "pv_name", "--reportformat", "json",
                                                     str(link)), "pv")] == [c]
    pair.lvc("lvremove", "-y", "vg-a/onc")
    pair.lvc("vgreduce", "vg-a", str(link))
    assert _rows(_lvm(pair, "pvs", "-o", "pv_name,vg_name", "--reportformat", "json", c), "pv") == \
        [{"pv_name": c, "vg_name": ""}]
