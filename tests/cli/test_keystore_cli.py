"""`lvcrypt keystore` and `lvcrypt keyslot` on image files, checked with cryptsetup."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lvcrypt.errors import LvcryptError
from lvcrypt.handlers.base import FileArea, KeystoreAttrs
from lvcrypt.handlers.luks1 import Luks1Handler
from lvcrypt.handlers.secret import Secret
from tests.conftest import run_lvcrypt
from tests.cryptsetup_oracle import (FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup,
                                     opens_with)

pytestmark = [needs_cryptsetup, pytest.mark.oracle]
FORCE = ["--pbkdf-force-iterations", "1000"]


def lvcrypt(*args: str, input: bytes = b"") -> tuple[int, str, str]:
    result = run_lvcrypt(*args, input=input)
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def cli_volume_key(img: Path, keyfile: Path) -> bytes:
    status, out, err = lvcrypt("keystore", "dump", "--dump-volume-key", "-q", "--key-file", str(keyfile), str(img))
    assert status == 0, err
    return bytes.fromhex(out.rsplit(": ", 1)[1].strip())


def test_cli_luks1_lifecycle_with_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img")
    first = key_file(tmp_path / "first", b"first passphrase")
    second = key_file(tmp_path / "second", b"second passphrase")
    third = key_file(tmp_path / "third", b"third passphrase")
    status, _, err = lvcrypt("keystore", "format", "--type", "luks1", "--cipher", "aes-cbc-essiv:sha256",
                             "--key-size", "256", "--hash", "sha512", *FORCE, "-q", "--key-file", str(first), str(img))
    assert status == 0, err
    assert "Hash spec:     \tsha512" in cryptsetup("luksDump", str(img)).stdout
    assert opens_with(img, first) and not opens_with(img, second)
    volume_key = cli_volume_key(img, first)
    assert volume_key == dumped_volume_key(img, first)

    status, out, err = lvcrypt("keyslot", "add", *FORCE, "--key-file", str(first), "--new-key-file", "-", str(img),
                               input=second.read_bytes())
    assert (status, out) == (0, "Key slot 1 created.\n"), err
    assert opens_with(img, second)
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(second), str(img), str(third))
    assert lvcrypt("keystore", "unlock-test", "--key-file", str(third), str(img))[1] == "Key slot 2 unlocked.\n"

    status, out, err = lvcrypt("keyslot", "change", *FORCE, "--key-file", str(first), "--new-key-file", "-",
                               str(img), input=b"changed")
    assert status == 0, err
    assert not opens_with(img, first) and opens_with(img, key_file(tmp_path / "changed", b"changed"))
    assert lvcrypt("keyslot", "remove", str(img), "2")[0] == 0
    assert not opens_with(img, third)
    listing = lvcrypt("keyslot", "list", str(img))[1].splitlines()
    assert [line.split("\t")[0] for line in listing] == ["1", "3"]
    assert cryptsetup("repair", "-q", str(img), check=False).returncode == 0
    assert dumped_volume_key(img, second) == volume_key


def test_cli_keyfile_offset_and_size_match_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img")
    keyfile = key_file(tmp_path / "kf", b"HEADERsecret-bytes-hereTRAILER")
    status, _, err = lvcrypt("keystore", "format", "--type", "luks1", *FORCE, "-q", "--key-file", str(keyfile),
                             "--keyfile-offset", "6", "--keyfile-size", "17", str(img))
    assert status == 0, err
    cryptsetup("open", "--test-passphrase", "--key-file", str(keyfile), "--keyfile-offset", "6",
               "--keyfile-size", "17", str(img))
    assert opens_with(img, key_file(tmp_path / "inner", b"secret-bytes-here"))
    assert not opens_with(img, keyfile)


def test_cli_hashed_keystore_from_stdin(tmp_path: Path) -> None:
    img = image(tmp_path / "hashed.img", 1)
    status, _, err = lvcrypt("keystore", "format", "--type", "hashed", "--hash", "sha256", *FORCE, "-q",
                             "--key-file", "-", str(img), input=b"typed passphrase")
    assert status == 0, err
    status, out, _ = lvcrypt("keystore", "dump", str(img))
    assert status == 0 and "hashed" in out and "sha256" in out and "aes-cbc-essiv:sha256" in out
    assert lvcrypt("keystore", "unlock-test", "--key-file", "-", str(img), input=b"typed passphrase")[0] == 0
    status, _, err = lvcrypt("keystore", "unlock-test", "--key-file", "-", str(img), input=b"typed passphrasE")
    assert status == 5 and "wrong key or passphrase" in err


def test_cli_plain_keystore_checks_the_key_file(tmp_path: Path) -> None:
    img = image(tmp_path / "plain.img", 1)
    right = key_file(tmp_path / "right", os.urandom(64))
    wrong = key_file(tmp_path / "wrong", os.urandom(64))
    status, _, err = lvcrypt("keystore", "format", "--type", "plain", "--cipher", "aes-xts-plain64", "--key-size",
                             "512", *FORCE, "-q", "--key-file", str(right), str(img))
    assert status == 0, err
    assert lvcrypt("keystore", "unlock-test", "--key-file", str(right), str(img))[1] == "Key slot 0 unlocked.\n"
    _assert_one_line_failure(lvcrypt("keystore", "unlock-test", "--key-file", str(wrong), str(img)), 5,
                             "wrong key or passphrase")
    _assert_one_line_failure(lvcrypt("keyslot", "add", "--key-file", str(right), "--new-key-file", str(wrong),
                                     str(img)), 5, "plain keystores have no keyslots")


def _assert_one_line_failure(result: tuple[int, str, str], status: int, text: str) -> None:
    code, out, err = result
    assert code == status, err
    assert text in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img")
    pw = key_file(tmp_path / "pw", b"passphrase")
    assert lvcrypt("keystore", "format", "--type", "luks1", *FORCE, "-q", "--key-file", str(pw), str(img))[0] == 0
    before = img.read_bytes()
    _assert_one_line_failure(lvcrypt("keystore", "dump", "--dump-volume-key", "--key-file", str(pw), str(img)),
                             3, "--batch-mode")
    _assert_one_line_failure(lvcrypt("keystore", "unlock-test", str(img)), 3, "--key-file")
    _assert_one_line_failure(lvcrypt("keystore", "format", "--key-size", "big", str(img)), 3, "not a number")
    _assert_one_line_failure(lvcrypt("keystore", "format", "-q", "--key-file", str(pw), "vg0/cryptostore0"), 3,
                             "lvcreate --encrypt")
    _assert_one_line_failure(lvcrypt("keystore", "format", "--type", "luks1", "--cipher", "twofish-xts-plain64",
                                     "-q", "--key-file", str(pw), str(img)), 5, "unsupported cipher")
    _assert_one_line_failure(lvcrypt("keyslot", "remove", str(img), "0"), 3, "--batch-mode")
    _assert_one_line_failure(lvcrypt("keyslot", "remove", str(img), "9"), 5, "out of range")
    _assert_one_line_failure(lvcrypt("keyslot", "add", "--key-file", str(key_file(tmp_path / "bad", b"bad")),
                                     "--new-key-file", str(pw), str(img)), 5, "no key available")
    small = image(tmp_path / "small.img", 1)
    _assert_one_line_failure(lvcrypt("keystore", "format", "--type", "luks1", "-q", "--key-file", str(pw),
                                     str(small)), 5, "too small")
    assert small.read_bytes() == bytes(1 << 20)
    assert img.read_bytes() == before
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"LUKS\xba\xbe\x00\x01" + b"\xff" * 8000)
    _assert_one_line_failure(lvcrypt("keystore", "unlock-test", "--key-file", str(pw), str(garbage)), 5, "garbage.img")
    assert garbage.read_bytes() == b"LUKS\xba\xbe\x00\x01" + b"\xff" * 8000


def test_secrets_never_appear_in_output_errors_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase = b"Sup3rSecretPassphrase"
    img = image(tmp_path / "ks.img")
    pw = key_file(tmp_path / "pw", passphrase)
    wrong = key_file(tmp_path / "wrong", b"Sup3rSecretWrongOne")
    assert lvcrypt("keystore", "format", "--type", "luks1", *FORCE, "-q", "--key-file", str(pw), str(img))[0] == 0
    key_hex = dumped_volume_key(img, pw).hex()
    seen = []
    for args in (("keystore", "dump", str(img)), ("keyslot", "list", str(img)),
                 ("--debug", "keystore", "unlock-test", "--key-file", str(wrong), str(img)),
                 ("--debug", "keyslot", "add", "--key-file", str(wrong), "--new-key-file", str(pw), str(img)),
                 ("--debug", "keyslot", "change", "--key-file", str(pw), "--new-key-file", str(pw),
                  "--pbkdf", "argon2id", "--pbkdf-memory", "1", "--pbkdf-force-iterations", "1", str(img)),
                 ("--debug", "keystore", "dump", "--dump-volume-key", "--key-file", str(pw), str(img))):
        seen.extend(lvcrypt(*args)[1:])
    handler = Luks1Handler()
    with FileArea(img) as area:
        for attempt in (wrong.read_bytes(), passphrase):
            try:
                with Secret(attempt) as secret, handler.unlock(area, KeystoreAttrs("luks1"), secret, keyslot=3) as key:
                    seen.append(repr(key))
            except LvcryptError as error:
                seen.append(str(error))
                seen.append(repr(error))
        with Secret(passphrase) as secret, handler.unlock(area, KeystoreAttrs("luks1"), secret) as key:
            seen.append(repr(key))
            seen.append(repr(secret))
    seen.append(caplog.text)
    text = "\n".join(seen)
    for forbidden in (key_hex, key_hex[:16], passphrase.decode(), "Sup3rSecretWrongOne"):
        assert forbidden not in text
    assert "<Secret 64 bytes>" in text


def test_cli_luks2_format_and_keyslots_with_cryptsetup(tmp_path: Path) -> None:
    """The CLI drives the luks2 handler through the same interface (4096-byte sectors, argon2id)."""
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "first", b"luks2 first")
    second = key_file(tmp_path / "second", b"luks2 second")
    status, _, err = lvcrypt("keystore", "format", "--type", "luks2", "--sector-size", "4096", "--pbkdf", "argon2id",
                             "--pbkdf-memory", "32768", "--pbkdf-force-iterations", "4", "-q",
                             "--key-file", str(first), str(img))
    assert status == 0, err
    dump = cryptsetup("luksDump", str(img)).stdout
    assert "sector: 4096 [bytes]" in dump and "argon2id" in dump
    status, _, err = lvcrypt("keyslot", "add", "--pbkdf", "pbkdf2", *FORCE, "--key-file", str(first),
                             "--new-key-file", str(second), str(img))
    assert status == 0, err
    assert opens_with(img, first) and opens_with(img, second)
    assert cli_volume_key(img, second) == dumped_volume_key(img, first)
    cryptsetup("luksKillSlot", "-q", str(img), "0")
    _assert_one_line_failure(lvcrypt("keystore", "unlock-test", "--key-file", str(first), str(img)), 5, "")
    assert lvcrypt("keystore", "unlock-test", "--key-file", str(second), str(img))[0] == 0
