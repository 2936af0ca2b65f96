"""20 lvcrypt processes changing one VG at the same time: the VG lock serialises them, every one
succeeds or fails with a one-line error, and the final metadata holds exactly the successful
changes (lvm2 agreeing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from lvcrypt.store.commit import load_vg, scan
from store_helpers import Pair

pytestmark = pytest.mark.oracle


@pytest.mark.slow
def test_twenty_processes_create_and_remove_lvs_at_once(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                         lvm2: None) -> None:
    pair = Pair(loop_devices(2, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "-s", "1m", "vgq", *pair.devices)
    for index in range(10):
        pair.lvc("lvcreate", "-l", "1", "-n", f"old{index}", "vgq")
    start_seqno = load_vg(scan(pair.devices), "vgq").vg.seqno
    # Ten creations (two of them collide on one name: exactly one may win) and ten removals.
    commands = [["lvcreate", "-l", "2", "-n", f"new{index}", "vgq"] for index in range(9)]
    commands.append(["lvcreate", "-l", "2", "-n", "new0", "vgq"])
    commands += [["lvremove", f"vgq/old{index}"] for index in range(10)]
    processes = [subprocess.Popen([sys.executable, "-m", "lvcrypt", command[0], "--devices", pair.device_list,
                                   *command[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=pair.env, cwd=ROOT) for command in commands]
    results = [(command, process.wait(), *process.communicate()) for command, process in zip(commands, processes)]

    succeeded = [command for command, status, _, _ in results if status == 0]
    for command, status, _, stderr in results:
        if status:
            assert status == 5 and stderr.count("\n") == 1 and stderr.startswith("lvcrypt: "), (command, stderr)
            assert "already exists" in stderr, (command, stderr)
    assert len(succeeded) == 19, [(c, s, e) for c, s, _, e in results if s]

    expected = {f"new{index}" for index in range(9)}
    found = load_vg(scan(pair.devices), "vgq")
    assert set(found.vg.lvs) == expected
    assert found.vg.seqno == start_seqno + len(succeeded)
    assert set(pair.lvm("lvs", "--noheadings", "-o", "lv_name", "vgq").stdout.split()) == expected
    pair.assert_agree("vgq")
    pair.assert_lvm2_clean("vgq")
