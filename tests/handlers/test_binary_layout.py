"""The one declaration of every fixed-size binary struct: reading then writing gives the same bytes.

Each on-disk and ioctl struct lvcrypt handles is a `Layout` (or a `Record`,
a dataclass over one layout); a field packed at another offset than it is
read from, or a value lost between the two, shows as a byte that changes in
`pack(unpack(b))`.  Padding is the one part a struct does not keep: it is
written as zeros, so the inputs carry zeros there too.
"""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvcrypt.activate import dm_ioctl, loop
from lvcrypt.binary_layout import Layout, Record
from lvcrypt.errors import FormatError
from lvcrypt.handlers import checkvalue, luks1
from lvcrypt.handlers.luks2 import header as luks2_header
from lvcrypt.store import label, mda, pv_header

LAYOUTS: dict[str, Layout] = {
    "label_header": label.LABEL_HEADER,
    "pv_header": pv_header.PV_HEADER,
    "pv_header_extension": pv_header.PV_HEADER_EXTENSION,
    "mda_header": mda.MDA_HEADER,
    "luks1_phdr": luks1.HEADER_LAYOUT,
    "luks2_hdr_disk": luks2_header.BINARY_LAYOUT,
    "luks_prefix": luks2_header.PREFIX,
    "dm_target_deps_dev": dm_ioctl.DEV_NUMBER,
    "loop_info64": loop.LOOP_INFO64,
    "key_check_block": checkvalue.BLOCK_LAYOUT,
    "key_check_block_crc": checkvalue.CRC_LAYOUT,
}
RECORDS: list[type[Record]] = [pv_header.DiskLocn, mda.RawLocn, luks1.Keyslot, dm_ioctl.DmIoctl,
                               dm_ioctl.DmTargetSpec, dm_ioctl.DmNameList, dm_ioctl.DmNameListTail,
                               dm_ioctl.DmTargetVersions, dm_ioctl.DmTargetDeps, dm_ioctl.DmTargetMsg]
ALL_LAYOUTS = list(LAYOUTS.items()) + [(record.__name__, record.LAYOUT) for record in RECORDS]


def struct_bytes(layout: Layout, data: st.DataObject) -> bytes:
    """Random bytes for each field, zeros for the padding (as every writer leaves it)."""
    raw = b""
    for name, code in layout.fields:
        size = layout.size_of(name)
        raw += bytes(size) if code.endswith("x") else data.draw(st.binary(min_size=size, max_size=size), name)
    return raw


@pytest.mark.parametrize("name, layout", ALL_LAYOUTS, ids=[name for name, _ in ALL_LAYOUTS])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_pack_of_unpack_gives_back_the_same_bytes(name: str, layout: Layout, data: st.DataObject) -> None:
    raw = struct_bytes(layout, data)
    assert len(raw) == layout.size
    assert layout.pack(layout.unpack_from(raw)) == raw
    shifted = bytearray(7) + raw
    assert layout.unpack_from(shifted, 7) == layout.unpack_from(raw)


@pytest.mark.parametrize("record", RECORDS, ids=[record.__name__ for record in RECORDS])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_records_read_and_write_through_their_layout(record: type[Record], data: st.DataObject) -> None:
    assert tuple(item.name for item in fields(record)) == record.LAYOUT.names  # type: ignore[arg-type]
    raw = struct_bytes(record.LAYOUT, data)
    assert record.unpack_from(raw).pack() == raw


def test_sizes_are_the_formats_own() -> None:
    """The sizes lvm2's and cryptsetup's headers give their structs."""
    assert label.LABEL_HEADER.size == 32
    assert pv_header.PV_HEADER.size == 40 and pv_header.DiskLocn.LAYOUT.size == 16
    assert mda.MDA_HEADER.size == 40 and mda.RawLocn.LAYOUT.size == 24
    assert luks1.HEADER_LAYOUT.size == 208 and luks1.Keyslot.LAYOUT.size == 48 and luks1.HEADER_SIZE == 592
    assert luks2_header.BINARY_LAYOUT.size == 4096
    assert luks2_header.BINARY_LAYOUT.offset_of("csum") == 448


def test_byte_order_is_part_of_the_declaration() -> None:
    little = Layout("<", (("a", "H"), ("pad", "2x"), ("b", "2I")))
    big = Layout(">", little.fields)
    values = {"a": 0x0102, "b": (3, 4)}
    assert little.pack(values) == b"\x02\x01\0\0\x03\0\0\0\x04\0\0\0"
    assert big.pack(values) == b"\x01\x02\0\0\0\0\0\x03\0\0\0\x04"
    assert little.names == ("a", "b") and little.offset_of("b") == 4 and little.size_of("pad") == 2
    with pytest.raises(ValueError):
        Layout("@", little.fields)  # native alignment would hide padding the declaration must show


def test_a_buffer_shorter_than_the_struct_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        mda.MDA_HEADER.unpack_from(bytes(mda.MDA_HEADER.size - 1))
    with pytest.raises(FormatError):
        mda.RawLocn.unpack_from(bytes(40), 20)


def test_written_headers_leave_padding_zero_and_checksums_where_declared() -> None:
    """The checksums lvm2 and cryptsetup check sit in the declared fields of what lvcrypt writes."""
    written = label.Label(1, 32, b"x" * 40).to_bytes()
    fields_read = label.LABEL_HEADER.unpack_from(written)
    assert fields_read["crc"] == label.lvm_crc(written[label.LABEL_HEADER.offset_of("offset"):])
    header = mda.MdaHeader(4096, 1 << 20, mda.RawLocn(512, 100, 7, 0)).to_bytes()
    assert mda.MDA_HEADER.unpack_from(header)["checksum"] == mda.lvm_crc(header[4:])
    copy = luks2_header.BinaryHeader(16384, 1, "", "sha256", bytes(64), "u", "", 0).pack(bytes(16384 - 4096))
    layout = luks2_header.BINARY_LAYOUT
    assert copy[layout.offset_of("_padding"):layout.offset_of("csum")] == bytes(184)
    assert copy[layout.offset_of("csum") + 32:4096] == bytes(64 - 32 + 3584)
