"""LUKS1 against cryptsetup 2.6 in both directions, on image files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lvcrypt.errors import HandlerError, WrongPassphrase
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks1 import Luks1Handler
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import (FAST, cryptsetup, dumped_volume_key, image, key_file,
                                     needs_cryptsetup, opens_with as cs_opens)

pytestmark = [needs_cryptsetup, pytest.mark.oracle]

GRID = [(cipher, bits, hash_name)
        for hash_name in ("sha1", "sha256", "sha512")
        for cipher, bits in (("aes-xts-plain64", 256), ("aes-xts-plain64", 512), ("aes-cbc-essiv:sha256", 256))]
GRID_IDS = [f"{c}-{b}-{h}" for c, b, h in GRID]
FORCE = PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)
HANDLER = Luks1Handler()


def unlock(img: Path, passphrase: bytes, keyslot: int | None = None) -> bytes:
    with FileArea(img) as area, Secret(passphrase) as secret:
        key = HANDLER.unlock(area, KeystoreAttrs("luks1"), secret, keyslot)
        with key:
            return bytes(key.buffer)


@pytest.mark.parametrize("cipher,bits,hash_name", GRID, ids=GRID_IDS)
def test_cryptsetup_format_lvcrypt_unlocks(tmp_path: Path, cipher: str, bits: int, hash_name: str) -> None:
    img = image(tmp_path / "luks1.img")
    first = key_file(tmp_path / "k0", b"correct horse")
    second = key_file(tmp_path / "k1", os.urandom(64) + b"\n\0binary")
    third = key_file(tmp_path / "k2", b"slot five")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--hash", hash_name, "--cipher", cipher,
               "--key-size", str(bits), "--key-file", str(first), str(img))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(first), str(img), str(second))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-slot", "5", "--key-file", str(first), str(img), str(third))
    expected = dumped_volume_key(img, first)
    assert len(expected) == bits // 8
    assert unlock(img, first.read_bytes()) == expected
    assert unlock(img, second.read_bytes()) == expected
    assert unlock(img, third.read_bytes(), keyslot=5) == expected
    with pytest.raises(WrongPassphrase):
        unlock(img, b"correct horsf")
    with pytest.raises(WrongPassphrase):
        unlock(img, first.read_bytes(), keyslot=5)


@pytest.mark.parametrize("cipher,bits,hash_name", GRID, ids=GRID_IDS)
def test_lvcrypt_format_cryptsetup_accepts(tmp_path: Path, cipher: str, bits: int, hash_name: str) -> None:
    img = image(tmp_path / "luks1.img")
    first = key_file(tmp_path / "k0", b"lvcrypt made this")
    added = key_file(tmp_path / "k1", b"added by lvcrypt")
    by_cs = key_file(tmp_path / "k2", b"added by cryptsetup")
    wrong = key_file(tmp_path / "bad", b"lvcrypt made thiz")
    attrs = KeystoreAttrs("luks1", cipher, bits, hash_name)
    with FileArea(img) as area:
        with Secret(first.read_bytes()) as pw:
            key = HANDLER.format(area, attrs, pw, FormatOptions(pbkdf=FORCE))
        with key, Secret(added.read_bytes()) as pw:
            volume_key = bytes(key.buffer)
            assert HANDLER.add_keyslot(area, attrs, key, pw, FORCE) == 1
    dump = cryptsetup("luksDump", str(img)).stdout
    assert f"Hash spec:     \t{hash_name}" in dump and f"MK bits:       \t{bits}" in dump
    assert cs_opens(img, first) and cs_opens(img, added) and not cs_opens(img, wrong)
    assert dumped_volume_key(img, added) == volume_key
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(added), str(img), str(by_cs))
    assert unlock(img, by_cs.read_bytes()) == volume_key
    cryptsetup("luksKillSlot", "-q", str(img), "0")
    assert not cs_opens(img, first)
    with pytest.raises(WrongPassphrase):
        unlock(img, first.read_bytes())
    assert cryptsetup("repair", "-q", str(img), check=False).returncode == 0
    assert unlock(img, added.read_bytes()) == volume_key


def test_lvcrypt_keyslot_changes_seen_by_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "luks1.img")
    old = key_file(tmp_path / "old", b"old passphrase")
    new = key_file(tmp_path / "new", b"new passphrase")
    other = key_file(tmp_path / "other", b"other")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--key-file", str(old), str(img))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(old), str(img), str(other))
    attrs = KeystoreAttrs("luks1")
    with FileArea(img) as area, Secret(old.read_bytes()) as o, Secret(new.read_bytes()) as n:
        slot = HANDLER.change_keyslot(area, attrs, o, n, FORCE)
        assert slot == 2
        HANDLER.remove_keyslot(area, attrs, 1)
        assert [s.slot for s in HANDLER.list_keyslots(area, attrs) if s.active] == [2]
    assert cs_opens(img, new) and not cs_opens(img, old) and not cs_opens(img, other)
    assert "Key Slot 2: ENABLED" in cryptsetup("luksDump", str(img)).stdout
    with FileArea(img) as area, Secret(b"x") as pw:
        with pytest.raises(HandlerError, match="not active"):
            HANDLER.remove_keyslot(area, attrs, 1)
        with pytest.raises(HandlerError, match="out of range"):
            HANDLER.unlock(area, attrs, pw, keyslot=8)


def _xts_decrypt(key: bytes, data: bytes, first_sector: int) -> bytes:
    """Independent of lvcrypt's SectorCipher: dm-crypt aes-xts-plain64, 512-byte sectors."""
    out = bytearray()
    for index in range(len(data) // 512):
        tweak = (first_sector + index).to_bytes(16, "little")
        decryptor = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
        out += decryptor.update(data[index * 512:(index + 1) * 512]) + decryptor.finalize()
    return bytes(out)


@pytest.mark.slow
def test_luks1_payload_made_by_cryptsetup_decrypts(tmp_path: Path) -> None:
    img = image(tmp_path / "data.img", 24)
    original = os.urandom(24 << 20)
    img.write_bytes(original)
    pw = key_file(tmp_path / "pw", b"data passphrase")
    cryptsetup("reencrypt", "--encrypt", "--type", "luks2", *FAST, "--sector-size", "512",
               "--reduce-device-size", "16M", "--force-offline-reencrypt", "--key-file", str(pw), "-q", str(img))
    cryptsetup("convert", "--type", "luks1", "-q", str(img))
    key = unlock(img, pw.read_bytes())
    assert key == dumped_volume_key(img, pw)
    with FileArea(img) as area:
        mapping = HANDLER.data_mapping(area, KeystoreAttrs("luks1"))
    assert (mapping.cipher, mapping.data_offset) == ("aes-xts-plain64", 16384)
    payload = img.read_bytes()[mapping.data_offset * 512:]
    plaintext = _xts_decrypt(key, payload[:len(original) - (16 << 20)], 0)
    assert plaintext == original[:len(original) - (16 << 20)]


@pytest.mark.parametrize("hash_name", ["ripemd160", "sha3-256"])
def test_other_cryptsetup_hashes_unlock(tmp_path: Path, hash_name: str) -> None:
    img = image(tmp_path / "luks1.img")
    pw = key_file(tmp_path / "pw", b"other hash")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--hash", hash_name, "--key-file", str(pw), str(img))
    assert unlock(img, pw.read_bytes()) == dumped_volume_key(img, pw)


def test_hash_openssl_lacks_is_a_clear_error(tmp_path: Path) -> None:
    """cryptsetup offers whirlpool through its own backend; OpenSSL 3 (hashlib, cryptography) does not."""
    img = image(tmp_path / "luks1.img")
    pw = key_file(tmp_path / "pw", b"whirlpool")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--hash", "whirlpool", "--key-file", str(pw), str(img))
    with pytest.raises(HandlerError, match="hash whirlpool is not supported"):
        unlock(img, pw.read_bytes())
