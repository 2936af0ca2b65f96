"""Which devices a command looks at.

`--devices PATH,PATH` names them exactly (image files too).  Otherwise the
devices file in the state directory (kept by pvcreate, vgcreate and vgextend)
plus the block devices udev knows that carry an LVM2 label, less those
lvm.conf's device filters hide (device_filter).
"""

from __future__ import annotations

import os

from lvcrypt.atomic_file import write_atomically
from lvcrypt.errors import UsageError
from lvcrypt.store.archive import existing_state_path, state_path
from lvcrypt.store.device_filter import accepted, configured, refuse_rejected

DEVICES_FILE = "devices"


def parse_devices_option(value: str) -> list[str]:
    paths = [item.strip() for item in value.split(",") if item.strip()]
    if not paths:
        raise UsageError("--devices needs at least one path")
    return paths


def read_devices_file() -> list[str]:
    """The devices file's paths; a state directory others could write is refused, not trusted."""
    directory = existing_state_path()
    if directory is None:
        return []
    try:
        lines = (directory / DEVICES_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def remember_devices(paths: list[str]) -> None:
    """Add devices to the devices file (absolute paths, no duplicates), atomically."""
    known = read_devices_file()
    added = [os.path.abspath(path) for path in paths if os.path.abspath(path) not in known]
    if not added:
        return
    write_atomically(state_path() / DEVICES_FILE, "".join(f"{path}\n" for path in known + added), mode=0o644)


def udev_block_devices() -> list[str]:
    """Block devices udev identified as LVM2 PVs (blkid's ID_FS_TYPE), disks and partitions alike."""
    try:
        import pyudev
    except ImportError:
        return []
    try:
        context = pyudev.Context()
        found = []
        for device in context.list_devices(subsystem="block"):
            if device.properties.get("ID_FS_TYPE") == "LVM2_member" and device.device_node:
                found.append(device.device_node)
        return found
    except Exception:  # noqa: BLE001 - no udev database (containers): fall back to the devices file
        return []


def candidate_devices(option: str | None) -> list[str]:
    """Devices to scan: exactly --devices, else the devices file plus udev's LVM2 members that the
    filters accept."""
    filters = configured()  # a malformed filter fails the command even with --devices, as in lvm2
    if option:
        return parse_devices_option(option)
    paths = read_devices_file()
    for node in udev_block_devices():
        if node not in paths:
            paths.append(node)
    return [path for path in paths if accepted(filters, path)]


def devices_with(option: str | None, named: list[str]) -> list[str]:
    """Devices to scan for a command that names devices: the candidates and the named ones; without
    --devices, a named device the filters hide is refused as lvm2 refuses it."""
    if not option:
        refuse_rejected(named)
    return list(dict.fromkeys(candidate_devices(option) + named))
