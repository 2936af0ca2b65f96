"""A PV of another VG is never relabelled: every command scans the devices it is given.

lvm2 makes the other VG (one PV with the metadata, one with `--metadatacopies 0`), so the only
trace of membership on the second PV is the PV_EXT_USED flag in its header.  lvm2 stays the
judge: after each refusal its VG reads clean and unchanged, and the bytes of the PVs are identical.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle


def _lvcrypt(pair: Pair, *args: str, devices: list[str] | None) -> subprocess.CompletedProcess[str]:
    """lvcrypt with --devices limited to `devices` (None: no --devices), stdin not a terminal."""
    option = ["--devices", ",".join(devices)] if devices is not None else []
    return subprocess.run([sys.executable, "-m", "lvcrypt", args[0], *option, *args[1:]], capture_output=True,
                          text=True, env=pair.env, cwd=ROOT, stdin=subprocess.DEVNULL)


def _refused(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 5, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lvcrypt: "), result.stderr
    assert says in result.stderr, result.stderr


@pytest.fixture
def two_vgs(loop_devices: Callable[..., list[str]], lvm2: None, tmp_path: Path) -> Pair:
    """vga (lvcrypt) on A; vgb (lvm2) on B1 (metadata) and B2 (no metadata area), with an LV on each."""
    pair = Pair(loop_devices(3, 32), tmp_path)
    a, b1, b2 = pair.devices
    pair.lvm("pvcreate", b1)
    pair.lvm("pvcreate", "--metadatacopies", "0", b2)
    pair.lvm("vgcreate", "-s", "1m", "vgb", b1, b2)
    pair.lvm("lvcreate", "-l", "20", "-n", "lb", "vgb", b1)
    pair.lvm("lvcreate", "-l", "20", "-n", "lc", "vgb", b2)
    pair.lvc("vgcreate", "-s", "1m", "vga", a)
    return pair


def _vgb_state(pair: Pair) -> str:
    pair.assert_lvm2_clean("vgb")
    return pair.lvm("lvs", "-a", "--units", "b", "-o", "lv_name,lv_size,devices,seg_pe_ranges", "vgb").stdout


def test_vgextend_with_devices_naming_only_its_own_vg_refuses_pvs_of_another(two_vgs: Pair) -> None:
    pair = two_vgs
    a, b1, b2 = pair.devices
    before, listing = digests([b1, b2]), _vgb_state(pair)
    _refused(_lvcrypt(pair, "vgextend", "vga", b1, devices=[a]),
             f"Physical volume '{b1}' is already in volume group 'vgb'")
    _refused(_lvcrypt(pair, "vgextend", "vga", b2, devices=[a]),
             f"PV {b2} is used by a VG but its metadata is missing.")
    _refused(_lvcrypt(pair, "vgextend", "vga", a, b2, devices=[a]), "is already in volume group 'vga'")
    assert digests([b1, b2]) == before
    assert _vgb_state(pair) == listing


def test_without_devices_option_the_named_paths_are_scanned(two_vgs: Pair) -> None:
    pair = two_vgs
    a, b1, b2 = pair.devices
    before, listing = digests([b1, b2]), _vgb_state(pair)
    (pair.tmp / "state").mkdir(exist_ok=True)
    (pair.tmp / "state" / "devices").write_text(f"{a}\n")
    _refused(_lvcrypt(pair, "vgextend", "vga", b2, devices=None), "used by a VG but its metadata is missing")
    _refused(_lvcrypt(pair, "vgextend", "vga", b1, devices=None), "already in volume group 'vgb'")
    _refused(_lvcrypt(pair, "vgcreate", "vgn", b2, devices=None), "used by a VG but its metadata is missing")
    _refused(_lvcrypt(pair, "pvcreate", b2, devices=None), "used by a VG but its metadata is missing")
    _refused(_lvcrypt(pair, "pvcreate", b1, devices=[b1]),
             f"Can't initialize physical volume \"{b1}\" of volume group \"vgb\" without -ff")
    assert digests([b1, b2]) == before
    assert _vgb_state(pair) == listing


def test_double_force_needs_a_yes(two_vgs: Pair) -> None:
    pair = two_vgs
    a, b1, b2 = pair.devices
    before, listing = digests([b1, b2]), _vgb_state(pair)
    _refused(_lvcrypt(pair, "pvcreate", "-ff", b2, devices=[b2]), "-ff needs a yes")
    _refused(_lvcrypt(pair, "vgextend", "-ff", "vga", b2, devices=[a]), "-ff needs a yes")
    _refused(_lvcrypt(pair, "vgextend", "-f", "-y", "vga", b2, devices=[a]), "used by a VG but its metadata")
    _refused(_lvcrypt(pair, "vgextend", "-ff", "-y", "vga", a, devices=[a]), f"'{a}' is already in volume group 'vga'")
    assert digests([b1, b2]) == before
    assert _vgb_state(pair) == listing
    forced = _lvcrypt(pair, "vgextend", "-ff", "-y", "vga", b2, devices=[a])
    assert forced.returncode == 0, forced.stderr
    only_a = Pair([a, b2], pair.tmp)  # vgb now misses B2, as lvm2's own pvcreate -ff -y leaves it
    rows = {row["pv_name"]: row["vg_name"] for row in only_a.report("lvm2", "pvs", "pv_name,vg_name")}
    assert rows == {a: "vga", b2: "vga"}
    only_a.assert_lvm2_clean("vga")


def test_free_pvs_are_still_added(loop_devices: Callable[..., list[str]], lvm2: None, tmp_path: Path) -> None:
    """Refusing everything is not safety: orphan PVs (lvm2's and blank devices) join as before."""
    pair = Pair(loop_devices(3, 32), tmp_path)
    a, b, c = pair.devices
    pair.lvm("pvcreate", b)
    pair.lvc("vgcreate", "-s", "1m", "vga", a)
    result = _lvcrypt(pair, "vgextend", "vga", b, c, devices=[a])
    assert result.returncode == 0, result.stderr
    pair.assert_agree("vga")
    pair.assert_lvm2_clean("vga")


def test_pvremove_and_multi_device_pvcreate_refuse_before_writing(two_vgs: Pair, tmp_path: Path) -> None:
    """A refusal for the last device named leaves the first ones untouched too."""
    pair = two_vgs
    a, b1, b2 = pair.devices
    blank = tmp_path / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(16 << 20)
    before, listing = digests([b1, b2, str(blank)]), _vgb_state(pair)
    _refused(_lvcrypt(pair, "pvcreate", str(blank), b2, devices=[b2]), "used by a VG but its metadata is missing")
    _refused(_lvcrypt(pair, "vgextend", "vga", str(blank), b2, devices=[a]), "used by a VG but its metadata")
    _refused(_lvcrypt(pair, "pvremove", b2, devices=[b2]), "used by a VG but its metadata is missing")
    _refused(_lvcrypt(pair, "pvremove", "-ff", b2, devices=[b2]), "-ff needs a yes")
    assert digests([b1, b2, str(blank)]) == before
    assert _vgb_state(pair) == listing
