"""Keystore administration, as cryptsetup's luksFormat, luksDump, repair and luks*Key actions.

A target is an image file or block device holding a keystore (a LUKS header,
or lvcrypt's key check block for plain/hashed), or VG/KEYSTORE naming a
keystore LV (its extents, under the VG lock, with the attributes from the VG
metadata).  A new keystore's cipher, key size, key hash and PBKDF default to
what its handler declares.  Questions to the user (passphrases, "are you
sure?") are callables the caller passes in; the decisions are made here.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from lvcrypt.errors import FormatError, HandlerError, NeedsRepair, UsageError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FileArea, FormatOptions, KeyHandler, KeyslotInfo, KeystoreSession
from lvcrypt.handlers.kdf import DEFAULT_ITER_TIME_MS, DEFAULT_MEMORY_KIB, PbkdfRequest
from lvcrypt.handlers.secret import Secret
from lvcrypt.records import dataclass, replace
from lvcrypt.unlock import (KeySources, read_passphrase, verified_volume_key, volume_key_from_file,
                            volume_key_from_keyring)

Confirm = Callable[[str], None]  # asks; raises to stop the command


@dataclass(frozen=True)
class KeystoreRequest:
    """A new keystore (or keyslot) as the user described it; None takes the handler's default."""

    handler: str | None = None
    cipher: str | None = None
    key_bits: int | None = None
    hash: str | None = None  # the PBKDF hash, and the key hash of handlers that take one
    pbkdf: str | None = None
    iter_time_ms: int | None = None
    memory_kib: int | None = None
    parallel: int | None = None
    force_iterations: int | None = None
    sector_size: int | None = None  # bytes; `keystore format` only (lvcreate's belongs to the LV)


def pbkdf_request(handler: KeyHandler, request: KeystoreRequest) -> PbkdfRequest:
    """The PBKDF of a new keyslot: what was asked, else the handler's default kind and cryptsetup's costs."""
    return PbkdfRequest(kind=request.pbkdf or handler.default_pbkdf, hash=request.hash or "sha256",
                        iter_time_ms=DEFAULT_ITER_TIME_MS if request.iter_time_ms is None else request.iter_time_ms,
                        memory_kib=DEFAULT_MEMORY_KIB if request.memory_kib is None else request.memory_kib,
                        parallel=4 if request.parallel is None else request.parallel,
                        force_iterations=request.force_iterations)


@dataclass
class Keystore:
    """An opened target: the handler session every action goes through, and the LVs (VG/LV) using it."""

    session: KeystoreSession
    users: tuple[str, ...] = ()

    @property
    def handler(self) -> KeyHandler:
        return self.session.handler


def names_keystore_lv(target: str) -> bool:
    return not os.path.exists(target) and target.count("/") == 1 and not target.startswith(("/", "."))


@contextmanager
def open_target(target: str, writable: bool, devices: str | None = None) -> Iterator[Keystore]:
    """Open TARGET and identify its handler from what the area records (or, for VG/KEYSTORE, the metadata).

    A change refused because a header copy needs repair names the repair
    command with TARGET as the user wrote it.
    """
    try:
        with _open_target(target, writable, devices) as store:
            yield store
    except NeedsRepair as error:
        raise error.at(target) from None


@contextmanager
def _open_target(target: str, writable: bool, devices: str | None) -> Iterator[Keystore]:
    if names_keystore_lv(target):
        with _open_keystore_lv(target, writable, devices) as store:
            yield store
        return
    area = _area(target, writable)
    try:
        try:
            session = registry.get(registry.detect(area)).open(area)
        except FormatError as error:
            raise FormatError(f"{target}: {error}") from None
        yield Keystore(session)
    finally:
        area.close()


@contextmanager
def _open_keystore_lv(target: str, writable: bool, devices: str | None) -> Iterator[Keystore]:
    """A keystore LV's extents, held under the VG lock (exclusive when writing) while in use."""
    from lvcrypt.keystores import KeystoreSessions
    from lvcrypt.store.transaction import VgTransaction

    vg_name, name = target.split("/")
    with VgTransaction(devices, vg_name, exclusive=writable) as tx, \
            KeystoreSessions(tx.vg, tx.loaded.device_of, writable=writable) as stores:
        session = stores.session(name)
        if not isinstance(session.area, FileArea):
            raise HandlerError(f"keystore {target} has no extents on disk")
        yield Keystore(session, tuple(f"{vg_name}/{lv.name}" for lv in tx.vg.lvs.values() if name in lv.keystores()))


def _area(target: str, writable: bool) -> FileArea:
    if names_keystore_lv(target):
        raise UsageError(f"{target}: keystore LVs are made by lvcreate --encrypt; format an image file here")
    return FileArea(target, writable=writable)


def format_target(target: str, request: KeystoreRequest, options: FormatOptions, sources: KeySources,
                  confirm: Confirm) -> None:
    """`keystore format`: a new keystore over an image file or device, after the size check and a confirmation.

    `options` carry the keyslot, UUID and label; the PBKDF and the sector
    size come from `request`, else from the handler's defaults.
    """
    handler = registry.get(request.handler or registry.DEFAULT)
    attrs = handler.new_attrs(request.cipher, request.key_bits, request.hash)
    sector_size = handler.default_sector_size if request.sector_size is None else request.sector_size
    options = replace(options, pbkdf=pbkdf_request(handler, request), sector_size=sector_size)
    area = _area(target, writable=True)
    try:
        if area.size < handler.area_size(attrs, options):
            raise HandlerError(f"{target}: {area.size} bytes is too small for a {handler.name} keystore "
                               f"({handler.area_size(attrs, options)} bytes needed)")
        confirm(f"This will overwrite data on {target} irrevocably. Are you sure?")
        with read_passphrase(sources, "Enter passphrase: ", verify=True) as passphrase:
            handler.format(area, attrs, passphrase, options).close()
    finally:
        area.close()


def dump_target(target: str, devices: str | None) -> str:
    """`keystore dump`: the handler's description of the keystore (no key material)."""
    with open_target(target, writable=False, devices=devices) as store:
        return store.session.dump()


def dump_with_volume_key(target: str, devices: str | None, sources: KeySources, keyslot: int | None,
                         confirm: Confirm) -> tuple[str, Secret]:
    """`keystore dump --dump-volume-key`: the description and the volume key (the caller wipes it)."""
    with open_target(target, writable=False, devices=devices) as store:
        text = store.session.dump()
        confirm("The volume key opens the data without a passphrase. Dump it?")
        with read_passphrase(sources, "Enter passphrase: ") as passphrase:
            return text, store.session.unlock(passphrase, keyslot)


def repair_target(target: str, devices: str | None, confirm: Confirm) -> tuple[str, str | None]:
    """`cryptsetup repair`: every header copy rewritten from the good one after a confirmation.

    Returns (handler name, the problem repaired or None when there was none).
    """
    with open_target(target, writable=True, devices=devices) as store:
        problem = store.session.repair_problem()
        if problem is not None:
            confirm(f"{target}: {problem}. Rewrite every header copy from the good one?")
            store.session.repair()
        return store.handler.name, problem


def unlock_test(target: str, devices: str | None, sources: KeySources, keyslot: int | None,
                link_vk_to_keyring: str | None = None) -> int:
    """`keystore unlock-test`: the keyslot the passphrase opens; optionally the volume key linked into a keyring."""
    with open_target(target, writable=False, devices=devices) as store:
        with read_passphrase(sources, "Enter passphrase: ") as passphrase:
            slot, key = store.session.unlock_keyslot(passphrase, keyslot)
            with key:
                if link_vk_to_keyring:
                    from lvcrypt.keyring import link_volume_key

                    link_volume_key(link_vk_to_keyring, key.buffer)
    return slot


def _one_stdin(sources: KeySources, new_sources: KeySources) -> None:
    if sources.key_file == "-" and new_sources.key_file == "-":
        raise UsageError("only one of --key-file and --new-key-file can be stdin")


def _existing_volume_key(store: Keystore, sources: KeySources, volume_key_file: str | None) -> Secret:
    """The volume key `keyslot add` stores again: from --volume-key-file, --volume-key-keyring or a passphrase.

    A key given directly is checked against the keystore's digest before
    anything is written (cryptsetup 2.6 checks the file the same way).
    """
    if volume_key_file is not None and sources.volume_key_keyring:
        raise UsageError("give only one of --volume-key-file and --volume-key-keyring")
    if volume_key_file is not None:
        return verified_volume_key(store.session, volume_key_from_file(volume_key_file,
                                                                       (store.session.attrs.key_size or 0) // 8))
    if sources.volume_key_keyring:
        return verified_volume_key(store.session, volume_key_from_keyring(sources.volume_key_keyring))
    with read_passphrase(sources, "Enter any existing passphrase: ") as old:
        return store.session.unlock(old)


def add_keyslot(target: str, devices: str | None, sources: KeySources, new_sources: KeySources,
                request: KeystoreRequest, keyslot: int | None, volume_key_file: str | None = None) -> int:
    """`keyslot add` (luksAddKey): the volume key (opened by a passphrase, or given) stored under a new passphrase."""
    _one_stdin(sources, new_sources)
    with open_target(target, writable=True, devices=devices) as store:
        key = _existing_volume_key(store, sources, volume_key_file)
        with key, read_passphrase(new_sources, "Enter new passphrase for key slot: ", verify=True) as new:
            return store.session.add_keyslot(key, new, pbkdf_request(store.handler, request), keyslot)


def remove_keyslot(target: str, devices: str | None, slot: int, confirm: Confirm) -> None:
    """`keyslot remove` (luksKillSlot); removing the last active slot is confirmed first."""
    with open_target(target, writable=True, devices=devices) as store:
        active = [s.slot for s in store.session.list_keyslots() if s.active]
        if active == [slot]:
            confirm(f"Keyslot {slot} is the last one: removing it makes the data inaccessible.")
        store.session.remove_keyslot(slot)


def change_keyslot(target: str, devices: str | None, sources: KeySources, new_sources: KeySources,
                   request: KeystoreRequest, keyslot: int | None) -> int:
    """`keyslot change` (luksChangeKey): returns the slot now holding the new passphrase."""
    _one_stdin(sources, new_sources)
    with open_target(target, writable=True, devices=devices) as store:
        with read_passphrase(sources, "Enter passphrase to be changed: ") as old, \
                read_passphrase(new_sources, "Enter new passphrase: ", verify=True) as new:
            return store.session.change_keyslot(old, new, pbkdf_request(store.handler, request), keyslot)


def convert_keyslot(target: str, devices: str | None, sources: KeySources, request: KeystoreRequest,
                    keyslot: int | None) -> int:
    """`keyslot convert` (luksConvertKey): the keyslot the passphrase opens stored again with a new PBKDF and cost.

    The passphrase, slot number and priority stay; the key is written to a
    fresh area first when there is room, as `keyslot change` does.
    """
    with open_target(target, writable=True, devices=devices) as store:
        with read_passphrase(sources, "Enter passphrase for keyslot to be converted: ") as passphrase:
            return store.session.change_keyslot(passphrase, passphrase, pbkdf_request(store.handler, request),
                                                keyslot)


def active_keyslots(target: str, devices: str | None) -> list[KeyslotInfo]:
    """`keyslot list`: the active keyslots with the handler's details."""
    with open_target(target, writable=False, devices=devices) as store:
        return [info for info in store.session.list_keyslots() if info.active]
