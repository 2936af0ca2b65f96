"""LVs in use (issue 12, item 3): one check (lvcrypt/inuse.py) asked by every command that takes extents or a
mapping away.  An LV served by `lvcrypt mount` and an LV whose device-mapper device is live (a sysfs tree
given with --sysfs-root, as the kernel shows it: block/dm-N/dm/uuid, holders/) are refused for removal,
reduction, conversion, renaming and writes, with nothing written; lvm2 reads the VG afterwards."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import ROOT
from store_helpers import Pair

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]
VG = "vgu"
needs_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
                                reason="no FUSE here")


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 64), tmp_path)
    (tmp_path / "vk").write_bytes(bytes(range(64)))
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", VG, *pair.devices)
    pair.lvc("lvcreate", "-L", "8M", "-n", "lin", VG)
    pair.lvc("lvcreate", "-L", "8M", "-n", "other", VG)
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
             "--key-file", str(tmp_path / "vk"), "-L", "8M", "-n", "sec", VG)
    return pair


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[Path]]:
    """FUSE mounts the test made, unmounted even when it fails."""
    made: list[Path] = []
    yield made
    for directory in made:
        subprocess.run(["fusermount3", "-u", "-z", str(directory)], capture_output=True)


def lvc(pair: Pair, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", *args, "--devices", pair.device_list], input=data,
                          capture_output=True, env=pair.env, cwd=ROOT, timeout=120)


def hashes(pair: Pair) -> list[str]:
    out = []
    for device in pair.devices:
        with open(device, "rb") as f:
            out.append(hashlib.sha256(f.read()).hexdigest())
    return out


def assert_refused(pair: Pair, args: tuple[str, ...], text: str) -> None:
    before = hashes(pair)
    result = lvc(pair, *args, data=b"y" * 4096)
    err = result.stderr.decode()
    assert result.returncode == 5, (args, result.returncode, err)
    assert err.startswith("lvcrypt: ") and err.count("\n") == 1, (args, err)
    assert text in err, (args, err)
    assert hashes(pair) == before, args


def lvm2_lists(pair: Pair) -> set[str]:
    pair.lvm("vgck", VG)
    return {name.strip("[]") for name in pair.lvm("lvs", "-a", "--noheadings", "-o", "lv_name", VG).stdout.split()}


def mount(pair: Pair, lv: str, directory: Path, mounts: list[Path], *extra: str) -> None:
    directory.mkdir()
    result = lvc(pair, "mount", *extra, f"{VG}/{lv}", str(directory))
    assert result.returncode == 0, result.stderr
    mounts.append(directory)


@needs_fuse
def test_lvs_served_by_lvcrypt_mount_are_not_taken_away(pair: Pair, mounts: list[Path], tmp_path: Path) -> None:
    mount(pair, "lin", tmp_path / "m1", mounts)
    mount(pair, "sec", tmp_path / "m2", mounts, "--key-file", str(tmp_path / "vk"))
    at = "it is mounted with lvcrypt mount at"
    for args in (("lvremove", f"{VG}/lin"), ("lvreduce", "-y", "-l", "-1", f"{VG}/lin"),
                 ("lvrename", VG, "lin", "lin2"), ("lvconvert", "--type", "crypt", f"{VG}/lin"),
                 ("write", f"{VG}/lin"), ("lvremove", f"{VG}/sec"), ("lvconvert", "--type", "linear", f"{VG}/sec"),
                 ("vgremove", "-f", VG), ("lvremove", "-f", VG)):
        assert_refused(pair, args, at)
    # The extent mover works online only under a kernel device: nothing could switch a FUSE server's extents.
    for lv, args in (("lin", ("lvconvert", "--encrypt", "--key-file", str(tmp_path / "vk"), f"{VG}/lin")),
                     ("sec", ("lvconvert", "--decrypt", f"{VG}/sec")),
                     ("lin", ("pvmove", "-n", "lin", pair.devices[0]))):
        assert_refused(pair, args, f"cannot move or convert {VG}/{lv}: {at}")
    # A second read-write mount of the same LV would be a second writer.
    (tmp_path / "m3").mkdir()
    assert_refused(pair, ("mount", f"{VG}/lin", str(tmp_path / "m3")), at)
    # What is not in use keeps working meanwhile, and a read-only view of a mounted LV is fine.
    assert lvc(pair, "lvextend", "-l", "+1", f"{VG}/lin").returncode == 0
    assert lvc(pair, "lvremove", f"{VG}/other").returncode == 0
    assert lvc(pair, "read", "--length", "4096", f"{VG}/lin").returncode == 0
    assert lvm2_lists(pair) == {"lin", "sec", "cryptostore0"}
    for directory in mounts:
        assert subprocess.run(["fusermount3", "-u", str(directory)], capture_output=True).returncode == 0
    mounts.clear()
    assert lvc(pair, "lvremove", f"{VG}/lin").returncode == 0
    assert lvm2_lists(pair) == {"sec", "cryptostore0"}


def fake_sysfs(root: Path, uuids: list[str], holders: tuple[str, ...] = ()) -> str:
    """The kernel's view of live dm devices: block/dm-N/dm/uuid, and holders/ of the first one."""
    for number, uuid in enumerate(uuids):
        device = root / "block" / f"dm-{number}"
        (device / "dm").mkdir(parents=True)
        (device / "dm" / "uuid").write_text(uuid + "\n")
        (device / "holders").mkdir()
        for holder in holders if number == 0 else ():
            (device / "holders" / holder).mkdir()
    return str(root)


def dm_uuid(pair: Pair, lv: str) -> str:
    row = pair.lvc("lvs", "--noheadings", "-o", "vg_uuid,lv_uuid", f"{VG}/{lv}").stdout.split()
    return "LVM-" + row[0].replace("-", "") + row[1].replace("-", "")


def test_lvs_with_a_live_dm_device_are_not_taken_away(pair: Pair, tmp_path: Path) -> None:
    lin, sec = dm_uuid(pair, "lin"), dm_uuid(pair, "sec")
    held = fake_sysfs(tmp_path / "sys1", [lin], holders=("dm-7",))
    layer = fake_sysfs(tmp_path / "sys2", [sec + "-crypt0"])
    for args in (("lvremove", f"{VG}/lin"), ("lvreduce", "-y", "-l", "-1", f"{VG}/lin"),
                 ("lvrename", VG, "lin", "lin2"), ("lvconvert", "--type", "crypt", f"{VG}/lin"),
                 ("vgremove", "-f", VG)):
        assert_refused(pair, (*args, "--sysfs-root", held), "device-mapper device vgu-lin is active (dm-0, held "
                                                             "open by dm-7); deactivate it first")
    # A layer of the stack (the striped layer under a crypt target) is the LV too; its keystore goes with it.
    assert_refused(pair, ("lvremove", f"{VG}/sec", "--sysfs-root", layer), "device-mapper device vgu-sec is active")
    assert_refused(pair, ("lvconvert", "--type", "linear", f"{VG}/sec", "--sysfs-root", layer), "is in use")
    # Growing an active LV is what lvm2 allows too (then lvchange --refresh).
    assert lvc(pair, "lvextend", "-l", "+1", f"{VG}/lin", "--sysfs-root", held).returncode == 0
    empty = fake_sysfs(tmp_path / "sys3", [])
    assert lvc(pair, "lvremove", f"{VG}/lin", "--sysfs-root", empty).returncode == 0
    assert lvm2_lists(pair) == {"other", "sec", "cryptostore0"}
