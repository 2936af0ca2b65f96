"""Positional I/O on a block device or image file: the one wrapper every layer reads and writes PVs with.

The store (labels, metadata areas), the key handlers (keystore areas) and the
userspace data path all open PVs through `BlockFile`; it lives in the bottom
layer so that handlers, which import nothing above it, can use it too.  Every
write goes through `BlockFile.write_at`, one place that tests can interrupt to
simulate a crash between any two writes.

A long stream may bypass the page cache (`BlockFile.bypass_cache`): copying
each page into or out of the cache costs the kernel about as much CPU as the
sector cipher, and nobody reads the data back soon.  cryptsetup's own bulk
writes are O_DIRECT too, and dm-crypt reads its device without the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat

from lvcrypt.errors import DeviceError
from lvcrypt.command_mode import test_mode

DIRECT_ALIGN = mmap.PAGESIZE  # O_DIRECT's alignment of offsets, lengths and buffers (block sizes are no larger)
HUGE_PAGE = 2 << 20  # x86-64's and arm64's (4 KiB pages) transparent huge page


def aligned_buffer(size: int) -> mmap.mmap:
    """A zeroed, writable buffer at a page boundary: what an O_DIRECT write needs (`BlockFile.bypass_cache`).

    Private, so that a size in whole huge pages gets them (Linux aligns such anonymous mappings; a shared
    one would be shmem, whose huge pages are off by default): an O_DIRECT write then pins one page per
    2 MiB instead of 512, and the cipher and the kernel's copies walk one TLB entry.  Where the kernel has
    no huge pages for it, the buffer is made of ordinary pages, as before."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if size % HUGE_PAGE == 0 and hasattr(mmap, "MADV_HUGEPAGE"):
        buffer.madvise(mmap.MADV_HUGEPAGE)
    return buffer


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
        self._block = stat.S_ISBLK(mode)
        if self._block:
            # Another host may have written a shared disk since this one cached its blocks (a shared VG
            # under lvmlockd): drop the clean cached pages so reads see the disk, as lvm2's O_DIRECT does.
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        self._direct = -1  # the same file opened O_DIRECT, once `bypass_cache` asks for it
        self._use_direct = False  # writes through it; cleared for good by a buffer the kernel refuses (the fd stays)
        self._reads_direct = False  # reads through it (a block device's)

    def bypass_cache(self) -> None:
        """Write whole, page-aligned runs from page-aligned buffers (`aligned_buffer`) with O_DIRECT from now
        on, other writes as before; on a block device, read such runs so too.  Whole pages only, so that no
        page is both in the cache and written around it; the kernel writes a range's dirty cached pages out
        before it reads the range around the cache, so reads see every write.  Reads of a block device only:
        its cache was emptied at open, so a buffered read would go to the disk all the same and add a copy,
        while a file's cached pages may spare the disk.  `flush` keeps its meaning (the fsync also flushes
        the disk's cache).  A file system that refuses O_DIRECT (tmpfs) leaves every run buffered."""
        if self._direct >= 0 or not (self.writable or self._block):
            return
        access = os.O_RDWR if self.writable else os.O_RDONLY
        try:
            self._direct = os.open(f"/proc/self/fd/{self.fd}", access | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            return
        self._use_direct = self.writable
        self._reads_direct = self._block

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise DeviceError(f"{self.path}: short read of {length} bytes at {offset} (device too small?)")
        return data

    def readinto_at(self, offset: int, buffer: memoryview) -> None:
        """Fill `buffer` from `offset` without an intermediate copy (the data path's large reads), around the
        page cache where `bypass_cache` asked for it and the run allows."""
        done = 0
        while done < len(buffer):
            view = buffer[done:]
            got = self._read_direct(offset + done, view) if self._reads_direct else 0
            if not got:
                got = os.preadv(self.fd, [view], offset + done)
            if got <= 0:
                raise DeviceError(f"{self.path}: short read at byte {offset + done}")
            done += got

    def _read_direct(self, offset: int, view: memoryview) -> int:
        """Bytes read around the page cache: none when the run is not whole pages, or when the kernel finds
        the buffer misaligned (EINVAL, nothing read: this run goes through the cache, the next may not)."""
        if (offset | len(view)) % DIRECT_ALIGN:
            return 0
        try:
            return os.preadv(self._direct, [view], offset)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            return 0

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise DeviceError(f"{self.path}: opened read-only")
        if test_mode():
            return
        view = memoryview(data).cast("B")
        while view:
            written = self._write_direct(offset, view) if self._use_direct else 0
            if not written:
                written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def _write_direct(self, offset: int, view: memoryview) -> int:
        """Bytes written around the page cache: none when the run is not whole pages, or when the kernel
        finds the buffer misaligned (EINVAL, nothing written; this file then stays buffered: the O_DIRECT
        descriptor stays open till `close`, since another thread may be writing through it)."""
        if (offset | len(view)) % DIRECT_ALIGN:
            return 0
        try:
            return os.pwrite(self._direct, view, offset)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self._use_direct = False
            return 0

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
        self._use_direct = self._reads_direct = False
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "BlockFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
