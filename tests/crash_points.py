"""Crashes injected at every write: a forked `lvcrypt` that dies just before its Nth device write.

Shared by the commit crash test (tests/store/test_store_crash.py) and the extent mover's
(tests/store/test_mover_crash.py): the child is the real command in process, so the writes counted
are exactly the ones it makes, and `os._exit` drops everything a real crash would drop.
"""

from __future__ import annotations

import os

from lvcrypt.blockfile import BlockFile
from lvcrypt.cli import main

CRASH_STATUS = 86


def run_until_write(argv: list[str], stop_at: int | None, writer_class: type = BlockFile,
                    quiet: bool = False) -> int:
    """Run `lvcrypt ARGV` in a child that dies just before write number `stop_at` of `writer_class`
    (None: runs to the end); returns the writes done.  `quiet` sends the child's stdout to /dev/null."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        count = 0
        original = writer_class.write_at

        def write_at(self: BlockFile, offset: int, data: bytes | bytearray | memoryview) -> None:
            nonlocal count
            if count == stop_at:
                os.write(writer, str(count).encode())
                os._exit(CRASH_STATUS)
            count += 1
            original(self, offset, data)

        writer_class.write_at = write_at  # type: ignore[attr-defined]
        status = 1
        try:
            if quiet:
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            status = main(argv)
        finally:
            os.write(writer, str(count).encode())
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        done = int(pipe.read() or -1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == (0 if stop_at is None else CRASH_STATUS), (argv, stop_at)
    return done


def snapshot(devices: list[str]) -> dict[str, bytes]:
    """Every device's bytes, to put back before the next crash point."""
    out = {}
    for device in devices:
        with open(device, "rb") as f:
            out[device] = f.read()
    return out


def restore(saved: dict[str, bytes]) -> None:
    for device, data in saved.items():
        fd = os.open(device, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
