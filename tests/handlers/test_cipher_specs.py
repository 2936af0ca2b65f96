"""Cipher specs as dm-crypt and cryptsetup define them (issue 12, item 10).

- `plain64be`: the kernel writes the big-endian sector number into the last 8
  bytes of the IV. cryptsetup encrypts a LUKS2 keyslot area with the segment's
  cipher, so a header it formats with `aes-cbc-plain64be` only unlocks if the
  IV is right; the other direction is a keyslot lvcrypt adds, opened by
  cryptsetup.
- A spec the userspace data path cannot read or write is refused when the LV
  would be created, one line, exit 5, not a byte written.
- Issue 13 item 4: the one sector cipher computes ECB and the null IV, so
  `aes-ecb` and `aes-cbc-null` volumes are created and read (made by
  cryptsetup or by lvcrypt); `aes-cbc-essiv:sha1` (a 160-bit ESSIV salt is no
  AES key, dm-crypt refuses it too) is a one-line refusal, not a traceback.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with
from lvcrypt.crypto import check_data_cipher
from lvcrypt.errors import HandlerError
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks1 import Luks1Handler
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.secret import Secret
from store_helpers import Pair, digests

HANDLER = Luks2Handler()
ATTRS = KeystoreAttrs("luks2")
REQUEST = PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)
BE_SPECS = [("aes-cbc-plain64be", 256), ("aes-xts-plain64be", 512)]


@needs_cryptsetup
@pytest.mark.oracle
@pytest.mark.parametrize("cipher,bits", BE_SPECS)
def test_plain64be_keyslots_both_ways(tmp_path: Path, cipher: str, bits: int) -> None:
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "k0", b"big endian")
    second = key_file(tmp_path / "k1", b"added by lvcrypt")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--cipher", cipher, "--key-size", str(bits),
               "--key-file", str(first), str(img))
    assert f"cipher: {cipher}" in cryptsetup("luksDump", str(img)).stdout
    expected = dumped_volume_key(img, first)
    with FileArea(img) as area, Secret(first.read_bytes()) as passphrase:
        slot, key = HANDLER.unlock_keyslot(area, ATTRS, passphrase)
        with key:
            assert (slot, bytes(key.buffer)) == (0, expected)
            with Secret(second.read_bytes()) as new:
                assert HANDLER.add_keyslot(area, ATTRS, key, new, REQUEST) == 1
    assert "1: luks2" in cryptsetup("luksDump", str(img)).stdout
    assert opens_with(img, second)
    assert dumped_volume_key(img, second) == expected


@needs_cryptsetup
@pytest.mark.oracle
def test_plain64be_luks1_keyslot_made_by_cryptsetup_unlocks(tmp_path: Path) -> None:
    img = image(tmp_path / "luks1.img", 4)
    passphrase = key_file(tmp_path / "k", b"luks1 big endian")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--cipher", "aes-cbc-plain64be", "--key-size", "256",
               "--key-file", str(passphrase), str(img))
    with FileArea(img, writable=False) as area, Secret(passphrase.read_bytes()) as secret:
        with Luks1Handler().unlock(area, KeystoreAttrs("luks1"), secret) as key:
            assert bytes(key.buffer) == dumped_volume_key(img, passphrase)


@needs_cryptsetup
@pytest.mark.oracle
def test_lvcrypt_formatted_plain64be_header_opens_in_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"formatted here")
    with FileArea(img) as area, Secret(passphrase.read_bytes()) as secret:
        with HANDLER.format(area, KeystoreAttrs("luks2", "aes-cbc-plain64be", 256), secret,
                            FormatOptions(pbkdf=REQUEST)) as key:
            volume_key = bytes(key.buffer)
    assert opens_with(img, passphrase)
    assert dumped_volume_key(img, passphrase) == volume_key


@pytest.mark.parametrize("spec,bits", [("serpent-xts-plain64", 512),
                                       ("sm4-xts-plain64", 256), ("aes-xts-plain64", 384),
                                       ("aes-cbc-essiv:sha1", 256), ("aes:2-cbc-plain64", 256)])
def test_data_path_refuses_what_it_cannot_do(spec: str, bits: int) -> None:
    with pytest.raises(HandlerError, match="cipher|key"):
        check_data_cipher(spec, bits)


@pytest.mark.parametrize("cipher,bits", [("serpent-xts-plain64", 512), ("aes-xts-plain64", 128),
                                         ("aes-cbc-essiv:sha1", 256), ("aes:2-cbc-plain64", 256)])
def test_lvcreate_refuses_a_cipher_read_would_refuse(tmp_path: Path, cipher: str, bits: int) -> None:
    pair = _vg(tmp_path)
    before = digests(pair.devices)
    result = pair.lvc("lvcreate", "--encrypt", "--cipher", cipher, "--key-size", str(bits), *FAST,
                      "--key-file", str(tmp_path / "pass"), "-L", "4m", "-n", "data", "vgc", check=False)
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith("lvcrypt: ") and result.stderr.count("\n") == 1, result.stderr
    assert digests(pair.devices) == before
    assert "data" not in pair.lvc("lvs", "-a", "vgc").stdout


@needs_cryptsetup
@pytest.mark.oracle
@pytest.mark.parametrize("cipher", ["aes-ecb", "aes-cbc-null", "aes-xts-null"])
def test_cryptsetup_volume_with_ecb_or_null_iv_is_imported_and_read(tmp_path: Path, cipher: str) -> None:
    """cryptsetup encrypts known data; after `lvconvert --type crypt`, `lvcrypt read` gives it back."""
    payload = hashlib.shake_256(cipher.encode()).digest(1 << 20)
    volume = tmp_path / "luks2.img"
    volume.write_bytes(payload + bytes(15 << 20))
    passphrase = key_file(tmp_path / "k", b"import me")
    bits = "512" if "xts" in cipher else "256"
    cryptsetup("reencrypt", "--encrypt", "--type", "luks2", "--cipher", cipher, "--key-size", bits,
               "--reduce-device-size", "8M", "--force-offline-reencrypt", *FAST, "--key-file", str(passphrase),
               "-q", str(volume))
    pair = _vg(tmp_path)
    pair.lvc("lvcreate", "-L", "16m", "-n", "old", "vgc")
    _bytes(pair, "write", "vgc/old", stdin=volume.read_bytes())
    pair.lvc("lvconvert", "--type", "crypt", "vgc/old")
    assert _bytes(pair, "read", "--key-file", str(passphrase), "--length", str(len(payload)),
                  "vgc/old") == payload


@pytest.mark.parametrize("cipher,bits", [("aes-ecb", 256), ("aes-cbc-null", 256), ("aes-xts-null", 512)])
def test_ecb_and_null_iv_lvs_are_created_written_and_read_back(tmp_path: Path, cipher: str, bits: int) -> None:
    """Accepted at creation because the sector cipher computes them (checked against cryptsetup in
    test_crypto_cryptsetup.py); `read` gives back what `write` wrote."""
    pair = _vg(tmp_path)
    pair.lvc("lvcreate", "--encrypt", "--cipher", cipher, "--key-size", str(bits), *FAST,
             "--key-file", str(tmp_path / "pass"), "-L", "4m", "-n", "data", "vgc")
    payload = hashlib.shake_256(cipher.encode()).digest(1 << 20)
    _bytes(pair, "write", "--key-file", str(tmp_path / "pass"), "vgc/data", stdin=payload)
    assert _bytes(pair, "read", "--key-file", str(tmp_path / "pass"), "--length", str(len(payload)),
                  "vgc/data") == payload


def test_keystore_format_refuses_essiv_sha1_in_one_line(tmp_path: Path) -> None:
    """It was a traceback: the 20-byte salt reached AES.  Now the grammar's ESSIV rule refuses it first."""
    img = image(tmp_path / "ks.img", 20)
    (tmp_path / "pass").write_bytes(b"essiv sha1")
    before = img.read_bytes()
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "keystore", "format", "--batch-mode", str(img),
                             "--type", "luks2", "--cipher", "aes-cbc-essiv:sha1", "--key-size", "256", *FAST,
                             "--key-file", str(tmp_path / "pass")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 5, result.stderr
    assert result.stderr.startswith("lvcrypt: ") and result.stderr.count("\n") == 1, result.stderr
    assert "essiv:sha1" in result.stderr and "Traceback" not in result.stderr
    assert img.read_bytes() == before


def test_plain_keystore_refuses_a_new_xts_key_with_equal_halves(tmp_path: Path) -> None:
    """The plain handler's key file is the volume key: equal XTS halves are refused before anything is written."""
    pair = _vg(tmp_path)
    key = tmp_path / "volume.key"
    key.write_bytes(bytes(range(32)) * 2)
    before = digests(pair.devices)
    result = pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size",
                      "512", "--key-file", str(key), "-L", "4m", "-n", "data", "vgc", check=False)
    assert result.returncode == 5 and result.stderr.count("\n") == 1 and "halves" in result.stderr, result.stderr
    assert digests(pair.devices) == before
    key.write_bytes(bytes(range(64)))
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
             "--key-file", str(key), "-L", "4m", "-n", "data", "vgc")


def test_plain64be_lv_is_created_written_and_read_back(tmp_path: Path) -> None:
    """The check refuses only what the data path lacks: plain64be, now right, is created and used."""
    pair = _vg(tmp_path)
    pair.lvc("lvcreate", "--encrypt", "--cipher", "aes-cbc-plain64be", "--key-size", "256", *FAST,
             "--key-file", str(tmp_path / "pass"), "-L", "4m", "-n", "data", "vgc")
    payload = hashlib.shake_256(b"be").digest(1 << 20)
    _bytes(pair, "write", "--key-file", str(tmp_path / "pass"), "vgc/data", stdin=payload)
    assert _bytes(pair, "read", "--key-file", str(tmp_path / "pass"), "--length", str(len(payload)),
                  "vgc/data") == payload


def _vg(tmp_path: Path) -> Pair:
    path = tmp_path / "pv0.img"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    pair = Pair([str(path)], tmp_path)
    pair.lvc("pvcreate", str(path))
    pair.lvc("vgcreate", "vgc", str(path))
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    return pair


def _bytes(pair: Pair, *args: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]],
                            input=stdin, capture_output=True, env=pair.env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", ["lvcreate", "keystore"])
@pytest.mark.parametrize("cipher", ["aes-xts", "aes-cbc-essiv", "aes:3-cbc-plain", "aes-cbc-bogus"])
def test_malformed_cipher_argument_is_a_usage_error(tmp_path: Path, command: str, cipher: str) -> None:
    """dm-crypt would refuse the string itself: a bad argument (exit 3), before anything is read or written."""
    img = image(tmp_path / "target.img", 20)
    before = img.read_bytes()
    args = (["lvcreate", "--encrypt", "--cipher", cipher, "-L", "4m", "-n", "data", "vgc"] if command == "lvcreate"
            else ["keystore", "format", "--batch-mode", str(img), "--cipher", cipher])
    result = subprocess.run([sys.executable, "-m", "lvcrypt", *args, "--devices", str(img)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("lvcrypt: ") and result.stderr.count("\n") == 1, result.stderr
    assert cipher in result.stderr
    assert img.read_bytes() == before
