"""The names an LV goes by outside the metadata: its dm name and uuid, its FUSE source, its key's description.

They sit below activation because commands that only read or change
metadata must recognise an LV's live devices, mounts and keys too (the
in-use check, kdump, reports), without depending on how tables are built.
"""

from __future__ import annotations

from lvcrypt.metadata.model import LogicalVolume, VolumeGroup


def dm_name(vg: str, lv: str, layer: str | None = None) -> str:
    """lvm2's dm name: `vg-lv[-layer]` with each dash inside a name doubled."""
    parts = [vg.replace("-", "--"), lv.replace("-", "--")] + ([layer] if layer else [])
    return "-".join(parts)


def dm_uuid(vg: VolumeGroup, lv: LogicalVolume, layer: str | None = None) -> str:
    uuid = "LVM-" + vg.id.replace("-", "") + lv.id.replace("-", "")
    return f"{uuid}-{layer}" if layer else uuid


def mount_source(vg: VolumeGroup, lv: LogicalVolume) -> str:
    """What `lvcrypt mount` shows as the file system's source: readable, and unique by the LV's uuid,
    so that another VG with the same names (another machine's disks) is never taken for this one."""
    return f"lvcrypt:{vg.name}/{lv.name}:{lv.id}"


def key_description(lv: LogicalVolume, keystore: str) -> str:
    """`lvcrypt:<LV uuid>` for the LV's key (a second keystore mid-reencryption adds its name)."""
    stores = lv.keystores()
    base = f"lvcrypt:{lv.id}"
    return base if not stores or stores[0] == keystore else f"{base}:{keystore}"
