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

from lvcrypt.alloc import allocate
from lvcrypt.crypto.spec import check_data_cipher
from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.handlers.base import KeystoreAttrs
from lvcrypt.keystores import next_keystore_name
from lvcrypt.lv_checks import refuse_unless_changeable
from lvcrypt.lvops import create_lv, crypt_maker, new_uuid
from lvcrypt.metadata.model import KeystoreSegment, LogicalVolume, VolumeGroup
from lvcrypt.metadata.validate import full_name_problem

SECTOR_SIZES = (512, 1024, 2048, 4096)


def new_keystore(vg: VolumeGroup, attrs: KeystoreAttrs, area_bytes: int,
                 pv_keys: list[str] | None = None) -> LogicalVolume:
    """A hidden keystore LV big enough for `area_bytes` of handler data, in one contiguous run.

    Its cipher must be one the userspace data path reads and writes, checked
    here, before anything is allocated or written: an LV lvcrypt cannot open
    is refused at creation, not discovered by the first `read`.
    """
    check_data_cipher(attrs.cipher, attrs.key_size)
    name = next_keystore_name(vg)
    problem = full_name_problem(vg.name, name)
    if problem:
        raise UsageError(f"no room for keystore {name}: {problem}")
    extents = max(1, -(-area_bytes // vg.extent_bytes))
    (piece,) = allocate(vg, extents, 1, "contiguous", pv_keys)
    segment = KeystoreSegment(0, extents, "crypt-keystore", handler=attrs.handler, cipher=attrs.cipher or None,
                              key_size=attrs.key_size or None, key_hash=attrs.key_hash, areas=list(piece.areas))
    for key, value in attrs.extra.items():
        segment.raw[key] = value
    lv = LogicalVolume(name, new_uuid(), ["READ"], [], [], int(time.time()), socket.gethostname(), [segment])
    vg.lvs[lv.name] = lv
    return lv


def create_crypt_lv(vg: VolumeGroup, name: str, extents: int, keystore: str, stripes: int = 1,
                    stripe_size: int | None = None, sector_size: int | None = None, policy: str = "normal",
                    pv_keys: list[str] | None = None) -> LogicalVolume:
    """A visible LV of crypt segments using `keystore` (which must exist); it extends with `lvops.extend_lv`."""
    store = vg.lvs.get(keystore)
    if store is None or not store.is_keystore:
        raise LvcryptError(f"keystore {vg.name}/{keystore} does not exist")
    if sector_size is not None and sector_size not in SECTOR_SIZES:
        raise UsageError(f"sector size must be one of {', '.join(map(str, SECTOR_SIZES))}")
    return create_lv(vg, name, extents, stripes, stripe_size, policy, pv_keys, crypt_maker(keystore, sector_size))


def orphaned_keystores(vg: VolumeGroup, removed: LogicalVolume) -> list[str]:
    """Keystores the removed LV used that no remaining LV uses: they go with it."""
    return [store for store in removed.keystores() if store in vg.lvs and not vg.users_of_keystore(store)]


def remove_lv_and_keystores(vg: VolumeGroup, name: str) -> list[str]:
    """Remove an LV and its keystores that have no other user; returns the keystores removed.

    A keystore still in use is refused: its removal would make the data of its users unreadable.
    """
    lv = vg.lvs.get(name)
    if lv is None:
        raise LvcryptError(f"Failed to find logical volume \"{vg.name}/{name}\"")
    refuse_unless_changeable(vg, lv, "remove")
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
