"""A PV is the same PV however its path is spelled: relative, absolute, through a symlink."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def lvcrypt(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT)})


def test_relative_and_linked_paths_never_reinitialise_a_pv(tmp_path: Path) -> None:
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path / "state"), "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(64 << 20)
    assert lvcrypt(tmp_path, env, "pvcreate", str(tmp_path / "a.img"), str(tmp_path / "b.img")).returncode == 0
    uuids = lvcrypt(tmp_path, env, "pvs", "--noheadings", "-o", "pv_uuid").stdout.split()
    created = lvcrypt(tmp_path, env, "vgcreate", "vg1", "a.img")
    assert created.returncode == 0, created.stderr
    assert "Physical volume" not in created.stdout  # already a PV: not initialised again
    assert lvcrypt(tmp_path, env, "pvs", "--noheadings", "-o", "pv_uuid").stdout.split() == uuids
    (tmp_path / "link.img").symlink_to(tmp_path / "a.img")
    refused = lvcrypt(tmp_path, env, "vgcreate", "vg2", "link.img")
    assert refused.returncode == 5 and "is already in volume group 'vg1'" in refused.stderr
    refused = lvcrypt(tmp_path, env, "pvcreate", "a.img")
    assert refused.returncode == 5 and "vg1" in refused.stderr
    backup = tmp_path / "vg1.txt"
    assert lvcrypt(tmp_path, env, "vgcfgbackup", "-f", str(backup), "vg1").returncode == 0
    assert f'device = "{tmp_path / "a.img"}"' in backup.read_text()
