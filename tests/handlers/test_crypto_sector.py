"""The sector cipher (its compiled engine, lvcrypt/crypto/_sectors.c) against a per-sector reference on `cryptography`.

The reference is written from dm-crypt's documented rules (one XTS or CBC
operation per sector, or ECB per block; IV = sector number in 512-byte
units, 32-bit for plain, big-endian in the last 8 bytes for plain64be, zero
for null, ESSIV = AES_{sha256(key)}(plain64 IV)) and shares no code with
lvcrypt.crypto; its OpenSSL is the one in cryptography's wheel, not the
system libcrypto the engine links.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.crypto import (SectorCipher, check_new_volume_key, open_sector_cipher, parse_cipher_spec,
                            parse_kernel_cipher_spec)
from lvcrypt.errors import HandlerError

SPECS = ["aes-xts-plain64", "aes-xts-plain", "aes-cbc-essiv:sha256", "aes-cbc-plain", "aes-cbc-plain64",
         "capi:xts(aes)-plain64"]
# Every spec the engine computes, with its key sizes in bytes.
ALL_SPECS = {"aes-xts-plain64": (32, 64), "aes-xts-plain": (32, 64), "aes-xts-plain64be": (32, 64),
             "aes-xts-null": (32, 64), "aes-xts-essiv:sha256": (32, 64), "capi:xts(aes)-plain64": (32, 64),
             "aes-cbc-plain": (16, 24, 32), "aes-cbc-plain64": (16, 24, 32), "aes-cbc-plain64be": (16, 24, 32),
             "aes-cbc-null": (16, 24, 32), "aes-cbc-essiv:sha256": (16, 24, 32), "capi:cbc(aes)-plain64": (32,),
             "aes-ecb": (16, 24, 32), "sm4-cbc-plain64": (16,), "sm4-cbc-plain": (16,),
             "sm4-ecb": (16,)}


def reference_iv(spec: str, key: bytes, iv_sector: int) -> bytes:
    iv_mode = spec.rsplit("-", 1)[1]
    if iv_mode == "plain":
        return (iv_sector & 0xFFFFFFFF).to_bytes(16, "little")
    if iv_mode == "null":
        return bytes(16)
    if iv_mode == "plain64be":
        return bytes(8) + (iv_sector & (2**64 - 1)).to_bytes(8, "big")
    plain64 = (iv_sector & (2**64 - 1)).to_bytes(16, "little")
    if "essiv" in spec:
        salt = hashlib.sha256(key).digest()
        algorithm = algorithms.SM4(salt[:16]) if spec.startswith("sm4") else algorithms.AES(salt)
        encryptor = Cipher(algorithm, modes.ECB()).encryptor()
        return encryptor.update(plain64) + encryptor.finalize()
    return plain64


def reference(spec: str, key: bytes, data: bytes, sector_size: int, sector: int, decrypt: bool = False,
              iv_large_sectors: bool = False) -> bytes:
    """One `cryptography` call per sector, the obviously-correct slow way."""
    spec = spec.replace("capi:xts(aes)-", "aes-xts-").replace("capi:cbc(aes)-", "aes-cbc-")
    algorithm = algorithms.SM4(key) if spec.startswith("sm4") else algorithms.AES(key)
    out = []
    for index in range(len(data) // sector_size):
        dm_sector = sector + index * (sector_size // 512)
        iv_sector = dm_sector // (sector_size // 512) if iv_large_sectors else dm_sector
        if "-ecb" in spec:
            mode: modes.Mode = modes.ECB()
        else:
            iv = reference_iv(spec, key, iv_sector)
            mode = modes.XTS(iv) if "-xts-" in spec else modes.CBC(iv)
        cipher = Cipher(algorithm, mode)
        context = cipher.decryptor() if decrypt else cipher.encryptor()
        out.append(context.update(data[index * sector_size:(index + 1) * sector_size]) + context.finalize())
    return b"".join(out)


@settings(max_examples=80, deadline=None)
@given(spec=st.sampled_from(sorted(ALL_SPECS)), sector_size=st.sampled_from([512, 1024, 2048, 4096]),
       key_choice=st.integers(0, 2), count=st.integers(1, 40), iv_large_sectors=st.booleans(),
       start=st.one_of(st.integers(0, 2**20), st.integers(2**32 - 64, 2**32 + 64), st.integers(2**63, 2**64 - 1)),
       in_place=st.booleans(), seed=st.binary(min_size=8, max_size=8))
def test_every_spec_equals_the_per_sector_reference(spec, sector_size, key_choice, count, iv_large_sectors, start,
                                                    in_place, seed):
    """Both directions, in place or not, from any aligned first sector (odd IVs, plain's 32-bit wrap, plain64's
    64-bit wrap) and with iv_large_sectors; 40 sectors cross the engine's 16 KiB batches."""
    sizes = ALL_SPECS[spec]
    key = hashlib.sha512(seed).digest()[:sizes[key_choice % len(sizes)]]
    data = hashlib.shake_256(seed).digest(count * sector_size)
    sector = start - start % (sector_size // 512)
    expected = reference(spec, key, data, sector_size, sector, iv_large_sectors=iv_large_sectors)
    cipher = open_sector_cipher(spec, key, sector_size, iv_large_sectors)
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
    assert reference(spec, key, expected, sector_size, sector, decrypt=True, iv_large_sectors=iv_large_sectors) == data


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(["aes-xts-plain64", "aes-cbc-essiv:sha256"]), sector_size=st.sampled_from([512, 4096]),
       calls=st.lists(st.tuples(st.integers(1, 300), st.integers(-400, 400), st.booleans()), min_size=1, max_size=12))
def test_streaming_and_jumping_calls_equal_the_reference(spec, sector_size, calls):
    """Calls that continue where the last one stopped, jumps, re-reads and direction changes on one cipher:
    each call's bytes depend on its own sectors only."""
    key = hashlib.sha512(spec.encode()).digest()[: 64 if "xts" in spec else 32]
    unit = sector_size // 512
    cipher = open_sector_cipher(spec, key, sector_size)
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


@pytest.mark.parametrize("spec", ["aes-xts-plain64", "twofish-xts-plain64", "aes-xts-benbi",
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


# IEEE Std 1619-2007 (XTS-AES), Annex B test vectors 4 (XTS-AES-128) and 10 (XTS-AES-256): 512-byte data
# units, so each is one dm-crypt sector whose plain64 IV is the data unit sequence number.
IEEE_1619_PLAINTEXT = bytes(range(256)) * 2
IEEE_1619_VECTORS = [
    pytest.param("27182818284590452353602874713526" "31415926535897932384626433832795", 0,
                 "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c"
                 "c78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412"
                 "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce"
                 "93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
                 "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8"
                 "a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
                 "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c"
                 "5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e"
                 "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc"
                 "1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
                 "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344"
                 "b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
                 "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752"
                 "afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e"
                 "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d"
                 "eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568", id="vector4-aes128"),
    pytest.param("2718281828459045235360287471352662497757247093699959574966967627"
                 "3141592653589793238462643383279502884197169399375105820974944592", 0xFF,
                 "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
                 "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
                 "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
                 "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
                 "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
                 "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
                 "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
                 "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
                 "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
                 "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
                 "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
                 "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
                 "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
                 "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
                 "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
                 "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151", id="vector10-aes256"),
]


@pytest.mark.parametrize("key_hex, data_unit, ciphertext_hex", IEEE_1619_VECTORS)
def test_ieee_1619_vectors(key_hex: str, data_unit: int, ciphertext_hex: str) -> None:
    """The engine's XTS (OpenSSL's, its IV written into the context per sector) gives the standard's ciphertext,
    alone and as one sector among others."""
    expected = bytes.fromhex(ciphertext_hex)
    for cipher in [open_sector_cipher("aes-xts-plain64", bytes.fromhex(key_hex))]:
        assert bytes(cipher.encrypt(IEEE_1619_PLAINTEXT, data_unit)) == expected
        assert bytes(cipher.decrypt(expected, data_unit)) == IEEE_1619_PLAINTEXT
        # The vector's sector at the head of a longer run: its bytes do not depend on the sectors after it.
        run = IEEE_1619_PLAINTEXT + os.urandom(1024)
        assert bytes(cipher.encrypt(run, data_unit))[:512] == expected


@pytest.mark.parametrize("spec", ["aes-xts-plain64", "aes-xts-essiv:sha256", "capi:xts(aes)-plain64"])
def test_equal_xts_key_halves_compute_as_dm_crypt_but_no_new_key_has_them(spec: str) -> None:
    """One rule: data under such a key stays readable (dm-crypt outside FIPS mode computes it; OpenSSL's XTS
    decrypts it), but `check_new_volume_key`, asked wherever lvcrypt adopts a new key, refuses it."""
    key = bytes(range(32)) * 2
    data = hashlib.shake_256(b"equal halves").digest(1024)
    ciphertext = bytes(SectorCipher(spec, key).encrypt(data, 5))
    if "plain64" in spec:
        reference = Cipher(algorithms.AES(key), modes.XTS((5).to_bytes(16, "little"))).decryptor()
        assert reference.update(ciphertext[:512]) + reference.finalize() == data[:512]
    assert bytes(SectorCipher(spec, key).decrypt(ciphertext, 5)) == data
    with pytest.raises(HandlerError, match="halves") as error:
        check_new_volume_key(parse_cipher_spec(spec), key)
    assert key.hex()[:16] not in str(error.value)
    check_new_volume_key(parse_cipher_spec(spec), bytes(range(64)))
    check_new_volume_key(parse_cipher_spec("aes-cbc-essiv:sha256"), bytes(16) * 2)  # CBC has one key


@pytest.mark.parametrize("sector_size", [512, 1024, 2048, 4096])
def test_equal_xts_key_halves_take_xts_on_ecb_and_decrypt_with_openssls_xts(sector_size: int) -> None:
    """Such keys, which OpenSSL's XTS refuses to encrypt with, take the engine's XTS on ECB (tweaks computed in
    16 KiB batches): every sector of a run longer than a batch, across the 32-bit IV boundary, decrypts with
    `cryptography`'s XTS."""
    key = bytes(range(32)) * 2
    data = os.urandom(40 * sector_size)
    unit = sector_size // 512
    first = 2**32 - 3 * unit
    ciphertext = bytes(SectorCipher("aes-xts-plain64", key, sector_size).encrypt(data, first))
    for index in range(40):
        iv = ((first + index * unit) & (2**64 - 1)).to_bytes(16, "little")
        decryptor = Cipher(algorithms.AES(key), modes.XTS(iv)).decryptor()
        sector = slice(index * sector_size, (index + 1) * sector_size)
        assert decryptor.update(ciphertext[sector]) + decryptor.finalize() == data[sector]


@pytest.mark.parametrize("spec, key", [("aes-xts-plain64", bytes(range(64))), ("aes-cbc-essiv:sha256", bytes(range(32))),
                                       ("aes-xts-plain64", bytes(range(32)) * 2), ("sm4-ecb", bytes(range(16)))])
def test_the_cipher_keeps_no_key_of_its_own_and_close_ends_it(spec: str, key: bytes) -> None:
    """The key goes into OpenSSL's contexts only (freed and cleansed by close()); the caller's buffer stays
    the caller's, and a closed cipher refuses work instead of computing with a freed context."""
    caller = bytearray(key)
    data = os.urandom(2048)
    with open_sector_cipher(spec, caller) as cipher:
        assert not any(isinstance(value, (bytes, bytearray)) and key in value for value in vars(cipher).values())
        expected = reference(spec, key, data, 512, 3) if spec != "aes-xts-plain64" or key[:32] != key[32:] else None
        ciphertext = bytes(cipher.encrypt(data, 3))
        assert expected is None or ciphertext == expected
    assert caller == key
    with pytest.raises(ValueError, match="closed"):
        cipher.encrypt(data, 3)
    cipher.close()  # twice is harmless


def test_partly_overlapping_buffers_are_refused_and_leave_the_destination_as_it_was() -> None:
    cipher = open_sector_cipher("aes-xts-plain64", bytes(range(64)))
    buffer = bytearray(os.urandom(2048))
    before = bytes(buffer)
    view = memoryview(buffer)
    with pytest.raises(ValueError, match="overlap"):
        cipher.encrypt_into(view[:1024], view[512:1536], 0)
    assert buffer == before
    with pytest.raises(ValueError, match="differ in length"):
        cipher.encrypt_into(view[:1024], view[1024:1536], 0)


def test_threads_with_a_cipher_each_give_the_same_bytes_as_one_thread() -> None:
    """The engine's loop runs without the GIL: concurrent ciphers must not share any state."""
    key = hashlib.sha512(b"threads").digest()
    data = hashlib.shake_256(b"threads").digest(4 << 20)
    expected = reference("aes-xts-plain64", key, data[:8192], 512, 0)
    results: list[bytes] = []

    def work() -> None:
        cipher = open_sector_cipher("aes-xts-plain64", key)
        for _ in range(4):
            results.append(bytes(cipher.encrypt(data, 0)))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1 and results[0][:8192] == expected


@pytest.mark.parametrize("spec, kernel", [
    ("aes", "aes-cbc-plain"), ("aes-plain", "aes-cbc-plain"), ("aes-ecb", "aes-ecb"),
    ("aes-ecb-plain64", "aes-ecb-plain64"), ("serpent-xts-plain64", "serpent-xts-plain64"),
    ("aes:64-cbc-lmk", "aes:64-cbc-lmk"), ("aes-xts-benbi", "aes-xts-benbi"),
    ("capi:xts(aes)-plain64", "capi:xts(aes)-plain64"),
    ("capi:authenc(hmac(sha256),xts(aes))-random", "capi:authenc(hmac(sha256),xts(aes))-random"),
    ("capi:ecb(aes)", "capi:ecb(aes)"), ("aes-cbc-essiv:sha3-256", "aes-cbc-essiv:sha3-256")])
def test_kernel_grammar_accepts_what_dm_crypt_accepts(spec: str, kernel: str) -> None:
    """dm-crypt's own parsing (crypt_ctr_cipher_old/new): a bare cipher is cbc-plain, ecb needs no IV."""
    assert str(parse_kernel_cipher_spec(spec)) == kernel


@pytest.mark.parametrize("spec", ["", "-cbc-plain", "aes-", "aes-cbc", "aes-xts", "aes:3-cbc-plain",
                                  "aes:x-cbc-plain", "aes:0-cbc-plain", "aes-cbc-bogus", "aes-cbc-essiv",
                                  "capi:", "capi:cbc(aes)-essiv", "capi:cbc(aes)-bogus"])
def test_kernel_grammar_refuses_what_dm_crypt_refuses(spec: str) -> None:
    with pytest.raises(HandlerError) as error:
        parse_kernel_cipher_spec(spec)
    assert "\n" not in str(error.value)


def test_capi_spec_keeps_its_spelling_and_computes_like_the_legacy_one() -> None:
    key = hashlib.sha512(b"capi").digest()
    data = os.urandom(4096)
    capi = open_sector_cipher("capi:xts(aes)-plain64", key)
    assert str(capi.spec) == "capi:xts(aes)-plain64"
    assert bytes(capi.encrypt(data, 9)) == bytes(open_sector_cipher("aes-xts-plain64", key).encrypt(data, 9))


@pytest.mark.parametrize("spec, message", [("aes-cbc-essiv:sha1", "160-bit salt"),
                                           ("aes-cbc-essiv:sha512", "512-bit salt"),
                                           ("sm4-xts-plain64", "mode xts"), ("serpent-cbc-plain64", "no serpent")])
def test_specs_the_engine_cannot_compute_say_why(spec: str, message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        parse_cipher_spec(spec)
