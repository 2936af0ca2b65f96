"""lvm2's `striped` type (linear is one stripe): the segments lvcrypt allocates, maps and resizes itself."""

from __future__ import annotations

from operator import attrgetter

from lvcrypt.metadata.fields import Fields, Names
from lvcrypt.metadata.model import Area, CryptSegment, StripedSegment
from lvcrypt.metadata.segtype_handler import AreaMap, DmMap, SegmentType, flat_areas
from lvcrypt.metadata.tree import Value

_PV = attrgetter("pv")  # every area on a PV (the common case) is told in C, without a generator


def striped_segment(start: int, areas: list[Area], per_area: int, stripe_size: int | None) -> StripedSegment:
    """A striped segment over `areas`, `per_area` extents on each; one area is linear (no stripe size)."""
    stripes = len(areas)
    return StripedSegment(start, per_area * stripes, "striped", stripe_count=stripes,
                          stripe_size=stripe_size if stripes > 1 else None, stripes=list(areas))


class StripedType(SegmentType[StripedSegment]):
    """Data as is on its stripes: mapped linear or striped, resized, and lvconvert may encrypt it in place."""

    model = StripedSegment
    keys = ("stripe_count", "stripe_size", "stripes")
    plain = True

    def read_keys(self, f: Fields, start: int, count: int, names: Names) -> StripedSegment | None:
        stripe_count = f.int("stripe_count", minimum=1)
        stripes = f.areas("stripes")
        if not names.pv_keys.issuperset(map(_PV, stripes)) and any(
                area.pv not in names.pv_keys and area.pv in names.lv_names for area in stripes):
            return None  # striped over another LV (an LV being moved by pvmove): lvcrypt keeps it as it is
        if len(stripes) != stripe_count:
            raise f.fail("stripes", f"stripe_count is {stripe_count} but {len(stripes)} stripes are listed")
        stripe_size = f.int("stripe_size", None, minimum=1)
        if stripe_count > 1 and stripe_size is None:
            raise f.fail(None, "a segment with several stripes needs 'stripe_size'")
        return StripedSegment(start, count, self.name, f.section, stripe_count, stripe_size, stripes)

    def write(self, segment: StripedSegment) -> dict[str, Value | None]:
        return {"stripe_count": segment.stripe_count,
                "stripe_size": segment.stripe_size if segment.stripe_count > 1 else None,
                "stripes": flat_areas(segment.stripes)}

    def dm_map(self, segment: StripedSegment) -> DmMap:
        return AreaMap(tuple(segment.stripes), segment.stripe_size)

    def data_areas(self, segment: StripedSegment) -> list[Area]:
        return segment.stripes

    def stripe_size(self, segment: StripedSegment) -> int | None:
        return segment.stripe_size

    def stripe_count(self, segment: StripedSegment) -> int:
        return segment.stripe_count

    def grown(self, segment: StripedSegment, start: int, areas: list[Area], per_area: int,
              stripe_size: int | None) -> StripedSegment:
        return striped_segment(start, areas, per_area, stripe_size)

    def encrypted(self, segment: StripedSegment, start: int, keystore: str) -> CryptSegment:
        stripes = len(segment.stripes)
        return CryptSegment(start, segment.extent_count, "crypt", crypto_store=keystore, areas=list(segment.stripes),
                            stripe_size=segment.stripe_size if stripes > 1 else None)


STRIPED = StripedType("striped", "linear or striped LV", True, ("stripes",), "stripe", True, report_name="linear")
