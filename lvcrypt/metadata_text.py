"""VG metadata text as a file or as a VG on its PVs: read it, change it with validation, write it back.

The work of `lvcrypt metadata check|format|get|set|del|diff` (the CLI parses and prints).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from lvcrypt.atomic_file import write_atomically
from lvcrypt.errors import MetadataError
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.lvreport import report_type
from lvcrypt.metadata.model import KeystoreSegment, LogicalVolume, VolumeGroup
from lvcrypt.metadata.parse import parse_bytes
from lvcrypt.metadata.tree import Section
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text
from lvcrypt.records import dataclass

# Larger than any metadata area lvm2 creates (its maximum is far below this);
# refusing earlier keeps a mistaken `lvcrypt metadata check /dev/sda` cheap.
MAX_TEXT = 256 << 20


def read_tree(path: str) -> Section:
    with open(path, "rb") as f:
        data = f.read(MAX_TEXT + 1)
    if len(data) > MAX_TEXT:
        raise MetadataError(f"larger than {MAX_TEXT >> 20} MiB: not a metadata text", path)
    return parse_bytes(data, path)


def read_vg(path: str) -> tuple[Section, VolumeGroup]:
    """Parse, convert and validate one VG metadata file (the work of `check`)."""
    tree = read_tree(path)
    vg = tree_to_vg(tree, path)
    validate(vg, path)
    return tree, vg


@contextlib.contextmanager
def about(source: str) -> Iterator[None]:
    """Attribute path errors (raised without a file name) to the file being edited."""
    try:
        yield
    except MetadataError as error:
        raise (error.at(source) if error.source is None else error) from None


def is_file(target: str) -> bool:
    """FILE|VG arguments: an existing path is a file, anything else names a volume group."""
    return os.path.exists(target) or "/" in target


def read_target(target: str, devices: str | None) -> Section:
    """The metadata tree of a file, or of a VG read from its PVs (under a shared lock)."""
    if is_file(target):
        return read_tree(target)
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, target, exclusive=False) as tx:
        return vg_to_tree(tx.vg)


def change_target(target: str, devices: str | None, edit: Callable[[Section], None]) -> None:
    """Apply `edit` to the tree of a file or a VG; validate the whole result; only then write it."""
    if is_file(target):
        tree = read_tree(target)
        with about(target):
            edit(tree)
        validate(tree_to_vg(tree, target), target)
        write_atomically(target, write_text(tree))
        return
    from lvcrypt.api import open_vg

    with open_vg(target, devices) as handle:
        tree = vg_to_tree(handle.vg)
        with about(target):
            edit(tree)
            handle.replace(tree_to_vg(tree, target))
        handle.commit()


@dataclass(frozen=True)
class PvSummary:
    key: str
    device: str
    id: str
    size: int
    free: int
    pe_start: int


@dataclass(frozen=True)
class LvSummary:
    name: str  # hidden LVs in brackets, as lvm2 shows them
    size: int
    segments: int
    types: str
    devices: str
    encryption: str


@dataclass(frozen=True)
class VgSummary:
    """What `metadata show` tells about a VG from its text alone, sizes in bytes."""

    extent_bytes: int
    size: int
    free: int
    pvs: list[PvSummary]
    lvs: list[LvSummary]


def summarise_vg(vg: VolumeGroup) -> VgSummary:
    size = vg.extent_bytes
    pvs = [PvSummary(pv.key, pv.device or "", pv.id, pv.pe_count * size, vg.free_extents(pv.key) * size, pv.pe_start)
           for pv in vg.pvs.values()]
    lvs = [LvSummary(lv.name if lv.visible else f"[{lv.name}]", lv.extent_count * size, len(lv.segments),
                     ",".join(dict.fromkeys(report_type(segment) for segment in lv.segments)),
                     _devices(vg, lv), _encryption(vg, lv))
           for lv in vg.lvs.values()]
    return VgSummary(size, vg.extent_count() * size, vg.free_extents() * size, pvs, lvs)


def _devices(vg: VolumeGroup, lv: LogicalVolume) -> str:
    """PV areas as `device(extent)`, by the metadata's device hint (no device is opened)."""
    parts = []
    for segment in lv.segments:
        for area, _ in segment.pv_areas():
            pv = vg.pvs.get(area.pv)
            parts.append(f"{pv.device if pv and pv.device else area.pv}({area.extent})")
    return ",".join(parts)


def _encryption(vg: VolumeGroup, lv: LogicalVolume) -> str:
    if lv.is_keystore:
        segment = next(s for s in lv.segments if isinstance(s, KeystoreSegment))
        users = ", ".join(user.name for user in vg.users_of_keystore(lv.name)) or "no users"
        return f"keystore {segment.handler} {segment.cipher or ''} for {users}".replace("  ", " ")
    if lv.is_crypt:
        return "encrypted with " + ", ".join(lv.keystores())
    return ""
