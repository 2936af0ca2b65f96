"""lvcrypt.encrypted_lv in process: a new encrypted LV and its keystore, refusals, and wiping.

A VG in an image file (made by the CLI) is changed in a VgTransaction as
`lvcreate --encrypt [--wipe]` does; what was committed is read back from disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lvcrypt.activation import open_lv_stack
from lvcrypt.encrypted_lv import EncryptedLvRequest, create_encrypted, wipe_lv
from lvcrypt.errors import UsageError, WrongPassphrase
from lvcrypt.handlers.secret import Secret
from lvcrypt.keystore_admin import KeystoreRequest
from lvcrypt.keystores import keystore_segment
from lvcrypt.store.transaction import VgTransaction
from lvcrypt.unlock import KeySources
from store_helpers import Pair, image_vg_copy, image_vg_template

FAST = KeystoreRequest(pbkdf="pbkdf2", force_iterations=1000)
PASSPHRASE = b"encrypted lv passphrase"


def no_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted: {prompt!r}")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty VG `vge` in an image file, made once by the CLI."""
    return Path(image_vg_template(tmp_path_factory.mktemp("template"), "vge", size_mib=64).devices[0])


@pytest.fixture
def vg(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    return image_vg_copy(template, tmp_path, monkeypatch, PASSPHRASE)


def sources(pair: Pair) -> KeySources:
    return KeySources(key_file=str(pair.tmp / "pass"), prompt=no_prompt)


def digest(pair: Pair) -> str:
    return hashlib.sha256(Path(pair.devices[0]).read_bytes()).hexdigest()


def create(pair: Pair, name: str, request: EncryptedLvRequest, extents: int = 2) -> Secret | None:
    """create_encrypted and commit, as lvcreate does; returns the new keystore's volume key."""
    with VgTransaction(pair.device_list, "vge") as tx:
        _, key = create_encrypted(tx, name, extents, 1, None, "normal", None, request, sources(pair))
        tx.commit()
    return key


def test_a_new_hashed_keystore_takes_the_hashed_handlers_defaults(vg: Pair) -> None:
    """Defaults of cryptsetup's plain mode, and its key-file rule (issue 15): a named file's bytes are the key."""
    (vg.tmp / "pass").write_bytes(bytes(range(40)))
    key = create(vg, "data", EncryptedLvRequest(new=KeystoreRequest(handler="hashed")))
    assert key is not None and bytes(key.buffer) == bytes(range(32))
    key.close()
    with VgTransaction(vg.device_list, "vge", exclusive=False) as tx:
        (store,) = tx.vg.lvs["data"].keystores()
        segment = keystore_segment(tx.vg, store)
        assert (segment.handler, segment.cipher, segment.key_size, segment.key_hash) == \
            ("hashed", "aes-cbc-essiv:sha256", 256, "ripemd160")
        assert segment.raw.get("key_file_rule") == "cryptsetup"


def test_reusing_a_keystore_with_new_keystore_options_is_refused_with_nothing_written(vg: Pair) -> None:
    create(vg, "first", EncryptedLvRequest(new=FAST)).close()  # type: ignore[union-attr]
    before = digest(vg)
    with pytest.raises(UsageError, match="--keystore reuses a keystore"):
        create(vg, "second", EncryptedLvRequest(keystore="cryptostore0", new=KeystoreRequest(cipher="aes-xts-plain")))
    assert digest(vg) == before
    assert create(vg, "second", EncryptedLvRequest(keystore="cryptostore0")) is None  # one passphrase for both


def test_wiping_fills_the_lv_through_the_mapping_and_reports_progress(vg: Pair) -> None:
    key = create(vg, "data", EncryptedLvRequest(new=FAST), extents=3)
    seen: list[tuple[int, int]] = []
    with VgTransaction(vg.device_list, "vge") as tx:
        wipe_lv(tx, "data", key, sources(vg), progress=lambda done, size: seen.append((done, size)))
    assert key is not None and len(key) == 0  # the wipe took the key over and wiped it
    with open_lv_stack(vg.device_list, "vge", "data", False, sources(vg)) as stack:
        size = stack.size
        plaintext = bytearray(size)
        stack.readinto(0, memoryview(plaintext))
    assert seen and seen[-1][0] >= size and all(total == size for _, total in seen)
    assert plaintext.count(0) < size // 128  # random bytes, not the zeros of a fresh image


def test_wiping_an_lv_with_a_wrong_passphrase_writes_nothing(vg: Pair) -> None:
    create(vg, "data", EncryptedLvRequest(new=FAST)).close()  # type: ignore[union-attr]
    (vg.tmp / "wrong").write_bytes(b"not it")
    before = digest(vg)
    with VgTransaction(vg.device_list, "vge") as tx, pytest.raises(WrongPassphrase):
        wipe_lv(tx, "data", None, KeySources(key_file=str(vg.tmp / "wrong"), prompt=no_prompt))
    assert digest(vg) == before
