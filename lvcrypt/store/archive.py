"""Archives of previous VG versions and a backup of the current one, as vgcfgbackup files.

Files go to the state directory: `LVCRYPT_STATE_DIR`, else /etc/lvcrypt for
root and ~/.local/state/lvcrypt for other users, with lvm2's layout
(`archive/VG_NNNNN-RANDOM.vg`, `backup/VG`).  The directories are created
0700 and refused when they are not ours alone (a backup is what vgcfgrestore
writes back to the disks); VG names, which may come from a disk, are checked
before they become part of a file name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lvcrypt.atomic_file import private_directory, write_atomically
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.validate import name_problem
from lvcrypt.command_mode import test_mode

STATE_ENV = "LVCRYPT_STATE_DIR"


def state_dir() -> Path:
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/etc/lvcrypt")
    return Path.home() / ".local" / "state" / "lvcrypt"


def _checked_levels(parts: tuple[str, ...], create: bool) -> Path | None:
    """The state directory, then each level of `parts` under it, checked (and created) by private_directory."""
    path = state_dir()
    if private_directory(path, create) is None:
        return None
    for part in parts:
        path = path / part
        if private_directory(path, create) is None:
            return None
    return path


def state_path(*parts: str) -> Path:
    """A subdirectory of the state directory, each level created 0700 and checked to be ours alone."""
    path = _checked_levels(parts, create=True)
    if path is None:  # private_directory creates a missing level or raises
        raise LvcryptError(f"cannot create {state_dir().joinpath(*parts)}")
    return path


def existing_state_path(*parts: str) -> Path | None:
    """The same for reading: None when a level is missing (nothing to read), refused when not private."""
    return _checked_levels(parts, create=False)


def file_name_of(vg_name: str) -> str:
    """A VG name as part of a file name, only once it is a name lvm2 accepts (no '/', no '..')."""
    problem = name_problem(vg_name)
    if problem:
        raise LvcryptError(f"volume group name unusable in a file name: {problem}")
    return vg_name


def backup_path(vg_name: str) -> Path | None:
    """Where VG's backup is, if the backup directory exists."""
    directory = existing_state_path("backup")
    return directory / file_name_of(vg_name) if directory else None


def archive_version(vg_name: str, text: str) -> Path:
    """Keep a VG version that is about to be replaced (lvm2 names these VG_NNNNN-RANDOM.vg)."""
    import random  # only commands that change a VG archive one

    vg_name = file_name_of(vg_name)
    directory = state_path("archive")
    numbers = [int(p.name[len(vg_name) + 1:len(vg_name) + 6]) for p in directory.glob(f"{vg_name}_[0-9][0-9][0-9][0-9][0-9]-*.vg")
               if p.name[len(vg_name) + 1:len(vg_name) + 6].isdigit()]
    number = max(numbers, default=-1) + 1
    path = directory / f"{vg_name}_{number:05d}-{random.randrange(10**9)}.vg"
    write_atomically(path, text)
    _prune(directory, vg_name)
    return path


# lvm2's defaults (backup/retain_min, backup/retain_days): keep at least 10 archives, and all from 30 days.
RETAIN_MIN = 10
RETAIN_SECONDS = 30 * 24 * 3600


def _prune(directory: Path, vg_name: str) -> None:
    archives = sorted(directory.glob(f"{vg_name}_[0-9][0-9][0-9][0-9][0-9]-*.vg"), key=lambda p: p.name)
    cutoff = time.time() - RETAIN_SECONDS
    for old in archives[:-RETAIN_MIN]:
        if old.stat().st_mtime < cutoff and not test_mode():
            old.unlink()


def write_backup(vg_name: str, text: str) -> Path:
    file_name = file_name_of(vg_name)
    path = state_path("backup") / file_name
    write_atomically(path, text)
    return path


def remove_backup(vg_name: str) -> None:
    path = backup_path(vg_name)
    if path is None or test_mode():
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass
