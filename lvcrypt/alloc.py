"""Extent allocation: which PV extents a new or growing LV gets.

Works on the model only.  Free space is what no segment of any LV occupies,
including segment types lvcrypt does not manage (their areas are kept out of
reach).  Policies are lvm2's `contiguous` (each stripe in one run, continuing
the LV's last segment when extending), `normal` (first fit in PV order,
continuing the last segment when possible, any number of runs) and `cling`
(as normal, but an extension stays on the PVs of the LV's last segment).  A
policy an LV or VG lvm2 made records is applied (`policy_for`).
"""

from __future__ import annotations


from lvcrypt.conversion_record import owed_wipes
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import Area, VolumeGroup
from lvcrypt.records import dataclass

POLICIES = ("normal", "contiguous", "cling")
# lvm2's policies lvcrypt does not implement, as the one it does that gives only what they allow:
# anywhere allows whatever normal does, and same PVs (cling) are also PVs with the same tags.
_STRICTER = {"anywhere": "normal", "cling_by_tags": "cling"}


def policy_for(vg: VolumeGroup, lv_policy: str | None, given: str | None) -> str:
    """The policy lvm2 applies: `--alloc`, else the LV's own (`lvcreate --alloc`), else the VG's
    (`vgcreate --alloc`, default normal); an extension of a contiguous LV stays contiguous."""
    chosen = next((str(policy) for policy in (given, lv_policy, vg.allocation_policy)
                   if policy not in (None, "inherit")), "normal")
    return _STRICTER.get(chosen, chosen)


class AllocationError(LvcryptError):
    """Not enough free extents for the request."""


@dataclass(frozen=True)
class Run:
    """Free extents [start, start + count) on one PV."""

    pv: str
    start: int
    count: int


@dataclass(frozen=True)
class Piece:
    """One new segment's worth of space: `length` extents on each of its areas (one per stripe)."""

    length: int
    areas: tuple[Area, ...]


def free_runs(vg: VolumeGroup, pv_keys: list[str] | None = None) -> dict[str, list[Run]]:
    """Free runs per allocatable PV, in extent order; none past the end of a device smaller than its PV.

    Extents a conversion still has to wipe (lvcrypt/conversion_record.py) are free for lvm2's count
    but not given out until the wipe is done.
    """
    used = vg.used_spans()
    for area, count in owed_wipes(vg):
        used[area.pv] = sorted([*used.get(area.pv, []), (area.extent, area.extent + count)])
    runs: dict[str, list[Run]] = {}
    for key, pv in vg.pvs.items():
        if not pv.allocatable or (pv_keys is not None and key not in pv_keys):
            continue
        position = 0
        found = []
        for start, end in used.get(key, []):
            if start > position:
                found.append(Run(key, position, start - position))
            position = max(position, end)
        end = pv.pe_count if pv.usable_extents is None else min(pv.pe_count, pv.usable_extents)
        if end > position:
            found.append(Run(key, position, end - position))
        runs[key] = found
    return runs


def _take(runs: dict[str, list[Run]], pv: str, start: int, count: int) -> None:
    """Mark [start, start+count) on `pv` as used in the working free map."""
    kept = []
    for run in runs[pv]:
        if run.start <= start < run.start + run.count:
            if start > run.start:
                kept.append(Run(pv, run.start, start - run.start))
            end = run.start + run.count
            if start + count < end:
                kept.append(Run(pv, start + count, end - start - count))
        else:
            kept.append(run)
    runs[pv] = kept


def _run_at(runs: dict[str, list[Run]], pv: str, extent: int) -> Run | None:
    return next((run for run in runs.get(pv, []) if run.start == extent), None)


def allocate(vg: VolumeGroup, extents: int, stripes: int = 1, policy: str = "normal",
             pv_keys: list[str] | None = None, after: tuple[Area, ...] | None = None,
             lv_name: str | None = None) -> list[Piece]:
    """Pieces adding up to `extents` (a multiple of `stripes`), each with one area per stripe; a
    contiguous request that does not fit is refused in lvm2's words when `lv_name` is given.

    `after` is the end of the LV's last segment (the extent following each of its
    stripes): space that continues it is used first, so extending merges runs.
    """
    if policy not in POLICIES:
        raise LvcryptError(f"unknown allocation policy '{policy}' (use {' or '.join(POLICIES)})")
    if extents <= 0 or extents % stripes:
        raise LvcryptError(f"cannot allocate {extents} extents in {stripes} stripes")
    if policy == "cling" and after is not None:  # a new LV has nothing to cling to: as normal
        clinging = {area.pv for area in after}
        pv_keys = [key for key in (pv_keys if pv_keys is not None else vg.pvs) if key in clinging]
    runs = free_runs(vg, pv_keys)
    per_stripe = extents // stripes
    total_free = sum(run.count for key in runs for run in runs[key])
    if total_free < extents:
        raise AllocationError(f"insufficient free space: {extents} extents needed, only {total_free} available")
    pieces: list[Piece] = []
    if after is not None and len(after) == stripes:
        continued = [_run_at(runs, area.pv, area.extent) for area in after]
        if all(continued):
            length = min(per_stripe, *(run.count for run in continued if run))
            pieces.append(Piece(length, tuple(after)))
            for area in after:
                _take(runs, area.pv, area.extent, length)
            per_stripe -= length
    if per_stripe and policy == "contiguous":
        try:
            if after is not None:
                raise AllocationError("insufficient contiguous space to extend the LV")
            pieces.append(_contiguous(runs, per_stripe, stripes, vg))
        except AllocationError as error:
            if lv_name is None:
                raise
            raise AllocationError(f"Insufficient suitable contiguous allocatable extents for logical volume "
                                  f"{lv_name}: {per_stripe * stripes} more required") from error
        per_stripe = 0
    while per_stripe:
        piece = _next_piece(runs, per_stripe, stripes, vg)
        pieces.append(piece)
        per_stripe -= piece.length
    return pieces


def _pv_order(vg: VolumeGroup) -> dict[str, int]:
    return {key: index for index, key in enumerate(vg.pvs)}


def _contiguous(runs: dict[str, list[Run]], length: int, stripes: int, vg: VolumeGroup) -> Piece:
    chosen = []
    for key in sorted(runs, key=_pv_order(vg).__getitem__):
        fit = next((run for run in runs[key] if run.count >= length), None)
        if fit:
            chosen.append(fit)
        if len(chosen) == stripes:
            break
    if len(chosen) < stripes:
        raise AllocationError(f"insufficient contiguous space: {stripes} runs of {length} extents needed")
    for run in chosen:
        _take(runs, run.pv, run.start, length)
    return Piece(length, tuple(Area(run.pv, run.start) for run in chosen))


def _next_piece(runs: dict[str, list[Run]], remaining: int, stripes: int, vg: VolumeGroup) -> Piece:
    order = _pv_order(vg)
    if stripes == 1:
        for key in sorted(runs, key=order.__getitem__):
            if runs[key]:
                run = runs[key][0]
                length = min(run.count, remaining)
                _take(runs, key, run.start, length)
                return Piece(length, (Area(key, run.start),))
        raise AllocationError("insufficient free space")
    # Stripes go on distinct PVs: the PVs offering the longest runs, kept in PV order.
    best = sorted(((max(runs[key], key=lambda r: r.count), key) for key in runs if runs[key]),
                  key=lambda item: (-item[0].count, order[item[1]]))[:stripes]
    if len(best) < stripes:
        raise AllocationError(f"insufficient free space: {stripes} stripes need {stripes} PVs with free extents")
    best.sort(key=lambda item: order[item[1]])
    length = min(remaining, *(run.count for run, _ in best))
    for run, pv in best:
        _take(runs, pv, run.start, length)
    return Piece(length, tuple(Area(pv, run.start) for run, pv in best))


def largest_allocation(vg: VolumeGroup, extents: int, stripes: int = 1, policy: str = "normal",
                       pv_keys: list[str] | None = None) -> int:
    """The most extents, up to `extents` and a multiple of `stripes`, that `allocate` can place now.

    lvm2's approximate allocation (sizes given as N%FREE, N%VG, N%PVS): the LV gets what there
    is up to the computed size instead of failing, e.g. 100%FREE of the VG on one named PV.
    """
    low, high = 0, extents // stripes  # in whole stripes; allocate succeeds for low, fails above high
    while low < high:
        middle = (low + high + 1) // 2
        try:
            allocate(vg, middle * stripes, stripes, policy, pv_keys)
        except AllocationError:
            high = middle - 1
        else:
            low = middle
    return low * stripes
