"""What lvm2's reports say about LVs built on other LVs, from the metadata alone.

lvm2 shows a thin pool as `twi---tz--` with its `_tdata` as `T`, a snapshot's
COW LV as the visible snapshot (the `snapshotN` LV that ties it to its origin
is never listed), hidden sub-LVs in brackets, and the LVs one LV is built on
in the Origin, Pool, Data, Meta and Log columns.  Scripts parse these, so
lvcrypt must print the same; the facts per segment type live in the registry
(metadata/segtypes.py), this module puts them together per VG.  Kernel state
(lv_attr letters 5 and 6) is the caller's: this module knows no devices.
"""

from __future__ import annotations


from lvcrypt.metadata.model import LogicalVolume, Segment, VolumeGroup
from lvcrypt.metadata.segtypes import (REGISTRY, TARGET_LETTERS, VOLUME_LETTERS, Reference, all_references,
                                       handler_of, managed, named_areas, segment_type)
from lvcrypt.records import dataclass, field

SNAPSHOT_ROLES = ("snapshot exception store", "merging snapshot exception store")
ALLOCATION_LETTERS = {"contiguous": "c", "cling": "l", "cling_by_tags": "l", "normal": "n", "anywhere": "a",
                      "inherit": "i"}


# lv_role's words per trait, in lvm2's order (mirror, raid, thin, cache, integrity, vdo, spare),
# and the traits that make an LV private.
_ROLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mirror image", ("mirror", "image")), ("mirror log", ("mirror", "log")), ("pvmove", ("pvmove",)),
    ("raid image", ("raid", "image")), ("raid metadata", ("raid", "metadata")),
    ("thin pool metadata", ("thin", "pool", "metadata")), ("thin pool data", ("thin", "pool", "data")),
    ("type:thin-pool", ()),
    ("cache pool metadata", ("cache", "pool", "metadata")), ("cache pool data", ("cache", "pool", "data")),
    ("cache origin", ("cache", "origin", "cacheorigin")),
    ("writecache origin", ("writecache", "origin", "writecacheorigin")),
    ("writecache cache volume", ()), ("cache pool", ()), ("type:cache-pool", ()),
    ("integrity metadata", ("integrity", "metadata")),
    ("integrity origin", ("integrity", "origin", "integrityorigin")),
    ("VDO pool data", ("vdo", "pool", "data")), ("type:vdo-pool", ()),
    ("pool metadata spare", ("pool", "spare")),
)
_PRIVATE_TRAITS = {trait for trait, _ in _ROLE_WORDS}
# Roles others give an LV that lvm2 names, with the word added when more than one LV gives it.
_MULTI: dict[str, tuple[tuple[str, ...], str]] = {
    "thin snapshot origin": (("origin", "thinorigin"), "multithinorigin"),
    "external origin": (("origin", "extthinorigin"), "multiextthinorigin"),
    "snapshot origin": (("origin", "thickorigin"), "multithickorigin"),
}


# The letter tables as trait -> (precedence, letter): an LV has a handful of traits, the tables ~40 rows.
_UNSET = object()
_VOLUME_RANK = {trait: (rank, letter) for rank, (trait, letter) in enumerate(VOLUME_LETTERS)}
_TARGET_RANK = {trait: (rank, letter) for rank, (trait, letter) in enumerate(TARGET_LETTERS)}


# Families whose visibility, letters or links read the LV's segment keys or other LVs: never a plain view_row.
_KEYED_FAMILIES = frozenset({"snapshot", "thin", "thin-pool", "cache-pool"})
# VgReport.view_row: visible, static_attr (3), never_queried, then the pool_lv, origin and mirror_log links.
ViewRow = tuple[bool, str, str, str, bool, str, str, str]


def _first_letter(ranks: dict[str, tuple[int, str]], traits: frozenset[str]) -> str:
    return min((ranks[trait] for trait in traits if trait in ranks), default=(0, "-"))[1]


def _static_attr(traits: frozenset[str], status: tuple[str, ...], flags: tuple[str, ...], policy_name: str,
                 zeroing: str) -> tuple[str, str, str]:
    policy = ALLOCATION_LETTERS.get(policy_name, "i")
    if "LOCKED" in status:
        policy = policy.upper()
    permission = "-" if "PVMOVE" in status else "w" if "WRITE" in status else "r" if "READ" in status else "-"
    minor = "m" if "FIXED_MINOR" in status else "-"
    skip = "k" if "ACTIVATION_SKIP" in status or "ACTIVATION_SKIP" in flags else "-"
    return (f"{_first_letter(_VOLUME_RANK, traits)}{permission}{policy}{minor}",
            f"{_first_letter(_TARGET_RANK, traits)}{zeroing}", skip)


@dataclass(frozen=True)
class Area:
    """One data area of a segment as lvm2's `devices` field shows it: a PV key or an LV name, and where."""

    name: str
    offset: int
    is_pv: bool
    length: int  # extents of the area (lvm2's area_len)


@dataclass
class VgReport:
    """lvm2's view of one VG's LVs: which are listed and visible, their traits and the LVs they name."""

    vg: VolumeGroup
    _used_by: dict[str, list[Reference]] = field(default_factory=dict, init=False)
    _traits: dict[str, frozenset[str]] = field(default_factory=dict, init=False)  # reports ask per column
    _families: dict[str, str | None] = field(default_factory=dict, init=False)
    _visible: dict[str, bool] = field(default_factory=dict, init=False)
    # static_attr per shape of LV (traits, status, flags, policy, zeroing): thousands of plain LVs share one
    _static: dict[tuple[object, ...], tuple[str, str, str]] = field(default_factory=dict, init=False)
    # view_row per shape of a plain LV (segment types, status, flags, policy), None for shapes that are not plain
    _plain_rows: dict[tuple[object, ...], ViewRow | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for ref in all_references(self.vg):
            if ref.holder in self.vg.lvs and ref.target in self.vg.lvs:
                self._used_by.setdefault(ref.target, []).append(ref)

    def family(self, lv: LogicalVolume) -> str | None:
        """The registry name of the LV's first segment type (None for an unknown type)."""
        found = self._families.get(lv.name, _UNSET)
        if found is _UNSET:
            entry = segment_type(lv.segments[0].type) if lv.segments else None
            found = self._families[lv.name] = entry.name if entry else None
        return found  # type: ignore[return-value]

    def snapshot_segment(self, cow: LogicalVolume) -> Segment | None:
        """The `snapshot` segment (of a `snapshotN` LV) that uses `cow` as its exception store."""
        for ref in self._used_by.get(cow.name, []):
            if ref.role in SNAPSHOT_ROLES:
                return self.vg.lvs[ref.holder].segments[ref.segment - 1]
        return None

    def listed(self, lv: LogicalVolume) -> bool:
        """lvm2 never lists the `snapshotN` LVs (segment type snapshot), not even with -a."""
        return self.family(lv) != "snapshot"

    def visible(self, lv: LogicalVolume) -> bool:
        """lvm2's lv_is_visible: a COW LV is as visible as its origin, unless it is being merged.

        Remembered per LV: a report asks it for its rows, then again for each name and letter column."""
        found = self._visible.get(lv.name)
        if found is None:
            found = self._visible[lv.name] = self._find_visible(lv)
        return found

    def _find_visible(self, lv: LogicalVolume) -> bool:
        if self.family(lv) == "snapshot":
            return False
        snapshot = self.snapshot_segment(lv) if lv.name in self._used_by else None
        if snapshot is not None:
            origin = self.vg.lvs.get(str(snapshot.raw.get("origin", "")))
            return "merging_store" not in snapshot.raw and (origin is None or self.visible(origin))
        return lv.visible

    def has_path(self, lv: LogicalVolume) -> bool:
        """lvm2 gives /dev/VG/LV to visible LVs, except thin pools (never opened as a device)."""
        return self.visible(lv) and self.family(lv) != "thin-pool"

    def display(self, name: str) -> str:
        """An LV name as lvm2 prints it in name columns: hidden LVs in brackets."""
        lv = self.vg.lvs.get(name)
        return name if lv is None or self.visible(lv) else f"[{name}]"

    def traits(self, lv: LogicalVolume) -> frozenset[str]:
        """The LV's own segment family and every role it plays, in VOLUME_LETTERS' vocabulary."""
        if lv.name not in self._traits:
            self._traits[lv.name] = frozenset(self._find_traits(lv))
        return self._traits[lv.name]

    def _find_traits(self, lv: LogicalVolume) -> set[str]:
        family = self.family(lv)
        used_by = self._used_by.get(lv.name, ())
        found: set[str] = {f"type:{family}"} if family else set()
        if used_by:
            found |= {ref.role for ref in used_by}
        segments = lv.segments  # the first one's type is the family's: no generator for a one-segment LV
        if (segments and family is None) or (len(segments) > 1 and any(segment_type(segment.type) is None
                                                                      for segment in segments[1:])):
            found.add("unknown")
        if "PVMOVE" in lv.status:
            found.add("pvmove")
        if "CONVERTING" in lv.status:
            found.add("converting")
        if "_pmspare" in lv.name and not self.visible(lv):
            found.add("pool metadata spare")
        if used_by and any(ref.role == "snapshot origin" and "merging_store" in self.vg.lvs[ref.holder].segments[0].raw
                           for ref in used_by):
            found.add("merging snapshot origin")
        if family == "thin" and isinstance(lv.segments[0].raw.get("merge"), str):
            found.add("merging thin origin")
        return found

    def zeroing_letter(self, lv: LogicalVolume) -> str:
        """'z' for a thin pool that zeroes new blocks, and for thin volumes in one."""
        family = self.family(lv)
        if family != "thin" and family != "thin-pool":  # no pool to ask (most LVs): one family lookup
            return "-"
        pool: LogicalVolume | None = lv
        if family == "thin":
            pool = self.vg.lvs.get(str(lv.segments[0].raw.get("thin_pool", "")))
        if pool is None or self.family(pool) != "thin-pool":
            return "-"
        return "z" if pool.segments[0].raw.get("zero_new_blocks") == 1 else "-"

    def static_attr(self, lv: LogicalVolume) -> tuple[str, str, str]:
        """lv_attr letters 1-4 and 7-8 and 10 (what the metadata says); the caller adds state and health."""
        shape = (self.traits(lv), tuple(lv.status), tuple(lv.flags), lv.allocation_policy or "inherit",
                 self.zeroing_letter(lv))
        found = self._static.get(shape)
        if found is None:
            found = self._static[shape] = _static_attr(*shape)
        return found

    def view_row(self, lv: LogicalVolume) -> ViewRow | None:
        """What `lvs` asks per LV: visible, static_attr's three parts, never_queried, and the pool_lv, origin
        and mirror_log links; None for an LV lvm2 never lists.

        A plain LV (no other LV names it, not a pool metadata spare, of a family whose letters and links
        read no segment keys, listed) has a row that follows from its shape alone, computed once per shape:
        a VG of thousands of linear LVs has a handful of shapes."""
        if lv.name in self._used_by or "_pmspare" in lv.name:
            return self._view_row(lv)
        shape = (tuple([segment.type for segment in lv.segments]), tuple(lv.status), tuple(lv.flags),
                 lv.allocation_policy or "inherit")
        found = self._plain_rows.get(shape, _UNSET)
        if found is _UNSET:
            entry = REGISTRY.get(self.family(lv) or "")
            plain = self.family(lv) not in _KEYED_FAMILIES and (entry is None or not entry.report_keys)
            found = self._plain_rows[shape] = self._view_row(lv) if plain else None
        return found if found is not None else self._view_row(lv)  # type: ignore[return-value]

    def _view_row(self, lv: LogicalVolume) -> ViewRow | None:
        if not self.listed(lv):
            return None
        return (self.visible(lv), *self.static_attr(lv), self.never_queried(lv), self.link(lv, "pool_lv"),
                self.link(lv, "origin"), self.link(lv, "mirror_log"))

    def never_queried(self, lv: LogicalVolume) -> bool:
        """lvm2 asks the kernel nothing for a thin pool or a used cache pool: state `--`, never `XX`."""
        family = self.family(lv)
        return family == "thin-pool" or (family == "cache-pool" and lv.name in self._used_by)

    def link(self, lv: LogicalVolume, report_field: str) -> str:
        """origin, pool_lv, data_lv, metadata_lv or mirror_log: the LV this one names there, as displayed."""
        if report_field == "origin" and lv.name in self._used_by:
            snapshot = self.snapshot_segment(lv)
            if snapshot is not None:
                return self.display(str(snapshot.raw.get("origin", "")))
        entry = REGISTRY.get(self.family(lv) or "")
        if entry is None:
            return ""
        for key_field, key in entry.report_keys:
            name = lv.segments[0].raw.get(key)
            if key_field == report_field and isinstance(name, str):
                return self.display(name)
        return ""

    def role(self, lv: LogicalVolume) -> str:
        """lvm2's lv_role (lv_layout_and_role): public or private, then what the LV is to others."""
        traits = self.traits(lv)
        used_by = self._used_by.get(lv.name, [])
        roles: list[str] = []
        private = False
        for trait, names in _ROLE_WORDS:
            if trait in traits:
                roles += [name for name in names if name not in roles]
                private = private or trait in _PRIVATE_TRAITS
        if "type:thin" in traits and isinstance(lv.segments[0].raw.get("origin"), str):
            roles += ["snapshot", "thinsnapshot"]
        counts = {role: sum(1 for ref in used_by if ref.role == role) for role in _MULTI}
        for role, (words, multi) in _MULTI.items():
            if counts[role]:
                roles += [word for word in words if word not in roles] + ([multi] if counts[role] > 1 else [])
        if any(trait in traits for trait in ("snapshot exception store", "merging snapshot exception store")):
            roles += ["snapshot", "thicksnapshot"]
        return ",".join(["private" if private else "public", *roles])

    def lv_count(self) -> int:
        return sum(1 for lv in self.vg.lvs.values() if self.visible(lv))

    def snap_count(self) -> int:
        return sum(1 for lv in self.vg.lvs.values() if self.snapshot_segment(lv) is not None)


def report_type(segment: Segment) -> str:
    """The segment type as lvm2 reports it: `linear` for one stripe, without the `+FLAGS` lvm2 writes."""
    entry = segment_type(segment.type)
    stripes = handler_of(segment).stripe_count(segment)
    if entry is not None and entry.report_name and stripes == 1:
        return entry.report_name
    return segment.type.split("+", 1)[0]


def _raid_area_len(kind: str, extents: int, images: int, raw_copies: object) -> int:
    """Extents per raid image (lvm2's raid_rimage_extents): mirrors hold it all, stripes share it."""
    if images == 0 or kind.startswith("raid1") and not kind.startswith("raid10"):
        return extents
    if kind.startswith("raid10"):
        copies = raw_copies if isinstance(raw_copies, int) and raw_copies > 0 else 2
        return extents * copies // images
    parity = 2 if kind.startswith("raid6") else 1 if kind.startswith(("raid4", "raid5")) else 0
    return extents // max(images - parity, 1)


def areas(segment: Segment, pv_keys: set[str] | dict[str, object]) -> list[Area]:
    """The segment's data areas in lvm2's order: PV ranges, and LVs it is layered on (a mirror's
    images, a raid's images without their metadata LVs, a pool's data LV, a cache's origin)."""
    if managed(segment):
        return [Area(area.pv, area.extent, True, count) for area, count in segment.pv_areas()]
    entry = segment_type(segment.type)
    raw = segment.raw
    found = [Area(name, offset, name in pv_keys, length)
             for name, offset, length in named_areas(segment.type, raw, segment.extent_count)]
    for key in entry.lv_list_keys if entry else ():
        values = raw.get(key)
        names = values if isinstance(values, list) else []
        images = [name for name in (names[1::2] if key == "raids" else names) if isinstance(name, str)]
        length = _raid_area_len(segment.type, segment.extent_count, len(images), raw.get("data_copies"))
        found += [Area(name, 0, False, length) for name in images]  # raids = [meta0, image0, meta1, image1...]
    for key in entry.device_keys if entry else ():
        name = raw.get(key)
        if isinstance(name, str):
            found.append(Area(name, 0, False, segment.extent_count))
    return found
