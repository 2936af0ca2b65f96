"""Creating an encrypted LV (`lvcreate --encrypt`): the keystore formatted on disk, the LV in the model.

The keystore's header is written into extents that are still free in the
committed metadata, so a failure before the commit leaves nothing visible.
Wiping a new LV (random data through the mapping) lives here too: it is the
one thing `--wipe` adds after the commit.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from lvcrypt.activation import build_lv_table
from lvcrypt.cryptlv import create_crypt_lv, new_keystore
from lvcrypt.errors import UsageError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FormatOptions
from lvcrypt.keycache import KeyCache
from lvcrypt.keystore_admin import KeystoreRequest, pbkdf_request
from lvcrypt.keystores import KeystoreSessions, close_area, open_area
from lvcrypt.lv_checks import refuse_change
from lvcrypt.records import dataclass
from lvcrypt.unlock import KeySources, read_passphrase, unlock_lv

if TYPE_CHECKING:
    from lvcrypt.handlers.secret import Secret
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction

WIPE_CHUNK = 4 << 20


@dataclass(frozen=True)
class EncryptedLvRequest:
    """How the new LV is encrypted: an existing keystore (`--keystore`) or a new one described by `new`."""

    keystore: str | None = None
    new: KeystoreRequest = KeystoreRequest()
    sector_size: int | None = None


def create_encrypted(tx: "VgTransaction", name: str, extents: int, stripes: int, stripe_size: int | None,
                     policy: str, pv_keys: list[str] | None, request: EncryptedLvRequest,
                     sources: KeySources) -> tuple["LogicalVolume", "Secret | None"]:
    """Add an encrypted LV (and a new keystore unless one is named) to tx.vg; format the keystore on disk.

    Returns the LV and, for a new keystore, its volume key (the caller wipes it).
    """
    vg = tx.vg
    if request.keystore:
        if request.new.handler or request.new.cipher or request.new.key_bits or request.new.pbkdf:
            raise UsageError("--keystore reuses a keystore: --handler, --cipher, --key-size, --pbkdf do not apply")
        lv = create_crypt_lv(vg, name, extents, request.keystore, stripes, stripe_size, request.sector_size,
                             policy, pv_keys)
        return lv, None
    new = request.new
    handler = registry.get(new.handler or registry.DEFAULT)
    attrs = handler.new_attrs(new.cipher, new.key_bits, new.hash)
    options = FormatOptions(pbkdf=pbkdf_request(handler, new),
                            sector_size=request.sector_size or handler.default_sector_size, data_offset=0)
    store = new_keystore(vg, attrs, handler.area_size(attrs, options), pv_keys)
    lv = create_crypt_lv(vg, name, extents, store.name, stripes, stripe_size, request.sector_size, policy, pv_keys)
    area = open_area(vg, store.name, tx.loaded.device_of, writable=True)
    try:
        with read_passphrase(sources, "Enter passphrase for the new LV: ", verify=True) as passphrase:
            key = handler.format(area, attrs, passphrase, options)
    finally:
        close_area(area)
    segment = store.segments[0]
    for attr, value in attrs.extra.items():
        segment.raw[attr] = value
    return lv, key


def wipe_lv(tx: "VgTransaction", lv_name: str, key: "Secret | None", sources: KeySources,
            sysfs_root: str = "/sys", progress: Callable[[int, int], None] | None = None) -> None:
    """Random data through the mapping, so the new LV shows no old plaintext.

    Takes ownership of `key` (the new keystore's); without one the LV's
    keystore is unlocked.  `progress(bytes done, size)` follows each chunk.
    """
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.command_mode import test_mode

    refuse_change(tx.vg, tx.vg.lvs[lv_name], "data-write", sysfs_root)
    if test_mode():  # -t wrote no keystore to unlock, and would write none of this data anyway
        if key is not None:
            key.close()
        return
    with KeyCache() as keys, KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        if key is not None:
            keys.put(tx.vg.lvs[lv_name].keystores()[0], key)
        else:
            unlock_lv(tx, lv_name, keys, sources, sessions)
        with Stack(build_lv_table(tx, lv_name, sessions), keys, writable=True) as stack:
            for offset in range(0, stack.size, WIPE_CHUNK):
                stack.write(offset, os.urandom(min(WIPE_CHUNK, stack.size - offset)))
                if progress is not None:
                    progress(min(offset + WIPE_CHUNK, stack.size), stack.size)
            stack.sync()
