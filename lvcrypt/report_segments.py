"""lvm2's segment fields beyond the common ones, and `lvs --segments -o all` in lvm2's order.

A script that reads `lvs --segments -o all` (or names `region_size`, `thin_id`,
`seg_le_ranges`...) gets lvm2's columns: with --segments, lvm2's `all` is the LV
fields it reads from the metadata (not the kernel's), the VG's, then these.  Values
follow lib/report/report.c and lib/metadata/lv.c of lvm2 2.03.16 for the types lvm2
writes (raid, mirror, thin, cache, snapshot, VDO); what needs the kernel (raid data
offsets, dmeventd monitoring) is empty, as lvm2 prints it without device-mapper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lvcrypt.reportfields import Field, LvRow

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume, Segment


def _kind(segment: "Segment | None") -> str:
    return segment.type.split("+", 1)[0] if segment is not None else ""


def _parity_devs(segment: "Segment | None") -> int:
    kind = _kind(segment)
    return 2 if kind.startswith("raid6") else 1 if kind.startswith(("raid4", "raid5")) else 0


def _reshapable(segment: "Segment | None") -> bool:
    return _kind(segment).startswith(("raid4", "raid5", "raid6", "raid10"))


def _images(segment: "Segment") -> list[str]:
    """A raid segment's image LVs (`raids` alternates metadata and image), a mirror's legs."""
    from lvcrypt.metadata.lvreport import areas

    return [area.name for area in areas(segment, {})]


def _metadata_lvs(segment: "Segment") -> list[str]:
    raids = segment.raw.get("raids")
    return [name for name in raids[0::2] if isinstance(name, str)] if isinstance(raids, list) else []


def _area_count(segment: "Segment | None") -> int:
    from lvcrypt.metadata.lvreport import areas

    return len(areas(segment, {})) if segment is not None else 0


def _data_copies(row: LvRow, segment: "Segment | None") -> int:
    """lvm2's lv_raid_data_copies: raid1 keeps one copy per image, raid10 two, raid4/5/6 parity + 1."""
    kind = _kind(segment)
    if segment is None or not kind.startswith("raid"):
        return 1
    copies = segment.raw.get("data_copies")
    if isinstance(copies, int) and copies >= 2:
        return copies
    if kind.startswith("raid10"):
        return 2
    if kind.startswith("raid1"):
        return _area_count(segment)
    return _parity_devs(segment) + 1


def _first(lv: "LogicalVolume | None") -> "Segment | None":
    return lv.segments[0] if lv is not None and lv.segments else None


def _first_of(row: LvRow, name: object) -> "Segment | None":
    return _first(row.vg.lvs.get(name)) if isinstance(name, str) else None


def _data_stripes(row: LvRow) -> int:
    stripes = _area_count(row.segment) - _parity_devs(row.segment)
    return stripes // _data_copies(row, row.segment) if _kind(row.segment).startswith("raid10") else stripes


def _raid_parent_segment(row: LvRow) -> "Segment | None":
    """lvm2's _lv_for_raid_image_seg: the segment itself for raid4/5/6/10, or for the first segment
    of such a raid's image, the raid's (found by the name before the first `_`)."""
    if _reshapable(row.segment):
        return row.segment
    if row.segment is None or row.segment.start_extent or not {"raid image"} <= row.view.traits(row.lv):
        return None
    parent = row.lv.name.split("_", 1)[0] if "_" in row.lv.name else None
    return row.segment if _reshapable(_first_of(row, parent)) else None


def _reshape(row: LvRow, in_bytes: bool) -> int | str:
    segment = _raid_parent_segment(row)
    if segment is None:
        return ""
    extents = int(segment.raw.get("reshape_count", 0) or 0) * _area_count(segment)
    return extents * row.vg.extent_bytes if in_bytes else extents


def _parity_chunks(row: LvRow) -> int | str:
    segment = row.segment
    chunks = _parity_devs(segment) or _data_copies(row, segment) - 1
    if not chunks or segment is None:
        return ""
    subs = [_first_of(row, name) for name in _images(segment)]
    resilient = [sub for sub in subs if sub is not None and (_parity_devs(sub) or _data_copies(row, sub) > 1)]
    return chunks + 1 if resilient and len(resilient) == _area_count(segment) else chunks


def _sectors(segment: "Segment | None", key: str) -> int:
    value = segment.raw.get(key) if segment is not None else None
    return value * 512 if isinstance(value, int) else 0


def _cache_setting_segment(row: LvRow) -> "Segment | None":
    """Where a cached LV's settings are: its own segment with a cache volume, the cache pool's otherwise."""
    segment, kind = row.segment, _kind(row.segment)
    if kind == "cache-pool":
        return segment
    if kind == "cache" and segment is not None:
        pool = _first_of(row, segment.raw.get("cache_pool"))
        return pool if _kind(pool) == "cache-pool" else segment
    return None


def _chunk_size(row: LvRow) -> int:
    snapshot = row.view.snapshot_segment(row.lv)
    if snapshot is not None and {"snapshot exception store", "merging snapshot exception store"} & row.view.traits(
            row.lv):
        return _sectors(snapshot, "chunk_size")
    if _kind(row.segment) in ("thin-pool", "cache-pool", "vdo-pool"):
        return _sectors(row.segment, "chunk_size")
    return _sectors(_cache_setting_segment(row), "chunk_size")


def _thin_pool_segment(row: LvRow) -> "Segment | None":
    kind = _kind(row.segment)
    if kind == "thin" and row.segment is not None:
        return _first_of(row, row.segment.raw.get("thin_pool"))
    return row.segment if kind == "thin-pool" else None


def _thin_count(row: LvRow) -> int | str:
    if _kind(row.segment) != "thin-pool":
        return ""
    return sum(1 for lv in row.vg.lvs.values() for segment in lv.segments
               if _kind(segment) == "thin" and segment.raw.get("thin_pool") == row.lv.name)


def _discards(row: LvRow) -> str:
    pool = _thin_pool_segment(row)
    return str(pool.raw.get("discards", "passdown")) if pool is not None else ""


def _zero(row: LvRow) -> str:
    pool = _thin_pool_segment(row)
    if pool is None:
        return "unknown"
    return "zero" if pool.raw.get("zero_new_blocks") == 1 else ""


def _raw_number(row: LvRow, key: str, kinds: tuple[str, ...]) -> object:
    value = row.segment.raw.get(key) if _kind(row.segment) in kinds and row.segment is not None else None
    return value if isinstance(value, int) else ""


def _cache_raw(row: LvRow, key: str) -> object:
    segment = _cache_setting_segment(row)
    return segment.raw.get(key, "") if segment is not None else ""


def _metadata_format(row: LvRow) -> object:
    value = _cache_raw(row, "metadata_format")
    return value if value in (1, 2) else ""


def _le_ranges(row: LvRow, metadata: bool, marked: bool) -> list[str]:
    """lvm2's _format_pvsegs in range form: `device:first-last` for PV areas, `[lv]:0-last` for LVs
    (the sub-LV's own extents; brackets when hidden), or a raid's metadata LVs."""
    from lvcrypt.metadata.lvreport import areas

    segment = row.segment
    if segment is None:
        return []
    if metadata:
        if {"raid image"} <= row.view.traits(row.lv) or {"raid metadata"} <= row.view.traits(row.lv):
            return []
        names = _metadata_lvs(segment)
        found = [(name, 0, row.vg.lvs[name].extent_count) for name in names if name in row.vg.lvs]
    else:
        found = [(row.loaded.device_of(area.name), area.offset, area.length) if area.is_pv
                 else (area.name, 0, row.vg.lvs[area.name].extent_count if area.name in row.vg.lvs else 0)
                 for area in areas(segment, row.vg.pvs)]
    items = []
    for name, first, count in found:
        shown = row.view.display(name) if marked and name in row.vg.lvs else name
        items.append(f"{shown}:{first}-{first + count - 1}")
    return items


def _const(heading: str, value: object, right: bool = False, size: bool = False) -> Field:
    return Field(heading, lambda row: value, right=right, size=size)


def _number(heading: str, get: Callable[[LvRow], object]) -> Field:
    return Field(heading, get, right=True)


def _size(heading: str, get: Callable[[LvRow], object]) -> Field:
    return Field(heading, get, size=True, right=True)


SEG_EXTRA_FIELDS: dict[str, Field] = {
    "data_stripes": _number("#DStr", _data_stripes),
    "reshape_len": _size("RSize", lambda row: _reshape(row, True)),
    "reshape_len_le": _number("RSize", lambda row: _reshape(row, False)),
    "data_copies": _number("#Cpy", lambda row: _data_copies(row, row.segment)),
    "data_offset": _const("DOff", "", right=True),  # the kernel's raid status: none without device-mapper
    "new_data_offset": _const("NOff", "", right=True),
    "parity_chunks": _number("#Par", _parity_chunks),
    "region_size": _size("Region", lambda row: _sectors(row.segment, "region_size")
                         if _kind(row.segment).startswith(("raid", "mirror")) else 0),
    "chunk_size": _size("Chunk", _chunk_size),
    "thin_count": _number("#Thins", _thin_count),
    "discards": Field("Discards", _discards, right=False),
    "cache_metadata_format": _number("CMFmt", _metadata_format),
    "cache_mode": Field("CacheMode", lambda row: str(_cache_raw(row, "cache_mode")), right=False),
    "zero": _number("Zero", _zero),
    "transaction_id": _number("TransId", lambda row: _raw_number(row, "transaction_id", ("thin", "thin-pool"))),
    "thin_id": _number("ThId", lambda row: _raw_number(row, "device_id", ("thin",))),
    "seg_size_pe": _number("SSize", lambda row: row.segment.extent_count if row.segment else row.lv.extent_count),
    "seg_tags": Field("Seg Tags", lambda row: ",".join(sorted(str(tag) for tag in row.segment.raw.get("tags", [])))
                      if row.segment is not None and isinstance(row.segment.raw.get("tags"), list) else "",
                      right=False),
    "seg_le_ranges": Field("LE Ranges", lambda row: ",".join(_le_ranges(row, False, True)), right=False),
    "seg_metadata_le_ranges": Field("Metadata LE Ranges", lambda row: ",".join(_le_ranges(row, True, True)),
                                    right=False),
    "metadata_devices": Field("Metadata Devs", lambda row: ",".join(
        f"{item.rsplit(':', 1)[0]}({item.rsplit(':', 1)[1].split('-')[0]})" for item in _le_ranges(row, True, False)),
        right=False),
    "seg_monitor": _const("Monitor", ""),  # dmeventd's: lvcrypt monitors nothing
    "cache_policy": Field("CachePolicy", lambda row: str(_cache_raw(row, "policy")), right=False),
    "cache_settings": _const("CacheSettings", ""),
    **{name: (_size(heading, lambda row: "") if size else _number(heading, lambda row: "") if number
              else _const(heading, ""))
       for name, heading, number, size in (
           ("vdo_compression", "VDOCompression", True, False), ("vdo_deduplication", "VDODeduplication", True, False),
           ("vdo_use_metadata_hints", "VDOMetadataHints", True, False),
           ("vdo_minimum_io_size", "VDOMinimumIOSize", True, False),
           ("vdo_block_map_cache_size", "VDOBlockMapCacheSize", False, True),
           ("vdo_block_map_era_length", "VDOBlockMapEraLength", True, False),
           ("vdo_use_sparse_index", "VDOSparseIndex", True, False),
           ("vdo_index_memory_size", "VDOIndexMemorySize", False, True),
           ("vdo_slab_size", "VDOSlabSize", False, True), ("vdo_ack_threads", "VDOAckThreads", True, False),
           ("vdo_bio_threads", "VDOBioThreads", True, False), ("vdo_bio_rotation", "VDOBioRotation", True, False),
           ("vdo_cpu_threads", "VDOCPUThreads", True, False),
           ("vdo_hash_zone_threads", "VDOHashZoneThreads", True, False),
           ("vdo_logical_threads", "VDOLogicalThreads", True, False),
           ("vdo_physical_threads", "VDOPhysicalThreads", True, False),
           ("vdo_max_discard", "VDOMaxDiscard", True, False), ("vdo_write_policy", "VDOWritePolicy", False, False),
           ("vdo_header_size", "VDOHeaderSize", False, True))},
}

# lvm2's segment fields in `lvs --segments -o all` order (after the LV and VG fields).
SEG_ALL = ["segtype", "stripes", "data_stripes", "reshape_len", "reshape_len_le", "data_copies", "data_offset",
           "new_data_offset", "parity_chunks", "stripe_size", "region_size", "chunk_size", "thin_count", "discards",
           "cache_metadata_format", "cache_mode", "zero", "transaction_id", "thin_id", "seg_start", "seg_start_pe",
           "seg_size", "seg_size_pe", "seg_tags", "seg_pe_ranges", "seg_le_ranges", "seg_metadata_le_ranges",
           "devices", "metadata_devices", "seg_monitor", "cache_policy", "cache_settings", *(
               name for name in SEG_EXTRA_FIELDS if name.startswith("vdo_"))]
# The LV fields of `-o all` that lvm2 reads from the kernel (lv_kernel_major onwards): with
# --segments, lvm2's `all` leaves them out.
LV_ALL_UNTIL = "lv_kernel_major"
