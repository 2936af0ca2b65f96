"""The extent mover's data side: one chunk read through one table stack and written through another,
raw extent copies (pvmove) and the wipes a conversion owes, all in bounded pieces, rate-limited.

Everything here writes only extents that are free in the committed metadata;
the commit that makes them used is the caller's.  Nothing here fsyncs: the
commit's first flush (lvcrypt/store/commit.py) fsyncs every PV of the VG before
any header points at the new mapping, so a chunk copy or a wipe is on disk before
the metadata that counts on it, at the cost of one fsync per PV per chunk instead
of one more per range.  Every caller commits after these (a wipe owed by the
committed record and lost in a crash is done again on resume).  The writeback is
started piece by piece instead, so the disk writes while the next pieces are read
and enciphered.
"""

from __future__ import annotations

import time
from typing import Callable

from lvcrypt.activate.tables import Table
from lvcrypt.activate.userspace import Ciphers, Stack
from lvcrypt.blockfile import BlockFile
from lvcrypt.metadata.model import SECTOR, Area, VolumeGroup
from lvcrypt.records import dataclass, field

PIECE = 1 << 20  # bytes per read/write: memory stays flat whatever the chunk or LV size
ZEROS = bytes(PIECE)  # wipes write these and the staging buffer is cleared with them, never reallocated

Progress = Callable[[int, int], None]  # (bytes done, bytes in all), after each piece


@dataclass
class Pace:
    """--rate (bytes per second, None: as fast as the disks go) and the progress report, across chunks."""

    rate: int | None = None
    progress: Progress | None = None
    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def advance(self, count: int) -> None:
        self.done += count
        if self.rate:
            ahead = self.done / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)
        if self.progress is not None:
            self.progress(self.done, self.total)


def extent_offset(vg: VolumeGroup, area: Area) -> int:
    """Byte offset of `area`'s first extent on its PV."""
    return (vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * SECTOR


def copy_through(source: Table, target: Table, ciphers: Ciphers, start: int, length: int, pace: Pace) -> None:
    """LV bytes [start, start + length) read through `source` (decrypting) and written through `target`
    (encrypting with the LV's IVs), not synced (the caller's commit does it); the staging buffer is wiped.
    `ciphers` outlive the chunk: the conversion sets them up once."""
    buffer = bytearray(PIECE)
    try:
        with Stack(source, ciphers) as reader, Stack(target, ciphers, writable=True) as writer:
            view = memoryview(buffer)
            for offset in range(start, start + length, PIECE):
                piece = view[:min(PIECE, start + length - offset)]
                reader.readinto(offset, piece)
                writer.write(offset, piece)
                writer.start_writeback()
                pace.advance(len(piece))
    finally:
        buffer[:] = ZEROS


def copy_raw(vg: VolumeGroup, device_of: Callable[[str], str], source: Area, target: Area, count: int,
             pace: Pace) -> None:
    """`count` extents copied byte for byte (ciphertext stays ciphertext: no key), not synced (the caller's
    commit does it)."""
    length = count * vg.extent_bytes
    with BlockFile(device_of(source.pv)) as reader, BlockFile(device_of(target.pv), writable=True) as writer:
        src, dst = extent_offset(vg, source), extent_offset(vg, target)
        for offset in range(0, length, PIECE):
            size = min(PIECE, length - offset)
            writer.write_at(dst + offset, reader.read_at(src + offset, size))
            writer.start_writeback(dst + offset, size)
            pace.advance(size)


def wipe_extents(vg: VolumeGroup, device_of: Callable[[str], str], ranges: list[tuple[Area, int]]) -> None:
    """Overwrite freed extents with zeros, so they keep nothing the conversion was meant to remove; not
    synced (the caller's next commit does it, before it clears the record that owes the wipes)."""
    zeros = memoryview(ZEROS)
    for area, count in ranges:
        with BlockFile(device_of(area.pv), writable=True) as disk:
            start, length = extent_offset(vg, area), count * vg.extent_bytes
            for offset in range(0, length, PIECE):
                size = min(PIECE, length - offset)
                disk.write_at(start + offset, zeros[:size])
                disk.start_writeback(start + offset, size)
