"""A command's view of one VG: lock it, read it from the devices, change the model, commit.

The one writer of VG metadata: every commit (a changed VG, a new one, a restored one, a
renamed one) goes through `_write`, which archives the version being replaced and
refreshes the backup file after the commit, as lvm2 does around each metadata change;
removing a VG archives it and drops its backup here too.
"""

from __future__ import annotations

import contextlib
import sys
from types import TracebackType
from typing import Callable, Iterator

from lvcrypt.errors import LockError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.store import access as vg_access
from lvcrypt.store import archive, lvmlockd
from lvcrypt.store.commit import LoadedVg, Scan, commit, load_vg, scan
from lvcrypt.store.devices import candidate_devices, devices_with
from lvcrypt.store.lock import GLOBAL, VgLock
from lvcrypt.store.physical import PvOnDisk


def command_line() -> str:
    import shlex  # only a change names its command line (in archives): commands that read never import it

    return "lvcrypt " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])


def backup_text(vg: VolumeGroup, description: str) -> str:
    from lvcrypt.metadata.convert import default_header, vg_to_tree
    from lvcrypt.metadata.write import write_text

    vg.header = default_header(description)
    return write_text(vg_to_tree(vg), layout="backup")


def archive_text(text: bytes, description: str) -> str:
    from lvcrypt.metadata.convert import default_header
    from lvcrypt.metadata.parse import parse_bytes
    from lvcrypt.metadata.tree import Section
    from lvcrypt.metadata.write import write_text

    tree = parse_bytes(text)
    body = Section((key, value) for key, value in tree.items() if isinstance(value, Section))
    out = Section(default_header(description))
    out.update(body)
    return write_text(out, layout="backup")


def warn(message: str) -> None:
    print(f"lvcrypt: warning: {message}", file=sys.stderr)


def write_backup_after_commit(vg: VolumeGroup, committed: bytes | None = None) -> None:
    """Refresh the backup file (from `committed`, the text last committed, when given); the commit already
    happened, so a failure here is a warning (lvm2's)."""
    from lvcrypt.command_mode import autobackup, verbose
    from lvcrypt.errors import LvcryptError

    if not autobackup():
        return
    description = f"Created *after* executing '{command_line()}'"
    try:
        text = backup_text(vg, description) if committed is None else archive_text(committed, description)
        path = archive.write_backup(vg.name, text)
        verbose(f"Creating volume group backup \"{path}\" (seqno {vg.seqno}).")
    except (OSError, LvcryptError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        warn(f"Backup of volume group {vg.name} metadata failed ({reason}). "
             "This metadata update is NOT backed up.")


def _archive(name: str, text: bytes, seqno: int) -> None:
    """Archive `text`, the VG's metadata before this command changed it."""
    from lvcrypt.command_mode import verbose

    verbose(f"Archiving volume group \"{name}\" metadata (seqno {seqno}).")
    archive.archive_version(name, archive_text(text, f"Created *before* executing '{command_line()}'"))


def _write(vg: VolumeGroup, members: dict[str, PvOnDisk], replaced: tuple[str, bytes] | None,
           repair: bool = False, backup: bool = True) -> bytes:
    """Archive `replaced` (the VG's name and metadata text before this command), commit `vg` to
    `members`, refresh the backup (unless the caller does it later); returns the text written."""
    if replaced is not None:
        _archive(replaced[0], replaced[1], vg.seqno - 1)
    text = commit(vg, members, f"Write from {command_line()}.", repair)
    if backup:
        write_backup_after_commit(vg)
    return text


class VgTransaction:
    """`with VgTransaction(devices, "vg0") as tx: change tx.vg; tx.commit()`.

    `membership`: the command moves PVs between VGs and orphans (vgextend, vgreduce, vgremove,
    vgrename), so the global lock is held first, as lvm2 does.
    """

    def __init__(self, devices: str | None, name: str, exclusive: bool = True, allow_missing: bool = False,
                 also_scan: list[str] | None = None, access: vg_access.Access | None = None,
                 membership: bool = False):
        self.devices = devices
        self.global_lock = VgLock(GLOBAL, exclusive=True) if membership else None
        # Exclusive transactions are the changing ones; lvm2's rules on shared, foreign, exported and
        # read-only VGs apply here, once, for every command.
        self.access = access or vg_access.Access(change=exclusive)
        self.also_scan = list(also_scan or [])
        self.name = name
        self.lock = VgLock(name, exclusive)
        self.lock.revalidate = self._unchanged
        self.allow_missing = allow_missing
        self.held = contextlib.ExitStack()
        self.archived = False  # lvm2 archives the version a command started from once, before its first commit
        self.backup_owed = False  # a commit left the backup file to a later one (or to the end)
        self.scan: Scan
        self.loaded: LoadedVg
        # A shared VG's LVs as read (None: no lvmlockd involved): commit takes their locks from the difference.
        self.lv_locks: dict[str, lvmlockd.LvSnapshot] | None = None

    def __enter__(self) -> "VgTransaction":
        with contextlib.ExitStack() as held:
            if self.global_lock is not None:
                held.enter_context(self.global_lock)
            held.enter_context(self.lock)
            self.scan = scan(devices_with(self.devices, self.also_scan))
            self.loaded = load_vg(self.scan, self.name)
            vg_access.check(self.loaded.vg, self.access)
            if self.loaded.vg.shared and lvmlockd.enabled():
                self.lv_locks = lvmlockd.snapshot(self.loaded.vg)
            for note in self.loaded.stale:
                warn(note)
            if not self.allow_missing:
                self.loaded.require_complete()
            if self.lock.exclusive:  # a changing command: refused before it asks or writes anything
                self.loaded.refuse_duplicates(f"Cannot update volume group {self.name} with duplicate PV devices.")
            self.held = held.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if self.backup_owed:  # interrupted between commits: back up what was last committed
                write_backup_after_commit(self.vg, self.loaded.text)
        finally:
            self.held.__exit__(kind, value, traceback)

    def _unchanged(self) -> None:
        """After the lock was dropped for a passphrase prompt: refuse to go on if the VG changed meanwhile."""
        copies = scan(candidate_devices(self.devices)).copies(self.loaded.vg.name)
        newest = max(copies, key=lambda item: item[1].seqno)[1].text if copies else None
        if newest != self.loaded.text:
            raise LockError(f"volume group {self.loaded.vg.name} changed while the passphrase was read; "
                            "run the command again")

    @property
    def vg(self) -> VolumeGroup:
        return self.loaded.vg

    def members(self, extra: dict[str, PvOnDisk] | None = None) -> dict[str, PvOnDisk]:
        return {**self.loaded.pvs, **(extra or {})}

    def commit(self, extra: dict[str, PvOnDisk] | None = None, repair: bool = False, backup: bool = True) -> None:
        """Write the changed VG (seqno + 1) to all its PVs; `extra` are PVs new to the VG.

        Only the first commit of a transaction archives (the version the command started from), as
        lvm2 archives once per command: a conversion committing chunk by chunk leaves one archive
        file, not one per chunk.  It passes `backup=False` to its chunk commits for the same reason:
        the backup file (rewritten and fsynced) is refreshed by the last commit, or when the
        transaction ends after an interruption, as lvm2 backs up once per command.

        `repair` also rewrites metadata area headers that point outside their area (vgck --updatemetadata).
        An online move also commits with `backup=False` while an LV is suspended: the backup directory
        may be on that LV's (frozen) file system.
        """
        vg_access.check(self.vg, vg_access.Access(change=True, exported=self.access.exported))
        after = lvmlockd.before_commit(self.vg, self.lv_locks) if self.lv_locks is not None else []
        self.vg.seqno += 1
        replaced = None if self.archived else (self.name, self.loaded.text)
        text = _write(self.vg, self.members(extra), replaced, repair, backup)
        self.backup_owed = not backup
        self.archived = True
        self.loaded.text = text.rstrip(b"\0")
        for step in after:
            step()
        if self.lv_locks is not None:
            self.lv_locks = lvmlockd.snapshot(self.vg)
        if self.vg.name != self.name:  # renamed: the backup under the old name is no longer the VG's
            archive.remove_backup(self.name)

    def archive_now(self) -> None:
        """Archive the version the command started from before its first commit (once): an online move
        does it before it suspends an LV, whose frozen file system may hold the archive directory."""
        if not self.archived:
            _archive(self.name, self.loaded.text, self.vg.seqno)
            self.archived = True

    def remove(self, release: Callable[[PvOnDisk], None]) -> None:
        """Remove the VG: archive its last version, `release` each of its PVs (make it an orphan),
        drop its backup file."""
        archive.archive_version(self.name, archive_text(self.loaded.text,
                                                        f"Created *before* executing '{command_line()}'"))
        for pv in self.loaded.pvs.values():
            release(pv)
        archive.remove_backup(self.name)


class VgCreation:
    """`with VgCreation(devices, "vg0", paths) as new: ...; new.commit(vg, members)`: write a VG that
    is not on the devices as such: a new one (vgcreate) or a backup restored over them (vgcfgrestore).

    Holds the global lock and the VG's lock; `scan` is what the devices (and `also_scan`) hold.
    """

    def __init__(self, devices: str | None, name: str, also_scan: list[str] | None = None,
                 lock_type: str | None = None):
        self.devices = devices
        self.name = name
        # vgcreate's new VG's lock type ("none" for a local one): lvm2 then asks lvmlockd for the global
        # lock with it and none for the new VG; None (vgcfgrestore): the locks of any change
        self.lock_type = lock_type
        self.also_scan = list(also_scan or [])
        self.locks = contextlib.ExitStack()
        self.scan: Scan

    def __enter__(self) -> "VgCreation":
        with contextlib.ExitStack() as locks:
            locks.enter_context(VgLock(GLOBAL, exclusive=True, creating=self.lock_type))
            locks.enter_context(VgLock(self.name, exclusive=True, creating=self.lock_type))
            self.scan = scan(devices_with(self.devices, self.also_scan))
            self.locks = locks.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.locks.__exit__(kind, value, traceback)

    def newest_seqno(self) -> int:
        """The highest seqno of this VG name on the devices (0: none), which a restore must pass."""
        return max((copy.seqno for _, copy in self.scan.copies(self.name)), default=0)

    def commit(self, vg: VolumeGroup, members: dict[str, PvOnDisk]) -> None:
        """Write `vg` (its seqno as set) to `members`, then its backup; nothing is archived: the
        devices hold no version of it that this replaces."""
        _write(vg, members, None)


def each_vg(devices: str | None, names: list[str], skip_refused: bool, exclusive: bool = True,
            allow_missing: bool = False, access: vg_access.Access | None = None) -> Iterator[VgTransaction]:
    """A transaction (options as VgTransaction's) for each VG of `names`, one after the other.

    With `skip_refused` (a command over every VG, no VG named), a VG lvm2 would not touch on this
    host (shared without lvmlockd, foreign) is passed over with a warning, as lvm2's commands do;
    otherwise its refusal is the command's error.
    """
    for name in names:
        with contextlib.ExitStack() as held:
            try:
                tx = held.enter_context(VgTransaction(devices, name, exclusive, allow_missing, access=access))
            except vg_access.VgAccessError as error:
                if not skip_refused:
                    raise
                warn(f"skipped: {error}")
                continue
            yield tx
