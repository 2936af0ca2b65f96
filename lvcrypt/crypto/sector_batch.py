"""The batch engines behind `sector.SectorCipher`: whole batches of sectors per OpenSSL call, with numpy.

Work is done in batches of whole sectors over preallocated buffers: numpy
views of the caller's buffers, one OpenSSL ECB call per batch for the bulk
cipher, and tweaks computed array-wide (see gf128), because a cipher call per
sector costs more in Python than the encryption itself.  numpy's import is
most of a short command's start-up, so this module loads only when a
`SectorCipher` first needs it (see `sector`).  The IV rules are dm-crypt's
(`sector` lists them).  Instances are not thread-safe; use one per thread.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers import CipherContext

from lvcrypt.crypto.gf128 import U64, TweakExpander
from lvcrypt.crypto.sector import (BLOCK, DEFAULT_BATCH_BYTES, SECTOR_SIZES, Buffer, Key, WholeSectors, ecb,
                                   essiv_cipher, key_view, parsed)
from lvcrypt.crypto.spec import CipherSpec
from lvcrypt.errors import HandlerError

IV_BATCH_BYTES = 4 << 20


class BatchCipher(WholeSectors):
    """Common part: argument checks, batching and IV generation; subclasses do one batch."""

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        if sector_size not in SECTOR_SIZES:
            raise HandlerError(f"sector size {sector_size} is not one of {', '.join(map(str, SECTOR_SIZES))}")
        spec = parsed(spec)
        view = key_view(key)
        spec.check_key_size(view.nbytes)
        self.spec = spec
        self.sector_size = sector_size
        self.key_size = view.nbytes
        self.iv_large_sectors = iv_large_sectors
        self.blocks_per_sector = sector_size // BLOCK
        self._shift = (sector_size // 512).bit_length() - 1
        self.batch_sectors = max(1, batch_bytes // sector_size)
        # IVs and group starts are computed for many batches at once: per-call
        # numpy overhead on these small arrays would otherwise dominate.
        self.iv_batch_sectors = self.batch_sectors * max(1, IV_BATCH_BYTES // (self.batch_sectors * sector_size))
        self._iv_step = 1 if iv_large_sectors else sector_size // 512
        self._iv_steps = np.arange(self.iv_batch_sectors, dtype=U64) * np.uint64(self._iv_step)
        self._ivs = np.zeros((self.iv_batch_sectors, 2), dtype=U64)
        self._ivs_out = bytearray(self.iv_batch_sectors * BLOCK + BLOCK)
        self._essiv = essiv_cipher(spec, view) if spec.iv_mode == "essiv" and spec.chain_mode != "ecb" else None
        self._next_iv = -1  # where the previous call stopped: a call starting there is streaming
        self._ahead: tuple[int, int, tuple[np.ndarray, ...]] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} key={self.key_size * 8} bits sector_size={self.sector_size}>"

    def encrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Encrypt `src` into `dst` (same length; may be the same buffer)."""
        self._run(src, dst, sector, self._encrypt_batch)

    def decrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Decrypt `src` into `dst` (same length; may be the same buffer)."""
        self._run(src, dst, sector, self._decrypt_batch)

    def _run(self, src: Buffer, dst: Buffer, sector: int, batch: Callable[..., None]) -> None:
        length = memoryview(src).nbytes
        if length % self.sector_size:
            raise ValueError(f"{length} bytes is not a whole number of {self.sector_size}-byte sectors")
        if memoryview(dst).nbytes != length:
            raise ValueError("source and destination differ in length")
        if sector < 0 or sector % (self.sector_size // 512):
            raise ValueError(f"sector {sector} is not aligned to the {self.sector_size}-byte sector size")
        shape = (-1, self.blocks_per_sector, 2)
        src64 = np.frombuffer(src, dtype=U64).reshape(shape)
        dst64 = np.frombuffer(dst, dtype=U64).reshape(shape)
        first_iv = sector >> self._shift if self.iv_large_sectors else sector
        total = src64.shape[0]
        for start in range(0, total, self.iv_batch_sectors):
            count = min(self.iv_batch_sectors, total - start)
            state = self._state_for(first_iv + start * self._iv_step, count)
            for first in range(0, count, self.batch_sectors):
                last = min(first + self.batch_sectors, count)
                batch(src64[start + first:start + last], dst64[start + first:start + last],
                      *(part[first:last] for part in state))
        self._next_iv = first_iv + total * self._iv_step

    def _state_for(self, first_iv: int, count: int) -> tuple[np.ndarray, ...]:
        """Per-sector state of `count` sectors from IV `first_iv`, taken from the read-ahead when it has them.

        A call that starts where the previous one stopped is streaming: its
        state is prepared for a whole IV batch ahead, so that a data path
        moving 1 MiB per call pays the per-call setup once per IV batch.
        """
        if self._ahead is not None:
            ahead_first, ahead_count, state = self._ahead
            skip, misaligned = divmod(first_iv - ahead_first, self._iv_step)
            if not misaligned and 0 <= skip and skip + count <= ahead_count:
                return tuple(part[skip:skip + count] for part in state)
        prepared = max(count, self.iv_batch_sectors) if first_iv == self._next_iv else count
        state = self._prepare(self._iv_blocks(first_iv, prepared))
        self._ahead = (first_iv, prepared, state)
        return tuple(part[:count] for part in state)

    def _iv_blocks(self, first_iv: int, n: int) -> np.ndarray:
        """The dm-crypt IVs of n consecutive sectors as (n, 2) little-endian words."""
        ivs = self._ivs[:n]
        np.add(self._iv_steps[:n], np.uint64(first_iv & 0xFFFFFFFFFFFFFFFF), out=ivs[:, 0])
        if self.spec.iv_mode == "null":
            ivs[:] = 0
        elif self.spec.iv_mode == "plain":
            ivs[:, 0] &= np.uint64(0xFFFFFFFF)
        elif self.spec.iv_mode == "plain64be":  # dm-crypt: the big-endian number fills the IV's last 8 bytes
            ivs[:, 1] = ivs[:, 0].byteswap()
            ivs[:, 0] = 0
        if self._essiv is None:
            return ivs
        out = memoryview(self._ivs_out)
        self._essiv.update_into(ivs.data.cast("B"), out)
        return np.frombuffer(out[: n * BLOCK], dtype=U64).reshape(n, 2)

    def _prepare(self, ivs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-sector state for a run of batches (indexed by sector along the first axis)."""
        raise NotImplementedError

    def _encrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        raise NotImplementedError

    def _decrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        raise NotImplementedError


class XtsBatchCipher(BatchCipher):
    """XTS as ECB between two XORs with all tweaks of the batch: C = E_K1(P ^ T) ^ T."""

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        super().__init__(spec, key, sector_size, iv_large_sectors, batch_bytes)
        view = key_view(key)
        half = view.nbytes // 2
        self._data_enc = ecb(self.spec.cipher, view[:half])
        self._data_dec = ecb(self.spec.cipher, view[:half], decrypt=True)
        self._tweak_enc = ecb(self.spec.cipher, view[half:])
        self._tweaks = TweakExpander(self.blocks_per_sector, self.batch_sectors)
        self._t0 = bytearray(self.iv_batch_sectors * BLOCK + BLOCK)
        self._work = bytearray(self.batch_sectors * sector_size + BLOCK)
        self._work_view = memoryview(self._work)
        self._work_sectors = np.frombuffer(self._work, dtype=U64)[: self.batch_sectors * sector_size // 8].reshape(
            self.batch_sectors, self.blocks_per_sector, 2)

    def _prepare(self, ivs: np.ndarray) -> tuple[np.ndarray, ...]:
        """T0 = E_K2(IV) of every sector, expanded to the start of each 16-block group."""
        n = ivs.shape[0]
        t0 = memoryview(self._t0)
        self._tweak_enc.update_into(np.ascontiguousarray(ivs).data.cast("B"), t0)
        return self._tweaks.group_starts(np.frombuffer(t0[: n * BLOCK], dtype=U64).reshape(n, 2))

    def _crypt(self, src: np.ndarray, dst: np.ndarray, starts_lo: np.ndarray, starts_hi: np.ndarray,
               context: CipherContext) -> None:
        tweaks = self._tweaks.expand(starts_lo, starts_hi)
        n = src.shape[0]
        work = self._work_sectors[:n]
        np.bitwise_xor(src, tweaks, out=work)
        # In place; the work buffer's spare block satisfies update_into's size rule.
        context.update_into(self._work_view[:n * self.sector_size], self._work_view)
        np.bitwise_xor(work, tweaks, out=dst)

    def _encrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        self._crypt(src, dst, *state, self._data_enc)

    def _decrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        self._crypt(src, dst, *state, self._data_dec)


class CbcBatchCipher(BatchCipher):
    """CBC restarted at every sector with that sector's IV.

    Decryption is parallel (P_j = D(C_j) ^ C_{j-1}): one ECB call per batch.
    Encryption is a chain inside each sector, so it walks the block columns:
    block j of every sector of the batch in one ECB call.
    """

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        super().__init__(spec, key, sector_size, iv_large_sectors, batch_bytes)
        self._enc = ecb(self.spec.cipher, key_view(key))
        self._dec = ecb(self.spec.cipher, key_view(key), decrypt=True)
        n = self.batch_sectors
        self._column = np.empty((n, 2), dtype=U64)
        self._column_out = bytearray(n * BLOCK + BLOCK)
        self._work = bytearray(n * sector_size + BLOCK)
        self._work64 = np.frombuffer(self._work, dtype=U64)

    def _prepare(self, ivs: np.ndarray) -> tuple[np.ndarray, ...]:
        return (ivs.copy(),)  # the IV buffer is reused by the next preparation

    def _encrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        (ivs,) = state
        n = src.shape[0]
        column = self._column[:n]
        out_view = memoryview(self._column_out)
        chained = np.frombuffer(out_view[: n * BLOCK], dtype=U64).reshape(n, 2)
        previous = ivs
        for j in range(self.blocks_per_sector):
            np.bitwise_xor(src[:, j], previous, out=column)
            self._enc.update_into(column.data.cast("B"), out_view)
            dst[:, j] = chained
            previous = dst[:, j]

    def _decrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        (ivs,) = state
        nbytes = src.nbytes
        view = memoryview(self._work)
        self._dec.update_into(np.ascontiguousarray(src).data.cast("B"), view)
        work = self._work64[: nbytes // 8].reshape(src.shape)
        work[:, 1:] ^= src[:, :-1]
        work[:, 0] ^= ivs
        np.copyto(dst, work)


class EcbBatchCipher(BatchCipher):
    """ECB: every block on its own, no IV; the whole batch is one OpenSSL call each way."""

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        super().__init__(spec, key, sector_size, iv_large_sectors, batch_bytes)
        self._enc = ecb(self.spec.cipher, key_view(key))
        self._dec = ecb(self.spec.cipher, key_view(key), decrypt=True)
        self._work = bytearray(self.batch_sectors * sector_size + BLOCK)
        self._work64 = np.frombuffer(self._work, dtype=U64)

    def _state_for(self, first_iv: int, count: int) -> tuple[np.ndarray, ...]:
        return ()  # no IVs to compute

    def _crypt(self, src: np.ndarray, dst: np.ndarray, context: CipherContext) -> None:
        nbytes = src.nbytes
        context.update_into(np.ascontiguousarray(src).data.cast("B"), memoryview(self._work))
        np.copyto(dst, self._work64[: nbytes // 8].reshape(src.shape))

    def _encrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        self._crypt(src, dst, self._enc)

    def _decrypt_batch(self, src: np.ndarray, dst: np.ndarray, *state: np.ndarray) -> None:
        self._crypt(src, dst, self._dec)


_ENGINES: dict[str, type[BatchCipher]] = {"xts": XtsBatchCipher, "cbc": CbcBatchCipher, "ecb": EcbBatchCipher}


def open_batch_cipher(spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                      batch_bytes: int = DEFAULT_BATCH_BYTES) -> BatchCipher:
    """The batch engine for the spec's chain mode; like `sector.SectorCipher`, it uses the key, never keeps it."""
    return _ENGINES[parsed(spec).chain_mode](spec, key, sector_size, iv_large_sectors, batch_bytes)
