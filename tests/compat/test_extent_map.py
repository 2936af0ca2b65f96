"""issue 15 ("Beyond lvm2"): `pvs --map` / `vgs --map` draw every PV's extents where lvm2 says they are.

The picture is checked cell by cell against lvm2's own account of the same extents: its
`pvdisplay -m` on a VG lvm2 made (linear, striped, a segment on the second PV, a PV in no
VG, and a PV large enough to be drawn one cell per two extents), and its vgcfgbackup of a
VG lvcrypt made with encrypted LVs and their keystore (lvm2 does not count those extents
as used, but its backup still says where they are).  Colour appears only on a terminal
and never with NO_COLOR.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, lvm
from crypt_lv_layout import lvm2_layout
from store_helpers import Pair
from test_lvm2_types_matrix import FIXTURES, Fixture, detach, templates  # noqa: F401
from test_reports_lvm2_types import _attach_read_only

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]
HEADING = re.compile(r"^  PV (\S+)  VG (\S+)  (\d+) extents of .*, (\d+) free, 1 cell = (\d+) extents?$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_map(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, int]]:
    """(cells by PV path, its VG legend's LV name by symbol, extents per cell) from a plain-text map."""
    cells: dict[str, str] = {}
    per_cell: dict[str, int] = {}
    legends: dict[str, dict[str, str]] = {}
    block: list[str] = []  # the PVs the next legend describes
    current = None
    in_legend = False
    for line in text.splitlines():
        heading = HEADING.match(line)
        if heading:
            if in_legend:
                block, in_legend = [], False
            current = heading.group(1)
            block.append(current)
            cells[current] = ""
            per_cell[current] = int(heading.group(5))
            legends[current] = {}
        elif line == "  Legend:":
            in_legend = True
        elif in_legend and line.startswith("    ") and line[4] not in ".+":
            for pv in block:
                legends[pv][line[4]] = line[6:].split()[0].strip("[]")
        elif current is not None and not in_legend and line.startswith("   "):
            cells[current] += line.split()[1]
    return cells, legends, per_cell


def lvm2_owners(devices: str, pv: str) -> list[str | None]:
    """Each extent's LV (None: free) from lvm2's `pvdisplay -m`."""
    out = lvm("pvdisplay", "-m", "--devices", devices, pv).stdout
    owners: list[str | None] = []
    for first, last, body in re.findall(r"Physical extent (\d+) to (\d+):\n(.*)\n", out):
        name = None if body.strip() == "FREE" else body.split("\t")[1].rsplit("/", 1)[1]
        owners += [name] * (int(last) - int(first) + 1)
    return owners


def expected_cells(owners: list[str | None], symbols: dict[str, str], per_cell: int) -> str:
    by_name = {name: symbol for symbol, name in symbols.items()}
    out = ""
    for start in range(0, len(owners), per_cell):
        group = set(owners[start:start + per_cell])
        out += "." if group == {None} else by_name[group.pop()] if len(group) == 1 else "+"
    return out


def lvcrypt_map(devices: str, tmp: Path, *args: str) -> str:
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp / "state"), "LVCRYPT_RUN_DIR": str(tmp / "run")}
    env.pop("NO_COLOR", None)
    result = subprocess.run([sys.executable, "-m", "lvcrypt", *args, "--devices", devices, "--map"],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not ANSI.search(result.stdout)  # not a terminal: plain text
    return result.stdout


@pytest.fixture
def lvm2_vg(loop_devices: Callable[..., list[str]]) -> list[str]:
    small = loop_devices(2, 64)
    big = loop_devices(1, 1000)
    orphan = loop_devices(1, 16)
    pvs = [*small, *big, *orphan]
    devices = ",".join(pvs)
    lvm("pvcreate", "--devices", devices, *pvs)
    lvm("vgcreate", "--devices", devices, "vg0", *small)
    lvm("vgcreate", "--devices", devices, "-s", "1M", "vgbig", *big)
    create = ["lvcreate", "--devices", devices, "--driverloaded", "n", "-an", "-Zn"]
    lvm(*create, "-n", "lin", "-L", "8M", "vg0")
    lvm(*create, "-n", "str", "-i2", "-I64", "-L", "16M", "vg0")
    lvm(*create, "-n", "two", "-L", "8M", "vg0", small[1])
    lvm("lvextend", "--devices", devices, "--driverloaded", "n", "-L", "+4M", "vg0/lin", small[1])
    lvm(*create, "-n", "odd", "-l", "3", "vgbig")
    lvm(*create, "-n", "next", "-l", "100", "vgbig")
    return pvs


def test_pvs_map_draws_lvm2s_extents(lvm2_vg: list[str], tmp_path: Path) -> None:
    devices = ",".join(lvm2_vg)
    text = lvcrypt_map(devices, tmp_path, "pvs")
    cells, legends, per_cell = parse_map(text)
    assert set(legends[lvm2_vg[0]].values()) == {"lin", "str", "two"}
    assert set(legends[lvm2_vg[2]].values()) == {"odd", "next"}
    for pv in lvm2_vg[:3]:
        assert cells[pv] == expected_cells(lvm2_owners(devices, pv), legends[pv], per_cell[pv]), pv
    big = lvm2_vg[2]
    assert per_cell[big] == 2 and "+" in cells[big]  # `odd` ends inside a two-extent cell shared with `next`
    assert f"  PV {lvm2_vg[3]}  in no VG: no extents yet\n" in text
    only = parse_map(lvcrypt_map(devices, tmp_path, "pvs", lvm2_vg[1]))[0]
    assert list(only) == [lvm2_vg[1]] and only[lvm2_vg[1]] == cells[lvm2_vg[1]]


def test_vgs_map_marks_encrypted_lvs_and_keystores(loop_devices: Callable[..., list[str]], tmp_path: Path) -> None:
    pair = Pair(loop_devices(2, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgc", *pair.devices)
    (tmp_path / "vk").write_bytes(bytes(range(64)))
    key = ["--key-file", str(tmp_path / "vk")]
    pair.lvc("lvcreate", "-L", "4M", "-n", "plain", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
             *key, "-L", "8M", "-n", "enc", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--keystore", "cryptostore0", *key, "-i2", "-L", "16M", "-n", "senc", "vgc")
    text = lvcrypt_map(pair.device_list, tmp_path, "vgs", "vgc")
    cells, legends, per_cell = parse_map(text)
    symbols = legends[pair.devices[0]]
    assert symbols == {"#": "cryptostore0", "a": "enc", "b": "senc", "A": "plain"}
    assert "    # [cryptostore0] keystore (plain) of enc, senc\n" in text
    layout = lvm2_layout(pair)  # lvm2's own backup of the VG: where it says each area is
    for key_name, pv in layout.pvs.items():
        owners: list[str | None] = [None] * pv.pe_count
        for lv in layout.lvs.values():
            for segment in lv.segments:
                for area, count in segment.pv_areas():
                    if area.pv == key_name:
                        owners[area.extent:area.extent + count] = [lv.name] * count
        path = next(device for device in pair.devices if device in cells and
                    pair.lvm("pvs", "--noheadings", "-o", "pv_uuid", device).stdout.strip() == pv.id)
        assert cells[path] == expected_cells(owners, symbols, per_cell[path])


def _on_a_terminal(devices: str, tmp: Path, no_color: bool) -> str:
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp / "state"), "LVCRYPT_RUN_DIR": str(tmp / "run")}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "lvcrypt", "pvs", "--devices", devices, "--map"],
                              stdout=secondary, stderr=subprocess.PIPE, env=env, cwd=ROOT, timeout=120)
        os.close(secondary)
        secondary = -1
        assert done.returncode == 0, done.stderr
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode().replace("\r\n", "\n")
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)


def test_colour_only_on_a_terminal_and_never_with_no_color(lvm2_vg: list[str], tmp_path: Path) -> None:
    devices = ",".join(lvm2_vg[:2])
    coloured = _on_a_terminal(devices, tmp_path, no_color=False)
    assert ANSI.search(coloured)
    cells_coloured = parse_map(ANSI.sub("", coloured))[0]
    plain = _on_a_terminal(devices, tmp_path, no_color=True)
    assert not ANSI.search(plain)
    assert parse_map(plain)[0] == cells_coloured == parse_map(lvcrypt_map(devices, tmp_path, "pvs"))[0]


@pytest.mark.slow
@pytest.mark.parametrize("fixture", FIXTURES, ids=[fixture.name for fixture in FIXTURES])
def test_vgs_map_of_every_lvm2_type_matches_pvdisplay_m(fixture: Fixture, templates: Callable[[Fixture], list[Path]],
                                                       tmp_path: Path) -> None:
    """Thin pools, raid and mirror images, cache pools, snapshots: every hidden sub-LV has its own symbol."""
    devices = _attach_read_only(templates(fixture))
    try:
        listed = ",".join(devices)
        cells, legends, per_cell = parse_map(lvcrypt_map(listed, tmp_path, "vgs", fixture.vg))
        assert sorted(cells) == sorted(devices)
        for pv in devices:
            assert cells[pv] == expected_cells(lvm2_owners(listed, pv), legends[pv], per_cell[pv]), pv
    finally:
        detach(devices)
