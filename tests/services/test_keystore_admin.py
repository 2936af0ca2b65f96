"""lvcrypt.keystore_admin in process: handler defaults, confirmations, and refusals that write nothing.

The CLI tests (test_keystore_cli.py) check the commands against cryptsetup;
these call the core as the CLI does, with the questions as callables.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lvcrypt.errors import HandlerError, LvcryptError, WrongPassphrase
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FormatOptions, KeystoreAttrs
from lvcrypt.handlers.plain import PlainHandler
from lvcrypt.handlers.secret import Secret
from lvcrypt.keystore_admin import (KeystoreRequest, add_keyslot, format_target, pbkdf_request, remove_keyslot,
                                    unlock_test)
from lvcrypt.unlock import KeySources

FAST = KeystoreRequest(pbkdf="pbkdf2", force_iterations=1000)


def no_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted: {prompt!r}")


def sure(question: str) -> None:
    """The user answers YES."""


def never_asked(question: str) -> None:
    raise AssertionError(f"asked: {question!r}")


def aborted(question: str) -> None:
    raise LvcryptError("operation aborted")


def key_file(tmp_path: Path, name: str, content: bytes) -> KeySources:
    (tmp_path / name).write_bytes(content)
    return KeySources(key_file=str(tmp_path / name), prompt=no_prompt)


def image(tmp_path: Path, size: int = 16 << 20) -> Path:
    path = tmp_path / "ks.img"
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, cipher, bits, key_hash, pbkdf", [
    ("luks2", "aes-xts-plain64", 512, None, "argon2id"),
    ("luks1", "aes-xts-plain64", 512, None, "pbkdf2"),
    ("plain", "aes-cbc-essiv:sha256", 256, None, "argon2id"),
    ("hashed", "aes-cbc-essiv:sha256", 256, "ripemd160", "argon2id"),
])
def test_new_keystores_get_cryptsetups_defaults_from_their_handler(name: str, cipher: str, bits: int,
                                                                   key_hash: str | None, pbkdf: str) -> None:
    handler = registry.get(name)
    assert handler.new_attrs() == KeystoreAttrs(name, cipher, bits, key_hash)
    assert pbkdf_request(handler, KeystoreRequest()).kind == pbkdf


def test_a_handler_declares_its_own_defaults_and_whether_hash_is_its_key_hash() -> None:
    class Serpent(PlainHandler):
        name = "serpent-test"
        default_cipher = "serpent-xts-plain64"
        default_key_size = 512
        default_pbkdf = "pbkdf2"

        def key_hash(self, requested: str | None) -> str | None:
            return requested or "sha256"

    handler = Serpent()
    assert handler.new_attrs() == KeystoreAttrs("serpent-test", "serpent-xts-plain64", 512, "sha256")
    asked = KeystoreRequest(cipher="aes-xts-plain64", key_bits=256, hash="sha512")
    assert handler.new_attrs(asked.cipher, asked.key_bits, asked.hash) == KeystoreAttrs(
        "serpent-test", "aes-xts-plain64", 256, "sha512")
    # --hash is only luks2's PBKDF hash
    assert registry.get("luks2").new_attrs(asked.cipher, asked.key_bits, asked.hash).key_hash is None
    assert pbkdf_request(handler, KeystoreRequest()).kind == "pbkdf2"


def test_format_declined_writes_nothing_and_asks_no_passphrase(tmp_path: Path) -> None:
    target = image(tmp_path)
    before = digest(target)
    with pytest.raises(LvcryptError, match="aborted"):
        format_target(str(target), FAST, FormatOptions(), KeySources(prompt=no_prompt), aborted)
    assert digest(target) == before


def test_format_on_too_small_a_target_is_refused_before_the_question(tmp_path: Path) -> None:
    target = image(tmp_path, 4096)
    with pytest.raises(HandlerError, match="too small for a luks2 keystore"):
        format_target(str(target), FAST, FormatOptions(), KeySources(prompt=no_prompt), never_asked)
    assert target.read_bytes() == bytes(4096)


def test_keyslots_wrong_passphrase_and_the_last_slot(tmp_path: Path) -> None:
    target = image(tmp_path)
    first = key_file(tmp_path, "first", b"first passphrase")
    second = key_file(tmp_path, "second", b"second passphrase")
    wrong = key_file(tmp_path, "wrong", b"wrong passphrase")
    format_target(str(target), FAST, FormatOptions(), first, sure)
    assert unlock_test(str(target), None, first, None) == 0

    formatted = digest(target)
    with pytest.raises(WrongPassphrase):
        add_keyslot(str(target), None, wrong, second, FAST, None)
    questions: list[str] = []

    def declined(question: str) -> None:
        questions.append(question)
        aborted(question)

    with pytest.raises(LvcryptError, match="aborted"):
        remove_keyslot(str(target), None, 0, declined)
    assert questions == ["Keyslot 0 is the last one: removing it makes the data inaccessible."]
    assert digest(target) == formatted

    assert add_keyslot(str(target), None, first, second, FAST, None) == 1
    remove_keyslot(str(target), None, 0, never_asked)  # slot 1 remains: no question
    assert unlock_test(str(target), None, second, None) == 1
    with pytest.raises(WrongPassphrase):
        unlock_test(str(target), None, first, None)
