"""`lvcrypt read` and `write` streams with their worker thread (activate/stream.py, `Stack.twin`).

The worker ciphers every other MiB on a thread of its own with a twin of the
stack: what reaches the output must be the same bytes, in the same order, as
an independent one-call-per-sector decryption of the PV, from any offset;
what is written must decrypt that way to the input; a failure in the worker
must come back as the command's one-line error.  WORKER_MIN is lowered so
that a few MiB take that path, and the load average is not asked: each test
runs with threads (as on an idle machine) and without (all CPUs busy: the
same steps inline).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Callable

import pytest

from activate_helpers import add_crypt_lv, make_vg, mapping, random_key
from lvcrypt.activate import stream
from lvcrypt.activate.stream import CHUNK, copy_in, copy_out
from lvcrypt.activate.tables import CryptTarget, PvDevice, Table, build_table
from lvcrypt.activate.userspace import Stack
from lvcrypt.blockfile import BlockFile, aligned_buffer
from lvcrypt.errors import LvcryptError
from test_userspace_datapath import pv_bytes, reference_decrypt

EXTENTS = 7 * CHUNK // (2 * 32 << 10)  # 32 KiB extents: a read of the LV is three and a half chunks


def _stream_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("lvcrypt-stream")]


def _crypt_table(tmp_path: Path, sector_size: int = 512) -> Table:
    vg, paths = make_vg(tmp_path, pv_count=1, pe_count=EXTENTS + 1)
    add_crypt_lv(vg, "secret", [[("pv0", 1)]], [EXTENTS], sector_size=sector_size)
    return build_table(vg, "secret", paths.__getitem__, lambda spec: mapping("aes-xts-plain64", 512, sector_size))


def _decrypted_pv(table: Table, key: bytearray, sector_size: int = 512) -> bytes:
    (target,) = table.targets
    assert isinstance(target, CryptTarget) and isinstance(target.device, PvDevice)
    return reference_decrypt("aes-xts-plain64", bytes(key), pv_bytes(target.device.path, target.offset,
                                                                   target.length), target.iv_offset, sector_size)


@pytest.fixture(params=[True, False], ids=["threads", "inline"])
def crypt_lv(disk_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
             ) -> tuple[Table, bytearray, bytes]:
    """On a file system that takes O_DIRECT: stream writes go around the page cache there."""
    monkeypatch.setattr(stream, "WORKER_MIN", 2 * CHUNK)
    monkeypatch.setattr(stream, "spare_cpu", lambda: request.param)  # whatever the machine's load now
    key = random_key(512)
    table = _crypt_table(disk_tmp_path)
    plaintext = os.urandom(table.size * 512)
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        stack.write(0, plaintext)
        stack.sync()
    return table, key, plaintext


@pytest.mark.parametrize("offset,length", [(0, None), (4097, 3 * CHUNK + 12345), (CHUNK - 1, 2 * CHUNK + 2)])
def test_the_worker_path_gives_the_bytes_of_an_independent_decryption(crypt_lv: tuple[Table, bytearray, bytes],
                                                                        offset: int, length: int | None) -> None:
    table, key, plaintext = crypt_lv
    independent = _decrypted_pv(table, key)
    assert independent == plaintext
    length = len(plaintext) - offset if length is None else length
    out = io.BytesIO()
    done: list[int] = []
    with Stack(table, {"cryptostore0": key}) as stack:
        copy_out(stack, offset, length, out, done.append)
    assert out.getvalue() == independent[offset:offset + length]
    assert done[-1] == length and done == sorted(done)
    assert not _stream_threads()


@pytest.mark.parametrize("offset", [0, 7 * CHUNK // 2])
def test_an_empty_range_reads_nothing(crypt_lv: tuple[Table, bytearray, bytes], offset: int) -> None:
    """`read --length 0`, or from the LV's end: no bytes and no buffer (a mapping cannot be empty)."""
    table, key, _ = crypt_lv
    out = io.BytesIO()
    with Stack(table, {"cryptostore0": key}) as stack:
        copy_out(stack, offset, 0, out)
    assert out.getvalue() == b"" and not _stream_threads()


def test_a_failure_in_the_worker_is_the_parents_error_and_the_worker_is_gone(
        crypt_lv: tuple[Table, bytearray, bytes]) -> None:
    table, key, _ = crypt_lv
    (target,) = table.targets
    assert isinstance(target, CryptTarget) and isinstance(target.device, PvDevice)
    with Stack(table, {"cryptostore0": key}) as stack:
        # The PV loses its end after the stack opened: the worker's chunk (the second MiB) is past it.
        os.truncate(target.device.path, target.offset * 512 + CHUNK + 4096)
        with pytest.raises(LvcryptError, match="short read"):
            copy_out(stack, 0, 3 * CHUNK, io.BytesIO())
    assert not _stream_threads()


@pytest.mark.parametrize("offset", [0, 4097, 1536])
def test_a_written_stream_decrypts_independently_to_its_input(crypt_lv: tuple[Table, bytearray, bytes],
                                                              offset: int) -> None:
    """From offset 0 the worker writes every other MiB; from 4097 the chunks would share sectors, so it does not.
    From 1536 (whole sectors, with the worker) every window starts inside a page: those writes go through
    the page cache, the whole pages of the other cases around it, and all read back."""
    table, key, before = crypt_lv
    data = os.urandom(3 * CHUNK + 5000)
    done: list[int] = []
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        assert stack.whole_sectors_at(offset, CHUNK) is (offset % 512 == 0)
        assert copy_in(stack, offset, io.BytesIO(data), "vg/secret", done.append) == len(data)
    assert _decrypted_pv(table, key) == before[:offset] + data + before[offset + len(data):]
    assert done[-1] == len(data) and not _stream_threads()


def test_input_longer_than_the_lv_is_written_to_its_end_and_refused(crypt_lv: tuple[Table, bytearray, bytes]) -> None:
    table, key, _ = crypt_lv
    data = os.urandom(table.size * 512 + 7)
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        with pytest.raises(LvcryptError, match=f"input is longer than the LV; wrote {table.size * 512} bytes"):
            copy_in(stack, 0, io.BytesIO(data), "vg/secret")
    assert _decrypted_pv(table, key) == data[:table.size * 512]
    assert not _stream_threads()


def test_a_write_in_place_leaves_the_ciphertext_in_the_buffer_and_the_pv_as_a_staged_write_would(
        crypt_lv: tuple[Table, bytearray, bytes]) -> None:
    """Whole sectors are enciphered in the caller's buffer, which ends up holding what the PV holds; a run
    starting inside a sector goes through the staging buffer and leaves its part of the buffer as it was."""
    table, key, _ = crypt_lv
    (target,) = table.targets
    assert isinstance(target, CryptTarget) and isinstance(target.device, PvDevice)
    data, partial = os.urandom(CHUNK + 8192), os.urandom(100)
    buffer = aligned_buffer(2 * CHUNK)
    buffer[:len(data)] = data
    buffer[CHUNK + 10000:CHUNK + 10100] = partial
    with Stack(table, {"cryptostore0": key}, writable=True) as stack:
        stack.write(4096, memoryview(buffer)[:len(data)], in_place=True)
        stack.write(CHUNK + 12900, memoryview(buffer)[CHUNK + 10000:CHUNK + 10100], in_place=True)
        stack.sync()
    ciphertext = pv_bytes(target.device.path, target.offset, target.length)
    assert buffer[:len(data)] == ciphertext[4096:4096 + len(data)] and buffer[:len(data)] != data
    assert buffer[CHUNK + 10000:CHUNK + 10100] == partial
    decrypted = _decrypted_pv(table, key)
    assert decrypted[4096:4096 + len(data)] == data
    assert decrypted[CHUNK + 12900:CHUNK + 13000] == partial


def test_4096_byte_sectors_are_whole_in_each_chunk_only_from_an_aligned_offset(tmp_path: Path) -> None:
    with Stack(_crypt_table(tmp_path, 4096), {"cryptostore0": random_key(512)}) as stack:
        assert stack.whole_sectors_at(8192, CHUNK)
        assert not stack.whole_sectors_at(512, CHUNK)
        assert not stack.whole_sectors_at(0, CHUNK + 512)


def test_the_twin_shares_the_pvs_but_not_the_ciphers_and_closing_it_leaves_the_stack_working(
        crypt_lv: tuple[Table, bytearray, bytes]) -> None:
    table, key, plaintext = crypt_lv
    with Stack(table, {"cryptostore0": key}) as stack:
        twin = stack.twin()
        assert twin.files == {} and twin.top is not stack.top
        assert twin.read(CHUNK, 8192) == plaintext[CHUNK:CHUNK + 8192]
        twin_cipher = twin.top._ciphers[0]
        assert twin_cipher is not stack.top._ciphers[0]
        twin.close()
        with pytest.raises(ValueError, match="closed"):
            twin_cipher.decrypt(bytes(512), 0)
        assert stack.read(CHUNK, 8192) == plaintext[CHUNK:CHUNK + 8192]


def _direct_descriptors(path: Path) -> int:
    """How many of this process's descriptors have `path` open with O_DIRECT (/proc/self/fdinfo's flags)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                continue
            flags = Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0]
        except OSError:
            continue
        count += bool(int(flags, 8) & os.O_DIRECT)
    return count


def test_reads_of_a_block_device_around_the_page_cache_see_cached_writes_whatever_their_alignment(
        loop_devices: Callable[..., list[str]]) -> None:
    """A block device bypassing the cache reads whole pages into an aligned buffer with O_DIRECT, after the
    kernel writes out what another descriptor left dirty in the cache; a run starting inside a page, a part
    of a page, or a buffer the kernel may refuse (bytearray: not page-aligned) go through the cache."""
    (device,) = loop_devices(1, 16)
    expected = os.urandom(4 * CHUNK)
    with open(device, "r+b") as other:
        other.write(expected)  # buffered, and not synced: dirty in the page cache
    page = memoryview(aligned_buffer(2 * CHUNK))
    with BlockFile(device) as disk:
        disk.bypass_cache()
        assert _direct_descriptors(Path(device)) == 1
        for offset, buffer in [(0, page), (CHUNK + 512, page[:8192]), (2 * CHUNK, page[:4096]),
                               (4096, page[4096:4096 + CHUNK]), (3 * CHUNK, memoryview(bytearray(CHUNK))),
                               (3 * CHUNK - 4096, page[:CHUNK + 4096])]:
            disk.readinto_at(offset, buffer)
            assert buffer == expected[offset:offset + len(buffer)]


def test_an_image_file_read_only_keeps_its_page_cache(disk_tmp_path: Path) -> None:
    """A file's cached pages may spare the disk: reads stay buffered, and no O_DIRECT descriptor is opened."""
    path = disk_tmp_path / "pv.img"
    path.write_bytes(os.urandom(CHUNK))
    page = memoryview(aligned_buffer(CHUNK))
    with BlockFile(str(path)) as disk:
        disk.bypass_cache()
        assert _direct_descriptors(path) == 0
        disk.readinto_at(0, page)
    assert page == path.read_bytes()


def test_writes_around_the_page_cache_read_back_whatever_their_alignment(disk_tmp_path: Path) -> None:
    """Whole pages from an aligned buffer go O_DIRECT; a run starting inside a page, a part of a page, and a
    buffer the kernel may refuse (bytes: not page-aligned) go through the cache; reads see every one."""
    path = disk_tmp_path / "pv.img"
    path.write_bytes(bytes(4 * CHUNK))
    expected = bytearray(4 * CHUNK)
    page = aligned_buffer(CHUNK)
    page[:] = os.urandom(CHUNK)
    runs = [(0, memoryview(page)), (CHUNK + 512, os.urandom(8192)), (2 * CHUNK, memoryview(page)[:4096]),
            (2 * CHUNK + 4096, os.urandom(100)), (3 * CHUNK, os.urandom(CHUNK)), (8192, memoryview(page)[:4096])]
    with BlockFile(str(path), writable=True) as disk:
        disk.bypass_cache()
        assert _direct_descriptors(path) == 1
        for offset, data in runs:
            disk.write_at(offset, data)
            expected[offset:offset + len(data)] = data
            assert disk.read_at(0, len(expected)) == expected
        disk.flush()
    assert path.read_bytes() == expected
