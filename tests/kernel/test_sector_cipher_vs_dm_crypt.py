"""lvcrypt.crypto against the kernel's dm-crypt, both ways, for every cipher and IV rule it supports.

dm-crypt (set up with dmsetup, keys from the keyring like lvcrypt's kernel
backend) writes through the mapping and lvcrypt.crypto decrypts the disk;
lvcrypt.crypto writes the disk and dm-crypt reads it back.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from typing import Callable, Iterator

import pytest

from lvcrypt.crypto import open_sector_cipher

from .conftest import LoopImage

MIB = 1 << 20
OFFSET_SECTORS = 1024
IV_OFFSET = 64
KEY = hashlib.sha512(b"lvcrypt sector cipher kernel test key").digest()  # public test key

CASES = [
    pytest.param("aes-xts-plain64", 64, 512, [], id="xts-plain64-512"),
    pytest.param("aes-xts-plain64", 32, 4096, ["sector_size:4096"], id="xts256-plain64-4096"),
    pytest.param("aes-xts-plain64", 64, 4096, ["sector_size:4096", "iv_large_sectors"], id="xts-4096-large"),
    pytest.param("aes-xts-plain", 64, 512, [], id="xts-plain-512"),
    pytest.param("aes-cbc-essiv:sha256", 32, 512, [], id="cbc-essiv-512"),
    pytest.param("aes-cbc-essiv:sha256", 16, 4096, ["sector_size:4096"], id="cbc128-essiv-4096"),
    pytest.param("aes-cbc-plain64", 32, 4096, ["sector_size:4096", "iv_large_sectors"], id="cbc-plain64-large"),
    pytest.param("aes-cbc-plain64be", 32, 512, [], id="cbc-plain64be-512"),
    pytest.param("aes-xts-plain64be", 64, 4096, ["sector_size:4096"], id="xts-plain64be-4096"),
    # Issue 13 item 4: every other spec the one sector cipher computes (SM4 is not in Debian's kernel).
    pytest.param("aes-ecb", 32, 512, [], id="ecb-512"),
    pytest.param("aes-ecb", 16, 4096, ["sector_size:4096"], id="ecb128-4096"),
    pytest.param("aes-cbc-null", 32, 512, [], id="cbc-null-512"),
    pytest.param("aes-xts-null", 64, 4096, ["sector_size:4096"], id="xts-null-4096"),
    pytest.param("aes-cbc-plain", 24, 512, [], id="cbc192-plain-512"),
    pytest.param("aes", 32, 512, [], id="bare-aes-is-cbc-plain"),
    pytest.param("aes-xts-essiv:sha256", 64, 512, [], id="xts-essiv-512"),
    pytest.param("capi:xts(aes)-plain64", 64, 4096, ["sector_size:4096"], id="capi-xts-plain64-4096"),
    pytest.param("capi:cbc(aes)-essiv:sha256", 32, 512, [], id="capi-cbc-essiv-512"),
]


def run(*argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(argv), input=input, capture_output=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return result


@pytest.fixture
def keyring_key() -> Iterator[Callable[[bytes], str]]:
    """A factory adding logon keys to the session keyring; all unlinked afterwards."""
    serials: list[str] = []

    def add(key: bytes) -> str:
        description = f"lvcrypt:test-{uuid.uuid4().hex}"
        serials.append(run("keyctl", "padd", "logon", description, "@s", input=key).stdout.decode().strip())
        return f":{len(key)}:logon:{description}"

    yield add
    for serial in serials:
        subprocess.run(["keyctl", "unlink", serial, "@s"], capture_output=True)


def crypt_table(spec: str, key_field: str, device: str, options: list[str]) -> str:
    tail = f" {len(options)} {' '.join(options)}" if options else ""
    return f"0 {MIB // 512} crypt {spec} {key_field} {IV_OFFSET} {device} {OFFSET_SECTORS}{tail}"


@pytest.mark.parametrize("spec, key_size, sector_size, options", CASES)
def test_dm_crypt_and_lvcrypt_crypto_agree_both_ways(
        spec: str, key_size: int, sector_size: int, options: list[str], keyring_key: Callable[[bytes], str],
        loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    agree_both_ways(spec, KEY[:key_size], sector_size, options, keyring_key, loop_image, dm_names)


def test_equal_xts_key_halves_are_computed_as_dm_crypt_computes_them(
        keyring_key: Callable[[bytes], str], loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    """dm-crypt outside FIPS mode accepts such a key; the sector cipher reads and writes its data the same."""
    agree_both_ways("aes-xts-plain64", KEY[:32] * 2, 512, [], keyring_key, loop_image, dm_names)


def agree_both_ways(spec: str, key: bytes, sector_size: int, options: list[str], keyring_key: Callable[[bytes], str],
                    loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    """dm-crypt writes and lvcrypt.crypto decrypts the disk; lvcrypt.crypto writes and dm-crypt reads."""
    cipher = open_sector_cipher(spec, key, sector_size, iv_large_sectors="iv_large_sectors" in options)
    disk = loop_image(OFFSET_SECTORS * 512 + MIB)
    table = crypt_table(spec, keyring_key(key), disk.device, options)
    name = "lvct-cipher"
    dm_names.append(name)
    run("dmsetup", "create", name, "--table", table)

    kernel_plaintext = hashlib.shake_256(f"kernel {spec} {options}".encode()).digest(MIB)
    with open(f"/dev/mapper/{name}", "r+b", buffering=0) as f:
        f.write(kernel_plaintext)
        os.fsync(f.fileno())
    with open(disk.path, "rb") as f:
        f.seek(OFFSET_SECTORS * 512)
        ciphertext = f.read(MIB)
    assert ciphertext != kernel_plaintext
    assert bytes(cipher.decrypt(ciphertext, IV_OFFSET)) == kernel_plaintext

    our_plaintext = hashlib.shake_256(f"lvcrypt {spec} {options}".encode()).digest(MIB)
    with open(disk.device, "r+b", buffering=0) as f:
        f.seek(OFFSET_SECTORS * 512)
        f.write(cipher.encrypt(our_plaintext, IV_OFFSET))
        os.fsync(f.fileno())
    run("blockdev", "--flushbufs", f"/dev/mapper/{name}")
    with open(f"/dev/mapper/{name}", "rb", buffering=0) as f:
        assert f.read(MIB) == our_plaintext
    run("dmsetup", "remove", name)
    dm_names.remove(name)
