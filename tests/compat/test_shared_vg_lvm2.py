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
from store_helpers import Pair

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]

VG_FLAGS = 'status = ["RESIZEABLE", "READ", "WRITE"]\n\tflags = []\n'
LV_HOST = '\t\t\tcreation_host = '
LVMLOCK = """
\t\tlvmlock {
\t\t\tid = "p3Yxbv-0LBa-0fDN-k5yB-V1rN-Zz1d-pZ4Fc1"
\t\t\tstatus = ["READ", "WRITE"]
\t\t\tflags = []
\t\t\tcreation_time = 1796188722
\t\t\tcreation_host = "host1"
\t\t\tread_ahead = -1\t# None
\t\t\tsegment_count = 1

\t\t\tsegment1 {
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 256

\t\t\t\ttype = "striped"
\t\t\t\tstripe_count = 1

\t\t\t\tstripes = [
\t\t\t\t\t"pv0", 8
\t\t\t\t]
\t\t\t}
\t\t}
"""


# (lock_type, VG lock_args, LV lock_args) as lvm2 writes them: sanlock keeps its leases in the lvmlock
# LV (an LV's lock_args give its lease's offset there); dlm names the cluster, its LVs say "dlm", no lvmlock LV.
SANLOCK = ("sanlock", "1.0.0:lvmlock", "1.0.0:70254592")
DLM = ("dlm", "1.0.0:mycluster", "dlm")


def shared_text(local: str, kind: tuple[str, str, str] = SANLOCK) -> str:
    """lvm2's backup of vgx (one LV on extents 0-7) made into a shared VG as lvm2 writes one."""
    lock_type, lock_args, lv_lock_args = kind
    text = local.replace(VG_FLAGS, f'{VG_FLAGS}\tlock_type = "{lock_type}"\n\tlock_args = "{lock_args}"\n', 1)
    host_line = text.index(LV_HOST)
    line_end = text.index("\n", host_line) + 1
    text = text[:line_end] + f'\t\t\tlock_args = "{lv_lock_args}"\n' + text[line_end:]
    if lock_type != "sanlock":
        return text
    opening = text.index("\tlogical_volumes {\n") + len("\tlogical_volumes {\n")
    return text[:opening] + LVMLOCK + text[opening:]


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    return Pair(loop_devices(1, 320), tmp_path)


def make_shared(pair: Pair, kind: tuple[str, str, str] = SANLOCK) -> tuple[str, str]:
    """(lvm2's local backup, the shared text lvm2 restored) of vgx."""
    pair.lvm("vgcreate", "-s", "1m", "vgx", *pair.devices)
    pair.lvm("lvcreate", "-l", "8", "-n", "l1", "vgx")
    backup = pair.tmp / "vgx.local"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgx")
    local = backup.read_text()
    shared = shared_text(local, kind)
    (pair.tmp / "vgx.shared").write_text(shared)
    pair.lvm("vgcfgrestore", "--force", "-f", str(pair.tmp / "vgx.shared"), "vgx")
    return local, shared


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


def test_shared_text_round_trips_and_lvm2_restores_what_lvcrypt_writes(pair: Pair) -> None:
    _, shared = make_shared(pair)
    vg = tree_to_vg(parse_text(shared))
    assert (vg.lock_type, vg.lock_args, vg.shared) == ("sanlock", "1.0.0:lvmlock", True)
    assert vg.lvs["l1"].lock_args == "1.0.0:70254592" and vg.lvs["lvmlock"].lock_args is None
    written = write_text(vg_to_tree(vg))
    assert significant(written) == significant(shared)
    before = pair.report("lvm2", "lvs", "lv_name,lv_uuid,lv_lockargs,devices", "--shared")
    (pair.tmp / "ours.vg").write_text(write_text(vg_to_tree(vg)))
    pair.lvm("vgcfgrestore", "--force", "-f", str(pair.tmp / "ours.vg"), "vgx")
    assert pair.report("lvm2", "lvs", "lv_name,lv_uuid,lv_lockargs,devices", "--shared") == before
    assert pair.report("lvm2", "vgs", "vg_attr,vg_lock_args", "--shared") == [
        {"vg_attr": "wz--ns", "vg_lock_args": "1.0.0:lvmlock"}]


def test_lock_keys_set_on_the_model_land_where_lvm2_writes_them(pair: Pair) -> None:
    """What `vgcreate --shared` and init_lv need: keys set on a local VG are written in lvm2's places."""
    local, shared = make_shared(pair)
    vg = tree_to_vg(parse_text(local))
    vg.lock_type, vg.lock_args = "sanlock", "1.0.0:lvmlock"
    vg.lvs["l1"].lock_args = "1.0.0:70254592"
    expected = tree_to_vg(parse_text(shared))
    del expected.lvs["lvmlock"]
    assert significant(write_text(vg_to_tree(vg))) == significant(write_text(vg_to_tree(expected)))
    cleared = tree_to_vg(parse_text(shared))
    cleared.lock_type = cleared.lock_args = cleared.lvs["l1"].lock_args = None
    del cleared.lvs["lvmlock"]
    assert significant(write_text(vg_to_tree(cleared))) == significant(local)
