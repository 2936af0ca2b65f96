"""Recovery as lvm2 does it: interrupted renames, backups that cannot be written, damaged copies,
bad mda headers, truncated PV images.  lvm2 reads what lvcrypt leaves behind (and the reverse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.store.commit import scan
from store_helpers import Pair
from test_store_crash import _restore, _run_until_write, _snapshot

pytestmark = pytest.mark.oracle


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], lvm2: None, tmp_path: Path) -> Pair:
    return Pair(loop_devices(2, 16), tmp_path)


def test_failed_backup_after_commit_is_a_warning(pair: Pair) -> None:
    a, b = pair.devices
    pair.lvc("vgcreate", "-s", "1m", "vgk", a, b)
    backup_dir = pair.tmp / "state" / "backup"
    for child in backup_dir.iterdir():
        child.unlink()
    backup_dir.rmdir()
    backup_dir.write_text("not a directory\n")  # the backup cannot be written
    result = pair.lvc("lvcreate", "-l", "3", "-n", "kept", "vgk")
    assert "NOT backed up" in result.stderr and result.stderr.startswith("lvcrypt: warning: ")
    assert pair.lvm("lvs", "--noheadings", "-o", "lv_name", "vgk").stdout.split() == ["kept"]
    pair.assert_lvm2_clean("vgk")


@pytest.mark.slow
def test_crash_during_vgrename_never_shows_one_vg_under_two_names(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    a, b = pair.devices
    pair.lvc("pvcreate", a)
    pair.lvc("pvcreate", "--pvmetadatacopies", "2", b)
    pair.lvc("vgcreate", "-s", "1m", "vgold", a, b)
    pair.lvc("lvcreate", "-l", "2", "-n", "lv0", "vgold")
    snapshot = _snapshot(pair.devices)
    argv = ["vgrename", "--devices", pair.device_list, "vgold", "vgnew"]
    total = _run_until_write(argv, None)
    assert scan(pair.devices).vg_names() == ["vgnew"]
    seen = []
    for stop_at in range(total):
        _restore(snapshot)
        _run_until_write(argv, stop_at)
        names = scan(pair.devices).vg_names()
        assert names in (["vgold"], ["vgnew"]), (stop_at, names)
        listed = pair.lvc("vgs", "--noheadings", "-o", "vg_name").stdout.split()
        assert listed == names, stop_at
        seen.append(names[0])
        # the next commit under the name readers see rewrites every copy; lvm2 agrees with it
        pair.lvc("lvcreate", "-l", "1", "-n", "after", names[0])
        copies = [mda.copy for pv in scan(pair.devices).pvs.values() for mda in pv.mdas]
        assert all(copy is not None and copy.vg_name == names[0] for copy in copies), stop_at
        pair.assert_agree(names[0])
        pair.assert_lvm2_clean(names[0])
    assert seen[0] == "vgold" and seen[-1] == "vgnew" and seen == sorted(seen, key=["vgold", "vgnew"].index)
