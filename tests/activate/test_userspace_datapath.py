"""The userspace backend against an independent implementation: `cryptography` used
directly, one XTS/CBC call per sector with dm-crypt's IV rule, on the PV images."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from activate_helpers import EXTENT, PE_START, add_crypt_lv, add_linear_lv, make_vg, mapping, random_key
from lvcrypt.activate.tables import CryptTarget, PvDevice, build_table
from lvcrypt.activate.userspace import Stack
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import Area


def reference_decrypt(cipher: str, key: bytes, data: bytes, iv_sector: int, sector_size: int) -> bytes:
    """dm-crypt's rule written out plainly: IV = 512-byte sector number, one call per sector."""
    out = bytearray()
    for index in range(len(data) // sector_size):
        sector = iv_sector + index * (sector_size // 512)
        chunk = data[index * sector_size:(index + 1) * sector_size]
        if cipher == "aes-xts-plain64":
            algo = Cipher(algorithms.AES(key), modes.XTS(sector.to_bytes(16, "little")))
        else:
            salt = hashlib.sha256(key).digest()
            essiv = Cipher(algorithms.AES(salt), modes.ECB()).encryptor().update(sector.to_bytes(16, "little"))
            algo = Cipher(algorithms.AES(key), modes.CBC(essiv))
        out += algo.decryptor().update(chunk)
    return bytes(out)


def pv_bytes(path: str, offset_sectors: int, length_sectors: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset_sectors * 512)
        return f.read(length_sectors * 512)


@pytest.mark.parametrize("cipher,bits,sector_size", [
    ("aes-xts-plain64", 512, 512), ("aes-xts-plain64", 256, 4096), ("aes-cbc-essiv:sha256", 256, 512)])
def test_ciphertext_on_the_pvs_decrypts_independently(tmp_path: Path, cipher: str, bits: int,
                                                       sector_size: int) -> None:
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "secret", [[("pv1", 5)], [("pv2", 0)], [("pv1", 30)]], [3, 2, 1])
    key = random_key(bits)
    table = build_table(vg, "secret", paths.__getitem__, lambda s: mapping(cipher, bits, sector_size))
    plaintext = os.urandom(table.size * 512)
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        stack.write(0, plaintext)
        assert stack.read(0, len(plaintext)) == plaintext
    for target in table.targets:
        assert isinstance(target, CryptTarget) and isinstance(target.device, PvDevice)
        ciphertext = pv_bytes(target.device.path, target.offset, target.length)
        assert ciphertext != plaintext[target.start * 512:(target.start + target.length) * 512]
        assert reference_decrypt(cipher, bytes(key), ciphertext, target.iv_offset, sector_size) == \
            plaintext[target.start * 512:(target.start + target.length) * 512]


def test_mib_runs_over_linear_and_striped_segments_decrypt_independently(tmp_path: Path) -> None:
    """MiB-sized runs (what `lvcrypt read`/`write` move: whole sectors enciphered from the caller's buffer)
    over a linear and a striped segment: the PVs hold what dm-crypt would write, and unaligned large writes
    patch the right bytes."""
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "big", [[("pv1", 0)], [("pv0", 0), ("pv2", 0)]], [40, 20], stripe_size=16)
    key = random_key(512)
    table = build_table(vg, "big", paths.__getitem__, lambda s: mapping())
    plaintext = bytearray(os.urandom(table.size * 512))
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        stack.write(0, bytes(plaintext))
        patch = os.urandom(700_001)
        stack.write(12_345, patch)
        plaintext[12_345:12_345 + len(patch)] = patch
        assert stack.read(0, len(plaintext)) == plaintext
        assert stack.read(1001, 900_000) == plaintext[1001:901_001]
    linear = table.targets[0]
    assert isinstance(linear, CryptTarget) and isinstance(linear.device, PvDevice)
    ciphertext = pv_bytes(linear.device.path, linear.offset, linear.length)
    assert reference_decrypt("aes-xts-plain64", bytes(key), ciphertext, linear.iv_offset, 512) == \
        plaintext[:linear.length * 512]


def test_random_unaligned_reads_and_writes_match_a_plain_buffer(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "c", [[("pv1", 0)], [("pv2", 7), ("pv0", 9)]], [2, 4], stripe_size=8, sector_size=4096)
    table = build_table(vg, "c", paths.__getitem__, lambda s: mapping(sector_size=4096))
    rng = random.Random(7)
    model = bytearray(table.size * 512)
    with Stack(table, {"cryptostore0": random_key()}, writable=True) as stack:
        stack.write(0, bytes(model))
        for _ in range(150):
            offset = rng.randrange(len(model))
            length = rng.randrange(min(70000, len(model) - offset) + 1)
            if rng.random() < 0.5:
                data = rng.randbytes(length)
                stack.write(offset, data)
                model[offset:offset + length] = data
            else:
                assert stack.read(offset, length) == model[offset:offset + length]
        assert stack.read(0, len(model)) == model


def test_closing_wipes_every_staged_byte(tmp_path: Path) -> None:
    """The staging buffer holds plaintext of partial sectors: closing the stack clears all of it that a read or
    write ever used (whatever the order of small and large ones), and nothing is left of what was read."""
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "w", [[("pv1", 0)]], [3])
    table = build_table(vg, "w", paths.__getitem__, lambda s: mapping(sector_size=4096))
    plaintext = b"\xa5" * (table.size * 512)
    with Stack(table, {"cryptostore0": random_key()}, writable=True) as stack:
        stack.write(0, plaintext)
        assert stack.read(50_001, 5) == plaintext[:5]
        assert stack.read(3, 60_000) == plaintext[3:60_003]
        assert stack.read(9, 7) == plaintext[9:16]
        staging = [device._buffer for device in stack.devices]
        assert any(b"\xa5" * 64 in bytes(buffer) for buffer in staging)
    assert all(not any(bytes(buffer)) for buffer in staging)


def test_moving_extents_keeps_the_plaintext(tmp_path: Path) -> None:
    """LV-relative IVs: copy the ciphertext of a segment to another PV, repoint the metadata, read the same."""
    vg, paths = make_vg(tmp_path)
    lv = add_crypt_lv(vg, "m", [[("pv1", 0)], [("pv1", 10)]], [3, 3])
    key = random_key()
    table = build_table(vg, "m", paths.__getitem__, lambda s: mapping())
    plaintext = os.urandom(table.size * 512)
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        stack.write(0, plaintext)
    moved = pv_bytes(paths["pv1"], PE_START + 10 * EXTENT, 3 * EXTENT)
    with open(paths["pv2"], "r+b") as f:
        f.seek((PE_START + 40 * EXTENT) * 512)
        f.write(moved)
    lv.segments[1].areas = [Area("pv2", 40)]  # type: ignore[attr-defined]
    with open(paths["pv1"], "r+b") as f:
        f.seek((PE_START + 10 * EXTENT) * 512)
        f.write(bytes(len(moved)))
    with Stack(build_table(vg, "m", paths.__getitem__, lambda s: mapping()), {"cryptostore0": key}) as stack:
        assert stack.read(0, len(plaintext)) == plaintext


def test_plain_linear_and_striped_lvs_map_bytes_where_lvm_puts_them(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    add_linear_lv(vg, "st", "", 0, 4, stripes=[("pv1", 2), ("pv2", 6)], stripe_size=8)
    table = build_table(vg, "st", paths.__getitem__, mapping)
    data = os.urandom(table.size * 512)
    with Stack(table, {}, writable=True) as stack:
        stack.write(0, data)
    chunk = 8 * 512
    first = pv_bytes(paths["pv1"], PE_START + 2 * EXTENT, 2 * EXTENT)
    second = pv_bytes(paths["pv2"], PE_START + 6 * EXTENT, 2 * EXTENT)
    rebuilt = b"".join(first[i:i + chunk] + second[i:i + chunk] for i in range(0, len(first), chunk))
    assert rebuilt == data


def test_wrong_key_size_and_missing_key_are_errors(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "c", [[("pv1", 0)]], [1])
    table = build_table(vg, "c", paths.__getitem__, lambda s: mapping())
    with pytest.raises(LvcryptError, match="not unlocked"):
        Stack(table, {})
    with pytest.raises(LvcryptError, match="has 256 bits, the table needs 512"):
        Stack(table, {"cryptostore0": random_key(256)})
