"""lvcrypt.activate.loop against losetup: the autoclear loop devices the kernel backend puts under image PVs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lvcrypt.activate import loop
from lvcrypt.errors import DeviceError

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(loop.LOOP_CONTROL)
                                or shutil.which("losetup") is None, reason="loop devices need root and losetup")


def listed(image: Path) -> list[str]:
    """Loop devices losetup shows over `image`."""
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0] for line in out.splitlines()]


def test_struct_loop_info64_has_the_kernel_size() -> None:
    assert loop.LOOP_INFO64.size == 232


def test_attached_loop_shows_the_image_and_detaches_itself_after_the_last_close(tmp_path: Path) -> None:
    image = tmp_path / "pv.img"
    image.write_bytes(bytes(1 << 20))
    attached = loop.attach(str(image))
    try:
        assert listed(image) == [attached.path]
        assert os.major(attached.rdev) == 7
        flags = subprocess.run(["losetup", "-n", "-O", "AUTOCLEAR", attached.path], capture_output=True,
                               text=True, check=True).stdout.strip()
        assert flags == "1"
        os.pwrite(attached.fd, b"through the loop", 4096)
        os.fsync(attached.fd)
        assert image.read_bytes()[4096:4112] == b"through the loop"
    finally:
        attached.release()
    assert listed(image) == []


def test_an_image_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="cannot open .*absent.img: No such file"):
        loop.attach(str(tmp_path / "absent.img"))
