"""The extent mover's model side: which chunk comes next, where it goes, and the LV's segments after it.

Every step of `lvconvert --encrypt|--decrypt|--reencrypt` and `pvmove` is one
chunk of an LV given new extents: the data is written into extents that are
free in the committed metadata, then one commit points the chunk at them and
frees the old ones.  A crash before the commit leaves the old data untouched;
after it, the new mapping holds.  This module only changes the model: cutting
segments at chunk boundaries, replacing the chunk, merging neighbours that
continue each other (so a finished LV has as few segments as a fresh one).
The data copy and the commits are the services' (lvcrypt/lv_conversion.py,
lvcrypt/pv_move.py).

A segment's *form* is what its data is: None for plain (striped, linear) data,
else the name of the keystore whose key encrypts it.  IVs count from the LV
start, so a crypt segment can be cut or moved without touching its data.
"""

from __future__ import annotations

from typing import Callable

from lvcrypt.alloc import AllocationError, allocate
from lvcrypt.conversion_record import read_conversion
from lvcrypt.errors import LvcryptError
from lvcrypt.inuse import kernel_active, userspace_mountpoint
from lvcrypt.lv_checks import refuse_unless_changeable
from lvcrypt.metadata.model import (
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    Segment,
    StripedSegment,
    VolumeGroup,
)
from lvcrypt.metadata.tree import Section
from lvcrypt.records import dataclass, replace


class MoveRefused(LvcryptError):
    """The LV or PV cannot be moved or converted as asked; nothing was written."""


@dataclass(frozen=True)
class Chunk:
    """LV extents [start, start + count) and the runs of free extents that will hold them, in order."""

    start: int
    count: int
    targets: tuple[tuple[Area, int], ...]


@dataclass(frozen=True)
class AreaMove:
    """`count` extents copied as they are from `source` to `target` (pvmove: no key needed)."""

    source: Area
    target: Area
    count: int


def form_of(segment: Segment) -> str | None:
    if isinstance(segment, CryptSegment):
        return segment.crypto_store
    if isinstance(segment, StripedSegment):
        return None
    raise MoveRefused(f"segment type '{segment.type}' is not moved or converted by lvcrypt; use lvm2")


def _areas(segment: Segment) -> list[Area]:
    if isinstance(segment, StripedSegment):
        return segment.stripes
    if isinstance(segment, (CryptSegment, KeystoreSegment)):
        return segment.areas
    raise MoveRefused(f"segment type '{segment.type}' is not moved or converted by lvcrypt; use lvm2")


def _with_areas(segment: Segment, start: int, count: int, areas: list[Area]) -> Segment:
    """A copy of `segment` over other extents (its unknown keys kept)."""
    if isinstance(segment, StripedSegment):
        return replace(segment, start_extent=start, extent_count=count, stripes=list(areas))
    return replace(segment, start_extent=start, extent_count=count, areas=list(areas))


def check_movable(vg: VolumeGroup, lv: LogicalVolume) -> None:
    """Refuse, before anything is written, an LV whose segments the mover cannot cut or move."""
    for segment in lv.segments:
        if isinstance(segment, KeystoreSegment):
            continue
        form_of(segment)
        if isinstance(segment, CryptSegment) and segment.data_offset:
            raise MoveRefused(f"{vg.name}/{lv.name}: an imported LUKS volume's payload starts inside its first "
                              "segment (after its header's extent or, on a striped LV, its header's old rows); "
                              "export it first (lvconvert --type linear)")


def check_live(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str = "/sys") -> bool:
    """Whether the LV is active in the kernel, so that each chunk is switched under its running device;
    refuses, before anything is written, an LV lvcrypt may not change or one served in userspace (the
    FUSE server maps extents itself: nothing could switch them under it)."""
    refuse_unless_changeable(vg, lv, "convert")
    mountpoint = userspace_mountpoint(vg, lv)
    if mountpoint is not None:
        raise MoveRefused(f"cannot move or convert {vg.name}/{lv.name}: it is mounted with lvcrypt mount at "
                          f"{mountpoint} (in userspace, where nothing can switch its extents under it); unmount "
                          "it, or activate it in the kernel (lvchange -ay) to convert it online")
    return kernel_active(vg, lv, sysfs_root)


def split_at(lv: LogicalVolume, extent: int) -> None:
    """Make LV extent `extent` a segment boundary (on a stripe boundary for striped segments)."""
    for index, segment in enumerate(lv.segments):
        offset = extent - segment.start_extent
        if 0 < offset < segment.extent_count:
            areas = _areas(segment)
            if offset % len(areas):
                raise MoveRefused(f"cannot cut a {len(areas)}-stripe segment at extent {extent}")
            per_area = offset // len(areas)
            head = _with_areas(segment, segment.start_extent, offset, areas)
            tail = _with_areas(segment, extent, segment.extent_count - offset,
                               [Area(area.pv, area.extent + per_area) for area in areas])
            lv.segments[index:index + 1] = [head, tail]
            return


def _continues(first: Segment, second: Segment) -> bool:
    if type(first) is not type(second) or isinstance(first, KeystoreSegment):
        return False
    if isinstance(first, CryptSegment) and isinstance(second, CryptSegment):
        same = (first.crypto_store, first.iv_offset, first.sector_size, first.stripe_size) == \
            (second.crypto_store, second.iv_offset, second.sector_size, second.stripe_size)
        if not same or second.data_offset:
            return False
    if isinstance(first, StripedSegment) and isinstance(second, StripedSegment):
        if (first.stripe_count, first.stripe_size) != (second.stripe_count, second.stripe_size):
            return False
    a, b = _areas(first), _areas(second)
    per_area = first.extent_count // len(a)
    return len(a) == len(b) and all(x.pv == y.pv and x.extent + per_area == y.extent for x, y in zip(a, b))


def merge_segments(lv: LogicalVolume) -> None:
    """Join neighbours whose areas continue each other with the same form and layout."""
    merged: list[Segment] = []
    for segment in lv.segments:
        if merged and _continues(merged[-1], segment):
            last = merged[-1]
            merged[-1] = _with_areas(last, last.start_extent, last.extent_count + segment.extent_count, _areas(last))
        else:
            merged.append(segment)
    lv.segments = merged


def in_form(lv: LogicalVolume, form: str | None) -> int:
    """How many of the LV's extents are in `form` (the conversion's progress)."""
    return sum(segment.extent_count for segment in lv.segments if form_of(segment) == form)


def _end_of_previous(lv: LogicalVolume, index: int, target: str | None) -> tuple[Area, ...] | None:
    """Where the segment before `index` ends, when it is linear and already in the target form: the
    chunk continues it there if those extents are free, so the converted LV stays in few segments."""
    if index == 0 or form_of(lv.segments[index - 1]) != target:
        return None
    previous = lv.segments[index - 1]
    areas = _areas(previous)
    if len(areas) != 1:
        return None
    return (Area(areas[0].pv, areas[0].extent + previous.extent_count),)


def next_chunk(vg: VolumeGroup, lv: LogicalVolume, source: str | None, target: str | None, chunk_extents: int,
               pv_keys: list[str] | None = None) -> Chunk | None:
    """The next run of the LV still in the `source` form, at most `chunk_extents` long (a whole number of
    stripes), with free extents for it; None when nothing is left."""
    for index, segment in enumerate(lv.segments):
        if form_of(segment) != source:
            continue
        stripes = len(_areas(segment))
        count = min(segment.extent_count, -(-chunk_extents // stripes) * stripes)
        try:
            pieces = allocate(vg, count, 1, "normal", pv_keys, _end_of_previous(lv, index, target))
        except AllocationError:
            free = sum(vg.free_extents(key) for key in vg.pvs if pv_keys is None or key in pv_keys)
            raise MoveRefused(f"insufficient free extents in {vg.name}: one chunk of {lv.name} needs {count} "
                              f"free extents, {free} are free (use a smaller --chunk-size or vgextend)") from None
        return Chunk(segment.start_extent, count, tuple((piece.areas[0], piece.length) for piece in pieces))
    return None


def _new_segment(template: Segment, form: str | None, start: int, count: int, area: Area) -> Segment:
    if form is None:
        return StripedSegment(start, count, "striped", Section(), 1, None, [area])
    sector_size = template.sector_size if isinstance(template, CryptSegment) and template.crypto_store == form else None
    return CryptSegment(start, count, "crypt", Section(), crypto_store=form, areas=[area], sector_size=sector_size)


def uncovered(ranges: list[tuple[Area, int]], covers: tuple[tuple[Area, int], ...] | list[tuple[Area, int]]
              ) -> list[tuple[Area, int]]:
    """The parts of the extent `ranges` that no range of `covers` overlaps, in order."""
    out = []
    for area, count in ranges:
        pieces = [(area.extent, area.extent + count)]
        for cover, length in covers:
            if cover.pv != area.pv:
                continue
            cut = (cover.extent, cover.extent + length)
            pieces = [part for start, end in pieces
                      for part in ((start, min(end, cut[0])), (max(start, cut[1]), end)) if part[0] < part[1]]
        out.extend((Area(area.pv, start), end - start) for start, end in pieces)
    return out


def convert_chunk(lv: LogicalVolume, chunk: Chunk, target: str | None) -> list[tuple[Area, int]]:
    """Point the chunk at its new extents in the `target` form; returns the PV ranges it freed."""
    split_at(lv, chunk.start)
    split_at(lv, chunk.start + chunk.count)
    end = chunk.start + chunk.count
    old = [index for index, segment in enumerate(lv.segments) if chunk.start <= segment.start_extent < end]
    freed = [pair for index in old for pair in lv.segments[index].pv_areas()]
    template = lv.segments[old[0]]
    new: list[Segment] = []
    position = chunk.start
    for area, count in chunk.targets:
        new.append(_new_segment(template, target, position, count, area))
        position += count
    lv.segments[old[0]:old[-1] + 1] = new
    merge_segments(lv)
    return freed


def next_area_move(vg: VolumeGroup, lv: LogicalVolume, source_pv: str, chunk_extents: int,
                   pv_keys: list[str], name_of: Callable[[str], str] = str) -> AreaMove | None:
    """Plan (in the model) the move of the LV's next run on `source_pv` into `pv_keys`; None when none is left.

    A keystore's one segment moves whole; other segments are cut so that the run moved is one area
    of one segment (a striped segment keeps its other stripes where they are).  As lvm2's allocator
    (the parallel areas of lib/metadata/lv_manip.c), a stripe never goes to a PV another stripe of its
    segment uses: two stripes on one PV would halve the segment's throughput and lose both to one disk.
    """
    for index, segment in enumerate(lv.segments):
        areas = _areas(segment)
        which = next((number for number, area in enumerate(areas) if area.pv == source_pv), None)
        if which is None:
            continue
        stripes = len(areas)
        per_area = segment.extent_count // stripes
        whole = isinstance(segment, KeystoreSegment)
        wanted = per_area if whole else min(per_area, chunk_extents)
        others = {area.pv for number, area in enumerate(areas) if number != which}
        allowed = [key for key in pv_keys if key not in others]
        try:
            if not allowed:
                raise AllocationError("no PV")
            pieces = allocate(vg, wanted, 1, "contiguous" if whole else "normal", allowed)
        except AllocationError:
            raise MoveRefused(_no_room(vg, lv, segment, wanted, allowed, sorted(map(name_of, others)))) from None
        target, length = pieces[0].areas[0], pieces[0].length
        if length < per_area:
            split_at(lv, segment.start_extent + length * stripes)
            segment = lv.segments[index]
        moved = areas[which]
        new_areas = list(_areas(segment))
        new_areas[which] = target
        lv.segments[index] = _with_areas(segment, segment.start_extent, segment.extent_count, new_areas)
        merge_segments(lv)
        return AreaMove(moved, target, length)
    return None


def _no_room(vg: VolumeGroup, lv: LogicalVolume, segment: Segment, wanted: int, allowed: list[str],
             others: list[str]) -> str:
    """The refusal naming what the move needs: free extents, on a PV none of the segment's other stripes use."""
    need = f"moving {lv.name} needs {wanted} free extents on the destination PVs"
    if not others:
        return f"insufficient free extents: {need}"
    free = sum(vg.free_extents(key) for key in allowed)
    return (f"insufficient suitable free extents: {need}, on a PV other than {', '.join(others)} "
            f"(the other stripes of its {len(_areas(segment))}-stripe segment at extent {segment.start_extent}; "
            f"{free} free on the others: name or add one more PV)")


def conversion_progress(lv: LogicalVolume) -> tuple[str, float] | None:
    """The conversion in progress on `lv` (its action, "abort encrypt" while aborting) and the percentage
    of the LV already in its target form; None when there is none (or only owed wipes are left)."""
    record = read_conversion(lv)
    if record is None or not lv.extent_count:
        return None
    try:
        done = in_form(lv, record.target)
    except MoveRefused:
        return None
    return ("abort " if record.aborting else "") + record.action, 100.0 * done / lv.extent_count
