"""lvcrypt talks to lvmlockd as lvm2 does: the same requests, byte for byte, for the same command.

lvm2 is the oracle: both tools are pointed at one recording stand-in lvmlockd (tests/fake_lvmlockd.py)
with an lvm.conf that sets use_lvmlockd = 1, on a shared VG lvm2 restored; the requests each sends
are compared with only the pid (and a new LV's random uuid) normalised.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from fake_lvmlockd import FakeLvmlockd, fake_lvmlockd, granted  # noqa: F401 - the fixture
from lvcrypt.store.lvmlockd import EMANAGER, ENOLS
from conftest import ROOT
from shared_vg_text import DLM, SANLOCK, lvm2_written, make_shared
from store_helpers import Pair, digests

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2"), pytest.mark.xdist_group("lvmlockd")]

NOISE = re.compile(r"Activation disabled|/dev/mapper/control|device-mapper|libdevmapper|not zeroed")


def lvm_lockd(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    """lvm2 with the test's lvm.conf and socket (os.environ as the fixture set it)."""
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}
    return subprocess.run([args[0], "--devices", pair.device_list, "--driverloaded", "n", *args[1:]],
                          capture_output=True, text=True, env=env)


def messages(stderr: str) -> list[str]:
    return [line.strip().removeprefix("lvcrypt: ").removeprefix("warning: ").removeprefix("WARNING: ")
            for line in stderr.splitlines() if line.strip() and not NOISE.search(line)]


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    made = Pair(loop_devices(1, 320), tmp_path)
    make_shared(made)
    return made


@pytest.mark.parametrize("command", [("lvs", "vgx"), ("vgs", "vgx"), ("lvs",), ("vgs",), ("pvs",)],
                         ids=" ".join)
def test_reports_send_lvm2s_requests(pair: Pair, fake_lvmlockd: FakeLvmlockd, command: tuple[str, ...]) -> None:
    theirs = lvm_lockd(pair, *command)
    assert theirs.returncode == 0, theirs.stderr
    expected = fake_lvmlockd.take()
    assert any(b'request="lock_vg"' in raw for raw in expected) or command == ("pvs",)
    ours = pair.lvc(*command)
    assert fake_lvmlockd.take() == expected, ours.stderr
    assert ours.stdout.split() == theirs.stdout.split()


def test_a_local_vg_ignores_lvmlockds_answer(fake_lvmlockd: FakeLvmlockd, loop_devices: Callable[..., list[str]],
                                             tmp_path: Path) -> None:
    """lvm2 asks lock_vg for a VG before it knows its type; a local VG's failed answer (no lockspace)
    is ignored, and no unlock follows it."""
    local = Pair(loop_devices(1, 16), tmp_path)
    local.lvm("vgcreate", "vgl", *local.devices)
    fake_lvmlockd.answer = lambda request, n: {**granted(request, n), "op_result": -ENOLS}
    theirs = lvm_lockd(local, "lvcreate", "-an", "-Zn", "-l", "1", "-n", "a", "vgl")
    assert theirs.returncode == 0, theirs.stderr
    expected = fake_lvmlockd.take()
    assert [raw.split(b"\n")[0] for raw in expected] == [b'request="lock_vg"']
    ours = local.lvc("lvcreate", "-l", "1", "-n", "b", "vgl")
    assert fake_lvmlockd.take() == expected
    assert not messages(ours.stderr), ours.stderr
    local.assert_lvm2_clean("vgl")


@pytest.mark.parametrize("failure", [-EMANAGER, -ENOLS], ids=["lock-manager-down", "lockspace-not-started"])
def test_failed_vg_lock_reads_with_a_warning_and_refuses_changes(pair: Pair, fake_lvmlockd: FakeLvmlockd,
                                                                 failure: int) -> None:
    fake_lvmlockd.answer = lambda request, n: {**granted(request, n), "op_result": failure}
    theirs, ours = lvm_lockd(pair, "lvs", "vgx"), pair.lvc("lvs", "vgx")
    assert "Reading VG vgx without a lock." in messages(theirs.stderr)
    assert messages(ours.stderr) == messages(theirs.stderr)
    assert ours.stdout.split() == theirs.stdout.split()
    before = digests(pair.devices)
    fake_lvmlockd.take()
    # lvm2 refuses an ex lock that failed for a reason at once; without a lockspace, once it read the VG
    refusal = "Cannot access VG vgx due to failed lock." if failure == -ENOLS else "VG vgx lock failed: error -214"
    for command in (("lvcreate", "-an", "-Zn", "-l", "2", "-n", "new", "vgx"), ("lvextend", "-l", "+1", "vgx/l1"),
                    ("lvremove", "-y", "vgx/l1")):
        theirs = lvm_lockd(pair, *command)
        expected = fake_lvmlockd.take()
        ours = pair.lvc(*[arg for arg in command if arg not in ("-an", "-Zn")], check=False)
        assert theirs.returncode == ours.returncode == 5, ours.stderr
        assert messages(ours.stderr) == messages(theirs.stderr) == [refusal]
        assert fake_lvmlockd.take() == expected
        assert digests(pair.devices) == before


def _comparable(requests: list[bytes]) -> list[bytes]:
    """Requests with the new LV's random uuid and the VG's seqno (vg_update's version) normalised."""
    return [re.sub(rb"\nversion =[0-9]+\n", b"\nversion =SEQNO\n", re.sub(rb'lv_uuid ="[^"]*"', b'lv_uuid ="UUID"', raw))
            for raw in requests]


def test_lv_changes_take_lvm2s_lv_locks(pair: Pair, fake_lvmlockd: FakeLvmlockd) -> None:
    """lvcreate (a lease by init_lv, the new LV left unlocked), lvextend (a transient ex lock),
    lvremove (ex then un, the lease freed), each write followed by vg_update: lvm2's requests."""
    steps = [("lvcreate", "-l", "4", "-n", "n1", "vgx"), ("lvextend", "-l", "+1", "vgx/n1"), ("lvremove", "-y", "vgx/n1")]
    expected = []
    for step in steps:
        theirs = lvm_lockd(pair, *(step[:1] + (("-an", "-Zn") if step[0] == "lvcreate" else ()) + step[1:]))
        assert theirs.returncode == 0, theirs.stderr
        expected.append(_comparable(fake_lvmlockd.take()))
    assert [b'request="vg_update"' in raw for raw in expected[2]].count(True) == 1
    for step, requests in zip(steps, expected):
        ours = pair.lvc(*step)
        sent = fake_lvmlockd.take()
        assert _comparable(sent) == requests, (step, ours.stderr)
        seqno = pair.report("lvm2", "vgs", "vg_seqno", "--shared")[0]["vg_seqno"]
        assert f"\nversion ={seqno}\n".encode() in b"".join(sent)
        if step[0] == "lvcreate":
            fields = "lv_name,lv_lockargs,lv_size"
            assert pair.report("lvm2", "lvs", fields, "--shared") == pair.report("lvcrypt", "lvs", fields, "--shared")
            assert {row["lv_name"]: row["lv_lockargs"] for row in pair.report("lvm2", "lvs", fields, "--shared")}[
                "n1"].startswith("1.0.0:")
            fake_lvmlockd.take()  # the report's own requests


@pytest.mark.parametrize("option", ["--lock-start", "--lock-stop"])
def test_lock_start_and_stop_send_lvm2s_requests(pair: Pair, fake_lvmlockd: FakeLvmlockd, option: str) -> None:
    theirs = lvm_lockd(pair, "vgchange", option, "vgx")
    assert theirs.returncode == 0, theirs.stderr
    expected = fake_lvmlockd.take()
    if option == "--lock-start":
        assert [raw.split(b"\n")[0] for raw in expected] == [b'request="lock_gl"', b'request="start_vg"',
                                                             b'request="start_wait"']
    status, stdout, stderr = _in_process(pair, "vgchange", option, "vgx")
    assert status == 0, stderr
    assert fake_lvmlockd.take() == expected
    assert stdout.split("\n") == theirs.stdout.split("\n")


def _fresh_session() -> None:
    """In this process: lvm.conf read again (the fixture's), no connection yet, lvm2's command name."""
    from lvcrypt.store import lvmlockd

    lvmlockd.reset()
    lvmlockd.set_command("lvchange")


@pytest.mark.parametrize("kind", [SANLOCK, DLM], ids=["sanlock", "dlm"])
def test_activation_lv_locks_encode_as_lvm2s(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                             fake_lvmlockd: FakeLvmlockd, kind: tuple[str, str, str]) -> None:
    """lvchange -aey / -asy / -an: lvm2's lock_lv (persistent, ex / sh / un) for the same LV; for dlm
    the same requests with its lock type and args (dlm itself needs a cluster these hosts lack)."""
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.parse import parse_text
    from lvcrypt.store import lvmlockd

    pair = Pair(loop_devices(1, 320), tmp_path)
    make_shared(pair, kind)
    vg = tree_to_vg(parse_text(lvm2_written(pair)))
    lv = vg.lvs["l1"]
    _fresh_session()
    try:
        for option, mode in (("-aey", "ex"), ("-asy", "sh"), ("-an", "un")):
            theirs = lvm_lockd(pair, "lvchange", option, "vgx/l1")
            expected = [raw for raw in fake_lvmlockd.take() if raw.startswith(b'request="lock_lv"')]
            assert len(expected) == 1, theirs.stderr
            lvmlockd.lock_lv(lvmlockd.target(vg, lv.id, lv.name, lv.lock_args), mode)
            assert fake_lvmlockd.take() == expected
    finally:
        lvmlockd.reset()


def test_lv_held_by_another_host_is_refused_with_lvm2s_message(pair: Pair, fake_lvmlockd: FakeLvmlockd) -> None:
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.parse import parse_text
    from lvcrypt.errors import LockError
    from lvcrypt.store import lvmlockd

    fake_lvmlockd.answer = lambda request, n: {**granted(request, n), "op_result": -11 if request["request"] == "lock_lv"
                                               else 0}
    theirs = lvm_lockd(pair, "lvchange", "-aey", "vgx/l1")
    assert theirs.returncode == 5
    vg = tree_to_vg(parse_text(lvm2_written(pair)))
    _fresh_session()
    try:
        with pytest.raises(LockError) as refused:
            lvmlockd.lock_lv(lvmlockd.target(vg, vg.lvs["l1"].id, "l1", vg.lvs["l1"].lock_args), "ex")
        assert str(refused.value) in messages(theirs.stderr)
    finally:
        lvmlockd.reset()


def _lv_lock_requests(requests: list[bytes]) -> list[bytes]:
    return [raw for raw in requests if raw.startswith(b'request="lock_lv"')]


def _data_command(pair: Pair, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]],
                          input=data, capture_output=True, env=pair.env, cwd=ROOT)


def test_read_and_write_take_the_lv_lock_as_lvm2(pair: Pair, fake_lvmlockd: FakeLvmlockd, tmp_path: Path) -> None:
    """write takes the LV lock ex, read sh, for the command only: lvm2's transient lock_lv (as its
    lvextend of an inactive LV sends it) with the mode changed, released at the end; an LV active on
    this host keeps its activation's lock (nothing released); held by another host: lvm2's refusal,
    before anything is read or written."""
    lvm_lockd(pair, "lvextend", "-l", "+1", "vgx/l1")
    (transient,) = _lv_lock_requests(fake_lvmlockd.take())
    assert b'\nmode ="ex"\n' in transient and b'\nopts ="none"\n' in transient
    as_ours = transient.replace(b'cmd ="lvextend"', b'cmd ="CMD"')

    def expected(command: str, *modes: str) -> list[bytes]:
        return [as_ours.replace(b"CMD", command.encode()).replace(b'mode ="ex"', f'mode ="{mode}"'.encode())
                for mode in modes]

    data = os.urandom(8192)
    wrote = _data_command(pair, "write", "vgx/l1", data=data)
    assert wrote.returncode == 0, wrote.stderr
    assert _lv_lock_requests(fake_lvmlockd.take()) == expected("write", "ex", "un")
    read = _data_command(pair, "read", "--length", "8192", "vgx/l1")
    assert read.returncode == 0 and read.stdout == data, read.stderr
    assert _lv_lock_requests(fake_lvmlockd.take()) == expected("read", "sh", "un")

    vg_uuid, lv_uuid = pair.lvc("lvs", "--noheadings", "-o", "vg_uuid,lv_uuid", "vgx/l1").stdout.split()
    active = tmp_path / "sys" / "block" / "dm-0" / "dm"
    active.mkdir(parents=True)
    (active / "uuid").write_text("LVM-" + vg_uuid.replace("-", "") + lv_uuid.replace("-", "") + "\n")
    fake_lvmlockd.take()
    read = _data_command(pair, "read", "--length", "8192", "--sysfs-root", str(tmp_path / "sys"), "vgx/l1")
    assert read.returncode == 0 and read.stdout == data, read.stderr
    assert _lv_lock_requests(fake_lvmlockd.take()) == expected("read", "sh")

    fake_lvmlockd.answer = lambda request, n: {**granted(request, n), "op_result": -11 if request["request"] == "lock_lv"
                                               else 0}
    before = digests(pair.devices)
    for command in (("read", "vgx/l1"), ("write", "vgx/l1")):
        refused = _data_command(pair, *command, data=os.urandom(4096))
        assert refused.returncode == 5 and not refused.stdout
        assert messages(refused.stderr.decode()) == ["LV locked by other host: vgx/l1"]
        assert _lv_lock_requests(fake_lvmlockd.take()) == expected(command[0], "sh" if command[0] == "read" else "ex")
    assert digests(pair.devices) == before


def _creation_answers(init_result: int = 0) -> Callable[[dict[str, str], int], dict[str, str | int]]:
    """lvmlockd with no lockspace yet (the first sanlock VG: lock_gl answers -ENOLS, no global lock
    anywhere; dlm's global lockspace grants it), a sanlock lock manager running, init_vg answering `init_result` and its lock_args."""
    def answer(request: dict[str, str], n: int) -> dict[str, str | int]:
        reply = granted(request, n)
        if request["request"] == "lock_gl" and request["mode"] == "ex" and request["vg_lock_type"] == "sanlock":
            reply.update(op_result=-ENOLS, result_flags="NO_GL_LS,NO_LOCKSPACES")
        elif request["request"] == "running_lm":
            reply["op_result"] = 3  # lvm2's LOCK_TYPE_SANLOCK
        elif request["request"] == "init_vg":
            reply.update(op_result=init_result, vg_lock_args="1.0.0:lvmlock")
        return reply
    return answer


def _in_process(pair: Pair, *argv: str) -> tuple[int, str, str]:
    """An lvcrypt command in this process (exit status, stdout, stderr) whose sanlock lvmlock LV
    (de)activation is a no-op: device-mapper is not on this host (lvm2's --driverloaded n skips it
    too); the kernel tier activates it for real."""
    import contextlib
    import io

    from lvcrypt.cli import main
    from lvcrypt.store import lvmlockd

    out, err = io.StringIO(), io.StringIO()
    lvmlockd.reset()
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            patch.setattr(sys, "argv", ["lvcrypt", argv[0]])
            patch.setattr("lvcrypt.activation.activate_lock_lv", lambda vg, path: (lambda: None))
            patch.setattr("lvcrypt.activation.deactivate_lock_lv", lambda vg: None)
            for key, value in pair.env.items():
                if key.startswith("LVCRYPT_"):
                    patch.setenv(key, value)
            status = main([argv[0], "--devices", pair.device_list, *argv[1:]])
    finally:
        lvmlockd.reset()
    return status, out.getvalue(), err.getvalue()


def _create_in_process(pair: Pair, name: str, *options: str) -> tuple[int, str, str]:
    return _in_process(pair, "vgcreate", *options, name, *pair.devices)


def _rows(pair: Pair, tool: str, command: str, fields: str) -> list[dict[str, str]]:
    """A report of the shared VG with the PV's path (the two pairs' differ) as PV."""
    return [{key: value.replace(pair.devices[0], "PV") for key, value in row.items()}
            for row in pair.report(tool, command, fields, "--shared")]


def _comparable_creation(requests: list[bytes]) -> list[bytes]:
    return [re.sub(rb'vg_uuid ="[^"]*"', b'vg_uuid ="UUID"', raw) for raw in _comparable(requests)]


@pytest.mark.parametrize("options", [("--shared",), ("--shared", "--lock-type", "sanlock"), ("--lock-type", "dlm")],
                         ids=" ".join)
def test_vgcreate_shared_sends_lvm2s_requests_and_writes_lvm2s_vg(loop_devices: Callable[..., list[str]],
                                                                   tmp_path: Path, fake_lvmlockd: FakeLvmlockd,
                                                                   options: tuple[str, ...]) -> None:
    """vgcreate --shared: lock_gl ex with the lock type (the first sanlock VG enables its global lock),
    the lvmlock LV for sanlock, init_vg, the VG written with lvmlockd's lock_args, start_vg with
    start_init, the global lock given back, start_wait: lvm2's requests, output and VG."""
    fake_lvmlockd.answer = _creation_answers()
    theirs_pair, ours_pair = Pair(loop_devices(1, 320), tmp_path / "a"), Pair(loop_devices(1, 320), tmp_path / "b")
    theirs = lvm_lockd(theirs_pair, "vgcreate", *options, "vgt", *theirs_pair.devices)
    assert theirs.returncode == 0, theirs.stderr
    expected = _comparable_creation(fake_lvmlockd.take())
    status, stdout, stderr = _create_in_process(ours_pair, "vgt", *options)
    assert status == 0 and not messages(stderr), stderr
    assert _comparable_creation(fake_lvmlockd.take()) == expected
    assert stdout.replace(ours_pair.devices[0], "PV").split("\n") == \
        theirs.stdout.replace(theirs_pair.devices[0], "PV").split("\n")
    vg_fields, lv_fields = "vg_attr,vg_lock_type,vg_lock_args,vg_free_count,lv_count", "lv_name,lv_attr,seg_pe_ranges"
    for fields, command in ((vg_fields, "vgs"), (lv_fields, "lvs")):
        mine = _rows(ours_pair, "lvm2", command, fields)
        assert mine == _rows(theirs_pair, "lvm2", command, fields), command
        assert mine == _rows(ours_pair, "lvcrypt", command, fields), command
    checked = lvm_lockd(ours_pair, "vgck", "vgt")
    assert checked.returncode == 0 and not messages(checked.stderr), checked.stderr


def test_vgcreate_shared_refused_by_lvmlockd_leaves_no_vg(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                         fake_lvmlockd: FakeLvmlockd) -> None:
    """init_vg refused (sanlock not running): lvm2's message, exit 5, and the VG removed again as lvm2
    removes it (the devices stay PVs, in no VG); lvm2 sent the same requests."""
    fake_lvmlockd.answer = _creation_answers(-EMANAGER)
    theirs_pair, ours_pair = Pair(loop_devices(1, 320), tmp_path / "a"), Pair(loop_devices(1, 320), tmp_path / "b")
    theirs = lvm_lockd(theirs_pair, "vgcreate", "--shared", "vgt", *theirs_pair.devices)
    expected = _comparable_creation(fake_lvmlockd.take())
    status, _, stderr = _create_in_process(ours_pair, "vgt", "--shared")
    assert (status, theirs.returncode) == (5, 5)
    refusal = "VG vgt init failed: lock manager sanlock is not running"
    assert messages(stderr) == [refusal]
    assert [line for line in messages(theirs.stderr) if "init" in line] == [
        refusal, "Failed to initialize lock args for lock type sanlock"]
    assert _comparable_creation(fake_lvmlockd.take()) == expected
    for pair in (theirs_pair, ours_pair):
        assert pair.report("lvm2", "pvs", "pv_name,vg_name") == [{"pv_name": pair.devices[0], "vg_name": ""}]


@pytest.mark.parametrize("answer", ["granted", "no-lockspace"])
def test_local_vgcreate_asks_only_lvm2s_global_lock(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                   fake_lvmlockd: FakeLvmlockd, answer: str) -> None:
    """A local vgcreate on a host using lvmlockd: lock_gl ex with lock type "none" and no lock on the
    new VG, as lvm2; without a global lockspace (even when lvmlockd knows none at all) lvm2's refusal,
    exit 5, the devices left as they were."""
    if answer == "no-lockspace":
        fake_lvmlockd.answer = lambda request, n: {**granted(request, n), "op_result": -ENOLS,
                                                   "result_flags": "NO_GL_LS,NO_LOCKSPACES"}
    theirs_pair, ours_pair = Pair(loop_devices(1, 16), tmp_path / "a"), Pair(loop_devices(1, 16), tmp_path / "b")
    theirs = lvm_lockd(theirs_pair, "vgcreate", "vgl", *theirs_pair.devices)
    expected = fake_lvmlockd.take()
    assert [raw.split(b"\n")[0] for raw in expected] == [b'request="lock_gl"']
    before = digests(ours_pair.devices)
    status, stdout, stderr = _create_in_process(ours_pair, "vgl")
    assert fake_lvmlockd.take() == expected
    assert (status, messages(stderr)) == (theirs.returncode, messages(theirs.stderr)), stderr
    if answer == "granted":
        assert status == 0 and "Volume group \"vgl\" successfully created" in stdout
        ours_pair.assert_lvm2_clean("vgl")
    else:
        assert status == 5 and messages(stderr) == ["Global lock failed: check that global lockspace is started."]
        assert digests(ours_pair.devices) == before


def test_vgcreate_shared_beside_an_unstarted_sanlock_vg_as_lvm2(pair: Pair, loop_devices: Callable[..., list[str]],
                                                                 tmp_path: Path, fake_lvmlockd: FakeLvmlockd) -> None:
    """Another sanlock VG visible, its lockspace not started (lvmlockd: no lockspace at all): lvm2
    2.03.16 asks the global lock before scanning the devices, so its "start existing sanlock VGs"
    refusal does not fire and it enables a global lock in the new VG.  lvcrypt does the same:
    same requests, same output, exit 0."""
    fake_lvmlockd.answer = _creation_answers()
    theirs_pair, ours_pair = (Pair([*pair.devices, *loop_devices(1, 320)], tmp_path / name) for name in "ab")
    theirs = lvm_lockd(theirs_pair, "vgcreate", "--shared", "vgt", theirs_pair.devices[-1])
    assert theirs.returncode == 0, theirs.stderr
    expected = _comparable_creation(fake_lvmlockd.take())
    status, stdout, stderr = _in_process(ours_pair, "vgcreate", "--shared", "vgt", ours_pair.devices[-1])
    assert status == 0 and not messages(stderr), stderr
    assert _comparable_creation(fake_lvmlockd.take()) == expected
    assert stdout.splitlines()[0] == theirs.stdout.splitlines()[0] == "  Enabling sanlock global lock"


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_mount_holds_the_lv_lock_of_an_activation(pair: Pair, fake_lvmlockd: FakeLvmlockd, tmp_path: Path) -> None:
    """`lvcrypt mount` is an activation: lvm2's lock_lv of `lvchange -aey` (read-write) or `-asy`
    (--read-only), persistent, and that of `lvchange -an` sent before `umount` returns; held by another host:
    lvm2's refusal, exit 5, nothing mounted or written."""
    as_lvm2 = {}
    for option in ("-aey", "-asy", "-an"):
        lvm_lockd(pair, "lvchange", option, "vgx/l1")
        (request,) = _lv_lock_requests(fake_lvmlockd.take())
        as_lvm2[option] = request.replace(b'cmd ="lvchange"', b'cmd ="mount"')
    directory = tmp_path / "mnt"
    directory.mkdir()
    data = os.urandom(4096)
    try:
        for options, activation in (((), "-aey"), (("--read-only",), "-asy")):
            mounted = _data_command(pair, "mount", *options, "vgx/l1", str(directory))
            assert mounted.returncode == 0, mounted.stderr
            assert _lv_lock_requests(fake_lvmlockd.take()) == [as_lvm2[activation]]
            if not options:
                with open(directory / "l1", "r+b") as lv_file:
                    lv_file.write(data)
            else:
                assert (directory / "l1").read_bytes()[:4096] == data
            assert _data_command(pair, "umount", str(directory)).returncode == 0
            assert _lv_lock_requests(fake_lvmlockd.take()) == [as_lvm2["-an"]]  # umount waited for it

        fake_lvmlockd.answer = lambda request, n: {**granted(request, n),
                                                   "op_result": -11 if request["request"] == "lock_lv" else 0}
        before = digests(pair.devices)
        refused = _data_command(pair, "mount", "vgx/l1", str(directory))
        assert refused.returncode == 5 and not os.path.ismount(directory)
        assert messages(refused.stderr.decode()) == ["LV locked by other host: vgx/l1"]
        assert _lv_lock_requests(fake_lvmlockd.take()) == [as_lvm2["-aey"]]
        assert digests(pair.devices) == before
    finally:
        if os.path.ismount(directory):
            subprocess.run(["fusermount3", "-u", "-z", str(directory)], capture_output=True)
