"""lvm2's own file locks, so that lvm2 and lvcrypt commands on one machine exclude each other.

As lvm2 2.03 (lib/locking/file_locking.c, lib/misc/lvm-flock.c): flock on
`V_<vg>` for a VG and on `P_global` for the global lock, in lvm.conf's
`global/locking_dir` (default /run/lock/lvm); shared for reading, exclusive
for changing.  With `global/prioritise_write_locks` (the default) every
request first takes `<file>:aux` exclusively, so a waiting writer is not
starved by a stream of readers.  After flock the file is stat'ed again: a
releasing command unlinks the lock file when nobody else holds it, so a
lock won on an unlinked inode is retried.  `global/wait_for_locks = 0` makes
a busy lock a refusal instead of a wait.  lvm2 2.03 takes no orphans lock;
commands that create or remove PVs or VGs take the global lock exclusively.

Unlike lvm2, the directory is verified (owned by us, writable by nobody
else) and lock files are opened with O_NOFOLLOW relative to it, so a planted
symbolic link never makes root create or write a file elsewhere.  Root uses
lvm2's directory; other users (lvcrypt on image files) keep their locks in a
private run directory, never in a shared world-writable one.

A passphrase prompt must not keep other commands waiting: `released_while`
drops every lock this process holds while it reads, then takes them again
and lets each holder check that nothing changed meanwhile.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Callable, TypeVar

from lvcrypt.atomic_file import private_directory
from lvcrypt.errors import LockError
from lvcrypt.metadata.validate import name_problem
from lvcrypt.store import lvm_config

RUN_ENV = "LVCRYPT_RUN_DIR"
GLOBAL = "#global"  # lvm2's VG_GLOBAL
DEFAULT_LOCKING_DIR = "/run/lock/lvm"
AUX_SUFFIX = ":aux"

T = TypeVar("T")


def run_dir() -> Path:
    """lvcrypt's own run directory (locks of unprivileged users, the parse cache): always private.

    LVCRYPT_RUN_DIR, else /run/lvcrypt for root, $XDG_RUNTIME_DIR/lvcrypt or /tmp/lvcrypt-UID for others.
    """
    configured = os.environ.get(RUN_ENV)
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/run/lvcrypt")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "lvcrypt"
    return Path(f"/tmp/lvcrypt-{os.geteuid()}")


def locking_dir() -> Path:
    """Where lock files live: lvm2's global/locking_dir for root (lvm2 runs only as root), else run_dir()."""
    if os.geteuid() != 0:
        return run_dir()
    configured = lvm_config.setting("global/locking_dir", DEFAULT_LOCKING_DIR)
    return Path(str(configured) or DEFAULT_LOCKING_DIR)


def lock_file_name(name: str) -> str:
    """lvm2's file name for a lock resource; VG names (from the command line or a disk) are checked first."""
    if name == GLOBAL:
        return "P_" + GLOBAL[1:]
    problem = name_problem(name)
    if problem:
        raise LockError(f"cannot lock volume group: {problem}")
    return f"V_{name}"


def _same_file(directory: int, name: str, fd: int) -> bool:
    try:
        on_disk = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _open(directory: int, name: str, where: Path) -> int:
    """The lock file, created if missing; never through a symbolic link, never anything but a regular file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=directory)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise LockError(f"lock file {where / name} is a symbolic link; refusing to use it") from None
        raise LockError(f"cannot open lock file {where / name}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockError(f"lock file {where / name} is not a regular file; refusing to use it")
    return fd


def _flock(directory: int, name: str, where: Path, operation: int, wait: bool) -> int:
    """lvm2's _do_flock: open, flock, and retry while the file we locked is no longer the one named."""
    while True:
        fd = _open(directory, name, where)
        try:
            fcntl.flock(fd, operation if wait else operation | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockError(f"{where / name} is locked by another command "
                                "(global/wait_for_locks is 0)") from None
            raise LockError(f"cannot lock {where / name}: {error.strerror}") from None
        except BaseException:  # Ctrl-C while waiting: give up, as lvm2 does ("Giving up waiting for lock")
            os.close(fd)
            raise
        if _same_file(directory, name, fd):
            return fd
        os.close(fd)
        if not wait:
            raise LockError(f"{where / name} was replaced while locking it")


def _undo(directory: int, name: str, fd: int) -> None:
    """lvm2's _undo_flock: unlink the file if nobody else holds it, then close (which unlocks)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(directory, name, fd):
            os.unlink(name, dir_fd=directory)
    except OSError:
        pass
    os.close(fd)


class VgLock:
    """`with VgLock("vg0", exclusive=True):` blocks until lvm2's lock on the VG is held.

    `revalidate`, if set by the holder, runs after the lock was dropped and
    taken again by `released_while`; it raises when the VG changed meanwhile.
    """

    def __init__(self, name: str, exclusive: bool, creating: str | None = None):
        self.name = name
        self.exclusive = exclusive
        # The lock type of the VG vgcreate makes ("none" when local): the global lock is asked for
        # with it, and the new VG's own lock is not asked of lvmlockd (lvm2's vgcreate never does).
        self.creating = creating
        self.fd = -1
        self.directory_fd = -1
        self.revalidate: Callable[[], None] | None = None

    def __enter__(self) -> "VgLock":
        self.acquire()
        _held.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self in _held:
            _held.remove(self)
        self.release()

    def acquire(self) -> None:
        file_name = lock_file_name(self.name)
        self._lvmlockd_lock()
        where = locking_dir()
        private_directory(where)
        try:
            self.directory_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise LockError(f"cannot open lock directory {where}: {error.strerror}") from None
        try:
            self.fd = self._take(file_name, where)
        except BaseException:
            os.close(self.directory_fd)
            self.directory_fd = -1
            self._lvmlockd_unlock()
            raise

    def _lvmlockd_lock(self) -> None:
        """lvm2 asks lvmlockd (when lvm.conf uses it) before taking its file lock: the global lock, or
        the VG's, whose answer is judged once the VG is read (store/lvmlockd.py)."""
        from lvcrypt.store import lvmlockd

        mode = "ex" if self.exclusive else "sh"
        if self.name == GLOBAL and self.creating:
            lvmlockd.lock_gl_create(self.creating)
        elif self.name == GLOBAL:
            lvmlockd.lock_gl(mode)
        elif not self.creating:
            lvmlockd.lock_vg(self.name, mode)

    def _lvmlockd_unlock(self) -> None:
        """The VG lock is given back after the file lock; the global one lasts as long as the
        connection, as in lvm2 (which never sends an unlock for it)."""
        from lvcrypt.store import lvmlockd

        if self.name != GLOBAL and not self.creating:
            lvmlockd.lock_vg(self.name, "un")

    def _take(self, file_name: str, where: Path) -> int:
        operation = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        wait = lvm_config.flag("global/wait_for_locks", True)
        if not lvm_config.flag("global/prioritise_write_locks", True):
            return _flock(self.directory_fd, file_name, where, operation, wait)
        aux_name = file_name + AUX_SUFFIX
        aux = _flock(self.directory_fd, aux_name, where, fcntl.LOCK_EX, wait)
        if self.exclusive:
            try:
                return _flock(self.directory_fd, file_name, where, operation, wait)
            finally:
                _undo(self.directory_fd, aux_name, aux)
        _undo(self.directory_fd, aux_name, aux)
        return _flock(self.directory_fd, file_name, where, operation, wait)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            _undo(self.directory_fd, lock_file_name(self.name), self.fd)
            self.fd = -1
        if self.directory_fd >= 0:
            os.close(self.directory_fd)
            self.directory_fd = -1
            self._lvmlockd_unlock()


_held: list[VgLock] = []


def released_while(read: Callable[[], T]) -> T:
    """Run `read` (a passphrase prompt) with no lock of this process held, then lock again as before.

    Locks are taken again in the order they were first taken (global before
    VGs, as every command takes them), and each holder's `revalidate` then
    refuses to go on if its VG changed while it was not locked.
    """
    held = list(_held)
    for lock in reversed(held):
        lock.release()
    try:
        result = read()
    finally:
        for lock in held:
            lock.acquire()
    try:
        for lock in held:
            if lock.revalidate is not None:
                lock.revalidate()
    except BaseException:
        close = getattr(result, "close", None)
        if close is not None:
            close()  # a passphrase that will not be used is wiped now
        raise
    return result
