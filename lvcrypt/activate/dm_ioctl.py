"""The device-mapper ioctl interface (linux/dm-ioctl.h, version 4) over /dev/mapper/control.

Every request is one buffer: a `struct dm_ioctl` header followed by its data
(target specs with their parameter strings, a new name, a message); replies
come back in the same buffer.  The structs are declared once below, as
`lvcrypt.binary_layout` layouts (field lists with their struct codes), and the
same declaration encodes requests and decodes replies.  Layouts are native (host byte order, the kernel's
alignment), as the kernel reads them; explicit padding fields keep every
offset equal to the C compiler's.

Nothing here builds tables from LVs (tables.py does); this module only speaks
the protocol, so it can be tested byte by byte without a kernel.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Iterable, Sequence

from lvcrypt.binary_layout import Buffer, Layout, Record
from lvcrypt.errors import DeviceError
from lvcrypt.records import dataclass, field

CONTROL_PATH = "/dev/mapper/control"
USERSPACE_HINT = "use `lvcrypt mount` or `lvcrypt read`/`write` for userspace access"
NOT_AVAILABLE = f"device-mapper is not available in this kernel (no /dev/mapper/control): {USERSPACE_HINT}"
NO_DRIVER = f"device-mapper is not available in this kernel (/dev/mapper/control has no driver): {USERSPACE_HINT}"

DM_NAME_LEN = 128
DM_UUID_LEN = 129
DM_MAX_TYPE_NAME = 16
# The oldest interface of major version 4: the kernel accepts any minor not above its own.
INTERFACE_VERSION = (4, 0, 0)
ALIGN = 8

# Flags of dm_ioctl.flags (In: set by the caller; Out: set by the kernel).
DM_READONLY_FLAG = 1 << 0  # In/Out
DM_SUSPEND_FLAG = 1 << 1  # In/Out
DM_EXISTS_FLAG = 1 << 2  # Out (obsolete)
DM_PERSISTENT_DEV_FLAG = 1 << 3  # In: create with the device number in `dev`
DM_STATUS_TABLE_FLAG = 1 << 4  # In: TABLE_STATUS returns the table, not the status
DM_ACTIVE_PRESENT_FLAG = 1 << 5  # Out
DM_INACTIVE_PRESENT_FLAG = 1 << 6  # Out
DM_BUFFER_FULL_FLAG = 1 << 8  # Out: retry with a larger buffer
DM_SKIP_BDGET_FLAG = 1 << 9  # In (ignored by current kernels)
DM_SKIP_LOCKFS_FLAG = 1 << 10  # In
DM_NOFLUSH_FLAG = 1 << 11  # In
DM_QUERY_INACTIVE_TABLE_FLAG = 1 << 12  # In
DM_UEVENT_GENERATED_FLAG = 1 << 13  # Out
DM_UUID_FLAG = 1 << 14  # In: RENAME sets the uuid; LIST_DEVICES returns uuids
DM_SECURE_DATA_FLAG = 1 << 15  # In: the kernel wipes its copies of the buffer
DM_DATA_OUT_FLAG = 1 << 16  # Out
DM_DEFERRED_REMOVE = 1 << 17  # In/Out
DM_INTERNAL_SUSPEND_FLAG = 1 << 18  # Out

DM_NAME_LIST_FLAG_HAS_UUID = 1
DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2


class DmStruct(Record):
    """A struct of the dm ioctl protocol; a reply too short for it is a DeviceError, as every bad reply is."""

    @classmethod
    def unpack_from(cls, buffer: Buffer, offset: int = 0):  # type: ignore[no-untyped-def]
        if offset + cls.LAYOUT.size > len(buffer):
            raise DeviceError(f"device-mapper reply too short for {cls.__name__}")
        return super().unpack_from(buffer, offset)


@dataclass
class DmIoctl(DmStruct):
    """struct dm_ioctl: the header of every request and reply (312 bytes)."""

    LAYOUT = Layout("=", (("version", "3I"), ("data_size", "I"), ("data_start", "I"), ("target_count", "I"),
                          ("open_count", "i"), ("flags", "I"), ("event_nr", "I"), ("padding", "I"), ("dev", "Q"),
                          ("name", f"{DM_NAME_LEN}s"), ("uuid", f"{DM_UUID_LEN}s"), ("data", "7s")))

    version: tuple[int, int, int] = INTERFACE_VERSION
    data_size: int = 0
    data_start: int = 0
    target_count: int = 0
    open_count: int = 0
    flags: int = 0
    event_nr: int = 0
    padding: int = 0
    dev: int = 0
    name: bytes = b""
    uuid: bytes = b""
    data: bytes = b""


@dataclass
class DmTargetSpec(DmStruct):
    """struct dm_target_spec (40 bytes), followed by the NUL-terminated parameter string."""

    LAYOUT = Layout("=", (("sector_start", "Q"), ("length", "Q"), ("status", "i"), ("next", "I"),
                          ("target_type", f"{DM_MAX_TYPE_NAME}s")))

    sector_start: int = 0
    length: int = 0
    status: int = 0
    next: int = 0
    target_type: bytes = b""


@dataclass
class DmNameList(DmStruct):
    """struct dm_name_list (12 bytes + name); event_nr, flags and uuid follow the name, 8-aligned."""

    LAYOUT = Layout("=", (("dev", "Q"), ("next", "I")))

    dev: int = 0
    next: int = 0


@dataclass
class DmNameListTail(DmStruct):
    """The words after a dm_name_list name (kernel 5.13+; zero flags on older kernels)."""

    LAYOUT = Layout("=", (("event_nr", "I"), ("flags", "I")))

    event_nr: int = 0
    flags: int = 0


@dataclass
class DmTargetVersions(DmStruct):
    """struct dm_target_versions (16 bytes + name)."""

    LAYOUT = Layout("=", (("next", "I"), ("version", "3I")))

    next: int = 0
    version: tuple[int, int, int] = (0, 0, 0)


@dataclass
class DmTargetDeps(DmStruct):
    """struct dm_target_deps (8 bytes), followed by `count` u64 device numbers."""

    LAYOUT = Layout("=", (("count", "I"), ("padding", "I")))

    count: int = 0
    padding: int = 0


@dataclass
class DmTargetMsg(DmStruct):
    """struct dm_target_msg (8 bytes), followed by the NUL-terminated message."""

    LAYOUT = Layout("=", (("sector", "Q"),))

    sector: int = 0


# One element of dm_target_deps.dev[], the flexible array after the struct.
DEV_NUMBER = Layout("=", (("dev", "Q"),))

HEADER_SIZE = DmIoctl.STRUCT.size  # 312: sizeof(struct dm_ioctl), where data starts
DATA_START = HEADER_SIZE


def _ioc_readwrite(number: int) -> int:
    """_IOWR(0xfd, number, struct dm_ioctl).

    The same number on every Debian architecture: where the direction field
    is 3 bits wide (powerpc, mips) read|write is 6 << 29, the same bits as 3 << 30.
    """
    read_write = 3
    return (read_write << 30) | (HEADER_SIZE << 16) | (0xFD << 8) | number


DM_VERSION = _ioc_readwrite(0)
DM_REMOVE_ALL = _ioc_readwrite(1)
DM_LIST_DEVICES = _ioc_readwrite(2)
DM_DEV_CREATE = _ioc_readwrite(3)
DM_DEV_REMOVE = _ioc_readwrite(4)
DM_DEV_RENAME = _ioc_readwrite(5)
DM_DEV_SUSPEND = _ioc_readwrite(6)
DM_DEV_STATUS = _ioc_readwrite(7)
DM_DEV_WAIT = _ioc_readwrite(8)
DM_TABLE_LOAD = _ioc_readwrite(9)
DM_TABLE_CLEAR = _ioc_readwrite(10)
DM_TABLE_DEPS = _ioc_readwrite(11)
DM_TABLE_STATUS = _ioc_readwrite(12)
DM_LIST_VERSIONS = _ioc_readwrite(13)
DM_TARGET_MSG = _ioc_readwrite(14)
DM_DEV_SET_GEOMETRY = _ioc_readwrite(15)

COMMAND_NAMES = {DM_VERSION: "version", DM_REMOVE_ALL: "remove all", DM_LIST_DEVICES: "list devices",
                 DM_DEV_CREATE: "create", DM_DEV_REMOVE: "remove", DM_DEV_RENAME: "rename",
                 DM_DEV_SUSPEND: "suspend/resume", DM_DEV_STATUS: "info", DM_DEV_WAIT: "wait",
                 DM_TABLE_LOAD: "table load", DM_TABLE_CLEAR: "table clear", DM_TABLE_DEPS: "deps",
                 DM_TABLE_STATUS: "table/status", DM_LIST_VERSIONS: "list targets",
                 DM_TARGET_MSG: "message", DM_DEV_SET_GEOMETRY: "set geometry"}

SECRET_TARGETS = frozenset({"crypt"})


def align(offset: int) -> int:
    return (offset + ALIGN - 1) & ~(ALIGN - 1)


@dataclass(frozen=True)
class Target:
    """One table line: `start length type params`, in 512-byte sectors.

    The repr leaves out the parameters of crypt targets, which may hold a key.
    """

    start: int
    length: int
    type: str
    params: str = field(repr=False)

    def __repr__(self) -> str:
        shown = "<hidden>" if self.type in SECRET_TARGETS else repr(self.params)
        return f"Target({self.start}, {self.length}, {self.type!r}, {shown})"

    def line(self) -> str:
        """The dmsetup table syntax of this target."""
        return f"{self.start} {self.length} {self.type} {self.params}".rstrip()


@dataclass(frozen=True)
class DeviceInfo:
    """What DM_DEV_STATUS and friends report about one mapped device."""

    name: str
    uuid: str
    major: int
    minor: int
    open_count: int
    event_nr: int
    target_count: int
    flags: int

    @property
    def suspended(self) -> bool:
        return bool(self.flags & DM_SUSPEND_FLAG)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & DM_READONLY_FLAG)

    @property
    def live_table(self) -> bool:
        return bool(self.flags & DM_ACTIVE_PRESENT_FLAG)

    @property
    def inactive_table(self) -> bool:
        return bool(self.flags & DM_INACTIVE_PRESENT_FLAG)


@dataclass(frozen=True)
class DeviceEntry:
    """One device of DM_LIST_DEVICES; `uuid` is None where the kernel does not report it."""

    name: str
    major: int
    minor: int
    event_nr: int
    uuid: str | None


@dataclass(frozen=True)
class TargetVersion:
    """A target type the kernel knows (DM_LIST_VERSIONS)."""

    name: str
    version: tuple[int, int, int]


def _c_string(value: str, limit: int, what: str) -> bytes:
    raw = value.encode()
    if b"\0" in raw or len(raw) >= limit:
        raise DeviceError(f"dm {what} '{value[:40]}' is too long or contains NUL (max {limit - 1} bytes)")
    return raw


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def encode_request(name: str = "", uuid: str = "", flags: int = 0, data: bytes | bytearray = b"",
                   target_count: int = 0, event_nr: int = 0, dev: int = 0, size: int = 0) -> bytearray:
    """A request buffer: the header, then `data` at DATA_START, zero-filled up to `size`.

    `data_size` is the whole buffer, which is also the room the kernel has for its reply.
    """
    total = max(size, DATA_START + len(data))
    header = DmIoctl(data_size=total, data_start=DATA_START, target_count=target_count, flags=flags,
                     event_nr=event_nr, dev=dev, name=_c_string(name, DM_NAME_LEN, "name"),
                     uuid=_c_string(uuid, DM_UUID_LEN, "uuid"))
    buffer = bytearray(total)
    buffer[:HEADER_SIZE] = header.pack()
    buffer[DATA_START:DATA_START + len(data)] = data
    return buffer


def table_load_flags(targets: Sequence[Target], readonly: bool = False, secure: bool | None = None) -> int:
    """Flags of a DM_TABLE_LOAD; `secure` defaults to "the table has a crypt target".

    DM_SECURE_DATA_FLAG makes the kernel wipe its copies of the request,
    which holds the key (hex) or at least the key's keyring description.
    """
    if secure is None:
        secure = any(target.type in SECRET_TARGETS for target in targets)
    return (DM_READONLY_FLAG if readonly else 0) | (DM_SECURE_DATA_FLAG if secure else 0)


def encode_targets(targets: Iterable[Target]) -> bytearray:
    """Target specs for DM_TABLE_LOAD: each spec, its NUL-terminated params, padding to 8 bytes.

    `next` is the distance from this spec to the following one, as the kernel
    expects on load.
    """
    out = bytearray()
    for target in targets:
        kind = _c_string(target.type, DM_MAX_TYPE_NAME, "target type")
        params = target.params.encode() + b"\0"
        size = align(DmTargetSpec.STRUCT.size + len(params))
        spec = DmTargetSpec(sector_start=target.start, length=target.length, next=size, target_type=kind)
        record = spec.pack() + params
        out += record + bytes(size - len(record))
    return out


def decode_header(buffer: bytes | bytearray | memoryview) -> DmIoctl:
    return DmIoctl.unpack_from(buffer)


def _reply_data(buffer: bytes | bytearray | memoryview, header: DmIoctl) -> memoryview:
    """The reply's data area: from data_start to data_size, bounds-checked."""
    if not HEADER_SIZE <= header.data_start <= header.data_size <= len(buffer):
        raise DeviceError("device-mapper reply has an inconsistent data area")
    return memoryview(buffer)[header.data_start:header.data_size]


def _string_at(data: memoryview, offset: int) -> tuple[str, int]:
    """The NUL-terminated string at `offset` and the offset just past its NUL."""
    raw = bytes(data[offset:])
    end = raw.find(b"\0")
    if end < 0:
        raise DeviceError("device-mapper reply has an unterminated string")
    return raw[:end].decode(errors="replace"), offset + end + 1


def decode_targets(buffer: bytes | bytearray | memoryview, header: DmIoctl | None = None) -> list[Target]:
    """Targets of a DM_TABLE_STATUS reply; there `next` counts from the first spec."""
    header = header or decode_header(buffer)
    data = _reply_data(buffer, header)
    targets = []
    offset = 0
    for _ in range(header.target_count):
        spec = DmTargetSpec.unpack_from(data, offset)
        params, _ = _string_at(data, offset + DmTargetSpec.STRUCT.size)
        targets.append(Target(spec.sector_start, spec.length, _text(spec.target_type), params))
        if spec.next <= offset and len(targets) < header.target_count:
            raise DeviceError("device-mapper reply has a target list that does not advance")
        offset = spec.next
    return targets


def decode_name_list(buffer: bytes | bytearray | memoryview, header: DmIoctl | None = None) -> list[DeviceEntry]:
    """Devices of a DM_LIST_DEVICES reply; no devices is an empty data area (or a first dev of 0).

    Since kernel 5.13 each name is followed, 8-aligned, by event_nr, flags
    and (with DM_NAME_LIST_FLAG_HAS_UUID) the uuid; older kernels stop at the
    name, which `next` tells apart.
    """
    header = header or decode_header(buffer)
    data = _reply_data(buffer, header)
    if len(data) < DmNameList.STRUCT.size or DmNameList.unpack_from(data).dev == 0:
        return []
    entries: list[DeviceEntry] = []
    offset = 0
    while True:
        record = DmNameList.unpack_from(data, offset)
        name, after_name = _string_at(data, offset + DmNameList.STRUCT.size)
        tail_at = align(after_name)
        record_end = offset + record.next if record.next else len(data)
        tail = DmNameListTail()
        if tail_at + DmNameListTail.STRUCT.size <= record_end:
            tail = DmNameListTail.unpack_from(data, tail_at)
        uuid = None
        if tail.flags & DM_NAME_LIST_FLAG_HAS_UUID:
            uuid, _ = _string_at(data, tail_at + DmNameListTail.STRUCT.size)
        elif tail.flags & DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID:
            uuid = ""
        entries.append(DeviceEntry(name, os.major(record.dev), os.minor(record.dev), tail.event_nr, uuid))
        if record.next == 0:
            return entries
        offset += record.next


def decode_versions(buffer: bytes | bytearray | memoryview, header: DmIoctl | None = None) -> list[TargetVersion]:
    """Target types of a DM_LIST_VERSIONS reply."""
    header = header or decode_header(buffer)
    data = _reply_data(buffer, header)
    versions = []
    offset = 0
    while True:
        record = DmTargetVersions.unpack_from(data, offset)
        name, _ = _string_at(data, offset + DmTargetVersions.STRUCT.size)
        versions.append(TargetVersion(name, record.version))
        if record.next == 0:
            return versions
        offset += record.next


def decode_deps(buffer: bytes | bytearray | memoryview, header: DmIoctl | None = None) -> list[tuple[int, int]]:
    """(major, minor) of the devices a table uses (DM_TABLE_DEPS reply)."""
    header = header or decode_header(buffer)
    data = _reply_data(buffer, header)
    deps = DmTargetDeps.unpack_from(data)
    start = DmTargetDeps.STRUCT.size
    if start + DEV_NUMBER.size * deps.count > len(data):
        raise DeviceError("device-mapper reply has a truncated dependency list")
    numbers = [DEV_NUMBER.unpack_from(data, start + i * DEV_NUMBER.size)["dev"] for i in range(deps.count)]
    return [(os.major(number), os.minor(number)) for number in numbers]


def info_from_header(header: DmIoctl) -> DeviceInfo:
    return DeviceInfo(_text(header.name), _text(header.uuid), os.major(header.dev), os.minor(header.dev),
                      header.open_count, header.event_nr, header.target_count, header.flags)


class DeviceMapper:
    """A session on /dev/mapper/control.  Use as a context manager; one per thread."""

    INITIAL_BUFFER = 16 << 10
    MAX_BUFFER = 64 << 20

    def __init__(self, control_path: str = CONTROL_PATH):
        self.control_path = control_path
        try:
            self._fd = os.open(control_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ENOENT:
                raise DeviceError(NOT_AVAILABLE) from None
            if error.errno in (errno.ENODEV, errno.ENXIO):  # a leftover node, no dm_mod
                raise DeviceError(NO_DRIVER) from None
            raise DeviceError(f"cannot open {control_path}: {error.strerror}") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "DeviceMapper":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, command: int, name: str = "", *, uuid: str = "", flags: int = 0, data: bytes | bytearray = b"",
              target_count: int = 0, event_nr: int = 0, dev: int = 0) -> tuple[bytearray, DmIoctl]:
        """One ioctl, retried with a larger buffer while the kernel reports DM_BUFFER_FULL_FLAG.

        Buffers of requests marked secure are wiped after use, like the kernel wipes its copies.
        """
        size = self.INITIAL_BUFFER
        while True:
            buffer = encode_request(name, uuid, flags, data, target_count, event_nr, dev, size)
            try:
                fcntl.ioctl(self._fd, command, buffer)
            except OSError as error:
                if flags & DM_SECURE_DATA_FLAG:
                    buffer[:] = bytes(len(buffer))
                raise _ioctl_error(command, name, error) from None
            header = decode_header(buffer)
            if not header.flags & DM_BUFFER_FULL_FLAG:
                return buffer, header
            if flags & DM_SECURE_DATA_FLAG:
                buffer[:] = bytes(len(buffer))
            if size >= self.MAX_BUFFER:
                raise DeviceError(f"device-mapper {COMMAND_NAMES[command]}: reply larger than {size >> 20} MiB")
            size *= 4

    def version(self) -> tuple[int, int, int]:
        """The kernel's dm ioctl interface version, e.g. (4, 47, 0)."""
        _, header = self._call(DM_VERSION)
        return header.version

    def create(self, name: str, uuid: str = "", readonly: bool = False) -> DeviceInfo:
        """A new device with no table; I/O to it fails until a table is loaded and resumed."""
        _, header = self._call(DM_DEV_CREATE, name, uuid=uuid, flags=DM_READONLY_FLAG if readonly else 0)
        return info_from_header(header)

    def load(self, name: str, targets: Sequence[Target | tuple[int, int, str, str]], readonly: bool = False,
             secure: bool | None = None) -> None:
        """Load the inactive table of `name`; `resume` makes it live.

        Tables with key material are sent with DM_SECURE_DATA_FLAG (see
        `table_load_flags`), and our copy of the buffer is wiped as well.
        """
        parsed = [target if isinstance(target, Target) else Target(*target) for target in targets]
        flags = table_load_flags(parsed, readonly, secure)
        data = encode_targets(parsed)
        try:
            buffer, _ = self._call(DM_TABLE_LOAD, name, flags=flags, data=data, target_count=len(parsed))
            buffer[:] = bytes(len(buffer))
        finally:
            data[:] = bytes(len(data))

    def resume(self, name: str) -> DeviceInfo:
        """Swap in the inactive table (if any) and let I/O through."""
        _, header = self._call(DM_DEV_SUSPEND, name)
        return info_from_header(header)

    def suspend(self, name: str, noflush: bool = False, skip_lockfs: bool = False) -> DeviceInfo:
        flags = DM_SUSPEND_FLAG | (DM_NOFLUSH_FLAG if noflush else 0) | (DM_SKIP_LOCKFS_FLAG if skip_lockfs else 0)
        _, header = self._call(DM_DEV_SUSPEND, name, flags=flags)
        return info_from_header(header)

    def remove(self, name: str, deferred: bool = False) -> None:
        self._call(DM_DEV_REMOVE, name, flags=DM_DEFERRED_REMOVE if deferred else 0)

    def rename(self, name: str, new_name: str) -> None:
        self._call(DM_DEV_RENAME, name, data=_c_string(new_name, DM_NAME_LEN, "name") + b"\0")

    def set_uuid(self, name: str, uuid: str) -> None:
        """Give a device without a uuid one (the kernel refuses to change an existing uuid)."""
        self._call(DM_DEV_RENAME, name, flags=DM_UUID_FLAG, data=_c_string(uuid, DM_UUID_LEN, "uuid") + b"\0")

    def clear(self, name: str) -> None:
        """Drop the inactive table (undo a load before its resume)."""
        self._call(DM_TABLE_CLEAR, name)

    def info(self, name: str) -> DeviceInfo | None:
        """The device's state, or None if no device has that name."""
        try:
            _, header = self._call(DM_DEV_STATUS, name)
        except _NoSuchDevice:
            return None
        return info_from_header(header)

    def table(self, name: str, inactive: bool = False) -> list[Target]:
        """The loaded table (crypt keys included, so the exchange is marked secure)."""
        flags = DM_STATUS_TABLE_FLAG | DM_SECURE_DATA_FLAG | (DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0)
        buffer, header = self._call(DM_TABLE_STATUS, name, flags=flags)
        try:
            return decode_targets(buffer, header)
        finally:
            buffer[:] = bytes(len(buffer))

    def status(self, name: str) -> list[Target]:
        """Each target's status line (dmsetup status)."""
        buffer, header = self._call(DM_TABLE_STATUS, name)
        return decode_targets(buffer, header)

    def deps(self, name: str) -> list[tuple[int, int]]:
        buffer, header = self._call(DM_TABLE_DEPS, name)
        return decode_deps(buffer, header)

    def list(self) -> list[DeviceEntry]:
        """All dm devices, with uuids where the kernel reports them."""
        buffer, header = self._call(DM_LIST_DEVICES, flags=DM_UUID_FLAG)
        return decode_name_list(buffer, header)

    def target_versions(self) -> list[TargetVersion]:
        buffer, header = self._call(DM_LIST_VERSIONS)
        return decode_versions(buffer, header)

    def message(self, name: str, sector: int, text: str, secure: bool = False) -> None:
        """Send a target message (e.g. crypt's `key wipe`)."""
        data = DmTargetMsg(sector=sector).pack() + text.encode() + b"\0"
        self._call(DM_TARGET_MSG, name, data=data, flags=DM_SECURE_DATA_FLAG if secure else 0)

    def wait(self, name: str, event_nr: int) -> DeviceInfo:
        """Block until the device's event counter passes `event_nr`."""
        _, header = self._call(DM_DEV_WAIT, name, event_nr=event_nr)
        return info_from_header(header)


class _NoSuchDevice(DeviceError):
    """ENXIO from the kernel: no dm device with that name."""


def _ioctl_error(command: int, name: str, error: OSError) -> DeviceError:
    """A one-line message naming the operation and device, never the table parameters."""
    what = COMMAND_NAMES.get(command, hex(command))
    subject = f" of '{name}'" if name else ""
    if error.errno == errno.ENXIO:
        return _NoSuchDevice(f"device-mapper {what}{subject}: no such device")
    # The kernel answers a duplicate name or uuid on create with EBUSY, on rename with EBUSY or EEXIST.
    if error.errno == errno.EEXIST or (error.errno == errno.EBUSY and command in (DM_DEV_CREATE, DM_DEV_RENAME)):
        return DeviceError(f"device-mapper {what}{subject}: a device with that name or uuid already exists")
    if error.errno == errno.EBUSY:
        return DeviceError(f"device-mapper {what}{subject}: device is busy (open or in use)")
    hint = " (the kernel log says why)" if command == DM_TABLE_LOAD else ""
    return DeviceError(f"device-mapper {what}{subject} failed: {error.strerror}{hint}")


def create_node(name: str, major: int, minor: int, directory: str = "/dev/mapper") -> str:
    """/dev/mapper/NAME as udev would make it (root:disk 0660, as udev's block devices and Debian's
    libdevmapper nodes are); what lvcrypt does where no udev runs.  Daemons that run in the disk
    group need that: sanlock opens a shared VG's lvmlock LV through its node."""
    path = os.path.join(directory, name)
    device = os.makedev(major, minor)
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        _make_node(path, device)
        return path
    if not stat.S_ISBLK(existing.st_mode) or existing.st_rdev != device:
        os.unlink(path)
        _make_node(path, device)
    return path


def _make_node(path: str, device: int) -> None:
    import grp

    os.mknod(path, 0o600 | stat.S_IFBLK, device)
    try:
        os.chown(path, 0, grp.getgrnam("disk").gr_gid)
    except KeyError:
        return  # no disk group: root only
    os.chmod(path, 0o660)


def remove_node(name: str, directory: str = "/dev/mapper") -> None:
    try:
        os.unlink(os.path.join(directory, name))
    except FileNotFoundError:
        pass
