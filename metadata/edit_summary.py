"""What an edit of a VG changes, in words: shown before `metadata edit` asks to commit."""

from __future__ import annotations

from lvcrypt.metadata.model import KeystoreSegment, LogicalVolume, VolumeGroup


def _areas(lv: LogicalVolume) -> list[tuple[str, int, int]]:
    return [(area.pv, area.extent, count) for segment in lv.segments for area, count in segment.pv_areas()]


def _keystore_view(lv: LogicalVolume) -> list[tuple[object, ...]]:
    return [(s.handler, s.cipher, s.key_size, s.key_hash, tuple(sorted(s.raw.items())))
            for s in lv.segments if isinstance(s, KeystoreSegment)]


def summarise(old: VolumeGroup, new: VolumeGroup) -> list[str]:
    lines = []
    for name in new.lvs.keys() - old.lvs.keys():
        lines.append(f"LV {name} added ({new.lvs[name].extent_count} extents)")
    for name in old.lvs.keys() - new.lvs.keys():
        lines.append(f"LV {name} removed")
    for name in old.lvs.keys() & new.lvs.keys():
        before, after = old.lvs[name], new.lvs[name]
        if before.extent_count != after.extent_count:
            lines.append(f"LV {name} resized from {before.extent_count} to {after.extent_count} extents")
        elif _areas(before) != _areas(after):
            lines.append(f"LV {name}: segments moved")
        if (before.is_keystore or after.is_keystore) and _keystore_view(before) != _keystore_view(after):
            lines.append(f"keystore {name} touched: its attributes changed")
        if before.keystores() != after.keystores():
            lines.append(f"LV {name} now uses keystore(s) {', '.join(after.keystores()) or 'none'}")
        if before.tags != after.tags or before.status != after.status:
            lines.append(f"LV {name}: tags or status changed")
    return sorted(lines) or ["no change to LVs (other keys changed)"]
