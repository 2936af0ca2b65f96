"""LUKS2 against cryptsetup 2.6 in both directions, on image files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lvcrypt.errors import HandlerError, WrongPassphrase
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.luks2.header import read_copy
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with

pytestmark = [needs_cryptsetup, pytest.mark.oracle]

HANDLER = Luks2Handler()
ATTRS = KeystoreAttrs("luks2")
MIB = 1024 * 1024

# How each PBKDF is made cheap for cryptsetup (CLI options) and for lvcrypt (PbkdfRequest).
PBKDFS = {
    "pbkdf2-sha1": (["--pbkdf", "pbkdf2", "--hash", "sha1", "--pbkdf-force-iterations", "1000"],
                    PbkdfRequest("pbkdf2", "sha1", force_iterations=1000)),
    "pbkdf2-sha256": (["--pbkdf", "pbkdf2", "--hash", "sha256", "--pbkdf-force-iterations", "1000"],
                      PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)),
    "pbkdf2-sha512": (["--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000"],
                      PbkdfRequest("pbkdf2", "sha512", force_iterations=1000)),
    "argon2i": (["--pbkdf", "argon2i", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768"],
                PbkdfRequest("argon2i", memory_kib=32768, force_iterations=4)),
    "argon2id": (["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768"],
                 PbkdfRequest("argon2id", memory_kib=32768, force_iterations=4)),
}
CIPHERS = [("aes-xts-plain64", 512), ("aes-xts-plain64", 256), ("aes-cbc-essiv:sha256", 256)]
GRID = [(pbkdf, cipher, bits, sector) for pbkdf in PBKDFS for cipher, bits in CIPHERS for sector in (512, 4096)]
GRID_IDS = [f"{p}-{c}-{b}-{s}" for p, c, b, s in GRID]
FAST = PBKDFS["pbkdf2-sha256"]


def unlock(img: Path, passphrase: bytes, keyslot: int | None = None) -> tuple[int, bytes]:
    with FileArea(img, writable=False) as area, Secret(passphrase) as secret:
        slot, key = HANDLER.unlock_keyslot(area, ATTRS, secret, keyslot)
        with key:
            return slot, bytes(key.buffer)


def lvcrypt_format(img: Path, passphrase: bytes, request: PbkdfRequest, cipher: str = "aes-xts-plain64",
                   bits: int = 512, sector: int = 512) -> bytes:
    attrs = KeystoreAttrs("luks2", cipher, bits)
    with FileArea(img) as area, Secret(passphrase) as secret:
        with HANDLER.format(area, attrs, secret, FormatOptions(pbkdf=request, sector_size=sector)) as key:
            return bytes(key.buffer)


def header_seqids(img: Path) -> tuple[int, int]:
    with FileArea(img, writable=False) as area:
        primary = read_copy(area, 0).header
        return primary.seqid, read_copy(area, primary.hdr_size).header.seqid


@pytest.mark.parametrize("pbkdf,cipher,bits,sector", GRID, ids=GRID_IDS)
def test_cryptsetup_format_lvcrypt_unlocks(tmp_path: Path, pbkdf: str, cipher: str, bits: int, sector: int) -> None:
    options = PBKDFS[pbkdf][0]
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "k0", b"correct horse")
    binary = key_file(tmp_path / "k1", os.urandom(64) + b"\n\0binary")
    seventh = key_file(tmp_path / "k7", b"slot seven")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *options, "--cipher", cipher, "--key-size", str(bits),
               "--sector-size", str(sector), "--key-file", str(first), str(img))
    # The grid's PBKDF is slot 0's; the other slots use cheap PBKDF2 so argon2 cases stay fast.
    cryptsetup("luksAddKey", "-q", *FAST[0], "--key-file", str(first), str(img), str(binary))
    cryptsetup("luksAddKey", "-q", *FAST[0], "--key-slot", "7", "--key-file", str(first), str(img), str(seventh))
    cryptsetup("token", "add", "--key-description", f"lvcrypt:{pbkdf}", "--key-slot", "7", str(img))
    expected = dumped_volume_key(img, first)
    assert len(expected) == bits // 8
    assert unlock(img, first.read_bytes()) == (0, expected)
    assert unlock(img, binary.read_bytes()) == (1, expected)
    assert unlock(img, seventh.read_bytes(), keyslot=7) == (7, expected)
    with pytest.raises(WrongPassphrase):
        unlock(img, b"correct horsf")
    with pytest.raises(WrongPassphrase):
        unlock(img, first.read_bytes(), keyslot=7)
    with FileArea(img, writable=False) as area:
        mapping = HANDLER.data_mapping(area, ATTRS)
        assert (mapping.cipher, mapping.key_size, mapping.sector_size) == (cipher, bits, sector)
        assert mapping.data_offset * 512 == 16 * MIB and mapping.iv_offset == 0
        [token] = HANDLER.keyring_tokens(area)
        assert (token.key_description, token.keyslots) == (f"lvcrypt:{pbkdf}", (7,))
        assert [info.slot for info in HANDLER.list_keyslots(area, ATTRS)] == [0, 1, 7]


def _decrypt_segment(ciphertext: bytes, key: bytes, sector: int) -> bytes:
    """dm-crypt aes-xts-plain64 as the oracle: one XTS unit per sector, IV = byte offset / 512."""
    out = bytearray()
    for start in range(0, len(ciphertext), sector):
        tweak = (start // 512).to_bytes(16, "little")
        decryptor = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
        out += decryptor.update(ciphertext[start:start + sector]) + decryptor.finalize()
    return bytes(out)


@pytest.mark.slow
@pytest.mark.parametrize("sector", [512, 4096])
def test_cryptsetup_reencrypted_data_decrypts_with_lvcrypt_key(tmp_path: Path, sector: int) -> None:
    original = os.urandom(2 * MIB) + bytes(range(256)) * (4 * MIB // 256) + os.urandom(18 * MIB)
    img = tmp_path / "data.img"
    img.write_bytes(original)
    passphrase = key_file(tmp_path / "k", b"reencrypt me")
    cryptsetup("reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "16M",
               "--force-offline-reencrypt", *FAST[0], "--sector-size", str(sector),
               "--key-file", str(passphrase), "-q", str(img))
    slot, key = unlock(img, passphrase.read_bytes())
    assert key == dumped_volume_key(img, passphrase)
    with FileArea(img, writable=False) as area:
        mapping = HANDLER.data_mapping(area, ATTRS)
    assert (mapping.cipher, mapping.sector_size, mapping.iv_offset) == ("aes-xts-plain64", sector, 0)
    payload_size = len(original) - 16 * MIB
    start = mapping.data_offset * 512
    encrypted = img.read_bytes()[start:start + payload_size]
    assert encrypted != original[:payload_size]
    assert _decrypt_segment(encrypted, key, sector) == original[:payload_size]


@pytest.mark.parametrize("pbkdf,cipher,bits,sector", GRID[::2] + GRID[3::6], ids=GRID_IDS[::2] + GRID_IDS[3::6])
def test_lvcrypt_format_cryptsetup_accepts(tmp_path: Path, pbkdf: str, cipher: str, bits: int, sector: int) -> None:
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "k0", b"lvcrypt made this")
    wrong = key_file(tmp_path / "bad", b"lvcrypt made thiS")
    key = lvcrypt_format(img, first.read_bytes(), PBKDFS[pbkdf][1], cipher, bits, sector)
    dump = cryptsetup("luksDump", str(img)).stdout
    assert f"cipher: {cipher}" in dump and f"sector: {sector} [bytes]" in dump
    assert f"PBKDF:      {pbkdf.split('-')[0]}" in dump
    assert "offset: 16777216 [bytes]" in dump and "Keyslots area: \t16744448 [bytes]" in dump
    assert opens_with(img, first)
    assert not opens_with(img, wrong)
    assert dumped_volume_key(img, first) == key
    assert header_seqids(img) == (1, 1)
    assert cryptsetup("repair", "-q", str(img)).returncode == 0


def test_keyslot_changes_both_ways(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    keys = {name: key_file(tmp_path / name, f"passphrase {name}".encode()) for name in ("a", "b", "c", "d", "e")}
    request = FAST[1]
    volume_key = lvcrypt_format(img, keys["a"].read_bytes(), request)
    with FileArea(img) as area, Secret(volume_key) as vk, Secret(keys["b"].read_bytes()) as b:
        assert HANDLER.add_keyslot(area, ATTRS, vk, b, PbkdfRequest("argon2id", memory_kib=32768,
                                                                    force_iterations=4), keyslot=5) == 5
    assert header_seqids(img) == (2, 2)
    assert opens_with(img, keys["b"])
    cryptsetup("luksAddKey", "-q", *FAST[0], "--key-file", str(keys["b"]), str(img), str(keys["c"]))
    assert unlock(img, keys["c"].read_bytes()) == (1, volume_key)
    with FileArea(img) as area:
        HANDLER.remove_keyslot(area, ATTRS, 0)
        with Secret(keys["c"].read_bytes()) as old, Secret(keys["d"].read_bytes()) as new:
            assert HANDLER.change_keyslot(area, ATTRS, old, new, request) == 1
        number = HANDLER.add_keyring_token(area, "lvcrypt:vk", [1, 5])
    assert not opens_with(img, keys["a"]) and not opens_with(img, keys["c"])
    assert opens_with(img, keys["d"]) and opens_with(img, keys["b"])
    token = json.loads(cryptsetup("token", "export", "--token-id", str(number), str(img)).stdout)
    assert token == {"type": "luks2-keyring", "keyslots": ["1", "5"], "key_description": "lvcrypt:vk"}
    cryptsetup("luksKillSlot", "-q", str(img), "5")
    with pytest.raises(WrongPassphrase):
        unlock(img, keys["b"].read_bytes())
    cryptsetup("luksAddKey", "-q", *FAST[0], "--key-slot", "31", "--key-file", str(keys["d"]), str(img),
               str(keys["e"]))
    assert unlock(img, keys["e"].read_bytes()) == (31, volume_key)
    assert dumped_volume_key(img, keys["d"]) == volume_key
    with FileArea(img) as area:
        assert [info.slot for info in HANDLER.list_keyslots(area, ATTRS)] == [1, 31]
        assert [t.keyslots for t in HANDLER.keyring_tokens(area)] == [(1,)]
        HANDLER.remove_token(area, number)
    assert cryptsetup("token", "export", "--token-id", str(number), str(img), check=False).returncode != 0
    assert "Tokens:\nDigests:" in cryptsetup("luksDump", str(img)).stdout


def test_damaged_primary_read_from_secondary_and_repaired(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"two copies")
    volume_key = lvcrypt_format(img, passphrase.read_bytes(), FAST[1])
    with open(img, "r+b") as f:
        f.seek(4096 + 20)
        f.write(b"#")
    assert unlock(img, passphrase.read_bytes()) == (0, volume_key)
    with FileArea(img) as area:
        assert "primary" in (HANDLER.load(area).primary_error or "")
        with Secret(volume_key) as vk, Secret(b"new") as new, pytest.raises(HandlerError, match="repair"):
            HANDLER.add_keyslot(area, ATTRS, vk, new, FAST[1])
        assert HANDLER.repair(area)
        assert not HANDLER.repair(area)
    assert header_seqids(img) == (2, 2)
    before = img.read_bytes()[:32768]
    cryptsetup("repair", "-q", str(img))
    assert opens_with(img, passphrase)
    assert img.read_bytes()[:32768] == before, "cryptsetup found something left to repair"
    assert dumped_volume_key(img, passphrase) == volume_key


def test_cryptsetup_secondary_only_header(tmp_path: Path) -> None:
    """A header cryptsetup wrote, whose primary binary header was wiped, still unlocks here."""
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"made by cryptsetup")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST[0], "--luks2-metadata-size", "64k",
               "--key-file", str(passphrase), str(img))
    expected = dumped_volume_key(img, passphrase)
    with open(img, "r+b") as f:
        f.write(bytes(4096))
    assert unlock(img, passphrase.read_bytes()) == (0, expected)
    with FileArea(img) as area:
        assert HANDLER.repair(area)
    assert opens_with(img, passphrase)
    assert dumped_volume_key(img, passphrase) == expected
    assert "Metadata area: \t65536 [bytes]" in cryptsetup("luksDump", str(img)).stdout
