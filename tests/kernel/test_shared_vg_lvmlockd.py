"""lvcrypt in a sanlock VG under a real lvmlockd, beside lvm2, in one guest (issue 18).

The recipe of ../shared/notes/kernel-guest.md: softdog, wdmd, `sanlock daemon -w 0` (no watchdog
use, as sanlock allows for tests), lvmlockd (sanlock's default io_timeout, 10 s), each waited for
until it answers, an lvm.conf with use_lvmlockd = 1 and host_id 1 in lvmlocal.conf under LVM_SYSTEM_DIR.
First test: lvm2 creates the shared VG, stops its lockspace, lvcrypt starts it again (activating
lvmlock itself); lvcrypt creates an LV in it (sanlock hands out its lease), writes it (`write`
takes the LV lock ex for the command only), activates it exclusively (lvmlockd then holds the LV's
lock ex), reads it back (`read` shares that lock, which stays), deactivates it (released), mounts
it with FUSE (the lock ex again, released by umount) and removes it (lease freed); lvm2 reads
every step.  Second direction: the other way round, lvcrypt creates
the shared VG and lvm2 uses it.  Each run takes one direction (sampled).
Commands run as processes: each is one lvmlockd client, as an lvm2 command is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sampling
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("lvm2")

VG = "vgsh"
# sanlock's io_timeout (lvmlockd --sanlock-timeout): lvmlockd's default. 5 s joined lockspaces sooner,
# but a loaded CI host stalled the TCG guest past it, and vgcreate --shared failed with
# SANLK_AIO_TIMEOUT (-202) for lvm2 and EIO for lvcrypt in the same run.
SANLOCK_IO_TIMEOUT = 10


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (bash install.sh test installs lvm2-lockd and sanlock)")
    return path


@pytest.fixture
def lockd_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The daemons running, and the environment every command of the test uses; stopped afterwards."""
    for program in ("lvmlockd", "sanlock", "wdmd"):
        _need(program)
    config = tmp_path / "lvm"
    shutil.copytree("/etc/lvm", config, ignore=shutil.ignore_patterns("archive", "backup", "cache", "devices"))
    with open(config / "lvm.conf", "a") as conf:
        conf.write("\nglobal {\n\tuse_lvmlockd = 1\n}\n")
    (config / "lvmlocal.conf").write_text("local {\n\thost_id = 1\n}\n")
    env = {**os.environ, "LVM_SYSTEM_DIR": str(config), "DM_DISABLE_UDEV": "1", "LC_ALL": "C",
           "LVM_SUPPRESS_FD_WARNINGS": "1", "LVCRYPT_STATE_DIR": str(tmp_path / "state"),
           "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    for module in ("softdog", "loop", "dm_mod", "fuse"):
        subprocess.run(["modprobe", module], capture_output=True)
    for directory in ("/run/lvm", "/run/lock/lvm", "/run/sanlock", "/run/wdmd"):
        os.makedirs(directory, exist_ok=True)
    logs = open(tmp_path / "daemons.log", "wb")
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        daemons.append(subprocess.Popen(["wdmd", "-D"], env=env, stdout=logs, stderr=logs))
        daemons.append(subprocess.Popen(["sanlock", "daemon", "-D", "-w", "0"], env=env, stdout=logs, stderr=logs))
        _wait_until(lambda: run(env, "sanlock", "client", "status", check=False).returncode == 0, "sanlock")
        daemons.append(subprocess.Popen(["lvmlockd", "-f", "--sanlock-timeout", str(SANLOCK_IO_TIMEOUT)],
                                        env=env, stdout=logs, stderr=logs))
        _wait_until(lambda: run(env, "lvmlockctl", "--info", check=False).returncode == 0, "lvmlockd")
        yield env
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        logs.close()
        _remove_lvmlock_devices(env)


def _wait_until(ready: Callable[[], bool], daemon: str) -> None:
    """A daemon answers before the first command needs it: a fixed pause was too short for sanlock
    under a loaded CI host, and lvm2's first vgcreate --shared then failed."""
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{daemon} did not answer within 60 s")
        time.sleep(0.5)


def run(env: dict[str, str], *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")
    return result


def lvcrypt(env: dict[str, str], device: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(env, sys.executable, "-m", "lvcrypt", args[0], "--devices", device, *args[1:], check=check)


def lvm(env: dict[str, str], device: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(env, args[0], "--devices", device, *args[1:], check=check)


def _lvmlock_down(env: dict[str, str], vg: str, stopped: subprocess.CompletedProcess[str]) -> None:
    """After lvm2's --lock-stop, `vg`'s lvmlock device is gone, so that the next lock-start must
    activate it.  lvm2 deactivates it right after asking lvmlockd to stop the lockspace, and sanlock
    may still hold it open then (the CI guest under load): lvm2 leaves it, says so and exits 0.  That
    is lvm2's own race, not what the test checks; the device is then removed here, once sanlock let go."""
    node = Path(f"/dev/mapper/{vg}-lvmlock")
    for _ in range(30):
        if not node.exists():
            return
        if run(env, "dmsetup", "remove", f"{vg}-lvmlock", check=False).returncode == 0:
            node.unlink(missing_ok=True)
            return
        time.sleep(0.5)
    raise AssertionError(f"{vg}-lvmlock still active 15 s after lvm2's --lock-stop: {stopped.stderr}")


def _remove_lvmlock_devices(env: dict[str, str]) -> None:
    """A failed test can leave a VG's lvmlock active; the next test's sanlock must not meet it."""
    listed = run(env, "dmsetup", "ls", check=False).stdout.split()
    for name in listed:
        if name.endswith("-lvmlock"):
            run(env, "dmsetup", "remove", "--retry", name, check=False)
            Path(f"/dev/mapper/{name}").unlink(missing_ok=True)


def lock_info(env: dict[str, str]) -> str:
    return run(env, "lvmlockctl", "--info").stdout


def lv_locks(env: dict[str, str]) -> list[str]:
    """lvmlockctl's lines for LV locks held (ex or sh); a released one stays listed as `LK LV un`."""
    return [line for line in lock_info(env).splitlines() if line.split()[:3] in (["LK", "LV", "ex"], ["LK", "LV", "sh"])]


# One direction per run (tests/sampling.py): each costs two sanlock lockspace joins, 2-2.5 minutes of
# the guest; the two-guest test runs lvm2's shared VG with lvcrypt in every run.
DIRECTIONS = sampling.pick(["lvm2-made", "lvcrypt-made"], 1, "shared VG direction")  # who runs vgcreate --shared


@pytest.mark.sampled
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_lvcrypt_and_lvm2_share_a_sanlock_vg(direction: str, lockd_env: dict[str, str],
                                            loop_devices: Callable[..., list[str]]) -> None:
    device = loop_devices(1, 320)[0]
    if direction.startswith("lvm2"):
        _lvcrypt_lv_in_a_sanlock_vg(lockd_env, device)
    else:
        _lvcrypt_creates_a_sanlock_vg_lvm2_uses(lockd_env, device)


def _lvcrypt_lv_in_a_sanlock_vg(env: dict[str, str], device: str) -> None:
    started = time.monotonic()
    lvm(env, device, "vgcreate", "--shared", VG, device)
    try:
        created_seconds = time.monotonic() - started
        theirs_node = os.stat(f"/dev/mapper/{VG}-lvmlock")
        stopped = lvm(env, device, "vgchange", "--lock-stop", VG)
        _lvmlock_down(env, VG, stopped)
        restarted = time.monotonic()
        lvcrypt(env, device, "vgchange", "--lock-start", VG)  # lvmlock activated again, the lockspace joined
        lease_seconds = time.monotonic() - restarted
        ours_node = os.stat(f"/dev/mapper/{VG}-lvmlock")  # sanlock (user sanlock, group disk) opens it
        assert (ours_node.st_mode, ours_node.st_gid) == (theirs_node.st_mode, theirs_node.st_gid)
        fields = ["lvs", "--noheadings", "-o", "lv_name,lv_lockargs", VG]
        lvcrypt(env, device, "lvcreate", "-L", "8m", "-n", "lc", VG)
        theirs = lvm(env, device, *fields).stdout.split()
        assert theirs == lvcrypt(env, device, *fields).stdout.split()
        assert theirs[0] == "lc" and theirs[1].startswith("1.0.0:"), theirs
        lv_uuid = lvm(env, device, "lvs", "--noheadings", "-o", "lv_uuid", f"{VG}/lc").stdout.strip()
        data = os.urandom(4096)
        wrote = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", device, f"{VG}/lc"],
                               input=data, capture_output=True, env=env, cwd=ROOT)
        assert wrote.returncode == 0, wrote.stderr
        assert not lv_locks(env), lock_info(env)  # write's ex lock was for the command only
        lvcrypt(env, device, "lvchange", "-aey", f"{VG}/lc")
        read = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--length", "4096", "--devices", device,
                               f"{VG}/lc"], capture_output=True, env=env, cwd=ROOT)
        assert read.returncode == 0 and read.stdout == data, read.stderr
        assert Path(f"/dev/mapper/{VG}-lc").exists() or "vgsh-lc" in run(env, "dmsetup", "ls").stdout
        held = lv_locks(env)  # the activation's ex lock, which read shared and left in place
        assert any(" ex " in f" {line} " and lv_uuid.replace("-", "") in line.replace("-", "") for line in held), \
            lock_info(env)
        lvcrypt(env, device, "lvchange", "-an", f"{VG}/lc")
        assert not lv_locks(env), lock_info(env)
        mounted = Path(env["LVCRYPT_RUN_DIR"]).parent / "mnt"
        mounted.mkdir()
        lvcrypt(env, device, "mount", f"{VG}/lc", str(mounted))  # an activation: the LV lock ex, persistent
        try:
            assert (mounted / "lc").read_bytes()[:4096] == data
            assert [line.split()[2] for line in lv_locks(env)] == ["ex"], lock_info(env)
        finally:
            lvcrypt(env, device, "umount", str(mounted))
        assert not lv_locks(env), lock_info(env)  # the mount's process unlocked before umount returned
        lvcrypt(env, device, "lvremove", "-y", f"{VG}/lc")
        assert lvm(env, device, "lvs", "--noheadings", "-o", "lv_name", VG).stdout.split() == []
        lvm(env, device, "vgck", VG)
        print(f"lvm2's vgcreate --shared (its lockspace started) {created_seconds:.0f} s, lvcrypt's lock-start "
              f"{lease_seconds:.0f} s; whole test {time.monotonic() - started:.0f} s")
    finally:
        lvm(env, device, "vgremove", "-y", VG, check=False)
        lvm(env, device, "vgchange", "--lock-stop", VG, check=False)


def _lvcrypt_creates_a_sanlock_vg_lvm2_uses(env: dict[str, str], device: str) -> None:
    """lvcrypt's vgcreate --shared: lvmlock activated, leases written by lvmlockd's sanlock, the
    lockspace started; lvm2 then makes, locks and releases LVs in it, and after lvcrypt stopped the
    lockspace (lvmlock taken down), lvm2 starts it again from what lvcrypt wrote and locks an LV."""
    vg = "vgc"
    started = time.monotonic()
    created = lvcrypt(env, device, "vgcreate", "--shared", vg, device)
    created_seconds = time.monotonic() - started
    try:
        assert f'Volume group "{vg}" successfully created' in created.stdout
        fields = ["vgs", "--noheadings", "-o", "vg_attr,vg_lock_type,vg_lock_args", vg]
        assert lvm(env, device, *fields).stdout.split() == ["wz--ns", "sanlock", "1.0.0:lvmlock"]
        assert lvm(env, device, "lvs", "-a", "--noheadings", "-o", "lv_name", vg).stdout.split() == ["[lvmlock]"]
        lvm(env, device, "lvcreate", "-an", "-L", "8m", "-n", "l2", vg)
        lvcrypt(env, device, "lvcreate", "-L", "8m", "-n", "l3", vg)
        lv_fields = ["lvs", "--noheadings", "-o", "lv_name,lv_lockargs", vg]
        theirs = lvm(env, device, *lv_fields).stdout.split()
        assert theirs == lvcrypt(env, device, *lv_fields).stdout.split()
        assert len(set(theirs[1::2])) == 2 and all(args.startswith("1.0.0:") for args in theirs[1::2]), theirs
        lvcrypt(env, device, "lvchange", "-aey", f"{vg}/l3")
        assert len(lv_locks(env)) == 1, lock_info(env)
        lvm(env, device, "lvchange", "-an", f"{vg}/l3")  # lvm2 releases what lvcrypt locked
        assert not lv_locks(env), lock_info(env)
        lvm(env, device, "vgck", vg)
        lvcrypt(env, device, "vgchange", "--lock-stop", vg)
        assert not Path(f"/dev/mapper/{vg}-lvmlock").exists()
        restarted = time.monotonic()
        # lvm2's first start may race the lvmlock node it makes (no udev: notes/kernel-guest.md)
        if lvm(env, device, "vgchange", "--lock-start", vg, check=False).returncode:
            lvm(env, device, "vgchange", "--lock-start", vg)
        lease_seconds = time.monotonic() - restarted
        lvm(env, device, "lvchange", "-aey", f"{vg}/l2")
        assert len(lv_locks(env)) == 1, lock_info(env)
        lvm(env, device, "lvchange", "-an", f"{vg}/l2")
        print(f"lvcrypt's vgcreate --shared {created_seconds:.0f} s, lvm2's lock-start {lease_seconds:.0f} s; "
              f"whole test {time.monotonic() - started:.0f} s")
    finally:
        lvm(env, device, "vgremove", "-y", vg, check=False)
        lvm(env, device, "vgchange", "--lock-stop", vg, check=False)
