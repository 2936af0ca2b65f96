"""`lvcrypt mount`/`umount`: an LV's userspace stack served as the file DIR/LV by a forked FUSE daemon.

The command unlocks, forks a daemon that owns the key, and returns once the
daemon reports the file is there; the daemon wipes the key when unmounted.
In a shared VG the mount holds the LV lock an activation holds (persistent, ex
read-write, sh read-only), taken before unlocking and released by the daemon
once unmounted, as `lvchange -an` releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import select
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from lvcrypt.activation import build_lv_table, release_mount_lock, take_mount_lock
from lvcrypt.atomic_file import private_directory
from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.lv_checks import find_lv, refuse_change
from lvcrypt.store import lvmlockd
from lvcrypt.store.lock import run_dir
from lvcrypt.unlock import KeySources, unlock_lv

if TYPE_CHECKING:
    from lvcrypt.activate.userspace import Stack

START_TIMEOUT_S = 60

# Gives the mount's LV lock back (shared VGs; nothing otherwise).
Unlock = Callable[[], None]


def _nothing() -> None:
    """No lock taken yet."""


def mount_lv(devices: str | None, vg_name: str, lv_name: str, directory: str, read_only: bool,
             sources: KeySources) -> str:
    """Unlock, fork the FUSE daemon, and return the path of the decrypted file once it is there."""
    from lvcrypt.lv_names import mount_source
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.store.transaction import VgTransaction

    try:
        from lvcrypt.activate import fuse
    except (ImportError, OSError) as error:
        raise LvcryptError(f"FUSE is not available ({error}): install fuse3 and mfusepy") from None
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: not a directory")
    if os.path.ismount(directory):
        raise LvcryptError(f"{directory}: something is already mounted there")
    unlock: Unlock = _nothing
    try:
        with KeyCache() as keys:
            with VgTransaction(devices, vg_name, exclusive=False) as tx, \
                    KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
                lv = find_lv(tx.vg, lv_name)
                if not read_only:
                    refuse_change(tx.vg, lv, "data-write")
                unlock = functools.partial(release_mount_lock, tx.vg, lv, take_mount_lock(tx, lv, not read_only))
                source = mount_source(tx.vg, lv)
                table = build_lv_table(tx, lv_name, sessions)
                unlock_lv(tx, lv_name, keys, sources, sessions)
            stack = Stack(table, keys, writable=not read_only)
            ready, report = os.pipe()
            pid = os.fork()
            if pid == 0:
                _mount_daemon(stack, keys, directory, lv_name, source, ready, report, fuse, unlock)
            os.close(report)
            stack.close()
        _await_mount(ready, pid, directory)
    except BaseException:
        with contextlib.suppress(LvcryptError):  # the refusal or failure is what the user must see
            unlock()
        raise
    return f"{directory}/{lv_name}"


def _mount_daemon(stack: "Stack", keys: KeyCache, mountpoint: str, name: str, fsname: str, ready: int,
                  report: int, fuse, unlock: Unlock) -> None:  # type: ignore[no-untyped-def]
    """The forked daemon: detach, serve until unmounted, wipe the key, give the LV lock back, exit
    (never returns).  It first drops the lvmlockd connection it inherited: lvmlockd keeps a
    connection's transient locks (the command's global lock) while it is open, and the command's
    own copy closes when the command ends."""
    status = 0
    try:
        lvmlockd.reset()
        _hold(_end_marker(mountpoint))
        os.close(ready)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)

        def on_ready() -> None:
            os.write(report, b"OK")
            os.close(report)

        def on_exit() -> None:
            stack.close()
            keys.close()

        fuse.serve(stack, mountpoint, name, fsname, on_ready, on_exit)
    except BaseException as error:  # noqa: BLE001 - reported to the waiting parent, never shown as a traceback
        status = 1
        try:
            os.write(report, f"ERR {type(error).__name__}: {error}".encode()[:500])
        except OSError:
            pass
    finally:
        stack.close()
        keys.close()
        try:
            unlock()
        except Exception:  # noqa: BLE001 - nobody to tell: the lock stays, as after a failed lvchange -an
            status = 1
        os._exit(status)


def _await_mount(ready: int, pid: int, directory: str) -> None:
    """Wait for the daemon's OK; its error (or silence) becomes the command's one-line refusal."""
    try:
        readable, _, _ = select.select([ready], [], [], START_TIMEOUT_S)
        message = os.read(ready, 600) if readable else b""
    finally:
        os.close(ready)
    if message != b"OK":
        os.waitpid(pid, os.WNOHANG)
        text = message.decode(errors="replace").removeprefix("ERR ") or "the FUSE daemon did not start"
        raise LvcryptError(f"mounting on {directory} failed: {text}")


def unmount(directory: str) -> None:
    """What `mount` mounted, through fusermount3 (or fusermount, or umount)."""
    import shutil
    import subprocess

    if not os.path.ismount(directory):
        raise LvcryptError(f"{directory}: not mounted")
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "umount"
    result = subprocess.run([tool, "-u", directory] if "fuser" in tool else [tool, directory],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise LvcryptError(f"unmounting {directory} failed: {result.stderr.strip().splitlines()[-1:] or '?'}")
    _await_end(_end_marker(directory), directory)


END_TIMEOUT_S = 30


def _end_marker(directory: str) -> Path:
    """A file the mount's daemon holds locked (flock) until it has wiped the key and given its LV
    lock back: `umount` waits for it, so that once it returns the LV is free for other hosts, as
    after `lvchange -an` (the kernel lets fusermount return before the daemon ends)."""
    key = hashlib.sha256(os.path.realpath(directory).encode()).hexdigest()[:32]
    return run_dir() / f"mount-{key}.lock"


def _hold(marker: Path) -> None:
    """The daemon's side: locked until the process exits (the descriptor is never closed before)."""
    private_directory(marker.parent)
    fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _await_end(marker: Path, directory: str) -> None:
    """`umount`'s side: wait until the daemon released the marker (a mount made before the marker
    existed has none to wait for)."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        deadline = time.monotonic() + END_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LvcryptError(f"{directory} is unmounted but its process has not ended yet "
                                       "(it still holds the LV's lock)") from None
                time.sleep(0.05)
    finally:
        os.close(fd)
