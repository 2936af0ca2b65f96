"""The ways lvm2 lets a user name a VG or an LV on the command line, turned into (VG, LV) names.

`VG/LV`, `/dev/VG/LV`, `/dev/mapper/VG-LV` (dashes inside names doubled, as in
dm names) and `@tag` (every LV carrying the tag, or every LV of a VG carrying it)
all name the same objects as in lvm2, so scripts written for lvm2 pass their
arguments unchanged.  Tags need the VGs read, so the expansion lives here in the
store layer rather than in the argument parser.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lvcrypt.errors import LvcryptError, UsageError

if TYPE_CHECKING:
    from lvcrypt.metadata.model import VolumeGroup

DEV_DIR = "/dev/"
MAPPER_DIR = "/dev/mapper/"

# lvm2's dm_split_lvm_name: VG and LV are separated by the first single dash; a doubled dash is a
# dash inside a name; a third part (a layer such as `-real`) does not name an LV.
_DM_NAME = re.compile(r"((?:[^-]|--)+)-((?:[^-]|--)+)(?:-(.*))?\Z")


def split_dm_name(name: str) -> tuple[str, str]:
    """`vg--a-lv--b` -> (`vg-a`, `lv-b`); a layer device or a name without an LV is refused."""
    match = _DM_NAME.match(name)
    if not match or match.group(3) is not None:
        raise UsageError(f"\"{MAPPER_DIR}{name}\": not the device-mapper name of a logical volume")
    return match.group(1).replace("--", "-"), match.group(2).replace("--", "-")


def _one_leading_slash(text: str) -> str:
    """lvm2's skip_dev_dir counts repeated leading slashes once (`//dev/vg/lv`)."""
    return "/" + text.lstrip("/") if text.startswith("/") else text


def _without_dev_dir(text: str) -> str:
    text = _one_leading_slash(text)
    return text[len(DEV_DIR):] if text.startswith(DEV_DIR) else text


def lv_argument(text: str, default_vg: str | None = None) -> tuple[str, str]:
    """(VG, LV) named by `VG/LV`, `/dev/VG/LV` or `/dev/mapper/VG-LV` (or `LV` with `default_vg`)."""
    path = _one_leading_slash(text)
    if path.startswith(MAPPER_DIR):
        return split_dm_name(path[len(MAPPER_DIR):])
    vg, slash, lv = _without_dev_dir(path).partition("/")
    if not slash and default_vg is not None and vg:
        return default_vg, vg
    if not slash or not vg or not lv or "/" in lv:
        raise UsageError(f"'{text}': give the logical volume as VG/LV")
    return vg, lv


def vg_argument(text: str) -> str:
    """A VG named as `VG` or `/dev/VG` (lvm2 strips the device directory from VG names too)."""
    return _without_dev_dir(text).rstrip("/")


def is_tag(text: str) -> bool:
    return text.startswith("@") and len(text) > 1


def is_lv_argument(text: str) -> bool:
    """Whether an argument of a command taking `VG` or `VG/LV` names one LV (not a whole VG, not a tag)."""
    if is_tag(text):
        return False
    return _one_leading_slash(text).startswith(MAPPER_DIR) or "/" in _without_dev_dir(text).rstrip("/")


def _vgs_on(devices: str | None) -> list["VolumeGroup"]:
    """Every VG the devices hold, read once (no lock: only names and tags are taken from them)."""
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import candidate_devices

    found = scan(candidate_devices(devices))
    loaded = []
    for name in found.vg_names():
        try:
            loaded.append(load_vg(found, name).vg)
        except LvcryptError:
            continue  # a VG that cannot be read carries no tag anyone can match; its own commands say why
    return loaded


def expand_lv_arguments(devices: str | None, items: list[str]) -> list[str]:
    """Arguments of lvs, lvremove, lvchange as `VG` or `VG/LV`, with `@tag` expanded as lvm2 does.

    A tag selects the visible LVs carrying it and every visible LV of a VG carrying it; an LV
    already covered by a VG named whole is not repeated. An empty result for tags only is the
    caller's "nothing selected" (lvm2 prints nothing and succeeds).
    """
    tags = {item[1:] for item in items if is_tag(item)}
    out = []
    for item in items:
        if is_lv_argument(item):
            out.append("/".join(lv_argument(item)))
        elif not is_tag(item):
            out.append(vg_argument(item))
    if tags:
        for vg in _vgs_on(devices):
            whole = bool(tags & set(vg.tags))
            out += [f"{vg.name}/{lv.name}" for lv in vg.lvs.values()
                    if lv.visible and (whole or tags & set(lv.tags))]
    whole_vgs = {item for item in out if "/" not in item}
    return list(dict.fromkeys(item for item in out if "/" not in item or item.split("/")[0] not in whole_vgs))


def lv_targets(devices: str | None, items: list[str]) -> list[tuple[str, str]]:
    """lvchange's arguments as (VG, LV) pairs: a VG named whole stands for its visible LVs, as in lvm2."""
    expanded = expand_lv_arguments(devices, items)
    whole = [item for item in expanded if "/" not in item]
    vgs = {vg.name: vg for vg in _vgs_on(devices)} if whole else {}
    for name in whole:
        if name not in vgs:
            raise LvcryptError(f'Volume group "{name}" not found')
    pairs = []
    for item in expanded:
        if "/" in item:
            vg_name, _, lv_name = item.partition("/")
            pairs.append((vg_name, lv_name))
        else:
            pairs += [(item, lv.name) for lv in vgs[item].lvs.values() if lv.visible]
    return pairs


def expand_vg_arguments(devices: str | None, items: list[str]) -> list[str]:
    """Arguments of vgs, vgchange, vgremove: VG names, `/dev/VG`, and `@tag` for the VGs carrying it."""
    tags = {item[1:] for item in items if is_tag(item)}
    out = [vg_argument(item) for item in items if not is_tag(item)]
    if tags:
        out += [vg.name for vg in _vgs_on(devices) if tags & set(vg.tags)]
    return list(dict.fromkeys(out))


def expand_pv_arguments(devices: str | None, items: list[str], missing: list[str] | None = None) -> list[str]:
    """Arguments of pvs and pvchange as the scan names the PVs, `@tag` for the PVs (of any VG) carrying it.

    A PV may be named as the user named it (relative, through a symlink such as
    /dev/disk/by-id/...); a name that is no PV is lvm2's refusal, exit 5, or, given `missing`,
    a message added there (pvs then reports the others, as lvm2's).
    """
    import os

    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.device_filter import rejection
    from lvcrypt.store.devices import candidate_devices

    if not items:
        return []
    named = [item for item in items if not is_tag(item)]
    rejected = {} if devices else {item: message for item in named
                                   if os.path.exists(item) and (message := rejection(item))}
    found = scan(list(dict.fromkeys(candidate_devices(devices) + [item for item in named if item not in rejected])))
    out = []
    for item in named:
        pv = None if item in rejected else found.pv_at(item)
        if pv is None:
            message = (f"Cannot use {item}: device not found" if not os.path.exists(item)
                       else rejected.get(item) or f"Failed to find physical volume \"{item}\".")
            if missing is None:
                raise LvcryptError(message)
            missing.append(message)
            continue
        out.append(pv.path)
    tags = {item[1:] for item in items if is_tag(item)}
    for name in found.vg_names() if tags else []:
        try:
            loaded = load_vg(found, name)
        except LvcryptError:
            continue
        out += [loaded.pvs[key].path for key, pv in loaded.vg.pvs.items()
                if key in loaded.pvs and tags & set(pv.tags)]
    return list(dict.fromkeys(out))
