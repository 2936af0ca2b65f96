"""lvm2 as the oracle for the text format: files lvm2 writes parse, validate and
round-trip, and what lvcrypt writes back is restored by lvm2 to the same VG."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Callable

import pytest

from conftest import lvm, run_lvcrypt
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.model import StripedSegment
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import ordered_items
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text
from metadata_helpers import significant

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]

REPORT_FIELDS = "lv_name,lv_uuid,lv_size,seg_count,lv_tags,lv_attr,devices,segtype,stripes,stripe_size"


def report(devices: str, vg: str) -> tuple[object, object]:
    lvs = lvm("lvs", "--devices", devices, "-a", "--reportformat", "json", "--units", "b", "-o", REPORT_FIELDS,
              "--segments", vg).stdout
    vgs = lvm("vgs", "--devices", devices, "--reportformat", "json", "--units", "b",
              "-o", "vg_name,vg_uuid,vg_size,vg_free,lv_count,pv_count,vg_tags,vg_seqno", vg).stdout
    return json.loads(lvs), json.loads(vgs)


def build_shapes(devices: list[str], vg: str) -> str:
    """One VG with the shapes lvm2 writes: many LVs, striped, multi-segment, tags, holes."""
    joined = ",".join(devices)
    d = ["--devices", joined]
    lv_opts = d + ["--driverloaded", "n"]
    lvm("pvcreate", "-q", *d, *devices)
    lvm("vgcreate", "-q", *d, "-s", "1m", "--addtag", "site_a", vg, *devices)
    for n in range(24):
        tags = ["--addtag", f"t{n}"] if n % 3 == 0 else []
        lvm("lvcreate", "-q", *lv_opts, "-an", "-Zn", "-l", str(1 + n % 3), "-n", f"lv{n}", *tags, vg, devices[n % 3])
    lvm("lvcreate", "-q", *lv_opts, "-an", "-Zn", "-i", "2", "-I", "64k", "-l", "8", "-n", "st2", vg)
    lvm("lvcreate", "-q", *lv_opts, "-an", "-Zn", "-i", "3", "-I", "128k", "-l", "6", "-n", "st3", vg)
    lvm("lvcreate", "-q", *lv_opts, "-an", "-Zn", "-l", "2", "-n", "grown", vg, devices[0])
    lvm("lvextend", "-q", *lv_opts, "-l", "+3", f"{vg}/grown", devices[1])
    lvm("lvextend", "-q", *lv_opts, "-l", "+2", f"{vg}/grown", devices[2])
    for n in (4, 5, 11):
        lvm("lvremove", "-q", "-y", *lv_opts, f"{vg}/lv{n}")
    lvm("lvcreate", "-q", *lv_opts, "-an", "-Zn", "-l", "7", "-n", "fills_holes", vg)
    return joined


def test_lvm2_files_parse_round_trip_and_restore(loop_devices: Callable[..., list[str]], tmp_path: Path) -> None:
    devices = loop_devices(3, 64)
    vg = "lvct" + uuid.uuid4().hex[:8]
    joined = build_shapes(devices, vg)
    backup = tmp_path / "lvm2.txt"
    lvm("vgcfgbackup", "-q", "--devices", joined, "-f", str(backup), vg)
    before = report(joined, vg)
    text = backup.read_text()

    # lvcrypt reads what lvm2 wrote.
    assert run_lvcrypt("metadata", "check", str(backup)).returncode == 0
    tree = parse_text(text, str(backup))
    model = tree_to_vg(tree, str(backup))
    validate(model, str(backup))
    assert len(model.lvs) == 24 - 3 + 4
    grown = model.lvs["grown"]
    assert [s.extent_count for s in grown.segments] == [2, 3, 2]
    st3 = grown_segment = model.lvs["st3"].segments[0]
    assert isinstance(grown_segment, StripedSegment) and st3.stripe_count == 3 and st3.stripe_size == 256
    assert model.tags == ["site_a"] and model.lvs["lv0"].tags == ["t0"]
    assert model.lvs["lv1"].flags == []

    # The writer reproduces lvm2's text up to comments and blank space.
    written = write_text(vg_to_tree(model))
    assert significant(written) == significant(text)
    assert ordered_items(parse_text(written)) == ordered_items(tree)

    # lvm2 accepts lvcrypt's text as a backup to restore: bump seqno so it is a real change.
    model.seqno += 1
    model.lvs["lv0"].tags.append("written_by_lvcrypt")
    ours = tmp_path / "lvcrypt.txt"
    ours.write_text(write_text(vg_to_tree(model)))
    lvm("vgcfgrestore", "-q", "--devices", joined, "-f", str(ours), vg)
    after = report(joined, vg)
    lvs_before, vgs_before = before
    lvs_after, vgs_after = after
    rows_before = lvs_before["report"][0]["seg"]  # type: ignore[index]
    rows_after = lvs_after["report"][0]["seg"]  # type: ignore[index]
    for row in rows_before:
        if row["lv_name"] == "lv0":
            row["lv_tags"] = "t0,written_by_lvcrypt"
    assert rows_after == rows_before
    vg_before = vgs_before["report"][0]["vg"][0]  # type: ignore[index]
    vg_after = vgs_after["report"][0]["vg"][0]  # type: ignore[index]
    assert int(vg_after.pop("vg_seqno")) > int(vg_before.pop("vg_seqno"))
    assert vg_after == vg_before
    lvm("vgck", "--devices", joined, vg)

    # And lvm2's own re-read of what it restored still round-trips through lvcrypt.
    again = tmp_path / "again.txt"
    lvm("vgcfgbackup", "-q", "--devices", joined, "-f", str(again), vg)
    reread = tree_to_vg(parse_text(again.read_text()))
    assert reread.lvs["lv0"].tags == ["t0", "written_by_lvcrypt"]
    assert ordered_items(vg_to_tree(reread)["" + vg]["logical_volumes"]) == \
        ordered_items(vg_to_tree(model)[vg]["logical_volumes"])


def test_lvm2_lists_crypt_lvs_from_lvcrypt_text(loop_devices: Callable[..., list[str]], tmp_path: Path) -> None:
    """The RFC layout with a one-extent plain keystore restores into lvm2, which lists it and refuses changes."""
    devices = loop_devices(1, 256)
    vg = "lvcc" + uuid.uuid4().hex[:8]
    d = ["--devices", devices[0]]
    lvm("pvcreate", "-q", *d, devices[0])
    lvm("vgcreate", "-q", *d, vg, devices[0])
    backup = tmp_path / "b.txt"
    lvm("vgcfgbackup", "-q", *d, "-f", str(backup), vg)
    model = tree_to_vg(parse_text(backup.read_text()))
    rfc = tree_to_vg(parse_text((Path(__file__).parent.parent / "data" / "rfc_example.vg").read_text()))
    store = rfc.lvs["cryptostore0"]
    store.segments[0].extent_count = 1
    store.segments[0].areas = [type(rfc.lvs["secret"].segments[0].areas[0])("pv0", 11)]  # type: ignore[attr-defined]
    for name in ("secret", "cryptostore0", "home", "cryptostore1", "data"):
        model.lvs[name] = rfc.lvs[name]
    model.seqno += 1
    validate(model)
    text_path = tmp_path / "crypt.txt"
    text_path.write_text(write_text(vg_to_tree(model)))
    lvm("vgcfgrestore", "-q", *d, "-f", str(text_path), vg)
    listed = json.loads(lvm("lvs", *d, "-a", "--reportformat", "json", "-o", "lv_name,lv_attr", vg).stdout)
    rows = {row["lv_name"]: row["lv_attr"] for row in listed["report"][0]["lv"]}
    assert set(rows) == {"secret", "[cryptostore0]", "home", "[cryptostore1]", "data"}
    # lvm2 marks the segment types it does not know (crypt, crypt-keystore) with 'u' and lists the rest normally.
    assert rows["data"].startswith("-wi-")
    assert all("u" in rows[name] for name in ("secret", "[cryptostore0]", "home", "[cryptostore1]")), rows
    refused = lvm("lvcreate", "-q", *d, "--driverloaded", "n", "-an", "-Zn", "-l", "1", "-n", "new", vg, check=False)
    assert refused.returncode != 0
    # lvm2's own backup of that VG is still a file lvcrypt reads, with the crypt segments intact.
    back = tmp_path / "back.txt"
    lvm("vgcfgbackup", "-q", *d, "-f", str(back), vg)
    reread = tree_to_vg(parse_text(back.read_text()))
    validate(reread)
    assert reread.lvs["home"].keystores() == ["cryptostore1"]
    assert reread.lvs["cryptostore1"].segments[0].handler == "luks1"  # type: ignore[attr-defined]
