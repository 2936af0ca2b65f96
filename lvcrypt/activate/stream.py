"""An LV's bytes to a file and back (`lvcrypt read` and `write`), with the file's copy overlapped when a CPU is idle.

Moving a chunk through a pipe costs a good part of what ciphering it does, so
when a CPU is idle a second thread does the file side (writing the previous
chunk out, or reading the next one in) while the stack ciphers the current
chunk: the user waits for the longer of the two rather than their sum.  Long
runs then also use that CPU: a worker thread ciphers every other chunk with a
twin of the stack (`Stack.twin`: its own ciphers and staging buffers over the
same open PVs), since the sector cipher's loop, like positional I/O, runs
without the GIL.  On a machine whose CPUs are all busy the same steps run one
after the other on this thread (`_Inline`): handing each chunk between threads
that each wait for a CPU cost more CPU per byte and, measured at load 6.5 on
two CPUs, gave no wall time back (issue 14's notes).  Two chunk buffers per
side: memory stays flat whatever the length.  Without threads nothing
imports `concurrent.futures` (several ms at start-up).  Whole pages of the
PVs are written, and read from block devices, around the page cache
(`Stack.bypass_cache`), and the input of a write is enciphered in its own
buffer: each byte crosses one buffer of this process, once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Generic, TypeVar

from lvcrypt.activate.userspace import CHUNK, Stack  # CHUNK: a step is one window of the crypt target
from lvcrypt.blockfile import aligned_buffer
from lvcrypt.errors import LvcryptError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

T = TypeVar("T")

PIPE = 1 << 20  # what a pipe is widened to: Linux's pipe-max-size, the most an unprivileged user may ask for
# From this length on (a read's length, or a write's room on the LV, its input length being unknown), a
# worker thread ciphers every other chunk on another CPU; below it, its setup costs more than it gives back.
WORKER_MIN = 16 << 20

Progress = Callable[[int], None]  # told the bytes done so far after each chunk (the CLI's progress line)


def _widen_pipe(file: BinaryIO) -> None:
    """Let a pipe hold 1 MiB: with the default 64 KiB, each chunk takes 32 reads or writes, and as many
    wake-ups of the process on the other side."""
    import fcntl

    try:
        fcntl.fcntl(file.fileno(), fcntl.F_SETPIPE_SZ, PIPE)
    except (OSError, ValueError, AttributeError):
        pass  # not a pipe (a file, a terminal, a BytesIO), or over the user's pipe quota: the default stands


def _no_progress(done: int) -> None:
    """The default: nobody watches."""


class _Done(Generic[T]):
    """What `_Inline.submit` ran: its result, or its exception raised by `result()` as a thread's would be."""

    def __init__(self, call: Callable[..., T], *args: Any):
        self._error: BaseException | None = None
        try:
            self._value = call(*args)
        except BaseException as error:
            self._error = error

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value


class _Inline:
    """A pool of no threads: what is submitted runs at once, on the caller's thread."""

    def submit(self, call: Callable[..., T], *args: Any) -> _Done[T]:
        return _Done(call, *args)


def copy_out(stack: Stack, offset: int, length: int, out: BinaryIO, progress: Progress = _no_progress) -> None:
    """Write bytes [offset, offset+length) of the stack's top device to `out`."""
    if length == 0:
        return  # nothing to read, and no buffer to make: a mapping cannot be empty
    if length > CHUNK:
        _widen_pipe(out)
        stack.bypass_cache()
    if length <= CHUNK or not spare_cpu():
        _pipeline_out(stack, None, _Inline(), offset, length, out, progress)
        out.flush()
        return
    from concurrent.futures import ThreadPoolExecutor

    worker = stack.twin() if length >= WORKER_MIN else None
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lvcrypt-stream") as pool:
            _pipeline_out(stack, worker, pool, offset, length, out, progress)
    finally:
        if worker is not None:
            worker.close()
    out.flush()


def spare_cpu() -> bool:
    """Whether a second CPU is likely free for the stream's threads: this process may run on several, and
    the load average leaves at least one of them idle.

    The threads wait for each other at every chunk, so on a machine whose
    CPUs are all busy each also waits for its turn on a CPU: measured at
    load 14 on two CPUs with a worker process, a 256 MiB read took 1.3-1.6 s
    with the worker against 0.8-1.0 s without; at load 6.5-7.8 with the
    worker thread, 87-160 MB/s against 266-577 MB/s on one thread, and
    40-50% more CPU per byte (issue 14's notes).
    """
    cpus = len(os.sched_getaffinity(0))
    return cpus > 1 and os.getloadavg()[0] <= cpus - 1


def _pipeline_out(stack: Stack, worker: Stack | None, pool: ThreadPoolExecutor | _Inline, offset: int, length: int,
                  out: BinaryIO, progress: Progress) -> None:
    """Cipher chunk after chunk while a pool thread writes the previous ones out (`_Inline`: one after the other).

    With a worker (the stack's twin), each step is two chunks: this thread
    deciphers the first while a pool thread deciphers the second with the
    twin.  Each side has two buffers, used in turn, so the step's writes
    overlap the next step's ciphering.
    """
    start, end = offset, offset + length
    count = (4 if worker is not None else 2) if length > CHUNK else 1
    buffers = [memoryview(aligned_buffer(min(CHUNK, length))) for _ in range(count)]
    pending: Future[object] | _Done[object] | None = None
    step = 0
    while offset < end:
        mine = buffers[step % 2][:min(CHUNK, end - offset)]
        theirs = None
        if worker is not None and offset + len(mine) < end:
            theirs = buffers[2 + step % 2][:min(CHUNK, end - offset - len(mine))]
            twin = pool.submit(worker.readinto, offset + len(mine), theirs)
        stack.readinto(offset, mine)
        if theirs is not None:
            twin.result()
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
    _widen_pipe(source)
    stack.bypass_cache()
    if not spare_cpu():
        written = _pipeline_in(stack, None, _Inline(), offset, source, name, progress)
        stack.sync()
        return written
    from concurrent.futures import ThreadPoolExecutor

    eligible = stack.size - offset >= WORKER_MIN and stack.whole_sectors_at(offset, CHUNK)
    worker = stack.twin() if eligible else None
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lvcrypt-stream") as pool:
            written = _pipeline_in(stack, worker, pool, offset, source, name, progress)
    finally:
        if worker is not None:
            worker.close()
    stack.sync()
    return written


def _pipeline_in(stack: Stack, worker: Stack | None, pool: ThreadPoolExecutor | _Inline, offset: int,
                 source: BinaryIO, name: str, progress: Progress) -> int:
    """Read the next step's input on the pool's thread (`_Inline`: first) while this step's chunks are enciphered
    and written.

    A step is one chunk, or two with a worker: this thread writes the first
    while a pool thread writes the second with the stack's twin, which
    covers whole encryption sectors of its own (`Stack.whole_sectors_at`),
    so the two never rewrite the same sector.
    """
    # Page-aligned, so that a linear LV's pieces can be written around the page cache as they are.
    buffers = [memoryview(aligned_buffer(CHUNK)) for _ in range(4 if worker is not None else 2)]
    written = 0

    def read_ahead(step: int) -> Future[list[memoryview]] | _Done[list[memoryview]]:
        views = [buffers[step % 2]] + ([buffers[2 + step % 2]] if worker is not None else [])
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
            twin = pool.submit(worker.write, offset + len(pieces[0]), pieces[1], True)
            stack.write(offset, pieces[0], in_place=True)
            twin.result()
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
    """Write the first `limit` bytes of consecutive pieces from `offset`, in this process, enciphering them in
    place (the input buffers are refilled by the next read)."""
    for piece in pieces:
        take = min(len(piece), limit)
        if take:
            stack.write(offset, piece[:take], in_place=True)
        offset += take
        limit -= take
