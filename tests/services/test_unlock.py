"""lvcrypt.unlock in process: the one order of key sources, and every key checked before it is cached.

The VG lives in an image file made by the CLI; the tests call the core as
`lvchange`, `read` and kdump do.  Keyring keys are made in a fresh session
keyring and invalidated afterwards, also when a test fails.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from lvcrypt import keyring
from lvcrypt.errors import HandlerError, UsageError, WrongPassphrase
from lvcrypt.handlers.secret import Secret
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.store.transaction import VgTransaction
from lvcrypt.unlock import KeySources, adopt_volume_key, unlock_lv
from store_helpers import Pair, image_vg_copy, image_vg_template

PASSPHRASE = b"unlock order passphrase"
STORE = "cryptostore0"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vgu/secret, a LUKS2 crypt LV, made once by the CLI in an image file each test copies."""
    return Path(image_vg_template(tmp_path_factory.mktemp("template"), "vgu", encrypted_lv="secret",
                                  passphrase=PASSPHRASE).devices[0])


@pytest.fixture
def vg(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """A copy of the template VG; this process uses state directories of its own, as a command would."""
    (tmp_path / "wrong").write_bytes(b"not the passphrase")
    return image_vg_copy(template, tmp_path, monkeypatch, PASSPHRASE)


def refuse_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted ({prompt!r}) although an earlier source applies")


def digest(pair: Pair) -> str:
    return hashlib.sha256(Path(pair.devices[0]).read_bytes()).hexdigest()


def unlocked(pair: Pair, sources: KeySources) -> bytes:
    """The volume key unlock_lv puts in the cache for vgu/secret (refusals propagate)."""
    with VgTransaction(pair.device_list, "vgu", exclusive=False) as tx, KeyCache() as keys:
        unlock_lv(tx, "secret", keys, sources)
        assert list(keys) == [STORE]
        return bytes(keys[STORE])


def refused(pair: Pair, sources: KeySources, error: type[Exception]) -> None:
    """unlock_lv refuses: nothing in the cache, nothing written to the PV."""
    before = digest(pair)
    with VgTransaction(pair.device_list, "vgu", exclusive=False) as tx, KeyCache() as keys:
        with pytest.raises(error):
            unlock_lv(tx, "secret", keys, sources)
        assert len(keys) == 0
    assert digest(pair) == before


def add_token(pair: Pair, description: str) -> None:
    """A luks2-keyring token for keyslot 0, as `cryptsetup token add --key-description` makes one."""
    with VgTransaction(pair.device_list, "vgu") as tx, \
            KeystoreSessions(tx.vg, tx.loaded.device_of, writable=True) as stores:
        stores.session(STORE).add_keyring_token(description, [0])


def test_key_file_unlocks_and_the_key_is_the_keystores(vg: Pair) -> None:
    key = unlocked(vg, KeySources(key_file=str(vg.tmp / "pass"), prompt=refuse_prompt))
    with VgTransaction(vg.device_list, "vgu", exclusive=False) as tx, \
            KeystoreSessions(tx.vg, tx.loaded.device_of) as stores:
        stores.session(STORE).verify_volume_key(Secret.adopt(bytearray(key)))


def test_wrong_key_file_is_refused_with_nothing_cached_or_written(vg: Pair) -> None:
    refused(vg, KeySources(key_file=str(vg.tmp / "wrong"), prompt=refuse_prompt), WrongPassphrase)


def test_volume_key_from_the_keyring_comes_before_the_key_file(vg: Pair, made: list[int]) -> None:
    key = unlocked(vg, KeySources(key_file=str(vg.tmp / "pass")))
    description = f"lvcrypt-test:vk-{os.getpid()}"
    made.append(keyring.add_key("user", description, bytearray(key), "@s"))
    # The key file does not exist: reading it would fail, so the keyring key alone must have unlocked.
    sources = KeySources(key_file=str(vg.tmp / "absent"), volume_key_keyring=f"%user:{description}",
                         prompt=refuse_prompt)
    assert unlocked(vg, sources) == key


def test_a_wrong_volume_key_in_the_keyring_is_refused(vg: Pair, made: list[int]) -> None:
    description = f"lvcrypt-test:bad-{os.getpid()}"
    made.append(keyring.add_key("user", description, bytearray(os.urandom(64)), "@s"))
    refused(vg, KeySources(key_file=str(vg.tmp / "pass"), volume_key_keyring=f"%user:{description}"),
            WrongPassphrase)


def test_token_comes_before_the_prompt(vg: Pair, made: list[int]) -> None:
    description = f"lvcrypt-test:token-{os.getpid()}"
    add_token(vg, description)
    made.append(keyring.add_key("user", description, bytearray(PASSPHRASE), "@s"))
    assert unlocked(vg, KeySources(prompt=refuse_prompt)) == unlocked(vg, KeySources(key_file=str(vg.tmp / "pass")))


def test_a_key_file_given_skips_the_token(vg: Pair, made: list[int]) -> None:
    """As cryptsetup: an explicit key file is the source, even when a token would open the keystore."""
    description = f"lvcrypt-test:token-{os.getpid()}"
    add_token(vg, description)
    made.append(keyring.add_key("user", description, bytearray(PASSPHRASE), "@s"))
    refused(vg, KeySources(key_file=str(vg.tmp / "wrong"), prompt=refuse_prompt), WrongPassphrase)


def test_prompt_comes_last_and_names_the_lv(vg: Pair, made: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """No key file, a token whose key is absent: the terminal is asked, once, for vgu/secret."""
    add_token(vg, f"lvcrypt-test:absent-{os.getpid()}")
    asked: list[str] = []

    def prompt(text: str) -> Secret:
        asked.append(text)
        return Secret.adopt(bytearray(PASSPHRASE))

    main, terminal = os.openpty()
    with open(terminal, "r", closefd=True) as tty:
        monkeypatch.setattr(sys, "stdin", tty)
        key = unlocked(vg, KeySources(prompt=prompt))
    os.close(main)
    assert asked == ["Enter passphrase for vgu/secret: "]
    assert key == unlocked(vg, KeySources(key_file=str(vg.tmp / "pass")))


def test_no_source_at_all_is_a_usage_error(vg: Pair) -> None:
    assert not sys.stdin.isatty()
    refused(vg, KeySources(prompt=refuse_prompt), UsageError)


def test_unreadable_key_file_is_one_line(vg: Pair) -> None:
    with pytest.raises(HandlerError, match="cannot read key file"):
        unlocked(vg, KeySources(key_file=str(vg.tmp)))


def test_adopt_volume_key_wipes_a_key_it_refuses(vg: Pair) -> None:
    key = Secret.adopt(bytearray(os.urandom(64)))
    with VgTransaction(vg.device_list, "vgu", exclusive=False) as tx, KeyCache() as keys:
        with pytest.raises(WrongPassphrase):
            adopt_volume_key(tx, STORE, key, keys)
        assert len(keys) == 0
    assert len(key) == 0  # wiped and released, not left for the garbage collector
