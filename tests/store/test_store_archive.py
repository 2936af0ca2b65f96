"""Archive files: numbered like lvm2's, and pruned like lvm2's retain_min/retain_days."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lvcrypt.store import archive


def test_archives_are_numbered_and_old_ones_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path))
    paths = [archive.archive_version("vg0", f"version {n}\n") for n in range(14)]
    assert [p.name[:9] for p in paths] == [f"vg0_{n:05d}" for n in range(14)]
    old = time.time() - 40 * 24 * 3600
    for path in paths[:6]:
        os.utime(path, (old, old))
    newest = archive.archive_version("vg0", "version 14\n")
    left = sorted(p.name[:9] for p in (tmp_path / "archive").glob("vg0_*.vg"))
    # Older than 30 days goes, except among the 10 newest: 0-4 are pruned, 5 (as old) is kept.
    assert left == [f"vg0_{n:05d}" for n in range(5, 15)]
    assert newest.read_text() == "version 14\n"
    archive.archive_version("other", "x\n")
    assert len(list((tmp_path / "archive").glob("vg0_*.vg"))) == 10
