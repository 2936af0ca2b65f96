"""XTS tweak expansion in GF(2^128), vectorised with numpy.

XTS encrypts block j of a sector with the tweak ``T0 * alpha^j`` where
``T0 = E_K2(IV)``.  Doing that multiplication one block at a time in Python is
what makes a naive data path slow, so every tweak of a batch is computed here
with a few whole-array operations.  Elements are 128-bit little-endian integers
(IEEE P1619 byte order) held as ``(lo, hi)`` uint64 pairs; multiplying by
``x^r`` is a 128-bit left shift plus a reduction of the bits shifted out by
``x^128 = x^7 + x^2 + x + 1`` (0x87).

Block j = 16q + r (r < 16) gets ``(T0 * x^(16q)) * x^r``: the group starts
``T0 * x^(16q)`` are computed once per sector (steps of x^16, then x^64),
and the per-block level is then nine contiguous array operations in
which the (at most 16) shifted-out bits are reduced by a 65536-entry table.
"""

from __future__ import annotations

import numpy as np

U64 = np.dtype("<u8")

# clmul(v, 0x87) for every 16-bit v: the reduction of up to 16 shifted-out bits.
_V = np.arange(1 << 16, dtype=U64)
REDUCE16 = (_V ^ (_V << np.uint64(1)) ^ (_V << np.uint64(2)) ^ (_V << np.uint64(7))).view(np.int64)
del _V


def mul_xpow(lo: np.ndarray, hi: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) * x^shift for a constant shift; used on one element per group, not per block.

    numpy defines shifts by 64 or more as giving 0, which keeps the word
    boundary free of special cases.
    """
    while shift >= 64:
        lo, hi = hi ^ (hi << np.uint64(1)) ^ (hi << np.uint64(2)) ^ (hi << np.uint64(7)), (
            lo ^ (hi >> np.uint64(63)) ^ (hi >> np.uint64(62)) ^ (hi >> np.uint64(57)))
        shift -= 64
    if shift == 0:
        return lo, hi
    up, down = np.uint64(shift), np.uint64(64 - shift)
    over = hi >> down  # the bits that leave the 128-bit word
    out_hi = (hi << up) | (lo >> down)
    if shift <= 16:
        return (lo << up) ^ REDUCE16[over.view(np.int64)].view(U64), out_hi
    out_lo = (lo << up) ^ over ^ (over << np.uint64(1)) ^ (over << np.uint64(2)) ^ (over << np.uint64(7))
    return out_lo, out_hi ^ (over >> np.uint64(62)) ^ (over >> np.uint64(57))


class TweakExpander:
    """All tweaks ``T0 * x^j`` (j < blocks_per_sector) of many sectors, in two steps.

    `group_starts` computes ``T0 * x^(16q)`` for each group q of 16 blocks; it
    works on one element per group, so callers run it once for many batches
    to spread its per-call cost.  `expand` then derives every block's tweak
    on full-size contiguous arrays against precomputed per-block shift tables
    (numpy broadcasting over a short inner axis costs several times a
    contiguous pass).  Work arrays are preallocated for `max_sectors`; one
    instance per cipher object (not thread-safe).
    """

    def __init__(self, blocks_per_sector: int, max_sectors: int):
        if blocks_per_sector < 16 or blocks_per_sector & (blocks_per_sector - 1):
            raise ValueError("sector size must be a power of two of at least 256 bytes")
        self.blocks = blocks_per_sector
        self.groups = blocks_per_sector // 16
        shape = (max_sectors, self.groups, 16)
        r = np.arange(16, dtype=U64)
        self._up = np.ascontiguousarray(np.broadcast_to(r, shape))
        self._down = np.ascontiguousarray(np.broadcast_to(np.uint64(64) - r, shape))
        self.tweaks = np.empty((max_sectors, blocks_per_sector, 2), dtype=U64)
        self._lo = np.empty(shape, dtype=U64)
        self._hi = np.empty(shape, dtype=U64)
        self._a = np.empty(shape, dtype=U64)
        self._b = np.empty(shape, dtype=U64)
        self._view_cache: dict[int, tuple[np.ndarray, ...]] = {}

    def group_starts(self, t0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of T0 * x^(16q), shape (n, groups), for first tweaks `t0` of shape (n, 2).

        Groups 1-3 by x^16 (table-reduced) from their predecessor, then four
        groups at a time by x^64; group-major so that every step works on
        contiguous rows.  Fewer numpy calls than any doubling scheme.  The
        results are transposed views, not copies: `expand` reads them through
        a broadcast copy that costs the same either way, while making them
        contiguous (an inner loop of `groups` words) was half of this
        function's time at 512-byte sectors.
        """
        n = t0.shape[0]
        starts_lo = np.empty((self.groups, n), dtype=U64)
        starts_hi = np.empty((self.groups, n), dtype=U64)
        starts_lo[0] = t0[:, 0]
        starts_hi[0] = t0[:, 1]
        for group in range(1, min(self.groups, 4)):
            starts_lo[group], starts_hi[group] = mul_xpow(starts_lo[group - 1], starts_hi[group - 1], 16)
        for group in range(4, self.groups, 4):
            starts_lo[group:group + 4], starts_hi[group:group + 4] = mul_xpow(
                starts_lo[group - 4:group], starts_hi[group - 4:group], 64)
        return starts_lo.T, starts_hi.T

    def expand(self, starts_lo: np.ndarray, starts_hi: np.ndarray) -> np.ndarray:
        """Every tweak of the sectors with these group starts: shape (n, blocks, 2).

        The result is a view of an internal buffer, valid until the next call.
        """
        tweaks, out_lo, out_hi, lo, hi, a, b, a_index, b_word, up, down = self._views(starts_lo.shape[0])
        np.copyto(lo, starts_lo[..., None])
        np.copyto(hi, starts_hi[..., None])
        # hi word: hi << r | the top r bits of lo
        np.right_shift(lo, down, out=a)
        np.left_shift(hi, up, out=b)
        np.bitwise_or(a, b, out=out_hi)
        # lo word: lo << r ^ clmul(top r bits of hi, 0x87)
        np.right_shift(hi, down, out=a)
        REDUCE16.take(a_index, out=b_word, mode="clip")
        np.left_shift(lo, up, out=a)
        np.bitwise_xor(a, b, out=out_lo)
        return tweaks

    def _views(self, n: int) -> tuple[np.ndarray, ...]:
        """The work arrays cut to n sectors, made once per n: at 128 KiB per batch, building
        a dozen views per call would cost a few percent."""
        views = self._view_cache.get(n)
        if views is None:
            out = self.tweaks[:n].reshape(n, self.groups, 16, 2)
            a, b = self._a[:n], self._b[:n]
            views = (self.tweaks[:n], out[..., 0], out[..., 1], self._lo[:n], self._hi[:n], a, b,
                     a.view(np.int64), b.view(np.int64), self._up[:n], self._down[:n])
            self._view_cache[n] = views
        return views
