"""cryptsetup 2.6's token switches in the one key-source order (lvcrypt/unlock.py): --token-only, --token-id,
--token-type, on a crypt LV whose keystore has keyring tokens; keys live in a session keyring of the test's own."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from lvcrypt import keyring
from lvcrypt.errors import HandlerError, WrongPassphrase
from lvcrypt.handlers.secret import Secret
from lvcrypt.keycache import KeyCache
from lvcrypt.store.transaction import VgTransaction
from lvcrypt.unlock import KeySources, unlock_lv
from store_helpers import FAST_PBKDF2, Pair, image_vg_copy, image_vg_template

PASSPHRASE = b"token switch passphrase"
STORE = "cryptostore0"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vgt/secret, a LUKS2 crypt LV with keyslots 0 and 1 and keyring tokens 0 (slot 0) and 5 (slot 1)."""
    tmp = tmp_path_factory.mktemp("template")
    pair = image_vg_template(tmp, "vgt", encrypted_lv="secret", passphrase=PASSPHRASE)
    (tmp / "second").write_bytes(b"second " + PASSPHRASE)
    for args in (["keyslot", "add", *FAST_PBKDF2, "--key-file", str(tmp / "pass"), "--new-key-file", str(tmp / "second")],
                 ["token", "add", "--key-description", f"lvcrypt-test:first-{os.getpid()}", "-S", "0"],
                 ["token", "add", "--key-description", f"lvcrypt-test:second-{os.getpid()}", "-S", "1",
                  "--token-id", "5"]):
        subprocess.run([sys.executable, "-m", "lvcrypt", *args, "--devices", pair.device_list, f"vgt/{STORE}"],
                       check=True, capture_output=True, env=pair.env, cwd=ROOT)
    return Path(pair.devices[0])


@pytest.fixture
def vg(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    return image_vg_copy(template, tmp_path, monkeypatch, PASSPHRASE)


def refuse_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted ({prompt!r}) although a token or key file applies")


def volume_key(pair: Pair, sources: KeySources) -> bytes:
    with VgTransaction(pair.device_list, "vgt", exclusive=False) as tx, KeyCache() as keys:
        unlock_lv(tx, "secret", keys, sources)
        return bytes(keys[STORE])


def refused(pair: Pair, sources: KeySources, error: type[Exception], text: str) -> None:
    before = hashlib.sha256(Path(pair.devices[0]).read_bytes()).hexdigest()
    with VgTransaction(pair.device_list, "vgt", exclusive=False) as tx, KeyCache() as keys:
        with pytest.raises(error, match=text):
            unlock_lv(tx, "secret", keys, sources)
        assert len(keys) == 0
    assert hashlib.sha256(Path(pair.devices[0]).read_bytes()).hexdigest() == before


def the_key(pair: Pair) -> bytes:
    return volume_key(pair, KeySources(key_file=str(pair.tmp / "pass"), prompt=refuse_prompt))


def add(made: list[int], name: str, payload: bytes) -> None:
    made.append(keyring.add_key("user", f"lvcrypt-test:{name}-{os.getpid()}", bytearray(payload), "@s"))


def test_token_only_opens_through_a_token_and_never_prompts(vg: Pair, made: list[int]) -> None:
    refused(vg, KeySources(token_only=True, prompt=refuse_prompt), WrongPassphrase, "no token opened it")
    add(made, "second", b"second " + PASSPHRASE)
    assert volume_key(vg, KeySources(token_only=True, prompt=refuse_prompt)) == the_key(vg)


def test_token_only_ignores_the_key_file(vg: Pair) -> None:
    """As cryptsetup 2.6: `open --token-only --key-file F` tries tokens only (and fails without their keys)."""
    refused(vg, KeySources(key_file=str(vg.tmp / "pass"), token_only=True, prompt=refuse_prompt), WrongPassphrase,
            "no token opened it")


def test_token_id_narrows_the_tokens_tried(vg: Pair, made: list[int]) -> None:
    add(made, "first", b"wrong passphrase in the keyring")
    add(made, "second", b"second " + PASSPHRASE)
    refused(vg, KeySources(token_only=True, token_id=0, prompt=refuse_prompt), WrongPassphrase, "no token 0")
    assert volume_key(vg, KeySources(token_only=True, token_id=5, prompt=refuse_prompt)) == the_key(vg)
    refused(vg, KeySources(token_only=True, token_id=7, prompt=refuse_prompt), HandlerError,
            "no usable token 7 is available")


def test_a_token_switch_tries_tokens_before_the_key_file(vg: Pair, made: list[int]) -> None:
    """cryptsetup 2.6: `--token-id N --key-file F` tries token N first, then the key file."""
    add(made, "second", b"second " + PASSPHRASE)
    absent = str(vg.tmp / "absent")  # reading it would fail: the token alone must have opened
    assert volume_key(vg, KeySources(key_file=absent, token_id=5, prompt=refuse_prompt)) == the_key(vg)
    assert volume_key(vg, KeySources(key_file=str(vg.tmp / "pass"), token_id=0, prompt=refuse_prompt)) == the_key(vg)


def test_token_type_of_another_kind_leaves_no_usable_token(vg: Pair, made: list[int]) -> None:
    add(made, "second", b"second " + PASSPHRASE)
    refused(vg, KeySources(token_only=True, token_type="systemd-tpm2", prompt=refuse_prompt), HandlerError,
            r"no usable token \(type systemd-tpm2\) is available")
    assert volume_key(vg, KeySources(token_only=True, token_type="luks2-keyring", prompt=refuse_prompt)) == \
        the_key(vg)


def test_read_command_takes_the_switches(vg: Pair, made: list[int]) -> None:
    add(made, "second", b"second " + PASSPHRASE)
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", vg.device_list, "--token-only",
                             "--token-id", "5", "--length", "4096", "vgt/secret"], capture_output=True, env=vg.env,
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and len(result.stdout) == 4096, result.stderr
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", vg.device_list, "--token-only",
                             "--token-id", "0", "--length", "4096", "vgt/secret"], capture_output=True, env=vg.env,
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    err = result.stderr.decode()
    assert result.returncode == 5 and err.startswith("lvcrypt: ") and err.count("\n") == 1, err
    assert "no token 0 opened it" in err and not result.stdout
