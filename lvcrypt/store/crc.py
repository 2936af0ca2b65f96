"""lvm2's CRC32 (lib/misc/crc.c).

It is the ordinary reflected CRC-32 (polynomial 0xedb88320) but seeded with
0xf597a6cf and without the final inversion, so zlib's C implementation can
compute it: zlib inverts on the way in and out, which we undo.
"""

from __future__ import annotations

import zlib

INITIAL_CRC = 0xF597A6CF


def lvm_crc(data: bytes | bytearray | memoryview, initial: int = INITIAL_CRC) -> int:
    """calc_crc(initial, data) as lvm2 computes it; chainable through `initial`."""
    return zlib.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
