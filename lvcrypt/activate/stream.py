"""An LV's bytes to a file and back (`lvcrypt read` and `write`), with the file's copy overlapped.

Moving 1 MiB through a pipe costs a good part of what ciphering it does, so
a second thread does the file side (writing the previous chunk out, or
reading the next one in) while the stack ciphers the current chunk: the user
waits for the longer of the two rather than their sum.  Long runs also use
the second CPU: a forked worker (`chunk_worker.py`) ciphers every other
chunk.  Two chunk buffers per process: memory stays flat whatever the
length.  A read of one chunk or less stays on one thread and does not import
`concurrent.futures` (several ms at start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable

from lvcrypt.errors import LvcryptError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from lvcrypt.activate.chunk_worker import ChunkWorker
    from lvcrypt.activate.userspace import Stack

CHUNK = 1 << 20  # bytes per step: what the stack ciphers in one window
# From this length on (a read's length, or a write's room on the LV, its input length being unknown), the
# stream forks a worker process that ciphers every other chunk on another CPU (chunk_worker.py); below it,
# the fork and its copied pages (a few ms) cost more than the second CPU gives back.
WORKER_MIN = 16 * CHUNK

Progress = Callable[[int], None]  # told the bytes done so far after each chunk (the CLI's progress line)


def _no_progress(done: int) -> None:
    """The default: nobody watches."""


def copy_out(stack: Stack, offset: int, length: int, out: BinaryIO, progress: Progress = _no_progress) -> None:
    """Write bytes [offset, offset+length) of the stack's top device to `out`."""
    if length <= CHUNK:
        view = memoryview(bytearray(length))
        stack.readinto(offset, view)
        out.write(view)
        out.flush()
        progress(length)
        return
    from concurrent.futures import ThreadPoolExecutor

    # Fork before the writer thread starts: the worker process is a copy of this one with one thread.
    worker = _start_worker(stack) if length >= WORKER_MIN else None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvcrypt-stream") as pool:
            _pipeline_out(stack, worker, pool, offset, length, out, progress)
    finally:
        if worker is not None:
            worker.close()
    out.flush()


def _start_worker(stack: Stack) -> ChunkWorker | None:
    """A worker process for the stream, or None on one CPU or when the system refuses a process
    or its shared memory (the stream then runs in this process alone, as fast as one CPU allows)."""
    from lvcrypt.activate.chunk_worker import ChunkWorker, spare_cpu

    if not spare_cpu():
        return None
    try:
        return ChunkWorker(stack, 2, CHUNK)
    except OSError:
        return None


def _pipeline_out(stack: Stack, worker: ChunkWorker | None, pool: ThreadPoolExecutor, offset: int, length: int,
                  out: BinaryIO, progress: Progress) -> None:
    """Cipher chunk after chunk while the pool's thread writes the previous ones out.

    With a worker, each step is two chunks: this process deciphers the first
    while the worker deciphers the second.  Each has two buffers, used in
    turn, so the step's writes overlap the next step's ciphering.
    """
    start, end = offset, offset + length
    buffers = [memoryview(bytearray(CHUNK)) for _ in range(2)]
    pending: Future[object] | None = None
    step = 0
    while offset < end:
        mine = buffers[step % 2][:min(CHUNK, end - offset)]
        theirs = None
        if worker is not None and offset + len(mine) < end:
            theirs = worker.slots[step % 2][:min(CHUNK, end - offset - len(mine))]
            worker.submit(offset + len(mine), len(theirs), step % 2)
        stack.readinto(offset, mine)
        if theirs is not None:
            worker.result()
        if pending is not None:
            pending.result()  # the previous step is out: its buffers are free again
        pending = pool.submit(_write_all, out, mine, theirs)
        offset += len(mine) + (len(theirs) if theirs is not None else 0)
        step += 1
        progress(offset - start)
    if pending is not None:
        pending.result()


def _write_all(out: BinaryIO, *views: memoryview | None) -> None:
    for view in views:
        if view is not None:
            out.write(view)


def copy_in(stack: Stack, offset: int, source: BinaryIO, name: str, progress: Progress = _no_progress) -> int:
    """Write `source` to the stack's top device from `offset` until its end; return the byte count.

    Input longer than the device is written up to the device's end, synced,
    and refused.  The next step's input is read ahead only while the device
    has room after the current one, so that input going on past the end is
    noticed with the same reads as without read-ahead.
    """
    from concurrent.futures import ThreadPoolExecutor

    eligible = stack.size - offset >= WORKER_MIN and stack.whole_sectors_at(offset, CHUNK)
    worker = _start_worker(stack) if eligible else None  # forked before the reading thread starts
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvcrypt-stream") as pool:
            written = _pipeline_in(stack, worker, pool, offset, source, name, progress)
    finally:
        if worker is not None:
            worker.close()
    stack.sync()
    return written


def _pipeline_in(stack: Stack, worker: ChunkWorker | None, pool: ThreadPoolExecutor, offset: int,
                 source: BinaryIO, name: str, progress: Progress) -> int:
    """Read the next step's input on the pool's thread while this step's chunks are enciphered and written.

    A step is one chunk, or two with a worker: this process writes the first
    while the worker writes the second, which covers whole encryption
    sectors of its own (`Stack.whole_sectors_at`), so the two never
    rewrite the same sector.
    """
    buffers = [memoryview(bytearray(CHUNK)) for _ in range(2)]
    written = 0

    def read_ahead(step: int) -> Future[list[memoryview]]:
        views = [buffers[step % 2]] + ([worker.slots[step % 2]] if worker is not None else [])
        return pool.submit(_read_step, source, views)

    pending = read_ahead(0)
    step = 0
    while pieces := pending.result():
        got = sum(len(piece) for piece in pieces)
        step += 1
        room = offset + got < stack.size
        if room:
            pending = read_ahead(step)
        elif offset + got > stack.size:
            _write_pieces(stack, offset, pieces, stack.size - offset)
            stack.sync()
            raise LvcryptError(f"{name}: input is longer than the LV; wrote {written + stack.size - offset} "
                               f"bytes up to its end")
        if worker is not None and len(pieces) == 2:
            worker.submit_write(offset + len(pieces[0]), len(pieces[1]), (step - 1) % 2)
            stack.write(offset, pieces[0])
            worker.result()
        else:
            _write_pieces(stack, offset, pieces, got)
        offset += got
        written += got
        progress(written)
        if not room:
            pending = read_ahead(step)  # the LV is full: read on only to see whether the input goes on
    return written


def _read_step(source: BinaryIO, views: list[memoryview]) -> list[memoryview]:
    """Fill the views in turn from `source`; the filled parts, none at the end of the input."""
    pieces = []
    for view in views:
        got = source.readinto(view) or 0
        if got:
            pieces.append(view[:got])
        if got < len(view):
            break
    return pieces


def _write_pieces(stack: Stack, offset: int, pieces: list[memoryview], limit: int) -> None:
    """Write the first `limit` bytes of consecutive pieces from `offset`, in this process."""
    for piece in pieces:
        take = min(len(piece), limit)
        if take:
            stack.write(offset, piece[:take])
        offset += take
        limit -= take
