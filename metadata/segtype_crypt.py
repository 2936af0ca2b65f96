"""lvcrypt's own types: `crypt` (data encrypted with a keystore's volume key) and `crypt-keystore`
(the hidden LV whose extents hold a key handler's data).  See docs/formats.md for their keys."""

from __future__ import annotations

from lvcrypt.metadata.fields import Fields, Names
from lvcrypt.metadata.model import Area, CryptSegment, KeystoreSegment
from lvcrypt.metadata.segtype_handler import AreaMap, CryptMap, DmMap, SegmentType, flat_areas
from lvcrypt.metadata.tree import Value


def crypt_segment(start: int, areas: list[Area], per_area: int, keystore: str, stripe_size: int | None,
                  sector_size: int | None) -> CryptSegment:
    """A crypt segment with `keystore`'s key over `areas`, `per_area` extents on each (several areas
    are striped); a sector size of 512 is dm-crypt's default and is not written."""
    stripes = len(areas)
    return CryptSegment(start, per_area * stripes, "crypt", crypto_store=keystore, areas=list(areas),
                        stripe_size=stripe_size if stripes > 1 else None,
                        sector_size=sector_size if sector_size not in (None, 512) else None)


class CryptType(SegmentType[CryptSegment]):
    """dm-crypt over its areas (striped below the crypt target when there are several); resized like striped."""

    model = CryptSegment
    keys = ("crypto_store", "iv_offset", "sector_size", "data_offset", "stripe_size", "areas")

    def read_keys(self, f: Fields, start: int, count: int, names: Names) -> CryptSegment:
        return CryptSegment(start, count, self.name, f.section, f.str("crypto_store"), f.areas("areas"),
                            f.int("iv_offset", None), f.int("sector_size", None, minimum=512),
                            f.int("data_offset", None), f.int("stripe_size", None, minimum=1))

    def write(self, segment: CryptSegment) -> dict[str, Value | None]:
        return {"crypto_store": segment.crypto_store, "iv_offset": segment.iv_offset,
                "sector_size": segment.sector_size, "data_offset": segment.data_offset,
                "stripe_size": segment.stripe_size, "areas": flat_areas(segment.areas)}

    def dm_map(self, segment: CryptSegment) -> DmMap:
        return CryptMap(segment.crypto_store, AreaMap(tuple(segment.areas), segment.stripe_size),
                        segment.data_offset or 0, segment.iv_offset, segment.sector_size)

    def data_areas(self, segment: CryptSegment) -> list[Area]:
        return segment.areas

    def stripe_size(self, segment: CryptSegment) -> int | None:
        return segment.stripe_size

    def stripe_count(self, segment: CryptSegment) -> int:
        """#Str of a striped crypt LV: its areas (the striped layer below dm-crypt)."""
        return len(segment.areas)

    def grown(self, segment: CryptSegment, start: int, areas: list[Area], per_area: int,
              stripe_size: int | None) -> CryptSegment:
        return crypt_segment(start, areas, per_area, segment.crypto_store, stripe_size, segment.sector_size)


class KeystoreType(SegmentType[KeystoreSegment]):
    """Its extents are the key material: mapped (for cryptsetup and the handlers), never resized."""

    model = KeystoreSegment
    keys = ("handler", "cipher", "key_size", "key_hash", "areas")

    def read_keys(self, f: Fields, start: int, count: int, names: Names) -> KeystoreSegment:
        return KeystoreSegment(start, count, self.name, f.section, f.str("handler"), f.str("cipher", None),
                               f.int("key_size", None, minimum=1), f.str("key_hash", None), f.areas("areas", []))

    def write(self, segment: KeystoreSegment) -> dict[str, Value | None]:
        return {"handler": segment.handler, "cipher": segment.cipher, "key_size": segment.key_size,
                "key_hash": segment.key_hash, "areas": flat_areas(segment.areas) if segment.areas else None}

    def dm_map(self, segment: KeystoreSegment) -> DmMap:
        return AreaMap(tuple(segment.areas))


CRYPT = CryptType("crypt", "crypt LV", True, ("areas",), "area", True, lv_keys=(("crypto_store", "keystore"),))
KEYSTORE = KeystoreType("crypt-keystore", "keystore", True, ("areas",), "area")
