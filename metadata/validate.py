"""Semantic checks of a volume group: what lvm2 checks on load, plus the crypt rules.

`validate` raises the first problem as a `MetadataError` with the line of the
key that is wrong.  `check_lvm2_readable` is the extra rule for metadata that
lvcrypt writes itself: nothing lvm2 would reject (SPEC: no LV whose segments
are all zero-length).
"""

from __future__ import annotations

import re
from itertools import islice
from operator import gt, itemgetter

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.gc_pause import gc_paused
from lvcrypt.metadata.model import (
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    StripedSegment,
    VolumeGroup,
)
from lvcrypt.metadata.segtypes import HISTORICAL_PREFIX, historical_lvs, missing_references
from lvcrypt.metadata.tree import Section

NAME_MAX = 127
FULL_NAME_MAX = 124
_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.\-]*\Z")
# lvm2's id characters (lib/uuid/uuid.c) in its 6-4-4-4-4-4-6 layout.
_UUID = re.compile(r"[0-9A-Za-z!#]{6}(?:-[0-9A-Za-z!#]{4}){5}-[0-9A-Za-z!#]{6}\Z")
KEYSTORE_NAME = re.compile(r"cryptostore([0-9]+)\Z")
SECTOR_SIZES = (512, 1024, 2048, 4096)
_START, _END = itemgetter(0), itemgetter(1)  # of an extent range (start, end, label)
# Suffixes and prefixes lvm2 reserves for its own hidden sub-LVs (lvm2's apply_lvname_restrictions).
RESERVED_LV_PREFIXES = ("snapshot", "pvmove")
RESERVED_LV_PARTS = ("_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig", "_mimage", "_mlog",
                     "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig")


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid VG or LV name for lvm2, or None."""
    if not name:
        return "name is empty"
    if len(name) > NAME_MAX:
        return f"name is longer than {NAME_MAX} characters"
    if name in (".", ".."):
        return f"'{name}' is not a valid name"
    if not _NAME.match(name):
        return f"'{name}' has characters outside A-Z a-z 0-9 + _ . - or starts with '-'"
    return None


def new_lv_name_problem(name: str, vg_name: str | None = None) -> str | None:
    """Why an LV may not be created under `name` (adds lvm2's and lvcrypt's reserved names).

    With `vg_name`, also lvm2's limit on the two names together, so no
    command writes a VG that lvm2 then refuses to write back.
    """
    problem = name_problem(name)
    if problem:
        return problem
    prefix = next((prefix for prefix in RESERVED_LV_PREFIXES if name.startswith(prefix)), None)
    if prefix:
        return f'names starting "{prefix}" are reserved by lvm2'
    part = next((part for part in RESERVED_LV_PARTS if part in name), None)
    if part:
        return f'names including "{part}" are reserved by lvm2'
    if KEYSTORE_NAME.match(name):
        return f"'{name}' is reserved for keystores"
    return None if vg_name is None else full_name_problem(vg_name, name)


def full_name_problem(vg_name: str, lv_name: str) -> str | None:
    """lvm2's vg_validate: len(VG) + len(LV) + 3 must stay below NAME_LEN (128), for every LV, hidden ones too."""
    if len(vg_name) + len(lv_name) > FULL_NAME_MAX:
        return (f'"{vg_name}/{lv_name}" is too long: lvm2 takes at most {FULL_NAME_MAX} characters '
                f"of VG and LV name together")
    return None


def uuid_valid(text: str) -> bool:
    return bool(_UUID.match(text))


class _Checker:
    def __init__(self, vg: VolumeGroup, source: str | None):
        self.vg = vg
        self.source = source

    def fail(self, section: Section, key: str | None, problem: str) -> MetadataError:
        line = section.line_of(key) if key else section.line
        return MetadataError(problem, self.source, line)

    def run(self) -> None:
        vg = self.vg
        problem = name_problem(vg.name)
        if problem:
            raise self.fail(vg.raw, None, f"volume group: {problem}")
        if not uuid_valid(vg.id):
            raise self.fail(vg.raw, "id", f"volume group {vg.name}: invalid uuid '{vg.id}'")
        if vg.extent_size < 8 or vg.extent_size % 8:
            raise self.fail(vg.raw, "extent_size",
                            f"volume group {vg.name}: extent_size {vg.extent_size} is not a multiple of 8 sectors")
        self.check_pvs()
        ids: dict[str, str] = {}
        for lv in vg.lvs.values():
            self.check_lv(lv)
            if lv.id in ids:
                raise self.fail(lv.raw, "id", f"logical volume {lv.name}: uuid already used by {ids[lv.id]}")
            ids[lv.id] = lv.name
        self.check_references()
        self.check_extents()

    def check_references(self) -> None:
        """Every LV a segment names exists: a rename or removal that forgot a thin pool's data or a raid
        image would leave a VG lvm2 refuses to read."""
        for ref in missing_references(self.vg):
            if ref.segment:
                holder = self.vg.lvs[ref.holder]
                section = holder.segments[ref.segment - 1].raw
                where = f"logical volume {ref.holder}: segment{ref.segment}"
            else:
                section = historical_lvs(self.vg)[ref.holder.removeprefix(HISTORICAL_PREFIX)]
                where = f"historical logical volume {ref.holder}"
            raise self.fail(section, ref.key if ref.key in section else None,
                            f"{where}: {ref.key} names '{ref.target}' ({ref.role}), which does not exist")

    def check_pvs(self) -> None:
        seen: dict[str, str] = {}
        for pv in self.vg.pvs.values():
            what = f"physical volume {pv.key}"
            if not uuid_valid(pv.id):
                raise self.fail(pv.raw, "id", f"{what}: invalid uuid '{pv.id}'")
            if pv.id in seen:
                raise self.fail(pv.raw, "id", f"{what}: uuid already used by {seen[pv.id]}")
            seen[pv.id] = pv.key
            # lvm2's pvresize records dev_size less pe_start (format_text's _text_pv_resize), so lvm2's own
            # metadata promises only that the extents fit in dev_size, not that they end before it.
            extents = pv.pe_count * self.vg.extent_size
            if pv.dev_size and extents > pv.dev_size:
                raise self.fail(pv.raw, "pe_count",
                                f"{what}: {pv.pe_count} extents ({extents} sectors) do not fit in dev_size "
                                f"{pv.dev_size}")

    def check_lv(self, lv: LogicalVolume) -> None:
        what = f"logical volume {lv.name}"
        problem = name_problem(lv.name)
        if problem:
            raise self.fail(lv.raw, None, f"{what}: {problem}")
        if not uuid_valid(lv.id):
            raise self.fail(lv.raw, "id", f"{what}: invalid uuid '{lv.id}'")
        expected_start = 0
        keystore = False
        for number, segment in enumerate(lv.segments, 1):
            if _plain_segment(segment, expected_start):
                expected_start += segment.extent_count
                continue
            where = f"{what}: segment{number}"
            if segment.start_extent != expected_start:
                raise self.fail(segment.raw, "start_extent",
                                f"{where}: start_extent is {segment.start_extent}, expected {expected_start}")
            if segment.extent_count == 0 and not isinstance(segment, KeystoreSegment):
                raise self.fail(segment.raw, "extent_count", f"{where}: extent_count must be > 0")
            expected_start += segment.extent_count
            if isinstance(segment, StripedSegment) and segment.extent_count % segment.stripe_count:
                raise self.fail(segment.raw, "extent_count",
                                f"{where}: {segment.extent_count} extents do not divide into "
                                f"{segment.stripe_count} stripes")
            if isinstance(segment, CryptSegment):
                self.check_crypt(lv, segment, where)
            if isinstance(segment, KeystoreSegment):
                keystore = True
                if len(segment.areas) > 1:
                    raise self.fail(segment.raw, "areas", f"{where}: a crypt-keystore segment has at most one area")
        if keystore or lv.name.startswith("cryptostore"):  # else no keystore rule applies (most LVs)
            self.check_keystore_rules(lv, what)

    def check_crypt(self, lv: LogicalVolume, segment: CryptSegment, where: str) -> None:
        store = self.vg.lvs.get(segment.crypto_store)
        if store is None:
            raise self.fail(segment.raw, "crypto_store",
                            f"{where}: keystore '{segment.crypto_store}' does not exist")
        if not store.is_keystore:
            raise self.fail(segment.raw, "crypto_store",
                            f"{where}: '{segment.crypto_store}' is not a keystore (no crypt-keystore segment)")
        if not segment.areas:
            raise self.fail(segment.raw, "areas", f"{where}: a crypt segment needs an area")
        if len(segment.areas) > 1:
            if segment.stripe_size is None:
                raise self.fail(segment.raw, "areas", f"{where}: a crypt segment with several areas needs stripe_size")
            if segment.extent_count % len(segment.areas):
                raise self.fail(segment.raw, "extent_count", f"{where}: {segment.extent_count} extents do not "
                                f"divide into {len(segment.areas)} stripes")
        elif segment.stripe_size is not None:
            raise self.fail(segment.raw, "stripe_size", f"{where}: stripe_size needs several areas")
        if segment.sector_size is not None and segment.sector_size not in SECTOR_SIZES:
            raise self.fail(segment.raw, "sector_size",
                            f"{where}: sector_size must be one of {', '.join(map(str, SECTOR_SIZES))}")
        if segment.data_offset is not None and segment.data_offset >= segment.extent_count * self.vg.extent_size:
            raise self.fail(segment.raw, "data_offset", f"{where}: data_offset lies beyond the segment")

    def check_keystore_rules(self, lv: LogicalVolume, what: str) -> None:
        reserved = KEYSTORE_NAME.match(lv.name) is not None
        if lv.is_keystore:
            if not all(isinstance(segment, KeystoreSegment) for segment in lv.segments):
                raise self.fail(lv.raw, None, f"{what}: a keystore may only have crypt-keystore segments")
            if not reserved:
                raise self.fail(lv.raw, None, f"{what}: keystores must be named cryptostoreN")
            if lv.visible:
                raise self.fail(lv.raw, "status", f"{what}: keystores must be hidden (no VISIBLE status)")
        elif reserved:
            raise self.fail(lv.raw, None, f"{what}: the name cryptostoreN is reserved for keystores")

    def check_extents(self) -> None:
        """Every PV range inside its PV, and no PV extent used twice (but see `_shared_extents`)."""
        owners: dict[str, list[tuple[int, int, str]]] = {}
        pvs = self.vg.pvs
        for lv in self.vg.lvs.values():
            for number, segment in enumerate(lv.segments, 1):
                where = f"logical volume {lv.name}: segment{number}"
                for area, count in segment.pv_areas():
                    pv = pvs.get(area.pv)
                    if pv is None:
                        raise self.fail(segment.raw, segment.areas_key,
                                        f"{where}: physical volume '{area.pv}' does not exist")
                    end = area.extent + count
                    if end > pv.pe_count:
                        raise self.fail(segment.raw, segment.areas_key,
                                        f"{where}: extents {area.extent}-{end - 1} lie beyond "
                                        f"the {pv.pe_count} extents of {area.pv}")
                    if count:
                        ranges = owners.get(area.pv)
                        if ranges is None:
                            ranges = owners[area.pv] = []
                        ranges.append((area.extent, end, where))
        shared = self._shared_extents()
        for pv, ranges in owners.items():
            ranges.sort()
            if not any(map(gt, map(_END, ranges), map(_START, islice(ranges, 1, None)))):
                continue  # no range starts before the previous one ends (told in C: the common case)
            for (start, end, first), (next_start, _, second) in zip(ranges, ranges[1:]):
                if next_start < end:
                    if next_start == end - 1 and not shared.isdisjoint(((pv, next_start, first, second),
                                                                         (pv, next_start, second, first))):
                        continue
                    lv_name = second.split(":")[0]
                    raise MetadataError(f"{second}: extents of {pv} from {next_start} overlap {first}",
                                        self.source, self._line_of(lv_name))

    def _shared_extents(self) -> set[tuple[str, int, str, str]]:
        """The one overlap allowed: an imported LUKS volume's header end and payload start share an extent.

        The keystore's last extent may also be the first extent of the first
        area of a crypt segment that uses that keystore and skips into the
        extent with `data_offset` (the header fills the bytes before it).
        Returned as (pv, extent, keystore label, crypt segment label), the
        labels as the overlap check names them.
        """
        allowed: set[tuple[str, int, str, str]] = set()
        for lv in self.vg.lvs.values():
            segment = lv.segments[0] if lv.segments else None
            if not isinstance(segment, CryptSegment) or not segment.data_offset or len(segment.areas) != 1:
                continue
            store = self.vg.lvs.get(segment.crypto_store)
            if store is None or len(store.segments) != 1:
                continue
            keystore = store.segments[0]
            if not isinstance(keystore, KeystoreSegment) or len(keystore.areas) != 1 or not keystore.extent_count:
                continue
            last = Area(keystore.areas[0].pv, keystore.areas[0].extent + keystore.extent_count - 1)
            if last == segment.areas[0] and segment.data_offset < self.vg.extent_size:
                allowed.add((last.pv, last.extent, f"logical volume {store.name}: segment1",
                             f"logical volume {lv.name}: segment1"))
        return allowed

    def _line_of(self, lv_label: str) -> int | None:
        name = lv_label.removeprefix("logical volume ")
        lv = self.vg.lvs.get(name)
        return lv.raw.line if lv else None


def _plain_segment(segment: object, start: int) -> bool:
    """A striped segment that passes check_lv's rules (most of a big VG), told without formatting
    the message each rule would need; any other segment goes through the rules one by one."""
    return (type(segment) is StripedSegment and segment.start_extent == start  # type: ignore[attr-defined]
            and segment.extent_count > 0 and not segment.extent_count % segment.stripe_count)  # type: ignore[attr-defined]


def validate(vg: VolumeGroup, source: str | None = None) -> None:
    with gc_paused():
        _Checker(vg, source).run()


def check_lvm2_readable(vg: VolumeGroup) -> None:
    """Refuse metadata that lvm2 would reject as a whole (an LV with no extents at all)."""
    for lv in vg.lvs.values():
        if lv.extent_count == 0:
            raise MetadataError(f"logical volume {lv.name} has no extents: lvm2 would reject the whole VG "
                                "(give keystores at least one extent)", line=lv.raw.line)
