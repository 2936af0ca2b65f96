"""`lvcrypt mount`: the decrypted LV as a FUSE file that holds a real ext4 file system."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from store_helpers import Pair

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
              pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="e2fsprogs is not installed")]


def sh(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def cleanup() -> Iterator[list[tuple[str, str]]]:
    """Undo in reverse order whatever the test mounted or attached, even when it failed."""
    undo: list[tuple[str, str]] = []
    yield undo
    for kind, target in reversed(undo):
        if kind == "mount":
            subprocess.run(["umount", "-l", target], capture_output=True)
        elif kind == "loop":
            subprocess.run(["losetup", "-d", target], capture_output=True)
        elif kind == "fuse":
            subprocess.run(["fusermount3", "-u", "-z", target], capture_output=True)


def mount_lv(pair: Pair, directory: Path, cleanup: list[tuple[str, str]]) -> Path:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "mount", "--devices", pair.device_list,
                             "--key-file", str(pair.tmp / "pass"), "vgm/data", str(directory)],
                            capture_output=True, text=True, env=pair.env, timeout=120)
    assert result.returncode == 0, result.stderr
    cleanup.append(("fuse", str(directory)))
    return directory / "data"


def test_ext4_on_the_fuse_file_survives_unmount_and_remount(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                            cleanup: list[tuple[str, str]]) -> None:
    pair = Pair(loop_devices(2, 64), tmp_path)
    (tmp_path / "pass").write_bytes(b"fuse test passphrase")
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgm", *pair.devices)
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(tmp_path / "pass"), "-L", "64M", "-n", "data", "vgm")
    fusedir, fsdir = tmp_path / "fuse", tmp_path / "fs"
    fusedir.mkdir()
    fsdir.mkdir()
    files = {f"file{i}.bin": os.urandom(300_000 + i) for i in range(5)}

    lv_file = mount_lv(pair, fusedir, cleanup)
    assert lv_file.stat().st_size == 64 << 20
    loop = sh("losetup", "-f", "--show", str(lv_file))
    cleanup.append(("loop", loop))
    sh("mkfs.ext4", "-q", loop)
    sh("mount", loop, str(fsdir))
    cleanup.append(("mount", str(fsdir)))
    for name, data in files.items():
        (fsdir / name).write_bytes(data)
    sh("umount", str(fsdir))
    sh("losetup", "-d", loop)
    subprocess.run([sys.executable, "-m", "lvcrypt", "umount", str(fusedir)], check=True, env=pair.env)
    assert not os.path.ismount(fusedir)

    # The PVs hold ciphertext only: no file content appears in them.
    for device in pair.devices:
        with open(device, "rb") as f:
            raw = f.read()
        assert all(data[:4096] not in raw for data in files.values())

    lv_file = mount_lv(pair, fusedir, cleanup)
    loop = sh("losetup", "-f", "--show", str(lv_file))
    cleanup.append(("loop", loop))
    check = subprocess.run(["fsck.ext4", "-fn", loop], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    sh("mount", "-o", "ro", loop, str(fsdir))
    cleanup.append(("mount", str(fsdir)))
    for name, data in files.items():
        assert (fsdir / name).read_bytes() == data
