"""LV and VG changes as functions over the model: create, extend, reduce, remove, rename.

The CLI only parses arguments, loads the VG under its lock, calls these and
commits.  Other commands (crypt LVs, keystores) build on the same functions:
`allocate_segments` gives them striped space they can turn into other
segment types.
"""

from __future__ import annotations

from typing import Callable
import time

from lvcrypt.alloc import Piece, allocate
from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.lv_checks import find_lv, refuse_unless_changeable
from lvcrypt.metadata.model import Area, CryptSegment, LogicalVolume, PhysicalVolume, Segment, VolumeGroup
from lvcrypt.metadata.segtype_crypt import crypt_segment
from lvcrypt.metadata.segtype_striped import striped_segment
from lvcrypt.metadata.segtypes import handler_of, name_taken_problem
from lvcrypt.metadata.validate import KEYSTORE_NAME, full_name_problem, name_problem, new_lv_name_problem

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
DEFAULT_STRIPE_SIZE = 128  # sectors: lvm2's 64 KiB


def new_uuid() -> str:
    """A random id in lvm2's dashed 6-4-4-4-4-4-6 form."""
    import secrets  # only commands that create something: it loads random, base64 and hmac

    raw = "".join(secrets.choice(_ID_CHARS) for _ in range(32))
    cuts = (0, 6, 10, 14, 18, 22, 26, 32)
    return "-".join(raw[a:b] for a, b in zip(cuts, cuts[1:]))


# Builds the segment for one allocated piece: (start extent in the LV, piece, stripe size).
SegmentMaker = Callable[[int, Piece, "int | None"], Segment]


def free_lv_name(vg: VolumeGroup) -> str:
    """lvm2's default name for an unnamed new LV: the first free lvolN."""
    number = 0
    while f"lvol{number}" in vg.lvs:
        number += 1
    return f"lvol{number}"


def _striped(start: int, piece: Piece, stripe_size: int | None) -> Segment:
    return striped_segment(start, list(piece.areas), piece.length, stripe_size)


def crypt_maker(keystore: str, sector_size: int | None) -> SegmentMaker:
    """Crypt segments with one keystore; striped pieces become striped crypt segments."""
    def make(start: int, piece: Piece, stripe_size: int | None) -> Segment:
        return crypt_segment(start, list(piece.areas), piece.length, keystore, stripe_size, sector_size)
    return make


def _stripe_size(segment: Segment) -> int | None:
    return handler_of(segment).stripe_size(segment)


def _maker_like(segment: Segment) -> SegmentMaker:
    """New segments like `segment` (the registry entry keeps its keystore, sector size...)."""
    def make(start: int, piece: Piece, stripe_size: int | None) -> Segment:
        return handler_of(segment).grown(segment, start, list(piece.areas), piece.length, stripe_size)
    return make


def check_stripe_size(stripe_size: int, vg: VolumeGroup) -> None:
    """lvm2's rule: a power of two, at least 4 KiB, at most the extent size."""
    if stripe_size < 8 or stripe_size & (stripe_size - 1) or stripe_size > vg.extent_size:
        raise UsageError(f"invalid stripe size {stripe_size * 512 // 1024}k: a power of two from 4k "
                         f"up to the extent size")


def create_lv(vg: VolumeGroup, name: str, extents: int, stripes: int = 1, stripe_size: int | None = None,
              policy: str = "normal", pv_keys: list[str] | None = None,
              make_segment: SegmentMaker = _striped) -> LogicalVolume:
    """A new visible LV added to `vg`: striped (linear with one stripe) unless `make_segment` says otherwise."""
    check_new_lv_name(vg.name, name)
    taken = name_taken_problem(vg, name)
    if taken:
        raise LvcryptError(taken)
    if vg.max_lv and sum(1 for lv in vg.lvs.values() if lv.visible) >= vg.max_lv:  # lvm2's vgcreate -l
        raise LvcryptError(f"Maximum number of logical volumes ({vg.max_lv}) reached in volume group {vg.name}")
    if stripes > 1:
        stripe_size = stripe_size or DEFAULT_STRIPE_SIZE
        check_stripe_size(stripe_size, vg)
    pieces = allocate(vg, extents, stripes, policy, pv_keys, lv_name=name)
    segments = []
    start = 0
    for piece in pieces:
        segments.append(make_segment(start, piece, stripe_size))
        start += piece.length * stripes
    import socket  # the creating host's name: only commands that create LVs need it

    lv = LogicalVolume(name, new_uuid(), ["READ", "WRITE", "VISIBLE"], [], [], int(time.time()),
                       socket.gethostname(), segments)
    vg.lvs[name] = lv
    return lv


def extend_lv(vg: VolumeGroup, lv: LogicalVolume, extents: int, stripes: int | None = None,
              stripe_size: int | None = None, policy: str = "normal",
              pv_keys: list[str] | None = None) -> None:
    """Add `extents` at the end, in segments like the last one (a crypt LV keeps its keystore);
    a run that continues the last segment is merged into it."""
    refuse_unless_changeable(vg, lv, "extend")
    last = lv.segments[-1] if lv.segments else None
    last_areas = handler_of(last).data_areas(last) if last is not None else []
    if last_areas is None:
        raise LvcryptError(f"logical volume {vg.name}/{lv.name}: cannot extend a {last.type} segment here")
    make_segment = _maker_like(last) if last is not None else _striped
    stripes = stripes or len(last_areas) or 1
    if stripes > 1:
        stripe_size = stripe_size or (_stripe_size(last) if last and len(last_areas) > 1 else None) \
            or DEFAULT_STRIPE_SIZE
        check_stripe_size(stripe_size, vg)
    continues = None
    if last is not None and len(last_areas) == stripes and (stripes == 1 or _stripe_size(last) == stripe_size):
        per_stripe = last.extent_count // stripes
        continues = tuple(Area(area.pv, area.extent + per_stripe) for area in last_areas)
    pieces = allocate(vg, extents, stripes, policy, pv_keys, after=continues, lv_name=lv.name)
    start = lv.extent_count
    for piece in pieces:
        if last is not None and continues is not None and piece.areas == continues:
            last.extent_count += piece.length * stripes
        else:
            last = make_segment(start, piece, stripe_size)
            lv.segments.append(last)
            continues = None
        start += piece.length * stripes


def reduce_lv(vg: VolumeGroup, lv: LogicalVolume, extents: int) -> None:
    """Drop `extents` from the end of the LV, whole segments first."""
    refuse_unless_changeable(vg, lv, "reduce")
    if extents >= lv.extent_count:
        raise LvcryptError(f"logical volume {vg.name}/{lv.name}: cannot reduce to zero or fewer extents")
    remaining = extents
    while remaining:
        last = lv.segments[-1]
        if last.extent_count <= remaining:
            lv.segments.pop()
            remaining -= last.extent_count
            continue
        if handler_of(last).data_areas(last) is None:
            raise LvcryptError(f"logical volume {vg.name}/{lv.name}: cannot cut into a {last.type} segment")
        stripes = len(last.pv_areas())
        if remaining % stripes:
            raise LvcryptError(f"logical volume {vg.name}/{lv.name}: reduce by a multiple of "
                               f"{stripes} extents (the stripe count)")
        last.extent_count -= remaining
        remaining = 0


def remove_lv(vg: VolumeGroup, name: str) -> LogicalVolume:
    lv = find_lv(vg, name)
    refuse_unless_changeable(vg, lv, "remove")
    return vg.lvs.pop(lv.name)


def rename_lv(vg: VolumeGroup, old: str, new: str) -> None:
    """The one LV rename (lvrename and the Python API): a keystore may take another keystore
    name (those are reserved otherwise), and the crypt segments using it follow the new name."""
    lv = find_lv(vg, old)
    if not (KEYSTORE_NAME.match(old) and KEYSTORE_NAME.match(new)):
        check_new_lv_name(vg.name, new)
    refuse_unless_changeable(vg, lv, "rename")
    taken = name_taken_problem(vg, new)
    if taken:
        raise LvcryptError(taken)
    lv.name = new
    vg.lvs = {(new if key == old else key): value for key, value in vg.lvs.items()}
    for other in vg.lvs.values():
        for segment in other.segments:
            if isinstance(segment, CryptSegment) and segment.crypto_store == old:
                segment.crypto_store = new


def check_new_lv_name(vg_name: str, name: str) -> None:
    """lvm2's rules for a new LV name (exit 3), checked before anything is allocated or written."""
    problem = new_lv_name_problem(name, vg_name)
    if problem:
        raise UsageError(f"invalid logical volume name: {problem}")


def check_vg_name(name: str, vg: VolumeGroup | None = None) -> None:
    """lvm2's rules for a VG name; for a rename, also with each of `vg`'s LV names (hidden ones too)."""
    problem = name_problem(name)
    if problem is None and vg is not None:
        problem = next(filter(None, (full_name_problem(name, lv) for lv in vg.lvs)), None)
    if problem:
        raise UsageError(f"invalid volume group name: {problem}")


def new_vg(name: str, extent_size: int) -> VolumeGroup:
    check_vg_name(name)
    if extent_size < 8 or extent_size & (extent_size - 1):
        raise UsageError(f"invalid physical extent size {extent_size * 512} bytes: a power of two, at least 4k")
    return VolumeGroup(name, new_uuid(), seqno=0, extent_size=extent_size)


def add_pv(vg: VolumeGroup, uuid: str, device: str, device_size: int, pe_start: int, data_end: int) -> str:
    """Add a PV (sizes in bytes) under the next free pvN key; returns the key."""
    if vg.pv_by_id(uuid):
        raise LvcryptError(f"physical volume {device} is already in volume group {vg.name}")
    pe_count = (data_end - pe_start) // vg.extent_bytes
    if pe_count < 1:
        raise LvcryptError(f"physical volume {device} is too small for one {vg.extent_bytes >> 20} MiB extent")
    number = 0
    while f"pv{number}" in vg.pvs:
        number += 1
    key = f"pv{number}"
    vg.pvs[key] = PhysicalVolume(key, uuid, device, ["ALLOCATABLE"], [], [], device_size // 512,
                                 pe_start // 512, pe_count)
    return key


def remove_pv(vg: VolumeGroup, key: str) -> None:
    users = sorted({lv.name for lv in vg.lvs.values() for segment in lv.segments
                    for area, _ in segment.pv_areas() if area.pv == key})
    if users:
        raise LvcryptError(f"physical volume {vg.pvs[key].device or key} is still used by "
                           f"{', '.join(users)}")
    if len(vg.pvs) == 1:
        raise LvcryptError(f"cannot remove the last physical volume of {vg.name} (use vgremove)")
    del vg.pvs[key]
