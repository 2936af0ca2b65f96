"""Crash consistency of a commit: the process dies before each of the commit's device writes in turn.

Afterwards the VG must read as exactly the old or the new version (lvcrypt and lvm2 agreeing
on which), and the next commit must leave every metadata area at the same, newest version.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.store import disk as disk_module
from lvcrypt.store.commit import load_vg, scan
from crash_points import restore, run_until_write, snapshot
from store_helpers import Pair

pytestmark = pytest.mark.oracle


def _churn_until_next_copy_wraps(pair: Pair, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit (in this process) until the next, slightly larger copy must wrap around the ring's end.

    Each copy's text records the command line that wrote it ("Write from lvcrypt ..."), so the
    churn runs under the command `argv` will run as: pytest's own command line, as long as the
    list of test files it was given, would otherwise size the copies and the wrap could be missed.
    """
    monkeypatch.setattr(sys, "argv", ["lvcrypt", *argv])
    from lvcrypt.lvops import create_lv, remove_lv
    from lvcrypt.store.mda import next_offset
    from lvcrypt.store.transaction import VgTransaction

    for round_ in range(400):
        pv = scan(pair.devices[:1]).pvs[pair.devices[0]]
        header = pv.mdas[0].header
        assert header is not None
        start = next_offset(header, header.committed)
        if start < header.size < start + header.committed.size + 400:
            return
        with VgTransaction(pair.device_list, "vgc") as tx:
            if "churn" in tx.vg.lvs:
                remove_lv(tx.vg, "churn")
            else:
                create_lv(tx.vg, "churn", 1)
            tx.commit()
    raise AssertionError("the ring never came close to its end")


@pytest.mark.slow
@pytest.mark.parametrize("command,wrap", [(["lvcreate", "-l", "2", "-n", "new", "vgc"], False),
                                          (["lvextend", "-l", "+3", "vgc/lv1"], False),
                                          (["lvcreate", "-l", "2", "-n", "new", "vgc"], True)],
                         ids=["lvcreate", "lvextend", "lvcreate-wrapping"])
def test_crash_at_every_write_of_a_commit(command: list[str], wrap: bool, loop_devices: Callable[..., list[str]],
                                          tmp_path: Path, lvm2: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = Pair(loop_devices(2, 16), tmp_path)
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    a, b = pair.devices
    pair.lvc("pvcreate", "--metadatasize", "64k", "--dataalignment", "64k", a)
    pair.lvc("pvcreate", "--pvmetadatacopies", "2", "--metadatasize", "64k", "--dataalignment", "64k", b)
    pair.lvc("vgcreate", "-s", "1m", "vgc", a, b)
    for index in range(3):
        pair.lvc("lvcreate", "-l", "2", "-n", f"lv{index}", "vgc")
    argv = [command[0], "--devices", pair.device_list, *command[1:]]
    if wrap:
        _churn_until_next_copy_wraps(pair, argv, monkeypatch)
    before = load_vg(scan(pair.devices), "vgc")
    old_seqno = before.vg.seqno
    old_lvs = {name: lv.extent_count for name, lv in before.vg.lvs.items()}
    saved = snapshot(pair.devices)

    total = run_until_write(argv, None, disk_module.Disk)
    after = load_vg(scan(pair.devices), "vgc")
    new_lvs = {name: lv.extent_count for name, lv in after.vg.lvs.items()}
    assert after.vg.seqno == old_seqno + 1 and new_lvs != old_lvs
    assert total >= 9, f"a commit to 3 metadata areas takes at least 9 writes, saw {total}"
    if wrap:
        header = scan(pair.devices[:1]).pvs[a].mdas[0].header
        assert header is not None and header.committed.offset + header.committed.size > header.size
        assert total >= 10, "the wrapped copy is written in two pieces"

    outcomes = []
    for stop_at in range(total):
        restore(saved)
        run_until_write(argv, stop_at, disk_module.Disk)
        found = load_vg(scan(pair.devices), "vgc")
        seen = {name: lv.extent_count for name, lv in found.vg.lvs.items()}
        assert (found.vg.seqno, seen) in ((old_seqno, old_lvs), (old_seqno + 1, new_lvs)), stop_at
        lvm_seqno = int(pair.lvm("vgs", "--noheadings", "-o", "vg_seqno", "vgc").stdout)
        assert lvm_seqno == found.vg.seqno, f"crash before write {stop_at}: lvm2 reads {lvm_seqno}"
        lvm_lvs = set(pair.lvm("lvs", "--noheadings", "-o", "lv_name", "vgc").stdout.split())
        assert lvm_lvs == set(seen)
        outcomes.append(found.vg.seqno - old_seqno)
        # The next commit repairs: every metadata area holds the same newest copy.
        pair.lvc("lvcreate", "-l", "1", "-n", "repair", "vgc")
        copies = [mda.copy for pv in scan(pair.devices).pvs.values() for mda in pv.mdas]
        assert all(copy is not None and copy.seqno == found.vg.seqno + 1 for copy in copies)
        pair.assert_lvm2_clean("vgc")
    # Early crashes keep the old version, late ones (after a committed slot was written) the new.
    assert outcomes[0] == 0 and outcomes[-1] == 1 and outcomes == sorted(outcomes)
    print(f"crash points tried for {command[0]}: {total}")
