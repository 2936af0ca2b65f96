"""lvm2's tags on LVs, VGs and PVs: `--addtag`/`--deltag` and the checks lvm2 makes of a tag.

Tags are kept in the metadata where lvm2 keeps them (`tags = [...]` of each LV, VG
and PV section, written by lvcrypt.metadata.convert), so lvm2 reads what lvcrypt
adds and the other way round.  lvm2 applies every --addtag first, then every
--deltag, whatever their order on the command line; so does `apply`.
"""

from __future__ import annotations

import re
from typing import Callable

from lvcrypt.errors import LvcryptError, UsageError

# lvm2's validate_tag: A-Z a-z 0-9 . _ - + / = ! : & #; `@` in front is the selector and is dropped.
_TAG = re.compile(r"[A-Za-z0-9._+/=!:&#-]+\Z")


def tag_argument(text: str, option: str) -> str:
    """A tag as given to --addtag/--deltag (a leading `@` is accepted, as lvm2 accepts it)."""
    tag = text[1:] if text.startswith("@") else text
    if not _TAG.match(tag):
        raise UsageError(f"Invalid argument for {option}: {text}")
    return tag


def apply(tags: list[str], add: list[str], delete: list[str]) -> bool:
    """Change `tags` in place (added at the end, each once; then deletions); whether anything changed."""
    before = list(tags)
    tags.extend(tag for tag in dict.fromkeys(add) if tag not in tags)
    tags[:] = [tag for tag in tags if tag not in delete]
    return tags != before


def change_lv_tags(devices: str | None, names: list[tuple[str, str]], add: list[str], delete: list[str],
                   done: Callable[[str, str], None]) -> None:
    """--addtag/--deltag on LVs, one commit per VG; `done(vg, lv)` after each VG's commit."""
    from lvcrypt.lv_checks import find_lv
    from lvcrypt.store.transaction import VgTransaction

    by_vg: dict[str, list[str]] = {}
    for vg_name, lv_name in names:
        by_vg.setdefault(vg_name, []).append(lv_name)
    for vg_name, lv_names in by_vg.items():
        with VgTransaction(devices, vg_name) as tx:
            for lv_name in lv_names:
                apply(find_lv(tx.vg, lv_name).tags, add, delete)
            tx.commit()
        for lv_name in lv_names:
            done(vg_name, lv_name)


def change_vg_tags(devices: str | None, names: list[str], add: list[str], delete: list[str],
                   done: Callable[[str], None]) -> None:
    from lvcrypt.store.transaction import VgTransaction

    for vg_name in names:
        with VgTransaction(devices, vg_name) as tx:
            apply(tx.vg.tags, add, delete)
            tx.commit()
        done(vg_name)


def change_pv_tags(devices: str | None, paths: list[str], add: list[str], delete: list[str],
                   done: Callable[[str], None]) -> None:
    """Tags live in the VG's metadata: a PV of no VG has nowhere to keep them, as in lvm2."""
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import devices_with
    from lvcrypt.store.transaction import VgTransaction

    found = scan(devices_with(devices, paths))
    owners = {}
    for name in found.vg_names():
        try:
            owners.update({pv.id: name for pv in load_vg(found, name).vg.pvs.values()})
        except LvcryptError:
            continue  # an unreadable VG: its PVs are refused below, as PVs of no VG
    for path in paths:
        pv = found.pv_at(path)
        if pv is None:
            raise LvcryptError(f"Failed to find physical volume \"{path}\".")
        vg_name = owners.get(pv.uuid)
        if vg_name is None:
            raise LvcryptError(f"Can't change tag on Physical Volume {path} not in volume group")
        with VgTransaction(devices, vg_name) as tx:
            member = tx.vg.pv_by_id(pv.uuid)
            if member is None:
                raise LvcryptError(f"Can't change tag on Physical Volume {path} not in volume group")
            apply(member.tags, add, delete)
            tx.commit()
        done(path)
