"""What one segment type does, as one object: lvm2's `struct segtype_handler` for lvcrypt.

An entry of the registry (metadata/segtypes.py) is a `SegmentType`.  Its data
fields say what a segment of the type names (PV areas, other LVs, report
links); its methods do, for segments of the type, everything that used to be
an isinstance ladder somewhere in the code:

- `read` / `write`: its keys in the text format <-> its model segment
  (lvm2's text_import / text_export);
- `dm_map`: how its data maps onto device-mapper targets (lvm2's
  add_target_line), or None when lvcrypt cannot activate it;
- `data_areas`, `stripe_size`, `grown`: what lvextend/lvreduce need to
  continue or cut the segment (None: lvcrypt does not resize the type);
- `stripe_count`: lvm2's `#Str` for the reports; `plain` / `encrypted`:
  whether lvconvert can find a LUKS header in it and encrypt it in place;
- `managed`: whether lvcrypt may change segments of the type at all.

The base class is the behaviour of a type lvcrypt keeps verbatim (every
lvm2 type but striped, and types nobody registered): read into an
`UnknownSegment` that remembers its PV ranges, written back untouched, never
mapped or resized.  A type lvcrypt changes subclasses it, names its model
class (`model`) and its keys in lvm2's order (`keys`), and is registered in
segtypes.py: adding a type is one module and one line there.

Activation: the metadata layer must not import lvcrypt.activate, so
`dm_map` returns a neutral description in the model's terms (`AreaMap`: data
straight on PV areas; `CryptMap`: dm-crypt with a keystore's key over such
areas) and activate/tables.py turns it into dm tables, adding what only it
knows (device paths, the handler's cipher, layer names, keys).  A new type
whose data is linear, striped or encrypted thus activates without touching
activate/; a type needing another dm target extends this vocabulary there.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar, Union

from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.fields import Fields, Names
from lvcrypt.metadata.model import Area, Segment, UnknownSegment
from lvcrypt.metadata.tree import Section, Value
from lvcrypt.records import dataclass


@dataclass(frozen=True)
class AreaMap:
    """Data straight on PV areas: one area is a linear target, several a striped one (`chunk` sectors,
    128 when unset); no area maps nothing (a keystore kept only in metadata)."""

    areas: tuple[Area, ...]
    chunk: int | None = None


@dataclass(frozen=True)
class CryptMap:
    """dm-crypt with the volume key of `keystore` over `data`, from `skip` sectors into it.

    `iv_offset` and `sector_size` None: the keystore handler's values.
    """

    keystore: str
    data: AreaMap
    skip: int = 0
    iv_offset: int | None = None
    sector_size: int | None = None


DmMap = Union[AreaMap, CryptMap]
S = TypeVar("S", bound=Segment)  # the model class of a type's segments


def area_pairs(values: Value | None) -> list[tuple[str, int]]:
    """The `"name", offset` pairs of an areas array (anything else in it is skipped)."""
    if not isinstance(values, list):
        return []
    return [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)  # type: ignore[misc]
            if isinstance(values[i], str) and isinstance(values[i + 1], int) and not isinstance(values[i + 1], bool)]


def flat_areas(areas: list[Area]) -> list[str | int]:
    """Areas as the text format writes them: `"pv0", 12, "pv1", 0`."""
    return [item for area in areas for item in (area.pv, area.extent)]


@dataclass(frozen=True)
class SegmentType(Generic[S]):
    """What lvcrypt knows about one lvm2 segment type, and what it does with its segments (of class S)."""

    name: str
    noun: str  # what an LV made of this type is called in messages
    managed: bool  # lvcrypt creates, changes and maps segments of this type itself
    area_keys: tuple[str, ...] = ()  # arrays of "pvN"|"lv", offset pairs
    area_role: str = ""  # what an LV named in those areas is to this one
    areas_split: bool = False  # the areas share extent_count (stripes) instead of each holding it all (mirrors)
    lv_list_keys: tuple[str, ...] = ()  # arrays of LV names only (raid's metadata/image pairs)
    lv_keys: tuple[tuple[str, str], ...] = ()  # (key, role of the LV it names)
    message_keys: tuple[tuple[str, str], ...] = ()  # the same, inside the segment's subsections
    report_name: str | None = None  # lvm2's segtype for a segment of one stripe (linear), when it differs
    # What lvm2's reports show for an LV of this type: the lv_attr volume-type letter (its
    # precedence against the letters of roles is in VOLUME_LETTERS), the report fields that
    # name another LV (origin, pool_lv, data_lv, metadata_lv, mirror_log) with the key holding
    # the name, and the keys whose LVs are the segment's data areas (the `devices` field).
    report_keys: tuple[tuple[str, str], ...] = ()
    device_keys: tuple[str, ...] = ()

    model: ClassVar[type[Segment]] = UnknownSegment  # the class `read` returns for the type's own keys
    keys: ClassVar[tuple[str, ...]] = ()  # the type's keys after start_extent/extent_count/type, in lvm2's order
    plain: ClassVar[bool] = False  # data stored as is: lvconvert may find a LUKS header in it and encrypt it

    def splits(self, key: str) -> bool:
        """Whether the areas under `key` share the segment's extents (stripes) or each hold them all."""
        return self.areas_split

    def named_areas(self, raw: Section, extent_count: int) -> list[tuple[str, int, int]]:
        """(name, offset, extents) of every `"name", offset` area the segment lists.

        A name is a PV key or, when it is not one, an LV (a mirror's images, a
        striped segment moved by pvmove), as lvm2's text_import_areas decides.
        """
        found: list[tuple[str, int, int]] = []
        for key in self.area_keys:
            pairs = area_pairs(raw.get(key))
            length = extent_count // max(len(pairs), 1) if self.splits(key) else extent_count
            found += [(name, offset, length) for name, offset in pairs]
        return found

    def read(self, f: Fields, start: int, count: int, kind: str, names: Names) -> Segment:
        """The model segment of section `f` (common keys already read); lvm2's variants of a type
        (raid1, cache-pool+FLAGS) and what `read_keys` declines are kept verbatim."""
        if kind == self.name:
            segment = self.read_keys(f, start, count, names)
            if segment is not None:
                return segment
        ranges = [(Area(name, offset), length) for name, offset, length in self.named_areas(f.section, count)
                  if name in names.pv_keys]
        return UnknownSegment(start, count, kind, f.section, ranges)

    def read_keys(self, f: Fields, start: int, count: int, names: Names) -> S | None:
        """The type's own keys as its `model` segment; None keeps the segment verbatim."""
        return None

    def write(self, segment: S) -> dict[str, Value | None]:
        """The type's keys to write over the segment's raw section (None removes a key)."""
        return {}

    def dm_map(self, segment: S) -> DmMap | None:
        """How the segment's data maps onto device-mapper targets; None: lvcrypt cannot activate it."""
        return None

    def data_areas(self, segment: S) -> list[Area] | None:
        """The PV areas lvextend continues and lvreduce cuts (one per stripe); None: not resizable here."""
        return None

    def stripe_size(self, segment: S) -> int | None:
        """Sectors per stripe chunk, as the segment holds it."""
        return None

    def stripe_count(self, segment: S) -> int:
        """lvm2's stripe_count key as the segment holds it (1 when it has none)."""
        value = segment.raw.get("stripe_count", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1

    def grown(self, segment: S, start: int, areas: list[Area], per_area: int,
              stripe_size: int | None) -> Segment:
        """A new segment like `segment` (same keystore, sector size...) over newly allocated areas."""
        raise LvcryptError(f"cannot extend a {segment.type} segment")

    def encrypted(self, segment: S, start: int, keystore: str) -> Segment:
        """The segment's extents as a crypt segment with `keystore`'s key (for `plain` types only)."""
        raise LvcryptError(f"segment type '{segment.type}' cannot become encrypted")
