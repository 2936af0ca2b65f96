"""Loop devices for image-file PVs, attached with the kernel's autoclear flag.

Device-mapper tables can only name block devices, so an LV on image files
needs a loop device per image.  The loop is attached with LO_FLAGS_AUTOCLEAR:
the kernel detaches it by itself when its last opener closes it.  While the
activating command holds its descriptor, that is the command; once a dm table
holds the loop, it is the dm device, so removing the dm device (deactivation,
or undoing a failed activation) also detaches the loop, with no state to keep
and nothing left behind if lvcrypt dies half-way.

The ioctls and `struct loop_info64` are from linux/loop.h.
"""

from __future__ import annotations

import errno
import fcntl
import os

from lvcrypt.binary_layout import Layout
from lvcrypt.errors import DeviceError
from lvcrypt.records import dataclass

LOOP_CONTROL = "/dev/loop-control"
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_AUTOCLEAR = 4
LO_NAME_SIZE = 64
LO_KEY_SIZE = 32

# struct loop_info64 (linux/loop.h, 232 bytes).
LOOP_INFO64 = Layout("=", (("lo_device", "Q"), ("lo_inode", "Q"), ("lo_rdevice", "Q"), ("lo_offset", "Q"),
                           ("lo_sizelimit", "Q"), ("lo_number", "I"), ("lo_encrypt_type", "I"),
                           ("lo_encrypt_key_size", "I"), ("lo_flags", "I"), ("lo_file_name", f"{LO_NAME_SIZE}s"),
                           ("lo_crypt_name", f"{LO_NAME_SIZE}s"), ("lo_encrypt_key", f"{LO_KEY_SIZE}s"),
                           ("lo_init", "2Q")))
ATTACH_ATTEMPTS = 8


@dataclass
class Loop:
    """An attached loop device; the open descriptor keeps it bound until `release`."""

    path: str
    fd: int
    rdev: int

    def release(self) -> None:
        """Close our descriptor: the loop detaches now, unless a dm table holds it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _status(image: str) -> bytes:
    path = os.path.abspath(image).encode()[:LO_NAME_SIZE - 1]
    values: dict[str, object] = {field: 0 for field in LOOP_INFO64.names}
    values.update(lo_flags=LO_FLAGS_AUTOCLEAR, lo_file_name=path, lo_crypt_name=b"", lo_encrypt_key=b"",
                  lo_init=(0, 0))
    return LOOP_INFO64.pack(values)


def attach(image: str) -> Loop:
    """A loop device over `image` (read-write) that detaches itself after its last close."""
    try:
        backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        raise DeviceError(f"cannot open {image}: {error.strerror}") from None
    try:
        control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        os.close(backing)
        raise DeviceError(f"cannot attach a loop device to {image}: {LOOP_CONTROL}: {error.strerror}") from None
    try:
        for _ in range(ATTACH_ATTEMPTS):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            path = f"/dev/loop{number}"
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(fd, LOOP_SET_FD, backing)
            except OSError as error:
                os.close(fd)
                if error.errno == errno.EBUSY:  # another process took this one meanwhile
                    continue
                raise
            try:
                fcntl.ioctl(fd, LOOP_SET_STATUS64, _status(image))
            except OSError:
                fcntl.ioctl(fd, LOOP_CLR_FD)
                os.close(fd)
                raise
            return Loop(path, fd, os.fstat(fd).st_rdev)
        raise DeviceError(f"cannot attach a loop device to {image}: every free loop device was taken meanwhile")
    except OSError as error:
        raise DeviceError(f"cannot attach a loop device to {image}: {error.strerror}") from None
    finally:
        os.close(control)
        os.close(backing)
