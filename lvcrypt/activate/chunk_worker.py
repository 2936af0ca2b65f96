"""A forked second process that ciphers chunks of a stack, read or written: the streams' second CPU.

Ciphering is numpy and OpenSSL calls on one thread (about a third of
`openssl speed` per CPU second), and threads sharing that work hand the GIL
to each other at every numpy call, which is slower than one thread.  A
process has a GIL of its own: forked once the stack is open, it inherits the
opened PVs and the ciphers' expanded keys (no pipe, file or argument ever
carries a key) and deciphers the chunks its parent asks for into memory
shared with the parent, or enciphers and writes the chunks the parent put
there.  That memory is an anonymous mapping: nothing of the
plaintext reaches /dev/shm or any other file, and the parent wipes it when
the worker is done.

The protocol is one fixed-size request per chunk, (offset, length, slot,
read or write), and one reply, an error message that is empty on success; the worker exits
when its request pipe closes, after wiping its copy of the stack's buffers.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import TYPE_CHECKING

from lvcrypt.errors import LvcryptError

if TYPE_CHECKING:
    from lvcrypt.activate.userspace import Stack

_REQUEST = struct.Struct("<QQIB")  # offset, length, slot, whether to write the slot (else read into it)
_REPLY = struct.Struct("<I")  # length of the error message that follows; 0: the slot holds the bytes


def spare_cpu() -> bool:
    """Whether a second CPU is likely free for a worker: this process may run on several, and the
    load average leaves at least one of them idle.

    The parent and the worker wait for each other at every other MiB, so on
    a machine whose CPUs are all busy each of them also waits for its turn
    on a CPU: measured at load 14 on two CPUs, a 256 MiB read took 1.3-1.6 s
    with the worker against 0.8-1.0 s without; with both CPUs free, 0.12-0.13 s
    against 0.20-0.26 s (issue 14's notes).
    """
    cpus = len(os.sched_getaffinity(0))
    return cpus > 1 and os.getloadavg()[0] <= cpus - 1


class ChunkWorker:
    """A worker process reading `stack` into, or writing it from, `slots` shared buffers of `slot_bytes`.

    Use it as a context manager: leaving it ends the worker, waits for it and
    wipes the shared buffers, also when the parent's work failed.
    """

    def __init__(self, stack: Stack, slots: int, slot_bytes: int):
        self.slot_bytes = slot_bytes
        self._memory = mmap.mmap(-1, slots * slot_bytes)  # anonymous and shared with the child
        self.slots = [memoryview(self._memory)[i * slot_bytes:(i + 1) * slot_bytes] for i in range(slots)]
        child_requests, self._requests = os.pipe()
        self._replies, child_replies = os.pipe()
        try:
            self._pid = os.fork()
        except OSError:
            for descriptor in (child_requests, self._requests, self._replies, child_replies):
                os.close(descriptor)
            raise
        if self._pid == 0:  # the worker: never returns into the parent's code
            status = 1
            try:
                os.close(self._requests)
                os.close(self._replies)
                _serve(stack, self.slots, child_requests, child_replies)
                status = 0
            finally:
                os._exit(status)
        os.close(child_requests)
        os.close(child_replies)

    def submit(self, offset: int, length: int, slot: int) -> None:
        """Ask for bytes [offset, offset+length) of the stack's top device in slot `slot`."""
        self._send(_REQUEST.pack(offset, length, slot, 0))

    def submit_write(self, offset: int, length: int, slot: int) -> None:
        """Ask for the first `length` bytes of slot `slot` to be written at `offset` of the top device."""
        self._send(_REQUEST.pack(offset, length, slot, 1))

    def _send(self, request: bytes) -> None:
        try:
            os.write(self._requests, request)
        except BrokenPipeError:
            raise LvcryptError("the data path's worker process ended unexpectedly") from None

    def result(self) -> None:
        """Wait for the oldest request; its slot then holds the bytes.  Raise the worker's error."""
        header = _read_exact(self._replies, _REPLY.size)
        if len(header) < _REPLY.size:
            raise LvcryptError("the data path's worker process ended unexpectedly")
        (size,) = _REPLY.unpack(header)
        if size:
            raise LvcryptError(_read_exact(self._replies, size).decode(errors="replace"))

    def close(self) -> None:
        if self._requests < 0:
            return
        os.close(self._requests)
        self._requests = -1
        os.waitpid(self._pid, 0)
        os.close(self._replies)
        self._memory[:] = bytes(len(self._memory))
        for view in self.slots:
            view.release()
        try:
            self._memory.close()
        except BufferError:
            pass  # a slice is still referenced (a traceback's frame): the mapping, wiped, goes with it

    def __enter__(self) -> "ChunkWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(stack: Stack, slots: list[memoryview], requests: int, replies: int) -> None:
    """The worker's loop: one request, one reply, until the parent closes the request pipe."""
    try:
        while len(request := _read_exact(requests, _REQUEST.size)) == _REQUEST.size:
            offset, length, slot, write = _REQUEST.unpack(request)
            try:
                if write:
                    stack.write(offset, slots[slot][:length])
                else:
                    stack.readinto(offset, slots[slot][:length])
                message = b""
            except Exception as error:  # reported to the parent, which raises it as its own error
                message = str(error).encode()
            os.write(replies, _REPLY.pack(len(message)) + message)
    finally:
        stack.close()  # wipes this process's copy of the staging buffers


def _read_exact(descriptor: int, size: int) -> bytes:
    """`size` bytes from a pipe, or fewer if it reached its end."""
    data = b""
    while len(data) < size and (more := os.read(descriptor, size - len(data))):
        data += more
    return data
