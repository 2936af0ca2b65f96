"""20 lvcrypt processes changing one VG at the same time: the VG lock serialises them, every one
succeeds or fails with a one-line error, and the final metadata holds exactly the successful
changes (lvm2 agreeing)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest

from conftest import LVM_ENV, ROOT
from lvcrypt.store.commit import load_vg, scan
from store_helpers import Pair
from test_locks import proc_locks, wait_until

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


@pytest.mark.slow
def test_twenty_lvm2_and_lvcrypt_processes_on_one_vg_lose_no_update(loop_devices: Callable[..., list[str]],
                                                                    tmp_path: Path, lvm2: None) -> None:
    """lvcrypt takes lvm2's own lock files: ten `lvm lvcreate` and ten `lvcrypt lvcreate` started while
    the VG's lock is held all queue on it (a command with private locks would not), then all succeed,
    one after the other, and every LV is there afterwards."""
    pair = Pair(loop_devices(2, 64), tmp_path)
    name = f"vgmix{uuid.uuid4().hex[:8]}"  # lock files are machine-wide: no name shared with a parallel test
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "-s", "1m", name, *pair.devices)
    start_seqno = load_vg(scan(pair.devices), name).vg.seqno
    lock_file = Path("/run/lock/lvm") / f"V_{name}"
    holder = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    processes = []
    for index in range(10):
        processes.append(subprocess.Popen(["lvcreate", "--devices", pair.device_list, "--driverloaded", "n", "-an",
                                           "-Zn", "-l", "2", "-n", f"lvm{index}", name], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=LVM_ENV))
        processes.append(subprocess.Popen([sys.executable, "-m", "lvcrypt", "lvcreate", "--devices",
                                           pair.device_list, "-l", "2", "-n", f"ours{index}", name],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pair.env,
                                          cwd=ROOT))
    try:
        wait_until(lambda: {p.pid for p in processes} <= {pid for waiting, pid, _ in proc_locks() if waiting})
    finally:
        os.close(holder)
    failures = [(process.args, process.returncode, err) for process in processes
                for _, err in [process.communicate()] if process.returncode]
    assert not failures, failures

    expected = {f"lvm{index}" for index in range(10)} | {f"ours{index}" for index in range(10)}
    assert set(pair.lvm("lvs", "--noheadings", "-o", "lv_name", name).stdout.split()) == expected
    found = load_vg(scan(pair.devices), name)
    assert set(found.vg.lvs) == expected
    assert found.vg.seqno == start_seqno + 20
    pair.assert_agree(name)
    pair.assert_lvm2_clean(name)
