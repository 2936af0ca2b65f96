"""lvcrypt's dm ioctl layer in a real kernel: the device life cycle, where data lands, errors.

dmsetup is the oracle for what the kernel holds.  (test_dm_ioctl_vs_dmsetup.py
covers devices made by dmsetup and read back through the ioctls.)
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lvcrypt import keyring
from lvcrypt.activate.dm_ioctl import DeviceMapper, Target, create_node, remove_node
from lvcrypt.crypto import open_sector_cipher
from lvcrypt.errors import DeviceError

from .conftest import LoopImage

MIB = 1 << 20
KEY = hashlib.sha512(b"lvcrypt dm ioctl test key").digest()  # public test key


def dmsetup(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["dmsetup", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dmsetup {' '.join(args)} failed: {result.stderr}")
    return result


def major_minor(device: str) -> str:
    rdev = os.stat(device).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


@pytest.fixture
def mapper() -> Iterator[DeviceMapper]:
    with DeviceMapper() as control:
        yield control


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """Where our device nodes go: no udev in the guest, and /dev/mapper belongs to dmsetup."""
    directory = tmp_path / "nodes"
    directory.mkdir()
    return directory


def test_interface_version_is_what_dmsetup_reports(mapper: DeviceMapper) -> None:
    driver = re.search(r"Driver version:\s+(\d+)\.(\d+)\.(\d+)", dmsetup("version").stdout)
    assert driver is not None
    assert mapper.version() == tuple(int(part) for part in driver.groups())


def test_linear_device_lifecycle_and_data_placement(mapper: DeviceMapper, loop_image: Callable[[int], LoopImage],
                                                    dm_names: list[str], node_dir: Path) -> None:
    disk = loop_image(4 * MIB)
    name, dm_uuid = "lvct-ioctl-linear", f"LVCRYPT-{uuid.uuid4().hex}"
    dm_names.append(name)
    targets = [Target(0, 2048, "linear", f"{major_minor(disk.device)} 2048"),
               Target(2048, 2048, "linear", f"{major_minor(disk.device)} 0")]

    created = mapper.create(name, dm_uuid)
    assert not created.live_table and not created.inactive_table
    mapper.load(name, targets)
    assert mapper.info(name).inactive_table  # type: ignore[union-attr]
    live = mapper.resume(name)
    assert live.live_table and not live.suspended

    assert dmsetup("table", name).stdout.splitlines() == [t.line() for t in targets]
    assert dmsetup("info", "-c", "--noheadings", "-o", "uuid", name).stdout.strip() == dm_uuid
    assert mapper.table(name) == targets
    assert [t.type for t in mapper.status(name)] == ["linear", "linear"]
    listed = {entry.name: entry for entry in mapper.list()}
    assert listed[name].uuid == dm_uuid and (listed[name].major, listed[name].minor) == (live.major, live.minor)

    # Data goes where the table says: the device's first MiB is the disk's second MiB.
    node = Path(create_node(name, live.major, live.minor, str(node_dir)))
    data = hashlib.shake_256(b"linear").digest(2 * MIB)
    with open(node, "r+b", buffering=0) as f:
        f.write(data)
        os.fsync(f.fileno())
    image = disk.path.read_bytes()
    assert image[MIB:2 * MIB] == data[:MIB] and image[:MIB] == data[MIB:]

    assert mapper.suspend(name).suspended
    assert "s" in dmsetup("info", "-c", "--noheadings", "-o", "attr", name).stdout
    assert not mapper.resume(name).suspended
    remove_node(name, str(node_dir))
    mapper.remove(name)
    dm_names.remove(name)
    assert mapper.info(name) is None
    assert dmsetup("info", name, check=False).returncode != 0


def test_hex_key_table_reads_back_with_the_key_but_not_in_reprs(
        mapper: DeviceMapper, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(MIB)
    name = "lvct-ioctl-hexkey"
    params = f"aes-xts-plain64 {KEY.hex()} 0 {major_minor(disk.device)} 0"
    dm_names.append(name)
    mapper.create(name)
    mapper.load(name, [(0, 2048, "crypt", params)])
    mapper.resume(name)
    assert dmsetup("table", "--showkeys", name).stdout.split()[3:] == params.split()
    assert mapper.table(name) == [Target(0, 2048, "crypt", params)]
    assert KEY.hex() not in repr(mapper.table(name))


@pytest.fixture
def logon_key() -> Iterator[str]:
    """KEY as a logon key added through lvcrypt.keyring, the way the kernel backend will; invalidated after."""
    keyring.ensure_session_keyring()
    description = f"lvcrypt:test-{uuid.uuid4().hex}"
    serial = keyring.add_key("logon", description, bytearray(KEY), "@s")
    try:
        yield f":{len(KEY)}:logon:{description}"
    finally:
        keyring.invalidate(serial)


def test_crypt_device_from_lvcrypt_keyring_ioctls_and_cipher_together(
        mapper: DeviceMapper, logon_key: str, loop_image: Callable[[int], LoopImage], dm_names: list[str],
        node_dir: Path) -> None:
    """The three kernel-facing pieces as the kernel backend will use them: a logon key added by
    lvcrypt.keyring, a crypt table loaded by DeviceMapper, data the userspace cipher decrypts."""
    disk = loop_image(2 * MIB)
    name = "lvct-ioctl-keyring"
    params = f"aes-xts-plain64 {logon_key} 2048 {major_minor(disk.device)} 2048 1 sector_size:4096"
    dm_names.append(name)
    mapper.create(name, f"LVCRYPT-{uuid.uuid4().hex}")
    mapper.load(name, [Target(0, 2048, "crypt", params)])
    info = mapper.resume(name)
    assert dmsetup("table", "--showkeys", name).stdout.split()[4] == logon_key
    plaintext = hashlib.shake_256(b"keyring").digest(MIB)
    with open(create_node(name, info.major, info.minor, str(node_dir)), "r+b", buffering=0) as f:
        f.write(plaintext)
        os.fsync(f.fileno())
    mapper.remove(name)
    dm_names.remove(name)
    ciphertext = disk.path.read_bytes()[MIB:]
    assert bytes(open_sector_cipher("aes-xts-plain64", KEY, 4096).decrypt(ciphertext, 2048)) == plaintext


def test_duplicate_names_and_missing_devices_are_one_line_errors(
        mapper: DeviceMapper, dm_names: list[str]) -> None:
    name = "lvct-ioctl-errors"
    dm_names.append(name)
    mapper.create(name)
    with pytest.raises(DeviceError, match="already exists") as error:
        mapper.create(name)
    assert "\n" not in str(error.value)
    mapper.remove(name)
    dm_names.remove(name)
    with pytest.raises(DeviceError, match="no such device"):
        mapper.remove(name)
    with pytest.raises(DeviceError, match="no such device"):
        mapper.table(name)
    assert all(entry.name != name for entry in mapper.list())


def test_busy_device_is_not_removed(mapper: DeviceMapper, dm_names: list[str], node_dir: Path) -> None:
    name = "lvct-ioctl-busy"
    dm_names.append(name)
    mapper.create(name)
    mapper.load(name, [Target(0, 8, "zero", "")])
    info = mapper.resume(name)
    with open(create_node(name, info.major, info.minor, str(node_dir)), "rb"):
        with pytest.raises(DeviceError, match="busy"):
            mapper.remove(name)
        assert mapper.info(name).open_count == 1  # type: ignore[union-attr]
    mapper.remove(name)
    dm_names.remove(name)


def test_table_larger_than_the_first_buffer_is_read_whole(
        mapper: DeviceMapper, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    """1000 targets need about 56 KiB: the kernel sets DM_BUFFER_FULL_FLAG and the layer retries."""
    disk = loop_image(MIB)
    device = major_minor(disk.device)
    targets = [Target(i * 2, 2, "linear", f"{device} {i * 2 % 2048}") for i in range(1000)]
    name = "lvct-ioctl-big"
    dm_names.append(name)
    mapper.create(name)
    mapper.load(name, targets)
    mapper.resume(name)
    assert len(targets) * 56 > DeviceMapper.INITIAL_BUFFER
    assert mapper.table(name) == targets
    assert dmsetup("table", name).stdout.splitlines() == [t.line() for t in targets]


def test_rename_and_set_uuid(mapper: DeviceMapper, dm_names: list[str]) -> None:
    old, new = "lvct-ioctl-old", "lvct-ioctl-new"
    dm_names.extend([old, new])
    mapper.create(old)
    mapper.load(old, [Target(0, 8, "zero", "")])
    mapper.resume(old)
    mapper.rename(old, new)
    mapper.set_uuid(new, "LVCRYPT-renamed")
    assert mapper.info(old) is None
    assert dmsetup("info", "-c", "--noheadings", "-o", "name,uuid", new).stdout.strip() == \
        f"{new}:LVCRYPT-renamed"
    mapper.remove(new)
