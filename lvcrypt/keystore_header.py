"""Whole-header actions on a keystore, as cryptsetup's luksHeaderBackup, luksHeaderRestore, luksErase, config.

A backup holds what cryptsetup's holds: the header copies and the keyslots
area, zero-padded to a 4096-byte page, in a new file readable by its owner
only.  A restore writes those bytes back only over a keystore of the same
UUID and layout (or one too damaged to say), after a confirmation.  Erasing
destroys every keyslot; the LVs using the keystore are named first, since
their data becomes unreadable for good.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from lvcrypt.errors import FormatError, HandlerError, UsageError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import Area, FileArea, HeaderIdentity, KeystoreSession
from lvcrypt.keystore_admin import Confirm, names_keystore_lv, open_target

PAGE = 4096
PRIORITIES = {"ignore": 0, "normal": 1, "prefer": 2}  # cryptsetup's --priority names
STILL_USABLE = ("Keys already in the kernel keyring, in active dm tables or registered for kdump stay usable "
                "until those LVs are deactivated and the keys dropped.")


def header_backup(target: str, devices: str | None, backup_file: str) -> int:
    """`keystore header-backup` (luksHeaderBackup): a new file with the header and keyslots; returns its size."""
    with open_target(target, writable=False, devices=devices) as store:
        data = store.session.header_backup()
    padded = data + bytes(-len(data) % PAGE)
    try:
        fd = os.open(backup_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o400)
    except FileExistsError:
        raise HandlerError(f"header backup file {backup_file} already exists") from None
    except OSError as error:
        raise HandlerError(f"cannot create header backup file {backup_file}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(padded)
    except OSError as error:
        os.unlink(backup_file)
        raise HandlerError(f"cannot write header backup file {backup_file}: {error.strerror}") from None
    return len(padded)


def _backup_contents(backup_file: str) -> tuple[str, HeaderIdentity, bytes]:
    """The backup's handler, identity and header bytes; refused unless every copy in it is sound."""
    try:
        area = FileArea(backup_file, writable=False)
    except OSError as error:
        raise HandlerError(f"cannot read header backup file {backup_file}: {error.strerror}") from None
    try:
        handler = registry.get(registry.detect(area))
        session = handler.open(area)
        if session.repair_problem() is not None:
            raise FormatError(str(session.repair_problem()))
        return handler.name, session.header_identity(), session.header_backup()
    except (FormatError, HandlerError) as error:
        raise HandlerError(f"{backup_file} is not a usable header backup: {error}") from None
    finally:
        area.close()


@contextmanager
def _raw_area(target: str, devices: str | None) -> Iterator[tuple[Area, str | None]]:
    """The target's area, writable, whatever state its header is in, with the handler its VG records (if any)."""
    if not names_keystore_lv(target):
        area = FileArea(target, writable=True)
        try:
            yield area, None
        finally:
            area.close()
        return
    from lvcrypt.keystores import attrs_of, close_area, keystore_segment, open_area
    from lvcrypt.store.transaction import VgTransaction

    vg_name, name = target.split("/")
    with VgTransaction(devices, vg_name, exclusive=True) as tx:
        handler = attrs_of(keystore_segment(tx.vg, name)).handler
        area = open_area(tx.vg, name, tx.loaded.device_of, writable=True)
        if not isinstance(area, FileArea):
            raise HandlerError(f"keystore {target} has no extents on disk")
        try:
            yield area, handler
        finally:
            close_area(area)


def _current_identity(area: Area, handler_name: str | None) -> tuple[str | None, HeaderIdentity | None]:
    """What the target's header still says (one sound copy is enough); (None, None) if nothing readable."""
    try:
        handler = registry.get(handler_name or registry.detect(area))
        session: KeystoreSession = handler.open(area)
        return handler.name, session.header_identity()
    except (FormatError, HandlerError):
        return handler_name, None


def header_restore(target: str, devices: str | None, backup_file: str, confirm: Confirm) -> None:
    """`keystore header-restore` (luksHeaderRestore), refused when the backup belongs to another keystore."""
    kind, backup, data = _backup_contents(backup_file)
    with _raw_area(target, devices) as (area, recorded):
        current_kind, current = _current_identity(area, recorded)
        if current_kind is not None and current_kind != kind:
            raise HandlerError(f"{backup_file} holds a {kind} header but {target} is a {current_kind} keystore")
        if current is not None and current.uuid != backup.uuid:
            raise HandlerError(f"{backup_file} is the header of keystore {backup.uuid}, not of {target} "
                               f"({current.uuid})")
        if current is not None and current.layout != backup.layout:
            raise HandlerError(f"{backup_file} has {backup.layout}; {target} has {current.layout}")
        if len(data) > area.size:
            raise HandlerError(f"{backup_file} holds {len(data)} bytes of header; {target} has room for {area.size}")
        state = "a readable" if current is not None else "a damaged or no"
        confirm(f"{target} has {state} {kind} header: every keyslot and token on it is replaced by those of "
                f"{backup_file}. Are you sure?")
        area.write(0, data)


def erase(target: str, devices: str | None, confirm: Confirm) -> list[int]:
    """`keystore erase` (luksErase): every keyslot destroyed after a confirmation naming the LVs it locks out."""
    with open_target(target, writable=True, devices=devices) as store:
        slots = [info.slot for info in store.session.list_keyslots() if info.active]
        if not slots:
            raise HandlerError(f"{target} has no keyslot to erase")
        users = ", ".join(store.users) if store.users else "the data it protects"
        confirm(f"This destroys every keyslot of {target} ({', '.join(map(str, slots))}): {users} can never "
                f"be unlocked again. {STILL_USABLE} Are you sure?")
        for slot in slots:
            store.session.remove_keyslot(slot)
        return slots


def configure(target: str, devices: str | None, label: str | None, subsystem: str | None,
              priority: str | None, keyslot: int | None) -> None:
    """`keystore config` (cryptsetup config): label, subsystem, or a keyslot's priority."""
    if priority is not None and keyslot is None:
        raise UsageError("--priority needs --key-slot")
    if label is None and subsystem is None and priority is None:
        raise UsageError("give --label, --subsystem or --priority")
    with open_target(target, writable=True, devices=devices) as store:
        store.session.configure(label, subsystem, None if priority is None else (keyslot, PRIORITIES[priority]))
