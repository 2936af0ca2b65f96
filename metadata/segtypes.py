"""The one registry of segment types, and what it tells about LVs that refer to each other.

lvm2 VGs hold LVs built on other LVs: thin volumes on a thin pool, which is
built on `_tdata`/`_tmeta` sub-LVs; snapshots naming an origin and a COW LV;
raid and mirror images; cache, writecache, VDO and integrity layers; and
`historical_logical_volumes` that name live ones.  Renaming, removing or
resizing one of them without the others leaves a VG lvm2 refuses to read, so
every command asks this module first.  Each entry (a `SegmentType`, see
metadata/segtype_handler.py for what it does with segments) says, for one
type (keys as lvm2's `*_text_import` functions read them):
- which array keys hold `"name", offset` areas (a PV key is a PV area, any
  other name an LV, as lvm2's text_import_areas decides);
- which keys hold names of other LVs, and what those LVs are to this one;
- whether lvcrypt can change segments of the type (striped, crypt,
  crypt-keystore; lvm2 keeps everything else);
- how its segments are read, written, mapped to dm targets, resized and reported.
lvcrypt's own types have a module each (segtype_striped.py, segtype_crypt.py);
lvm2's types are one line each below; a new type is one module or one line
plus `register()` (or a place in `_TYPES`).  A type not in the registry is
`UNKNOWN`, treated as lvm2 treats unknown types: kept, never changed, and
any string in it equal to an LV name counts as a reference.

The queries are pure functions of the model.
"""

from __future__ import annotations

from typing import Any, Iterator

from lvcrypt.metadata.model import LogicalVolume, Segment, UnknownSegment, VolumeGroup
from lvcrypt.metadata.segtype_crypt import CRYPT, KEYSTORE
from lvcrypt.metadata.segtype_handler import SegmentType, area_pairs
from lvcrypt.metadata.segtype_striped import STRIPED
from lvcrypt.metadata.tree import Section, Value
from lvcrypt.records import dataclass

HISTORICAL_PREFIX = "-"  # lvm2 names historical LVs "-name" where live and historical names meet
# "permission": lvchange -p, which reloads an active LV (lvcrypt reloads the types it activates).
ACTIONS = ("rename", "remove", "extend", "reduce", "convert", "data-write", "activate", "permission")
_VERBS = {"data-write": "write to", "activate": "activate or deactivate", "permission": "change the permission of"}
# Keys of every segment that never name anything.
_SEGMENT_KEYS = ("start_extent", "extent_count", "type")
GENERIC_ROLE = "named"  # an unknown type's string that equals an LV name


_TYPES: list[SegmentType[Any]] = [
    STRIPED, CRYPT, KEYSTORE,
    SegmentType("thin-pool", "thin pool", False,
                lv_keys=(("metadata", "thin pool metadata"), ("pool", "thin pool data")),
                message_keys=(("create", "thin volume being created"),),
                report_keys=(("data_lv", "pool"), ("metadata_lv", "metadata")), device_keys=("pool",)),
    SegmentType("thin", "thin volume", False,
                lv_keys=(("thin_pool", "thin pool"), ("origin", "thin snapshot origin"),
                         ("external_origin", "external origin"), ("merge", "merging thin snapshot")),
                report_keys=(("pool_lv", "thin_pool"), ("origin", "origin"), ("origin", "external_origin"))),
    SegmentType("snapshot", "snapshot", False,
                lv_keys=(("origin", "snapshot origin"), ("cow_store", "snapshot exception store"),
                         ("merging_store", "merging snapshot exception store"))),
    SegmentType("raid", "raid LV", False, lv_list_keys=("raids", "raid0_lvs")),
    SegmentType("mirror", "mirror", False, ("mirrors",), "mirror image",
                lv_keys=(("mirror_log", "mirror log"),), report_keys=(("mirror_log", "mirror_log"),)),
    SegmentType("cache", "cached LV", False, lv_keys=(("cache_pool", "cache pool"), ("origin", "cache origin")),
                report_keys=(("pool_lv", "cache_pool"), ("origin", "origin")), device_keys=("origin",)),
    SegmentType("cache-pool", "cache pool", False,
                lv_keys=(("data", "cache pool data"), ("metadata", "cache pool metadata")),
                report_keys=(("data_lv", "data"), ("metadata_lv", "metadata")), device_keys=("data",)),
    SegmentType("writecache", "writecache LV", False,
                lv_keys=(("origin", "writecache origin"), ("writecache", "writecache cache volume")),
                report_keys=(("pool_lv", "writecache"), ("origin", "origin")), device_keys=("origin",)),
    SegmentType("vdo", "VDO volume", False, lv_keys=(("vdo_pool", "VDO pool"),),
                report_keys=(("pool_lv", "vdo_pool"),), device_keys=("vdo_pool",)),
    SegmentType("vdo-pool", "VDO pool", False, lv_keys=(("data", "VDO pool data"),),
                report_keys=(("data_lv", "data"),), device_keys=("data",)),
    SegmentType("integrity", "integrity LV", False,
                lv_keys=(("origin", "integrity origin"), ("meta_dev", "integrity metadata")),
                report_keys=(("origin", "origin"),), device_keys=("origin",)),
    SegmentType("error", "error LV", False),
    SegmentType("zero", "zero LV", False),
]
REGISTRY: dict[str, SegmentType[Any]] = {entry.name: entry for entry in _TYPES}


class UnknownType(SegmentType[UnknownSegment]):
    """A type nobody registered, kept as lvm2 keeps unknown types: its stripes, areas and mirrors arrays
    hold PV ranges (so allocation never reuses them), everything else is written back verbatim."""

    def splits(self, key: str) -> bool:
        return key == "stripes"


UNKNOWN = UnknownType("unknown", "LV of an unknown segment type", False, ("stripes", "areas", "mirrors"))


def register(entry: SegmentType[Any]) -> None:
    """Add a segment type: from now on its segments are read, written, mapped, resized and reported by `entry`."""
    if entry.name in REGISTRY:
        raise ValueError(f"segment type {entry.name} is already registered")
    REGISTRY[entry.name] = entry


# lvm2's lv_attr letters (lib/metadata/lv.c, lv_attr_dup_with_info_and_seg_status): an LV has
# traits, "type:FAMILY" for its first segment's registry entry and the roles it plays for
# other LVs (Reference.role, plus the few lvm2 finds otherwise); lvm2 tests them in this
# order and the first match gives the letter.  Keystores and crypt LVs have none ('-').
VOLUME_LETTERS: tuple[tuple[str, str], ...] = (
    ("pvmove", "p"), ("converting", "c"),
    ("merging snapshot origin", "O"), ("snapshot origin", "o"), ("external origin", "o"),
    ("thin pool metadata", "e"), ("pool metadata spare", "e"), ("raid metadata", "e"),
    ("integrity metadata", "e"), ("cache pool metadata", "e"),
    ("type:cache", "C"), ("type:cache-pool", "C"), ("cache pool data", "C"), ("cache pool", "C"),
    ("type:writecache", "C"), ("writecache cache volume", "C"),
    ("type:integrity", "g"), ("type:raid", "r"), ("type:mirror", "m"),
    ("merging thin origin", "O"), ("merging thin snapshot", "S"), ("type:thin", "V"),
    ("type:vdo-pool", "d"), ("VDO pool data", "D"), ("type:error", "v"), ("type:zero", "v"),
    ("type:thin-pool", "t"), ("thin pool data", "T"), ("mirror image", "I"), ("raid image", "I"),
    ("mirror log", "l"), ("merging snapshot exception store", "S"), ("snapshot exception store", "s"),
    ("cache origin", "o"), ("writecache origin", "o"),
)
# The 7th letter, target type, the same way.
TARGET_LETTERS: tuple[tuple[str, str], ...] = (
    ("type:thin-pool", "t"), ("type:thin", "t"),
    ("type:cache-pool", "C"), ("cache pool", "C"), ("type:cache", "C"), ("cache origin", "C"),
    ("type:writecache", "C"), ("writecache origin", "C"), ("writecache cache volume", "C"),
    ("type:raid", "r"), ("raid image", "r"), ("raid metadata", "r"),
    ("type:mirror", "m"), ("mirror image", "m"), ("mirror log", "m"), ("pvmove", "m"),
    ("snapshot exception store", "s"), ("merging snapshot exception store", "s"),
    ("snapshot origin", "s"), ("merging snapshot origin", "s"),
    ("unknown", "u"), ("type:error", "v"), ("type:zero", "v"),
)


def segment_type(name: str) -> SegmentType[Any] | None:
    """The registry entry of a type name; every raid level (raid1, raid5_ls, raid10...) is `raid`.

    lvm2 appends flags to the name it writes (`cache-pool+METADATA_FORMAT`); they do not change the type.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    name = name.split("+", 1)[0]
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("raid"):
        return REGISTRY["raid"]
    return None


def named_areas(kind: str, raw: Section, extent_count: int) -> list[tuple[str, int, int]]:
    """(name, offset, extents) of every `"name", offset` area a segment of type `kind` lists."""
    return (segment_type(kind) or UNKNOWN).named_areas(raw, extent_count)


def handler_of(segment: Segment) -> SegmentType[Any]:
    """The entry that writes, maps, resizes and reports `segment`: its type's, or UNKNOWN when the
    segment is kept verbatim although its type is registered (a striped segment over other LVs)."""
    entry = segment_type(segment.type)
    return entry if entry is not None and isinstance(segment, entry.model) else UNKNOWN


@dataclass(frozen=True)
class Reference:
    """`holder` names `target` in its metadata; `role` is what the target is to the holder."""

    holder: str  # an LV name, or "-name" for a historical LV
    target: str
    role: str
    segment_type: str  # the holder's segment type ("historical" for a historical LV)
    managed: bool  # lvcrypt keeps this reference right itself (a crypt segment's keystore)
    key: str = ""  # where the name is written, for messages
    segment: int = 0  # the holder's segment number (1-based; 0 for a historical LV)


def historical_lvs(vg: VolumeGroup) -> dict[str, Section]:
    """The VG's `historical_logical_volumes` (removed LVs lvm2 remembers), by name without the "-"."""
    section = vg.raw.get("historical_logical_volumes")
    if not isinstance(section, Section):
        return {}
    return dict(section.sections())


def _strings(value: Value, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a value, nested sections and lists included, with the key it sits under."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield path, item
    elif isinstance(value, Section):
        for key, child in value.items():
            yield from _strings(child, f"{path}.{key}" if path else key)


def _is_name(vg: VolumeGroup, text: str, historical: dict[str, Section]) -> bool:
    """A live LV's name, or a historical LV's (lvm2 writes those as "-name")."""
    return text in vg.lvs or text.removeprefix(HISTORICAL_PREFIX) in historical


def segment_references(vg: VolumeGroup, holder: str, number: int, segment: Segment,
                       historical: dict[str, Section] | None = None) -> list[Reference]:
    """The LVs one segment names; names that do not exist are kept too (validation reports them)."""
    kind = segment.type
    entry = segment_type(kind)
    if _names_no_lv(kind, type(segment)):
        return []  # a modelled segment of a type that names no LVs (a plain striped one: most of a big VG)
    historical = historical_lvs(vg) if historical is None else historical
    if entry is None:
        return [Reference(holder, text, GENERIC_ROLE, kind, False, path, number)
                for key, value in segment.raw.items() if key not in _SEGMENT_KEYS
                for path, text in _strings(value, key)
                if text != holder and _is_name(vg, text, historical)]
    found: list[Reference] = []
    raw = segment.raw
    kept = managed(segment)  # a striped segment over other LVs is kept verbatim, not managed
    for key in entry.area_keys if not kept else ():  # modelled areas are PVs (validation checks them)
        found += [Reference(holder, name, entry.area_role, kind, kept, key, number)
                  for name, _ in area_pairs(raw.get(key)) if name not in vg.pvs]
    for key in entry.lv_list_keys:
        values = raw.get(key)
        for name in values if isinstance(values, list) else []:
            if isinstance(name, str):
                role = "raid metadata" if "_rmeta_" in name else "raid image"
                found.append(Reference(holder, name, role, kind, False, key, number))
    for key, role in entry.lv_keys:
        name = getattr(segment, key, None) or raw.get(key)  # modelled fields (crypto_store) are current
        if isinstance(name, str):
            found.append(Reference(holder, name, role, kind, kept, key, number))
    for _, child in raw.sections():
        for key, role in entry.message_keys:
            name = child.get(key)
            if isinstance(name, str):
                found.append(Reference(holder, name, role, kind, False, key, number))
    return found


def _names_no_lv(kind: str, model: type) -> bool:
    """Whether a segment of type `kind` and class `model` names no LV whatever its keys: a modelled
    segment of a registered type without LV keys."""
    entry = segment_type(kind)
    return entry is not None and not (entry.lv_list_keys or entry.lv_keys or entry.message_keys) \
        and entry.managed and issubclass(model, entry.model)


def all_references(vg: VolumeGroup) -> list[Reference]:
    """Every reference in the VG: LV segments, then historical LVs (`origin`, `descendants`)."""
    historical = historical_lvs(vg)
    found: list[Reference] = []
    # _names_no_lv per (type, class) seen: thousands of striped segments ask it once, not a call each.
    silent: dict[tuple[str, type], bool] = {}
    for lv in vg.lvs.values():
        for number, segment in enumerate(lv.segments, 1):
            shape = (segment.type, type(segment))
            quiet = silent.get(shape)
            if quiet is None:
                quiet = silent[shape] = _names_no_lv(*shape)
            if not quiet:
                found += segment_references(vg, lv.name, number, segment, historical)
    for name, section in historical.items():
        for key, role in (("origin", "origin of a removed LV"), ("descendants", "descendant of a removed LV")):
            value = section.get(key)
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str):
                    found.append(Reference(HISTORICAL_PREFIX + name, text, role, "historical", False, key))
    return found


def references_of(vg: VolumeGroup, lv: LogicalVolume) -> list[Reference]:
    """What `lv` names (its pool, origin, images, keystore...)."""
    historical = historical_lvs(vg)
    return [ref for number, segment in enumerate(lv.segments, 1)
            for ref in segment_references(vg, lv.name, number, segment, historical)]


def referenced_by(vg: VolumeGroup, lv: LogicalVolume) -> list[Reference]:
    """What names `lv`: other LVs' segments and historical LVs."""
    return [ref for ref in all_references(vg) if ref.target == lv.name and ref.holder != lv.name]


def missing_references(vg: VolumeGroup) -> list[Reference]:
    """References of known keys to LVs that do not exist (a rename or removal that forgot them)."""
    historical = historical_lvs(vg)
    return [ref for ref in all_references(vg)
            if ref.role != GENERIC_ROLE and not _is_name(vg, ref.target, historical)]


def managed(segment: Segment) -> bool:
    """Whether lvcrypt may change this segment (a modelled striped, crypt or keystore segment)."""
    return handler_of(segment).managed


def _noun(segment: Segment) -> str:
    entry = segment_type(segment.type)
    if entry is None:
        return f"LV of segment type '{segment.type}'"
    if isinstance(segment, UnknownSegment) and entry.managed:
        return f"{segment.type} LV built on other LVs"
    return entry.noun


def _article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' or noun.startswith('LV') else 'a'} {noun}"


def _plural(noun: str, count: int) -> str:
    return noun if count == 1 else f"{noun}s"


def _holders_text(vg: VolumeGroup, refs: list[Reference]) -> str:
    """'thin pool used by thin volumes a, b' for the references of one role."""
    role = refs[0].role
    names = sorted({ref.holder for ref in refs})
    used = "named" if role == GENERIC_ROLE else f"{role} used"
    if refs[0].segment_type == "historical":
        return f"{role}, named by historical {_plural('LV', len(names))} {', '.join(names)}"
    holder = vg.lvs[refs[0].holder]
    number = refs[0].segment
    noun = _noun(holder.segments[number - 1]) if 0 < number <= len(holder.segments) else "LV"
    return f"{used} by {_plural(noun, len(names))} {', '.join(names)}"


def change_problem(vg: VolumeGroup, lv: LogicalVolume, action: str) -> str | None:
    """Why lvcrypt must not `action` this LV, as one line, or None.

    Refused: an LV with a segment lvcrypt does not change; an LV something
    lvcrypt does not manage refers to (sub-LVs, snapshot origins, pool data,
    LVs named by historical LVs); lvm2's internal LVs (hidden, not keystores);
    locked LVs (pvmove); and keystores for data writes, resizes and conversion
    (their extents are the key material).  Plain and crypt LVs that nothing
    refers to are never refused here.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action}")
    where = f"cannot {_VERBS.get(action, action)} {vg.name}/{lv.name}"
    own = [segment for segment in lv.segments if not managed(segment)]
    users = [ref for ref in referenced_by(vg, lv) if not ref.managed]
    if action == "reduce" and any(ref.role == "snapshot origin" for ref in users):
        return f"{where}: Snapshot origin volumes cannot be reduced in size yet (as lvm2)."
    families = {entry.name for entry in map(segment_type, (segment.type for segment in own)) if entry}
    if action == "remove" and not users and families & {"raid", "mirror"}:
        return (f"{where}: it is {_article(_noun(own[0]))}; lvcrypt does not remove raid or mirror LVs together with "
                "their images and logs (use lvm2)")
    if own or users:
        by_role: dict[str, list[Reference]] = {}
        for ref in users:
            by_role.setdefault(ref.role, []).append(ref)
        what = "; ".join(_holders_text(vg, refs) for refs in by_role.values()) if users else \
            f"it is {_article(_noun(own[0]))}"
        types = sorted({segment.type for segment in own} | {ref.segment_type for ref in users} - {"historical"})
        kinds = [f"{', '.join(types)} segments"] if types else []
        kinds += ["historical LVs"] if any(ref.segment_type == "historical" for ref in users) else []
        return f"{where}: {what} (lvcrypt does not change {' or '.join(kinds)}; use lvm2)"
    if "LOCKED" in lv.status:
        return f"{where}: it is locked (a pvmove is in progress; use lvm2)"
    if lv.is_keystore:
        if action in ("data-write", "extend", "reduce", "convert", "activate", "permission"):
            return (f"{where}: it is a keystore, a hidden LV whose extents hold the key material "
                    "(use lvcrypt keyslot/keystore commands)")
        return None
    if not lv.visible:
        return f"{where}: it is an internal LV of lvm2 (hidden; use lvm2)"
    return None


def name_taken_problem(vg: VolumeGroup, name: str) -> str | None:
    """lvm2 refuses a new LV name that a live or a historical LV has."""
    if name in vg.lvs:
        return f"logical volume {vg.name}/{name} already exists"
    if name in historical_lvs(vg):
        return f"historical logical volume {vg.name}/{HISTORICAL_PREFIX}{name} already has the name {name}"
    return None
