"""One answer to "is this LV in use?", asked by every command that removes, shrinks, converts or renames.

An LV is in use when `lvcrypt mount` serves it (its FUSE source names the LV
uuid, see `tables.mount_source`) or when the kernel has a device-mapper
device of it or of one of its layers (`block/dm-N/dm/uuid` in sysfs starts
with the LV's dm uuid); open counts come from the device's `holders` and the
kernel's open count where sysfs shows them.  A keystore is in use when one of
the LVs it unlocks is.  Changing an LV under a live mapping would leave the
mapping's user reading and writing extents the new metadata gives away.
"""

from __future__ import annotations

from pathlib import Path

from lvcrypt.lv_names import dm_name, dm_uuid, mount_source
from lvcrypt.metadata.model import LogicalVolume, VolumeGroup

MOUNTINFO = "/proc/self/mountinfo"


def live_devices(sysfs_root: str = "/sys") -> dict[str, Path]:
    """dm uuid -> sysfs directory of each device-mapper device the kernel has now (`block/dm-N/dm/uuid`)."""
    found: dict[str, Path] = {}
    block = Path(sysfs_root) / "block"
    try:
        entries = sorted(block.iterdir()) if block.is_dir() else []
    except OSError:
        return found
    for entry in entries:
        try:
            uuid = (entry / "dm" / "uuid").read_text().strip()
        except OSError:
            continue
        if uuid:
            found[uuid] = entry
    return found


def _fuse_mountpoint(vg: VolumeGroup, lv: LogicalVolume, mountinfo: str) -> str | None:
    """Where `lvcrypt mount` serves this LV (matched by its uuid, so a rename cannot hide it), if anywhere."""
    prefix = mount_source(vg, lv).split("/", 1)[0] + "/"
    suffix = f":{lv.id}"
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split(" - ", 1)
                after = fields[-1].split()
                if len(fields) == 2 and len(after) >= 2 and after[1].startswith(prefix) \
                        and after[1].endswith(suffix):
                    return line.split()[4]
    except OSError:
        return None
    return None


def kernel_active(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str = "/sys") -> bool:
    """The kernel has the LV's top dm device (lvcrypt's or lvm2's activation): the extent mover then works online."""
    return dm_uuid(vg, lv) in live_devices(sysfs_root)


def userspace_mountpoint(vg: VolumeGroup, lv: LogicalVolume, mountinfo: str = MOUNTINFO) -> str | None:
    """Where `lvcrypt mount` serves the LV, if anywhere."""
    return _fuse_mountpoint(vg, lv, mountinfo)


def _holders(device: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in (device / "holders").iterdir())
    except OSError:
        return []


def _dm_problem(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str) -> str | None:
    """The LV's live dm devices (its own and its layers'), and who holds them open."""
    base = dm_uuid(vg, lv)
    live = sorted((path for uuid, path in live_devices(sysfs_root).items()
                   if uuid == base or uuid.startswith(base + "-")), key=str)
    if not live:
        return None
    holders = [holder for device in live for holder in _holders(device)]
    held = f", held open by {', '.join(holders)}" if holders else ""
    return (f"device-mapper device {dm_name(vg.name, lv.name)} is active ({', '.join(p.name for p in live)}{held}); "
            f"deactivate it first (lvcrypt lvchange -an {vg.name}/{lv.name})")


def lv_in_use(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str = "/sys",
              mountinfo: str = MOUNTINFO) -> str | None:
    """Why this one LV (not its keystore's users) is in use, or None."""
    mountpoint = _fuse_mountpoint(vg, lv, mountinfo)
    if mountpoint is not None:
        return f"it is mounted with lvcrypt mount at {mountpoint}"
    return _dm_problem(vg, lv, sysfs_root)


def in_use_problem(vg: VolumeGroup, lv: LogicalVolume, sysfs_root: str = "/sys",
                   mountinfo: str = MOUNTINFO) -> str | None:
    """Why the LV counts as in use, or None; for a keystore, the first of its users in use."""
    problem = lv_in_use(vg, lv, sysfs_root, mountinfo)
    if problem is not None or not lv.is_keystore:
        return problem
    for user in vg.users_of_keystore(lv.name):
        problem = lv_in_use(vg, user, sysfs_root, mountinfo)
        if problem is not None:
            return f"its user {user.name} is in use: {problem}"
    return None


def vg_in_use(vg: VolumeGroup, sysfs_root: str = "/sys", mountinfo: str = MOUNTINFO) -> str | None:
    """The first LV of the VG in use, as '<lv>: <why>', or None."""
    for lv in vg.lvs.values():
        problem = lv_in_use(vg, lv, sysfs_root, mountinfo)
        if problem is not None:
            return f"{vg.name}/{lv.name}: {problem}"
    return None
