"""issue 15: the hashed handler takes key files as `cryptsetup open --type plain --hash H` does.

cryptsetup 2.6 (src/cryptsetup.c, action_open_plain) ignores --hash for a key file given by
name: it reads key-size bytes from --keyfile-offset and maps them as the key.  Only a typed
passphrase and `--key-file -` (standard input) are hashed.  New hashed keystores follow that
rule and record it (`key_file_rule = "cryptsetup"`); a keystore without the attribute keeps
hashing every key file, so keystores made before still open with the same command line.

Oracle: libcryptsetup's own plain-mode key processing (`libcryptsetup_plain_key`, which runs
without device-mapper), fed what cryptsetup's command line hands it for each source; the data
lvcrypt wrote must decrypt under that key.  tests/kernel/test_hashed_key_file_rule.py opens
the same kind of LV with `cryptsetup open --type plain` in a real kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from crypt_lv_layout import ciphertext, decrypt, lvm2_layout
from cryptsetup_oracle import libcryptsetup_plain_key, needs_cryptsetup
from store_helpers import Pair, digests

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2"), needs_cryptsetup]
MIB = 1 << 20
CIPHER = "aes-cbc-essiv:sha256"  # cryptsetup's plain default, 256-bit key


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(1, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgh", *pair.devices)
    return pair


def lvcrypt(pair: Pair, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]],
                          input=input, capture_output=True, env=pair.env)


def create(pair: Pair, lv: str, key_args: list[str], stdin: bytes | None = None) -> None:
    made = lvcrypt(pair, "lvcreate", "--encrypt", "--handler", "hashed", "--hash", "sha256", "--cipher", CIPHER,
                   *key_args, "-L", "4M", "-n", lv, "vgh", input=stdin)
    assert made.returncode == 0, made.stderr


def write(pair: Pair, lv: str, data: bytes, key_args: list[str]) -> None:
    done = lvcrypt(pair, "write", *key_args, f"vgh/{lv}", input=data)
    assert done.returncode == 0, done.stderr


def read(pair: Pair, lv: str, key_args: list[str], stdin: bytes | None = None) -> bytes:
    done = lvcrypt(pair, "read", *key_args, f"vgh/{lv}", input=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def mapped_key(pair: Pair, hash_spec: str | None, passphrase: bytes) -> bytes:
    image = pair.tmp / "plain.img"
    image.write_bytes(bytes(MIB))
    return libcryptsetup_plain_key(image, hash_spec, 32, passphrase)


def data_under(pair: Pair, lv: str) -> bytes:
    return ciphertext(pair, lvm2_layout(pair, "vgh"), lv)


@pytest.mark.parametrize("offset", [0, 5])
def test_named_key_file_bytes_are_the_key(pair: Pair, offset: int) -> None:
    """cryptsetup: key_size bytes from the file at --keyfile-offset, --hash ignored."""
    secret = os.urandom(64)
    (pair.tmp / "key").write_bytes(secret)
    args = ["--key-file", str(pair.tmp / "key"), "--keyfile-offset", str(offset)]
    create(pair, "h", args)
    plaintext = os.urandom(4 * MIB)
    write(pair, "h", plaintext, args)
    # cryptsetup.c sets no hash for a named file; libcryptsetup spells that "plain" here
    key = mapped_key(pair, "plain", secret[offset:offset + 32])
    assert key == secret[offset:offset + 32]
    assert decrypt(CIPHER, key, data_under(pair, "h"), 512) == plaintext
    shown = subprocess.run([sys.executable, "-m", "lvcrypt", "metadata", "get", "--devices", pair.device_list, "vgh",
                            "logical_volumes.cryptostore0.segment1.key_file_rule"], capture_output=True, text=True,
                           env=pair.env)
    assert shown.stdout.strip() == "cryptsetup", shown.stderr


@pytest.mark.parametrize("size", [None, 10])
def test_standard_input_is_hashed_like_a_passphrase(pair: Pair, size: int | None) -> None:
    """cryptsetup: `--key-file -` goes through --hash, honouring --keyfile-size.  `lvcrypt read` with the
    key on stdin shows the LV's (never written) sectors decrypted: equal to decrypting them under
    libcryptsetup's key only if both tools derived the same key."""
    given = b"correct horse battery staple\nsecond line"
    sized = ["--keyfile-size", str(size)] if size else []
    create(pair, "s", ["--key-file", "-", *sized], stdin=given)
    shown = read(pair, "s", ["--key-file", "-", *sized], stdin=given)
    key = mapped_key(pair, "sha256", given[:size] if size else given)
    assert shown == decrypt(CIPHER, key, data_under(pair, "s"), 512)
    assert len(shown) == 4 * MIB


def test_named_key_file_shorter_than_the_key_is_refused(pair: Pair) -> None:
    """cryptsetup cannot read key-size bytes from it either; nothing is written."""
    (pair.tmp / "short").write_bytes(b"0123456789")
    before = digests(pair.devices)
    refused = lvcrypt(pair, "lvcreate", "--encrypt", "--handler", "hashed", "--hash", "sha256", "--key-file",
                      str(pair.tmp / "short"), "-L", "4M", "-n", "x", "vgh")
    assert refused.returncode == 5 and refused.stderr.startswith(b"lvcrypt: ")
    assert refused.stderr.count(b"\n") == 1 and b"Traceback" not in refused.stderr
    assert digests(pair.devices) == before


def test_keystore_without_the_attribute_keeps_hashing_key_files(pair: Pair) -> None:
    """A keystore made before issue 15 (no key_file_rule) still opens with its key file, hashed."""
    passphrase = b"an old passphrase kept in a file"
    (pair.tmp / "old").write_bytes(passphrase)
    create(pair, "o", ["--key-file", "-"], stdin=passphrase)
    dropped = subprocess.run([sys.executable, "-m", "lvcrypt", "metadata", "del", "--devices", pair.device_list,
                              "vgh", "logical_volumes.cryptostore0.segment1.key_file_rule"],
                             capture_output=True, text=True, env=pair.env)
    assert dropped.returncode == 0, dropped.stderr
    plaintext = os.urandom(4 * MIB)
    write(pair, "o", plaintext, ["--key-file", str(pair.tmp / "old")])
    assert decrypt(CIPHER, mapped_key(pair, "sha256", passphrase), data_under(pair, "o"), 512) == plaintext


def test_unknown_key_file_rule_is_refused(pair: Pair) -> None:
    """A rule from a newer lvcrypt is never guessed at: the keystore is refused, nothing is mapped."""
    secret = os.urandom(32)
    (pair.tmp / "key").write_bytes(secret)
    create(pair, "u", ["--key-file", str(pair.tmp / "key")])
    changed = subprocess.run([sys.executable, "-m", "lvcrypt", "metadata", "set", "--devices", pair.device_list,
                              "vgh", 'logical_volumes.cryptostore0.segment1.key_file_rule="newer"'],
                             capture_output=True, text=True, env=pair.env)
    assert changed.returncode == 0, changed.stderr  # an attribute the metadata layer keeps verbatim
    refused = lvcrypt(pair, "read", "--key-file", str(pair.tmp / "key"), "vgh/u")
    assert refused.returncode == 5 and refused.stdout == b""
    assert refused.stderr == b"lvcrypt: hashed keystore has an unknown key_file_rule 'newer' (known: cryptsetup)\n"
