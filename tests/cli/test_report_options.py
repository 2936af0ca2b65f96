"""issue 15 (Reports): lvm2's report options on VGs lvcrypt made, crypt LVs among them.

tests/compat/test_report_options_lvm2.py compares every option byte for byte with lvm2 on VGs
lvm2 wrote; here the same options meet what only lvcrypt has: crypt LVs (whose segment type
lvm2 does not know, so it shows them with 0 stripes and no devices: the one documented
difference) and the crypt fields, which select, sort and lay out like lvm2's own fields.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from store_helpers import Pair

FAST = ["--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """VG `vgr` made by lvcrypt: a striped crypt LV (plain key), a linear crypt LV, a plain LV.

    One VG for the module (the tests only read it): two loop devices, detached at the end."""
    if os.geteuid() != 0 or shutil.which("lvm") is None:
        pytest.skip("needs root for loop devices, and lvm2")
    tmp_path = tmp_path_factory.mktemp("report_options")
    devices: list[str] = []
    try:
        for index in range(2):
            image = tmp_path / f"pv{index}.img"
            with open(image, "wb") as f:
                f.truncate(64 << 20)
            devices.append(subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                                          check=True).stdout.strip())
        pair = Pair(devices, tmp_path)
        pair.lvc("pvcreate", *pair.devices)
        pair.lvc("vgcreate", "vgr", *pair.devices)
        key = tmp_path / "vk.bin"
        key.write_bytes(bytes(range(64)))
        pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(key), "-i", "2", "-I", "64k", "-L", "16m",
                 "-n", "striped", "vgr")
        pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(key), "-L", "8m", "-n", "single", "vgr")
        pair.lvc("lvcreate", "-L", "4m", "-n", "plain", "vgr")
        yield pair
    finally:
        for device in devices:
            subprocess.run(["losetup", "-d", device], capture_output=True)


def lines(pair: Pair, *args: str) -> list[str]:
    result = pair.lvc("lvs", "--noheadings", *args, "vgr")
    assert result.stderr == ""
    return [line.strip() for line in result.stdout.splitlines()]


def test_striped_crypt_lv_reports_its_stripes(pair: Pair) -> None:
    """#Str counts the striped layer under dm-crypt; lvm2, not knowing the type, says 0."""
    assert lines(pair, "-o", "lv_name,stripes,segtype,crypt_handler") == [
        "plain      1 linear",
        "single     1 crypt  plain",
        "striped    2 crypt  plain",
    ]
    theirs = pair.lvm("lvs", "--noheadings", "-o", "lv_name,stripes", "vgr").stdout.split()
    assert theirs == ["plain", "1", "single", "0", "striped", "0"]


def test_crypt_fields_select_and_sort(pair: Pair) -> None:
    assert lines(pair, "-o", "lv_name", "-S", "crypt_handler=plain && stripes>1") == ["striped"]
    assert lines(pair, "-o", "lv_name", "-S", "crypt_handler=\"\"") == ["plain"]
    assert lines(pair, "-o", "lv_name", "-S", "crypt_keystore=~^crypto") == ["single", "striped"]
    assert lines(pair, "-o", "lv_name", "-O", "-lv_size") == ["striped", "single", "plain"]
    # each LV has its own keystore; hidden LVs sort by their bare names, as in lvm2
    assert lines(pair, "-a", "-o", "lv_name", "-O", "-crypt_handler,-lv_name", "-S", "lv_size<10m") == [
        "single", "[cryptostore1]", "[cryptostore0]", "plain"]


def test_selection_errors_write_nothing_and_print_nothing(pair: Pair) -> None:
    before = [Path(device).read_bytes()[:1 << 20] for device in pair.devices]
    for selection, message in (("nosuch=1", "Unrecognised selection field: nosuch"),
                               ("lv_size>8x", "Selection syntax error at 'x'."),
                               ("crypt_handler>1", "Operator can be used only with number, size, time or "
                                                   "percent fields: crypt_handler"),
                               ("seg_count=2m", "Found size unit specifier but numeric value expected for "
                                                "selection field seg_count."),
                               ("lv_tags=~x", "dm_report: incompatible comparison type for selection field "
                                              "lv_tags")):
        result = pair.lvc("lvs", "-S", selection, "vgr", check=False)
        assert (result.returncode, result.stdout, result.stderr) == (5, "", f"lvcrypt: {message}\n")
    assert [Path(device).read_bytes()[:1 << 20] for device in pair.devices] == before


def test_field_help_per_command(pair: Pair) -> None:
    """`-o help` prints lvm2's one list of every report's fields on stderr, crypt fields at the end,
    and reports nothing (exit 0); lvm2 prints the same list for every command."""
    lists = []
    for command in ("lvs", "vgs", "pvs"):
        result = pair.lvc(command, "-o", "help")
        theirs = "".join(line for line in pair.lvm(command, "-o", "help").stderr.splitlines(True)
                         if "WARNING: Unrecognised segment type crypt" not in line)  # lvm2 reads the VG after
        assert result.stdout == "" and result.stderr.startswith(theirs) and "crypt_handler" not in theirs
        assert "    crypt_handler " in result.stderr[len(theirs):]
        lists.append(result.stderr)
    assert lists[0] == lists[1] == lists[2]


def test_unknown_unit_is_a_usage_error(pair: Pair) -> None:
    result = pair.lvc("lvs", "--units", "x", "vgr", check=False)
    assert result.returncode == 3 and result.stdout == ""
    assert "Invalid units specification" in result.stderr  # lvm2's words for any unit it cannot read
