"""`lvconvert --type crypt|linear`: LUKS volumes made by cryptsetup on lvm2 LVs, imported and exported.

Oracles: lvm2 makes the VG and the LV on loop devices and says where its
extents are (vgcfgbackup) before and after; cryptsetup 2.6 formats and fills
the LUKS volume (in place on a loop device over the LV's range, or on an
image file whose bytes are then laid into the LV's extents), opens the
keystore and the exported LV, and dumps the volume key; `cryptography`
decrypts the payload independently.  lvcrypt's own reading is only ever
compared against those.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conftest import ROOT
from cryptsetup_oracle import cryptsetup, dumped_volume_key, needs_cryptsetup, opens_with
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.luks2 import disk as luks2_disk
from lvcrypt.handlers.secret import Secret
from lvcrypt.metadata.model import KeystoreSegment, StripedSegment, VolumeGroup
from store_helpers import Pair
from crypt_lv_layout import decrypt, lvm2_layout, lvm2_lists

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2"), needs_cryptsetup]
MIB = 1 << 20
VG = "vgl"
FAST = {"pbkdf2": ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"],
        "argon2id": ["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768"]}
LVCRYPT_FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    """Two 48 MiB PVs in VG `vgl`, made by lvm2."""
    pair = Pair(loop_devices(2, 48), tmp_path)
    pair.lvm("pvcreate", *pair.devices)
    pair.lvm("vgcreate", VG, *pair.devices)
    (tmp_path / "pass").write_bytes(b"old cryptsetup passphrase")
    (tmp_path / "new").write_bytes(b"passphrase added by lvcrypt")
    (tmp_path / "wrong").write_bytes(b"not it")
    return pair


# --- where lvm2 says the LV is -------------------------------------------------------------------------


class Devices:
    """PV keys of a VG (lvm2's pv0, pv1...) -> the loop devices, by PV uuid as lvm2 reports it."""

    def __init__(self, pair: Pair):
        self.pair = pair
        self.by_id = {}
        for device in pair.devices:
            uuid = pair.lvm("pvs", "--noheadings", "-o", "pv_uuid", device).stdout.strip()
            self.by_id[uuid] = device

    def path(self, vg: VolumeGroup, key: str) -> str:
        return self.by_id[vg.pvs[key].id]


def lv_ranges(vg: VolumeGroup, lv: str, devices: Devices) -> list[tuple[str, int, int]]:
    """(device, byte offset, length) runs of a plain LV in LV order; striped segments chunk by chunk, as dm-striped."""
    out = []
    for segment in vg.lvs[lv].segments:
        assert isinstance(segment, StripedSegment), segment
        starts = [(devices.path(vg, area.pv), (vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * 512)
                  for area in segment.stripes]
        per_stripe = segment.extent_count // segment.stripe_count * vg.extent_bytes
        chunk = (segment.stripe_size or 0) * 512 if segment.stripe_count > 1 else per_stripe
        for row in range(per_stripe // chunk):
            out.extend((device, start + row * chunk, chunk) for device, start in starts)
    return out


def write_lv_bytes(vg: VolumeGroup, lv: str, devices: Devices, data: bytes) -> None:
    position = 0
    for device, start, length in lv_ranges(vg, lv, devices):
        fd = os.open(device, os.O_WRONLY)
        try:
            os.pwrite(fd, data[position:position + length], start)
            os.fsync(fd)
        finally:
            os.close(fd)
        position += length
    assert position == len(data)


def read_lv_bytes(vg: VolumeGroup, lv: str, devices: Devices) -> bytes:
    parts = []
    for device, start, length in lv_ranges(vg, lv, devices):
        with open(device, "rb") as f:
            f.seek(start)
            parts.append(f.read(length))
    return b"".join(parts)


def keystore_bytes(vg: VolumeGroup, store: str, devices: Devices) -> bytes:
    segment = vg.lvs[store].segments[0]
    assert isinstance(segment, KeystoreSegment)
    area = segment.areas[0]
    with open(devices.path(vg, area.pv), "rb") as f:
        f.seek((vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * 512)
        return f.read(segment.extent_count * vg.extent_bytes)


def seqno(pair: Pair) -> str:
    return pair.report("lvm2", "vgs", "vg_seqno", VG)[0]["vg_seqno"]


# --- LUKS volumes made by cryptsetup ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    luks: str
    pbkdf: str
    sector: int
    offset: int | None  # payload offset in 512-byte sectors; None: the default
    layout: str  # single | two-pvs | gap | header-segment | striped-tail | striped
    in_place: bool = False
    key_bits: int = 512
    align_payload: int | None = None

    def __str__(self) -> str:
        where = f"offset{self.offset}" if self.offset else f"align{self.align_payload}" if self.align_payload \
            else "default"
        return (f"{self.luks}-{self.pbkdf}-{self.sector}-{where}-{self.layout}-{self.key_bits}"
                + ("-inplace" if self.in_place else ""))


GRID = [
    Case("luks2", "argon2id", 512, None, "single", in_place=True),
    Case("luks2", "pbkdf2", 4096, 2056, "two-pvs"),
    Case("luks2", "argon2id", 4096, 6144, "gap"),
    # 1032 sectors leave room for two keyslots only with a 256-bit key (cryptsetup warns; lvcrypt refuses a third).
    Case("luks2", "pbkdf2", 512, 1032, "single", in_place=True, key_bits=256),
    Case("luks1", "pbkdf2", 512, None, "single"),
    Case("luks1", "pbkdf2", 512, None, "two-pvs", key_bits=256, align_payload=8),
    Case("luks1", "pbkdf2", 512, 16384, "header-segment"),
    Case("luks2", "pbkdf2", 512, None, "striped-tail"),
]


def make_lv(pair: Pair, layout: str) -> None:
    """16 MiB LV `old` in one or two segments, as lvm2 lays it out."""
    pv0, pv1 = pair.devices
    if layout == "single":
        pair.lvm("lvcreate", "-L", "16M", "-n", "old", VG, pv0)
        return
    if layout == "striped":
        pair.lvm("lvcreate", "-i", "2", "-I", "64k", "-L", "16M", "-n", "old", VG, pv0, pv1)
        return
    pair.lvm("lvcreate", "-L", "8M", "-n", "old", VG, pv0)
    if layout == "two-pvs":
        pair.lvm("lvextend", "-L", "+8M", f"{VG}/old", pv1)
    elif layout == "striped-tail":
        pair.lvm("lvextend", "-i", "2", "-I", "64k", "-L", "+8M", f"{VG}/old", pv0, pv1)
    else:
        pair.lvm("lvcreate", "-L", "4M", "-n", "filler", VG, pv0)
        pair.lvm("lvextend", "-L", "+8M", f"{VG}/old", pv0)


def payload_offset(image: Path) -> int:
    """Where cryptsetup says the payload starts, in bytes."""
    dump = cryptsetup("luksDump", str(image)).stdout
    luks1 = re.search(r"Payload offset:\s*(\d+)", dump)
    if luks1:
        return int(luks1.group(1)) * 512
    match = re.search(r"Data segments:\s*\n\s*0: crypt\s*\n\s*offset: (\d+) \[bytes\]", dump)
    assert match, dump
    return int(match.group(1))


def encrypt(key: bytes, data: bytes, sector: int, first_iv: int = 0) -> bytes:
    """aes-xts-plain64 as dm-crypt does it: IV = 512-byte sector number of each `sector`-byte unit."""
    out = bytearray()
    for index in range(len(data) // sector):
        iv = (first_iv + index * sector // 512).to_bytes(16, "little")
        out += Cipher(algorithms.AES(key), modes.XTS(iv)).encryptor().update(data[index * sector:(index + 1) * sector])
    return bytes(out)


@dataclass
class Volume:
    """A LUKS device as cryptsetup made it, and what its payload decrypts to."""

    image: Path  # the whole device (header + payload)
    payload: bytes  # the plaintext cryptsetup open would show


def reencrypt_args(case: Case, size: int) -> list[str]:
    reduce = 2 * case.offset * 512 if case.offset else 8 * MIB
    args = ["reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", f"{reduce // 1024}k",
            "--force-offline-reencrypt", "--sector-size", str(case.sector), "--key-size", str(case.key_bits), "-q",
            *FAST[case.pbkdf]]
    return args + (["--offset", str(case.offset)] if case.offset else [])


def luks2_in_place(pair: Pair, case: Case, devices: Devices, plaintext: bytes) -> None:
    """cryptsetup reencrypt straight on the LV's range: a loop device over the PV's loop device."""
    vg = lvm2_layout(pair, VG)
    ((device, start, length),) = lv_ranges(vg, "old", devices)
    write_lv_bytes(vg, "old", devices, plaintext)
    window = subprocess.run(["losetup", "-f", "--show", "--offset", str(start), "--sizelimit", str(length), device],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        cryptsetup(*reencrypt_args(case, length), "--key-file", str(pair.tmp / "pass"), window)
    finally:
        subprocess.run(["losetup", "-d", window], capture_output=True)


def luks_volume(pair: Pair, case: Case, devices: Devices) -> Volume:
    """Format and fill the LV `old` with cryptsetup; returns the device as it now stands and its plaintext."""
    vg = lvm2_layout(pair, VG)
    size = vg.lvs["old"].extent_count * vg.extent_bytes
    plaintext = os.urandom(size)
    keyfile = pair.tmp / "pass"
    image = pair.tmp / "luks.img"
    if case.luks == "luks2" and case.in_place:
        luks2_in_place(pair, case, devices, plaintext)
        image.write_bytes(read_lv_bytes(vg, "old", devices))
    elif case.luks == "luks2":
        image.write_bytes(plaintext)
        cryptsetup(*reencrypt_args(case, size), "--key-file", str(keyfile), str(image))
        write_lv_bytes(vg, "old", devices, image.read_bytes())
    else:
        image.write_bytes(bytes(size))
        placement = ["--offset", str(case.offset)] if case.offset else \
            ["--align-payload", str(case.align_payload)] if case.align_payload else []
        cryptsetup("luksFormat", "--type", "luks1", "--key-size", str(case.key_bits), *placement, *FAST[case.pbkdf],
                   "-q", "--key-file", str(keyfile), str(image))
        start = payload_offset(image)
        data = encrypt(dumped_volume_key(image, keyfile), plaintext[:size - start], 512)
        with open(image, "r+b") as f:
            f.seek(start)
            f.write(data)
        write_lv_bytes(vg, "old", devices, image.read_bytes())
    start = payload_offset(image)
    payload = decrypt("aes-xts-plain64", dumped_volume_key(image, keyfile), image.read_bytes()[start:], case.sector)
    if case.luks == "luks1":
        assert payload == plaintext[:size - start]
    else:
        reduce = 2 * case.offset * 512 if case.offset else 8 * MIB
        assert payload[:size - reduce] == plaintext[:size - reduce]  # what reencrypt --encrypt kept
    return Volume(image, payload)


@pytest.fixture
def lvc_bytes(pair: Pair) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """lvcrypt on the pair's devices with binary output (`read`)."""

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]],
                              capture_output=True, env=pair.env, cwd=ROOT)

    return run


# --- the grid ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", GRID, ids=str)
def test_import_keyslot_export_round_trip(pair: Pair, case: Case,
                                          lvc_bytes: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    make_lv(pair, case.layout)
    devices = Devices(pair)
    volume = luks_volume(pair, case, devices)
    original = volume.image.read_bytes()
    start = payload_offset(volume.image)
    before = int(seqno(pair))
    layout_before = lvm2_layout(pair, VG)

    imported = pair.lvc("lvconvert", "--type", "crypt", "--verify", "--key-file", str(pair.tmp / "pass"),
                        f"{VG}/old")
    assert f"payload at byte {start}" in imported.stdout
    assert int(seqno(pair)) == before + 1
    listed = lvm2_lists(pair, VG)
    assert set(listed) >= {"old", "[cryptostore0]"} and listed["old"][6] == "u"  # an unknown type to lvm2
    vg = lvm2_layout(pair, VG)
    store = vg.lvs["cryptostore0"].segments[0]
    assert isinstance(store, KeystoreSegment) and store.handler == case.luks
    assert store.extent_count == -(-start // vg.extent_bytes)
    first = layout_before.lvs["old"].segments[0]
    assert isinstance(first, StripedSegment) and store.areas == first.stripes[:1]
    rest = layout_before.lvs["old"].segments[1:]
    if rest:  # later segments keep their extents (and stripes), only their type changes
        crypt = vg.lvs["old"].segments[-len(rest):]
        assert [(s.type, s.areas) for s in crypt] == [("crypt", s.stripes) for s in rest]  # type: ignore[attr-defined]
    assert read_lv_bytes(layout_before, "old", devices) == original  # metadata only: no byte moved

    read = lvc_bytes("read", "--key-file", str(pair.tmp / "pass"), f"{VG}/old")
    assert read.returncode == 0, read.stderr
    assert read.stdout == volume.payload

    header = pair.tmp / "keystore.img"
    header.write_bytes(keystore_bytes(vg, "cryptostore0", devices))
    assert opens_with(header, pair.tmp / "pass")
    added = subprocess.run([sys.executable, "-m", "lvcrypt", "keyslot", "add", "--devices", pair.device_list,
                            "--key-file", str(pair.tmp / "pass"), "--new-key-file", str(pair.tmp / "new"),
                            *LVCRYPT_FAST, f"{VG}/cryptostore0"], capture_output=True, env=pair.env, cwd=ROOT)
    assert added.returncode == 0, added.stderr
    header.write_bytes(keystore_bytes(vg, "cryptostore0", devices))
    assert opens_with(header, pair.tmp / "new") and opens_with(header, pair.tmp / "pass")
    assert lvc_bytes("read", "--key-file", str(pair.tmp / "new"), f"{VG}/old").stdout == volume.payload

    pair.lvc("lvconvert", "--type", "linear", f"{VG}/old")
    assert int(seqno(pair)) == before + 2
    assert set(lvm2_lists(pair, VG)) == set(lvm2_lists_before(layout_before))
    exported = lvm2_layout(pair, VG)
    assert [s.extent_count for s in exported.lvs["old"].segments] == \
        [s.extent_count for s in layout_before.lvs["old"].segments]
    device = pair.tmp / "exported.img"
    device.write_bytes(read_lv_bytes(exported, "old", devices))
    assert device.read_bytes()[start:] == original[start:]  # the payload never moved
    assert opens_with(device, pair.tmp / "pass") and opens_with(device, pair.tmp / "new")
    assert not opens_with(device, pair.tmp / "wrong")
    assert payload_offset(device) == start
    key = dumped_volume_key(device, pair.tmp / "new")
    assert decrypt("aes-xts-plain64", key, device.read_bytes()[start:], case.sector) == volume.payload


@pytest.mark.slow
@pytest.mark.parametrize("case", [Case("luks2", "pbkdf2", 512, None, "striped"),
                                  Case("luks1", "pbkdf2", 512, None, "striped", key_bits=256)], ids=str)
def test_striped_luks_lv_imports_and_exports(pair: Pair, case: Case,
                                             lvc_bytes: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    """A LUKS volume cryptsetup wrote on an lvm2 striped LV (issue 15): its header, spread over the
    stripes, is copied into a linear keystore cryptsetup opens and wiped where it was; the payload
    reads back as cryptsetup's; export puts today's header back and cryptsetup opens the LV again."""
    make_lv(pair, case.layout)
    devices = Devices(pair)
    volume = luks_volume(pair, case, devices)
    original = volume.image.read_bytes()
    start = payload_offset(volume.image)
    layout_before = lvm2_layout(pair, VG)
    assert [s.stripe_count for s in layout_before.lvs["old"].segments] == [2]  # type: ignore[attr-defined]
    untouched = [hashlib.sha256(Path(device).read_bytes()).digest() for device in pair.devices]
    pair.lvc("lvconvert", "-t", "--type", "crypt", f"{VG}/old")  # every check, no byte written
    assert [hashlib.sha256(Path(device).read_bytes()).digest() for device in pair.devices] == untouched
    pair.lvm("lvcreate", "-l", "100%FREE", "-n", "filler", VG)
    filled = seqno(pair)
    assert_refused(pair, lvconvert(pair, "--type", "crypt", f"{VG}/old"), "no room for the keystore")
    assert seqno(pair) == filled
    pair.lvm("lvremove", "-y", f"{VG}/filler")

    imported = pair.lvc("lvconvert", "--type", "crypt", "--verify", "--key-file", str(pair.tmp / "pass"),
                        f"{VG}/old")
    assert f"payload at byte {start}" in imported.stdout
    assert set(lvm2_lists(pair, VG)) >= {"old", "[cryptostore0]"}  # lvm2 still reads the VG
    vg = lvm2_layout(pair, VG)
    assert vg.lvs["cryptostore0"].segments[0].extent_count == -(-start // vg.extent_bytes)
    (crypt,) = vg.lvs["old"].segments  # every striped extent kept, the payload found by data_offset
    assert (crypt.type, crypt.areas, crypt.raw.get("data_offset")) == \
        ("crypt", layout_before.lvs["old"].segments[0].stripes, start // 512)  # type: ignore[attr-defined]
    header = pair.tmp / "keystore.img"
    header.write_bytes(keystore_bytes(vg, "cryptostore0", devices))
    assert header.read_bytes()[:start] == original[:start]  # the header, in LV order
    assert opens_with(header, pair.tmp / "pass")
    old_bytes = read_lv_bytes(layout_before, "old", devices)
    assert old_bytes[:start] == bytes(start)  # no second copy of the keyslots left in the stripes
    assert old_bytes[start:] == original[start:]  # the payload never moved
    read = lvc_bytes("read", "--key-file", str(pair.tmp / "pass"), f"{VG}/old")
    assert read.returncode == 0, read.stderr
    assert read.stdout == volume.payload

    added = subprocess.run([sys.executable, "-m", "lvcrypt", "keyslot", "add", "--devices", pair.device_list,
                            "--key-file", str(pair.tmp / "pass"), "--new-key-file", str(pair.tmp / "new"),
                            *LVCRYPT_FAST, f"{VG}/cryptostore0"], capture_output=True, env=pair.env, cwd=ROOT)
    assert added.returncode == 0, added.stderr
    pair.lvc("lvconvert", "--type", "linear", f"{VG}/old")
    exported = lvm2_layout(pair, VG)
    assert "cryptostore0" not in exported.lvs
    assert [(s.type, s.stripes, s.stripe_size) for s in exported.lvs["old"].segments] == \
        [(s.type, s.stripes, s.stripe_size) for s in layout_before.lvs["old"].segments]  # type: ignore[attr-defined]
    device = pair.tmp / "exported.img"
    device.write_bytes(read_lv_bytes(exported, "old", devices))
    assert device.read_bytes()[start:] == original[start:]
    assert payload_offset(device) == start
    assert opens_with(device, pair.tmp / "pass") and opens_with(device, pair.tmp / "new")
    key = dumped_volume_key(device, pair.tmp / "new")
    assert decrypt("aes-xts-plain64", key, device.read_bytes()[start:], case.sector) == volume.payload


def lvm2_lists_before(vg: VolumeGroup) -> list[str]:
    return [name if lv.visible else f"[{name}]" for name, lv in vg.lvs.items()]


# --- refusals: one line, exit 5 (3 for bad arguments), nothing written ------------------------------------


def lvconvert(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    return pair.lvc("lvconvert", *args, check=False)


def assert_refused(pair: Pair, result: subprocess.CompletedProcess[str], text: str, status: int = 5) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert text in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def luks2_header_in(pair: Pair, devices: Devices, *format_args: str) -> bytes:
    """A cryptsetup LUKS2 volume over the whole of LV `old` (no data written): the LV's new bytes."""
    vg = lvm2_layout(pair, VG)
    image = pair.tmp / "refuse.img"
    image.write_bytes(bytes(vg.lvs["old"].extent_count * vg.extent_bytes))
    cryptsetup("luksFormat", "--type", "luks2", *FAST["pbkdf2"], "-q", "--key-file", str(pair.tmp / "pass"),
               *format_args, str(image))
    write_lv_bytes(vg, "old", devices, image.read_bytes())
    return image.read_bytes()


def corrupt_json(data: bytes, *copies: int) -> bytes:
    """Flip one byte of the JSON area of the LUKS2 copies at these offsets (their checksums then fail)."""
    out = bytearray(data)
    for copy in copies:
        out[copy + 4096 + 2] ^= 0x20
    return bytes(out)


def test_import_refusals_change_nothing(pair: Pair) -> None:
    make_lv(pair, "single")
    devices = Devices(pair)
    vg = lvm2_layout(pair, VG)
    start = seqno(pair)

    def refused(text: str, *args: str, status: int = 5) -> None:
        before = read_lv_bytes(vg, "old", devices)
        assert_refused(pair, lvconvert(pair, *args), text, status)
        assert read_lv_bytes(vg, "old", devices) == before
        assert seqno(pair) == start

    write_lv_bytes(vg, "old", devices, os.urandom(16 * MIB))
    refused("no LUKS header", "--type", "crypt", f"{VG}/old")

    good = luks2_header_in(pair, devices, "--offset", "8192")
    write_lv_bytes(vg, "old", devices, corrupt_json(good, 0, 16384))
    refused("damaged LUKS2 header", "--type", "crypt", f"{VG}/old")

    detached = pair.tmp / "detached.hdr"
    detached.write_bytes(bytes(16 * MIB))
    cryptsetup("luksFormat", "--type", "luks2", *FAST["pbkdf2"], "-q", "--key-file", str(pair.tmp / "pass"),
               "--header", str(detached), str(pair.tmp / "refuse.img"))
    write_lv_bytes(vg, "old", devices, detached.read_bytes())
    refused("detached", "--type", "crypt", f"{VG}/old")

    halfway = pair.tmp / "halfway.img"
    halfway.write_bytes(os.urandom(16 * MIB))
    cryptsetup("reencrypt", "--encrypt", "--type", "luks2", "--init-only", "--reduce-device-size", "8M", "-q",
               *FAST["pbkdf2"], "--key-file", str(pair.tmp / "pass"), str(halfway))
    write_lv_bytes(vg, "old", devices, halfway.read_bytes())
    refused("requires online-reencrypt-v2", "--type", "crypt", f"{VG}/old")

    fixed = pair.tmp / "fixed.img"
    fixed.write_bytes(good)
    with FileArea(fixed) as area:  # a data segment of 8 MiB where the LV holds 12 MiB after the header
        loaded = Luks2Handler().load(area)
        loaded.metadata.segments[0].size = 8 * MIB
        luks2_disk.commit(area, loaded, loaded.metadata)
    assert "length: 8388608 [bytes]" in cryptsetup("luksDump", str(fixed)).stdout
    write_lv_bytes(vg, "old", devices, fixed.read_bytes())
    refused("fixed size of 8388608 bytes", "--type", "crypt", f"{VG}/old")

    write_lv_bytes(vg, "old", devices, good)
    refused("not LUKS1", "--type", "crypt", "--handler", "luks1", f"{VG}/old")
    refused("no key available", "--type", "crypt", "--verify", "--key-file", str(pair.tmp / "wrong"), f"{VG}/old")
    refused("must be cryptostoreN", "--type", "crypt", "--keystore", "keys", f"{VG}/old", status=3)
    refused("not a crypt LV", "--type", "linear", f"{VG}/old")
    refused("no --handler", "--type", "linear", "--verify", f"{VG}/old", status=3)

    pair.lvc("lvcreate", "--encrypt", *LVCRYPT_FAST, "--key-file", str(pair.tmp / "pass"), "-L", "4M", "-n",
             "made", VG)
    start = seqno(pair)
    refused("already taken", "--type", "crypt", "--keystore", "cryptostore0", f"{VG}/old")
    refused("already a crypt LV", "--type", "crypt", f"{VG}/made")
    refused("detached header", "--type", "linear", f"{VG}/made")
    refused("hidden LV", "--type", "crypt", f"{VG}/cryptostore0")


def test_export_refuses_shared_keystores_and_headerless_handlers(pair: Pair) -> None:
    make_lv(pair, "single")
    devices = Devices(pair)
    luks2_header_in(pair, devices, "--offset", "8192")
    pair.lvc("lvconvert", "--type", "crypt", f"{VG}/old")
    pair.lvc("lvcreate", "--encrypt", "--keystore", "cryptostore0", "-L", "4M", "-n", "sharer", VG)
    (pair.tmp / "plain.key").write_bytes(os.urandom(32))
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--key-file", str(pair.tmp / "plain.key"), "-L", "4M",
             "-n", "plainlv", VG)
    start = seqno(pair)
    assert_refused(pair, lvconvert(pair, "--type", "linear", f"{VG}/old"), "shared with sharer")
    assert_refused(pair, lvconvert(pair, "--type", "linear", f"{VG}/plainlv"), "keeps no on-disk header")
    assert seqno(pair) == start
    assert set(lvm2_lists(pair, VG)) == {"old", "sharer", "plainlv", "[cryptostore0]", "[cryptostore1]"}
    pair.lvc("lvremove", "-y", f"{VG}/sharer")
    pair.lvc("lvconvert", "--type", "linear", f"{VG}/old")
    vg = lvm2_layout(pair, VG)
    image = pair.tmp / "back.img"
    image.write_bytes(read_lv_bytes(vg, "old", devices))
    assert opens_with(image, pair.tmp / "pass")


def test_one_damaged_luks2_copy_imports_with_a_warning(pair: Pair,
                                                       lvc_bytes: Callable[..., subprocess.CompletedProcess[bytes]]
                                                       ) -> None:
    make_lv(pair, "single")
    devices = Devices(pair)
    good = luks2_header_in(pair, devices, "--offset", "8192")
    vg = lvm2_layout(pair, VG)
    write_lv_bytes(vg, "old", devices, corrupt_json(good, 0))
    result = pair.lvc("lvconvert", "--type", "crypt", f"{VG}/old")
    assert "warning" in result.stderr and "repair" in result.stderr, result.stderr
    read = lvc_bytes("read", "--key-file", str(pair.tmp / "pass"), "--length", "4096", f"{VG}/old")
    assert read.returncode == 0 and len(read.stdout) == 4096, read.stderr


def test_mounted_lv_is_not_converted(pair: Pair) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse here")
    make_lv(pair, "single")
    devices = Devices(pair)
    luks2_header_in(pair, devices, "--offset", "8192")
    mountpoint = pair.tmp / "mnt"
    mountpoint.mkdir()
    pair.lvc("mount", "--read-only", f"{VG}/old", str(mountpoint))
    try:
        start = seqno(pair)
        assert_refused(pair, lvconvert(pair, "--type", "crypt", f"{VG}/old"), "mounted with lvcrypt mount")
        assert seqno(pair) == start
    finally:
        pair.lvc("umount", str(mountpoint), check=False)
    pair.lvc("lvconvert", "--type", "crypt", f"{VG}/old")


def libcryptsetup_offsets(image: Path) -> tuple[int, int]:
    """(data offset, IV offset) in sectors as libcryptsetup itself reads a LUKS2 header (luksDump hides iv_tweak)."""
    lib = ctypes.CDLL(ctypes.util.find_library("cryptsetup") or "libcryptsetup.so.12")
    lib.crypt_get_data_offset.restype = ctypes.c_uint64
    lib.crypt_get_iv_offset.restype = ctypes.c_uint64
    cd = ctypes.c_void_p()
    assert lib.crypt_init(ctypes.byref(cd), str(image).encode()) == 0
    try:
        assert lib.crypt_load(cd, b"LUKS2", None) == 0
        return lib.crypt_get_data_offset(cd), lib.crypt_get_iv_offset(cd)
    finally:
        lib.crypt_free(cd)


def test_luks2_iv_tweak_is_ignored_as_cryptsetup_ignores_it(
        pair: Pair, lvc_bytes: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    """A single LUKS2 segment with iv_tweak: cryptsetup 2.6 opens it with IV offset 0, so the imported LV does too.

    libcryptsetup's crypt_get_iv_offset, which its activation puts in the dm-crypt
    table, answers 0 for LUKS2 (also seen in the kernel guest: `dmsetup table`
    after `cryptsetup open` shows iv_offset 0 for such a header).
    """
    make_lv(pair, "single")
    devices = Devices(pair)
    image = pair.tmp / "tweak.img"
    image.write_bytes(bytes(16 * MIB))
    area = FileArea(image)
    try:
        Luks2Handler().format(area, KeystoreAttrs("luks2", "aes-xts-plain64", 512),
                              Secret.adopt(bytearray((pair.tmp / "pass").read_bytes())),
                              FormatOptions(pbkdf=PbkdfRequest(kind="pbkdf2", force_iterations=1000),
                                            data_offset=2056, iv_offset=123456)).close()
        assert Luks2Handler().data_mapping(area, KeystoreAttrs("luks2")).iv_offset == 123456
    finally:
        area.close()
    assert libcryptsetup_offsets(image) == (2056, 0)
    key = dumped_volume_key(image, pair.tmp / "pass")
    plaintext = os.urandom(16 * MIB - 2056 * 512)
    with open(image, "r+b") as f:
        f.seek(2056 * 512)
        f.write(encrypt(key, plaintext, 512))
    vg = lvm2_layout(pair, VG)
    write_lv_bytes(vg, "old", devices, image.read_bytes())
    imported = pair.lvc("lvconvert", "--type", "crypt", f"{VG}/old")
    assert "iv_tweak 123456 is ignored" in imported.stderr
    read = lvc_bytes("read", "--key-file", str(pair.tmp / "pass"), f"{VG}/old")
    assert read.returncode == 0 and read.stdout == plaintext, read.stderr
    pair.lvc("lvconvert", "--type", "linear", f"{VG}/old")
    assert read_lv_bytes(lvm2_layout(pair, VG), "old", devices) == image.read_bytes()


def test_imported_lv_grows_and_exports_with_its_new_extents(
        pair: Pair, lvc_bytes: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    """lvextend after import appends crypt segments whose IVs continue; export keeps them as the LUKS device's tail."""
    case = Case("luks2", "pbkdf2", 512, 2056, "single")
    make_lv(pair, case.layout)
    devices = Devices(pair)
    volume = luks_volume(pair, case, devices)
    pair.lvc("lvconvert", "--type", "crypt", f"{VG}/old")
    pair.lvc("lvextend", "-L", "+8M", f"{VG}/old", pair.devices[1])
    tail = os.urandom(8 * MIB)
    wrote = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, "--key-file",
                            str(pair.tmp / "pass"), "--offset", str(len(volume.payload)), f"{VG}/old"],
                           input=tail, capture_output=True, env=pair.env, cwd=ROOT)
    assert wrote.returncode == 0, wrote.stderr
    read = lvc_bytes("read", "--key-file", str(pair.tmp / "pass"), f"{VG}/old")
    assert read.stdout == volume.payload + tail, read.stderr
    pair.lvc("lvconvert", "--type", "linear", f"{VG}/old")
    device = pair.tmp / "grown.img"
    device.write_bytes(read_lv_bytes(lvm2_layout(pair, VG), "old", devices))
    assert len(device.read_bytes()) == 24 * MIB and opens_with(device, pair.tmp / "pass")
    start = payload_offset(device)
    key = dumped_volume_key(device, pair.tmp / "pass")
    assert decrypt("aes-xts-plain64", key, device.read_bytes()[start:], 512) == volume.payload + tail
