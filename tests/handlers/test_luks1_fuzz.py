"""Corrupted LUKS1 headers: unlocking either still works or fails with a one-line LvcryptError.

Byte flips land in every region of a header cryptsetup made: the fixed
fields, the keyslot descriptors and both keyslots' key material.  Flips in
iteration counts stay in their low 16 bits: a flip in the high bits makes a
legitimate-looking count of billions that cryptsetup would also grind through.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvcrypt.errors import LvcryptError
from lvcrypt.handlers.base import KeystoreAttrs, MemoryArea
from lvcrypt.handlers.luks1 import Luks1Handler
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup

pytestmark = [needs_cryptsetup, pytest.mark.oracle, pytest.mark.slow]

PASSPHRASE = b"fuzz passphrase"
HANDLER = Luks1Handler()
AREA_BYTES = 2 << 20
# (start, end) byte ranges of the regions; iteration fields (big-endian, the master-key digest's at
# byte 164, after the digest and its salt) get their own low-bytes ranges.
REGIONS = {
    "fixed fields": (0, 164),
    "digest iterations": (166, 168),
    "uuid": (168, 208),
    "keyslot descriptors": (208, 592),
    "slot 0 iterations": (214, 216),
    "slot 1 iterations": (262, 264),
    "slot 0 material": (8 * 512, 8 * 512 + 32 * 4000),
    "slot 1 material": (264 * 512, 264 * 512 + 32 * 4000),
}
_ITERATION_HIGH_BYTES = {164, 165, 212, 213, 260, 261}


@pytest.fixture(scope="module")
def good_header(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    tmp = tmp_path_factory.mktemp("luks1fuzz")
    img = image(tmp / "luks1.img", 4)
    pw = key_file(tmp / "pw", PASSPHRASE)
    other = key_file(tmp / "other", b"second slot")
    cryptsetup("luksFormat", "-q", "--type", "luks1", *FAST, "--key-size", "256", "--key-file", str(pw), str(img))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(pw), str(img), str(other))
    return img.read_bytes()[:AREA_BYTES], dumped_volume_key(img, pw)


flips = st.lists(
    st.tuples(st.sampled_from(sorted(REGIONS)), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    min_size=1, max_size=3)


# 400 headers per run (hypothesis draws new ones each run): 1000 took 19-136 s, by how many drew a
# keyslot's iterations or stripes up to tens of thousands (each such unlock is that much longer).
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=flips)
def test_corrupted_header_unlocks_or_fails_cleanly(good_header: tuple[bytes, bytes],
                                                   flips: list[tuple[str, float, int]]) -> None:
    raw, volume_key = good_header
    data = bytearray(raw)
    for region, where, mask in flips:
        start, end = REGIONS[region]
        offset = start + int(where * (end - start))
        if offset not in _ITERATION_HIGH_BYTES:
            data[offset] ^= mask
    area = MemoryArea(data)
    attrs = KeystoreAttrs("luks1")
    try:
        with Secret(PASSPHRASE) as pw, HANDLER.unlock(area, attrs, pw) as key:
            assert bytes(key.buffer) == volume_key
    except LvcryptError as error:
        assert "\n" not in str(error)
    for inspect in (HANDLER.dump, HANDLER.list_keyslots, HANDLER.validate, HANDLER.data_mapping):
        try:
            inspect(area, attrs)
        except LvcryptError as error:
            assert "\n" not in str(error)
