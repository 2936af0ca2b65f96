"""lvchange -p/-k/--alloc/-C, vgchange -x/--alloc and pvchange -x against lvm2.

Each step runs twice: lvcrypt on one twin (an LV, VG or PV), lvm2 on the other, both made alike by
lvm2.  The two tools must answer alike (exit status, lvm2's lines) and leave their twins alike: lvm2's
own report of both, and the metadata sections lvm2 writes for them (ids and names aside).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    return Pair(loop_devices(4, 64), tmp_path)


def _lines(text: str, twin: str, other: str) -> list[str]:
    """A tool's output lines with the twin's name made the other's, lvcrypt's prefix and lvm2's
    activation warning away."""
    return [line.strip().removeprefix("lvcrypt: ").replace(twin, other) for line in text.splitlines()
            if line.strip() and "Activation disabled" not in line]


def _step(pair: Pair, argv: tuple[str, ...], ours: str, theirs: str) -> None:
    """One command on each twin (the last argument names it); the tools agree on status and words."""
    before = digests(pair.devices)
    mine = pair.lvc(*argv, ours, check=False)
    if mine.returncode == 3:
        assert digests(pair.devices) == before, argv
    # Without device-mapper here, lvm2's lvchange and lvresize are told so (they would try to reload,
    # and undo the change).
    no_dm = ["--driverloaded", "n"] if argv[0] in ("lvchange", "lvresize") else []
    lvm2 = pair.lvm(argv[0], *no_dm, *argv[1:], theirs, check=False)
    assert mine.returncode == lvm2.returncode, (argv, mine.stderr, lvm2.stderr)
    assert _lines(mine.stdout, ours, theirs) == _lines(lvm2.stdout, theirs, theirs), (argv, mine.stdout, lvm2.stdout)
    assert set(_lines(mine.stderr, ours, theirs)) <= set(_lines(lvm2.stderr, theirs, theirs)), \
        (argv, mine.stderr, lvm2.stderr)


def _section(text: str, name: str) -> str:
    """The metadata section of `name` as lvm2 wrote it, without what differs between twins by nature."""
    start = text.index(f"\t{name} {{\n") if f"\t{name} {{\n" in text else text.index(f"{name} {{\n")
    depth, end = 0, start
    for end, char in enumerate(text[start:], start):
        depth += (char == "{") - (char == "}")
        if char == "}" and depth == 0:
            break
    body = text[start:end]
    body = re.sub(r'(id|creation_time|creation_host|seqno|device|dev_size) = [^\n]*\n', "", body)
    body = re.sub(r"stripes = \[[^\]]*\]", "stripes", body)
    body = re.sub(r"\n\s*(physical_volumes|logical_volumes) \{.*", "", body, flags=re.S)
    return re.sub(r"#[^\n]*", "", body).replace(name, "NAME")


def _backup(pair: Pair, vg: str) -> str:
    path = pair.tmp / f"{vg}.vg"
    pair.lvm("vgcfgbackup", "-f", str(path), vg)
    return path.read_text()


def test_lvchange_properties_as_lvm2(pair: Pair) -> None:
    """Permission, allocation policy, activation skip and tags, their refusals ("already read only",
    "already contiguous": exit 5, the LV's other changes still made) and option clashes (exit 3)."""
    a, b, c, d = pair.devices
    pair.lvm("vgcreate", "vg0", a, b)
    for name in ("ours", "theirs"):
        pair.lvm("lvcreate", "-L", "4m", "-n", name, "vg0")
    steps = [("-pr",), ("-pr",), ("-prw", "-ky"), ("-prw",), ("--alloc", "cling"), ("--alloc", "cling"),
             ("--alloc", "cling_by_tags"), ("-Cy",), ("-Cy",), ("-Cn",), ("-Cn",), ("-pr", "-kn", "--addtag", "t1"),
             ("--addtag", "t2", "--deltag", "t2"), ("--alloc", "anywhere", "-Cy"), ("--alloc", "inherit"),
             ("--alloc", "normal"), ("-pr", "--refresh")]
    for step in steps:
        _step(pair, ("lvchange", *step), "vg0/ours", "vg0/theirs")
    fields = "lv_name,lv_attr,lv_allocation_policy,lv_tags,lv_permissions,lv_skip_activation"
    rows = {row["lv_name"]: row for row in pair.report("lvm2", "lvs", fields, "vg0")}
    assert {**rows["ours"], "lv_name": ""} == {**rows["theirs"], "lv_name": ""}
    assert rows["ours"]["lv_permissions"] == "read-only" and rows["ours"]["lv_allocation_policy"] == "normal"
    text = _backup(pair, "vg0")
    assert _section(text, "ours") == _section(text, "theirs")
    pair.assert_lvm2_clean("vg0")


def test_lvchange_of_a_whole_vg_as_lvm2(pair: Pair) -> None:
    """A VG named to lvchange stands for its visible LVs (lvm2's process_each_lv); one not found is
    lvm2's refusal."""
    a, b, c, d = pair.devices
    pair.lvm("vgcreate", "ours", a, b)
    pair.lvm("vgcreate", "theirs", c, d)
    for vg in ("ours", "theirs"):
        for name in ("one", "two"):
            pair.lvm("lvcreate", "-L", "4m", "-n", name, vg)
    _step(pair, ("lvchange", "-ky", "--addtag", "all"), "ours", "theirs")
    fields = "vg_name,lv_name,lv_attr,lv_tags"
    rows = [{**row, "vg_name": ""} for row in pair.report("lvm2", "lvs", fields, "ours", "theirs")]
    assert rows[0::2] == rows[1::2] and len(rows) == 4 and all(row["lv_tags"] == "all" for row in rows)
    _step(pair, ("lvchange", "-kn"), "nosuch", "nosuch")


def test_lvcreate_options_lvm2_records(pair: Pair) -> None:
    """lvcreate -p r, -k y, -C y: the LV lvcrypt makes reads as lvm2's does."""
    a, _, _, _ = pair.devices
    pair.lvm("vgcreate", "vg0", a)
    for options in (("-pr",), ("-ky",), ("-Cy",), ("-Cn", "-kn", "-prw")):
        suffix = "".join(re.sub(r"[^a-z]", "", option) for option in options)
        pair.lvc("lvcreate", *options, "-L", "4m", "-n", f"ours_{suffix}", "vg0")
        pair.lvm("lvcreate", *options, "-L", "4m", "-n", f"theirs_{suffix}", "vg0")
        text = _backup(pair, "vg0")
        assert _section(text, f"ours_{suffix}") .replace("ours_", "") == \
            _section(text, f"theirs_{suffix}").replace("theirs_", ""), options
    pair.assert_lvm2_clean("vg0")


def test_vgchange_properties_as_lvm2(pair: Pair) -> None:
    """Resizeable and allocation policy: a refusal stops the VG's whole change (nothing written), tags are
    deleted before they are added, and -a does not go with them (exit 3)."""
    a, b, c, d = pair.devices
    pair.lvm("vgcreate", "ours", a, b)
    pair.lvm("vgcreate", "theirs", c, d)
    steps = [("-xn",), ("-xn",), ("--alloc", "inherit"), ("--alloc", "cling", "--addtag", "q", "--deltag", "q"),
             ("--alloc", "cling"), ("-xy", "--addtag", "r"), ("--alloc", "normal", "--deltag", "q"),
             ("--alloc", "anywhere"), ("-ay", "-xn"), ("--alloc", "cling_by_tags")]
    for step in steps:
        _step(pair, ("vgchange", *step), "ours", "theirs")
    fields = "vg_attr,vg_allocation_policy,vg_tags,vg_seqno"
    rows = {row["vg_name"]: row for row in pair.report("lvm2", "vgs", "vg_name," + fields)}
    assert {**rows["ours"], "vg_name": ""} == {**rows["theirs"], "vg_name": ""}
    assert rows["ours"]["vg_attr"] == "wz--l-"
    assert _section(_backup(pair, "ours"), "ours") == _section(_backup(pair, "theirs"), "theirs")
    for vg in ("ours", "theirs"):
        pair.assert_lvm2_clean(vg)


def test_vgcreate_alloc_as_lvm2(pair: Pair) -> None:
    """vgcreate --alloc: the VG section lvm2 writes for its twin (normal is not written), inherit refused."""
    a, b, c, d = pair.devices
    for policy, ours, theirs in (("cling", a, b), ("normal", c, d)):
        pair.lvc("vgcreate", "--alloc", policy, "ours", ours)
        pair.lvm("vgcreate", "--alloc", policy, "theirs", theirs)
        assert _section(_backup(pair, "ours"), "ours") == _section(_backup(pair, "theirs"), "theirs"), policy
        pair.lvc("vgremove", "ours")
        pair.lvm("vgremove", "theirs")
    refused = pair.lvc("vgcreate", "--alloc", "inherit", "ours", a, check=False)
    theirs = pair.lvm("vgcreate", "--alloc", "inherit", "theirs", b, check=False)
    assert refused.returncode == theirs.returncode == 3
    assert refused.stderr.strip().removeprefix("lvcrypt: ") == theirs.stderr.splitlines()[0].strip()


def test_pvchange_allocatable_as_lvm2(pair: Pair) -> None:
    """-x on PVs of a VG (already so: a warning, exit 0) and on a PV of no VG (lvm2's refusal, exit 5);
    the summary line counts what changed. lvcrypt's report shows the same pv_attr as lvm2's."""
    a, b, c, d = pair.devices
    pair.lvm("vgcreate", "ours", a)
    pair.lvm("vgcreate", "theirs", b)
    pair.lvm("pvcreate", c, d)
    for step, ours, theirs in ((("-xn",), a, b), (("-xn",), a, b), (("-xy", "--addtag", "z"), a, b),
                               (("-xn",), c, d), (("--addtag", "z"), c, d)):
        _step(pair, ("pvchange", *step), ours, theirs)
    fields = "pv_name,pv_attr,pv_tags"
    for tool in ("lvcrypt", "lvm2"):
        rows = {row["pv_name"]: row for row in pair.report(tool, "pvs", fields)}
        assert rows[a]["pv_attr"] == rows[b]["pv_attr"] == "a--"
        assert rows[a]["pv_tags"] == rows[b]["pv_tags"] == "z"
    pair.lvc("pvchange", "-xn", a)
    for tool in ("lvcrypt", "lvm2"):  # lvm2's "used": in a VG, not allocatable
        assert pair.report(tool, "pvs", fields, a)[0]["pv_attr"] == "u--"
    refused = pair.lvc("lvcreate", "-L", "4m", "-n", "nowhere", "ours", check=False)
    assert refused.returncode == 5, refused.stderr


def test_lvresize_as_lvm2(pair: Pair) -> None:
    """lvresize grows or shrinks by the size given (absolute, +, -, %), with lvextend's and lvreduce's lines;
    the same size is lvm2's refusal. lvcrypt asks -y before it shrinks, as its lvreduce does."""
    a, b, c, d = pair.devices
    pair.lvm("vgcreate", "vg0", a, b)
    for name in ("ours", "theirs"):
        pair.lvm("lvcreate", "-L", "8m", "-n", name, "vg0")
    unconfirmed = pair.lvc("lvresize", "-L", "4m", "vg0/ours", check=False)
    assert unconfirmed.returncode == 5 and "-y" in unconfirmed.stderr
    for step in (("-L", "12m"), ("-L", "12m"), ("-y", "-L", "4m"), ("-l", "+2"), ("-y", "-L", "-4m"),
                 ("-l", "+10%VG")):
        _step(pair, ("lvresize", *step), "vg0/ours", "vg0/theirs")
    sizes = {row["lv_name"]: row["lv_size"] for row in pair.report("lvm2", "lvs", "lv_name,lv_size", "vg0")}
    assert sizes["ours"] == sizes["theirs"]
    pair.assert_lvm2_clean("vg0")
