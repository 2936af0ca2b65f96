"""lvm.conf's `activation/volume_list` and host tags: which LVs this host may activate.

Clusters without lvmlockd (Pacemaker's HA-LVM in "tagging" mode) keep a VG's
LVs active on one node at a time with these settings alone: each node lists
only its own VGs or LVs, or only LVs tagged with its host name.  lvm2 then
silently passes over an LV that does not match (`lvchange -ay` succeeds and the
LV stays inactive; `-v` says why); lvcrypt does the same, since activating it
here would put two hosts on one disk.  lvm2's rules
(lib/activate/activate.c): with `volume_list` set (an empty list included) an
LV is activated only if an item names its VG, `VG/LV`, a tag `@t` of the LV or
of its VG, or `@*` and one of the host's tags is on the LV or the VG; without
it, only host tags matter: none defined activates everything, otherwise the LV
or VG must carry one.  `activation/read_only_volume_list` (same items) makes
the LVs it matches read-only devices, as does an LV's own read-only permission.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lvcrypt.store import lvm_config

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup


def host_tags() -> set[str]:
    """The tags this host has (the `tags` section of lvm.conf and lvmlocal.conf): its name with
    `hosttags = 1`, and every subsection's name whose `host_list` (if any) names this host."""
    hostname = os.uname().nodename
    settings = lvm_config.file_settings()  # as lvm2: tags given with --config do not count
    tags = {hostname} if settings.get("tags/hosttags", 0) not in (0, "0") else set()
    for name in lvm_config.sections("tags", settings):
        hosts = settings.get(f"tags/{name}/host_list")
        if hosts is None or (isinstance(hosts, list) and hostname in hosts) or hosts == hostname:
            tags.add(name.removeprefix("@"))
    return tags


def passes(vg: "VolumeGroup", lv: "LogicalVolume") -> bool:
    """True when lvm2 would activate this LV on this host (see the module docstring)."""
    listed = lvm_config.settings().get("activation/volume_list")
    if listed is None:
        mine = host_tags()
        return not mine or bool(mine & (set(lv.tags) | set(vg.tags)))
    return _matches(listed, vg, lv)


def read_only(vg: "VolumeGroup", lv: "LogicalVolume") -> bool:
    """True when `activation/read_only_volume_list` matches the LV: lvm2 then activates it read-only,
    whatever its permission."""
    listed = lvm_config.settings().get("activation/read_only_volume_list")
    return listed is not None and _matches(listed, vg, lv)


def _matches(listed: object, vg: "VolumeGroup", lv: "LogicalVolume") -> bool:
    """lvm2's matching of one of its volume lists against an LV."""
    tagged = set(lv.tags) | set(vg.tags)
    mine: set[str] | None = None
    for item in listed if isinstance(listed, list) else [listed]:
        if not isinstance(item, str) or not item:
            continue
        if item == "@*":
            mine = host_tags() if mine is None else mine
            if mine & tagged:
                return True
        elif item.startswith("@"):
            if item[1:] in tagged:
                return True
        elif item == vg.name or item == f"{vg.name}/{lv.name}":
            return True
    return False
