"""A writer for online tests: sequence-numbered, checksummed 4 KiB blocks in a ring, each one fdatasync'ed.

Run as `python pattern_writer.py FILE PROGRESS STOP`: block `seq` goes to slot
`seq % SLOTS` of FILE and is synced before the next; PROGRESS (keep it off the
file system under test) holds how many blocks are synced; the writer stops
when STOP exists and prints `<blocks synced> <longest gap between two syncs in ms>`.
After it, every slot must hold the last block written there (`expected_ring`):
a lost or torn write shows as a wrong block.  Standard library only, so it
starts fast in the TCG guest.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time

BLOCK = 4096
SLOTS = 512
MAGIC = b"lvcrypt-online-writer:"


def block(seq: int) -> bytes:
    """Block number `seq`: magic, number, filler derived from it, then the SHA-256 of all that."""
    head = MAGIC + struct.pack("<Q", seq)
    filler = hashlib.shake_256(head).digest(BLOCK - len(head) - 32)
    return head + filler + hashlib.sha256(head + filler).digest()


def expected_ring(count: int) -> bytes:
    """The file after `count` blocks were synced: each slot holds the last block that went there."""
    slots = min(count, SLOTS)
    return b"".join(block(slot + (count - 1 - slot) // SLOTS * SLOTS) for slot in range(slots))


def main(path: str, progress: str, stop: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    counter = os.open(progress, os.O_RDWR | os.O_CREAT, 0o600)
    seq, longest, last = 0, 0.0, time.monotonic()
    while not os.path.exists(stop):
        os.pwrite(fd, block(seq), seq % SLOTS * BLOCK)
        os.fdatasync(fd)
        now = time.monotonic()
        longest, last, seq = max(longest, now - last), now, seq + 1
        os.pwrite(counter, b"%20d" % seq, 0)  # fixed width, never truncated: a reader never sees it empty
    os.close(counter)
    os.close(fd)
    print(seq, round(longest * 1000))


if __name__ == "__main__":
    main(*sys.argv[1:4])
