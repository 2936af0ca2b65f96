"""Reading the newest VG metadata from all PVs and committing a new version to every metadata area.

A commit is lvm2's three-phase protocol: the new text is written after the
old one in every ring (nothing points at it yet), then every header gets the
new location in its precommit slot, then in its committed slot.  Readers only
follow committed slots and take the highest seqno among valid copies, so a
crash at any write leaves the old or the new version readable, and the next
commit rewrites every copy, repairing stale and damaged ones.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from lvcrypt.errors import DeviceError, FormatError, LvcryptError, MetadataError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.store.disk import Disk
from lvcrypt.store.mda import MdaHeader, RawLocn, plan_write
from lvcrypt.store.physical import MetadataCopy, PvOnDisk, read_pv


@dataclass
class Scan:
    """What the devices hold: PVs by path, and devices that could not be read as PVs (and why)."""

    pvs: dict[str, PvOnDisk] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def pv_at(self, path: str) -> PvOnDisk | None:
        """The PV on `path`, however it is spelled (relative, absolute, another node of the same device).

        Looking PVs up by the exact string would take `pv1.img` for a blank device when the scan
        found it as `/abs/pv1.img`, and re-initialise a PV that belongs to a VG.
        """
        pv = self.pvs.get(path)
        if pv is not None:
            return pv
        for known, candidate in self.pvs.items():
            try:
                if os.path.samefile(known, path):
                    return candidate
            except OSError:
                continue
        return None

    def by_uuid(self) -> dict[str, PvOnDisk]:
        return {pv.uuid: pv for pv in self.pvs.values()}

    def copies(self, vg_name: str | None = None) -> list[tuple[PvOnDisk, MetadataCopy]]:
        return [(pv, mda.copy) for pv in self.pvs.values() for mda in pv.mdas
                if mda.copy is not None and (vg_name is None or mda.copy.vg_name == vg_name)]

    def vg_names(self) -> list[str]:
        return sorted({copy.vg_name for _, copy in self.copies()})


def scan(paths: list[str], with_text: bool = True) -> Scan:
    result = Scan()
    for path in paths:
        try:
            with Disk(path) as disk:
                pv = read_pv(disk, with_text)
        except (DeviceError, FormatError) as error:
            result.problems[path] = str(error)
            continue
        except OSError as error:
            result.problems[path] = f"{path}: {error.strerror}"
            continue
        if pv is not None and pv.uuid not in {p.uuid for p in result.pvs.values()}:
            result.pvs[path] = pv
    return result


@dataclass
class LoadedVg:
    """The newest version of a VG and where its PVs are."""

    vg: VolumeGroup
    text: bytes
    pvs: dict[str, PvOnDisk]  # PV key (pv0...) -> PV found on a device
    missing: list[str]  # PV keys whose device was not found
    stale: list[str]  # human-readable notes on old or damaged copies
    unreadable: list[str] = field(default_factory=list)  # devices scanned that could not be read as PVs

    def device_of(self, key: str) -> str:
        pv = self.pvs.get(key)
        return pv.path if pv else "[unknown]"

    def require_complete(self) -> None:
        """Writing commands refuse a VG with missing PVs (lvm2 needs --partial or vgreduce)."""
        if self.missing:
            ids = ", ".join(f"{key} ({self.vg.pvs[key].id})" for key in self.missing)
            why = f" (unreadable: {'; '.join(self.unreadable)})" if self.unreadable else ""
            raise DeviceError(f"volume group {self.vg.name}: physical volume {ids} is missing; "
                              f"refusing to change it{why}")


def parse_vg(text: bytes, source: str, vg_id: str | None = None) -> VolumeGroup:
    """The validated VG of a metadata text; with `vg_id`, through the parse cache (a hit skips the parser)."""
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.store import cache

    tree = cache.lookup(vg_id, text) if vg_id is not None else None
    if tree is not None:
        return tree_to_vg(tree, source)
    from lvcrypt.metadata.parse import parse_bytes
    from lvcrypt.metadata.validate import validate

    tree = parse_bytes(text, source)
    vg = tree_to_vg(tree, source)
    validate(vg, source)
    if vg_id is not None:
        cache.store(vg_id, text, tree)
    return vg


def load_vg(found: Scan, name: str) -> LoadedVg:
    copies = found.copies(name)
    if not copies:
        damage = [f"{pv.path}: {mda.problem}" for pv in found.pvs.values() for mda in pv.mdas if mda.problem]
        damage += list(found.problems.values())
        raise LvcryptError(f"volume group \"{name}\" not found"
                           + (f" (unreadable: {'; '.join(damage)})" if damage else ""))
    ids = {copy.vg_id for _, copy in copies}
    if len(ids) > 1:
        raise LvcryptError(f"several volume groups are named {name} (ids {', '.join(sorted(ids))})")
    pv, newest = max(copies, key=lambda item: item[1].seqno)
    try:
        vg = parse_vg(newest.text, f"{pv.path}:mda@{newest.locn.offset}", newest.vg_id)
    except MetadataError as error:
        raise MetadataError(f"volume group {name}: {error}") from None
    by_uuid = found.by_uuid()
    members = {key: by_uuid[member.id] for key, member in vg.pvs.items() if member.id in by_uuid}
    missing = [key for key in vg.pvs if key not in members]
    stale = [f"{p.path}: seqno {copy.seqno} is older than {newest.seqno}" for p, copy in copies
             if copy.seqno < newest.seqno]
    for key, member in members.items():
        stale.extend(f"{member.path}: {mda.problem}" for mda in member.mdas if mda.problem)
    return LoadedVg(vg, newest.text, members, missing, stale, list(found.problems.values()))


def render(vg: VolumeGroup, description: str) -> bytes:
    """The metadata-area text of `vg` (lvm2's disk layout, NUL-terminated), checked by reading it back."""
    from lvcrypt.metadata.convert import default_header, vg_to_tree
    from lvcrypt.metadata.validate import check_lvm2_readable
    from lvcrypt.metadata.write import write_text

    vg.header = default_header(description)
    text = write_text(vg_to_tree(vg, vg_first=True), layout="disk").encode()
    again = parse_vg(text, f"new metadata of {vg.name}")
    check_lvm2_readable(again)
    return text + b"\0"


@dataclass
class _Target:
    disk: Disk
    header: MdaHeader
    locn: RawLocn
    writes: list[tuple[int, bytes]]


def commit(vg: VolumeGroup, members: dict[str, PvOnDisk], description: str) -> bytes:
    """Write `vg` (its seqno already raised) to every metadata area of every PV in `members`.

    `members` maps each PV key of `vg` to its PV on disk.  Everything is planned
    (sizes checked) before the first byte is written.  Returns the text written.
    """
    missing = [key for key in vg.pvs if key not in members]
    if missing:
        raise DeviceError(f"volume group {vg.name}: no device for {', '.join(missing)}")
    for key, pv in vg.pvs.items():  # the device hints follow the devices, as lvm2 keeps them
        pv.device = os.path.abspath(members[key].path)
    text = render(vg, description)
    disks: list[Disk] = []
    targets: list[_Target] = []
    try:
        for key in vg.pvs:
            pv = members[key]
            disk = Disk(pv.path, writable=True)
            disks.append(disk)
            for mda in pv.mdas:
                header = _current_header(disk, mda.locn.offset, mda.locn.size)
                if header.committed.ignored:  # lvm2's --metadataignore: this area holds no copy
                    continue
                locn, writes = plan_write(header, text, f"{pv.path}")
                targets.append(_Target(disk, header, locn, writes))
        for target in targets:
            for offset, data in target.writes:
                target.disk.write_at(offset, data)
        _flush(disks)
        for target in targets:
            target.header.precommitted = target.locn
            target.disk.write_at(target.header.start, target.header.to_bytes())
        _flush(disks)
        for target in targets:
            target.header.committed = target.locn
            target.header.precommitted = RawLocn()
            target.disk.write_at(target.header.start, target.header.to_bytes())
        _flush(disks)
    finally:
        for disk in disks:
            disk.close()
    return text


def _current_header(disk: Disk, start: int, size: int) -> MdaHeader:
    """The header as it is now; a damaged one is replaced by an empty one (the repair)."""
    try:
        header = MdaHeader.parse(disk.read_at(start, 512), start)
        if header.size == size:
            return header
    except FormatError as error:
        print(f"lvcrypt: warning: {disk.path}: {error}; rewriting it", file=sys.stderr)
    return MdaHeader(start, size)


def _flush(disks: list[Disk]) -> None:
    for disk in disks:
        disk.flush()


def clear_metadata(pv: PvOnDisk) -> None:
    """Make a PV an orphan again: empty committed and precommitted slots in every metadata area."""
    with Disk(pv.path, writable=True) as disk:
        for mda in pv.mdas:
            header = _current_header(disk, mda.locn.offset, mda.locn.size)
            header.committed = RawLocn()
            header.precommitted = RawLocn()
            disk.write_at(header.start, header.to_bytes())
        disk.flush()
