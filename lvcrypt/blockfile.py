"""Positional I/O on a block device or image file: the one wrapper every layer reads and writes PVs with.

The store (labels, metadata areas), the key handlers (keystore areas) and the
userspace data path all open PVs through `BlockFile`; it lives in the bottom
layer so that handlers, which import nothing above it, can use it too.  Every
write goes through `BlockFile.write_at`, one place that tests can interrupt to
simulate a crash between any two writes.
"""

from __future__ import annotations

import os
import stat

from lvcrypt.errors import DeviceError
from lvcrypt.command_mode import test_mode


class BlockFile:
    """An open device or image file."""

    def __init__(self, path: str, writable: bool = False):
        self.path = path
        self.writable = writable
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        try:
            self.fd = os.open(path, flags)
        except FileNotFoundError:
            raise DeviceError(f"{path}: no such device or file") from None
        except PermissionError:
            raise DeviceError(f"{path}: permission denied") from None
        except OSError as error:
            raise DeviceError(f"{path}: cannot open: {error.strerror}") from None
        mode = os.fstat(self.fd).st_mode
        if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
            os.close(self.fd)
            raise DeviceError(f"{path}: not a block device or regular file")
        if stat.S_ISBLK(mode):
            # Another host may have written a shared disk since this one cached its blocks (a shared VG
            # under lvmlockd): drop the clean cached pages so reads see the disk, as lvm2's O_DIRECT does.
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise DeviceError(f"{self.path}: short read of {length} bytes at {offset} (device too small?)")
        return data

    def readinto_at(self, offset: int, buffer: memoryview) -> None:
        """Fill `buffer` from `offset` without an intermediate copy (the data path's large reads)."""
        done = 0
        while done < len(buffer):
            got = os.preadv(self.fd, [buffer[done:]], offset + done)
            if got <= 0:
                raise DeviceError(f"{self.path}: short read at byte {offset + done}")
            done += got

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise DeviceError(f"{self.path}: opened read-only")
        if test_mode():
            return
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def start_writeback(self, offset: int, length: int) -> None:
        """Start writing bytes [offset, offset + length) to the disk without waiting, and drop the pages of
        that range that are clean already: Linux's fadvise(DONTNEED) queues the range's dirty pages for
        writeback before it frees the clean ones.  A long copy calls it piece by piece, so the disk works
        while the next pieces are read and enciphered and the `flush` that makes them durable finds
        little left to write; nor does it fill the page cache with data no one reads again."""
        if not test_mode():
            os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_DONTNEED)

    def flush(self) -> None:
        if test_mode():
            return
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "BlockFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
