"""dm-crypt in a real kernel against an independent model of its on-disk format.

These tests pin, with the kernel as the oracle in both directions, the format
lvcrypt's userspace backend must read and write (IV per sector, iv_offset,
device offset, 512 and 4096-byte sectors, iv_large_sectors), show that a key
referenced in the kernel keyring works like a hex key, and that cryptsetup's
plain and LUKS2 mappings follow the same rules, so later tests can compare
lvcrypt's mappings with cryptsetup's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from .conftest import LoopImage
from .dmcrypt_model import xts_plain64

# A test key, deliberately public; the two XTS halves differ, as OpenSSL requires.
KEY = bytes(range(64))
MIB = 1 << 20


@dataclass(frozen=True)
class CryptLayout:
    """The table parameters a test varies."""

    sector_size: int
    iv_offset: int
    offset_sectors: int
    iv_large_sectors: bool

    def options(self) -> list[str]:
        options = [f"sector_size:{self.sector_size}"] if self.sector_size != 512 else []
        return options + (["iv_large_sectors"] if self.iv_large_sectors else [])


LAYOUTS = [
    pytest.param(CryptLayout(512, 0, 0, False), id="512"),
    pytest.param(CryptLayout(512, 100, 2048, False), id="512-iv_offset-offset"),
    pytest.param(CryptLayout(4096, 0, 0, False), id="4096"),
    pytest.param(CryptLayout(4096, 16, 2048, True), id="4096-iv_large_sectors-iv_offset-offset"),
]


def payload(size: int, seed: str) -> bytes:
    """Deterministic data that differs in every sector."""
    return hashlib.shake_256(seed.encode()).digest(size)


def run(*argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(argv), input=input, capture_output=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): "
                             f"{result.stderr.decode(errors='replace')}")
    return result


def crypt_table(size: int, key_field: str, device: str, layout: CryptLayout) -> str:
    options = layout.options()
    tail = f" {len(options)} {' '.join(options)}" if options else ""
    return (f"0 {size // 512} crypt aes-xts-plain64 {key_field} {layout.iv_offset} {device} "
            f"{layout.offset_sectors}{tail}")


def dm_create(name: str, table: str, dm_names: list[str]) -> Path:
    dm_names.append(name)
    run("dmsetup", "create", name, "--table", table)
    return Path("/dev/mapper") / name


def dm_remove(name: str, dm_names: list[str]) -> None:
    run("dmsetup", "remove", name)
    dm_names.remove(name)


def write_through(device: Path, data: bytes) -> None:
    with open(device, "r+b", buffering=0) as f:
        f.write(data)
        os.fsync(f.fileno())


def read_through(device: Path, size: int) -> bytes:
    with open(device, "rb", buffering=0) as f:
        return f.read(size)


def showkeys_table(name: str) -> list[str]:
    """The live table of `name` with its key field, split into fields."""
    return run("dmsetup", "table", "--showkeys", name).stdout.decode().split()


def model(data: bytes, layout: CryptLayout, decrypt: bool) -> bytes:
    return xts_plain64(KEY, data, layout.sector_size, layout.iv_offset, layout.iv_large_sectors, decrypt)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_what_dm_crypt_writes_the_model_decrypts(layout: CryptLayout, loop_image: Callable[[int], LoopImage],
                                                 dm_names: list[str]) -> None:
    size = MIB
    disk = loop_image(size + layout.offset_sectors * 512)
    plaintext = payload(size, f"write-{layout}")
    mapped = dm_create("lvct-write", crypt_table(size, KEY.hex(), disk.device, layout), dm_names)
    write_through(mapped, plaintext)
    dm_remove("lvct-write", dm_names)
    with open(disk.path, "rb") as f:
        f.seek(layout.offset_sectors * 512)
        ciphertext = f.read(size)
    assert ciphertext != plaintext
    assert model(ciphertext, layout, decrypt=True) == plaintext


@pytest.mark.parametrize("layout", LAYOUTS)
def test_what_the_model_encrypts_dm_crypt_reads(layout: CryptLayout, loop_image: Callable[[int], LoopImage],
                                                dm_names: list[str]) -> None:
    size = MIB
    disk = loop_image(size + layout.offset_sectors * 512)
    plaintext = payload(size, f"read-{layout}")
    with open(disk.path, "r+b") as f:
        f.seek(layout.offset_sectors * 512)
        f.write(model(plaintext, layout, decrypt=False))
    mapped = dm_create("lvct-read", crypt_table(size, KEY.hex(), disk.device, layout), dm_names)
    assert read_through(mapped, size) == plaintext


@pytest.fixture
def logon_key() -> Iterator[str]:
    """KEY as a `logon` key in the session keyring (the guest runs pytest in its own); unlinked afterwards."""
    description = f"lvcrypt:test-{uuid.uuid4().hex}"
    serial = run("keyctl", "padd", "logon", description, "@s", input=KEY).stdout.decode().strip()
    try:
        yield description
    finally:
        subprocess.run(["keyctl", "unlink", serial, "@s"], capture_output=True)


def test_key_referenced_in_the_keyring_encrypts_like_the_hex_key(
        logon_key: str, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    layout = CryptLayout(4096, 0, 0, False)
    size = MIB
    disk = loop_image(size)
    plaintext = payload(size, "keyring")
    key_field = f":{len(KEY)}:logon:{logon_key}"
    mapped = dm_create("lvct-keyring", crypt_table(size, key_field, disk.device, layout), dm_names)
    fields = showkeys_table("lvct-keyring")
    assert fields[4] == key_field
    assert KEY.hex() not in " ".join(fields)
    write_through(mapped, plaintext)
    dm_remove("lvct-keyring", dm_names)
    assert model(disk.path.read_bytes(), layout, decrypt=True) == plaintext


def test_missing_keyring_key_is_refused_and_leaves_no_device(
        loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(MIB)
    key_field = f":{len(KEY)}:logon:lvcrypt:test-absent-{uuid.uuid4().hex}"
    dm_names.append("lvct-nokey")
    result = subprocess.run(["dmsetup", "create", "lvct-nokey", "--table",
                             crypt_table(MIB, key_field, disk.device, CryptLayout(512, 0, 0, False))],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Required key not available" in result.stderr
    assert subprocess.run(["dmsetup", "info", "lvct-nokey"], capture_output=True).returncode != 0


def test_cryptsetup_plain_builds_the_same_table_and_data(
        tmp_path: Path, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    layout = CryptLayout(4096, 0, 0, False)
    size = MIB
    disk = loop_image(size)
    keyfile = tmp_path / "key"
    keyfile.write_bytes(KEY)
    dm_names.append("lvct-plain")
    run("cryptsetup", "open", "--type", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
        "--key-file", str(keyfile), "--sector-size", "4096", disk.device, "lvct-plain")
    fields = showkeys_table("lvct-plain")
    ours = crypt_table(size, KEY.hex(), "DEVICE", layout).split()
    assert fields[:6] + fields[7:] == ours[:6] + ours[7:]
    write_through(Path("/dev/mapper/lvct-plain"), payload(size, "plain"))
    run("cryptsetup", "close", "lvct-plain")
    dm_names.remove("lvct-plain")
    assert model(disk.path.read_bytes(), layout, decrypt=True) == payload(size, "plain")


def test_cryptsetup_luks2_maps_its_data_area_like_the_model(
        tmp_path: Path, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    """LUKS2 with 4096-byte sectors: volume key via the keyring, data after the header, and the IV
    still counting 512-byte sectors (cryptsetup does not set iv_large_sectors for LUKS2)."""
    disk = loop_image(20 * MIB)
    volume_key, passphrase = tmp_path / "vk", tmp_path / "pass"
    volume_key.write_bytes(KEY)
    passphrase.write_bytes(b"test passphrase")
    run("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--cipher", "aes-xts-plain64",
        "--key-size", "512", "--sector-size", "4096", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
        "--volume-key-file", str(volume_key), "--key-file", str(passphrase), disk.device)
    dm_names.append("lvct-luks")
    run("cryptsetup", "open", "--key-file", str(passphrase), disk.device, "lvct-luks")
    fields = showkeys_table("lvct-luks")
    assert fields[2:4] == ["crypt", "aes-xts-plain64"]
    assert fields[4].startswith(":64:logon:cryptsetup:")
    assert fields[8:] == ["1", "sector_size:4096"]
    layout = CryptLayout(4096, int(fields[5]), int(fields[7]), False)
    size = int(fields[1]) * 512
    plaintext = payload(size, "luks2")
    write_through(Path("/dev/mapper/lvct-luks"), plaintext)
    run("cryptsetup", "close", "lvct-luks")
    dm_names.remove("lvct-luks")
    data_area = disk.path.read_bytes()[layout.offset_sectors * 512:]
    assert model(data_area[:size], layout, decrypt=True) == plaintext
