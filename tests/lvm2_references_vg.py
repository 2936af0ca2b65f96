"""A VG whose LVs refer to each other in every way lvm2 knows, shared by the host and kernel-tier tests.

lvm2's own sample (tests/data/lvm2_thin_raid_integrity.vg: thin pool, thin
volume, raid1, integrity) plus a snapshot, a mirror, an unknown segment type
and a historical LV, restored onto real devices by lvm2 itself.
"""

from __future__ import annotations

from pathlib import Path

from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import Section
from lvcrypt.metadata.write import write_text
from store_helpers import Pair

SAMPLE = Path(__file__).parent / "data" / "lvm2_thin_raid_integrity.vg"
VG = "vgx"
VISIBLE = ["READ", "WRITE", "VISIBLE"]
HIDDEN = ["READ", "WRITE"]


def lv_section(number: int, status: list[str], *segments: Section) -> Section:
    body = Section(id=f"Refs{number:02d}-aaaa-bbbb-cccc-dddd-eeee-ffff{number:02d}", status=status, flags=[],
                   creation_time=1795443706, creation_host="(none)", segment_count=len(segments))
    for index, segment in enumerate(segments, 1):
        body[f"segment{index}"] = segment
    return body


def linear_section(pv: str, pe: int, count: int) -> Section:
    return Section(start_extent=0, extent_count=count, type="striped", stripe_count=1, stripes=[pv, pe])


def references_vg_text() -> str:
    """lvm2's sample plus a snapshot, a mirror, an unknown type and a historical LV (free extents only)."""
    tree = parse_text(SAMPLE.read_text())
    body = tree[VG]
    lvs = body["logical_volumes"]
    assert isinstance(body, Section) and isinstance(lvs, Section)
    lvs["origin"] = lv_section(1, VISIBLE, linear_section("pv0", 25, 2))
    lvs["snap"] = lv_section(2, VISIBLE, linear_section("pv0", 27, 1))
    lvs["snapshot0"] = lv_section(3, HIDDEN, Section(start_extent=0, extent_count=2, type="snapshot", chunk_size=8,
                                              origin="origin", cow_store="snap"))
    lvs["m"] = lv_section(4, VISIBLE, Section(start_extent=0, extent_count=1, type="mirror", mirror_count=2, region_size=1024,
                                       mirror_log="m_mlog", mirrors=["m_mimage_0", 0, "m_mimage_1", 0]))
    lvs["m_mlog"] = lv_section(5, HIDDEN, linear_section("pv1", 14, 1))
    lvs["m_mimage_0"] = lv_section(6, HIDDEN, linear_section("pv0", 28, 1))
    lvs["m_mimage_1"] = lv_section(7, HIDDEN, linear_section("pv1", 13, 1))
    lvs["hplain"] = lv_section(8, VISIBLE, linear_section("pv0", 29, 1))
    lvs["backing"] = lv_section(9, VISIBLE, linear_section("pv0", 30, 1))
    lvs["futur"] = lv_section(10, VISIBLE, Section(start_extent=0, extent_count=1, type="futuretype", backing_lv="backing"))
    body["historical_logical_volumes"] = Section(gone=Section(id="Refs11-aaaa-bbbb-cccc-dddd-eeee-ffff11",
                                                              creation_time=1795443000, removal_time=1795443100,
                                                              origin="hplain"))
    body["seqno"] = 16
    return write_text(tree)


def restore_with_lvm2(pair: Pair) -> Path:
    """The sample VG on the pair's two devices, restored by lvm2 itself; returns its text file."""
    text = pair.tmp / "vgx.vg"
    text.write_text(references_vg_text())
    for device, pv in zip(pair.devices, ("bNAIfY-qSZY-Edfy-8mN5-mc7z-nbqq-CYh0X5",
                                         "HUReqi-0Dmf-q34f-89hz-E34K-ih7v-vhIjCo")):
        pair.lvm("pvcreate", "-q", "--uuid", pv, "--restorefile", str(text), device)
    pair.lvm("vgcfgrestore", "-q", "--force", "-f", str(text), VG)
    return text
