"""The sector cipher's two engines against a per-sector reference built directly on `cryptography`.

The reference is written from dm-crypt's documented rules (one XTS or CBC
operation per sector, IV = sector number in 512-byte units, 32-bit for plain,
ESSIV = AES_{sha256(key)}(plain64 IV)) and shares no code with lvcrypt.crypto.
Both engines face it: the per-sector one short commands use (AES-XTS, no
numpy) and the batch engine of bulk work, and they are compared with each other.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.crypto import (SectorCipher, check_new_volume_key, open_sector_cipher, parse_cipher_spec,
                            parse_kernel_cipher_spec)
from lvcrypt.crypto.sector_batch import open_batch_cipher
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


def engines(spec: str, key: bytes, sector_size: int = 512, **options: object) -> list[object]:
    """The cipher as commands open it (per-sector for AES-XTS at first) and its batch engine alone."""
    return [open_sector_cipher(spec, key, sector_size, **options), open_batch_cipher(spec, key, sector_size, **options)]


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
    expected = reference(spec, key, data, sector_size, sector)
    for cipher in engines(spec, key, sector_size, batch_bytes=batch_sectors * sector_size):
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
    cipher = open_batch_cipher(spec, key, sector_size, batch_bytes=8 * sector_size)
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
@pytest.mark.parametrize("batch_sectors", [1, 3])
def test_ieee_1619_vectors(key_hex: str, data_unit: int, ciphertext_hex: str, batch_sectors: int) -> None:
    """The batched XTS path gives the standard's ciphertext, alone and as one sector among others."""
    expected = bytes.fromhex(ciphertext_hex)
    for cipher in engines("aes-xts-plain64", bytes.fromhex(key_hex), batch_bytes=batch_sectors * 512):
        assert bytes(cipher.encrypt(IEEE_1619_PLAINTEXT, data_unit)) == expected
        assert bytes(cipher.decrypt(expected, data_unit)) == IEEE_1619_PLAINTEXT
        # The vector's sector at the head of a longer run: its bytes do not depend on the sectors after it.
        run = IEEE_1619_PLAINTEXT + os.urandom(1024)
        assert bytes(cipher.encrypt(run, data_unit))[:512] == expected


def per_sector_reference(spec: str, key: bytes, data: bytes, sector_size: int, sector: int) -> bytes:
    """dm-crypt's rules for the per-sector IV modes, one `cryptography` call per sector."""
    algorithm = algorithms.SM4 if spec.startswith("sm4") else algorithms.AES
    out = []
    for index in range(len(data) // sector_size):
        number = sector + index * (sector_size // 512)
        if "-ecb" in spec:
            mode: modes.Mode = modes.ECB()
        else:
            iv = {"null": bytes(16), "plain64be": bytes(8) + number.to_bytes(8, "big"),
                  "plain64": number.to_bytes(16, "little")}[spec.rsplit("-", 1)[1]]
            mode = modes.XTS(iv) if "-xts-" in spec else modes.CBC(iv)
        context = Cipher(algorithm(key), mode).encryptor()
        out.append(context.update(data[index * sector_size:(index + 1) * sector_size]) + context.finalize())
    return b"".join(out)


@pytest.mark.parametrize("spec, key_size", [("aes-ecb", 32), ("aes-ecb", 16), ("aes-cbc-null", 32),
                                            ("aes-xts-null", 64), ("aes-cbc-plain64be", 24),
                                            ("aes-xts-plain64be", 32), ("sm4-cbc-plain64", 16),
                                            ("sm4-ecb", 16), ("capi:cbc(aes)-plain64", 32)])
@pytest.mark.parametrize("sector_size", [512, 4096])
def test_every_computed_spec_equals_the_per_sector_reference(spec: str, key_size: int, sector_size: int) -> None:
    key = hashlib.sha512(spec.encode()).digest()[:key_size]
    data = hashlib.shake_256(spec.encode()).digest(7 * sector_size)
    reference_spec = spec.replace("capi:cbc(aes)-", "aes-cbc-")
    expected = per_sector_reference(reference_spec, key, data, sector_size, 800)
    for cipher in engines(spec, key, sector_size, batch_bytes=2 * sector_size):
        assert bytes(cipher.encrypt(data, 800)) == expected
        assert bytes(cipher.decrypt(expected, 800)) == data
        assert str(cipher.spec) == spec


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


XTS_IV_SPECS = ["aes-xts-plain64", "aes-xts-plain", "aes-xts-plain64be", "aes-xts-null", "aes-xts-essiv:sha256",
                "capi:xts(aes)-plain64"]


@settings(max_examples=40, deadline=None)
@given(spec=st.sampled_from(XTS_IV_SPECS), sector_size=st.sampled_from([512, 1024, 4096]),
       iv_large_sectors=st.booleans(), long_key=st.booleans(), counts=st.lists(st.integers(1, 12), min_size=1,
                                                                              max_size=4),
       start=st.one_of(st.integers(0, 2**20), st.integers(2**32 - 64, 2**32 + 64), st.integers(2**64 - 2**12, 2**64)),
       switch_after=st.integers(0, 30), seed=st.binary(min_size=8, max_size=8))
def test_per_sector_path_and_batch_engine_give_the_same_bytes(spec, sector_size, iv_large_sectors, long_key, counts,
                                                              start, switch_after, seed):
    """A cipher moves from per-sector calls to the batch engine after some bytes; wherever it moves, each call's
    bytes are the batch engine's, in both directions, for every IV rule (plain wraps, plain64be, ESSIV)."""
    key = hashlib.sha512(seed).digest()[:64 if long_key else 32]
    unit = sector_size // 512
    position = start - start % unit
    moving = open_sector_cipher(spec, key, sector_size, iv_large_sectors)
    moving._per_sector_left = switch_after * sector_size  # the move, early enough for these small calls
    batch = open_batch_cipher(spec, key, sector_size, iv_large_sectors)
    for count in counts:
        data = hashlib.shake_256(seed + bytes([count])).digest(count * sector_size)
        ciphertext = bytes(batch.encrypt(data, position))
        assert bytes(moving.encrypt(data, position)) == ciphertext
        assert bytes(moving.decrypt(ciphertext, position)) == data
        position += count * unit


def test_aes_xts_starts_per_sector_and_its_kept_key_is_wiped_on_close_or_move():
    """The per-sector path keeps a copy of the key (the caller's stays the caller's): wiped when the cipher
    moves to the batch engine, which needs no copy, or when it closes."""
    key = bytes(range(64))
    data = os.urandom(2048)
    with open_sector_cipher("aes-xts-plain64", key) as closing:
        kept = closing._key
        assert kept == key and kept is not key
        closing.encrypt(data, 0)
        assert closing._batch is None  # a short request: no batch engine, so no numpy
    assert kept == bytes(64) and key == bytes(range(64))
    with pytest.raises(ValueError, match="closed"):
        closing.encrypt(data, 0)

    moving = open_sector_cipher("aes-xts-plain64", key)
    kept = moving._key
    moving._per_sector_left = 1024
    expected = reference("aes-xts-plain64", key, data, 512, 0)
    assert bytes(moving.encrypt(data, 0)) == expected  # more than is left: the batch engine's first call
    assert moving._batch is not None and moving._key is None and kept == bytes(64)
    assert bytes(moving.decrypt(expected, 0)) == data

    bulk = open_sector_cipher("aes-xts-plain64", key)
    large = os.urandom(1 << 20)  # one step of the data path: bulk work, the batch engine at once
    assert bytes(bulk.encrypt(large, 64)) == reference("aes-xts-plain64", key, large, 512, 64)
    assert bulk._batch is not None and bulk._key is None


def test_cbc_and_equal_xts_halves_keep_no_key():
    """Only AES-XTS with distinct halves runs per sector; the rest opens the batch engine at once, from the
    caller's key, and keeps no copy of it."""
    for spec, key in (("aes-cbc-essiv:sha256", bytes(range(32))), ("aes-xts-plain64", bytes(range(32)) * 2),
                      ("sm4-ecb", bytes(range(16)))):
        cipher = open_sector_cipher(spec, key)
        assert cipher._key is None and cipher._batch is not None


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
