"""`lvconvert --type crypt|linear`: a LUKS volume on an LV imported as a crypt LV, or exported back, committed.

`convert_luks` changes the model; this runs it in a VG transaction, with the
optional proof of a passphrase (`--verify`) before an import is committed.
"""

from __future__ import annotations


from lvcrypt.convert_luks import (
    export_luks,
    import_luks,
    inspect,
    refuse_unless_importable,
    verify_passphrase,
    wipe_old_header,
)
from lvcrypt.lv_checks import find_lv, refuse_unless_changeable
from lvcrypt.records import dataclass, field
from lvcrypt.unlock import KeySources, read_passphrase


@dataclass
class Imported:
    """What an import made: the keystore, its handler, where the payload starts, and what to warn about."""

    keystore: str
    handler: str
    payload_offset: int
    verified_slot: int | None = None
    warnings: list[str] = field(default_factory=list)


def import_luks_lv(devices: str | None, vg_name: str, lv_name: str, handler: str | None, keystore: str | None,
                   verify: KeySources | None, sysfs_root: str = "/sys") -> Imported:
    """Import the LUKS volume on VG/LV; with `verify`, a passphrase must open it before anything is committed."""
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, vg_name) as tx:
        lv = find_lv(tx.vg, lv_name)
        refuse_unless_changeable(tx.vg, lv, "convert")
        refuse_unless_importable(tx.vg, lv, sysfs_root)
        found = inspect(tx.vg, lv, tx.loaded.device_of, handler)
        slot = None
        if verify is not None:
            with read_passphrase(verify, f"Enter passphrase for {tx.vg.name}/{lv.name}: ") as passphrase:
                slot = verify_passphrase(tx.vg, lv, found, tx.loaded.device_of, passphrase)
        store = import_luks(tx.vg, lv, found, tx.loaded.device_of, keystore)
        tx.commit()
        wipe_old_header(tx.vg, lv, tx.loaded.device_of)  # a striped LV's header, now copied into the keystore
    return Imported(store.name, found.handler.name, found.payload_offset, slot, list(found.warnings))


def export_luks_lv(devices: str | None, vg_name: str, lv_name: str, sysfs_root: str = "/sys") -> str:
    """Make the crypt LV a plain LV holding the LUKS device again; returns the keystore removed."""
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, vg_name) as tx:
        lv = find_lv(tx.vg, lv_name)
        refuse_unless_changeable(tx.vg, lv, "convert")
        store = export_luks(tx.vg, lv, tx.loaded.device_of, sysfs_root)
        tx.commit()
    return store
