"""The binary layer on its own: lvm2's CRC, label, PV header, mda header and the ring placement.

The layouts are checked against lvm2 in test_lvm2_interop.py; here: the CRC against a direct
transcription of lvm2's table-driven loop, round trips, damage detection, and the ring's
invariant that a new copy never overwrites the committed one.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.errors import FormatError, LvcryptError
from lvcrypt.store.crc import INITIAL_CRC, lvm_crc
from lvcrypt.store.label import SECTOR, Label, find_label
from lvcrypt.store.mda import MDA_HEADER_SIZE, MdaHeader, RawLocn, plan_write
from lvcrypt.store.pv_header import DiskLocn, PvHeader

UUID = "qTvfYA-QYNm-NUDf-ruds-QQUg-uhuA-nyRt86"


def _reference_crc(initial: int, data: bytes) -> int:
    """lvm2's calc_crc as written in lib/misc/crc.c: CRC-32 table, no final inversion."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    crc = initial
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@given(st.binary(max_size=700))
def test_crc_is_lvm2s(data: bytes) -> None:
    assert lvm_crc(data) == _reference_crc(INITIAL_CRC, data)
    assert lvm_crc(data[len(data) // 2:], lvm_crc(data[:len(data) // 2])) == lvm_crc(data)


def _header() -> PvHeader:
    return PvHeader(UUID, 64 << 20, [DiskLocn(1 << 20, 0)], [DiskLocn(4096, 1044480), DiskLocn(63 << 20, 1 << 20)],
                    2, 1, [DiskLocn(2 << 20, 1 << 20)])


@pytest.mark.parametrize("sector", [0, 1, 2, 3])
def test_label_and_pv_header_round_trip_in_any_scan_sector(sector: int) -> None:
    label = Label(sector, 32, _header().to_bytes())
    area = bytearray(4 * SECTOR)
    area[sector * SECTOR:(sector + 1) * SECTOR] = label.to_bytes()
    found = find_label(bytes(area))
    assert found is not None and found.sector == sector
    assert PvHeader.parse(found.contents) == _header()
    assert find_label(bytes(4 * SECTOR)) is None


def test_every_damaged_byte_of_a_label_is_detected() -> None:
    good = Label(1, 32, _header().to_bytes()).to_bytes()
    for offset in range(SECTOR):
        damaged = bytearray(good)
        damaged[offset] ^= 0x01
        try:
            parsed = Label.parse(bytes(damaged), 1)
        except FormatError:
            continue
        # Only a damaged magic is not a damaged label: the sector simply holds no label then.
        assert parsed is None and offset < 8, offset


def test_label_in_the_wrong_sector_is_refused() -> None:
    moved = Label(2, 32, _header().to_bytes()).to_bytes()
    with pytest.raises(FormatError, match="belongs in sector 2"):
        Label.parse(moved, 1)


def test_pv_header_lists_must_end_inside_the_sector() -> None:
    endless = PvHeader(UUID, 1 << 30, [DiskLocn(1 << 20, 0)], [DiskLocn(4096 + i, 1) for i in range(40)])
    with pytest.raises(FormatError, match="runs past the label sector"):
        PvHeader.parse(endless.to_bytes()[:SECTOR - 32])


def test_mda_header_round_trip_and_damage() -> None:
    header = MdaHeader(4096, 1044480, RawLocn(512, 1000, 0x1234, 0), RawLocn(1536, 900, 0x99, 0))
    raw = header.to_bytes()
    assert MdaHeader.parse(raw, 4096) == header
    with pytest.raises(FormatError, match="records start"):
        MdaHeader.parse(raw, 8192)
    for offset, problem in ((0, "wrong checksum"), (6, "wrong magic"), (45, "wrong checksum")):
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        with pytest.raises(FormatError, match=problem):
            MdaHeader.parse(bytes(damaged), 4096)


@given(st.binary(min_size=512, max_size=512))
def test_parsers_of_random_bytes_raise_only_format_errors(data: bytes) -> None:
    for parse in (lambda: Label.parse(data, 0), lambda: PvHeader.parse(data[32:]), lambda: MdaHeader.parse(data, 0)):
        try:
            parse()
        except FormatError:
            pass


@settings(max_examples=60, deadline=None)
# Texts of at least 2 bytes: lvm2's overlap test (copied exactly) needs last > start.
@given(st.integers(min_value=8, max_value=40), st.lists(st.integers(min_value=2, max_value=9000), min_size=1,
                                                         max_size=60))
def test_ring_never_overwrites_the_committed_copy(sectors: int, sizes: list[int]) -> None:
    """Writes land inside the ring, after the header, away from the committed text; wrapped
    copies read back whole."""
    start = 4096
    size = sectors * 512
    disk = bytearray(start + size)
    header = MdaHeader(start, size)
    previous: bytes | None = None
    for number, length in enumerate(sizes):
        text = bytes([65 + number % 26]) * (length - 1) + b"\0"
        if length > header.max_text_size:
            with pytest.raises(LvcryptError, match="exceeds the maximum"):
                plan_write(header, text, "test")
            continue
        locn, writes = plan_write(header, text, "test")
        for offset, data in writes:
            assert start + MDA_HEADER_SIZE <= offset and offset + len(data) <= start + size
            disk[offset:offset + len(data)] = data
        if previous is not None:
            old = b"".join(bytes(disk[start + o:start + o + n]) for o, n in header.text_ranges(header.committed))
            assert old == previous, "the new copy overwrote the committed one"
        header.committed = locn
        new = b"".join(bytes(disk[start + o:start + o + n]) for o, n in header.text_ranges(locn))
        assert new == text and locn.offset % 512 == 0
        previous = text
