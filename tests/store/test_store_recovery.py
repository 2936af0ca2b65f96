"""Recovery as lvm2 does it: interrupted renames, backups that cannot be written, damaged copies,
bad mda headers, truncated PV images.  lvm2 reads what lvcrypt leaves behind (and the reverse).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest

from conftest import LVM_ENV, _can_losetup
from lvcrypt.store.commit import load_vg, scan
from lvcrypt.store.disk import Disk
from lvcrypt.store.mda import RawLocn, text_checksum
from lvcrypt.store.physical import read_pv
from store_helpers import Pair
from crash_points import restore, run_until_write, snapshot

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
    saved = snapshot(pair.devices)
    argv = ["vgrename", "--devices", pair.device_list, "vgold", "vgnew"]
    total = run_until_write(argv, None, Disk)
    assert scan(pair.devices).vg_names() == ["vgnew"]
    seen = []
    for stop_at in range(total):
        restore(saved)
        run_until_write(argv, stop_at, Disk)
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


def _rewrite_copy(path: str, change: Callable[[bytes], bytes]) -> None:
    """Replace the committed text of the first metadata area, with a right checksum (damage no CRC catches)."""
    with Disk(path, writable=True) as disk:
        pv = read_pv(disk)
        assert pv is not None and pv.mdas[0].header is not None
        header = pv.mdas[0].header
        slot = header.committed
        text = disk.read_at(header.start + slot.offset, slot.size)
        new = change(text)
        assert len(new) == len(text) and new != text
        disk.write_at(header.start + slot.offset, new)
        header.committed = RawLocn(slot.offset, slot.size, text_checksum(new), slot.flags)
        disk.write_at(header.start, header.to_bytes())
        disk.flush()


def _point_outside(path: str) -> None:
    """An mda header with a right checksum whose committed text lies past the end of its area."""
    with Disk(path, writable=True) as disk:
        pv = read_pv(disk)
        assert pv is not None and pv.mdas[0].header is not None
        header = pv.mdas[0].header
        slot = header.committed
        header.committed = RawLocn(header.size + 4096, slot.size, slot.checksum, slot.flags)
        disk.write_at(header.start, header.to_bytes())
        disk.flush()


def _lv_names(pair: Pair, tool: str, vg: str, devices: list[str]) -> list[str]:
    ordered = Pair(devices, pair.tmp)
    run = ordered.lvc if tool == "lvcrypt" else ordered.lvm
    lines = [line.strip() for line in run("lvs", "--noheadings", "-o", "lv_name", vg).stdout.splitlines()]
    return [line for line in lines if line and " " not in line]  # lvm2 says "Retrying metadata scan." there


def _clean(pair: Pair, vg: str) -> None:
    """lvm2 finds nothing to warn about, and lvcrypt prints no damage note either."""
    pair.assert_lvm2_clean(vg)
    assert "WARNING" not in pair.lvc("lvs", vg).stderr


def test_newest_copy_damaged_on_one_pv_uses_the_good_ones_in_either_order(pair: Pair) -> None:
    a, b = pair.devices
    pair.lvm("vgcreate", "-s", "1m", "vgd", a, b)
    pair.lvm("lvcreate", "-l", "2", "-n", "keep", "vgd")
    _rewrite_copy(a, lambda text: text.replace(b"extent_size = ", b"extent_size @ ", 1))
    for order in ([a, b], [b, a]):
        assert _lv_names(pair, "lvcrypt", "vgd", order) == ["keep"], order
        warned = Pair(order, pair.tmp).lvc("lvs", "vgd").stderr
        assert f"{a}:mda@" in warned and "bad metadata text" in warned
    assert _lv_names(pair, "lvm2", "vgd", [a, b]) == ["keep"]
    # a change works next to the damage and rewrites it, as lvm2's own next commit does
    pair.lvc("lvcreate", "-l", "1", "-n", "more", "vgd")
    _clean(pair, "vgd")
    # a text that fails its checksum is skipped the same way; vgck --updatemetadata repairs it
    _rewrite_copy(b, lambda text: text.replace(b"extent_size = ", b"extent_size @ ", 1))
    with Disk(b, writable=True) as disk:
        pv = read_pv(disk)
        assert pv is not None and pv.mdas[0].header is not None
        at = pv.mdas[0].header.start + pv.mdas[0].header.committed.offset + 40
        disk.write_at(at, bytes([disk.read_at(at, 1)[0] ^ 0x20]))
    for order in ([a, b], [b, a]):
        assert _lv_names(pair, "lvcrypt", "vgd", order) == ["keep", "more"], order
    pair.lvc("vgck", "--updatemetadata", "vgd")
    _clean(pair, "vgd")
    # and lvcrypt reads cleanly what lvm2's own repair of the same damage wrote
    _rewrite_copy(a, lambda text: text.replace(b"extent_size = ", b"extent_size @ ", 1))
    pair.lvm("vgck", "--updatemetadata", "vgd")
    pair.lvm("vgck", "--updatemetadata", "vgd")
    _clean(pair, "vgd")
    assert _lv_names(pair, "lvcrypt", "vgd", [a, b]) == ["keep", "more"]


def test_bad_vg_id_on_one_device_is_a_warning_for_that_device(loop_devices: Callable[..., list[str]],
                                                               lvm2: None, tmp_path: Path) -> None:
    pair = Pair(loop_devices(2, 16), tmp_path)
    good, bad = pair.devices
    pair.lvc("vgcreate", "-s", "1m", "vgok", good)
    pair.lvc("lvcreate", "-l", "2", "-n", "fine", "vgok")
    pair.lvc("vgcreate", "-s", "1m", "vgbad", bad)

    def garble_id(text: bytes) -> bytes:
        start = text.index(b'id = "') + len(b'id = "')
        return text[:start] + b"\xff\xfe" + text[start + 2:]

    _rewrite_copy(bad, garble_id)
    listing = pair.lvc("lvs", "--noheadings", "-o", "lv_name,vg_name")
    assert listing.stdout.split() == ["fine", "vgok"]
    assert "invalid VG id" in listing.stderr and "internal error" not in listing.stderr
    assert pair.lvc("vgs", "--noheadings", "-o", "vg_name").stdout.split() == ["vgok"]
    pair.lvc("lvcreate", "-l", "1", "-n", "still", "vgok")
    Pair([good], tmp_path).assert_lvm2_clean("vgok")  # lvm2 itself warns about the bad device
    theirs = subprocess.run(["lvs", "--devices", ",".join(pair.devices), "--noheadings", "-o", "lv_name"],
                            capture_output=True, env=LVM_ENV)
    assert theirs.returncode == 0 and theirs.stdout.split()[-2:] == [b"fine", b"still"]
    assert b"invalid summary" in theirs.stderr


def test_mda_header_pointing_outside_its_area_is_skipped_and_repaired(pair: Pair) -> None:
    a, b = pair.devices
    pair.lvc("vgcreate", "-s", "1m", "vgp", a, b)
    pair.lvc("lvcreate", "-l", "2", "-n", "one", "vgp")
    _point_outside(a)
    for order in ([a, b], [b, a]):
        assert _lv_names(pair, "lvcrypt", "vgp", order) == ["one"]
    assert "points outside its area" in pair.lvc("lvs", "vgp").stderr
    alone = Pair([a], pair.tmp).lvc("lvs", "vgp", check=False)
    assert alone.returncode == 5 and "points outside its area" in alone.stderr
    assert "vgck --updatemetadata" in alone.stderr and alone.stderr.count("\n") == 1
    changed = pair.lvc("lvcreate", "-l", "1", "-n", "two", "vgp")  # as lvm2: the bad area is left alone
    assert "not written" in changed.stderr
    with Disk(a) as disk:
        pv = read_pv(disk)
        assert pv is not None and pv.mdas[0].bad_location
    assert _lv_names(pair, "lvm2", "vgp", [a, b]) == ["one", "two"]
    pair.lvc("vgck", "--updatemetadata", "vgp")
    _clean(pair, "vgp")
    # and the other way round: lvcrypt reads what lvm2's repair wrote
    _point_outside(b)
    # lvm2 2.03.16's first run says "not repairing bad metadata (0x38)"; its second one repairs
    pair.lvm("vgck", "--updatemetadata", "vgp")
    pair.lvm("vgck", "--updatemetadata", "vgp")
    _clean(pair, "vgp")
    assert _lv_names(pair, "lvcrypt", "vgp", [b, a]) == ["one", "two"]


def test_truncated_pv_warns_and_allocation_stays_inside(lvm2: None, tmp_path: Path) -> None:
    """lvm2 warns about a device smaller than its PV but still allocates past its end; lvcrypt warns alike
    and keeps every new extent inside the device."""
    if _can_losetup():
        pytest.skip(_can_losetup())
    image = tmp_path / "short.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    pair = Pair([str(image)], tmp_path)
    pair.lvc("vgcreate", "-s", "1m", "vgt", str(image))
    pair.lvc("lvcreate", "-l", "4", "-n", "first", "vgt")
    with open(image, "r+b") as f:
        f.truncate(20 << 20)
    listing = pair.lvc("lvs", "vgt")
    assert "smaller than corresponding PV size" in listing.stderr
    refused = pair.lvc("lvcreate", "-l", "20", "-n", "past", "vgt", check=False)
    assert refused.returncode == 5 and "insufficient free space" in refused.stderr
    pair.lvc("lvcreate", "-l", "15", "-n", "fits", "vgt")
    with Disk(str(image)) as disk:
        pv = read_pv(disk)
    assert pv is not None
    loaded = load_vg(scan([str(image)]), "vgt")
    end = max(area.extent + count for lv in loaded.vg.lvs.values() for s in lv.segments
              for area, count in s.pv_areas())
    assert pv.header.pe_start + end * loaded.vg.extent_bytes <= 20 << 20
    # lvm2 reads the result (with its own warning about the resized device)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                          check=True).stdout.strip()
    try:
        names = Pair([loop], tmp_path).lvm("lvs", "--noheadings", "-o", "lv_name", "vgt")
        assert names.stdout.split() == ["first", "fits"]
        assert "smaller than corresponding PV size" in names.stderr
        Pair([loop], tmp_path).lvm("vgck", "vgt")
    finally:
        subprocess.run(["losetup", "-d", loop], capture_output=True)


@pytest.mark.parametrize(("failing", "resume"), [(("text", 0), "old"), (("header", 0), "old"),
                                                 (("header", 1), "new")])
def test_a_commit_failing_on_the_second_pv_resumes_the_tables_readers_will_map(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, failing: tuple[str, int], resume: str) -> None:
    """An online move's commit dying at the second PV's text, precommit or commit write (issue 17): the
    version read back (lvcrypt's read path, and lvm2 as oracle) decides which tables the LV resumes, and
    the next commit rewrites the stale copy."""
    from lvcrypt.activate.kernel import Resume
    from lvcrypt.activation import after_failed_commit, read_back_vg
    from lvcrypt.store.mda import MAGIC
    from lvcrypt.store.transaction import VgTransaction

    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    a, b = pair.devices
    pair.lvc("vgcreate", "-s", "1m", "vgk", a, b)
    pair.lvc("lvcreate", "-l", "2", "-n", "lv0", "vgk", a)
    original = Disk.write_at
    seen = {"text": 0, "header": 0}

    def write_at(self: Disk, offset: int, data: bytes) -> None:
        if self.path == b:
            kind = "header" if bytes(data[4:20]) == MAGIC else "text"
            if (kind, seen[kind]) == failing:
                raise OSError(5, "Input/output error")
            seen[kind] += 1
        original(self, offset, data)
    with VgTransaction(pair.device_list, "vgk") as tx:
        seqno = tx.vg.seqno
        monkeypatch.setattr(Disk, "write_at", write_at)
        with pytest.raises(OSError):
            tx.commit(backup=False)
        monkeypatch.setattr(Disk, "write_at", original)
        read_back, why = read_back_vg(tx)
    assert read_back is not None and why == ""
    assert after_failed_commit(read_back, seqno + 1) is Resume(resume)
    expected = seqno + 1 if resume == "new" else seqno
    assert read_back.seqno == expected
    assert pair.lvm("vgs", "--noheadings", "-o", "vg_seqno", "vgk").stdout.split() == [str(expected)]
    pair.lvc("lvcreate", "-l", "1", "-n", "after", "vgk")
    pair.assert_lvm2_clean("vgk")


def test_a_commit_read_back_as_no_version_of_this_move_leaves_the_lv_suspended(pair: Pair) -> None:
    """Unreadable, or a seqno the failed commit did not write: neither table is known right; the one-line
    message names the commands that settle the LV."""
    from lvcrypt.activate.kernel import Resume
    from lvcrypt.activation import after_failed_commit, failed_commit_message

    a, b = pair.devices
    pair.lvc("vgcreate", "-s", "1m", "vgk", a, b)
    vg = load_vg(scan(pair.devices), "vgk").vg
    assert after_failed_commit(None, vg.seqno) is Resume.NONE
    assert after_failed_commit(vg, vg.seqno - 1) is Resume.NONE  # a newer version than this commit's
    assert after_failed_commit(vg, vg.seqno + 2) is Resume.NONE  # older than the version it started from
    message = failed_commit_message("vgk/lv0", "Input/output error", Resume.NONE, "no copy readable", 9)
    assert "\n" not in message and "stays suspended" in message and "lvchange --refresh vgk/lv0" in message
