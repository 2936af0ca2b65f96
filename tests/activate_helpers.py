"""A small VG model over image files, for tests of tables and the userspace data path."""

from __future__ import annotations

import os
from pathlib import Path

from lvcrypt.handlers.base import DataMapping
from lvcrypt.metadata.model import (
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    PhysicalVolume,
    StripedSegment,
    VolumeGroup,
)

EXTENT = 64  # sectors: 32 KiB extents keep images small
PE_START = 2048


def uuid(n: int) -> str:
    digits = f"{n:032d}"
    return "-".join(digits[a:b] for a, b in ((0, 6), (6, 10), (10, 14), (14, 18), (18, 22), (22, 26), (26, 32)))


def make_vg(tmp: Path, pv_count: int = 3, pe_count: int = 64) -> tuple[VolumeGroup, dict[str, str]]:
    vg = VolumeGroup("vg-test", uuid(1), extent_size=EXTENT)
    paths = {}
    for i in range(pv_count):
        key = f"pv{i}"
        path = tmp / f"{key}.img"
        with open(path, "wb") as f:
            f.truncate((PE_START + pe_count * EXTENT) * 512)
        vg.pvs[key] = PhysicalVolume(key, uuid(10 + i), str(path), dev_size=PE_START + pe_count * EXTENT,
                                     pe_start=PE_START, pe_count=pe_count)
        paths[key] = str(path)
    vg.lvs["cryptostore0"] = LogicalVolume("cryptostore0", uuid(100), status=["READ"], segments=[
        KeystoreSegment(0, 1, "crypt-keystore", handler="plain", cipher="aes-xts-plain64", key_size=512,
                        areas=[Area("pv0", 0)])])
    return vg, paths


def add_crypt_lv(vg: VolumeGroup, name: str, pieces: list[list[tuple[str, int]]], extents: list[int],
                 store: str = "cryptostore0", stripe_size: int | None = None, sector_size: int | None = None,
                 lv_id: int = 200) -> LogicalVolume:
    """A crypt LV with one segment per entry of `pieces` (several areas = striped crypt)."""
    segments = []
    start = 0
    for areas, count in zip(pieces, extents):
        segments.append(CryptSegment(start, count, "crypt", crypto_store=store,
                                     areas=[Area(pv, pe) for pv, pe in areas],
                                     stripe_size=stripe_size if len(areas) > 1 else None, sector_size=sector_size))
        start += count
    lv = LogicalVolume(name, uuid(lv_id + len(vg.lvs)), segments=segments)
    vg.lvs[name] = lv
    return lv


def add_linear_lv(vg: VolumeGroup, name: str, pv: str, pe: int, count: int, stripes: list[tuple[str, int]] | None = None,
                  stripe_size: int = 8) -> LogicalVolume:
    areas = [Area(p, e) for p, e in (stripes or [(pv, pe)])]
    segment = StripedSegment(0, count, "striped", stripe_count=len(areas),
                             stripe_size=stripe_size if len(areas) > 1 else None, stripes=areas)
    lv = LogicalVolume(name, uuid(300 + len(vg.lvs)), segments=[segment])
    vg.lvs[name] = lv
    return lv


def mapping(cipher: str = "aes-xts-plain64", key_bits: int = 512, sector_size: int = 512) -> DataMapping:
    return DataMapping(cipher, key_bits, sector_size)


def random_key(bits: int = 512) -> bytearray:
    return bytearray(os.urandom(bits // 8))
