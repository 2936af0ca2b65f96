"""The dm ioctl layer against linux/dm-ioctl.h, byte by byte, without a kernel.

The oracle for the layouts is ctypes: the structs are re-declared below from
the C header and ctypes lays them out with the platform C compiler's rules,
independently of lvcrypt's struct codes.  Replies are built the way
drivers/md/dm-ioctl.c writes them.  The real kernel exchange is tested in the
guest (tests/kernel/test_dm_ioctl.py).
"""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from lvcrypt.activate import dm_ioctl as dm
from lvcrypt.errors import DeviceError, LvcryptError


class CDmIoctl(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32 * 3), ("data_size", ctypes.c_uint32),
                ("data_start", ctypes.c_uint32), ("target_count", ctypes.c_uint32),
                ("open_count", ctypes.c_int32), ("flags", ctypes.c_uint32), ("event_nr", ctypes.c_uint32),
                ("padding", ctypes.c_uint32), ("dev", ctypes.c_uint64), ("name", ctypes.c_char * 128),
                ("uuid", ctypes.c_char * 129), ("data", ctypes.c_char * 7)]


class CDmTargetSpec(ctypes.Structure):
    _fields_ = [("sector_start", ctypes.c_uint64), ("length", ctypes.c_uint64), ("status", ctypes.c_int32),
                ("next", ctypes.c_uint32), ("target_type", ctypes.c_char * 16)]


class CDmNameList(ctypes.Structure):
    _fields_ = [("dev", ctypes.c_uint64), ("next", ctypes.c_uint32)]


class CDmTargetVersions(ctypes.Structure):
    _fields_ = [("next", ctypes.c_uint32), ("version", ctypes.c_uint32 * 3)]


class CDmTargetDeps(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("padding", ctypes.c_uint32)]


class CDmTargetMsg(ctypes.Structure):
    _fields_ = [("sector", ctypes.c_uint64)]


def c_size_without_tail_padding(c_struct: type[ctypes.Structure]) -> int:
    """sizeof up to the end of the last field: the flexible array member starts there."""
    last = c_struct._fields_[-1][0]
    return getattr(c_struct, last).offset + getattr(c_struct, last).size


PAIRS = [(dm.DmIoctl, CDmIoctl), (dm.DmTargetSpec, CDmTargetSpec), (dm.DmNameList, CDmNameList),
         (dm.DmTargetVersions, CDmTargetVersions), (dm.DmTargetDeps, CDmTargetDeps),
         (dm.DmTargetMsg, CDmTargetMsg)]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=[pair[0].__name__ for pair in PAIRS])
def test_every_field_sits_where_the_c_compiler_puts_it(ours, theirs):
    assert [name for name, _ in ours.FIELDS] == [name for name, _ in theirs._fields_]
    for name, _ in ours.FIELDS:
        assert ours.offset_of(name) == getattr(theirs, name).offset, name
    assert ours.STRUCT.size == c_size_without_tail_padding(theirs)


def test_header_size_and_documented_offsets():
    assert dm.HEADER_SIZE == ctypes.sizeof(CDmIoctl) == 312
    assert (dm.DmIoctl.offset_of("dev"), dm.DmIoctl.offset_of("name"), dm.DmIoctl.offset_of("uuid")) == \
        (40, 48, 176)
    assert dm.DmTargetSpec.STRUCT.size == ctypes.sizeof(CDmTargetSpec) == 40
    # dm_name_list's name starts right after `next`, before the struct's own tail padding.
    assert dm.DmNameList.STRUCT.size == 12 and ctypes.sizeof(CDmNameList) == 16


def test_ioctl_numbers_are_iowr_0xfd_with_the_header_size():
    def iowr(number: int) -> int:
        return (3 << 30) | (ctypes.sizeof(CDmIoctl) << 16) | (0xFD << 8) | number

    names = ["DM_VERSION", "DM_REMOVE_ALL", "DM_LIST_DEVICES", "DM_DEV_CREATE", "DM_DEV_REMOVE",
             "DM_DEV_RENAME", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_DEV_WAIT", "DM_TABLE_LOAD",
             "DM_TABLE_CLEAR", "DM_TABLE_DEPS", "DM_TABLE_STATUS", "DM_LIST_VERSIONS", "DM_TARGET_MSG"]
    assert [getattr(dm, name) for name in names] == [iowr(number) for number in range(len(names))]
    assert dm.DM_VERSION == 0xC138FD00  # as strace shows dmsetup's first ioctl


def test_flag_bits_match_the_header():
    assert (dm.DM_READONLY_FLAG, dm.DM_SUSPEND_FLAG, dm.DM_PERSISTENT_DEV_FLAG, dm.DM_STATUS_TABLE_FLAG,
            dm.DM_ACTIVE_PRESENT_FLAG, dm.DM_INACTIVE_PRESENT_FLAG, dm.DM_BUFFER_FULL_FLAG,
            dm.DM_SKIP_LOCKFS_FLAG, dm.DM_NOFLUSH_FLAG, dm.DM_QUERY_INACTIVE_TABLE_FLAG, dm.DM_UUID_FLAG,
            dm.DM_SECURE_DATA_FLAG, dm.DM_DEFERRED_REMOVE) == \
        (1, 2, 8, 16, 32, 64, 256, 1024, 2048, 4096, 1 << 14, 1 << 15, 1 << 17)


def test_request_header_fields_equal_a_c_struct_filled_the_same_way():
    buffer = dm.encode_request("vg0-lv1", "LVM-abc", flags=dm.DM_READONLY_FLAG | dm.DM_SECURE_DATA_FLAG,
                               data=b"XYZ", target_count=2, event_nr=7, dev=os.makedev(253, 4), size=4096)
    expected = CDmIoctl()
    expected.version[:] = [4, 0, 0]
    expected.data_size = 4096
    expected.data_start = 312
    expected.target_count = 2
    expected.flags = dm.DM_READONLY_FLAG | dm.DM_SECURE_DATA_FLAG
    expected.event_nr = 7
    expected.dev = os.makedev(253, 4)
    expected.name = b"vg0-lv1"
    expected.uuid = b"LVM-abc"
    assert len(buffer) == 4096
    assert bytes(buffer[:312]) == bytes(expected)
    assert buffer[312:315] == b"XYZ" and buffer[315:] == bytes(4096 - 315)


def test_request_grows_to_fit_its_data():
    buffer = dm.encode_request("x", data=bytes(5000), size=1024)
    assert len(buffer) == 312 + 5000
    assert struct.unpack_from("=I", buffer, 12)[0] == len(buffer)


@pytest.mark.parametrize("name", ["n" * 128, "a\0b"])
def test_names_that_do_not_fit_are_refused(name):
    with pytest.raises(DeviceError):
        dm.encode_request(name)
    dm.encode_request("n" * 127)


def test_target_specs_are_8_aligned_with_nul_terminated_params():
    targets = [dm.Target(0, 2048, "linear", "7:0 2048"),
               dm.Target(2048, 100, "crypt", "aes-xts-plain64 :64:logon:lvcrypt:x 0 7:1 0 1 sector_size:4096"),
               dm.Target(2148, 8, "zero", "")]
    data = bytes(dm.encode_targets(targets))
    offset = 0
    for target in targets:
        assert offset % 8 == 0
        spec = CDmTargetSpec.from_buffer_copy(data, offset)
        assert (spec.sector_start, spec.length, spec.status) == (target.start, target.length, 0)
        assert spec.target_type == target.type.encode()
        assert data[offset + 24 + len(target.type):offset + 40] == bytes(16 - len(target.type))
        params_at = offset + 40
        params = target.params.encode()
        assert data[params_at:params_at + len(params) + 1] == params + b"\0"
        assert spec.next == (40 + len(params) + 1 + 7) // 8 * 8
        assert data[params_at + len(params):offset + spec.next] == bytes(offset + spec.next - params_at - len(params))
        offset += spec.next
    assert offset == len(data)


def test_target_type_longer_than_15_bytes_is_refused():
    with pytest.raises(DeviceError):
        dm.encode_targets([dm.Target(0, 1, "t" * 16, "")])


def test_secure_flag_is_set_for_crypt_tables_and_when_asked():
    linear = [dm.Target(0, 8, "linear", "7:0 0")]
    crypt = linear + [dm.Target(8, 8, "crypt", "aes-xts-plain64 :64:logon:k 0 7:0 8")]
    assert dm.table_load_flags(linear) == 0
    assert dm.table_load_flags(crypt) == dm.DM_SECURE_DATA_FLAG
    assert dm.table_load_flags(linear, readonly=True, secure=True) == dm.DM_READONLY_FLAG | dm.DM_SECURE_DATA_FLAG
    assert dm.table_load_flags(crypt, secure=False) == 0


def reply(header_fields: dict, data: bytes, room: int = 0) -> bytearray:
    """A reply as the kernel leaves it: header, then data at data_start, data_size covering it."""
    header = CDmIoctl()
    header.version[:] = [4, 47, 0]
    header.data_start = 312
    header.data_size = 312 + len(data)
    for name, value in header_fields.items():
        setattr(header, name, value)
    return bytearray(bytes(header) + data + bytes(room))


def status_record(start: int, length: int, kind: bytes, text: bytes, next_from_first: int) -> bytes:
    spec = CDmTargetSpec(sector_start=start, length=length, status=0, next=next_from_first, target_type=kind)
    return bytes(spec) + text + b"\0"


def test_decode_table_status_reply_where_next_counts_from_the_first_spec():
    first = status_record(0, 2048, b"linear", b"7:0 2048", 56)
    first += bytes(56 - len(first))
    second = status_record(2048, 4096, b"crypt", b"aes-xts-plain64 :64:logon:lvcrypt:u 0 7:1 0", 0)
    buffer = reply({"target_count": 2, "flags": dm.DM_ACTIVE_PRESENT_FLAG, "name": b"vg-lv"}, first + second,
                   room=64)
    targets = dm.decode_targets(buffer)
    assert [t.line() for t in targets] == ["0 2048 linear 7:0 2048",
                                           "2048 4096 crypt aes-xts-plain64 :64:logon:lvcrypt:u 0 7:1 0"]
    assert "logon" not in repr(targets[1]) and "7:0 2048" in repr(targets[0])


def test_decode_device_info_from_a_status_header():
    buffer = reply({"name": b"vg0-lv0", "uuid": b"LVM-xyz", "dev": os.makedev(253, 3), "open_count": 1,
                    "event_nr": 5, "target_count": 1,
                    "flags": dm.DM_ACTIVE_PRESENT_FLAG | dm.DM_SUSPEND_FLAG | dm.DM_READONLY_FLAG}, b"")
    info = dm.info_from_header(dm.decode_header(buffer))
    assert (info.name, info.uuid, info.major, info.minor, info.open_count, info.event_nr) == \
        ("vg0-lv0", "LVM-xyz", 253, 3, 1, 5)
    assert info.suspended and info.readonly and info.live_table and not info.inactive_table


def name_record(dev: int, name: bytes, tail: bytes | None, next_offset: int) -> bytes:
    record = bytes(CDmNameList(dev=dev, next=next_offset))[:12] + name + b"\0"
    record += bytes(-len(record) % 8)
    if tail is not None:
        record += tail
        record += bytes(-len(record) % 8)
    return record


def test_decode_name_list_with_uuids_as_kernels_since_5_13_write_it():
    tail_a = struct.pack("=II", 3, dm.DM_NAME_LIST_FLAG_HAS_UUID) + b"LVM-aaa\0"
    first = name_record(os.makedev(253, 0), b"vg-a", tail_a, 0)
    first = name_record(os.makedev(253, 0), b"vg-a", tail_a, len(first))
    second = name_record(os.makedev(253, 1), b"vg-b", struct.pack("=II", 0, dm.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID), 0)
    entries = dm.decode_name_list(reply({}, first + second))
    assert entries == [dm.DeviceEntry("vg-a", 253, 0, 3, "LVM-aaa"), dm.DeviceEntry("vg-b", 253, 1, 0, "")]


def test_decode_name_list_of_an_old_kernel_without_tails():
    first = name_record(os.makedev(253, 7), b"old-one", None, 0)
    first = name_record(os.makedev(253, 7), b"old-one", None, len(first))
    second = name_record(os.makedev(253, 8), b"old-two", None, 0)
    entries = dm.decode_name_list(reply({}, first + second))
    assert entries == [dm.DeviceEntry("old-one", 253, 7, 0, None), dm.DeviceEntry("old-two", 253, 8, 0, None)]


def test_decode_empty_name_list():
    assert dm.decode_name_list(reply({}, b"")) == []
    assert dm.decode_name_list(reply({}, bytes(16))) == []


def test_decode_target_versions_and_deps():
    first = bytes(CDmTargetVersions(next=24, version=(ctypes.c_uint32 * 3)(1, 4, 0))) + b"linear\0"
    first += bytes(24 - len(first))
    second = bytes(CDmTargetVersions(next=0, version=(ctypes.c_uint32 * 3)(1, 23, 0))) + b"crypt\0"
    assert dm.decode_versions(reply({}, first + second)) == [dm.TargetVersion("linear", (1, 4, 0)),
                                                             dm.TargetVersion("crypt", (1, 23, 0))]
    deps = bytes(CDmTargetDeps(count=2)) + struct.pack("=2Q", os.makedev(7, 0), os.makedev(259, 1))
    assert dm.decode_deps(reply({}, deps)) == [(7, 0), (259, 1)]


@pytest.mark.parametrize("mangle", ["data_size_beyond_buffer", "unterminated_params", "truncated_deps"])
def test_malformed_replies_are_device_errors(mangle):
    if mangle == "data_size_beyond_buffer":
        buffer = reply({"target_count": 1, "data_size": 10_000}, status_record(0, 1, b"zero", b"", 0))
        call = dm.decode_targets
    elif mangle == "unterminated_params":
        buffer = reply({"target_count": 1}, status_record(0, 1, b"zero", b"abc", 0)[:-1])
        call = dm.decode_targets
    else:
        buffer = reply({}, bytes(CDmTargetDeps(count=3)) + bytes(8))
        call = dm.decode_deps
    with pytest.raises(DeviceError):
        call(buffer)


def test_missing_control_node_names_the_userspace_commands(tmp_path):
    with pytest.raises(LvcryptError) as error:
        dm.DeviceMapper(str(tmp_path / "control"))
    message = str(error.value)
    assert "device-mapper is not available" in message and "lvcrypt mount" in message
    assert error.value.exit_status == 5


def test_control_node_of_a_kernel_without_dm_or_a_wrong_file(tmp_path):
    not_a_control = tmp_path / "control"
    not_a_control.write_bytes(b"")
    with dm.DeviceMapper(str(not_a_control)) as mapper, pytest.raises(DeviceError) as error:
        mapper.version()
    assert "\n" not in str(error.value) and "version" in str(error.value)
