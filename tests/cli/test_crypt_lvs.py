"""Encrypted LVs end to end, with cryptsetup, lvm2 and `cryptography` as the oracles.

lvcrypt creates and fills crypt LVs on loop devices; the checks never trust
lvcrypt's own reading: lvm2 lists the VG and says where the extents are
(vgcfgbackup), cryptsetup opens the keystore as a detached LUKS header and
dumps the volume key, and the ciphertext on the PVs is decrypted sector by
sector with `cryptography` directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import run_lvcrypt
from crypt_lv_layout import ciphertext, decrypt, extent_bytes, keystore_image, lvm2_layout, lvm2_lists, pv_path
from cryptsetup_oracle import cryptsetup, dumped_volume_key, libcryptsetup_plain_key, needs_cryptsetup
from lvcrypt.metadata.model import CryptSegment
from store_helpers import Pair

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2"), needs_cryptsetup]
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
MIB = 1 << 20


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(3, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgc", *pair.devices)
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    (tmp_path / "wrong").write_bytes(b"wrong horse")
    return pair


def write_lv(pair: Pair, lv: str, data: bytes, key: str = "pass", offset: int = 0) -> None:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices",
                             pair.device_list, "--key-file", str(pair.tmp / key), "--offset", str(offset), lv],
                            input=data, capture_output=True, env=pair.env)
    assert result.returncode == 0, result.stderr


def read_lv(pair: Pair, lv: str, key: str = "pass", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", pair.device_list,
                             "--key-file", str(pair.tmp / key), lv], capture_output=True, env=pair.env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("handler,sector_size,cipher", [
    ("luks2", 512, "aes-xts-plain64"), ("luks2", 4096, "aes-xts-plain64"), ("luks1", 512, "aes-xts-plain64"),
    ("luks2", 512, "aes-cbc-essiv:sha256")])
def test_luks_crypt_lv_is_a_detached_header_cryptsetup_opens(pair: Pair, handler: str, sector_size: int,
                                                              cipher: str) -> None:
    extra = ["--sector-size", str(sector_size)] if sector_size != 512 else []
    key_size = ["--key-size", "256"] if "cbc" in cipher else []
    pair.lvc("lvcreate", "--encrypt", "--handler", handler, "--cipher", cipher, *key_size, *extra, *FAST,
             "--key-file", str(pair.tmp / "pass"), "-L", "12M", "-n", "data", "vgc")
    listed = lvm2_lists(pair)
    assert set(listed) == {"data", "[cryptostore0]"} and all("u" in attr for attr in listed.values())
    plaintext = os.urandom(12 * MIB)
    write_lv(pair, "vgc/data", plaintext)
    assert read_lv(pair, "vgc/data").stdout == plaintext

    vg = lvm2_layout(pair)
    header = keystore_image(pair, vg, "cryptostore0")
    dump = cryptsetup("luksDump", str(header)).stdout
    assert f"Version:       \t{handler[-1]}" in dump or f"Version:        {handler[-1]}" in dump
    assert cryptsetup("open", "--test-passphrase", "--key-file", str(pair.tmp / "pass"), str(header)).returncode == 0
    assert cryptsetup("open", "--test-passphrase", "--key-file", str(pair.tmp / "wrong"), str(header),
                      check=False).returncode != 0
    key = dumped_volume_key(header, pair.tmp / "pass")
    assert decrypt(cipher, key, ciphertext(pair, vg, "data"), sector_size) == plaintext
    assert len(lvm2_lists(pair)) == 2


def test_plain_and_hashed_keystores_match_cryptsetup_plain_mode(pair: Pair) -> None:
    volume_key = os.urandom(64)
    (pair.tmp / "vk").write_bytes(volume_key)
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
             "--key-file", str(pair.tmp / "vk"), "-L", "4M", "-n", "p", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--handler", "hashed", "--hash", "sha256", "--key-file", str(pair.tmp / "vk"),
             "-L", "4M", "-n", "h", "vgc")
    first, second = os.urandom(4 * MIB), os.urandom(4 * MIB)
    write_lv(pair, "vgc/p", first, key="vk")
    write_lv(pair, "vgc/h", second, key="vk")
    vg = lvm2_layout(pair)
    assert {lv for lv in vg.lvs} == {"p", "h", "cryptostore0", "cryptostore1"}
    assert decrypt("aes-xts-plain64", volume_key, ciphertext(pair, vg, "p"), 512) == first
    # cryptsetup ignores --hash for a key file given by name (issue 15): its first 32 bytes are the key.
    hashed_key = libcryptsetup_plain_key(pair.tmp / "pass", "plain", 32, volume_key[:32])
    assert decrypt("aes-cbc-essiv:sha256", hashed_key, ciphertext(pair, vg, "h"), 512) == second
    # A wrong key is detected by the keystore's check value instead of mapping garbage.
    refused = read_lv(pair, "vgc/p", key="pass", check=False)
    assert refused.returncode == 5 and refused.stderr.count(b"\n") == 1 and b"Traceback" not in refused.stderr


def test_extended_crypt_lv_keeps_lv_relative_ivs_when_extents_move(pair: Pair) -> None:
    d0, d1, d2 = pair.devices
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", "8M", "-n", "data",
             "vgc", d0)
    pair.lvc("lvextend", "-L", "+8M", "vgc/data", d1)
    pair.lvc("lvextend", "-L", "+8M", "vgc/data", d2)
    plaintext = os.urandom(24 * MIB)
    write_lv(pair, "vgc/data", plaintext)
    vg = lvm2_layout(pair)
    segments = vg.lvs["data"].segments
    assert [type(s) for s in segments] == [CryptSegment] * 3
    assert len({s.areas[0].pv for s in segments}) == 3  # type: ignore[attr-defined]
    key = dumped_volume_key(keystore_image(pair, vg, "cryptostore0"), pair.tmp / "pass")
    assert decrypt("aes-xts-plain64", key, ciphertext(pair, vg, "data"), 512) == plaintext

    # Move the middle segment's ciphertext elsewhere, byte for byte, and restore a metadata
    # version that points there (with lvm2's vgcfgrestore): the plaintext must not change.
    middle = segments[1]
    assert isinstance(middle, CryptSegment)
    moved = extent_bytes(pair, vg, middle.areas[0].pv, middle.areas[0].extent, middle.extent_count)
    target_pv, target_pe = "pv2", vg.pvs["pv2"].pe_count - middle.extent_count
    with open(pv_path(pair, vg, target_pv), "r+b") as f:
        f.seek((vg.pvs[target_pv].pe_start + target_pe * vg.extent_size) * 512)
        f.write(moved)
    with open(pv_path(pair, vg, middle.areas[0].pv), "r+b") as f:
        f.seek((vg.pvs[middle.areas[0].pv].pe_start + middle.areas[0].extent * vg.extent_size) * 512)
        f.write(bytes(len(moved)))
    backup = pair.tmp / "moved.txt"
    pair.lvc("vgcfgbackup", "-f", str(backup), "vgc")
    run_lvcrypt("metadata", "set", str(backup), f'logical_volumes.data.segment2.areas=["{target_pv}", {target_pe}]',
                check=True)
    pair.lvm("vgcfgrestore", "-f", str(backup), "vgc")
    assert read_lv(pair, "vgc/data").stdout == plaintext
    assert "data" in lvm2_lists(pair)


def test_shared_keystore_lives_as_long_as_its_last_user(pair: Pair) -> None:
    pass_file = str(pair.tmp / "pass")
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", pass_file, "-L", "4M", "-n", "a", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--keystore", "cryptostore0", "-L", "4M", "-n", "b", "vgc")
    assert set(lvm2_lists(pair)) == {"a", "b", "[cryptostore0]"}
    rows = pair.report("lvcrypt", "lvs", "lv_name,crypt_handler,crypt_cipher,crypt_key_size,crypt_keystore,"
                                         "crypt_users", "vgc")
    assert sorted(rows, key=lambda row: row["lv_name"]) == [
        {"lv_name": "[cryptostore0]", "crypt_handler": "luks2", "crypt_cipher": "aes-xts-plain64",
         "crypt_key_size": "512", "crypt_keystore": "cryptostore0", "crypt_users": "a,b"},
        {"lv_name": "a", "crypt_handler": "luks2", "crypt_cipher": "aes-xts-plain64", "crypt_key_size": "512",
         "crypt_keystore": "cryptostore0", "crypt_users": ""},
        {"lv_name": "b", "crypt_handler": "luks2", "crypt_cipher": "aes-xts-plain64", "crypt_key_size": "512",
         "crypt_keystore": "cryptostore0", "crypt_users": ""}]
    data_a, data_b = os.urandom(4 * MIB), os.urandom(4 * MIB)
    write_lv(pair, "vgc/a", data_a)
    write_lv(pair, "vgc/b", data_b)
    pair.lvc("lvremove", "-y", "vgc/a")
    assert set(lvm2_lists(pair)) == {"b", "[cryptostore0]"}
    assert read_lv(pair, "vgc/b").stdout == data_b
    removed = pair.lvc("lvremove", "-y", "vgc/b").stdout
    assert "cryptostore0" in removed
    assert lvm2_lists(pair) == {}


def test_refusals_write_nothing(pair: Pair) -> None:
    pass_file = str(pair.tmp / "pass")
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", pass_file, "-L", "4M", "-n", "a", "vgc")
    seqno = pair.report("lvm2", "vgs", "vg_seqno", "vgc")[0]["vg_seqno"]
    cases = [
        ["lvcreate", "--encrypt", "--key-file", str(pair.tmp / "missing"), "-L", "4M", "-n", "x", "vgc"],
        ["lvcreate", "--encrypt", "--keystore", "cryptostore7", "-L", "4M", "-n", "x", "vgc"],
        ["lvcreate", "--encrypt", "--key-file", pass_file, "-L", "4M", "-n", "cryptostore3", "vgc"],
        ["lvremove", "-y", "vgc/cryptostore0"],
        ["lvcreate", "--encrypt", "--handler", "plain", "--key-file", pass_file, "-L", "4M", "-n", "y", "vgc"],
    ]
    for args in cases:
        result = pair.lvc(*args, check=False)
        assert result.returncode in (3, 5), (args, result)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    wrong = read_lv(pair, "vgc/a", key="wrong", check=False)
    assert wrong.returncode == 5 and wrong.stdout == b""
    assert pair.report("lvm2", "vgs", "vg_seqno", "vgc")[0]["vg_seqno"] == seqno
    assert set(lvm2_lists(pair)) == {"a", "[cryptostore0]"}


def test_striped_crypt_lv_is_one_mapping_over_the_stripes(pair: Pair) -> None:
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-i", "2", "-I", "64k",
             "-L", "8M", "-n", "st", "vgc")
    plaintext = os.urandom(8 * MIB)
    write_lv(pair, "vgc/st", plaintext)
    vg = lvm2_layout(pair)
    (segment,) = vg.lvs["st"].segments
    assert isinstance(segment, CryptSegment) and len(segment.areas) == 2 and segment.stripe_size == 128
    per_stripe = segment.extent_count // 2
    stripes = [extent_bytes(pair, vg, area.pv, area.extent, per_stripe) for area in segment.areas]
    chunk = 64 << 10
    interleaved = b"".join(stripes[0][i:i + chunk] + stripes[1][i:i + chunk] for i in range(0, len(stripes[0]), chunk))
    key = dumped_volume_key(keystore_image(pair, vg, "cryptostore0"), pair.tmp / "pass")
    assert decrypt("aes-xts-plain64", key, interleaved, 512) == plaintext
    table = pair.lvc("table", "vgc/st").stdout
    assert "vgc-st-crypt0" in table and " striped 2 128 " in table and " crypt aes-xts-plain64 " in table


def test_reduce_rename_backup_and_restore_keep_the_crypt_lv(pair: Pair) -> None:
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", "12M", "-n", "data", "vgc")
    plaintext = os.urandom(12 * MIB)
    write_lv(pair, "vgc/data", plaintext)
    refused = pair.lvc("lvreduce", "-L", "8M", "vgc/data", check=False)
    assert refused.returncode == 5 and "-y" in refused.stderr
    pair.lvc("lvreduce", "-y", "-L", "8M", "vgc/data")
    pair.lvc("lvrename", "vgc", "data", "kept")
    assert read_lv(pair, "vgc/kept").stdout == plaintext[:8 * MIB]
    backup = pair.tmp / "backup.txt"
    pair.lvc("vgcfgbackup", "-f", str(backup), "vgc")
    pair.lvc("lvremove", "-y", "vgc/kept")
    assert lvm2_lists(pair) == {}
    pair.lvc("vgcfgrestore", "-f", str(backup), "vgc")
    assert read_lv(pair, "vgc/kept").stdout == plaintext[:8 * MIB]
    assert set(lvm2_lists(pair)) == {"kept", "[cryptostore0]"}


def test_wipe_fills_the_new_lv_with_random_data(pair: Pair) -> None:
    """Old plaintext under a new crypt LV is overwritten by --wipe; free space next to it keeps it."""
    pair.lvc("lvcreate", "-L", "40M", "-n", "old", "vgc", pair.devices[0])
    marker = b"OLD PLAINTEXT " * 1000
    write_lv(pair, "vgc/old", marker * (40 * MIB // len(marker)))
    pair.lvc("lvremove", "-y", "vgc/old")
    pair.lvc("lvcreate", "--encrypt", "--wipe", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", "8M",
             "-n", "new", "vgc", pair.devices[0])
    vg = lvm2_layout(pair)
    (segment,) = vg.lvs["new"].segments
    assert isinstance(segment, CryptSegment)
    area = segment.areas[0]
    assert b"OLD PLAINTEXT" not in extent_bytes(pair, vg, area.pv, area.extent, segment.extent_count)
    after = area.extent + segment.extent_count
    assert b"OLD PLAINTEXT" in extent_bytes(pair, vg, area.pv, after, 1)  # free space: never touched
    data = read_lv(pair, "vgc/new").stdout
    assert len(data) == 8 * MIB and data.count(0) < len(data) // 100


def test_streams_longer_than_the_lv_stop_at_its_end_and_slices_read_back(pair: Pair) -> None:
    """`write` reads its input a chunk ahead and `read` writes a chunk behind: input past the LV's end is still
    refused after the LV is filled, and unaligned slices spanning several chunks come back exactly."""
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", "4M", "-n", "s", "vgc")
    plaintext = os.urandom(4 * MIB)
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, "--key-file",
                             str(pair.tmp / "pass"), "vgc/s"], input=plaintext + b"past the end", capture_output=True,
                            env=pair.env)
    assert result.returncode == 5
    assert result.stderr.decode().splitlines() == [
        f"lvcrypt: vgc/s: input is longer than the LV; wrote {4 * MIB} bytes up to its end"]
    vg = lvm2_layout(pair)
    key = dumped_volume_key(keystore_image(pair, vg, "cryptostore0"), pair.tmp / "pass")
    assert decrypt("aes-xts-plain64", key, ciphertext(pair, vg, "s"), 512) == plaintext
    sliced = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", pair.device_list, "--key-file",
                             str(pair.tmp / "pass"), "--offset", "1001", "--length", str(3 * MIB + 5), "vgc/s"],
                            capture_output=True, env=pair.env, check=True)
    assert sliced.stdout == plaintext[1001:1001 + 3 * MIB + 5]
