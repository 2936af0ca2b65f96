"""`store_helpers.digests`, which many tests use to prove a refused command wrote nothing: it reads
only the data runs of sparse images, so it must still see every byte a command could change."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from store_helpers import digests


def sparse(path: Path, size_mib: int = 8) -> str:
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    return str(path)


def poke(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_equal_contents_equal_digests_whatever_is_allocated(tmp_path: Path) -> None:
    a, b = sparse(tmp_path / "a.img"), sparse(tmp_path / "b.img")
    for path in (a, b):
        poke(path, 5000, b"label")
        poke(path, (3 << 20) - 2, b"across a block boundary")
    poke(b, 1 << 20, bytes(70000))  # zeros written over a hole: allocated, the same contents
    poke(b, 3 * 4096, bytes(4096))
    assert digests([a]) == digests([b])
    assert hashlib.sha256(Path(a).read_bytes()).digest() == hashlib.sha256(Path(b).read_bytes()).digest()


def test_one_changed_byte_anywhere_changes_the_digest(tmp_path: Path) -> None:
    path = sparse(tmp_path / "pv.img")
    poke(path, 5000, b"label")
    for offset, byte in ((5001, b"A"), (5000 + 4096, b"\1"), ((8 << 20) - 1, b"\1"), (0, b"\1")):
        before = digests([path])
        poke(path, offset, byte)
        assert digests([path]) != before, offset
    grown = digests([path])
    with open(path, "r+b") as f:
        f.truncate(9 << 20)  # zeros at the end are still a different device
    assert digests([path]) != grown


def test_a_write_through_a_loop_device_is_seen_before_any_sync(loop_devices: Callable[..., list[str]]) -> None:
    device, = loop_devices(1, 200)
    before = digests([device])
    poke(device, 150 << 20, b"\1")  # left in the device's page cache: digests pushes it to the image
    after = digests([device])
    assert after != before
    poke(device, 150 << 20, b"\0")
    assert digests([device]) == before
