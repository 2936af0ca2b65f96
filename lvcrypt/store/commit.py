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
import stat
import sys
from typing import Callable

from lvcrypt.errors import DeviceError, FormatError, LvcryptError, MetadataError
from lvcrypt.metadata.model import PhysicalVolume, VolumeGroup
from lvcrypt.store.disk import Disk
from lvcrypt.store.mda import MdaHeader, RawLocn, plan_write
from lvcrypt.store.physical import MetadataCopy, PvOnDisk, read_pv
from lvcrypt.command_mode import test_mode
from lvcrypt.records import dataclass, field


@dataclass
class Scan:
    """What the devices hold: PVs by path, and devices that could not be read as PVs (and why)."""

    pvs: dict[str, PvOnDisk] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    # Devices carrying a PV already found on another device (a cloned disk, a copy of an image), by path:
    # the first device seen is the PV, as lvm2's last resort ("device was seen first").
    duplicates: dict[str, PvOnDisk] = field(default_factory=dict)

    def pv_at(self, path: str) -> PvOnDisk | None:
        """The PV on `path`, however it is spelled (relative, absolute, another node of the same device).

        Looking PVs up by the exact string would take `pv1.img` for a blank device when the scan
        found it as `/abs/pv1.img` (or as a loop device over it), and re-initialise a PV that belongs
        to a VG.
        """
        pv = self.pvs.get(path) or self.duplicates.get(path)
        if pv is not None:
            return pv
        for known, candidate in [*self.pvs.items(), *self.duplicates.items()]:
            if _same_device(known, path):
                return candidate
        return None

    def by_uuid(self) -> dict[str, PvOnDisk]:
        return {pv.uuid: pv for pv in self.pvs.values()}

    def copies(self, vg_name: str | None = None) -> list[tuple[PvOnDisk, MetadataCopy]]:
        """Metadata copies, or those of the VG now called `vg_name`.

        A VG is known by its id: its name is the one in its newest copy.  Older copies under
        another name (a vgrename interrupted between PVs) belong to it as stale copies, so one
        VG id never shows under two names and the next commit rewrites them.
        """
        found = [(pv, mda.copy) for pv in self.pvs.values() for mda in pv.mdas if mda.copy is not None]
        if vg_name is None:
            return found
        names = self.current_names()
        return [(pv, copy) for pv, copy in found if names[copy.vg_id] == vg_name]

    def current_names(self) -> dict[str, str]:
        """VG id -> the name in its newest copy."""
        newest: dict[str, MetadataCopy] = {}
        for _, copy in self.copies():
            if copy.vg_id not in newest or copy.seqno > newest[copy.vg_id].seqno:
                newest[copy.vg_id] = copy
        return {vg_id: copy.vg_name for vg_id, copy in newest.items()}

    def vg_names(self) -> list[str]:
        return sorted(set(self.current_names().values()))


def _same_device(first: str, second: str) -> bool:
    """Two names of one device, which is no duplicate: a node and a by-id link, two nodes of one block
    device, an image file and a loop device over it from its first byte."""
    try:
        a, b = os.stat(first), os.stat(second)
    except OSError:
        return False
    if stat.S_ISBLK(a.st_mode) and stat.S_ISBLK(b.st_mode):
        return a.st_rdev == b.st_rdev
    if stat.S_ISBLK(a.st_mode) != stat.S_ISBLK(b.st_mode):
        device, image = (a, b) if stat.S_ISBLK(a.st_mode) else (b, a)
        backing = _loop_backing(device.st_rdev)
        return backing is not None and (backing.st_dev, backing.st_ino) == (image.st_dev, image.st_ino)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _loop_backing(rdev: int) -> os.stat_result | None:
    """The file behind a loop device that maps it from offset 0, as sysfs names it."""
    loop = f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}/loop"
    try:
        with open(f"{loop}/offset") as offset, open(f"{loop}/backing_file") as backing:
            return os.stat(backing.read().rstrip("\n")) if offset.read().strip() == "0" else None
    except OSError:
        return None


def scan(paths: list[str], with_text: bool = True) -> Scan:
    result = Scan()
    first_seen: dict[str, str] = {}  # PV uuid -> path
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
        if pv is None:
            continue
        first = first_seen.setdefault(pv.uuid, path)
        if first == path:
            result.pvs[path] = pv
        elif not _same_device(first, path):
            result.duplicates[path] = pv
    return result


@dataclass
class LoadedVg:
    """The newest version of a VG and where its PVs are.

    From the model cache the VG comes as its head (cache.lookup_head: its own fields and PVs, no LV) and
    the rest is unpickled when `vg` is first read: finding a VG, deciding whether to show it and `lvs`'
    cached view of its LVs (reportfields.lvs_view) read `head` alone, so a warm `lvs` of thousands of LVs
    builds no LV object.
    """

    head: VolumeGroup  # the VG; with `model` set, only its own fields and PVs (no LV, `raw` without sections)
    text: bytes
    pvs: dict[str, PvOnDisk]  # PV key (pv0...) -> PV found on a device
    missing: list[str]  # PV keys whose device was not found
    stale: list[str]  # human-readable notes on old or damaged copies, and on duplicate devices
    unreadable: list[str] = field(default_factory=list)  # devices scanned that could not be read as PVs
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # PV key -> other devices with that PV
    model: Callable[[], VolumeGroup] | None = field(default=None, repr=False, compare=False)  # the whole VG

    @property
    def vg(self) -> VolumeGroup:
        """The whole VG (its model loaded now if only its head was)."""
        if self.model is not None:
            self.head, self.model = self.model(), None
        return self.head

    @vg.setter
    def vg(self, vg: VolumeGroup) -> None:
        self.head, self.model = vg, None

    def refuse_duplicates(self, refusal: str) -> None:
        """lvm2 neither writes nor activates a VG whose PVs show on several devices
        (devices/allow_changes_with_duplicate_pvs=0): which disk is the real one, a clone's or the
        original's, is the administrator's call, and a write to the wrong one forks the VG."""
        if self.duplicates:
            raise DeviceError(refusal)

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
    """The validated VG of a metadata text; with `vg_id`, through the model cache (a hit skips the parser)."""
    vg, rest = _parse_head(text, source, vg_id)
    return vg if rest is None else rest()


def _parse_head(text: bytes, source: str, vg_id: str | None, whole: bool = True
                ) -> tuple[VolumeGroup, Callable[[], VolumeGroup] | None]:
    """The validated VG of a metadata text, and None; or, from the model cache, the VG's head and how to load the
    whole VG (from the cache, or by parsing the text when that part of the entry is damaged or was not stored).
    Without `whole` a text parsed is cached as its head alone (cache.store)."""
    from lvcrypt.store import cache

    found = cache.lookup_head(vg_id, text) if vg_id is not None else None
    if found is None:
        return _parse(text, source, vg_id, whole), None
    head, model = found
    return head, lambda: model() or _parse(text, source, vg_id)


def _parse(text: bytes, source: str, vg_id: str | None, whole: bool = True) -> VolumeGroup:
    """Parse, convert and validate a text; with `vg_id`, keep the model (or, without `whole`, its head) in the
    cache."""
    from lvcrypt.store import cache
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.parse import parse_bytes
    from lvcrypt.metadata.validate import validate

    vg = tree_to_vg(parse_bytes(text, source), source)
    validate(vg, source)
    if vg_id is not None:
        cache.store(vg_id, text, vg, whole)
    return vg


def load_vg(found: Scan, name: str, whole: bool = True) -> LoadedVg:
    """The newest copy of VG `name` that parses, wherever it is and whatever the device order; a copy
    parsed now is cached whole, or only its head for a command that asks no more (`whole` false:
    a cold `lvs`, which keeps its own view of the LVs beside it).

    A copy whose text is damaged (its checksum may even be right) is skipped with a note, and the
    next best copy used, as lvm2 does; only when no copy parses is the VG refused.
    """
    copies = found.copies(name)
    if not copies:
        damage = [f"{pv.path}: {mda.problem}" for pv in found.pvs.values() for mda in pv.mdas if mda.problem]
        damage += list(found.problems.values())
        raise LvcryptError(f"Volume group \"{name}\" not found"
                           + (f" (unreadable: {'; '.join(damage)})" if damage else ""))
    ids = {copy.vg_id for _, copy in copies}
    if len(ids) > 1:
        raise LvcryptError(f"several volume groups are named {name} (ids {', '.join(sorted(ids))})")
    stale: list[str] = []
    pv, newest, vg, rest = _newest_parsable(copies, name, stale, whole)
    by_uuid = found.by_uuid()
    members = {key: by_uuid[member.id] for key, member in vg.pvs.items() if member.id in by_uuid}
    missing = [key for key in vg.pvs if key not in members]
    stale += [f"ignoring metadata seqno {copy.seqno} on {p.path} for seqno {newest.seqno} on {pv.path} for VG {name}"
              + (f" (written as {copy.vg_name})" if copy.vg_name != name else "") for p, copy in copies
              if copy.seqno < newest.seqno]
    for key, member in members.items():
        stale.extend(f"{member.path}: {mda.problem}" for mda in member.mdas if mda.problem)
        stale.extend(_limit_to_device(vg, key, member))
    model = None if rest is None else _limited(rest, list(members.items()))
    duplicates: dict[str, list[str]] = {}
    for key, member in list(members.items()):
        others = [pv for pv in found.duplicates.values() if pv.uuid == member.uuid]
        if not others:
            continue
        chosen, reason = member, ""
        for other in others:
            chosen, reason = _preferred(vg.pvs[key], chosen, other)
        members[key] = chosen
        duplicates[key] = [pv.path for pv in (member, *others) if pv is not chosen]
        # lvm2's two warnings (lib/cache/lvmcache.c)
        stale += [f"Not using device {path} for PV {vg.pvs[key].id}." for path in duplicates[key]]
        stale.append(f"PV {vg.pvs[key].id} prefers device {chosen.path} because {reason}.")
    return LoadedVg(vg, newest.text, members, missing, stale, list(found.problems.values()), duplicates, model)


def _limited(rest: Callable[[], VolumeGroup], members: list[tuple[str, PvOnDisk]]) -> Callable[[], VolumeGroup]:
    """How to load the whole VG of a head: its PVs limited to their devices as the head's were."""
    def load() -> VolumeGroup:
        vg = rest()
        for key, member in members:
            _limit_to_device(vg, key, member)
        return vg
    return load


def _preferred(recorded: PhysicalVolume, first: PvOnDisk, second: PvOnDisk) -> tuple[PvOnDisk, str]:
    """Which of two devices carrying one PV lvm2 uses, by those of its rules that need no kernel (the
    device's size as the VG records it, then the device name it records), and why; else the first seen."""
    rules = (("device size is correct", lambda pv: pv.size // 512 == recorded.dev_size),
             ("device name matches previous", lambda pv: recorded.device in (pv.path, os.path.abspath(pv.path))))
    for name, holds in rules:
        if holds(first) != holds(second):
            return (first if holds(first) else second), name
    return first, "device was seen first"


def _newest_parsable(copies: list[tuple[PvOnDisk, MetadataCopy]], name: str, notes: list[str], whole: bool
                     ) -> tuple[PvOnDisk, MetadataCopy, VolumeGroup, Callable[[], VolumeGroup] | None]:
    """Copies by falling seqno (equal seqnos in a fixed order, not the scan's); the first that parses (its VG,
    or from the model cache its head and how to load the rest: _parse_head)."""
    ordered = sorted(copies, key=lambda item: (-item[1].seqno, item[0].uuid, item[1].locn.offset))
    failures: dict[bytes, MetadataError] = {}
    for pv, copy in ordered:
        where = f"{pv.path}:mda@{copy.locn.offset}"
        if copy.text in failures:
            notes.append(f"{where}: bad metadata text ({failures[copy.text].problem}); ignored")
            continue
        try:
            vg, rest = _parse_head(copy.text, where, copy.vg_id, whole)
        except MetadataError as error:
            failures[copy.text] = error
            notes.append(f"{where}: bad metadata text ({error}); ignored")
            continue
        _note_damaged_twins(ordered, copy, notes)
        return pv, copy, vg, rest
    first = next(iter(failures.values()))
    raise MetadataError(f"volume group {name}: {first}")


def _note_damaged_twins(ordered: list[tuple[PvOnDisk, MetadataCopy]], chosen: MetadataCopy,
                        notes: list[str]) -> None:
    """Copies with the chosen seqno but another text are damaged ones: noted whichever copy came first."""
    for pv, copy in ordered:
        if copy.seqno != chosen.seqno or copy.text == chosen.text:
            continue
        note = f"{pv.path}:mda@{copy.locn.offset}: bad metadata text"
        try:
            parse_vg(copy.text, f"{pv.path}:mda@{copy.locn.offset}")
        except MetadataError as error:
            note += f" ({error})"
        if f"{note}; ignored" not in notes:
            notes.append(f"{note}; ignored")


def _limit_to_device(vg: VolumeGroup, key: str, pv: PvOnDisk) -> list[str]:
    """A device smaller than its PV (a truncated image): lvm2's warning, and no allocation past its end."""
    member = vg.pvs[key]
    recorded = member.dev_size * 512
    if not pv.size or pv.size >= recorded:
        return []
    fits = max(0, (pv.size - member.pe_start * 512) // vg.extent_bytes)
    member.usable_extents = min(member.pe_count, fits)
    return [f"Device {pv.path} has size of {pv.size // 512} sectors which is smaller than corresponding PV size "
            f"of {member.dev_size} sectors. Was device resized?"]


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


def commit(vg: VolumeGroup, members: dict[str, PvOnDisk], description: str, repair: bool = False) -> bytes:
    """Write `vg` (its seqno already raised) to every metadata area of every PV in `members`.

    `members` maps each PV key of `vg` to its PV on disk.  Everything is planned
    (sizes checked) before the first byte is written.  Returns the text written.
    A header whose text location lies outside its area is left alone with a warning, as lvm2
    leaves it, unless `repair` (vgck --updatemetadata): then it is rewritten empty first.

    Two flushes order it.  The first, after the text and before any header points at it, fsyncs
    every PV of the VG (those without a metadata area too): it also makes durable whatever the
    caller wrote to the VG's PVs before calling, through any descriptor (fsync covers the file or
    device, not one descriptor), so the extent mover's chunk copies and wipes need no fsync of their
    own: their data is on disk before the metadata that maps it.  The second, after the headers, makes
    the commit durable before the caller goes on (wiping the extents it freed, say).  The precommitted
    slot is written as lvm2 writes it, but needs no flush of its own: readers after a crash follow
    committed slots only, and the committed write that follows it lands on the same sector, so a
    crash leaves each header old or new whether or not the precommit reached the disk.
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
                if not header.committed.empty and not header.holds(header.committed):
                    if not repair:
                        print(f"lvcrypt: warning: {pv.path}: metadata area at byte {header.start} points outside "
                              f"itself; not written (repair with vgck --updatemetadata {vg.name})", file=sys.stderr)
                        continue
                    header = MdaHeader(header.start, header.size)
                locn, writes = plan_write(header, text, f"{pv.path}")
                targets.append(_Target(disk, header, locn, writes))
        for target in targets:
            for offset, data in target.writes:
                target.disk.write_at(offset, data)
        _flush(disks)
        for target in targets:
            target.header.precommitted = target.locn
            target.disk.write_at(target.header.start, target.header.to_bytes())
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
        if not test_mode():  # under -t, a PV this command initialised has no header on disk: no news
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
