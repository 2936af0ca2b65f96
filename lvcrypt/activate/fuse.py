"""The userspace backend as a file: a FUSE filesystem holding one file, the decrypted LV.

`lvcrypt mount VG/LV DIR` makes DIR/<lv> readable and writable like the dm
device the kernel would build; it can be loop-attached and hold a real file
system.  The daemon owns the volume key for the life of the mount and wipes
it when the file system is unmounted (`lvcrypt umount DIR`).  One thread:
the table stack is not thread-safe, and the kernel serialises requests to a
single-threaded daemon anyway.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any, Callable

import mfusepy

from lvcrypt.activate.userspace import Stack
from lvcrypt.errors import LvcryptError


class LvFileSystem(mfusepy.Operations):  # type: ignore[misc]
    """The mfusepy operations of one LV file (mfusepy is imported only by `lvcrypt mount`)."""

    use_ns = True

    def __init__(self, stack: Stack, name: str, on_ready: Callable[[], None], on_exit: Callable[[], None]):
        self.stack = stack
        self.name = "/" + name
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.started = time.time_ns()
        self.uid, self.gid = os.getuid(), os.getgid()

    def _fail(self, code: int) -> Exception:
        return mfusepy.FuseOSError(code)

    def init(self, path: str) -> None:
        self.on_ready()

    def destroy(self, path: str) -> None:
        self.on_exit()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        common = {"st_uid": self.uid, "st_gid": self.gid, "st_atime": self.started, "st_mtime": self.started,
                  "st_ctime": self.started}
        if path == "/":
            return {**common, "st_mode": stat.S_IFDIR | 0o700, "st_nlink": 2}
        if path == self.name:
            return {**common, "st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": self.stack.size,
                    "st_blocks": self.stack.size // 512, "st_blksize": 4096}
        raise self._fail(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        if path != "/":
            raise self._fail(errno.ENOTDIR)
        return [".", "..", self.name[1:]]

    def open(self, path: str, flags: int) -> int:
        if path != self.name:
            raise self._fail(errno.ENOENT)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        size = max(0, min(size, self.stack.size - offset))
        try:
            return self.stack.read(offset, size)
        except (LvcryptError, OSError):
            raise self._fail(errno.EIO) from None

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if offset >= self.stack.size:
            raise self._fail(errno.ENOSPC)
        data = data[:self.stack.size - offset]
        try:
            self.stack.write(offset, data)
        except (LvcryptError, OSError):
            raise self._fail(errno.EIO) from None
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if length != self.stack.size:
            raise self._fail(errno.EPERM)  # an LV's size changes with lvextend/lvreduce, not truncate
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self.stack.sync()
        return 0

    def release(self, path: str, fh: int) -> int:
        self.stack.sync()
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": self.stack.size // 4096, "f_bfree": 0,
                "f_bavail": 0, "f_files": 1, "f_ffree": 0, "f_namemax": 255}


def serve(stack: Stack, mountpoint: str, name: str, fsname: str, on_ready: Callable[[], None],
          on_exit: Callable[[], None]) -> None:
    """Run the file system until it is unmounted (blocks)."""
    operations = LvFileSystem(stack, name, on_ready, on_exit)
    mfusepy.FUSE(operations, mountpoint, foreground=True, nothreads=True, fsname=fsname, subtype="lvcrypt")
