"""Archives of previous VG versions and a backup of the current one, as vgcfgbackup files.

Files go to the state directory: `LVCRYPT_STATE_DIR`, else /etc/lvcrypt for
root and ~/.local/state/lvcrypt for other users, with lvm2's layout
(`archive/VG_NNNNN-RANDOM.vg`, `backup/VG`).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from lvcrypt.atomic_file import write_atomically

STATE_ENV = "LVCRYPT_STATE_DIR"


def state_dir() -> Path:
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/etc/lvcrypt")
    return Path.home() / ".local" / "state" / "lvcrypt"


def archive_version(vg_name: str, text: str) -> Path:
    """Keep a VG version that is about to be replaced (lvm2 names these VG_NNNNN-RANDOM.vg)."""
    directory = state_dir() / "archive"
    directory.mkdir(parents=True, exist_ok=True)
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
        if old.stat().st_mtime < cutoff:
            old.unlink()


def write_backup(vg_name: str, text: str) -> Path:
    path = state_dir() / "backup" / vg_name
    write_atomically(path, text)
    return path


def remove_backup(vg_name: str) -> None:
    try:
        (state_dir() / "backup" / vg_name).unlink()
    except FileNotFoundError:
        pass

