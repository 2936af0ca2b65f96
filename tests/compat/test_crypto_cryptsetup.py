"""lvcrypt.crypto against cryptsetup, in both directions, on image files (no device-mapper needed).

- cryptsetup writes: `reencrypt --encrypt` encrypts known data in place; lvcrypt
  decrypts the data segment with the volume key from `luksDump --dump-volume-key`.
- lvcrypt writes: data encrypted by lvcrypt with a chosen volume key gets a
  detached LUKS2 header made from that key, and `reencrypt --decrypt` must give
  the original plaintext back.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lvcrypt.crypto import open_sector_cipher

pytestmark = [pytest.mark.oracle,
              pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup is not installed")]

FAST_PBKDF = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
REDUCE = 16 << 20
PAYLOAD = 2 << 20
CASES = [("aes-xts-plain64", 512, 512), ("aes-xts-plain64", 512, 4096), ("aes-xts-plain64", 256, 512),
         ("aes-cbc-essiv:sha256", 256, 512), ("aes-xts-plain", 512, 4096), ("aes-cbc-plain64", 128, 512),
         ("aes-cbc-plain64be", 256, 512), ("aes-xts-plain64be", 512, 4096),
         ("aes-ecb", 256, 512), ("aes-ecb", 128, 4096), ("aes-cbc-null", 256, 512), ("aes-xts-null", 512, 4096),
         ("aes-cbc-plain", 192, 512)]


def cryptsetup(*args: str | Path) -> str:
    result = subprocess.run(["cryptsetup", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, f"cryptsetup {args[0]} failed: {result.stderr}"
    return result.stdout


def data_segment_offset(image: Path) -> int:
    dump = cryptsetup("luksDump", image)
    segments = dump[dump.index("Data segments:"):]
    return int(re.search(r"offset:\s+(\d+) \[bytes\]", segments).group(1))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_bytes(b"correct horse battery staple")
    return path


@pytest.mark.parametrize("spec, key_bits, sector_size", CASES)
def test_lvcrypt_decrypts_what_cryptsetup_encrypted(tmp_path, key_file, spec, key_bits, sector_size):
    plaintext = hashlib.shake_256(b"known plaintext").digest(PAYLOAD)
    image = tmp_path / "volume.img"
    image.write_bytes(plaintext + bytes(REDUCE))
    cryptsetup("reencrypt", "--encrypt", "--type", "luks2", "--cipher", spec, "--key-size", str(key_bits),
               "--sector-size", str(sector_size), "--reduce-device-size", f"{REDUCE >> 20}M",
               "--force-offline-reencrypt", *FAST_PBKDF, "--key-file", key_file, "-q", image)
    volume_key_file = tmp_path / "volume.key"
    cryptsetup("luksDump", "--dump-volume-key", "--volume-key-file", volume_key_file, "--key-file", key_file,
               "-q", image)
    offset = data_segment_offset(image)
    ciphertext = image.read_bytes()[offset:offset + PAYLOAD]
    assert ciphertext != plaintext

    cipher = open_sector_cipher(spec, bytearray(volume_key_file.read_bytes()), sector_size)
    assert bytes(cipher.decrypt(ciphertext, 0)) == plaintext
    # Sectors further in decrypt on their own with their own sector number.
    middle = PAYLOAD // 2
    assert bytes(cipher.decrypt(ciphertext[middle:middle + sector_size], middle // 512)) == \
        plaintext[middle:middle + sector_size]


@pytest.mark.parametrize("spec, key_bits, sector_size", CASES)
def test_cryptsetup_decrypts_what_lvcrypt_encrypted(tmp_path, key_file, spec, key_bits, sector_size):
    plaintext = (b"lvcrypt sector data " * (PAYLOAD // 20 + 1))[:PAYLOAD]
    volume_key = bytes((i * 37 + 11) & 0xFF for i in range(key_bits // 8))
    volume_key_file = tmp_path / "volume.key"
    volume_key_file.write_bytes(volume_key)
    data = tmp_path / "data.img"
    data.write_bytes(open_sector_cipher(spec, volume_key, sector_size).encrypt(plaintext, 0))
    header = tmp_path / "header.img"
    header.write_bytes(bytes(4 << 20))
    cryptsetup("luksFormat", "--type", "luks2", "--header", header, "--volume-key-file", volume_key_file,
               "--key-size", str(key_bits), "--cipher", spec, "--sector-size", str(sector_size), *FAST_PBKDF,
               "--key-file", key_file, "-q", data)
    cryptsetup("reencrypt", "--decrypt", "--force-offline-reencrypt", "--header", header,
               "--key-file", key_file, "-q", data)
    assert data.read_bytes()[:PAYLOAD] == plaintext
