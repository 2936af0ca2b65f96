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
    from concurrent.futures import Future

    from lvcrypt.activate.userspace import Stack

CHUNK = 1 << 20  # bytes per step: what the stack ciphers in one window

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

    start, end = offset, offset + length
    buffers = [memoryview(bytearray(CHUNK)) for _ in range(2)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvcrypt-stream") as pool:
        pending: Future[object] | None = None
        step = 0
        while offset < end:
            view = buffers[step % 2][:min(CHUNK, end - offset)]
            stack.readinto(offset, view)
            if pending is not None:
                pending.result()  # the previous chunk is out: its buffer is free again
            pending = pool.submit(out.write, view)
            offset += len(view)
            step += 1
            progress(offset - start)
        if pending is not None:
            pending.result()
    out.flush()


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
