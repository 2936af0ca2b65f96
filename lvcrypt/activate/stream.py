"""An LV's bytes to a file and back (`lvcrypt read` and `write`), with the file's copy overlapped.

Moving 1 MiB through a pipe costs a good part of what ciphering it does, so
a second thread does the file side (writing the previous chunk out, or
reading the next one in) while the stack ciphers the current chunk: the user
waits for the longer of the two rather than their sum.  Two chunk buffers:
memory stays flat whatever the length.  A read of one chunk or less stays on
one thread and does not import `concurrent.futures` (several ms at start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable

from lvcrypt.errors import LvcryptError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from lvcrypt.activate.chunk_worker import ChunkWorker
    from lvcrypt.activate.userspace import Stack

CHUNK = 1 << 20  # bytes per step: what the stack ciphers in one window
# From this length on, a read forks a worker process that deciphers every other chunk on another CPU
# (chunk_worker.py); below it, the fork and its pages cost more than the second CPU gives back.
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

    from lvcrypt.activate.chunk_worker import ChunkWorker, spare_cpu

    # Fork before the writer thread starts: the worker process is a copy of this one with one thread.
    worker = ChunkWorker(stack, 2, CHUNK) if length >= WORKER_MIN and spare_cpu() else None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvcrypt-stream") as pool:
            _pipeline_out(stack, worker, pool, offset, length, out, progress)
    finally:
        if worker is not None:
            worker.close()
    out.flush()


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
    and refused.  The next chunk is read ahead only while the device has room
    after the current one, so that input going on past the end is noticed
    with the same reads as without read-ahead.
    """
    from concurrent.futures import ThreadPoolExecutor

    buffers = [memoryview(bytearray(CHUNK)) for _ in range(2)]
    written = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvcrypt-stream") as pool:
        def read_ahead(step: int) -> Future[int | None]:
            return pool.submit(source.readinto, buffers[step % 2])

        pending = read_ahead(0)
        step = 0
        while got := pending.result():
            data = buffers[step % 2][:got]
            step += 1
            room = offset + got < stack.size
            if room:
                pending = read_ahead(step)
            elif offset + got > stack.size:
                stack.write(offset, data[:stack.size - offset])
                stack.sync()
                raise LvcryptError(f"{name}: input is longer than the LV; wrote {written + stack.size - offset} "
                                   f"bytes up to its end")
            stack.write(offset, data)
            offset += got
            written += got
            progress(written)
            if not room:
                pending = read_ahead(step)  # the LV is full: read on only to see whether the input goes on
    stack.sync()
    return written
