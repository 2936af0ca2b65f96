"""Secret buffers for volume keys and passphrases.

Python's `bytes` are immutable and may be copied or left behind by the
allocator, so key material lives in a `bytearray` owned by a `Secret`: the
pages are mlocked where the kernel allows it (so they are not swapped out),
the bytes are overwritten with zeros when the secret is closed, leaves a
`with` block or is garbage collected, and the repr shows only the length.
Libraries that can only return `bytes` (hashlib) still leave short-lived
copies that we cannot wipe; callers keep those to the smallest scope.
mlock, munlock and the wipe itself (OPENSSL_cleanse) are calls into
lvcrypt's compiled module, which every user of a secret loads anyway:
importing ctypes for them cost a 4 KiB read of a crypt LV some 8M
instructions (benchmarks/startup.py).
"""

from __future__ import annotations

import hmac
import io
import os
import stat
import weakref
from types import TracebackType
from typing import BinaryIO

from lvcrypt.crypto._sectors import cleanse_buffer, lock_all, lock_buffer, unlock_all, unlock_buffer
from lvcrypt.errors import HandlerError


class Secret:
    """A fixed-size secret byte buffer that wipes itself.

    The buffer never changes size (resizing would leave the old copy behind),
    so code that builds a secret allocates it first and fills it in place.
    """

    __slots__ = ("_buf", "_view", "locked", "named_key_file", "__weakref__")

    def __init__(self, source: int | bytes | bytearray | memoryview = 0):
        # Read from a key file given by name (not typed, not `--key-file -`): cryptsetup's plain
        # mode takes such bytes as the key itself, so the hashed handler must know (issue 15).
        self.named_key_file = False
        size = source if isinstance(source, int) else len(source)
        self._buf: bytearray | None = bytearray(size)
        # The view exports the buffer, so the bytearray cannot be resized (leaving its old copy behind).
        self._view = memoryview(self._buf) if size else None
        self.locked = self._view is not None and lock_buffer(self._view)
        if self.locked:
            _locked[id(self)] = self
        if not isinstance(source, int):
            self._buf[:] = source

    @classmethod
    def adopt(cls, buffer: bytearray) -> "Secret":
        """Take over a bytearray the caller filled, wiping the caller's copy."""
        secret = cls(buffer)
        wipe(buffer)
        return secret

    @property
    def buffer(self) -> bytearray:
        """The bytes themselves; valid only until `close`."""
        if self._buf is None:
            raise ValueError("secret already wiped")
        return self._buf

    def __len__(self) -> int:
        return 0 if self._buf is None else len(self._buf)

    def __bytes__(self) -> bytes:
        raise TypeError("a Secret is not converted to bytes; use .buffer")

    def __repr__(self) -> str:
        state = "wiped" if self._buf is None else f"{len(self._buf)} bytes"
        return f"<Secret {state}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.buffer, other.buffer)

    __hash__ = None  # type: ignore[assignment]  # mutable and secret: never a dict key

    def slice(self, start: int, end: int) -> "Secret":
        """A new secret holding a part of this one (key files with offset/size)."""
        return Secret(memoryview(self.buffer)[start:end])

    def close(self) -> None:
        """Overwrite the bytes with zeros and release the locked pages."""
        if self._buf is None:
            return
        if self._view is not None:
            cleanse_buffer(self._view)
            if self.locked:
                unlock_buffer(self._view)
                _locked.pop(id(self), None)
            self._view = None
        self._buf = None
        self.locked = False

    def __enter__(self) -> "Secret":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


# The secrets whose pages are mlocked now, by id (a Secret is unhashable: it is mutable and secret).
_locked: "weakref.WeakValueDictionary[int, Secret]" = weakref.WeakValueDictionary()


# How many holders want the process's memory locked: only the outermost lock and unlock call the C library.
_lock_depth = [0]


def lock_process_memory() -> str | None:
    """mlockall(MCL_CURRENT | MCL_FUTURE), as lvm2's critical section (lib/mm/memlock.c) while a device is
    suspended: no page of this process may then need I/O (swap, a file) that could wait on that device.
    Returns None, or why the memory could not be locked (the caller warns and goes on, as lvm2).  Calls
    nest: locking a command-sized process costs tens of milliseconds of CPU (hundreds on a loaded
    machine), so a conversion locks once around all its chunks and each chunk's suspend finds it done."""
    _lock_depth[0] += 1
    if _lock_depth[0] > 1:
        return None
    error = lock_all()
    return os.strerror(error) if error else None


def unlock_process_memory() -> None:
    """munlockall, which also takes every secret's own lock away: those are taken again, so that key
    material stays unswappable after the critical section.  Only the outermost call unlocks."""
    _lock_depth[0] = max(0, _lock_depth[0] - 1)
    if _lock_depth[0]:
        return
    unlock_all()
    for key, secret in list(_locked.items()):
        view = secret._view
        secret.locked = view is not None and lock_buffer(view)
        if not secret.locked:
            del _locked[key]


def wipe(buffer: bytearray | memoryview) -> None:
    """Zero a temporary mutable buffer in place (intermediate key material)."""
    view = memoryview(buffer).cast("B")
    view[:] = bytes(len(view))


# cryptsetup's DEFAULT_KEYFILE_SIZE_MAXKB: a key file with no --keyfile-size is read up to this.
KEYFILE_LIMIT = 8192 * 1024


def read_key_file(source: BinaryIO, offset: int = 0, size: int | None = None,
                  limit: int = KEYFILE_LIMIT) -> Secret:
    """Key-file contents (after `offset`, `size` bytes) straight into a Secret, by cryptsetup's rules.

    `readinto` fills the locked buffer directly, so the key file's bytes never
    exist as an immutable copy.  The rules and messages are those of
    cryptsetup 2.6 (lib/utils.c, crypt_keyfile_device_read), so a key file
    either gives both tools the same passphrase or both refuse it:
    `size` None or 0 means "to the end" (at most `limit` bytes); a given size
    must be there in full; an offset past the end of a file, or past what a
    pipe delivers, is refused; a pipe that delivers nothing is refused (an
    empty regular file is an empty passphrase, as in cryptsetup).
    """
    if source.isatty():
        raise HandlerError("Cannot read keyfile from a terminal.")
    regular = _is_regular(source)
    if regular and offset > _remaining(source):
        raise HandlerError("Cannot seek to requested keyfile offset.")
    if offset and not _skip(source, offset):
        raise HandlerError("Cannot seek to requested keyfile offset.")
    unlimited = not size
    wanted = limit + 1 if unlimited else size
    buffer = bytearray(wanted if not regular else min(wanted, _remaining(source)))
    try:
        filled = _fill(source, buffer)
        if not filled and not regular:
            raise HandlerError("Nothing to read on input.")
        if unlimited and filled > limit:
            raise HandlerError("Maximum keyfile size exceeded.")
        if not unlimited and filled != size:
            raise HandlerError("Cannot read requested amount of data.")
        return Secret(memoryview(buffer)[:filled])
    finally:
        wipe(buffer)


def _fill(source: BinaryIO, buffer: bytearray) -> int:
    """Read until `buffer` is full or the input ends; returns the count."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        count = source.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def _is_regular(source: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(source.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return source.seekable()


def _remaining(source: BinaryIO) -> int:
    """Bytes between the current position and the end of a seekable source."""
    here = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(here)
    return end - here


def _skip(source: BinaryIO, offset: int) -> bool:
    """Discard `offset` bytes; False when the input ends first (cryptsetup's keyfile_seek)."""
    if source.seekable():
        source.seek(offset, io.SEEK_CUR)
        return True
    while offset:
        chunk = source.read(min(offset, 65536))
        if not chunk:
            return False
        offset -= len(chunk)
    return True


def require_passphrase(passphrase: Secret) -> None:
    """An empty passphrase never protects a new keyslot: anyone could open it.

    cryptsetup takes one from an empty key file; lvcrypt refuses, at every
    place a keyslot is created, so no command or API caller can make one.
    """
    if not len(passphrase):
        raise HandlerError("empty passphrase: a new keyslot needs a passphrase of at least one byte")
