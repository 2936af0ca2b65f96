"""Size requests of lvcreate, lvextend and lvreduce (-L, -l N, -l N%FREE|%VG|%PVS) as extent counts.

lvm2 2.03's arithmetic (tools/lvcreate.c _update_extents_params, lib/metadata/lv_manip.c
_lvresize_*): %VG is a percentage of the VG's extents, %FREE of its free extents wherever
they are (a PV list limits where the LV goes, not the base), %PVS of the named PVs' free
extents or, with no PV named, of the VG's extents.  A percentage is an upper bound (lvm2's
approximate allocation): the LV gets what can be placed up to it.  Stripe rounding goes up
unless the VG lacks the free extents, as lvm2 decides it.  lvcrypt's stripe size is never
larger than an extent, so a whole stripe is `stripes` extents.
"""

from __future__ import annotations


from lvcrypt.alloc import largest_allocation
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.records import dataclass, field

PERCENT_BASES = ("FREE", "VG", "PVS")


@dataclass(frozen=True)
class SizeRequest:
    """-L/-l as given: a sign (relative change), and either bytes or extents (or a percentage)."""

    sign: str
    bytes: int | None = None
    extents: int | None = None
    percent_of: str | None = None


@dataclass(frozen=True)
class Sizing:
    """Extents a request stands for; `approximate`: a percentage, cut to what can be allocated now.

    `notes` are lvm2's messages about stripe rounding and capping (lvm2 prints them on stdout);
    `rounding` the line about rounding a -L size to whole extents (lvcrypt prints it on stderr).
    """

    extents: int
    approximate: bool = False
    notes: list[str] = field(default_factory=list)
    rounding: list[str] = field(default_factory=list)


def _mib(vg: VolumeGroup, extents: int) -> str:
    return f"{extents * vg.extent_bytes / 1048576:.2f} MiB"


def percent_base(vg: VolumeGroup, percent_of: str, pv_keys: list[str] | None) -> int:
    """The extent count a percentage is of, as lvm2 takes it (see the module's docstring)."""
    if percent_of == "VG":
        return vg.extent_count()
    if percent_of == "FREE":
        return vg.free_extents()
    if percent_of == "PVS":
        if pv_keys is None:
            return vg.extent_count()
        return sum(vg.free_extents(key) for key in dict.fromkeys(pv_keys))
    raise LvcryptError(f"unknown percentage base %{percent_of} (use {', '.join(PERCENT_BASES)})")


def percent_of_extents(percent: int, count: int, round_up: bool) -> int:
    """lvm2's percent_of_extents: `percent`% of `count` extents, rounded down or up."""
    return (percent * count + (99 if round_up else 0)) // 100


def _bytes_to_extents(vg: VolumeGroup, size: int, round_up: bool, notes: list[str]) -> int:
    """-L in extents: rounded up, or down when `round_up` is false (a reduction removes at most what was asked)."""
    count = size // vg.extent_bytes if not round_up else -(-size // vg.extent_bytes)
    if count * vg.extent_bytes != size:
        notes.append(f"  Rounding up size to full physical extent {_mib(vg, count)}" if round_up else
                     f"  Rounding size to boundary between physical extents: {_mib(vg, count)}.")
    return count


def _placeable(vg: VolumeGroup, extents: int, stripes: int, policy: str, pv_keys: list[str] | None) -> int:
    """lvm2's approximate allocation: what can be placed, up to `extents`; when nothing can, the
    request as it is, so that allocating it reports the shortage."""
    return largest_allocation(vg, extents, stripes, policy, pv_keys) or extents


def create_extents(request: SizeRequest, vg: VolumeGroup, stripes: int = 1,
                   pv_keys: list[str] | None = None, policy: str = "normal") -> Sizing:
    """The size of a new LV as lvcreate computes it (a multiple of `stripes`)."""
    notes: list[str] = []
    rounding: list[str] = []
    if request.bytes is not None:
        count = _bytes_to_extents(vg, request.bytes, True, rounding)
    else:
        assert request.extents is not None
        count = request.extents
    if request.percent_of:
        count = percent_of_extents(count, percent_base(vg, request.percent_of, pv_keys), False)
        free = vg.free_extents()
        if request.percent_of == "VG" and count > free:
            notes.append(f"  Reducing {request.extents}%VG to remaining free space {_mib(vg, free)} in VG.")
            count = free
        rest = count % stripes
        if rest and free < count - rest + stripes:
            notes.append(f"  Rounding size ({count} extents) down to stripe boundary size ({count - rest} extents)")
            count -= rest
    if count % stripes:
        rounded = count + stripes - count % stripes
        notes.append(f"  Rounding size {_mib(vg, count)} ({count} extents) up to stripe boundary size "
                     f"{_mib(vg, rounded)} ({rounded} extents).")
        count = rounded
    if request.percent_of and count > 0:
        count = _placeable(vg, count, stripes, policy, pv_keys)
    return Sizing(count, bool(request.percent_of), notes, rounding)


def resize_extents(request: SizeRequest, vg: VolumeGroup, existing: int, stripes: int = 1,
                   pv_keys: list[str] | None = None, policy: str = "normal") -> Sizing:
    """The new size of an LV of `existing` extents as lvextend/lvreduce compute it.

    `stripes` is the stripe count new extents get (extending); the extents added are
    rounded to whole stripes, toward the larger size unless a percentage would not fit.
    """
    notes: list[str] = []
    rounding: list[str] = []
    round_up = request.sign != "-"
    if request.bytes is not None:
        amount = _bytes_to_extents(vg, request.bytes, round_up, rounding)
    else:
        assert request.extents is not None
        amount = request.extents
    if request.percent_of:
        amount = percent_of_extents(amount, percent_base(vg, request.percent_of, pv_keys), round_up)
        if request.percent_of == "VG" and not request.sign and amount > existing + vg.free_extents():
            amount = existing + vg.free_extents()
            notes.append(f"  Reducing {request.extents}%VG to remaining free space {_mib(vg, amount)} in VG.")
    if request.sign == "+":
        target = existing + amount
    elif request.sign == "-":
        target = existing - amount  # zero or less is refused by the reduction itself
    else:
        target = amount
    added = target - existing
    rest = added % stripes if added > 0 else 0
    if rest and (not request.percent_of or vg.free_extents() >= added - rest + stripes):
        notes.append(f"  Rounding size ({target} extents) up to stripe boundary size for segment "
                     f"({target - rest + stripes} extents).")
        target += stripes - rest
    elif rest:
        notes.append(f"  Rounding size ({target} extents) down to stripe boundary size for segment "
                     f"({target - rest} extents)")
        target -= rest
    approximate = bool(request.percent_of) and (not request.sign or
                                                (request.sign == "+" and request.percent_of == "FREE"))
    if approximate and target > existing:
        target = existing + _placeable(vg, target - existing, stripes, policy, pv_keys)
    return Sizing(target, approximate, notes, rounding)
