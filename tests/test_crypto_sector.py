"""The batched sector ciphers against a per-sector reference built directly on `cryptography`.

The reference is written from dm-crypt's documented rules (one XTS or CBC
operation per sector, IV = sector number in 512-byte units, 32-bit for plain,
ESSIV = AES_{sha256(key)}(plain64 IV)) and shares no code with lvcrypt.crypto.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.crypto import open_sector_cipher, parse_cipher_spec
from lvcrypt.errors import HandlerError

SPECS = ["aes-xts-plain64", "aes-xts-plain", "aes-cbc-essiv:sha256", "aes-cbc-plain", "aes-cbc-plain64",
         "capi:xts(aes)-plain64"]


def reference_iv(spec: str, key: bytes, iv_sector: int) -> bytes:
    if spec.endswith("-plain"):
        return (iv_sector & 0xFFFFFFFF).to_bytes(16, "little")
    plain64 = (iv_sector & (2**64 - 1)).to_bytes(16, "little")
    if "essiv" in spec:
        salt = hashlib.sha256(key).digest()
        encryptor = Cipher(algorithms.AES(salt), modes.ECB()).encryptor()
        return encryptor.update(plain64) + encryptor.finalize()
    return plain64


def reference(spec: str, key: bytes, data: bytes, sector_size: int, sector: int, decrypt: bool = False,
              iv_large_sectors: bool = False) -> bytes:
    """One `cryptography` call per sector, the obviously-correct slow way."""
    out = []
    for index in range(len(data) // sector_size):
        dm_sector = sector + index * (sector_size // 512)
        iv_sector = dm_sector // (sector_size // 512) if iv_large_sectors else dm_sector
        iv = reference_iv(spec, key, iv_sector)
        mode = modes.XTS(iv) if "xts" in spec else modes.CBC(iv)
        cipher = Cipher(algorithms.AES(key), mode)
        context = cipher.decryptor() if decrypt else cipher.encryptor()
        out.append(context.update(data[index * sector_size:(index + 1) * sector_size]) + context.finalize())
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(spec=st.sampled_from(SPECS), sector_size=st.sampled_from([512, 1024, 2048, 4096]), long_key=st.booleans(),
       count=st.integers(1, 40), start=st.one_of(st.integers(0, 2**20), st.integers(2**32 - 64, 2**32 + 64),
                                                 st.integers(2**63, 2**64 - 2**20)),
       batch_sectors=st.integers(1, 9), in_place=st.booleans(), seed=st.binary(min_size=8, max_size=8))
def test_batched_cipher_equals_per_sector_reference(spec, sector_size, long_key, count, start, batch_sectors,
                                                    in_place, seed):
    key_size = (64 if long_key else 32) if "xts" in spec else (32 if long_key else 16)
    key = hashlib.sha512(seed).digest()[:key_size]
    data = hashlib.shake_256(seed).digest(count * sector_size)
    sector = start - start % (sector_size // 512)
    cipher = open_sector_cipher(spec, key, sector_size, batch_bytes=batch_sectors * sector_size)
    expected = reference(spec, key, data, sector_size, sector)

    if in_place:
        ciphertext = bytearray(data)
        cipher.encrypt_into(ciphertext, ciphertext, sector)
    else:
        ciphertext = cipher.encrypt(data, sector)
    assert bytes(ciphertext) == expected
    if in_place:
        cipher.decrypt_into(ciphertext, ciphertext, sector)
        assert bytes(ciphertext) == data
    else:
        assert bytes(cipher.decrypt(bytes(ciphertext), sector)) == data


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(["aes-xts-plain64", "aes-cbc-essiv:sha256"]), sector_size=st.sampled_from([512, 4096]),
       calls=st.lists(st.tuples(st.integers(1, 300), st.integers(-400, 400), st.booleans()), min_size=1, max_size=12))
def test_streaming_and_jumping_calls_equal_the_reference(spec, sector_size, calls):
    """Calls that continue where the last one stopped reuse IV state prepared ahead; jumps,
    re-reads inside that state and direction changes must still give dm-crypt's bytes."""
    key = hashlib.sha512(spec.encode()).digest()[: 64 if "xts" in spec else 32]
    unit = sector_size // 512
    cipher = open_sector_cipher(spec, key, sector_size, batch_bytes=8 * sector_size)
    cipher.iv_batch_sectors = 64  # small enough for these calls to cross IV batches
    position = 10_000 * unit
    for count, jump, decrypt in calls:
        if jump % 3 == 0:
            position = max(0, position + jump * unit)
        data = hashlib.shake_256(f"{position}".encode()).digest(count * sector_size)
        run = cipher.decrypt if decrypt else cipher.encrypt
        assert bytes(run(data, position)) == reference(spec, key, data, sector_size, position, decrypt=decrypt)
        position += count * unit


@pytest.mark.parametrize("spec", ["aes-xts-plain64", "aes-cbc-essiv:sha256"])
def test_iv_large_sectors_counts_encryption_sectors(spec):
    key = os.urandom(64 if "xts" in spec else 32)
    data = os.urandom(3 * 4096)
    large = open_sector_cipher(spec, key, 4096, iv_large_sectors=True)
    assert bytes(large.encrypt(data, 16)) == reference(spec, key, data, 4096, 16, iv_large_sectors=True)
    # Without the flag, IVs count 512-byte sectors: a different ciphertext for the same data.
    assert bytes(open_sector_cipher(spec, key, 4096).encrypt(data, 16)) != bytes(large.encrypt(data, 16))


def test_plain_wraps_at_32_bits_and_plain64_does_not():
    key = os.urandom(64)
    data = os.urandom(512)
    plain = open_sector_cipher("aes-xts-plain", key)
    plain64 = open_sector_cipher("aes-xts-plain64", key)
    assert plain.encrypt(data, 2**32 + 5) == plain.encrypt(data, 5)
    assert plain64.encrypt(data, 2**32 + 5) != plain64.encrypt(data, 5)
    assert plain.encrypt(data, 5) == plain64.encrypt(data, 5)


@pytest.mark.parametrize("spec", ["aes-xts-plain64", "aes-cbc-essiv:sha256"])
def test_large_buffer_spans_many_batches_and_iv_batches(spec):
    key = os.urandom(64 if "xts" in spec else 32)
    data = os.urandom(9 << 20)
    cipher = open_sector_cipher(spec, key, 512)
    expected = reference(spec, key, data, 512, 1000)
    assert bytes(cipher.encrypt(data, 1000)) == expected
    assert bytes(cipher.decrypt(expected, 1000)) == data


def test_read_only_source_and_memoryview_destination():
    key = os.urandom(32)
    data = os.urandom(2048)
    target = bytearray(4096)
    cipher = open_sector_cipher("aes-xts-plain64", key)
    cipher.encrypt_into(data, memoryview(target)[1024:3072], 0)
    assert bytes(target[1024:3072]) == reference("aes-xts-plain64", key, data, 512, 0)
    assert target[:1024] == bytes(1024) and target[3072:] == bytes(1024)


@pytest.mark.parametrize("spec", ["aes-xts-plain64", "twofish-xts-plain64", "aes-ecb", "aes-xts-benbi",
                                  "aes-cbc-essiv", "aes-cbc-essiv:md5", "aes-xts-plain64:sha256",
                                  "aes:2-cbc-plain", "aes-gcm-random", "capi:gcm(aes)-random", ""])
def test_unsupported_cipher_strings_are_one_line_handler_errors(spec):
    if spec == "aes-xts-plain64":
        assert str(parse_cipher_spec(spec)) == spec
        return
    with pytest.raises(HandlerError) as error:
        parse_cipher_spec(spec)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("spec, key_size", [("aes-xts-plain64", 16), ("aes-xts-plain64", 48),
                                            ("aes-cbc-essiv:sha256", 64), ("aes-cbc-plain", 20)])
def test_wrong_key_sizes_are_refused_without_showing_the_key(spec, key_size):
    key = bytes([0xAB]) * key_size
    with pytest.raises(HandlerError) as error:
        open_sector_cipher(spec, key)
    assert "ab" not in str(error.value).lower()


def test_bad_sector_size_and_partial_sectors_are_refused():
    with pytest.raises(HandlerError):
        open_sector_cipher("aes-xts-plain64", bytes(64), 1000)
    cipher = open_sector_cipher("aes-xts-plain64", bytes(64), 4096)
    with pytest.raises(ValueError):
        cipher.encrypt(bytes(512), 0)
    with pytest.raises(ValueError):
        cipher.encrypt(bytes(4096), 1)  # not aligned to the 4096-byte sector


def test_repr_names_the_cipher_not_the_key():
    key = bytes(range(64))
    text = repr(open_sector_cipher("aes-xts-plain64", key))
    assert "aes-xts-plain64" in text and "512 bits" in text
    assert key.hex()[:16] not in text
