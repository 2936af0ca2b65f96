"""Tree <-> model for one volume group.

Reading checks every key the model needs (presence and type) and reports the
line; everything else stays in the objects' `raw` sections.  Writing starts
from `raw` and overwrites the known keys in place, so unknown keys keep their
position and new known keys land where lvm2 would put them.
"""

from __future__ import annotations

import re
import time

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.fields import Fields, Names
from lvcrypt.metadata.gc_pause import gc_paused
from lvcrypt.metadata.model import LogicalVolume, PhysicalVolume, Segment, VolumeGroup
from lvcrypt.metadata.segtypes import UNKNOWN, handler_of, segment_type
from lvcrypt.metadata.tree import Section, Value

_SEGMENT_KEY = re.compile(r"segment([1-9][0-9]*)\Z")

VG_KEYS = ["id", "seqno", "format", "status", "flags", "tags", "system_id", "lock_type", "lock_args", "extent_size",
           "max_lv", "max_pv", "allocation_policy", "profile", "metadata_copies", "physical_volumes", "logical_volumes"]
PV_KEYS = ["id", "device", "status", "flags", "tags", "dev_size", "pe_start", "pe_count"]
LV_KEYS = ["id", "status", "flags", "tags", "creation_time", "creation_host", "lock_args", "allocation_policy",
           "profile", "read_ahead", "major", "minor", "segment_count"]
SEGMENT_KEYS = ["start_extent", "extent_count", "type"]
HEADER_KEYS = ["contents", "version", "description", "creation_host", "creation_time"]


WRITE_LOCKED = "WRITE_LOCKED"


def _unlock_write(status: list[str], flags: list[str], shared: bool) -> tuple[list[str], list[str]]:
    """lvm2 writes a shared (or system-id) VG's WRITE as the flag WRITE_LOCKED (so that older lvm2,
    which knows neither, cannot change it) and reads it back as WRITE: the model of a shared VG
    holds WRITE.  System-id VGs keep their flags as read (lvcrypt changes only this host's)."""
    if not shared or WRITE_LOCKED not in flags:
        return status, flags
    flags = [flag for flag in flags if flag != WRITE_LOCKED]
    if "WRITE" not in status:
        at = status.index("READ") + 1 if "READ" in status else len(status)
        status = [*status[:at], "WRITE", *status[at:]]
    return status, flags


def _lock_write(status: list[str], flags: list[str], locked: bool) -> tuple[list[str], list[str]]:
    """The other way, when writing (lvm2's export.c): WRITE leaves status, WRITE_LOCKED leads flags."""
    if not locked or "WRITE" not in status:
        return list(status), list(flags)
    return [item for item in status if item != "WRITE"], [WRITE_LOCKED, *flags]


def _is_shared(lock_type: str | None) -> bool:
    return lock_type not in (None, "", "none")


def _segment(key: str, section: Section, lv: str, source: str | None, names: Names) -> Segment:
    f = Fields(section, ("logical volume ", lv, ": ", key), source)
    start = f.int("start_extent")
    count = f.int("extent_count")
    kind = f.str("type")
    return (segment_type(kind) or UNKNOWN).read(f, start, count, kind, names)


# The keys of an LV's first segments, in order: compared to, not formatted again for each LV.
_SEGMENT_NAMES = [[f"segment{i}" for i in range(1, count + 1)] for count in range(9)]


def _lv(name: str, section: Section, source: str | None, names: Names = Names(), shared: bool = False) -> LogicalVolume:
    f = Fields(section, ("logical volume ", name), source)
    segments = []
    keys = []
    for key, child in section.items():
        if isinstance(child, Section) and _SEGMENT_KEY.match(key):
            keys.append(key)
            segments.append(_segment(key, child, name, source, names))
    if keys != (_SEGMENT_NAMES[len(keys)] if len(keys) < len(_SEGMENT_NAMES) else
                [f"segment{i}" for i in range(1, len(keys) + 1)]):
        raise f.fail(None, f"segments must be named segment1..segment{len(keys)} in order")
    declared = f.int("segment_count")
    if declared != len(segments):
        raise f.fail("segment_count", f"segment_count is {declared} but {len(segments)} segments are present")
    status, flags = f.strings("status"), f.strings("flags", [])
    if shared:
        status, flags = _unlock_write(status, flags, shared)
    return LogicalVolume(name, f.str("id"), status, flags, f.strings("tags", []),
                         f.int("creation_time", None), f.str("creation_host", None), segments, section,
                         f.str("lock_args", None), f.str("allocation_policy", None))


def _pv(key: str, section: Section, source: str | None) -> PhysicalVolume:
    f = Fields(section, f"physical volume {key}", source)
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
    with gc_paused():
        return _tree_to_vg(tree, source)


def _tree_to_vg(tree: Section, source: str | None) -> VolumeGroup:
    name, section = find_vg_section(tree, source)
    f = Fields(section, f"volume group {name}", source)
    pvs_section = f.section_of("physical_volumes")
    lvs_section = section.get("logical_volumes", Section())
    if not isinstance(lvs_section, Section):
        raise f.fail("logical_volumes", "'logical_volumes' must be a section")
    pvs = {key: _pv(key, child, source) for key, child in _only_sections(pvs_section, "physical_volumes", source)}
    lv_sections = _only_sections(lvs_section, "logical_volumes", source)
    names = Names(frozenset(pvs), frozenset(key for key, _ in lv_sections))
    lock_type = f.str("lock_type", None)
    lvs = {key: _lv(key, child, source, names, _is_shared(lock_type)) for key, child in lv_sections}
    header = Section((key, value) for key, value in tree.items() if not isinstance(value, Section))
    header.line = 1
    header.key_lines = {key: line for key, line in tree.key_lines.items() if key in header}
    status, flags = _unlock_write(f.strings("status"), f.strings("flags", []), _is_shared(lock_type))
    return VolumeGroup(name, f.str("id"), f.int("seqno"), f.str("format", "lvm2"), status, flags,
                       f.strings("tags", []), f.int("extent_size", minimum=1), f.int("max_lv", 0),
                       f.int("max_pv", 0), f.int("metadata_copies", 0), pvs, lvs, section, header,
                       lock_type, f.str("lock_args", None), f.str("allocation_policy", None))


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


def _segment_tree(segment: Segment) -> Section:
    entry = handler_of(segment)
    common: dict[str, Value | None] = {"start_extent": segment.start_extent, "extent_count": segment.extent_count,
                                       "type": segment.type}
    return _merge(segment.raw, {**common, **entry.write(segment)}, SEGMENT_KEYS + list(entry.keys))


def _lv_tree(lv: LogicalVolume, write_locked: bool = False) -> Section:
    status, flags = _lock_write(lv.status, lv.flags, write_locked)
    body = _merge(Section((k, v) for k, v in lv.raw.items() if not _SEGMENT_KEY.match(k)),
                  {"id": lv.id, "status": status, "flags": flags, "tags": list(lv.tags) or None,
                   "creation_time": lv.creation_time, "creation_host": lv.creation_host,
                   "lock_args": lv.lock_args, "allocation_policy": lv.allocation_policy,
                   "segment_count": len(lv.segments)}, LV_KEYS)
    for number, segment in enumerate(lv.segments, 1):
        body[f"segment{number}"] = _segment_tree(segment)
    return body


def _pv_tree(pv: PhysicalVolume) -> Section:
    return _merge(pv.raw, {"id": pv.id, "device": pv.device, "status": list(pv.status), "flags": list(pv.flags),
                           "tags": list(pv.tags) or None, "dev_size": pv.dev_size, "pe_start": pv.pe_start,
                           "pe_count": pv.pe_count}, PV_KEYS)


def default_header(description: str = "") -> Section:
    import socket  # only a new VG's header names the host: socket (16M instructions) stays off the read path

    return Section(contents="Text Format Volume Group", version=1, description=description,
                   creation_host=socket.gethostname(), creation_time=int(time.time()))


def vg_to_tree(vg: VolumeGroup, vg_first: bool = False) -> Section:
    """The whole metadata tree: top-level keys and the VG section (VG first as in a metadata area)."""
    pvs = Section((key, _pv_tree(pv)) for key, pv in vg.pvs.items())
    locked = vg.shared
    lvs = Section((name, _lv_tree(lv, locked)) for name, lv in vg.lvs.items())
    status, flags = _lock_write(vg.status, vg.flags, locked)
    body = _merge(vg.raw, {"id": vg.id, "seqno": vg.seqno, "format": vg.format, "status": status,
                           "flags": flags, "tags": list(vg.tags) or None, "lock_type": vg.lock_type,
                           "lock_args": vg.lock_args, "extent_size": vg.extent_size,
                           "max_lv": vg.max_lv, "max_pv": vg.max_pv, "allocation_policy": vg.allocation_policy,
                           "metadata_copies": vg.metadata_copies,
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

