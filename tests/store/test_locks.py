"""lvcrypt takes lvm2's own locks, safely (issue 12 items 5, 6, 7 and private state directories).

lvm2 and lvcrypt exclude each other through the same flock files, with
lvm2's write priority (`:aux` files) and inode re-check; a planted symbolic
link or a directory others can write is refused; a passphrase prompt holds no
lock; the model cache cannot run code and never follows a disk's idea of a
path.  Whether a process is waiting on a lock is read from /proc/locks, and
whether it sits in a read of stdin from /proc/PID/syscall: no sleeps, no
timing assertions.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import LVM_ENV, ROOT
from store_helpers import Pair

pytestmark = pytest.mark.oracle

LOCK_DIR = Path("/run/lock/lvm")
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def unique_vg() -> str:
    """VG names are machine-wide lock names: never share one with a test running in parallel."""
    return f"vglk{uuid.uuid4().hex[:10]}"


def proc_locks() -> list[tuple[bool, int, int]]:
    """(waiting, pid, inode) for every flock on the machine."""
    entries = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        waiting = fields[1] == "->"
        if waiting:
            fields = fields[:1] + fields[2:]
        if fields[1] != "FLOCK":
            continue
        entries.append((waiting, int(fields[4]), int(fields[5].split(":")[2])))
    return entries


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str] | None = None) -> None:
    """Poll until `condition` holds; fail at once if `process` ended instead (it did not wait)."""
    # A deadline, not a count of yields: on a loaded machine a new process can take seconds to start.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process ended instead of waiting: {process.communicate()}")
        time.sleep(0.001)
    raise AssertionError("condition never held")


def waits_for_lock(pid: int, inode: int | None = None) -> bool:
    return any(waiting and owner == pid and inode in (None, node) for waiting, owner, node in proc_locks())


def reads_stdin(pid: int) -> bool:
    """The process is blocked in read(0, ...) (syscall 0 on x86-64, fd argument 0)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == 0


class Held:
    """A flock taken by this test process on a lock file, as another command would hold it."""

    def __init__(self, path: Path, exclusive: bool = True):
        self.path = path
        while True:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self.inode = os.fstat(self.fd).st_ino
            # As lvm2 does: a command releasing the lock may have unlinked the file between our open and
            # flock, and a lock on an unlinked inode holds nobody back.  Seen in parallel CI runs.
            try:
                if os.stat(path).st_ino == self.inode:
                    return
            except FileNotFoundError:
                pass
            os.close(self.fd)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def held_locks() -> Iterator[list[Held]]:
    held: list[Held] = []
    yield held
    for lock in held:
        lock.release()


@pytest.fixture
def vg(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Iterator[tuple[Pair, str]]:
    if os.geteuid() != 0:
        pytest.skip("lvm2's lock directory needs root")
    pair = Pair(loop_devices(1, 64), tmp_path)
    name = unique_vg()
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "-s", "1m", name, *pair.devices)
    yield pair, name
    for leftover in LOCK_DIR.glob(f"V_{name}*"):
        leftover.unlink()


_spawned: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    """A failed test must not leave a command waiting on a lock for the rest of the suite."""
    yield
    while _spawned:
        process = _spawned.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def spawn(argv: list[str], env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                               **popen)  # type: ignore[call-overload]
    _spawned.append(process)
    return process


def lvcrypt(pair: Pair, *args: str, **popen: object) -> subprocess.Popen[str]:
    return spawn([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]], pair.env,
                 **popen)


def lvm2_lvcreate(pair: Pair, name: str, lv: str) -> subprocess.Popen[str]:
    return spawn(["lvcreate", "--devices", pair.device_list, "--driverloaded", "n", "-an", "-Zn", "-l", "1", "-n", lv,
                  name], LVM_ENV)


def lv_names(pair: Pair, name: str) -> set[str]:
    return set(pair.lvm("lvs", "--noheadings", "-o", "lv_name", name).stdout.split())


def on_disk(pair: Pair, name: str) -> tuple[int, set[str]]:
    """Seqno and LV names as the disks hold them, read without any lock: lvm2's `lvs` would queue
    behind a waiting writer (write priority), so it cannot look while one waits."""
    from lvcrypt.store.commit import load_vg, scan

    loaded = load_vg(scan(pair.devices), name)
    return loaded.vg.seqno, set(loaded.vg.lvs)


def assert_refused(result: subprocess.CompletedProcess[str] | tuple[int, str], fragment: str) -> None:
    status, stderr = (result.returncode, result.stderr) if isinstance(result, subprocess.CompletedProcess) else result
    assert status == 5 and stderr.count("\n") == 1 and stderr.startswith("lvcrypt: "), stderr
    assert fragment in stderr, stderr


# Item 5: the same locks as lvm2.

def test_lvcrypt_waits_while_the_vg_lock_file_is_held(vg: tuple[Pair, str], held_locks: list[Held]) -> None:
    pair, name = vg
    holder = Held(LOCK_DIR / f"V_{name}")
    held_locks.append(holder)
    create = lvcrypt(pair, "lvcreate", "-l", "1", "-n", "late", name)
    before = on_disk(pair, name)
    wait_until(lambda: waits_for_lock(create.pid, holder.inode), create)
    assert on_disk(pair, name) == before  # nothing written while it waits
    holder.release()
    assert create.wait() == 0, create.communicate()
    assert lv_names(pair, name) == {"late"}
    pair.assert_lvm2_clean(name)


def test_lvm2_waits_while_lvcrypt_holds_the_vg(vg: tuple[Pair, str]) -> None:
    """lvcrypt's own VgLock, taken here: a real lvm2 lvcreate blocks on it until it is released."""
    from lvcrypt.store.lock import VgLock

    pair, name = vg
    with VgLock(name, exclusive=True) as lock:
        inode = os.fstat(lock.fd).st_ino
        create = lvm2_lvcreate(pair, name, "bylvm")
        wait_until(lambda: waits_for_lock(create.pid, inode), create)
    assert create.wait() == 0, create.communicate()
    assert lv_names(pair, name) == {"bylvm"}


def test_a_reader_queues_behind_a_waiting_lvm2_writer(vg: tuple[Pair, str], held_locks: list[Held]) -> None:
    """lvm2's write priority: a waiting lvm2 lvcreate holds V_vg:aux, so `lvcrypt lvs` (a reader)
    runs after it, and sees its LV, although the lock is only held shared."""
    pair, name = vg
    reader = Held(LOCK_DIR / f"V_{name}", exclusive=False)
    held_locks.append(reader)
    writer = lvm2_lvcreate(pair, name, "first")
    wait_until(lambda: waits_for_lock(writer.pid, reader.inode), writer)
    report = lvcrypt(pair, "lvs", "--noheadings", "-o", "lv_name", name)
    wait_until(lambda: waits_for_lock(report.pid), report)
    reader.release()
    assert writer.wait() == 0, writer.communicate()
    out, err = report.communicate()
    assert report.returncode == 0, err
    assert out.split() == ["first"]


def test_a_lock_file_replaced_while_waiting_is_locked_again(vg: tuple[Pair, str], held_locks: list[Held]) -> None:
    """lvm2 unlinks a lock file it releases; a waiter that wins the old inode must lock the new file."""
    pair, name = vg
    path = LOCK_DIR / f"V_{name}"
    first = Held(path)
    held_locks.append(first)
    create = lvcrypt(pair, "lvcreate", "-l", "1", "-n", "late", name)
    wait_until(lambda: waits_for_lock(create.pid, first.inode), create)
    path.unlink()
    second = Held(path)
    held_locks.append(second)
    first.release()
    wait_until(lambda: waits_for_lock(create.pid, second.inode), create)
    assert on_disk(pair, name)[1] == set()
    second.release()
    assert create.wait() == 0, create.communicate()
    assert lv_names(pair, name) == {"late"}


def test_pvcreate_takes_lvm2s_global_lock(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                          held_locks: list[Held], lvm2: None) -> None:
    pair = Pair(loop_devices(1, 16), tmp_path)
    holder = Held(LOCK_DIR / "P_global", exclusive=False)  # e.g. an lvm2 `vgs` in progress
    held_locks.append(holder)
    create = lvcrypt(pair, "pvcreate", *pair.devices)

    def waits_for_global() -> bool:
        # Behind another test's waiting writer, pvcreate queues on P_global's `:aux` file first.
        try:
            aux = os.stat(LOCK_DIR / "P_global:aux").st_ino
        except OSError:
            aux = holder.inode
        return waits_for_lock(create.pid, holder.inode) or waits_for_lock(create.pid, aux)

    wait_until(waits_for_global, create)
    holder.release()
    assert create.wait() == 0, create.communicate()


def lvm_config_dir(tmp_path: Path, body: str, label: str = "lvmconf") -> dict[str, str]:
    """An LVM_SYSTEM_DIR whose lvm.conf sets `body` in its global section (lvm2 and lvcrypt both read it)."""
    directory = tmp_path / label
    directory.mkdir()
    (directory / "lvm.conf").write_text(f"global {{\n{body}\n}}\n")
    return {"LVM_SYSTEM_DIR": str(directory)}


def test_the_locking_dir_and_wait_for_locks_come_from_lvm_conf(vg: tuple[Pair, str], tmp_path: Path,
                                                               held_locks: list[Held]) -> None:
    pair, name = vg
    locks = tmp_path / "locks"
    env = {**pair.env, **lvm_config_dir(tmp_path, f'    locking_dir = "{locks}"  # ours\n    wait_for_locks = 0')}
    locks.mkdir(mode=0o700)
    held_locks.append(Held(locks / f"V_{name}"))
    refused = subprocess.run([sys.executable, "-m", "lvcrypt", "lvcreate", "--devices", pair.device_list, "-l", "1",
                              "-n", "x", name], capture_output=True, text=True, env=env, cwd=ROOT)
    assert_refused(refused, "locked by another command")
    held_locks[0].release()
    # The default directory is not consulted: a lock held there does not matter with this lvm.conf.
    held_locks.append(Held(LOCK_DIR / f"V_{name}"))
    done = subprocess.run([sys.executable, "-m", "lvcrypt", "lvcreate", "--devices", pair.device_list, "-l", "1",
                           "-n", "x", name], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr


# Item 6: lock files and directories that cannot be turned against root.

@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_planted_as_lock_file_is_refused(vg: tuple[Pair, str], tmp_path: Path, dangling: bool) -> None:
    pair, name = vg
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"precious\n")
    (LOCK_DIR / f"V_{name}").symlink_to(victim)
    for command in (["lvcreate", "-l", "1", "-n", "x", name], ["lvs", name]):
        assert_refused(pair.lvc(*command, check=False), "symbolic link")
    assert victim.exists() != dangling
    if not dangling:
        assert victim.read_bytes() == b"precious\n"
    assert lv_names(pair, name) == set()


def test_a_lock_directory_others_can_write_is_refused(vg: tuple[Pair, str], tmp_path: Path) -> None:
    pair, name = vg
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path)
    for directory, why in ((shared, "writable by other users"), (linked, "not a directory")):
        env = {**pair.env, **lvm_config_dir(tmp_path, f'locking_dir = "{directory}"', f"conf-{directory.name}")}
        result = subprocess.run([sys.executable, "-m", "lvcrypt", "lvcreate", "--devices", pair.device_list, "-l",
                                 "1", "-n", "x", name], capture_output=True, text=True, env=env, cwd=ROOT)
        assert_refused(result, why)
    assert list(shared.iterdir()) == []
    assert lv_names(pair, name) == set()


def crypt_vg(pair: Pair, name: str) -> Path:
    """An encrypted LV `data` holding known plaintext; returns the passphrase file."""
    secret = pair.tmp / "pass"
    secret.write_bytes(b"correct horse")
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(secret), "-l", "2", "-n", "data", name)
    writer = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, "--key-file",
                             str(secret), f"{name}/data"], input=b"plaintext" * 100, capture_output=True,
                            env=pair.env, cwd=ROOT)
    assert writer.returncode == 0, writer.stderr
    return secret


def test_no_lock_is_held_while_a_passphrase_is_awaited(vg: tuple[Pair, str]) -> None:
    """`read --key-file -` with stdin open and empty: lvcrypt lvs, lvm2 lvs and even an lvcreate
    (an exclusive lock) proceed; the read then stops because the VG changed under it.
    (lvm2 itself changes no VG that holds crypt LVs.)"""
    pair, name = vg
    crypt_vg(pair, name)
    reader = lvcrypt(pair, "read", "--key-file", "-", "--length", "900", f"{name}/data", stdin=subprocess.PIPE)
    wait_until(lambda: reads_stdin(reader.pid), reader)
    assert not [entry for entry in proc_locks() if entry[1] == reader.pid]
    report = pair.lvc("lvs", "--noheadings", "-o", "lv_name", name)
    assert "data" in report.stdout.split()
    assert "data" in lv_names(pair, name)
    out, err = reader.communicate("correct horse")
    assert reader.returncode == 0, err
    assert out == "plaintext" * 100

    reader = lvcrypt(pair, "read", "--key-file", "-", "--length", "900", f"{name}/data", stdin=subprocess.PIPE)
    wait_until(lambda: reads_stdin(reader.pid), reader)
    pair.lvc("lvcreate", "-l", "1", "-n", "meanwhile", name)
    out, err = reader.communicate("correct horse")
    assert_refused((reader.returncode, err), "changed while the passphrase was read")
    assert out == ""


def test_a_creation_waiting_for_its_passphrase_does_not_hold_the_vg(vg: tuple[Pair, str]) -> None:
    """lvcreate --encrypt has allocated extents in memory when it asks: another lvcreate may commit
    meanwhile, and the first then refuses instead of writing over the extents just taken."""
    pair, name = vg
    first = lvcrypt(pair, "lvcreate", "--encrypt", *FAST, "--key-file", "-", "-l", "2", "-n", "slow", name,
                    stdin=subprocess.PIPE)
    wait_until(lambda: reads_stdin(first.pid), first)
    pair.lvc("lvcreate", "-l", "4", "-n", "quick", name)
    _, err = first.communicate("a passphrase")
    assert_refused((first.returncode, err), "changed while the passphrase was read")
    assert lv_names(pair, name) == {"quick"}
    pair.assert_lvm2_clean(name)

    again = lvcrypt(pair, "lvcreate", "--encrypt", *FAST, "--key-file", "-", "-l", "2", "-n", "slow", name,
                    stdin=subprocess.PIPE)
    wait_until(lambda: reads_stdin(again.pid), again)
    assert "quick" in pair.lvc("lvs", "--noheadings", "-o", "lv_name", name).stdout
    _, err = again.communicate("a passphrase")
    assert again.returncode == 0, err
    assert lv_names(pair, name) == {"slow", "quick"}
    pair.lvm("vgck", name)  # reads it without error (warning only about the crypt types it does not know)


@pytest.fixture
def stranger() -> Iterator[tuple[int, Path]]:
    """An unused uid and a directory it owns (pytest's tmp_path is not reachable for other users)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    uid = 40000 + int.from_bytes(os.urandom(2), "big") % 20000
    home = Path(tempfile.mkdtemp(prefix="lvcrypt-stranger-"))
    os.chown(home, uid, uid)
    yield uid, home
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(f"/tmp/lvcrypt-{uid}", ignore_errors=True)


def as_user(uid: int, home: Path, *args: str, extra_env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-m",
                           "lvcrypt", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_an_unprivileged_user_locks_in_a_private_run_directory(stranger: tuple[int, Path]) -> None:
    uid, home = stranger
    image = home / "pv.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    os.chown(image, uid, uid)
    devices = ["--devices", str(image)]
    for command in (["pvcreate", *devices, str(image)], ["vgcreate", *devices, "vgmine", str(image)],
                    ["lvcreate", *devices, "-l", "1", "-n", "lv", "vgmine"], ["lvs", *devices, "vgmine"]):
        result = as_user(uid, home, *command)
        assert result.returncode == 0, (command, result.stderr)
    run = Path(f"/tmp/lvcrypt-{uid}")
    info = os.lstat(run)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == uid and stat.S_IMODE(info.st_mode) == 0o700
    state = home / ".local" / "state" / "lvcrypt"
    for directory in (state, state / "archive", state / "backup"):
        assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700, directory
    assert not LOCK_DIR.joinpath("V_vgmine").exists()

    runtime = home / "runtime"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, uid, uid)
    result = as_user(uid, home, "lvs", *devices, "vgmine", extra_env={"XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.lstat(runtime / "lvcrypt").st_mode) == 0o700

    # Someone else's directory (or a link to one) where ours should be is refused, not shared.
    shutil.rmtree(run)
    run.mkdir(mode=0o777)
    run.chmod(0o777)
    try:
        result = as_user(uid, home, "lvcreate", *devices, "-l", "1", "-n", "lv2", "vgmine")
        assert_refused(result, "belongs to uid 0")
    finally:
        run.rmdir()


# Item 7: nothing from a disk picks a path; the cache cannot run code.

def cache_entry(pair: Pair, name: str) -> Path:
    from lvcrypt.store import cache
    from lvcrypt.store.commit import scan

    vg_id = scan(pair.devices).copies(name)[0][1].vg_id
    return pair.tmp / "run" / "cache" / cache._name(vg_id)


def test_the_model_cache_runs_no_code_and_is_trusted_only_from_a_private_directory(vg: tuple[Pair, str]) -> None:
    from lvcrypt.store import cache

    pair, name = vg
    pair.lvc("lvcreate", "-l", "1", "-n", "real", name)
    pair.lvc("lvs", name)  # stores the VG's head and lvs' view
    pair.lvc("lvs", "-o", "lv_uuid", name)  # a field of the whole model: parsed, and the entry stored whole
    entry = cache_entry(pair, name)
    assert stat.S_IMODE(os.lstat(entry.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(entry).st_mode) == 0o600
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name, f"{entry.name}.lvs"]  # lvs' view beside
    assert stat.S_IMODE(os.lstat(f"{entry}.lvs").st_mode) == 0o600
    stamp, digest, (head, payload) = marshal.loads(cache.entry_body(entry.read_bytes()))  # the head, then the model

    # A pickle that would run code if unpickled, as the whole entry, as the payload of a valid header or as
    # either part of it (the whole model is unpickled only for a field that needs it: lv_uuid): never
    # executed, the VG is read from the disk.
    marker = pair.tmp / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    exploit = pickle.dumps(Exploit())
    # Planted with a correct sum (anyone can compute one): the unpickler's own refusal is what is tested.
    for planted in (exploit, marshal.dumps((stamp, digest, exploit)),
                    marshal.dumps((stamp, digest, (exploit, payload))), marshal.dumps((stamp, digest, (head, exploit)))):
        entry.write_bytes(cache.sealed_entry(planted))
        assert pair.lvc("lvs", "--noheadings", "-o", "lv_name,lv_uuid", name).stdout.split()[0] == "real"
        assert not marker.exists()

    # A forged entry for the current text is used only from a directory nobody else can write.
    real_id = pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", name).stdout.split()
    forged = pickle.loads(payload)  # this test's own entry: trusted here
    forged.lvs["real"].id = "forged-id"
    entry.write_bytes(cache.sealed_entry(marshal.dumps((stamp, digest, (head, pickle.dumps(forged))))))
    entry.parent.chmod(0o777)
    assert pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", name).stdout.split() == real_id
    entry.parent.chmod(0o700)
    assert pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", name).stdout.split() == ["forged-id"]  # the check matters


def test_names_from_a_disk_never_become_paths_unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lvcrypt.errors import LvcryptError
    from lvcrypt.store import archive
    from lvcrypt.store.lock import VgLock

    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    for bad in ("../../etc/cron.d/x", "a/b", "..", "-x", ""):
        with pytest.raises(LvcryptError):
            archive.write_backup(bad, "text")
        with pytest.raises(LvcryptError):
            archive.archive_version(bad, "text")
        with pytest.raises(LvcryptError):
            VgLock(bad, exclusive=False).__enter__()
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()


def test_state_directories_are_private(vg: tuple[Pair, str]) -> None:
    pair, name = vg
    pair.lvc("lvcreate", "-l", "1", "-n", "one", name)
    state = pair.tmp / "state"
    for directory in (state, state / "archive", state / "backup"):
        assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700, directory
    before = on_disk(pair, name)
    state.chmod(0o777)
    try:
        assert_refused(pair.lvc("lvcreate", "-l", "1", "-n", "two", name, check=False), "writable by other users")
    finally:
        state.chmod(0o700)
    assert on_disk(pair, name) == before


def test_lvm_conf_is_read_as_lvm2_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lvm2: None) -> None:
    """lvmconfig is the oracle for the settings lvcrypt shares with lvm2."""
    from lvcrypt.store import lvm_config

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "lvm.conf").write_text(
        '# global { locking_dir = "/commented/out" }\n'
        'devices {\n    filter = [ "a|/dev/loop.*|", "r|.*#x|" ]  # a list\n    scan = [ "/dev" ]\n}\n'
        'global {\n\tlocking_dir="/run/odd dir/#lvm" # trailing comment\n'
        '    wait_for_locks = 0\n    prioritise_write_locks=1\n}\n')
    (conf / "lvmlocal.conf").write_text("local {\n    host_id = 7\n}\n")
    monkeypatch.setenv("LVM_SYSTEM_DIR", str(conf))
    lvm_config.reread()
    try:
        for path in ("global/locking_dir", "global/wait_for_locks", "global/prioritise_write_locks",
                     "devices/filter", "local/host_id"):
            oracle = subprocess.run(["lvmconfig", path], capture_output=True, text=True,
                                    env={**LVM_ENV, "LVM_SYSTEM_DIR": str(conf)})
            assert oracle.returncode == 0, oracle.stderr
            ours = lvm_config.setting(path, "")
            expected = oracle.stdout.strip().partition("=")[2]
            if isinstance(ours, list):
                assert expected == "[" + ",".join(f'"{item}"' for item in ours) + "]", (path, expected, ours)
            else:
                assert expected in (str(ours), f'"{ours}"'), (path, expected, ours)
    finally:
        lvm_config.reread()
