"""Tree <-> model for one volume group.

Reading checks every key the model needs (presence and type) and reports the
line; everything else stays in the objects' `raw` sections.  Writing starts
from `raw` and overwrites the known keys in place, so unknown keys keep their
position and new known keys land where lvm2 would put them.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.model import (
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    PhysicalVolume,
    Segment,
    StripedSegment,
    UnknownSegment,
    VolumeGroup,
)
from lvcrypt.metadata.segtypes import pv_ranges
from lvcrypt.metadata.tree import Section, Value

_MISSING: Any = object()
_SEGMENT_KEY = re.compile(r"segment([1-9][0-9]*)\Z")

VG_KEYS = ["id", "seqno", "format", "status", "flags", "tags", "extent_size", "max_lv", "max_pv",
           "metadata_copies", "physical_volumes", "logical_volumes"]
PV_KEYS = ["id", "device", "status", "flags", "tags", "dev_size", "pe_start", "pe_count"]
LV_KEYS = ["id", "status", "flags", "tags", "creation_time", "creation_host", "segment_count"]
SEGMENT_KEYS = ["start_extent", "extent_count", "type"]
STRIPED_KEYS = SEGMENT_KEYS + ["stripe_count", "stripe_size", "stripes"]
CRYPT_KEYS = SEGMENT_KEYS + ["crypto_store", "iv_offset", "sector_size", "data_offset", "stripe_size", "areas"]
KEYSTORE_KEYS = SEGMENT_KEYS + ["handler", "cipher", "key_size", "key_hash", "areas"]
HEADER_KEYS = ["contents", "version", "description", "creation_host", "creation_time"]


class _Fields:
    """Typed access to one section's keys, with errors that name the section and the line."""

    def __init__(self, section: Section, what: str, source: str | None):
        self.section = section
        self.what = what
        self.source = source

    def fail(self, key: str | None, problem: str) -> MetadataError:
        line = self.section.line_of(key) if key else self.section.line
        return MetadataError(f"{self.what}: {problem}", self.source, line)

    def _get(self, key: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        value = self.section.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.fail(None, f"missing '{key}'")
            return default
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(key, f"'{key}' must be {kind_name}")
        return value

    def str(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, str, "a string", default)

    def int(self, key: str, default: Any = _MISSING, minimum: int = 0) -> Any:
        value = self._get(key, int, "an integer", default)
        if isinstance(value, int) and value < minimum:
            raise self.fail(key, f"'{key}' must be at least {minimum}, not {value}")
        return value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, list, "a list of strings", default)
        if any(not isinstance(item, str) for item in value):
            raise self.fail(key, f"'{key}' must be a list of strings")
        return list(value)

    def areas(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, list, 'a list of "pv", extent pairs', default)
        if len(value) % 2 or any(not isinstance(value[i], str) or not isinstance(value[i + 1], int)
                                 or isinstance(value[i + 1], bool) or value[i + 1] < 0
                                 for i in range(0, len(value), 2)):
            raise self.fail(key, f"'{key}' must be a list of \"pv\", extent pairs")
        return [Area(value[i], value[i + 1]) for i in range(0, len(value), 2)]

    def section_of(self, key: str) -> Section:
        value = self.section.get(key, _MISSING)
        if value is _MISSING:
            raise self.fail(None, f"missing section '{key}'")
        if not isinstance(value, Section):
            raise self.fail(key, f"'{key}' must be a section")
        return value


class _Names:
    """The VG's PV keys and LV names: an area names a PV when its name is a PV key, else an LV (as lvm2 reads it)."""

    def __init__(self, pv_keys: frozenset[str] = frozenset(), lv_names: frozenset[str] = frozenset()):
        self.pv_keys = pv_keys
        self.lv_names = lv_names


def _segment(key: str, section: Section, lv: str, source: str | None, names: _Names) -> Segment:
    f = _Fields(section, f"logical volume {lv}: {key}", source)
    start = f.int("start_extent")
    count = f.int("extent_count")
    kind = f.str("type")
    if kind == "striped":
        stripe_count = f.int("stripe_count", minimum=1)
        stripes = f.areas("stripes")
        if any(area.pv not in names.pv_keys and area.pv in names.lv_names for area in stripes):
            # Striped over another LV (an LV being moved by pvmove): lvcrypt keeps it as it is.
            return UnknownSegment(start, count, kind, section, pv_ranges(kind, section, count, names.pv_keys))
        if len(stripes) != stripe_count:
            raise f.fail("stripes", f"stripe_count is {stripe_count} but {len(stripes)} stripes are listed")
        stripe_size = f.int("stripe_size", None, minimum=1)
        if stripe_count > 1 and stripe_size is None:
            raise f.fail(None, "a segment with several stripes needs 'stripe_size'")
        return StripedSegment(start, count, kind, section, stripe_count, stripe_size, stripes)
    if kind == "crypt":
        return CryptSegment(start, count, kind, section, f.str("crypto_store"), f.areas("areas"),
                            f.int("iv_offset", None), f.int("sector_size", None, minimum=512),
                            f.int("data_offset", None), f.int("stripe_size", None, minimum=1))
    if kind == "crypt-keystore":
        return KeystoreSegment(start, count, kind, section, f.str("handler"), f.str("cipher", None),
                               f.int("key_size", None, minimum=1), f.str("key_hash", None),
                               f.areas("areas", []))
    return UnknownSegment(start, count, kind, section, pv_ranges(kind, section, count, names.pv_keys))


def _lv(name: str, section: Section, source: str | None, names: _Names = _Names()) -> LogicalVolume:
    f = _Fields(section, f"logical volume {name}", source)
    segments = []
    numbers = []
    for key, child in section.sections():
        match = _SEGMENT_KEY.match(key)
        if match:
            numbers.append((int(match.group(1)), key))
            segments.append(_segment(key, child, name, source, names))
    expected = [f"segment{i}" for i in range(1, len(numbers) + 1)]
    if [key for _, key in numbers] != expected:
        raise f.fail(None, f"segments must be named segment1..segment{len(numbers)} in order")
    declared = f.int("segment_count")
    if declared != len(segments):
        raise f.fail("segment_count", f"segment_count is {declared} but {len(segments)} segments are present")
    return LogicalVolume(name, f.str("id"), f.strings("status"), f.strings("flags", []), f.strings("tags", []),
                         f.int("creation_time", None), f.str("creation_host", None), segments, section)


def _pv(key: str, section: Section, source: str | None) -> PhysicalVolume:
    f = _Fields(section, f"physical volume {key}", source)
    return PhysicalVolume(key, f.str("id"), f.str("device", None), f.strings("status"), f.strings("flags", []),
                          f.strings("tags", []), f.int("dev_size", 0), f.int("pe_start"), f.int("pe_count"), section)


def find_vg_section(tree: Section, source: str | None = None) -> tuple[str, Section]:
    """The one volume-group section of a metadata text."""
    sections = list(tree.sections())
    if len(sections) != 1:
        found = ", ".join(name for name, _ in sections) or "none"
        line = sections[1][1].line if len(sections) > 1 else None
        raise MetadataError(f"expected exactly one volume group section, found {found}", source, line)
    return sections[0]


def tree_to_vg(tree: Section, source: str | None = None) -> VolumeGroup:
    name, section = find_vg_section(tree, source)
    f = _Fields(section, f"volume group {name}", source)
    pvs_section = f.section_of("physical_volumes")
    lvs_section = section.get("logical_volumes", Section())
    if not isinstance(lvs_section, Section):
        raise f.fail("logical_volumes", "'logical_volumes' must be a section")
    pvs = {key: _pv(key, child, source) for key, child in _only_sections(pvs_section, "physical_volumes", source)}
    lv_sections = _only_sections(lvs_section, "logical_volumes", source)
    names = _Names(frozenset(pvs), frozenset(key for key, _ in lv_sections))
    lvs = {key: _lv(key, child, source, names) for key, child in lv_sections}
    header = Section((key, value) for key, value in tree.items() if not isinstance(value, Section))
    header.line = 1
    header.key_lines = {key: line for key, line in tree.key_lines.items() if key in header}
    return VolumeGroup(name, f.str("id"), f.int("seqno"), f.str("format", "lvm2"), f.strings("status"),
                       f.strings("flags", []), f.strings("tags", []), f.int("extent_size", minimum=1),
                       f.int("max_lv", 0), f.int("max_pv", 0), f.int("metadata_copies", 0), pvs, lvs,
                       section, header)


def _only_sections(section: Section, what: str, source: str | None) -> list[tuple[str, Section]]:
    for key, value in section.items():
        if not isinstance(value, Section):
            raise MetadataError(f"{what}: unexpected key '{key}' (only sections belong here)",
                                source, section.line_of(key))
    return list(section.sections())


def _merge(raw: Section, fields: dict[str, Value | None], canonical: list[str]) -> Section:
    """`raw` with `fields` written over it: None removes a key, a new key goes right after
    the nearest key that precedes it in lvm2's order (`canonical`), unknown keys stay put."""
    present = [key for key in canonical if key in raw]
    after: dict[str | None, list[str]] = {}
    for key in canonical:
        if fields.get(key) is not None and key not in raw:
            position = canonical.index(key)
            anchor = next((k for k in reversed(present) if canonical.index(k) < position), None)
            after.setdefault(anchor, []).append(key)
    out = Section(line=raw.line)
    for key in after.get(None, []):
        out[key] = fields[key]  # type: ignore[assignment]
    for key, value in raw.items():
        if key in fields:
            if fields[key] is not None:
                out[key] = fields[key]  # type: ignore[assignment]
        else:
            out[key] = value.copy() if isinstance(value, Section) else value
        for new in after.get(key, []):
            out[new] = fields[new]  # type: ignore[assignment]
    return out


def _flat(areas: list[Area]) -> list[str | int]:
    return [item for area in areas for item in (area.pv, area.extent)]


def _segment_tree(segment: Segment) -> Section:
    common: dict[str, Value | None] = {"start_extent": segment.start_extent, "extent_count": segment.extent_count,
                                       "type": segment.type}
    if isinstance(segment, StripedSegment):
        return _merge(segment.raw, {**common, "stripe_count": segment.stripe_count,
                                    "stripe_size": segment.stripe_size if segment.stripe_count > 1 else None,
                                    "stripes": _flat(segment.stripes)}, STRIPED_KEYS)
    if isinstance(segment, CryptSegment):
        return _merge(segment.raw, {**common, "crypto_store": segment.crypto_store,
                                    "iv_offset": segment.iv_offset, "sector_size": segment.sector_size,
                                    "data_offset": segment.data_offset, "stripe_size": segment.stripe_size,
                                    "areas": _flat(segment.areas)}, CRYPT_KEYS)
    if isinstance(segment, KeystoreSegment):
        return _merge(segment.raw, {**common, "handler": segment.handler, "cipher": segment.cipher,
                                    "key_size": segment.key_size, "key_hash": segment.key_hash,
                                    "areas": _flat(segment.areas) if segment.areas else None}, KEYSTORE_KEYS)
    return _merge(segment.raw, common, SEGMENT_KEYS)


def _lv_tree(lv: LogicalVolume) -> Section:
    body = _merge(Section((k, v) for k, v in lv.raw.items() if not _SEGMENT_KEY.match(k)),
                  {"id": lv.id, "status": list(lv.status), "flags": list(lv.flags), "tags": list(lv.tags) or None,
                   "creation_time": lv.creation_time, "creation_host": lv.creation_host,
                   "segment_count": len(lv.segments)}, LV_KEYS)
    for number, segment in enumerate(lv.segments, 1):
        body[f"segment{number}"] = _segment_tree(segment)
    return body


def _pv_tree(pv: PhysicalVolume) -> Section:
    return _merge(pv.raw, {"id": pv.id, "device": pv.device, "status": list(pv.status), "flags": list(pv.flags),
                           "tags": list(pv.tags) or None, "dev_size": pv.dev_size, "pe_start": pv.pe_start,
                           "pe_count": pv.pe_count}, PV_KEYS)


def default_header(description: str = "") -> Section:
    return Section(contents="Text Format Volume Group", version=1, description=description,
                   creation_host=socket.gethostname(), creation_time=int(time.time()))


def vg_to_tree(vg: VolumeGroup, vg_first: bool = False) -> Section:
    """The whole metadata tree: top-level keys and the VG section (VG first as in a metadata area)."""
    pvs = Section((key, _pv_tree(pv)) for key, pv in vg.pvs.items())
    lvs = Section((name, _lv_tree(lv)) for name, lv in vg.lvs.items())
    body = _merge(vg.raw, {"id": vg.id, "seqno": vg.seqno, "format": vg.format, "status": list(vg.status),
                           "flags": list(vg.flags), "tags": list(vg.tags) or None, "extent_size": vg.extent_size,
                           "max_lv": vg.max_lv, "max_pv": vg.max_pv, "metadata_copies": vg.metadata_copies,
                           "physical_volumes": pvs,
                           "logical_volumes": lvs if lvs or "logical_volumes" in vg.raw else None}, VG_KEYS)
    header = vg.header.copy() if vg.header else default_header()
    tree = Section(line=1)
    if vg_first:
        tree[vg.name] = body
    tree.update(header)
    if not vg_first:
        tree[vg.name] = body
    return tree

