"""Encrypted LVs as changes of the model: keystores, crypt segments, and their lifetimes.

Rules (SPEC, "Metadata of encrypted LVs"): a crypt segment is a linear (or
striped) area with a key reference; a keystore is a hidden `cryptostoreN` LV
whose one segment holds the handler's data; one keystore may serve many LVs
and goes away with its last user.  What lvcrypt writes must stay readable by
lvm2, so a keystore always gets at least one extent.
"""

from __future__ import annotations

import socket
import time

from lvcrypt.alloc import Piece, allocate
from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.handlers.base import KeystoreAttrs
from lvcrypt.keystores import next_keystore_name
from lvcrypt.lvops import DEFAULT_STRIPE_SIZE, check_stripe_size, new_uuid
from lvcrypt.metadata.model import Area, CryptSegment, KeystoreSegment, LogicalVolume, VolumeGroup
from lvcrypt.metadata.validate import new_lv_name_problem

SECTOR_SIZES = (512, 1024, 2048, 4096)


def new_keystore(vg: VolumeGroup, attrs: KeystoreAttrs, area_bytes: int,
                 pv_keys: list[str] | None = None) -> LogicalVolume:
    """A hidden keystore LV big enough for `area_bytes` of handler data, in one contiguous run."""
    extents = max(1, -(-area_bytes // vg.extent_bytes))
    (piece,) = allocate(vg, extents, 1, "contiguous", pv_keys)
    segment = KeystoreSegment(0, extents, "crypt-keystore", handler=attrs.handler, cipher=attrs.cipher or None,
                              key_size=attrs.key_size or None, key_hash=attrs.key_hash, areas=list(piece.areas))
    for key, value in attrs.extra.items():
        segment.raw[key] = value
    lv = LogicalVolume(next_keystore_name(vg), new_uuid(), ["READ"], [], [], int(time.time()),
                       socket.gethostname(), [segment])
    vg.lvs[lv.name] = lv
    return lv


def _crypt_segment(start: int, piece: Piece, keystore: str, stripe_size: int | None,
                   sector_size: int | None) -> CryptSegment:
    stripes = len(piece.areas)
    return CryptSegment(start, piece.length * stripes, "crypt", crypto_store=keystore, areas=list(piece.areas),
                        stripe_size=stripe_size if stripes > 1 else None,
                        sector_size=sector_size if sector_size not in (None, 512) else None)


def create_crypt_lv(vg: VolumeGroup, name: str, extents: int, keystore: str, stripes: int = 1,
                    stripe_size: int | None = None, sector_size: int | None = None, policy: str = "normal",
                    pv_keys: list[str] | None = None) -> LogicalVolume:
    """A visible LV of crypt segments using `keystore` (which must exist)."""
    problem = new_lv_name_problem(name)
    if problem:
        raise UsageError(f"invalid logical volume name: {problem}")
    if name in vg.lvs:
        raise LvcryptError(f"logical volume {vg.name}/{name} already exists")
    store = vg.lvs.get(keystore)
    if store is None or not store.is_keystore:
        raise LvcryptError(f"keystore {vg.name}/{keystore} does not exist")
    if sector_size is not None and sector_size not in SECTOR_SIZES:
        raise UsageError(f"sector size must be one of {', '.join(map(str, SECTOR_SIZES))}")
    if stripes > 1:
        stripe_size = stripe_size or DEFAULT_STRIPE_SIZE
        check_stripe_size(stripe_size, vg)
    segments = []
    start = 0
    for piece in allocate(vg, extents, stripes, policy, pv_keys):
        segments.append(_crypt_segment(start, piece, keystore, stripe_size, sector_size))
        start += piece.length * stripes
    lv = LogicalVolume(name, new_uuid(), ["READ", "WRITE", "VISIBLE"], [], [], int(time.time()),
                       socket.gethostname(), segments)
    vg.lvs[name] = lv
    return lv


def extend_crypt_lv(vg: VolumeGroup, lv: LogicalVolume, extents: int, stripes: int | None = None,
                    stripe_size: int | None = None, policy: str = "normal",
                    pv_keys: list[str] | None = None) -> None:
    """Add crypt segments with the same keystore; IVs continue because they count from the LV start."""
    last = lv.segments[-1]
    assert isinstance(last, CryptSegment)
    stripes = stripes or len(last.areas)
    if stripes > 1:
        stripe_size = stripe_size or last.stripe_size or DEFAULT_STRIPE_SIZE
        check_stripe_size(stripe_size, vg)
    continues = None
    if len(last.areas) == stripes and (stripes == 1 or last.stripe_size == stripe_size) and not last.data_offset:
        per_stripe = last.extent_count // stripes
        continues = tuple(Area(area.pv, area.extent + per_stripe) for area in last.areas)
    start = lv.extent_count
    for piece in allocate(vg, extents, stripes, policy, pv_keys, after=continues):
        if continues is not None and piece.areas == continues:
            last.extent_count += piece.length * stripes
        else:
            last = _crypt_segment(start, piece, last.crypto_store, stripe_size, last.sector_size)
            lv.segments.append(last)
            continues = None
        start += piece.length * stripes


def orphaned_keystores(vg: VolumeGroup, removed: LogicalVolume) -> list[str]:
    """Keystores the removed LV used that no remaining LV uses: they go with it."""
    return [store for store in removed.keystores() if store in vg.lvs and not vg.users_of_keystore(store)]


def remove_lv_and_keystores(vg: VolumeGroup, name: str) -> list[str]:
    """Remove an LV and its keystores that have no other user; returns the keystores removed.

    A keystore still in use is refused: its removal would make the data of its users unreadable.
    """
    lv = vg.lvs.get(name)
    if lv is None:
        raise LvcryptError(f"logical volume {vg.name}/{name} not found")
    if lv.is_keystore:
        users = vg.users_of_keystore(name)
        if users:
            raise LvcryptError(f"keystore {vg.name}/{name} is used by {', '.join(u.name for u in users)}; "
                               "remove those LVs first")
    del vg.lvs[name]
    stores = orphaned_keystores(vg, lv)
    for store in stores:
        del vg.lvs[store]
    return stores
