"""Bad input to the PV/VG/LV commands: one line on stderr, exit 5 (3 for arguments), nothing written.

Damaged labels, metadata area headers and texts, PVs of another VG, missing PVs; and the
good case next to them: one good metadata copy out of two is enough to read and repair.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from lvcrypt.store.disk import Disk
from lvcrypt.store.mda import plan_write
from lvcrypt.store.physical import read_pv
from store_helpers import Pair, digests


def _images(tmp_path: Path, count: int, size_mib: int = 32) -> list[str]:
    paths = []
    for index in range(count):
        path = tmp_path / f"img{index}.img"
        with open(path, "wb") as f:
            f.truncate(size_mib << 20)
        paths.append(str(path))
    return paths


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


def _fails(pair: Pair, *args: str, status: int = 5, says: str = "") -> str:
    """Run lvcrypt expecting a one-line failure; returns the message."""
    result = pair.lvc(*args, check=False)
    assert result.returncode == status, (args, result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lvcrypt: "), result.stderr
    assert "Traceback" not in result.stderr
    assert says.lower() in result.stderr.lower(), result.stderr
    return result.stderr


@pytest.fixture
def vg_on_images(tmp_path: Path) -> Pair:
    pair = Pair(_images(tmp_path, 3), tmp_path)
    a, b, _ = pair.devices
    pair.lvc("pvcreate", a, b)
    pair.lvc("vgcreate", "-s", "1m", "vga", a, b)
    pair.lvc("lvcreate", "-l", "3", "-n", "one", "vga")
    return pair


def test_damaged_label_refused_and_nothing_written(vg_on_images: Pair) -> None:
    pair = vg_on_images
    a, b, c = pair.devices
    _flip(b, 512 + 40)  # inside the PV header, covered by the label CRC
    before = digests(pair.devices)
    listing = pair.lvc("lvs", "vga")
    assert "one" in listing.stdout and "missing PV" in listing.stderr
    _fails(pair, "lvcreate", "-l", "1", "-n", "two", "vga", says="missing")
    _fails(pair, "vgextend", "vga", b, says="label checksum")
    _fails(pair, "pvremove", b, says="label checksum")
    assert digests(pair.devices) == before


def test_bad_metadata_area_checksum_and_bad_text_checksum(tmp_path: Path) -> None:
    pair = Pair(_images(tmp_path, 1), tmp_path)
    (a,) = pair.devices
    pair.lvc("pvcreate", a)
    pair.lvc("vgcreate", "vgb", a)
    pair.lvc("lvcreate", "-l", "1", "-n", "x", "vgb")
    with Disk(a) as disk:
        pv = read_pv(disk)
    assert pv is not None and pv.mdas[0].header is not None
    text_at = pv.mdas[0].header.start + pv.mdas[0].header.committed.offset
    before = digests(pair.devices)
    _flip(a, text_at + 30)
    _fails(pair, "lvs", "vgb", says="wrong checksum")
    _fails(pair, "lvcreate", "-l", "1", "-n", "y", "vgb", says="not found")
    _flip(a, text_at + 30)
    _flip(a, 4096 + 100)  # inside the mda header
    _fails(pair, "vgs", "vgb", says="metadata area header at byte 4096: wrong checksum")
    _fails(pair, "vgcfgbackup", "-f", str(tmp_path / "b.vg"), "vgb", says="not found")
    _flip(a, 4096 + 100)
    assert digests(pair.devices) == before
    assert "x" in pair.lvc("lvs", "vgb").stdout


def test_pv_of_another_vg_and_missing_pv(vg_on_images: Pair, tmp_path: Path) -> None:
    pair = vg_on_images
    a, b, c = pair.devices
    pair.lvc("vgcreate", "vgother", c)
    before = digests(pair.devices)
    _fails(pair, "vgextend", "vga", c, says="is already in volume group 'vgother'")
    _fails(pair, "vgcreate", "vgnew", a, says="is already in volume group 'vga'")
    _fails(pair, "pvcreate", a, says="without -ff")
    _fails(pair, "pvremove", c, says="used by volume group")
    only_a = Pair([a, c], tmp_path)
    _fails(only_a, "lvcreate", "-l", "1", "-n", "z", "vga", says="missing")
    _fails(only_a, "lvremove", "vga/one", says="missing")
    _fails(only_a, "vgrename", "vga", "vgz", says="missing")
    assert digests(pair.devices) == before


def test_bad_arguments_exit_3_and_refusals_exit_5(vg_on_images: Pair) -> None:
    pair = vg_on_images
    before = digests(pair.devices)
    _fails(pair, "lvcreate", "-L", "12Q", "-n", "q", "vga", status=3, says="invalid size")
    _fails(pair, "lvcreate", "-l", "2", "-L", "4m", "-n", "both", "vga", status=3, says="exactly one of")
    _fails(pair, "lvcreate", "-l", "2", "-n", "bad name", "vga", status=3, says="invalid logical volume name")
    _fails(pair, "lvcreate", "-l", "2", "-n", "one", "vga", says="already exists")
    _fails(pair, "lvcreate", "-l", "2000", "-n", "huge", "vga", says="insufficient free space")
    _fails(pair, "lvcreate", "-l", "2", "-i", "3", "-n", "wide", "vga", says="stripes need 3 PVs")
    _fails(pair, "lvreduce", "-l", "-1", "vga/one", says="without -y")
    _fails(pair, "lvextend", "-l", "2", "vga/one", says="not larger")
    _fails(pair, "lvs", "-o", "lv_name,nonsense", status=3, says="unrecognised field")
    _fails(pair, "vgremove", "vga", says="still contains")
    _fails(pair, "vgcreate", "vga", pair.devices[2], says="already exists")
    _fails(pair, "lvs", "nosuchvg", says="not found")
    assert digests(pair.devices) == before


@pytest.mark.oracle
def test_metadata_lvm2_would_reject_is_rejected_with_its_line(loop_devices: Callable[..., list[str]],
                                                                tmp_path: Path, lvm2: None) -> None:
    pair = Pair(loop_devices(1, 32), tmp_path)
    (a,) = pair.devices
    pair.lvc("pvcreate", a)
    pair.lvc("vgcreate", "vgr", a)
    pair.lvc("lvcreate", "-l", "2", "-n", "first", "vgr")
    pair.lvc("lvcreate", "-l", "2", "-n", "second", "vgr")
    with Disk(a) as disk:
        pv = read_pv(disk)
    assert pv is not None
    copy = pv.newest_copy()
    assert copy is not None
    # Both LVs on the same extents, checksums right: only the content is wrong.
    bad = copy.text.replace(b'"pv0", 2', b'"pv0", 0').replace(b"seqno = 3", b"seqno = 4")
    assert bad != copy.text
    header = pv.mdas[0].header
    assert header is not None
    locn, writes = plan_write(header, bad + b"\0", a)
    with Disk(a, writable=True) as disk:
        for offset, data in writes:
            disk.write_at(offset, data)
        header.committed = locn
        disk.write_at(header.start, header.to_bytes())
        disk.flush()
    before = _digest_device(a)
    message = _fails(pair, "lvs", "vgr", says="overlap")
    assert ":" in message.split("overlap")[0]  # names the place (mda and line)
    _fails(pair, "lvcreate", "-l", "1", "-n", "third", "vgr", says="overlap")
    assert _digest_device(a) == before
    assert pair.lvm("vgs", "vgr", check=False).returncode != 0  # the oracle rejects it too


def _digest_device(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.oracle
def test_one_good_copy_of_two_reads_and_repairs(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                 lvm2: None) -> None:
    pair = Pair(loop_devices(1, 32), tmp_path)
    (a,) = pair.devices
    pair.lvm("pvcreate", "--pvmetadatacopies", "2", a)
    pair.lvm("vgcreate", "vgt", a)
    pair.lvm("lvcreate", "-L", "8M", "-n", "kept", "vgt")
    with open(a, "r+b") as f:  # wreck the first metadata area's header
        f.seek(4096)
        f.write(b"\xff" * 64)
        f.flush()
    listing = pair.lvc("lvs", "--noheadings", "-o", "lv_name", "vgt")
    assert listing.stdout.split() == ["kept"]
    pair.lvc("lvcreate", "-l", "1", "-n", "after", "vgt")
    with Disk(a) as disk:
        pv = read_pv(disk)
    assert pv is not None and all(mda.problem is None and mda.copy is not None for mda in pv.mdas)
    assert len({mda.copy.seqno for mda in pv.mdas if mda.copy}) == 1
    pair.assert_agree("vgt")
    pair.assert_lvm2_clean("vgt")


def test_commands_without_devices_option_use_the_devices_file(tmp_path: Path) -> None:
    """pvcreate/vgcreate remember image files; later commands find them without --devices."""
    images = _images(tmp_path, 2)
    env = Pair(images, tmp_path).env

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lvcrypt", *args], capture_output=True, text=True,
                              env=env, cwd=ROOT)

    assert run("vgcreate", "vgf", *images).returncode == 0
    assert run("lvcreate", "-l", "2", "-n", "noopt", "vgf").returncode == 0
    assert run("lvcreate", "-l", "1", "vgf").returncode == 0  # unnamed: lvm2's lvol0
    listing = run("lvs", "--noheadings", "-o", "lv_name,vg_name", "--separator", ":")
    assert listing.stdout.split() == ["lvol0:vgf", "noopt:vgf"]
    assert (tmp_path / "state" / "devices").read_text().split() == images
    assert (tmp_path / "state" / "backup" / "vgf").exists()
    assert len(list((tmp_path / "state" / "archive").glob("vgf_*.vg"))) == 2
