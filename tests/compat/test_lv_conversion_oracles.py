"""lvconvert --encrypt/--decrypt/--reencrypt and pvmove judged by lvm2, cryptsetup and an independent decryption.

- After --encrypt, `lvconvert --type linear` exports a LUKS2 volume: cryptsetup's keyslot opens it and
  `cryptography`, sector by sector with dm-crypt's IV rule, decrypts its payload to the original bytes;
  no 512-byte sector of the original plaintext is left anywhere on the PVs.
- After --decrypt, lvm2 sees a plain LV whose extents (where lvm2 says they are) hold the original bytes.
- After --reencrypt, no sector on the PVs decrypts under the old volume key to the original plaintext.
- pvmove empties the PV as lvm2 reports it, and the crypt LV still reads back without re-encryption.
- A keystore a conversion drops (--decrypt, --reencrypt, --abort of --encrypt) leaves no sector of its
  header or keyslots anywhere on the PVs, and cryptsetup no longer finds a LUKS header where lvm2 had it.
"""

from __future__ import annotations

from pathlib import Path
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest

from crypt_lv_layout import decrypt, extent_bytes, keystore_image, lvm2_layout
from cryptsetup_oracle import cryptsetup, dumped_volume_key, opens_with
from lvcrypt.keystore_admin import KeystoreRequest
from lvcrypt.lv_conversion import ConversionRequest, convert_lv
from lvcrypt.metadata.model import CryptSegment, StripedSegment, VolumeGroup
from lvcrypt.unlock import KeySources
from mover_helpers import (PASSPHRASE, Interrupted, interrupt_after, key_path, lvm2_reads, make_vg, read_lv, tmp_file,
                           write_lv)
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle
LUKS2_FAST = ("--handler", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    return Pair(loop_devices(2, 48), tmp_path)


def _sectors(data: bytes) -> set[bytes]:
    return {data[offset:offset + 512] for offset in range(0, len(data), 512)}


def _pv_sectors(pair: Pair) -> list[bytes]:
    out = []
    for device in pair.devices:
        with open(device, "rb") as f:
            image = f.read()
        out.extend(image[offset:offset + 512] for offset in range(0, len(image), 512))
    return out


@dataclass(frozen=True)
class HeaderTraces:
    """Where lvm2 put a keystore and the non-zero sectors of its LUKS header and keyslots there."""

    layout: VolumeGroup
    sectors: frozenset[bytes]


def _header_traces(pair: Pair, store: str = "cryptostore0") -> HeaderTraces:
    layout = lvm2_layout(pair)
    image = keystore_image(pair, layout, store)
    assert cryptsetup("luksDump", str(image), check=False).returncode == 0, "the oracle cannot see the header"
    sectors = frozenset(sector for sector in _sectors(image.read_bytes()) if sector.strip(b"\0"))
    assert any(sector.startswith(b"LUKS\xba\xbe") for sector in sectors)
    return HeaderTraces(layout, sectors)


def _assert_header_gone(pair: Pair, traces: HeaderTraces, store: str = "cryptostore0") -> None:
    """No sector of the old header or keyslots on any PV; cryptsetup finds no LUKS header in its old extents."""
    assert not traces.sectors & set(_pv_sectors(pair)), f"the dropped keystore {store}'s header is still on a PV"
    image = keystore_image(pair, traces.layout, store)
    assert b"LUKS\xba\xbe" not in image.read_bytes()
    assert cryptsetup("luksDump", str(image), check=False).returncode != 0


def _plain_lv_bytes(pair: Pair, lv: str = "lv") -> bytes:
    """The LV as lvm2 lays it out (its own vgcfgbackup), read straight from the PVs."""
    vg = lvm2_layout(pair)
    parts = []
    for segment in vg.lvs[lv].segments:
        assert isinstance(segment, StripedSegment) and segment.stripe_count == 1, segment
        area = segment.stripes[0]
        parts.append(extent_bytes(pair, vg, area.pv, area.extent, segment.extent_count))
    return b"".join(parts)


def test_encrypt_then_export_is_a_luks2_volume_cryptsetup_opens(pair: Pair) -> None:
    data = make_vg(pair, encrypted=False)
    pair.lvc("lvconvert", "--encrypt", *LUKS2_FAST, "--chunk-size", "2m", "--key-file", key_path(pair), "vgc/lv")
    assert lvm2_reads(pair, "after --encrypt") >= {"lv", "cryptostore0"}
    assert read_lv(pair, encrypted=True) == data
    assert not _sectors(data) & set(_pv_sectors(pair)), "plaintext left on a PV after --encrypt"

    pair.lvc("lvconvert", "--type", "linear", "vgc/lv")
    exported = tmp_file(pair, "exported.img", _plain_lv_bytes(pair))
    keyfile = tmp_file(pair, "key", PASSPHRASE)
    assert opens_with(exported, keyfile)
    dump = cryptsetup("luksDump", str(exported)).stdout
    offset = int(next(line.split()[1] for line in dump.splitlines() if line.strip().startswith("offset:")))
    assert "aes-xts-plain64" in dump
    key = dumped_volume_key(exported, keyfile)
    payload = exported.read_bytes()[offset:]
    sector = int(next(line.split()[1] for line in dump.splitlines() if line.strip().startswith("sector:")))
    assert decrypt("aes-xts-plain64", key, payload, sector) == data


def test_decrypt_gives_lvm2_a_plain_lv_with_the_original_bytes(pair: Pair) -> None:
    data = make_vg(pair, encrypted=True)
    traces = _header_traces(pair)
    pair.lvc("lvconvert", "--decrypt", "--chunk-size", "3m", "--key-file", key_path(pair), "vgc/lv")
    assert lvm2_reads(pair, "after --decrypt") == {"first", "lv"}, "the keystore goes with its last user"
    _assert_header_gone(pair, traces)
    attr = pair.lvm("lvs", "--noheadings", "-o", "lv_attr,segtype", "vgc/lv").stdout.split()
    assert attr[0].startswith("-wi") and set(attr[1:]) == {"linear"}, attr
    assert _plain_lv_bytes(pair) == data


def _crypt_places(vg: VolumeGroup, lv: str) -> Iterator[tuple[str, int, int, int]]:
    """(PV key, extent, byte offset in it, length, first IV) of every run of the LV's ciphertext, stripes
    spelled out: where dm-crypt put each stripe chunk, and the LV sector (the IV) it starts at."""
    lv_sector = 0
    for segment in vg.lvs[lv].segments:
        assert isinstance(segment, CryptSegment)
        size = segment.extent_count * vg.extent_bytes
        if len(segment.areas) == 1:
            yield segment.areas[0].pv, segment.areas[0].extent, 0, size, lv_sector
        else:
            assert segment.stripe_size is not None
            stripe = segment.stripe_size * 512
            for index in range(size // stripe):
                area = segment.areas[index % len(segment.areas)]
                yield area.pv, area.extent, (index // len(segment.areas)) * stripe, stripe, \
                    lv_sector + index * stripe // 512
        lv_sector += size // 512


def test_reencrypt_leaves_no_sector_under_the_old_key(pair: Pair) -> None:
    data = make_vg(pair, encrypted=True)
    before = lvm2_layout(pair)
    traces = _header_traces(pair)
    old_key = dumped_volume_key(keystore_image(pair, before, "cryptostore0"), Path(key_path(pair)))
    places = list(_crypt_places(before, "lv"))
    assert b"".join(decrypt("aes-xts-plain64", old_key,
                            extent_bytes(pair, before, pv, extent, 1 + (offset + length) // before.extent_bytes)
                            [offset:offset + length], 512, iv) for pv, extent, offset, length, iv in places) == data
    done = pair.lvc("lvconvert", "--reencrypt", *LUKS2_FAST, "--chunk-size", "2m", "--key-file", key_path(pair),
                    "vgc/lv")
    assert "keyslots were not carried over" in done.stdout
    names = lvm2_reads(pair, "after --reencrypt")
    assert "cryptostore0" not in names and "cryptostore1" in names
    _assert_header_gone(pair, traces)
    assert read_lv(pair, encrypted=True) == data
    wanted = _sectors(data)
    for pv, extent, offset, length, iv in places:  # wherever old ciphertext was, nothing decrypts under the old key
        block = extent_bytes(pair, before, pv, extent, 1 + (offset + length) // before.extent_bytes)
        assert not _sectors(decrypt("aes-xts-plain64", old_key, block[offset:offset + length], 512, iv)) & wanted


def test_abort_of_encrypt_wipes_the_keystore_it_made(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_vg(pair, encrypted=False)
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    request = ConversionRequest("encrypt", new=KeystoreRequest(handler="luks2", pbkdf="pbkdf2", force_iterations=1000),
                                chunk_bytes=2 << 20)
    with pytest.raises(Interrupted):
        convert_lv(pair.device_list, "vgc", "lv", request, KeySources(key_file=key_path(pair)),
                   progress=interrupt_after(3))
    traces = _header_traces(pair)
    pair.lvc("lvconvert", "--abort", "--key-file", key_path(pair), "vgc/lv")
    assert lvm2_reads(pair, "after --abort") == {"first", "lv"}
    assert read_lv(pair, encrypted=False) == data
    _assert_header_gone(pair, traces)


def test_pvmove_empties_the_pv_and_crypt_extents_move_as_ciphertext(loop_devices: Callable[..., list[str]],
                                                                    tmp_path: Path, lvm2: None) -> None:
    pair = Pair(loop_devices(3, 16), tmp_path)  # the third PV takes the stripe beside the other one
    data = make_vg(pair, encrypted=True)
    a = pair.devices[0]
    pair.lvc("pvmove", "--chunk-size", "2m", a)
    used = pair.lvm("pvs", "--noheadings", "-o", "pv_used", "--units", "b", a).stdout.strip()
    assert used == "0B", used
    assert lvm2_reads(pair, "after pvmove") == {"first", "lv", "cryptostore0"}
    assert read_lv(pair, encrypted=True) == data
    assert "No data to move" in pair.lvc("pvmove", a, check=False).stderr


def _lvm2_segment_devices(pair: Pair) -> list[list[str]]:
    """lvm2's `lvs --segments -o devices`: the PV of each stripe of each segment of vgc/lv."""
    out = pair.lvm("lvs", "--segments", "--noheadings", "-o", "devices", "vgc/lv").stdout
    return [[item.split("(")[0] for item in line.strip().split(",")] for line in out.splitlines() if line.strip()]


def test_pvmove_keeps_the_stripes_of_a_segment_on_distinct_pvs(loop_devices: Callable[..., list[str]],
                                                                 tmp_path: Path, lvm2: None) -> None:
    """lvm2's pvmove needs device-mapper (absent here), so the rule is read from lvm2's allocator: pvmove
    allocates through _add_mirrors_that_preserve_segments (lib/metadata/mirror.c), whose
    build_parallel_areas_from_lv (lib/metadata/lv_manip.c) keeps each new area off the PVs the other
    areas of its segment use.  lvm2 is the oracle of the layout lvcrypt leaves (lvs devices)."""
    pair = Pair(loop_devices(3, 16), tmp_path)
    a, b, c = pair.devices
    for device in pair.devices:
        pair.lvc("pvcreate", device)
    pair.lvc("vgcreate", "-s", "1m", "vgc", a, b, c)
    pair.lvc("lvcreate", "-l", "6", "-i", "2", "-n", "lv", "vgc", a, b)
    data = os.urandom(6 << 20)
    write_lv(pair, data, encrypted=False)
    assert _lvm2_segment_devices(pair) == [[a, b]]

    pair.lvc("pvmove", "--chunk-size", "2m", a)  # b comes first and has room, but holds the other stripe
    placed = _lvm2_segment_devices(pair)
    assert all(len(set(stripes)) == len(stripes) == 2 for stripes in placed), placed
    assert {device for stripes in placed for device in stripes} == {b, c}
    assert read_lv(pair, encrypted=False) == data

    before = digests(pair.devices)
    refused = pair.lvc("pvmove", b, c, check=False)  # the only destination holds the other stripe
    assert refused.returncode == 5 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"on a PV other than {c}" in refused.stderr and "3 free extents" in refused.stderr, refused.stderr
    assert digests(pair.devices) == before, "a refused pvmove wrote to a PV"
    pair.lvc("pvmove", b, a)  # a, emptied above, is free again
    assert sorted(_lvm2_segment_devices(pair)[0]) == sorted([a, c])
    assert read_lv(pair, encrypted=False) == data
