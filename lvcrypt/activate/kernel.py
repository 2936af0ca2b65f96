"""The kernel backend: an LV's table stack as real device-mapper devices.

Activation creates the stack lowest layer first (create, load, resume), so
every table only names devices that already exist; crypt tables name their
volume key as a `logon` key in the session keyring, which dm-crypt reads at
load time, so no key ever travels as hex.  Every step that changes the
system is recorded in an undo list, so a failure anywhere leaves no dm
device, no key and no loop device behind.

Image-file PVs are attached as autoclear loop devices (see loop.py): dm
holds them while the LV is active and the kernel detaches them when the dm
device goes.  Where no udev runs, lvcrypt creates the /dev/mapper nodes itself.

Keys stay in the session keyring while the LV is active (a refresh reloads
the tables from them) and are invalidated on deactivation; the descriptions
to invalidate are read back from the live tables, so deactivation needs no
key material and no passphrase.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from contextlib import contextmanager
from enum import Enum
from typing import Callable, Iterator, Mapping

from lvcrypt import keyring
from lvcrypt.activate import loop
from lvcrypt.activate.dm_ioctl import DeviceInfo, DeviceMapper, Target, create_node, remove_node
from lvcrypt.activate.tables import CryptTarget, DeviceRef, KeyFormat, KeyRef, LayerDevice, PvDevice, Table, \
    target_params
from lvcrypt.errors import DeviceError, KeyringError, LvcryptError
from lvcrypt.handlers import secret
from lvcrypt.records import dataclass, field
from lvcrypt.store.transaction import warn

MAPPER_DIR = "/dev/mapper"
KEY_TYPE = "logon"
SESSION = "@s"
KEYRING_REFERENCE = re.compile(r":\d+:logon:(\S+)")


class ActivationError(LvcryptError):
    """Activation, deactivation or refresh failed; what was done was undone."""


class ResumeFailed(ActivationError):
    """A switch's `during()` succeeded (the metadata names the new mapping) but the new tables could not be
    resumed: the LV stays suspended, and only a refresh onto the committed mapping settles it."""


class Resume(Enum):
    """What a switch resumes after its `during()` failed while the LV was suspended."""

    OLD = "old"  # nothing changed on disk: the old tables again
    NEW = "new"  # the metadata on disk already names the new mapping: the new tables (then the error)
    NONE = "none"  # nobody can tell which mapping the metadata names: the LV stays suspended


def _old_tables(error: BaseException) -> Resume:
    return Resume.OLD


@dataclass
class _Undo:
    """Steps to take back, last first, if the operation does not complete."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, step: Callable[[], None]) -> None:
        self.steps.append((what, step))

    def run(self) -> list[str]:
        """Undo everything; returns what could not be undone (for the error message)."""
        failed = []
        while self.steps:
            what, step = self.steps.pop()
            try:
                step()
            except (OSError, LvcryptError):
                failed.append(what)
        return failed


class _Devices:
    """Resolves a table's device references to `major:minor`, attaching loops for image files."""

    def __init__(self, created: dict[str, DeviceInfo]):
        self.created = created
        self.loops: dict[str, loop.Loop] = {}

    def text(self, ref: DeviceRef) -> str:
        if isinstance(ref, LayerDevice):
            info = self.created[ref.name]
            return f"{info.major}:{info.minor}"
        return _rdev_text(self._rdev(ref))

    def _rdev(self, ref: PvDevice) -> int:
        try:
            mode = os.stat(ref.path)
        except OSError as error:
            raise DeviceError(f"physical volume {ref.path}: {error.strerror}") from None
        if stat.S_ISBLK(mode.st_mode):
            return mode.st_rdev
        if not stat.S_ISREG(mode.st_mode):
            raise DeviceError(f"physical volume {ref.path} is neither a block device nor an image file")
        if ref.path not in self.loops:
            self.loops[ref.path] = loop.attach(ref.path)
        return self.loops[ref.path].rdev

    def release(self) -> None:
        """Drop our hold on the loops: those a dm table uses stay, the others detach."""
        for attached in self.loops.values():
            attached.release()


def _rdev_text(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _dm_targets(table: Table, devices: _Devices) -> list[Target]:
    return [Target(target.start, target.length, target.type,
                   target_params(target, KeyFormat.KEYRING, resolve=devices.text))
            for target in table.targets]


def key_refs(table: Table) -> list[KeyRef]:
    """The distinct keys a stack's crypt targets reference."""
    refs: dict[str, KeyRef] = {}
    for device in table.walk():
        for target in device.targets:
            if isinstance(target, CryptTarget):
                refs.setdefault(target.key.description, target.key)
    return list(refs.values())


def _check_names_free(dm: DeviceMapper, table: Table) -> None:
    for device in table.walk():
        info = dm.info(device.name)
        if info is not None:
            raise ActivationError(f"device-mapper name {device.name} is already taken"
                                  + (f" (uuid {info.uuid})" if info.uuid else ""))


def is_active(dm: DeviceMapper, table: Table) -> bool:
    info = dm.info(table.name)
    return info is not None and info.uuid == table.uuid


def _add_keys(table: Table, volume_keys: Mapping[str, bytes | bytearray], undo: _Undo) -> None:
    """Each referenced key as a `logon` key in the session keyring (joined if the process has none)."""
    refs = key_refs(table)
    if not refs:
        return
    keyring.ensure_session_keyring()
    for ref in refs:
        if ref.keystore not in volume_keys:
            raise ActivationError(f"the volume key of {ref.keystore} is not unlocked")
        key = volume_keys[ref.keystore]
        if len(key) != ref.key_bytes:
            raise ActivationError(f"the volume key of {ref.keystore} has {len(key)} bytes, "
                                  f"the table needs {ref.key_bytes}")
        serial = keyring.add_key(KEY_TYPE, ref.description, key, SESSION)
        undo.push(f"key {ref.description}", lambda serial=serial: keyring.invalidate(serial))


def _make_node(name: str, info: DeviceInfo, undo: _Undo) -> None:
    try:
        create_node(name, info.major, info.minor, MAPPER_DIR)
    except FileExistsError:  # udev made it between our check and mknod
        return
    undo.push(f"node {MAPPER_DIR}/{name}", lambda: remove_node(name, MAPPER_DIR))


def activate(table: Table, volume_keys: Mapping[str, bytes | bytearray]) -> bool:
    """Create the stack; False (and nothing done) if the LV is already active."""
    undo = _Undo()
    created: dict[str, DeviceInfo] = {}
    devices = _Devices(created)
    with DeviceMapper() as dm:  # the undo steps use this session: it outlives them
        try:
            if is_active(dm, table):
                return False
            _check_names_free(dm, table)
            _add_keys(table, volume_keys, undo)
            for device in table.walk():
                created[device.name] = dm.create(device.name, device.uuid, readonly=device.read_only)
                undo.push(f"dm device {device.name}", lambda name=device.name: dm.remove(name))
                dm.load(device.name, _dm_targets(device, devices), readonly=device.read_only,
                        secure=device.holds_keys)
                created[device.name] = dm.resume(device.name)
                _make_node(device.name, created[device.name], undo)
            undo.steps.clear()
            return True
        except (LvcryptError, OSError) as error:
            raise _failure(f"activating {table.name}", error, undo) from None
        except BaseException:  # Ctrl-C half-way: still leave nothing behind
            undo.run()
            raise
        finally:
            devices.release()


def _failure(doing: str, error: BaseException, undo: _Undo) -> ActivationError:
    """Undo, then one line naming what failed and anything that could not be undone."""
    failed = undo.run()
    reason = str(error) if isinstance(error, LvcryptError) else (getattr(error, "strerror", None) or str(error))
    left = f" (could not undo: {', '.join(failed)})" if failed else ""
    return ActivationError(f"{doing}: {reason}{left}")


def stack_names(dm: DeviceMapper, name: str, uuid: str) -> list[str]:
    """The live devices of an LV, top first: the device `name`, then its layers (uuid `<uuid>-...`)."""
    layer_prefix = uuid + "-"
    return [name] + sorted(entry.name for entry in dm.list()
                           if entry.uuid and entry.uuid.startswith(layer_prefix) and entry.name != name)


def _live_key_descriptions(dm: DeviceMapper, names: list[str]) -> list[str]:
    descriptions: list[str] = []
    for name in names:
        for target in dm.table(name):
            if target.type == "crypt":
                match = KEYRING_REFERENCE.search(target.params)
                if match and match.group(1) not in descriptions:
                    descriptions.append(match.group(1))
    return descriptions


def drop_keys(descriptions: list[str]) -> None:
    """Invalidate the session keyring's logon keys with these descriptions (absent ones are fine)."""
    for description in descriptions:
        serial = keyring.search(SESSION, KEY_TYPE, description)
        if serial is not None:
            keyring.invalidate(serial)


def deactivate(name: str, uuid: str) -> bool:
    """Remove an LV's stack top first, its nodes and its keys; False if it was not active.

    Only the names are needed (no keystore, no table), so an LV whose PVs are
    gone can still be taken down.
    """
    with DeviceMapper() as dm:
        info = dm.info(name)
        if info is None:
            return False
        if info.uuid != uuid:
            raise ActivationError(f"device-mapper device {name} does not belong to this LV "
                                  f"(uuid {info.uuid or 'none'})")
        names = stack_names(dm, name, uuid)
        descriptions = _live_key_descriptions(dm, names)
        for device in names:
            dm.remove(device)
            remove_node(device, MAPPER_DIR)
    try:
        drop_keys(descriptions)
    except KeyringError as error:
        raise ActivationError(f"{name} is deactivated, but its key stays in the keyring: {error}") from None
    return True


def open_count(name: str) -> int | None:
    """How many openers a dm device has (a daemon holding it), None if there is no such device."""
    with DeviceMapper() as dm:
        info = dm.info(name)
    return None if info is None else info.open_count


def keys_present(table: Table) -> bool:
    """True if every key the stack references is in the session keyring (a refresh then needs no unlock)."""
    return all(keyring.search(SESSION, KEY_TYPE, ref.description) is not None for ref in key_refs(table))


@dataclass
class _Loaded:
    """A live LV's new tables loaded beside its old ones: what a refresh or a switch then suspends and
    resumes.  `undo` takes the new tables and layers (and keys, for a switch) away again."""

    undo: _Undo
    created: dict[str, DeviceInfo]
    old: list[str]  # the live devices before, top first
    reloaded: list[str]  # the devices holding a new inactive table, lowest first
    suspended: list[str] = field(default_factory=list)


def _load_beside_live(dm: DeviceMapper, table: Table, volume_keys: Mapping[str, bytes | bytearray] | None,
                      before: Table | None, doing: str) -> _Loaded:
    """The opening of a refresh or a switch, while I/O still flows: the LV must be active; its keys go
    to the session keyring (or must be there already); new layers are created and resumed, existing
    devices get their new table in the inactive slot.  On failure all of it is undone and one
    ActivationError says `doing` failed.  The keys added are undone only for a switch (`before`, whose
    keys then come back): a refresh adds the keys its own live tables use."""
    undo = _Undo()
    created: dict[str, DeviceInfo] = {}
    devices = _Devices(created)
    try:
        if not is_active(dm, table):
            raise ActivationError(f"{table.name} is not active")
        old = stack_names(dm, table.name, table.uuid)
        if volume_keys is not None and before is not None:
            # Last undone: a description both stacks use (the new key replaced the old one's payload)
            # gets the old key back after the new keys are invalidated.
            undo.push("keys of the old tables", lambda: _add_keys(before, volume_keys, _Undo()))
            _add_keys(table, volume_keys, undo)
        elif volume_keys is not None:
            _add_keys(table, volume_keys, _Undo())
        elif not keys_present(table):
            raise ActivationError(f"the key of {table.name} is not in the session keyring")
        reloaded = _load_stack(dm, table, devices, created, old, undo)
        return _Loaded(undo, created, old, reloaded)
    except BaseException as error:
        failure = _failure(doing, error, undo)
        if isinstance(error, (LvcryptError, OSError)):
            raise failure from None
        raise
    finally:
        devices.release()


def refresh(table: Table, volume_keys: Mapping[str, bytes | bytearray] | None) -> None:
    """Reload an active LV's stack (after lvextend): load every table, suspend top first, resume lowest first.

    New layers are created and resumed before anything is suspended; layers
    the new stack no longer has are removed after the resume.  Without
    `volume_keys`, the keys already in the session keyring are used.
    """
    doing = f"refreshing {table.name}"
    with DeviceMapper() as dm:  # the undo steps use this session: it outlives them
        loaded = _load_beside_live(dm, table, volume_keys, None, doing)
        with _critical_section(table.name):
            try:
                _suspend_stack(dm, loaded.reloaded, loaded.suspended)
                loaded.undo.steps.clear()
                for name in loaded.reloaded:
                    dm.resume(name)
                    loaded.suspended.remove(name)
                _remove_gone(dm, loaded)
            except BaseException as error:
                # Inactive tables go first, so that resuming brings the old tables back.
                failure = _failure(doing, error, loaded.undo)
                _resume_all(dm, loaded.suspended)
                if isinstance(error, (LvcryptError, OSError)):
                    raise failure from None
                raise


def switch(table: Table, before: Table, volume_keys: Mapping[str, bytes | bytearray] | None,
           during: Callable[[], None], after_failure: Callable[[BaseException], Resume] = _old_tables) -> float:
    """Swap an active LV's stack from `before` to `table` with `during()` run while it is suspended;
    returns how long I/O was held (seconds).

    This is one chunk of an online conversion or pvmove: every new table is
    loaded (new layers created) while I/O still flows; then the top device is
    suspended with lockfs (a mounted file system is frozen, its dirty data
    flushed), `during()` copies the chunk and commits the metadata, and the
    new tables are resumed.  If `during()` fails, `after_failure(error)` says
    which tables match the metadata on disk now (a commit can fail after some
    PVs took it): OLD drops the inactive tables and resumes the old ones, with
    the keyring as `before` needs it; NEW resumes the new ones; NONE leaves the
    LV suspended with both stacks' keys, for a refresh once the metadata can
    be read.  Then the error goes on.  Keys only the old stack used leave the
    keyring.  A resume of the new tables that fails raises ResumeFailed.
    From the suspend to the end, the process is in lvm2's critical section
    (`_critical_section`: memory locked, Ctrl-C held).
    """
    with DeviceMapper() as dm:  # the undo steps use this session: it outlives them
        loaded = _load_beside_live(dm, table, volume_keys, before, f"switching {table.name} to its new extents")
        old_keys = _live_key_descriptions(dm, loaded.old)
        with _critical_section(table.name):
            started = time.monotonic()
            try:
                _suspend_stack(dm, loaded.reloaded, loaded.suspended)
                during()
            except BaseException as error:
                resume = after_failure(error) if len(loaded.suspended) == len(loaded.reloaded) else Resume.OLD
                if resume is Resume.OLD:
                    loaded.undo.run()  # inactive tables first, so that the resume brings the old ones back
                    _resume_all(dm, loaded.suspended)
                elif resume is Resume.NEW:
                    _resume_new(dm, table, loaded, old_keys)
                # Resume.NONE: new layers, inactive tables and keys stay, for the refresh that settles the LV
                raise
            _resume_new(dm, table, loaded, old_keys)
            held = time.monotonic() - started
    return held


def _resume_new(dm: DeviceMapper, table: Table, loaded: _Loaded, old_keys: list[str]) -> None:
    """The end of a switch: the new tables live, the old stack's devices and keys the new one lacks gone."""
    for name in loaded.reloaded:
        try:
            dm.resume(name)
        except (LvcryptError, OSError) as error:
            reason = str(error) if isinstance(error, LvcryptError) else error.strerror
            raise ResumeFailed(f"resuming {name} on its new tables failed ({reason}); {table.name} stays "
                               "suspended") from None
    _remove_gone(dm, loaded)
    drop_keys([description for description in old_keys if description not in _descriptions(table)])


def _remove_gone(dm: DeviceMapper, loaded: _Loaded) -> None:
    """After the resume: the layers of the old stack that the new one does not have."""
    for name in loaded.old:
        if name not in loaded.created:
            dm.remove(name)
            remove_node(name, MAPPER_DIR)


HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}
_memory_warned: list[str] = []  # the one warning per process that memory could not be locked


@contextmanager
def memory_locked(name: str) -> Iterator[None]:
    """The process's memory locked (see `secret.lock_process_memory`; nested holders lock once) while
    `name` is or may be suspended; a failure to lock is one warning per process, as in lvm2."""
    problem = secret.lock_process_memory()
    if problem is not None and not _memory_warned:
        _memory_warned.append(problem)
        warn(f"cannot lock memory while {name} is suspended ({problem}); going on without")
    try:
        yield
    finally:
        secret.unlock_process_memory()


@contextmanager
def _critical_section(name: str) -> Iterator[None]:
    """lvm2's critical section around a suspend (lib/mm/memlock.c), from before the first suspend to after
    the last resume.  The process's memory is locked, so that no page fault needs I/O (swap, a file) that
    could wait on the suspended device.  Ctrl-C and termination signals stay pending until the end (then
    act as usual): a process killed in there would leave the file system frozen, or interrupt a commit
    half-way."""
    with memory_locked(name):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _descriptions(table: Table) -> set[str]:
    return {ref.description for ref in key_refs(table)}


def _load_stack(dm: DeviceMapper, table: Table, devices: _Devices, created: dict[str, DeviceInfo],
                old: list[str], undo: _Undo) -> list[str]:
    """New layers created and resumed, existing devices given their new table in the inactive slot;
    returns the devices reloaded, lowest first (the ones to suspend)."""
    for device in table.walk():
        info = dm.info(device.name)
        if info is None or device.name not in old:
            created[device.name] = dm.create(device.name, device.uuid, readonly=device.read_only)
            undo.push(f"dm device {device.name}", lambda name=device.name: dm.remove(name))
            dm.load(device.name, _dm_targets(device, devices), readonly=device.read_only,
                    secure=device.holds_keys)
            created[device.name] = dm.resume(device.name)
            _make_node(device.name, created[device.name], undo)
        else:
            created[device.name] = info
            dm.load(device.name, _dm_targets(device, devices), readonly=device.read_only,
                    secure=device.holds_keys)
            undo.push(f"inactive table of {device.name}", lambda name=device.name: dm.clear(name))
    return [device.name for device in table.walk() if device.name in old]


def _suspend_stack(dm: DeviceMapper, reloaded: list[str], suspended: list[str]) -> None:
    """Suspend top first (the top with lockfs: lvm2's way of freezing a mounted file system; the layers
    under it see no I/O by then)."""
    for name in reversed(reloaded):
        dm.suspend(name, skip_lockfs=bool(suspended))
        suspended.append(name)


def _resume_all(dm: DeviceMapper, names: list[str]) -> None:
    """Let I/O through again after a failed refresh (with the old tables, still live)."""
    for name in reversed(names):
        try:
            dm.resume(name)
        except LvcryptError:
            continue


def active_devices() -> dict[str, DeviceInfo]:
    """Every dm device by uuid, or {} without device-mapper (lvs' 'a' state)."""
    if not os.path.exists("/dev/mapper/control"):
        return {}
    try:
        with DeviceMapper() as dm:
            found = {}
            for entry in dm.list():
                if entry.uuid:
                    info = dm.info(entry.name)
                    if info is not None:
                        found[entry.uuid] = info
            return found
    except LvcryptError:
        return {}
