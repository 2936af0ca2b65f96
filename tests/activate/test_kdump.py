"""`lvcrypt kdump register|unregister|status|restore` against a configfs that behaves like the kernel's.

The keys are real kernel keys: each test joins its own session keyring and
links the user keyring into it (as pam_keyinit does for a login session);
the keys registered for kdump live in the user keyring @u, where the kernel
looks for them, and every key a test makes there is invalidated afterwards,
also on failure.  keyctl(1) is the oracle for what is in the keyring.

The crash_dm_crypt_keys directory is a FUSE stand-in (tests/kdump_fake_kernel.py):
mkdir makes items, `count` counts them, `description` takes what the kernel
takes, and in "kdump" mode writing `yes` to `restore` adds the saved keys to
@u as `user` keys before the write returns, as the kdump kernel does.
"""

from __future__ import annotations

import fcntl
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import LVM_ENV, ROOT
from kdump_fake_kernel import FakeKernel
from lvcrypt import kdump, keyring
from lvcrypt.errors import KdumpError
from store_helpers import Pair

pytestmark = [pytest.mark.usefixtures("lvm2"),
              pytest.mark.skipif(shutil.which("keyctl") is None, reason="keyutils (keyctl) is not installed"),
              pytest.mark.skipif(not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None,
                                 reason="FUSE is not available")]
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
MIB = 1 << 20


def keyctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["keyctl", *args], capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError(f"keyctl {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result


def in_user_keyring(key_type: str, description: str) -> int | None:
    found = keyctl("search", "@u", key_type, description, check=False)
    return int(found.stdout) if found.returncode == 0 else None


# @u is one keyring for every root process, and restore takes every `lvcrypt:` key it finds there: a
# test registering keys on another xdist worker lent its key to this one's restore ("a key ... was
# restored but no VG here has that LV"). The tests that put lvcrypt keys in @u take turns on this lock.
USER_KEYRING_LOCK = Path("/run/lvcrypt-test-user-keyring.lock")


@pytest.fixture
def session() -> Iterator[list[str]]:
    """A fresh session keyring linking @u, which this test has to itself (USER_KEYRING_LOCK); collects
    descriptions whose @u keys are invalidated afterwards."""
    with open(USER_KEYRING_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _session_keyring()


def _session_keyring() -> Iterator[list[str]]:
    ring = keyring.join_session_keyring()
    keyring.link(keyring.resolve_keyring("@u"), "@s")
    descriptions: list[str] = []
    yield descriptions
    for description in descriptions:
        for key_type in ("logon", "user"):
            while (serial := in_user_keyring(key_type, description)) is not None:
                keyctl("invalidate", str(serial))
                keyctl("unlink", str(serial), "@u", check=False)
    keyctl("invalidate", str(ring), check=False)
    keyring.join_session_keyring()  # later tests in this process find a working @s again


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKernel]:
    kernel = FakeKernel(tmp_path / "config")
    kernel.start(None)
    try:
        yield kernel
    finally:
        kernel.stop()


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgk", *pair.devices)
    (tmp_path / "pass").write_bytes(b"kdump test passphrase")
    return pair


def make_crypt_lv(pair: Pair, name: str, *extra: str, size: str = "8M") -> str:
    """A crypt LV holding random data; returns the description of its key (`lvcrypt:<LV uuid>`)."""
    pair.lvc("lvcreate", "--encrypt", *(extra or FAST), "--key-file", str(pair.tmp / "pass"), "-L", size, "-n", name,
             "vgk")
    data = os.urandom(int(size[:-1]) * MIB)
    (pair.tmp / f"{name}.data").write_bytes(data)
    subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, "--key-file",
                    str(pair.tmp / "pass"), f"vgk/{name}"], input=data, env=pair.env, cwd=ROOT, check=True,
                   capture_output=True)
    uuid = pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", f"vgk/{name}").stdout.strip()
    return f"lvcrypt:{uuid}"


def volume_key(pair: Pair, lv: str) -> bytes:
    table = pair.lvc("table", "--show-keys", "--key-file", str(pair.tmp / "pass"), lv).stdout
    return bytes.fromhex(re.search(r" crypt \S+ ([0-9a-f]+) ", table).group(1))


def kd(pair: Pair, fake: FakeKernel, action: str, *args: str, check: bool = True,
       limit_memory: int | None = None, new_session: bool = False,
       configfs_root: str | None = None) -> subprocess.CompletedProcess[str]:
    """`lvcrypt kdump ACTION --devices ... --configfs-root FAKE ARGS` as a separate process (`configfs_root`: another
    root than the fake kernel's, given once: lvcrypt refuses an option given twice, as lvm2).

    `new_session`: run it in a new anonymous session keyring that does not
    link @u (`keyctl session -`), as a restarted service or another login is.
    """
    def limited() -> None:
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    command = (["keyctl", "session", "-"] if new_session else []) + [sys.executable, "-m", "lvcrypt", "kdump", action, "--devices", pair.device_list,
               "--configfs-root", configfs_root or str(fake.mountpoint), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=pair.env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, preexec_fn=limited)
    if check and result.returncode != 0:
        raise AssertionError(f"kdump {action} {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def entries(fake: FakeKernel) -> dict[str, str]:
    subsystem = fake.mountpoint / "crash_dm_crypt_keys"
    return {item.name: (item / "description").read_text().strip() for item in subsystem.iterdir() if item.is_dir()}


def count(fake: FakeKernel) -> int:
    return int((fake.mountpoint / "crash_dm_crypt_keys" / "count").read_text())


def crash(fake: FakeKernel, volume_keys: dict[str, bytes], descriptions: list[str]) -> None:
    """kexec load, then the crash: the first kernel's keys are gone, the kdump kernel's configfs is up."""
    saved = fake.kexec_load(volume_keys)
    for description in descriptions:
        while (serial := in_user_keyring("logon", description)) is not None:
            keyctl("invalidate", str(serial))
    fake.start(saved)


def read_with_restored_key(pair: Pair, lv: str, description: str,
                           limit_memory: int | None = None) -> subprocess.CompletedProcess[bytes]:
    def limited() -> None:
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    return subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", pair.device_list,
                           "--volume-key-keyring", f"%user:{description}", lv], capture_output=True, env=pair.env,
                          cwd=ROOT, stdin=subprocess.DEVNULL, preexec_fn=limited)


# --- the round trip -------------------------------------------------------------------------------


def test_register_kexec_crash_restore_read(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    second = make_crypt_lv(pair, "second")
    session += [first, second]
    pair.lvc("lvcreate", "-L", "4M", "-n", "plain", "vgk")
    out = kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first", "vgk/second").stdout
    assert "crash_dm_crypt_keys count: 2" in out
    assert entries(fake) == {first.replace(":", "-"): first, second.replace(":", "-"): second}
    for description in (first, second):
        serial = in_user_keyring("logon", description)
        assert serial is not None
        assert keyctl("rdescribe", str(serial)).stdout.decode().startswith("logon;")
        assert keyctl("pipe", str(serial), check=False).returncode != 0  # logon: never readable back
    status = kd(pair, fake, "status").stdout
    assert re.search(rf"{first.replace(':', '-')}\s+{first}\s+vgk/first\s+present", status), status
    assert re.search(rf"{second}\s+vgk/second\s+present", status), status

    keys = {first: volume_key(pair, "vgk/first"), second: volume_key(pair, "vgk/second")}
    crash(fake, keys, [first, second])
    restored = kd(pair, fake, "restore").stdout
    assert (fake.mountpoint / "crash_dm_crypt_keys" / "restore").read_text() == "1\n"
    assert f"read it with: lvcrypt read --volume-key-keyring %user:{first} vgk/first" in restored
    for description, key in keys.items():
        serial = in_user_keyring("user", description)
        assert serial is not None and keyctl("pipe", str(serial)).stdout == key
    for name, description in (("first", first), ("second", second)):
        read = read_with_restored_key(pair, f"vgk/{name}", description)
        assert read.returncode == 0, read.stderr
        assert read.stdout == (pair.tmp / f"{name}.data").read_bytes()


def test_register_is_idempotent_and_unregister_removes_entries_and_links(pair: Pair, fake: FakeKernel,
                                                                        session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    session.append(first)
    kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first")
    serial = in_user_keyring("logon", first)
    again = kd(pair, fake, "register", "vgk/first").stdout  # key already in @u: no passphrase needed
    assert "count: 1" in again and in_user_keyring("logon", first) == serial and count(fake) == 1
    out = kd(pair, fake, "unregister", "vgk/first").stdout
    assert f"key {first} unregistered" in out and "count: 0" in out
    assert entries(fake) == {} and in_user_keyring("logon", first) is None
    assert kd(pair, fake, "status").stdout.strip() == "crash_dm_crypt_keys count: 0"


def test_register_is_idempotent_across_sessions(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    """A kdump service restart re-registers every LV: each time from a new session that does not link @u.

    The logon key in @u from the earlier session is reused (no passphrase),
    not refused with "search: Permission denied" (issue 12, item 11).
    """
    first = make_crypt_lv(pair, "first")
    second = make_crypt_lv(pair, "second")
    session += [first, second]
    kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first", new_session=True)
    serial = in_user_keyring("logon", first)
    assert serial is not None
    for _ in range(2):  # two restarts; stdin is /dev/null and no key file: no passphrase can be asked
        again = kd(pair, fake, "register", "vgk/first", new_session=True, check=False)
        assert again.returncode == 0, again.stderr
        assert "count: 1" in again.stdout and in_user_keyring("logon", first) == serial and count(fake) == 1
    both = kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first", "vgk/second",
              new_session=True)
    assert "count: 2" in both.stdout and in_user_keyring("logon", first) == serial
    status = kd(pair, fake, "status", new_session=True).stdout
    assert re.search(rf"{first}\s+vgk/first\s+present", status) and re.search(rf"{second}\s+vgk/second\s+present",
                                                                              status), status
    out = kd(pair, fake, "unregister", "--all", new_session=True).stdout
    assert "count: 0" in out and entries(fake) == {}
    assert in_user_keyring("logon", first) is None and in_user_keyring("logon", second) is None


def test_register_links_the_session_key_of_an_active_lv_without_a_passphrase(pair: Pair, fake: FakeKernel,
                                                                           session: list[str]) -> None:
    """The kernel backend keeps an active LV's key as a session logon key: register links it into @u."""
    first = make_crypt_lv(pair, "first")
    session.append(first)
    serial = keyring.add_key("logon", first, volume_key(pair, "vgk/first"), "@s")
    try:
        kd(pair, fake, "register", "vgk/first")
        assert in_user_keyring("logon", first) == serial
        assert entries(fake) == {first.replace(":", "-"): first}
    finally:
        keyring.invalidate(serial)


def test_all_registers_exactly_the_active_crypt_lvs(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    active = make_crypt_lv(pair, "active")
    idle = make_crypt_lv(pair, "idle")
    session += [active, idle]
    vg_uuid = pair.lvc("vgs", "--noheadings", "-o", "vg_uuid", "vgk").stdout.strip().replace("-", "")
    dm = pair.tmp / "sys" / "block" / "dm-0" / "dm"
    dm.mkdir(parents=True)
    (dm / "uuid").write_text(f"LVM-{vg_uuid}{active.split(':')[1].replace('-', '')}\n")
    kd(pair, fake, "register", "--all", "--sysfs-root", str(pair.tmp / "sys"), "--key-file", str(pair.tmp / "pass"))
    assert entries(fake) == {active.replace(":", "-"): active}
    out = kd(pair, fake, "unregister", "--all").stdout
    assert "count: 0" in out and entries(fake) == {}


def test_all_passes_over_a_vg_this_host_must_not_touch(pair: Pair, fake: FakeKernel, session: list[str],
                                                       loop_devices: Callable[..., list[str]]) -> None:
    """A foreign VG on the host (system_id of another host) is skipped with a warning, as lvm2's commands
    over all VGs skip it; the active crypt LVs of the other VGs are registered all the same."""
    active = make_crypt_lv(pair, "active")
    session.append(active)
    other = loop_devices(1, 16)[0]
    for words in (["pvcreate", other], ["vgcreate", "vgforeign", other],
                  ["vgcfgbackup", "-f", str(pair.tmp / "foreign.vg"), "vgforeign"]):
        subprocess.run([sys.executable, "-m", "lvcrypt", words[0], "--devices", other, *words[1:]], env=pair.env,
                       cwd=ROOT, check=True, capture_output=True)
    backup = pair.tmp / "foreign.vg"
    backup.write_text(backup.read_text().replace("\tseqno = ", '\tsystem_id = "otherhost"\n\tseqno = ', 1))
    subprocess.run(["lvm", "vgcfgrestore", "--devices", other, "-f", str(backup), "vgforeign"], env=LVM_ENV,
                   check=True, capture_output=True)
    vg_uuid = pair.lvc("vgs", "--noheadings", "-o", "vg_uuid", "vgk").stdout.strip().replace("-", "")
    dm = pair.tmp / "sys" / "block" / "dm-0" / "dm"
    dm.mkdir(parents=True)
    (dm / "uuid").write_text(f"LVM-{vg_uuid}{active.split(':')[1].replace('-', '')}\n")
    result = kd(pair, fake, "register", "--all", "--devices", f"{pair.device_list},{other}", "--sysfs-root",
                str(pair.tmp / "sys"), "--key-file", str(pair.tmp / "pass"))
    assert "skipped: Cannot access VG vgforeign with system ID otherhost" in result.stderr, result.stderr
    assert entries(fake) == {active.replace(":", "-"): active}
    kd(pair, fake, "unregister", "--all", "--devices", f"{pair.device_list},{other}")
    assert entries(fake) == {}


# --- refusals: one line, nothing changed ----------------------------------------------------------


def one_line_failure(result: subprocess.CompletedProcess[str], status: int = 5) -> str:
    assert result.returncode == status, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_refusals_leave_no_entry_and_no_key(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    session.append(first)
    pair.lvc("lvcreate", "-L", "4M", "-n", "plain", "vgk")
    (pair.tmp / "wrong").write_bytes(b"not the passphrase")
    assert "not encrypted" in one_line_failure(kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"),
                                                  "vgk/first", "vgk/plain", check=False))
    one_line_failure(kd(pair, fake, "register", "--key-file", str(pair.tmp / "wrong"), "vgk/first", check=False))
    assert 'Failed to find logical volume "vgk/absent"' in one_line_failure(kd(pair, fake, "register", "vgk/absent",
                                                                                check=False))
    one_line_failure(kd(pair, fake, "register", check=False), status=3)
    one_line_failure(kd(pair, fake, "register", "--all", "vgk/first", check=False), status=3)
    assert count(fake) == 0 and in_user_keyring("logon", first) is None
    missing = kd(pair, fake, "register", "vgk/first", configfs_root=str(pair.tmp / "nowhere"), check=False)
    assert "CONFIG_CRASH_DM_CRYPT" in one_line_failure(missing)
    assert "not a kdump kernel" in one_line_failure(kd(pair, fake, "restore", check=False))


def test_at_most_128_keys(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first", size="4M")
    second = make_crypt_lv(pair, "second", size="4M")
    session += [first, second]
    for number in range(127):
        (fake.mountpoint / "crash_dm_crypt_keys" / f"other{number}").mkdir()
    refused = kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first", "vgk/second",
                 check=False)
    assert "at most 128 keys: 127 registered, 2 more" in one_line_failure(refused)
    assert count(fake) == 127 and in_user_keyring("logon", first) is None
    assert "count: 128" in kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first").stdout


def test_description_limit_is_what_survives_the_kernels_copy() -> None:
    kdump.check_description("lvcrypt:" + "x" * (kdump.MAX_DESCRIPTION - 8))
    with pytest.raises(KdumpError, match="at most 127"):
        kdump.check_description("lvcrypt:" + "x" * (kdump.MAX_DESCRIPTION - 7))


def test_a_restored_key_that_does_not_match_is_refused(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    session.append(first)
    kd(pair, fake, "register", "--key-file", str(pair.tmp / "pass"), "vgk/first")
    crash(fake, {first: bytes(64)}, [first])
    refused = kd(pair, fake, "restore", check=False)
    assert refused.returncode == 5 and "could not activate vgk/first" in refused.stderr
    assert "does not match" in refused.stderr and "Traceback" not in refused.stderr


# --- no PBKDF in the kdump kernel -----------------------------------------------------------------


@pytest.mark.slow
def test_restore_needs_no_argon2_memory(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    """An Argon2id keystore needing 640 MiB opens from the restored key in a process limited to 512 MiB
    of address space, where unlocking with the passphrase fails: restore and read ran no Argon2.

    Argon2 runs twice here (format, and the test's own --show-keys); data goes in and the key is
    registered through keyring keys, as an active LV's would be.
    """
    pair.lvc("lvcreate", "--encrypt", "--pbkdf", "argon2id", "--pbkdf-memory", "655360", "--pbkdf-force-iterations",
             "4", "--pbkdf-parallel", "2", "--key-file", str(pair.tmp / "pass"), "-L", "8M", "-n", "heavy", "vgk")
    heavy = "lvcrypt:" + pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", "vgk/heavy").stdout.strip()
    session.append(heavy)
    key = volume_key(pair, "vgk/heavy")
    data = os.urandom(8 * MIB)
    writer = keyring.add_key("user", f"lvcrypt-test-writer:{heavy}", key, "@s")
    session_key = keyring.add_key("logon", heavy, key, "@s")  # what the kernel backend keeps for an active LV
    try:
        subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list,
                        "--volume-key-keyring", f"%user:lvcrypt-test-writer:{heavy}", "vgk/heavy"], input=data,
                       env=pair.env, cwd=ROOT, check=True, capture_output=True)
        kd(pair, fake, "register", "vgk/heavy")
    finally:
        keyring.invalidate(writer)
        keyring.unlink(session_key, "@s")  # still linked in @u if register worked; the fixture cleans that up
    limit = 512 * MIB
    control = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", pair.device_list, "--key-file",
                              str(pair.tmp / "pass"), "--length", "4096", "vgk/heavy"], capture_output=True,
                             env=pair.env, cwd=ROOT, preexec_fn=lambda: resource.setrlimit(
                                 resource.RLIMIT_AS, (limit, limit)))
    assert control.returncode == 5 and b"Traceback" not in control.stderr  # the limit does stop Argon2
    crash(fake, {heavy: key}, [heavy])
    kd(pair, fake, "restore", limit_memory=limit)
    read = read_with_restored_key(pair, "vgk/heavy", heavy, limit_memory=limit)
    assert read.returncode == 0, read.stderr
    assert read.stdout == data
