"""A cache of parsed VGs, so that report commands skip parsing (and importing the parser).

An entry holds the exact metadata text it was parsed from and is used only if
the text just read from the metadata area is byte for byte the same, so it can
never serve stale metadata: a changed VG simply misses.  Entries live in the
run directory and are trusted only when that directory and the file belong to
the current user and nobody else can write them (a cache entry is a pickle).
"""

from __future__ import annotations

import os
import pickle
import stat
import sys
from pathlib import Path

from lvcrypt import __version__
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.store.lock import run_dir

# Code and interpreter versions are part of the entry: a pickle of other classes is useless.
_STAMP = (__version__, sys.version_info[:2], 2)  # 2: UnknownSegment.ranges


def _private(path: Path) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _entry(vg_id: str) -> Path:
    return run_dir() / "cache" / f"{vg_id}.vg.pickle"


def lookup(vg_id: str, text: bytes) -> VolumeGroup | None:
    """The parsed VG for exactly this text, or None."""
    path = _entry(vg_id)
    if not (_private(run_dir()) and _private(path.parent) and _private(path)):
        return None
    try:
        with open(path, "rb") as f:
            stamp, cached_text, vg = pickle.load(f)
    except Exception:  # noqa: BLE001 - any unreadable entry is just a miss
        return None
    if stamp != _STAMP or cached_text != text or not isinstance(vg, VolumeGroup):
        return None
    return vg


def store(vg_id: str, text: bytes, vg: VolumeGroup) -> None:
    """Remember a parsed, validated VG; failures only cost the next reader a parse."""
    path = _entry(vg_id)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (_private(run_dir()) and _private(path.parent)):
            return
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(temp, "wb") as f:
            pickle.dump((_STAMP, text, vg), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp, path)
    except (OSError, pickle.PicklingError, RecursionError):
        return
