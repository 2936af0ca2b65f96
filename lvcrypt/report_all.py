"""The rest of lvm2's report fields, and `-o all` in lvm2's order.

Scripts that run `lvs -o all` (or name one of these fields) read the same
columns from lvcrypt as from lvm2.  Most of them describe kernel state or
features lvcrypt does not have (lvmlockd, profiles, VDO, dmeventd); lvm2 prints
them as it prints them for an inactive LV on a host without device-mapper,
which is what lvcrypt reports too.  The others come from the metadata: layout,
parent, the uuids of linked LVs, snapshot ancestry, creation time, metadata
area usage.  Field order and headings are lvm2 2.03.16's (lib/report/columns.h).
"""

from __future__ import annotations

import os
import time
from lvcrypt.records import replace
from typing import TYPE_CHECKING, Callable

from lvcrypt.reportfields import Field, LvRow, PvRow, VgRow

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.physical import PvOnDisk

MDA_HEADER_SIZE = 512


def _const(heading: str, value: object, width: int = 0, size: bool = False) -> Field:
    return Field(heading, lambda row: value, size=size, width=width)


def _first_raw(lv: "LogicalVolume", key: str) -> object:
    return lv.segments[0].raw.get(key) if lv.segments else None


def _family(row: LvRow, lv: "LogicalVolume | None" = None) -> str:
    return row.view.family(lv or row.lv) or ""


def _dm_path(row: LvRow) -> str:
    return f"/dev/mapper/{row.vg.name.replace('-', '--')}-{row.lv.name.replace('-', '--')}"


# lv_layout per segment family (lvm2's _lv_layout_and_role_*).
_LAYOUT = {"thin-pool": "thin,pool", "thin": "thin,sparse", "cache": "cache", "cache-pool": "cache,pool",
           "writecache": "writecache", "integrity": "integrity", "mirror": "mirror", "error": "error",
           "zero": "zero", "vdo": "vdo,sparse", "vdo-pool": "vdo,pool", "snapshot": "snapshot"}


def _layout(row: LvRow) -> str:
    from lvcrypt.metadata.lvreport import report_type

    family = _family(row)
    if family == "raid":
        kind = row.lv.segments[0].type.split("+", 1)[0]
        kind = {"raid5": "raid5_ls", "raid6": "raid6_zr"}.get(kind, kind)  # lvm2's default layouts
        base = kind.split("_")[0]
        words = ["raid", base]
        if kind != base:
            words.append(kind)
        return ",".join(sorted(words))
    if family in _LAYOUT:
        return _LAYOUT[family]
    if "writecache cache volume" in row.view.traits(row.lv):
        return "writecache,cachevol"
    if not family:
        return "unknown"
    kinds = {report_type(segment) for segment in row.lv.segments}
    return "striped" if "striped" in kinds else "linear"


def _parent(row: LvRow) -> str:
    """The LV a sub-LV is a component of (raid images, pool data and metadata...)."""
    from lvcrypt.metadata.lvreport import areas

    for holder in row.vg.lvs.values():
        if holder.name == row.lv.name or not holder.segments:
            continue
        family = row.view.family(holder)
        if family in ("raid", "thin-pool", "cache-pool", "mirror", "vdo-pool"):
            names = {area.name for segment in holder.segments for area in areas(segment, row.vg.pvs)}
            for key in ("metadata", "mirror_log", "meta_dev"):
                value = _first_raw(holder, key)
                if isinstance(value, str):
                    names.add(value)
            raids = _first_raw(holder, "raids")
            if isinstance(raids, list):
                names |= {name for name in raids if isinstance(name, str)}
            if row.lv.name in names:
                return row.view.display(holder.name) if family != "mirror" else holder.name
    return ""


def _uuid_of(link: str) -> Callable[[LvRow], str]:
    def get(row: LvRow) -> str:
        name = row.view.link(row.lv, link).strip("[]")
        lv = row.vg.lvs.get(name)
        return lv.id if lv is not None else ""
    return get


def _origin_size(row: LvRow) -> int | str:
    if row.view.traits(row.lv) & {"snapshot origin", "merging snapshot origin"}:
        return row.lv.extent_count * row.vg.extent_bytes
    snapshot = row.view.snapshot_segment(row.lv)
    if snapshot is None:
        return ""
    origin = row.vg.lvs.get(str(snapshot.raw.get("origin", "")))
    return origin.extent_count * row.vg.extent_bytes if origin is not None else ""


def _lv_time(row: LvRow) -> str:
    stamp = row.lv.creation_time
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(stamp))


def _read_ahead(row: LvRow) -> int | str:
    value = row.lv.raw.get("read_ahead")  # absent: auto; -1 (lvm2's "None"): no read ahead
    return max(value, 0) * 512 if isinstance(value, int) else "auto"


def _metadata_size(row: LvRow) -> int | str:
    if _family(row) not in ("thin-pool", "cache-pool"):
        return ""
    meta = row.vg.lvs.get(str(_first_raw(row.lv, "metadata")))
    return meta.extent_count * row.vg.extent_bytes if meta is not None else ""


def _modules(row: LvRow) -> str:
    family = _family(row)
    if family == "thin":
        return "thin,thin-pool"
    if family == "raid" and any(row.view.family(image) == "integrity" for image in _raid_images(row)):
        return "integrity,raid"
    if family in ("thin-pool", "raid", "mirror", "cache", "writecache", "integrity"):
        return family
    if family == "cache-pool" and "cache pool" in row.view.traits(row.lv):
        return "cache"
    if row.view.snapshot_segment(row.lv) is not None or "snapshot origin" in row.view.traits(row.lv):
        return "snapshot"
    return ""


def _raid_images(row: LvRow) -> list["LogicalVolume"]:
    raids = _first_raw(row.lv, "raids")
    names = raids[1::2] if isinstance(raids, list) else []
    return [row.vg.lvs[name] for name in names if isinstance(name, str) and name in row.vg.lvs]


def _integrity_segment(row: LvRow) -> "dict[str, object] | None":
    """The integrity settings of a raid LV (its first image's) or of an integrity image."""
    lvs = _raid_images(row) if _family(row) == "raid" else [row.lv]
    for lv in lvs:
        if row.view.family(lv) == "integrity":
            return dict(lv.segments[0].raw)
    return None


def _integrity_mode(row: LvRow) -> str:
    settings = _integrity_segment(row)
    if settings is None:
        return ""
    return {"J": "journal", "B": "bitmap"}.get(str(settings.get("mode", "J")), "")


def _integrity_block_size(row: LvRow) -> int:
    settings = _integrity_segment(row)
    value = settings.get("block_size") if settings is not None else None
    return value if isinstance(value, int) else -1


def _origin_of(row: LvRow, name: str, full: bool) -> str | None:
    """The LV `name` was snapshotted from (thin or old-style), through removed LVs when `full`."""
    from lvcrypt.metadata.segtypes import historical_lvs

    lv = row.vg.lvs.get(name)
    if lv is not None:
        if row.view.family(lv) == "thin" and isinstance(_first_raw(lv, "origin"), str):
            return str(_first_raw(lv, "origin"))
        snapshot = row.view.snapshot_segment(lv)
        if snapshot is not None:
            return str(snapshot.raw.get("origin", "")) or None
    if not full:
        return None
    for gone, section in historical_lvs(row.vg).items():
        descendants = section.get("descendants")
        if gone == name.lstrip("-") and lv is None:
            origin = section.get("origin")
            return str(origin) if isinstance(origin, str) else None
        if isinstance(descendants, list) and name in descendants:
            return "-" + gone
    return None


def ancestors_of(row: LvRow, name: str, full: bool, historical: bool = False) -> list[str]:
    """The LVs `name` descends from; removed ones (`-NAME`) only for `lvs -H` (`historical`)."""
    found: list[str] = []
    current = _origin_of(row, name, full)
    while current is not None and current not in found:
        found.append(current)
        current = _origin_of(row, current, full)
    return [ancestor for ancestor in found if historical or not ancestor.startswith("-")]


def _ancestry(descend: bool, full: bool) -> Callable[[LvRow], str]:
    def get(row: LvRow) -> str:
        if not descend:
            return ",".join(sorted(ancestors_of(row, row.lv.name, full)))
        return ",".join(sorted(other for other in row.vg.lvs
                               if other != row.lv.name and row.lv.name in ancestors_of(row, other, full)))
    return get


def _merging(row: LvRow) -> str:
    traits = row.view.traits(row.lv)
    return "merging" if traits & {"merging snapshot origin", "merging snapshot exception store",
                                  "merging thin origin", "merging thin snapshot"} else ""


def _initial_sync(row: LvRow) -> str:
    return "initial image sync" if _family(row) in ("raid", "mirror") and "NOTSYNCED" not in row.lv.status else ""


def _when_full(row: LvRow) -> str:
    if _family(row) != "thin-pool":
        return ""
    return "error" if "ERROR_WHEN_FULL" in row.lv.status else "queue"


def _flag(heading: str, word: str, status: str) -> Field:
    return Field(heading, lambda row: word if status in row.lv.status or status in row.lv.flags else "")


def _number_or(default: int, key: str) -> Callable[[LvRow], int]:
    def get(row: LvRow) -> int:
        value = _first_raw(row.lv, key)
        return value if isinstance(value, int) else default
    return get


EXTRA_LV_FIELDS: dict[str, Field] = {
    "lv_dm_path": Field("DMPath", _dm_path),
    "lv_parent": Field("Parent", _parent),
    "lv_layout": Field("Layout", _layout, width=10),
    "lv_initial_image_sync": Field("InitImgSync", _initial_sync, width=10),
    "lv_image_synced": _const("ImgSynced", ""),
    "lv_merging": Field("Merging", _merging),
    "lv_converting": _const("Converting", ""),
    "lv_allocation_policy": Field("AllocPol", lambda r: r.lv.allocation_policy or "inherit"),
    "lv_allocation_locked": _flag("AllocLock", "allocation locked", "LOCKED"),
    "lv_fixed_minor": _flag("FixMin", "fixed minor", "FIXED_MINOR"),
    "lv_skip_activation": _flag("SkipAct", "skip activation", "ACTIVATION_SKIP"),
    "lv_autoactivation": _const("AutoAct", "enabled"),
    "lv_when_full": Field("WhenFull", _when_full),
    "lv_active": _const("Active", ""),
    "lv_active_locally": _const("ActLocal", ""),
    "lv_active_remotely": _const("ActRemote", ""),
    "lv_active_exclusively": _const("ActExcl", ""),
    "lv_major": _const("Maj", -1),
    "lv_minor": _const("Min", -1),
    "lv_read_ahead": Field("Rahead", _read_ahead, size=True),
    "lv_metadata_size": Field("MSize", _metadata_size, size=True),
    "origin_uuid": Field("Origin UUID", _uuid_of("origin"), width=38),
    "origin_size": Field("OSize", _origin_size, size=True),
    "lv_ancestors": Field("Ancestors", _ancestry(False, False)),
    "lv_full_ancestors": Field("FAncestors", _ancestry(False, True)),
    "lv_descendants": Field("Descendants", _ancestry(True, False)),
    "lv_full_descendants": Field("FDescendants", _ancestry(True, True)),
    "raid_mismatch_count": _const("Mismatches", ""),
    "raid_sync_action": _const("SyncAction", ""),
    "raid_write_behind": _const("WBehind", ""),
    "raid_min_recovery_rate": _const("MinSync", ""),
    "raid_max_recovery_rate": _const("MaxSync", ""),
    "raidintegritymode": Field("IntegMode", _integrity_mode),
    "raidintegrityblocksize": Field("IntegBlkSize", _integrity_block_size),
    "integritymismatches": _const("IntegMismatches", ""),
    "move_pv_uuid": _const("Move UUID", "", width=38),
    "convert_lv_uuid": _const("Convert UUID", "", width=38),
    "mirror_log_uuid": Field("Log UUID", _uuid_of("mirror_log"), width=38),
    "data_lv_uuid": Field("Data UUID", _uuid_of("data_lv"), width=38),
    "metadata_lv_uuid": Field("Meta UUID", _uuid_of("metadata_lv"), width=38),
    "pool_lv_uuid": Field("Pool UUID", _uuid_of("pool_lv"), width=38),
    "lv_profile": _const("LProfile", ""),
    "lv_lockargs": _const("LLockArgs", ""),
    "lv_time": Field("CTime", _lv_time, key=lambda row: row.lv.creation_time or 0),
    "lv_time_removed": Field("RTime", lambda row: "", key=lambda row: 0),  # LVs that exist (lvs -H: report_history)
    "lv_modules": Field("Modules", _modules),
    "lv_historical": _const("Historical", ""),
    "writecache_block_size": Field("WCacheBlkSize", _number_or(-1, "writecache_block_size")),
    "lv_kernel_major": _const("KMaj", -1),
    "lv_kernel_minor": _const("KMin", -1),
    "lv_kernel_read_ahead": _const("KRahead", -1),
    "lv_permissions": _const("LPerms", "unknown"),
    "lv_suspended": _const("Suspended", "unknown"),
    "lv_live_table": _const("LiveTable", "unknown"),
    "lv_inactive_table": _const("InactiveTable", "unknown"),
    "lv_device_open": _const("DevOpen", "unknown"),
    "sync_percent": _const("Cpy%Sync", ""),
    "cache_total_blocks": _const("CacheTotalBlocks", ""),
    "cache_used_blocks": _const("CacheUsedBlocks", ""),
    "cache_dirty_blocks": _const("CacheDirtyBlocks", ""),
    "cache_read_hits": _const("CacheReadHits", ""),
    "cache_read_misses": _const("CacheReadMisses", ""),
    "cache_write_hits": _const("CacheWriteHits", ""),
    "cache_write_misses": _const("CacheWriteMisses", ""),
    "kernel_cache_settings": _const("KCacheSettings", ""),
    "kernel_cache_policy": _const("KCachePolicy", ""),
    "kernel_metadata_format": _const("KMFmt", ""),
    "lv_health_status": _const("Health", ""),
    "kernel_discards": _const("KDiscards", ""),
    "lv_check_needed": _const("CheckNeeded", "unknown"),
    "lv_merge_failed": _const("MergeFailed", "unknown"),
    "lv_snapshot_invalid": _const("SnapInvalid", "unknown"),
    "vdo_operating_mode": _const("VDOOperatingMode", ""),
    "vdo_compression_state": _const("VDOCompressionState", ""),
    "vdo_index_state": _const("VDOIndexState", ""),
    "vdo_used_size": _const("VDOUsedSize", ""),
    "vdo_saving_percent": _const("VDOSaving%", ""),
    "writecache_total_blocks": _const("WCacheTotalBlocks", ""),
    "writecache_free_blocks": _const("WCacheFreeBlocks", ""),
    "writecache_writeback_blocks": _const("WCacheWritebackBlocks", ""),
    "writecache_error": _const("WCacheErrors", ""),
}

# lvm2's `lvs -o all`: the LV fields, then the VG's.
LV_ALL = [
    "lv_uuid", "lv_name", "lv_full_name", "lv_path", "lv_dm_path", "lv_parent", "lv_layout", "lv_role",
    "lv_initial_image_sync", "lv_image_synced", "lv_merging", "lv_converting", "lv_allocation_policy",
    "lv_allocation_locked", "lv_fixed_minor", "lv_skip_activation", "lv_autoactivation", "lv_when_full",
    "lv_active", "lv_active_locally", "lv_active_remotely", "lv_active_exclusively", "lv_major", "lv_minor",
    "lv_read_ahead", "lv_size", "lv_metadata_size", "seg_count", "origin", "origin_uuid", "origin_size",
    "lv_ancestors", "lv_full_ancestors", "lv_descendants", "lv_full_descendants", "raid_mismatch_count",
    "raid_sync_action", "raid_write_behind", "raid_min_recovery_rate", "raid_max_recovery_rate",
    "raidintegritymode", "raidintegrityblocksize", "integritymismatches", "move_pv", "move_pv_uuid",
    "convert_lv", "convert_lv_uuid", "mirror_log", "mirror_log_uuid", "data_lv", "data_lv_uuid", "metadata_lv",
    "metadata_lv_uuid", "pool_lv", "pool_lv_uuid", "lv_tags", "lv_profile", "lv_lockargs", "lv_time",
    "lv_time_removed", "lv_host", "lv_modules", "lv_historical", "writecache_block_size", "lv_kernel_major",
    "lv_kernel_minor", "lv_kernel_read_ahead", "lv_permissions", "lv_suspended", "lv_live_table",
    "lv_inactive_table", "lv_device_open", "data_percent", "snap_percent", "metadata_percent", "copy_percent",
    "sync_percent", "cache_total_blocks", "cache_used_blocks", "cache_dirty_blocks", "cache_read_hits",
    "cache_read_misses", "cache_write_hits", "cache_write_misses", "kernel_cache_settings",
    "kernel_cache_policy", "kernel_metadata_format", "lv_health_status", "kernel_discards", "lv_check_needed",
    "lv_merge_failed", "lv_snapshot_invalid", "vdo_operating_mode", "vdo_compression_state", "vdo_index_state",
    "vdo_used_size", "vdo_saving_percent", "writecache_total_blocks", "writecache_free_blocks",
    "writecache_writeback_blocks", "writecache_error", "lv_attr",
]


def _mda_free(mdas: list[object]) -> int:
    """lvm2's free metadata space: half the area (a copy may take no more) less the committed text."""
    free = []
    for mda in mdas:
        header = getattr(mda, "header", None)
        if header is None:
            continue
        limit = (header.size - MDA_HEADER_SIZE) // 2 - 512
        used = header.committed.size
        free.append(0 if used >= limit else (limit - used) // 512 * 512)
    return min(free, default=0)


def _vg_mdas(row: VgRow | LvRow) -> list[object]:
    return [mda for pv in row.loaded.pvs.values() for mda in pv.mdas]


def _vg_fields() -> dict[str, Field]:
    from lvcrypt.reportfields import VG_FIELDS

    def writable(row: VgRow) -> str:
        return "writeable" if str(VG_FIELDS["vg_attr"].get(row)).startswith("w") else "read-only"

    def system_id(row: VgRow) -> str:
        return str(row.vg.raw.get("system_id", "") or "")

    return {
        "vg_fmt": _const("Fmt", "lvm2"),
        "vg_permissions": Field("VPerms", writable),
        "vg_extendable": Field("Extendable", lambda r: "extendable" if "RESIZEABLE" in r.vg.status else ""),
        "vg_exported": Field("Exported", lambda r: "exported" if "EXPORTED" in r.vg.status else ""),
        "vg_autoactivation": Field("AutoAct", lambda r: "" if "NOAUTOACTIVATE" in r.vg.flags else "enabled"),
        "vg_partial": Field("Partial", lambda r: "partial" if r.loaded.missing else ""),
        "vg_allocation_policy": Field("AllocPol", lambda r: r.vg.allocation_policy or "normal"),
        "vg_clustered": Field("Clustered", lambda r: "clustered" if "CLUSTERED" in r.vg.status else ""),
        "vg_shared": Field("Shared", lambda r: "shared" if r.vg.raw.get("lock_type") else ""),
        "vg_sysid": Field("SYS ID", system_id),
        "vg_systemid": Field("System ID", system_id),
        "vg_lock_type": Field("LockType", lambda r: str(r.vg.raw.get("lock_type", "") or "")),
        "vg_lock_args": Field("VLockArgs", lambda r: str(r.vg.raw.get("lock_args", "") or "")),
        "vg_missing_pv_count": Field("#PV Missing", lambda r: len(r.loaded.missing)),
        "vg_profile": Field("VProfile", lambda r: str(r.vg.raw.get("profile", "") or "")),
        "vg_mda_used_count": Field("#VMdaUse", lambda r: sum(1 for m in _vg_mdas(r) if not getattr(
            getattr(m, "header", None), "committed", None) or not m.header.committed.ignored)),
        "vg_mda_free": Field("VMdaFree", lambda r: _mda_free(_vg_mdas(r)), size=True, width=9),
        "vg_mda_size": Field("VMdaSize", lambda r: min((m.locn.size for m in _vg_mdas(r)), default=0),
                             size=True, width=9),
        "vg_mda_copies": Field("#VMdaCps", lambda r: r.vg.raw.get("metadata_copies") or "unmanaged"),
    }


EXTRA_VG_FIELDS = _vg_fields()
VG_ALL = ["vg_fmt", "vg_uuid", "vg_name", "vg_attr", "vg_permissions", "vg_extendable", "vg_exported",
          "vg_autoactivation", "vg_partial", "vg_allocation_policy", "vg_clustered", "vg_shared", "vg_size",
          "vg_free", "vg_sysid", "vg_systemid", "vg_lock_type", "vg_lock_args", "vg_extent_size",
          "vg_extent_count", "vg_free_count", "max_lv", "max_pv", "pv_count", "vg_missing_pv_count", "lv_count",
          "snap_count", "vg_seqno", "vg_tags", "vg_profile", "vg_mda_count", "vg_mda_used_count", "vg_mda_free",
          "vg_mda_size", "vg_mda_copies"]


def _device_number(row: PvRow, part: Callable[[int], int]) -> str:
    try:
        status = os.stat(row.path)
    except OSError:
        return ""
    return str(part(status.st_rdev)) if status.st_rdev else ""


def _pv_on_disk(row: PvRow) -> "PvOnDisk | None":
    return row.pv


def _ba(row: PvRow, attribute: str) -> int:
    pv = _pv_on_disk(row)
    areas = pv.header.bootloader_areas if pv is not None else []
    return getattr(areas[0], attribute) if areas else 0


EXTRA_PV_FIELDS: dict[str, Field] = {
    "pv_major": Field("Maj", lambda r: _device_number(r, os.major)),
    "pv_minor": Field("Min", lambda r: _device_number(r, os.minor)),
    "pv_mda_free": Field("PMdaFree", lambda r: _mda_free(r.pv.mdas) if r.pv else 0, size=True, width=9),
    "pv_ext_vsn": Field("PExtVsn", lambda r: r.pv.header.ext_version if r.pv else ""),
    "pv_allocatable": Field("Allocatable", lambda r: "allocatable" if r.vg is not None and r.key is not None
                            and r.vg.pvs[r.key].allocatable else ""),
    "pv_exported": Field("Exported", lambda r: "exported" if r.vg is not None and "EXPORTED" in r.vg.status
                         else ""),
    "pv_missing": Field("Missing", lambda r: "missing" if r.vg is not None and r.pv is None else ""),
    "pv_mda_used_count": Field("#PMdaUse", lambda r: sum(1 for m in r.pv.mdas if m.header is None
                                                          or not m.header.committed.ignored) if r.pv else 0),
    "pv_ba_start": Field("BA Start", lambda r: _ba(r, "offset"), size=True),
    "pv_ba_size": Field("BA Size", lambda r: _ba(r, "size"), size=True),
    "pv_in_use": Field("PInUse", lambda r: "used" if r.vg is not None or (r.pv and r.pv.header.in_use) else ""),
    "pv_duplicate": _const("Duplicate", ""),
    "pv_device_id": Field("DeviceID", lambda r: str(r.vg.pvs[r.key].raw.get("device_id", "") or "")
                          if r.vg is not None and r.key is not None else ""),
    "pv_device_id_type": Field("DeviceIDType", lambda r: str(r.vg.pvs[r.key].raw.get("device_id_type", "") or "")
                               if r.vg is not None and r.key is not None else ""),
}
# lvm2's column widths wider than the heading, and its numeric fields (right-aligned even when
# they print words, as `allocatable`), for the fields above (lib/report/columns.h).
_WIDTHS = {"lv_image_synced": 10, "lv_merging": 10, "lv_allocation_policy": 10, "lv_allocation_locked": 10,
           "lv_fixed_minor": 10, "lv_skip_activation": 15, "lv_when_full": 15, "lv_active_locally": 10,
           "lv_active_remotely": 10, "lv_active_exclusively": 10, "lv_time": 26, "lv_time_removed": 26,
           "lv_permissions": 8, "lv_suspended": 10, "lv_live_table": 20, "lv_inactive_table": 20,
           "lv_device_open": 10, "cache_used_blocks": 16, "cache_read_hits": 16, "cache_read_misses": 16,
           "cache_write_hits": 16, "kernel_cache_settings": 18, "kernel_cache_policy": 18, "lv_health_status": 15,
           "lv_check_needed": 15, "lv_merge_failed": 15, "lv_snapshot_invalid": 15, "vg_permissions": 10,
           "vg_exported": 10, "vg_partial": 10, "vg_allocation_policy": 10, "vg_clustered": 10, "vg_shared": 7,
           "pv_exported": 10, "pv_missing": 10}
_LEFT = {"lv_dm_path", "lv_parent", "lv_layout", "lv_allocation_policy", "lv_when_full", "origin_uuid",
         "lv_ancestors", "lv_full_ancestors", "lv_descendants", "lv_full_descendants", "raid_sync_action",
         "raidintegritymode", "move_pv_uuid", "convert_lv_uuid", "mirror_log_uuid", "data_lv_uuid",
         "metadata_lv_uuid", "pool_lv_uuid", "lv_profile", "lv_lockargs", "lv_time", "lv_time_removed",
         "lv_modules", "lv_permissions", "kernel_cache_settings", "kernel_cache_policy", "lv_health_status",
         "kernel_discards", "vdo_operating_mode", "vdo_compression_state", "vdo_index_state", "vg_fmt",
         "vg_permissions", "vg_allocation_policy", "vg_sysid", "vg_systemid", "vg_lock_type", "vg_lock_args",
         "vg_profile", "pv_major", "pv_minor", "pv_device_id", "pv_device_id_type"}


def _laid_out(fields: dict[str, Field]) -> dict[str, Field]:
    return {name: replace(field, width=_WIDTHS.get(name, field.width), right=name not in _LEFT)
            for name, field in fields.items()}


EXTRA_LV_FIELDS = _laid_out(EXTRA_LV_FIELDS)
EXTRA_VG_FIELDS = _laid_out(EXTRA_VG_FIELDS)
EXTRA_PV_FIELDS = _laid_out(EXTRA_PV_FIELDS)
PV_ALL = ["pv_fmt", "pv_uuid", "dev_size", "pv_name", "pv_major", "pv_minor", "pv_mda_free", "pv_mda_size",
          "pv_ext_vsn", "pe_start", "pv_size", "pv_free", "pv_used", "pv_attr", "pv_allocatable", "pv_exported",
          "pv_missing", "pv_pe_count", "pv_pe_alloc_count", "pv_tags", "pv_mda_count", "pv_mda_used_count",
          "pv_ba_start", "pv_ba_size", "pv_in_use", "pv_duplicate", "pv_device_id", "pv_device_id_type"]
