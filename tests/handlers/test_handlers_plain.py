"""plain and hashed handlers: keys as cryptsetup's plain mode derives them, and the key check block.

The oracle is libcryptsetup itself: `cryptsetup open --type plain` needs
device-mapper (absent here), but the library's key processing runs on a PLAIN
context over an image file and returns the key it would map.  Plain mode keeps
nothing on disk, so "both directions" is the same question: does lvcrypt derive
the key cryptsetup derives from the same passphrase, hash and key size?
Mapping data with that key is the kernel guest tier's job.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.errors import FormatError, HandlerError, LvcryptError, WrongPassphrase
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs, MemoryArea
from lvcrypt.handlers.hashed import HashedHandler, plain_hash
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.plain import PlainHandler
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import image, libcryptsetup_plain_key, needs_cryptsetup

FAST = FormatOptions(pbkdf=PbkdfRequest("pbkdf2", force_iterations=1000))
PASSPHRASES = [b"p", b"correct horse battery staple", bytes(range(256)), "pässwörd".encode()]


@needs_cryptsetup
@pytest.mark.oracle
@pytest.mark.parametrize("hash_spec", ["sha1", "sha256", "sha512", "ripemd160", "sha256:16", "sha1:12"])
@pytest.mark.parametrize("key_bits", [128, 256, 512])
def test_hashed_key_equals_libcryptsetup(tmp_path: Path, hash_spec: str, key_bits: int) -> None:
    img = image(tmp_path / "plain.img", 1)
    for passphrase in PASSPHRASES:
        expected = libcryptsetup_plain_key(img, hash_spec, key_bits // 8, passphrase)
        with Secret(passphrase) as secret, plain_hash(hash_spec, secret, key_bits // 8) as key:
            assert bytes(key.buffer) == expected


@needs_cryptsetup
@pytest.mark.oracle
@pytest.mark.parametrize("key_bits", [128, 256, 512])
def test_plain_key_file_equals_libcryptsetup(tmp_path: Path, key_bits: int) -> None:
    """cryptsetup copies the key file's first key_size bytes (its "plain" hash does the same copy)."""
    img = image(tmp_path / "plain.img", 1)
    key_file = os.urandom(key_bits // 8 + 17)
    expected = libcryptsetup_plain_key(img, "plain", key_bits // 8, key_file)
    attrs = KeystoreAttrs("plain", "aes-xts-plain64" if key_bits > 128 else "aes-cbc-essiv:sha256", key_bits)
    with Secret(key_file) as secret, PlainHandler().unlock(MemoryArea(0), attrs, secret) as key:
        assert bytes(key.buffer) == expected


def test_hash_length_longer_than_key_is_refused() -> None:
    with Secret(b"x") as secret, pytest.raises(HandlerError, match="no larger than the key"):
        plain_hash("sha256:64", secret, 32)


@pytest.mark.parametrize("handler,attrs", [
    (PlainHandler(), KeystoreAttrs("plain", "aes-xts-plain64", 512)),
    (HashedHandler(), KeystoreAttrs("hashed", "aes-cbc-essiv:sha256", 256, "sha512")),
])
def test_check_block_detects_wrong_key_and_records_attrs(tmp_path: Path, handler: PlainHandler,
                                                           attrs: KeystoreAttrs) -> None:
    right = os.urandom(64) if handler.name == "plain" else b"the passphrase"
    wrong = os.urandom(64) if handler.name == "plain" else b"the passphrasf"
    path = tmp_path / "store.img"
    path.write_bytes(bytes(4 << 20))
    with FileArea(path) as area:
        with Secret(right) as pw, handler.format(area, attrs, pw, FAST) as key:
            volume_key = bytes(key.buffer)
        assert handler.read_attrs(area) == KeystoreAttrs(attrs.handler, attrs.cipher, attrs.key_size, attrs.key_hash)
        with Secret(right) as pw, handler.unlock(area, attrs, pw) as key:
            assert bytes(key.buffer) == volume_key
        with Secret(wrong) as pw, pytest.raises(WrongPassphrase):
            handler.unlock(area, attrs, pw)
        other = KeystoreAttrs(attrs.handler, "aes-xts-plain64", 256, attrs.key_hash)
        with Secret(right) as pw, pytest.raises(FormatError, match="differs"):
            handler.unlock(area, other, pw)
        assert handler.data_mapping(area, attrs).cipher == attrs.cipher
    raw = bytearray(path.read_bytes()[:512])
    raw[50] ^= 1
    with Secret(right) as pw, pytest.raises(FormatError, match="checksum"):
        handler.unlock(MemoryArea(raw), attrs, pw)


def test_keystore_without_area_accepts_any_key_like_cryptsetup() -> None:
    attrs = KeystoreAttrs("hashed", "aes-cbc-essiv:sha256", 256, "sha256")
    with Secret(b"anything") as pw, HashedHandler().unlock(MemoryArea(0), attrs, pw) as key:
        assert len(key) == 32


def test_short_key_file_and_bad_attrs_are_one_line_errors() -> None:
    with Secret(b"short") as pw:
        with pytest.raises(HandlerError, match="holds 5 bytes"):
            PlainHandler().unlock(MemoryArea(0), KeystoreAttrs("plain", "aes-xts-plain64", 512), pw)
        with pytest.raises(HandlerError, match="unsupported cipher"):
            PlainHandler().unlock(MemoryArea(0), KeystoreAttrs("plain", "twofish-xts-plain64", 512), pw)
        with pytest.raises(HandlerError, match="key_hash"):
            HashedHandler().unlock(MemoryArea(0), KeystoreAttrs("hashed", "aes-xts-plain64", 512), pw)


def _hashed_block() -> tuple[bytes, bytes]:
    area = MemoryArea(512)
    attrs = KeystoreAttrs("hashed", "aes-xts-plain64", 512, "sha256")
    with Secret(b"fuzzed") as pw, HashedHandler().format(area, attrs, pw, FAST) as key:
        return bytes(area.data), bytes(key.buffer)


HASHED_BLOCK = _hashed_block()


@settings(max_examples=300, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 511), st.integers(1, 255)), min_size=1, max_size=3))
def test_corrupted_check_block_unlocks_or_fails_cleanly(flips: list[tuple[int, int]]) -> None:
    raw, volume_key = HASHED_BLOCK
    data = bytearray(raw)
    for offset, mask in flips:
        data[offset] ^= mask
    attrs = KeystoreAttrs("hashed", "aes-xts-plain64", 512, "sha256")
    try:
        with Secret(b"fuzzed") as pw, HashedHandler().unlock(MemoryArea(data), attrs, pw) as key:
            assert bytes(key.buffer) == volume_key
    except LvcryptError as error:
        assert "\n" not in str(error)
