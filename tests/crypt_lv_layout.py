"""Where lvm2 says a crypt LV's extents are, and what lies there: the oracle side of the crypt LV tests.

Shared by the host tests (tests/cli/) and the kernel tier (tests/kernel/): the
layout comes from lvm2's own vgcfgbackup, the bytes straight from the PVs, and
decryption is `cryptography` called once per sector with dm-crypt's IV rule.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lvcrypt.metadata.convert import tree_to_vg
from lvcrypt.metadata.model import CryptSegment, KeystoreSegment, VolumeGroup
from lvcrypt.metadata.parse import parse_text
from store_helpers import Pair


def lvm2_layout(pair: Pair, vg: str = "vgc") -> VolumeGroup:
    """Where lvm2 says the extents are: its own vgcfgbackup of the VG, then parsed."""
    path = pair.tmp / f"lvm2-{os.urandom(4).hex()}.txt"
    pair.lvm("vgcfgbackup", "-f", str(path), vg)
    return tree_to_vg(parse_text(path.read_text()))


def lvm2_lists(pair: Pair, vg: str = "vgc") -> dict[str, str]:
    rows = json.loads(pair.lvm("lvs", "-a", "--reportformat", "json", "-o", "lv_name,lv_attr", vg).stdout)
    return {row["lv_name"]: row["lv_attr"] for row in rows["report"][0]["lv"]}


def pv_path(pair: Pair, vg: VolumeGroup, key: str) -> str:
    by_id = {}
    for device in pair.devices:
        out = pair.lvm("pvs", "--noheadings", "-o", "pv_uuid", device).stdout.strip()
        by_id[out] = device
    return by_id[vg.pvs[key].id]


def extent_bytes(pair: Pair, vg: VolumeGroup, pv: str, extent: int, count: int) -> bytes:
    with open(pv_path(pair, vg, pv), "rb") as f:
        f.seek((vg.pvs[pv].pe_start + extent * vg.extent_size) * 512)
        return f.read(count * vg.extent_bytes)


def keystore_image(pair: Pair, vg: VolumeGroup, store: str) -> Path:
    segment = vg.lvs[store].segments[0]
    assert isinstance(segment, KeystoreSegment)
    path = pair.tmp / f"{store}.img"
    path.write_bytes(extent_bytes(pair, vg, segment.areas[0].pv, segment.areas[0].extent, segment.extent_count))
    return path


def ciphertext(pair: Pair, vg: VolumeGroup, lv: str) -> bytes:
    parts = []
    for segment in vg.lvs[lv].segments:
        assert isinstance(segment, CryptSegment) and len(segment.areas) == 1
        parts.append(extent_bytes(pair, vg, segment.areas[0].pv, segment.areas[0].extent, segment.extent_count))
    return b"".join(parts)


def decrypt(cipher: str, key: bytes, data: bytes, sector_size: int, first_iv: int = 0) -> bytes:
    """dm-crypt's IV rule spelled out: one cipher call per sector, IV = 512-byte sector number."""
    out = bytearray()
    for index in range(len(data) // sector_size):
        iv = (first_iv + index * sector_size // 512).to_bytes(16, "little")
        chunk = data[index * sector_size:(index + 1) * sector_size]
        if cipher == "aes-xts-plain64":
            mode = modes.XTS(iv)
        else:
            essiv = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.ECB()).encryptor().update(iv)
            mode = modes.CBC(essiv)
        out += Cipher(algorithms.AES(key), mode).decryptor().update(chunk)
    return bytes(out)
