"""Damaged LUKS2 headers: lvcrypt unlocks with the right key or fails with a one-line LvcryptError.

One header made by lvcrypt and one made by cryptsetup (two keyslots, a
keyring token, cheap PBKDF2) are formatted per module; every example
corrupts a copy of one in memory.  Raw flips hit the
binary headers, JSON areas, keyslot area and digest; forged cases recompute
the checksum after the change so the JSON parser and validator see it.
Unlocking costs about a PBKDF run plus the AF merge, so outcomes are
memoised by what the handler actually uses (the chosen metadata and the
keyslots area): flips that only damage a copy that loses to the intact one
cost a header read, not another unlock.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvcrypt.errors import LvcryptError
from lvcrypt.handlers.base import FormatOptions, KeystoreAttrs, MemoryArea
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.luks2 import json_area as json_module
from lvcrypt.handlers.luks2.header import BINARY_SIZE, BinaryHeader
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup

HANDLER = Luks2Handler()
ATTRS = KeystoreAttrs("luks2")
PASSPHRASE = b"corruption is not a crash"
REQUEST = PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)
METADATA = 16384
KEYSLOTS_SIZE = 2 * 131072


def cheap(examples: int) -> settings:
    """Deterministic (CI reruns the same cases), no per-example deadline: unlocking is a PBKDF run."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Pristine:
    data: bytes
    key: bytes
    regions: dict[str, tuple[int, int]]


def _lvcrypt_made() -> tuple[bytes, bytes]:
    area = MemoryArea(2 * METADATA + KEYSLOTS_SIZE)
    attrs = KeystoreAttrs("luks2", "aes-xts-plain64", 256)
    options = FormatOptions(pbkdf=REQUEST, data_offset=0, extra={"keyslots_size": KEYSLOTS_SIZE})
    with Secret(PASSPHRASE) as passphrase, HANDLER.format(area, attrs, passphrase, options) as key:
        with Secret(b"second slot") as second:
            HANDLER.add_keyslot(area, attrs, key, second, REQUEST)
        HANDLER.add_keyring_token(area, "lvcrypt:corruption", [0, 1])
        return bytes(area.data), bytes(key.buffer)


def _cryptsetup_made() -> tuple[bytes, bytes]:
    """A detached header from cryptsetup itself: its JSON layout, not only lvcrypt's, gets damaged."""
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        header, data = folder / "header.img", image(folder / "data.img", 1)
        first, second = key_file(folder / "k0", PASSPHRASE), key_file(folder / "k1", b"second slot")
        cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-size", "256", "--luks2-keyslots-size",
                   str(KEYSLOTS_SIZE), "--header", str(header), "--key-file", str(first), str(data))
        cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(first), str(header), str(second))
        cryptsetup("token", "add", "--key-description", "cryptsetup:corruption", str(header))
        return header.read_bytes()[:2 * METADATA + KEYSLOTS_SIZE], dumped_volume_key(header, first)


def pristine(maker: str = "lvcrypt") -> Pristine:
    """The undamaged header and its volume key, made by lvcrypt or by cryptsetup (once per module)."""
    return _pristine(maker)


@cache
def _pristine(maker: str) -> Pristine:
    data, volume_key = _lvcrypt_made() if maker == "lvcrypt" else _cryptsetup_made()
    text_end = data.index(b"\0", BINARY_SIZE)
    digests_at = data.index(b'"digests"', BINARY_SIZE)
    slot0 = HANDLER.load(MemoryArea(data)).metadata.keyslots[0].area
    regions = {
        "primary binary header": (0, 512),
        "primary JSON": (BINARY_SIZE, text_end),
        "primary digest": (digests_at, data.index(b"}}", digests_at) + 2),
        "secondary binary header": (METADATA, METADATA + 512),
        "secondary JSON": (METADATA + BINARY_SIZE, METADATA + text_end),
        "keyslot 0 material": (slot0.offset, slot0.offset + 32 * 4000),
    }
    return Pristine(data, volume_key, regions)


_OUTCOMES: dict[bytes, tuple[bytes | None, str | None]] = {}


def _unlock(area: MemoryArea) -> tuple[bytes | None, str | None]:
    try:
        with Secret(PASSPHRASE) as passphrase, HANDLER.unlock(area, ATTRS, passphrase) as key:
            return bytes(key.buffer), None
    except LvcryptError as error:
        return None, str(error)


def check(data: bytearray, maker: str = "lvcrypt") -> tuple[bytes | None, str | None]:
    """Run every read-only operation on a damaged header; unlock's outcome is returned."""
    area = MemoryArea(data)
    for operation in (lambda: HANDLER.dump(area, ATTRS), lambda: HANDLER.list_keyslots(area, ATTRS),
                      lambda: HANDLER.data_mapping(area, ATTRS), lambda: HANDLER.validate(area, ATTRS),
                      lambda: HANDLER.read_attrs(area), lambda: HANDLER.keyring_tokens(area)):
        try:
            operation()
        except LvcryptError as error:
            assert_clean(str(error), maker)
    try:
        loaded = HANDLER.load(area)
    except LvcryptError as error:
        assert_clean(str(error), maker)
        outcome: tuple[bytes | None, str | None] = (None, str(error))
    else:
        config = loaded.metadata.config
        used = bytes(json_module.encode(loaded.metadata)) + bytes(data[2 * config.metadata_size:config.keyslots_end])
        memo = hashlib.sha256(used).digest()
        if memo not in _OUTCOMES:
            _OUTCOMES[memo] = _unlock(area)
        outcome = _OUTCOMES[memo]
    key, error = outcome
    if key is not None:
        assert key == pristine(maker).key, "a damaged header yielded a different volume key"
    else:
        assert error is not None
        assert_clean(error, maker)
    return outcome


def assert_clean(message: str, maker: str = "lvcrypt") -> None:
    assert message and "\n" not in message
    assert pristine(maker).key.hex() not in message
    assert PASSPHRASE.decode() not in message


def flipped(base: bytes, region: str, flips: list[tuple[int, int]], maker: str = "lvcrypt") -> bytearray:
    start, _ = pristine(maker).regions[region]
    data = bytearray(base)
    for position, mask in flips:
        data[start + position] ^= mask
    return data


@st.composite
def damage(draw: st.DrawFn, regions: list[str], maker: str = "lvcrypt") -> tuple[str, list[tuple[int, int]]]:
    """A region and 1-4 distinct byte positions in it with non-zero XOR masks (so the bytes really change)."""
    region = draw(st.sampled_from(regions))
    start, end = pristine(maker).regions[region]
    flips = draw(st.lists(st.tuples(st.integers(0, end - start - 1), st.integers(1, 255)),
                          min_size=1, max_size=4, unique_by=lambda flip: flip[0]))
    return region, flips


def rechecksum_primary(data: bytearray, kill_secondary: bool) -> None:
    """Make the primary copy's checksum match its (changed) content again."""
    header = BinaryHeader.unpack(bytes(data[:BINARY_SIZE]), 0)
    data[:METADATA] = header.pack(bytes(data[BINARY_SIZE:METADATA]))
    if kill_secondary:
        data[METADATA:METADATA + 8] = bytes(8)


def test_pristine_header_unlocks() -> None:
    assert check(bytearray(pristine().data)) == (pristine().key, None)


@cheap(700)
@given(hit=damage(["primary binary header", "primary JSON", "primary digest", "secondary binary header",
                   "secondary JSON"]))
def test_one_damaged_copy_falls_back_to_the_other(hit: tuple[str, list[tuple[int, int]]]) -> None:
    assert check(flipped(pristine().data, *hit)) == (pristine().key, None)


@cheap(300)
@given(first=damage(["primary binary header", "primary JSON"]),
       second=damage(["secondary binary header", "secondary JSON"]))
def test_both_copies_damaged_fail_cleanly(first: tuple[str, list[tuple[int, int]]],
                                          second: tuple[str, list[tuple[int, int]]]) -> None:
    key, error = check(flipped(bytes(flipped(pristine().data, *first)), *second))
    assert key is None and "LUKS2" in (error or "")


@cheap(150)
@given(hit=damage(["keyslot 0 material"]))
def test_damaged_keyslot_material_is_a_wrong_passphrase(hit: tuple[str, list[tuple[int, int]]]) -> None:
    key, error = check(flipped(pristine().data, *hit))
    assert key is None and "no key available" in (error or "")


@cheap(500)
@given(hit=damage(["primary JSON", "primary digest"]), kill_secondary=st.booleans())
def test_forged_json_flips(hit: tuple[str, list[tuple[int, int]]], kill_secondary: bool) -> None:
    data = flipped(pristine().data, *hit)
    rechecksum_primary(data, kill_secondary)
    check(data)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


DELETE = object()
SCALARS = (st.none() | st.booleans() | st.integers(-2, 5000) | st.floats(allow_nan=False) | st.text(max_size=10)
           | st.from_regex(r"[0-9]{1,21}", fullmatch=True)
           | st.sampled_from(["dynamic", "luks2", "raw", "crypt", "pbkdf2", "argon2id", "luks1", "sha256", "sha1",
                              "shake128", "aes-xts-plain64", "aes-cbc-essiv:sha256", "twofish-xts-plain64",
                              "18446744073709551615", "4294967296", "0", "AAAA", "luks2-keyring"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["0", "1", "type", "x", "keyslots", "offset"]), inner,
                                        max_size=3), max_leaves=6)


@cheap(600)
@given(data=st.data())
def test_forged_json_values(data: st.DataObject) -> None:
    base = pristine().data
    document = json.loads(base[BINARY_SIZE:base.index(b"\0", BINARY_SIZE)])
    paths = _paths(document)[1:]
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=2)):
        parent = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            replacement = data.draw(VALUES | st.just(DELETE))
            if replacement is DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or retyped this path
    text = json.dumps(document, separators=(",", ":")).encode()
    if len(text) >= METADATA - BINARY_SIZE:
        return
    forged = bytearray(base)
    forged[BINARY_SIZE:METADATA] = text.ljust(METADATA - BINARY_SIZE, b"\0")
    rechecksum_primary(forged, kill_secondary=data.draw(st.booleans()))
    check(forged)


ALL_REGIONS = ["primary binary header", "primary JSON", "primary digest", "secondary binary header",
               "secondary JSON", "keyslot 0 material"]


@needs_cryptsetup
@pytest.mark.oracle
@cheap(300)
@given(hit=damage(ALL_REGIONS, "cryptsetup"), forge=st.booleans())
def test_damaged_cryptsetup_header(hit: tuple[str, list[tuple[int, int]]], forge: bool) -> None:
    data = flipped(pristine("cryptsetup").data, *hit, "cryptsetup")
    forged = forge and hit[0] in ("primary JSON", "primary digest")
    if forged:
        rechecksum_primary(data, kill_secondary=True)
    key, _ = check(data, "cryptsetup")
    if not forged and hit[0] != "keyslot 0 material":
        assert key == pristine("cryptsetup").key, "one damaged copy must fall back to the other"
