"""lvcrypt's dm ioctl layer against a real kernel, with dmsetup as the oracle both ways:
what lvcrypt creates, dmsetup sees identically; what dmsetup creates, lvcrypt reads back."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lvcrypt.activate.dm_ioctl import DeviceMapper, Target, create_node, remove_node
from lvcrypt.errors import DeviceError

from .conftest import LoopImage
from .dmcrypt_model import xts_plain64
from .test_dm_crypt import KEY, MIB, payload, run, write_through


@pytest.fixture
def dm() -> Iterator[DeviceMapper]:
    with DeviceMapper() as session:
        yield session


@pytest.fixture
def logon_key() -> Iterator[str]:
    description = f"lvcrypt:ioctl-{uuid.uuid4().hex}"
    serial = run("keyctl", "padd", "logon", description, "@s", input=KEY).stdout.decode().strip()
    try:
        yield description
    finally:
        subprocess.run(["keyctl", "unlink", serial, "@s"], capture_output=True)


def dmsetup_field(name: str, field: str) -> str:
    return run("dmsetup", "info", "-c", "--noheadings", "-o", field, name).stdout.decode().strip()


def test_device_created_through_ioctls_is_what_dmsetup_sees(
        dm: DeviceMapper, logon_key: str, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(MIB)
    params = f"aes-xts-plain64 :64:logon:{logon_key} 0 {disk.device} 0 1 sector_size:4096"
    dm_uuid = f"LVCRYPT-TEST-{uuid.uuid4().hex}"
    dm_names.append("lvct-ioctl")
    info = dm.create("lvct-ioctl", uuid=dm_uuid)
    dm.load("lvct-ioctl", [Target(0, MIB // 512, "crypt", params)])
    assert dm.resume("lvct-ioctl").live_table
    node = Path(create_node("lvct-ioctl", info.major, info.minor))
    try:
        assert run("dmsetup", "table", "--showkeys", "lvct-ioctl").stdout.decode().split() == \
            f"0 {MIB // 512} crypt {params}".replace(disk.device, f"7:{os.minor(os.stat(disk.device).st_rdev)}").split()
        assert dmsetup_field("lvct-ioctl", "uuid") == dm_uuid
        assert dmsetup_field("lvct-ioctl", "major,minor") == f"{info.major}:{info.minor}"
        write_through(node, payload(MIB, "ioctl"))
        dm.remove("lvct-ioctl")
        dm_names.remove("lvct-ioctl")
    finally:
        remove_node("lvct-ioctl")
    assert subprocess.run(["dmsetup", "info", "lvct-ioctl"], capture_output=True).returncode != 0
    assert xts_plain64(KEY, disk.path.read_bytes(), 4096, decrypt=True) == payload(MIB, "ioctl")


def test_device_created_by_dmsetup_reads_back_through_ioctls(
        dm: DeviceMapper, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(2 * MIB)
    dm_uuid = f"LVCRYPT-TEST-{uuid.uuid4().hex}"
    table = f"0 2048 linear {disk.device} 0\n2048 2048 crypt aes-xts-plain64 {KEY.hex()} 5 {disk.device} 2048"
    dm_names.append("lvct-dmsetup")
    run("dmsetup", "create", "lvct-dmsetup", "--uuid", dm_uuid, "--table", table)
    live = [line.split() for line in run("dmsetup", "table", "--showkeys", "lvct-dmsetup").stdout.decode().splitlines()]
    assert [target.line().split() for target in dm.table("lvct-dmsetup")] == live
    info = dm.info("lvct-dmsetup")
    assert info is not None and info.uuid == dm_uuid and info.target_count == 2
    assert ("lvct-dmsetup", dm_uuid) in {(entry.name, entry.uuid) for entry in dm.list()}
    loop_rdev = os.stat(disk.device).st_rdev
    assert dm.deps("lvct-dmsetup") == [(os.major(loop_rdev), os.minor(loop_rdev))]
    assert dm.info("lvct-absent") is None


def test_reload_through_suspend_load_resume_grows_the_device(
        dm: DeviceMapper, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(2 * MIB)
    dm_names.append("lvct-grow")
    run("dmsetup", "create", "lvct-grow", "--table", f"0 2048 linear {disk.device} 0")
    dm.suspend("lvct-grow")
    assert dmsetup_field("lvct-grow", "attr").startswith("L-s")
    dm.load("lvct-grow", [Target(0, 4096, "linear", f"{disk.device} 0")])
    assert dm.info("lvct-grow").inactive_table
    dm.resume("lvct-grow")
    assert run("dmsetup", "table", "lvct-grow").stdout.decode().split()[:3] == ["0", "4096", "linear"]
    assert run("blockdev", "--getsz", "/dev/mapper/lvct-grow").stdout.decode().strip() == "4096"


def test_table_the_kernel_refuses_is_a_one_line_error_without_the_key(
        dm: DeviceMapper, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(MIB)
    dm_names.append("lvct-bad")
    dm.create("lvct-bad")
    bad_key = "ab" * 40  # 40 bytes: no AES key size fits each XTS half
    with pytest.raises(DeviceError) as raised:
        dm.load("lvct-bad", [Target(0, 2048, "crypt", f"aes-xts-plain64 {bad_key} 0 {disk.device} 0 1 sector_size:4096")])
    message = str(raised.value)
    assert "\n" not in message and bad_key not in message and "lvct-bad" in message
    assert not dm.info("lvct-bad").inactive_table
    dm.remove("lvct-bad")
    dm_names.remove("lvct-bad")
    assert dm.info("lvct-bad") is None
