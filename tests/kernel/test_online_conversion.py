"""Online extent mover (issue 17): `lvconvert --encrypt` and `pvmove` of an LV active in the kernel, with a
mounted ext4 on it and a writer syncing checksummed blocks the whole time; and a chunk failing while the
LV is suspended, which must leave it running on its old tables with the metadata as it was (and a Ctrl-C
there, which waits until the chunk is committed and the LV resumed on its new tables).

Oracles: e2fsck, lvm2's vgck and pvs, dmsetup (tables, state), keyctl, the raw PVs (no plaintext left),
lvcrypt's userspace backend (reads what the metadata maps, not what the kernel shows).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.keystore_admin import KeystoreRequest
from lvcrypt.lv_conversion import ConversionRequest, convert_lv
from lvcrypt.unlock import KeySources
from mover_helpers import Interrupted, interrupt_after
from store_helpers import Pair

from . import pattern_writer
from .test_activation import (FAST, MIB, VG, crypt_lv, dm_devices, lvchange, lvcrypt, mapper, read_dev, read_lv,
                              session_keys, sh, write_dev)
from .test_activation import pair  # noqa: F401 (a fixture)
from .test_dm_crypt import payload

pytestmark = pytest.mark.usefixtures("lvm2")

LUKS1 = ["--handler", "luks1", *FAST]  # a one-extent keystore, a fast KDF
CHUNK = ["--chunk-size", "4M"]  # one extent per chunk: the LV is switched 4 times per command
PAUSE = re.compile(r"longest I/O pause: (\d+) ms")


class Writer:
    """pattern_writer.py running on the mounted LV until stopped."""

    def __init__(self, directory: Path, mountpoint: Path):
        self.progress, self.stop_file = directory / "writer.progress", directory / "writer.stop"
        self.process = subprocess.Popen(
            [sys.executable, pattern_writer.__file__, str(mountpoint / "ring"), str(self.progress),
             str(self.stop_file)], stdout=subprocess.PIPE, text=True)

    def synced(self) -> int:
        try:
            return int(self.progress.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def wait_for(self, count: int) -> None:
        while self.synced() < count:
            assert self.process.poll() is None, "the writer died"
            time.sleep(0.2)

    def stop(self) -> tuple[int, int]:
        """(blocks synced, longest gap in ms)."""
        self.stop_file.touch()
        out, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0
        count, gap = out.split()
        return int(count), int(gap)


def table_lines(name: str) -> list[str]:
    return sh("dmsetup", "table", name).stdout.strip().splitlines()


def target_types(name: str) -> list[str]:
    return [line.split()[2] for line in table_lines(name)]


def coverage(name: str) -> list[tuple[str, int]]:
    """The device's target types in order with the sectors each covers, neighbours of one type joined."""
    runs: list[tuple[str, int]] = []
    for line in table_lines(name):
        fields = line.split()
        kind, length = fields[2], int(fields[1])
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + length)
        else:
            runs.append((kind, length))
    return runs


def pause_of(output: bytes) -> int:
    found = PAUSE.search(output.decode())
    assert found, output
    return int(found.group(1))


def test_online_encrypt_and_pvmove_of_a_mounted_ext4_lose_no_write(pair: Pair) -> None:
    key = ["--key-file", str(pair.tmp / "pass")]
    mnt = pair.tmp / "mnt"
    mnt.mkdir()
    lvcrypt(pair, "lvcreate", "-L", "16M", "-n", "fs", VG, pair.devices[0])
    lvchange(pair, "-ay", f"{VG}/fs")
    sh("mkfs.ext4", "-q", "-F", str(mapper("fs")))
    sh("mount", str(mapper("fs")), str(mnt))
    # lvcrypt's archive, backup and lock files on the file system being moved (as /etc/lvm on a root LV):
    # a write there while the LV is suspended would never return.
    on_lv = Pair(pair.devices, mnt)
    writer = Writer(pair.tmp, mnt)
    try:
        writer.wait_for(20)
        before = writer.synced()
        encrypt = lvcrypt(on_lv, "lvconvert", "--encrypt", *LUKS1, *key, *CHUNK, f"{VG}/fs")
        during_encrypt = writer.synced() - before
        assert target_types(f"{VG}-fs") == ["crypt"]  # one segment again, on the device the file system uses
        assert not any(name.startswith(f"{VG}-fs-") for name in dm_devices())
        before = writer.synced()
        move = lvcrypt(on_lv, "pvmove", *CHUNK, pair.devices[0])  # the LV and its keystore, as ciphertext
        backups = sorted(path.name for path in mnt.glob("state/**/*") if path.is_file())
        during_move = writer.synced() - before
    finally:
        count, gap = writer.stop()
    sh("umount", str(mnt))
    print(f"\nonline encrypt: longest I/O pause {pause_of(encrypt.stdout)} ms, {during_encrypt} blocks synced "
          f"meanwhile; pvmove: {pause_of(move.stdout)} ms, {during_move} blocks; writer: {count} blocks, "
          f"longest gap between two syncs {gap} ms")
    assert during_encrypt > 0 and during_move > 0  # the file system took writes while its LV moved
    assert backups, "no archive or backup was written"

    sh("e2fsck", "-fn", str(mapper("fs")))  # exit 0: clean
    sh("mount", "-o", "ro", str(mapper("fs")), str(mnt))
    try:
        assert (mnt / "ring").read_bytes() == pattern_writer.expected_ring(count)
    finally:
        sh("umount", str(mnt))
    pair.lvm("vgck", VG)
    used = dict(line.split() for line in pair.lvm("pvs", "--noheadings", "--units", "m", "--nosuffix", "-o",
                                                  "pv_name,pv_used").stdout.splitlines())
    assert float(used[pair.devices[0]]) == 0.0, used
    for device in pair.devices:  # the writer's blocks are ciphertext now, the freed extents wiped
        with open(device, "rb") as disk:
            assert pattern_writer.MAGIC not in disk.read(), device
    assert read_lv(pair, "fs") == read_dev(mapper("fs"), 16 * MIB)  # the kernel maps what the metadata says
    lvchange(pair, "-an", f"{VG}/fs")
    assert not any("lvcrypt:" in text for text in session_keys())


def test_a_chunk_failing_while_suspended_leaves_the_lv_running_on_its_old_tables(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    lvcrypt(pair, "lvcreate", "-L", "16M", "-n", "fs", VG, pair.devices[0])
    lvchange(pair, "-ay", f"{VG}/fs")
    data = payload(16 * MIB, "online")
    write_dev(mapper("fs"), data)
    device, offset = table_lines(f"{VG}-fs")[0].split()[3:5]
    for name in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(name, pair.env[name])
    request = ConversionRequest("encrypt", new=KeystoreRequest(handler="luks1", pbkdf="pbkdf2",
                                                               force_iterations=1000), chunk_bytes=4 * MIB)
    sources = KeySources(key_file=str(pair.tmp / "pass"))
    with pytest.raises(Interrupted):  # 1 MiB pieces: the 6th is in the second chunk, copied while suspended
        convert_lv(pair.device_list, VG, "fs", request, sources, interrupt_after(6))

    info = sh("dmsetup", "info", f"{VG}-fs").stdout
    assert re.search(r"State:\s+ACTIVE", info) and re.search(r"Tables present:\s+LIVE\n", info), info
    lines = table_lines(f"{VG}-fs")  # the first chunk is encrypted; the rest is where it always was
    assert [line.split()[:3] for line in lines] == [["0", "8192", "crypt"], ["8192", "24576", "linear"]], lines
    assert lines[1].split()[3:] == [device, str(int(offset) + 8192)]
    assert read_dev(mapper("fs"), 16 * MIB) == data
    assert read_lv(pair, "fs") == data  # userspace maps what the metadata says: the same as the kernel
    lvchange(pair, "--refresh", f"{VG}/fs")  # reloads from the keyring: the rollback left the right key there
    assert read_dev(mapper("fs"), 16 * MIB) == data
    write_dev(mapper("fs"), payload(8 * MIB, "after"), 4 * MIB)  # I/O flows on the old tables
    data = data[:4 * MIB] + payload(8 * MIB, "after") + data[12 * MIB:]

    def ctrl_c(done: int, total: int) -> None:
        if done == 2 * MIB:  # while the next chunk is copied, the LV suspended
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # held until that chunk is committed and the LV resumed
        convert_lv(pair.device_list, VG, "fs", request, sources, ctrl_c)
    assert re.search(r"State:\s+ACTIVE", sh("dmsetup", "info", f"{VG}-fs").stdout)
    assert coverage(f"{VG}-fs") == [("crypt", 16384), ("linear", 16384)]
    assert read_lv(pair, "fs") == read_dev(mapper("fs"), 16 * MIB) == data

    resumed = lvcrypt(pair, "lvconvert", "--encrypt", "--key-file", str(pair.tmp / "pass"), *CHUNK, f"{VG}/fs")
    pause_of(resumed.stdout)
    assert target_types(f"{VG}-fs") == ["crypt"]
    assert read_dev(mapper("fs"), 16 * MIB) == data
    pair.lvm("vgck", VG)
    lvchange(pair, "-an", f"{VG}/fs")
    assert not any("lvcrypt:" in text for text in session_keys())
    assert read_lv(pair, "fs") == data


@pytest.fixture
def while_suspended(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], None]], None]:
    """Fault injection in this process: `while_suspended(hook)` makes every chunk's switch run `hook()` with
    the LV suspended, just before the chunk is copied and committed (`monkeypatch.undo()` ends it)."""
    from lvcrypt.activate import kernel

    switch = kernel.switch

    def install(hook: Callable[[], None]) -> None:
        def hooked(table: object, before: object, volume_keys: object, during: Callable[[], None],
                   *rest: object) -> float:
            def hook_first() -> None:
                hook()
                during()
            return switch(table, before, volume_keys, hook_first, *rest)  # type: ignore[arg-type]
        monkeypatch.setattr(kernel, "switch", hooked)
    return install


def fail_the_second_committed_header(monkeypatch: pytest.MonkeyPatch,
                                     while_suspended: Callable[[Callable[[], None]], None], target: str,
                                     then_unreadable: bool) -> list[int]:
    """Once a switch has suspended the LV, the write of `target`'s committed header (its second header
    write: precommit, then commit) fails with EIO, the other PV's written by then; `then_unreadable`
    also fails every read of a PV after that.  Returns the count of `target`'s header writes (a list,
    empty until the suspend)."""
    from lvcrypt.store.disk import Disk
    from lvcrypt.store.mda import MAGIC

    headers: list[int] = []
    write_at, read_at = Disk.write_at, Disk.read_at

    def failing_write(self: Disk, offset: int, data: bytes) -> None:
        if headers and self.path == target and bytes(data[4:20]) == MAGIC:
            headers[0] += 1
            if headers[0] == 2:
                raise OSError(5, "Input/output error")
        write_at(self, offset, data)

    def failing_read(self: Disk, offset: int, length: int) -> bytes:
        if headers and headers[0] >= 2:
            raise OSError(5, "Input/output error")
        return read_at(self, offset, length)
    while_suspended(lambda: headers.append(0) if not headers else None)
    monkeypatch.setattr(Disk, "write_at", failing_write)
    if then_unreadable:
        monkeypatch.setattr(Disk, "read_at", failing_read)
    return headers


def lvm2_mapping(pair: Pair, lv: str) -> tuple[str, int]:
    """Where lvm2 says a one-segment LV's data is: the PV as `major:minor` and the sector offset on it.
    Read from the VG text lvm2 writes back (vgcfgbackup): `stripes` of a linear segment, `areas` of the
    segment types it does not know (crypt), for which `lvs -o devices` shows nothing."""
    backup = pair.tmp / "lvm2-backup.vg"
    pair.lvm("vgcfgbackup", "-f", str(backup), VG)
    text = backup.read_text()
    segment = text[re.search(rf"^\s*{lv} {{", text, re.M).end():]  # type: ignore[union-attr]
    pv, extent = re.search(r'(?:areas|stripes)\s*=\s*\[\s*"(pv\d+)",\s*(\d+)', segment).groups()  # type: ignore[union-attr]
    header = text[re.search(rf"^\s*{pv} {{", text, re.M).end():]  # type: ignore[union-attr]
    device = re.search(r'device\s*=\s*"([^"]+)"', header).group(1)  # type: ignore[union-attr]
    pe_start = int(re.search(r"pe_start\s*=\s*(\d+)", header).group(1))  # type: ignore[union-attr]
    rdev = os.stat(device).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}", pe_start + int(extent) * 8192  # 4 MiB extents


def table_mapping(line: str) -> tuple[str, int]:
    """The device and offset of one linear or crypt line of `dmsetup table`."""
    fields = line.split()
    device, offset = fields[6:8] if fields[2] == "crypt" else fields[3:5]
    return device, int(offset)


def test_a_commit_failing_after_the_first_pvs_header_resumes_the_mapping_it_committed(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, while_suspended: Callable[[Callable[[], None]], None]) -> None:
    """pvmove of a one-chunk LV whose commit fails at the second PV's committed header, the first PV's
    already written: the first PV's new seqno is what readers take (lvm2 too), so the LV must run on the
    new extents, or writes would go to extents the metadata calls free (issue 17)."""
    source, target = pair.devices
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "mv", VG, source)
    lvchange(pair, "-ay", f"{VG}/mv")
    write_dev(mapper("mv"), payload(4 * MIB, "before"))
    headers = fail_the_second_committed_header(monkeypatch, while_suspended, target, then_unreadable=False)
    failed = lvcrypt(pair, "pvmove", *CHUNK, source, check=False)
    monkeypatch.undo()
    assert failed.returncode == 5 and headers == [2], (headers, failed.stderr)
    assert failed.stderr.count("\n") == 1 and "reached only some PVs" in failed.stderr, failed.stderr
    assert re.search(r"State:\s+ACTIVE", sh("dmsetup", "info", f"{VG}-mv").stdout)

    after = payload(4 * MIB, "after")  # written after the failure: it must land where the metadata maps
    write_dev(mapper("mv"), after)
    [line] = table_lines(f"{VG}-mv")
    rdev = os.stat(target).st_rdev
    assert table_mapping(line) == lvm2_mapping(pair, "mv") and line.split()[3] == f"{os.major(rdev)}:{os.minor(rdev)}"
    assert read_lv(pair, "mv") == after == read_dev(mapper("mv"), 4 * MIB)

    lvcrypt(pair, "pvmove", source)  # the next command ends the move and rewrites the stale copy
    pair.lvm("vgck", VG)
    assert read_lv(pair, "mv") == after
    lvchange(pair, "-an", f"{VG}/mv")


def test_a_commit_failing_with_the_pvs_unreadable_leaves_the_lv_suspended_until_a_refresh(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, while_suspended: Callable[[Callable[[], None]], None]) -> None:
    """The commit fails at the second PV and then no PV can be read back: either table could be wrong, so
    the LV stays suspended; once the PVs read again, the refresh the line names puts it on the mapping lvm2
    reads, with the data intact."""
    source, target = pair.devices
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "mv", VG, source)
    lvchange(pair, "-ay", f"{VG}/mv")
    data = payload(4 * MIB, "unreadable")
    write_dev(mapper("mv"), data)
    headers = fail_the_second_committed_header(monkeypatch, while_suspended, target, then_unreadable=True)
    failed = lvcrypt(pair, "pvmove", *CHUNK, source, check=False)
    monkeypatch.undo()
    assert failed.returncode == 5 and headers == [2], (headers, failed.stderr)
    assert failed.stderr.count("\n") == 1 and "cannot be read back" in failed.stderr, failed.stderr
    assert "stays suspended" in failed.stderr and f"lvcrypt lvchange --refresh {VG}/mv" in failed.stderr
    assert re.search(r"State:\s+SUSPENDED", sh("dmsetup", "info", f"{VG}-mv").stdout)

    lvchange(pair, "--refresh", f"{VG}/mv")  # the PVs read again
    assert re.search(r"State:\s+ACTIVE", sh("dmsetup", "info", f"{VG}-mv").stdout)
    rdev = os.stat(target).st_rdev
    assert table_lines(f"{VG}-mv")[0].split()[3] == f"{os.major(rdev)}:{os.minor(rdev)}"
    assert pair.lvm("lvs", "--noheadings", "-o", "devices", f"{VG}/mv").stdout.split()[0].startswith(f"{target}(")
    assert read_dev(mapper("mv"), 4 * MIB) == data == read_lv(pair, "mv")
    lvcrypt(pair, "pvmove", source)
    lvchange(pair, "-an", f"{VG}/mv")


def test_a_resume_failing_after_the_commit_names_the_refresh_that_settles_the_lv(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, while_suspended: Callable[[Callable[[], None]], None]) -> None:
    """The commit went through but the new tables could not be resumed (a dm failure, injected): the LV
    stays suspended, and the one line names `lvchange --refresh`, which puts it on the committed mapping."""
    from lvcrypt.activate.dm_ioctl import DeviceMapper
    from lvcrypt.errors import DeviceError

    source, target = pair.devices
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "mv", VG, source)
    lvchange(pair, "-ay", f"{VG}/mv")
    data = payload(4 * MIB, "resume")
    write_dev(mapper("mv"), data)
    armed = []
    resume = DeviceMapper.resume

    def failing(self: DeviceMapper, name: str) -> object:
        if armed:
            armed.clear()
            raise DeviceError("injected resume failure")
        return resume(self, name)
    while_suspended(lambda: armed.append(True))
    monkeypatch.setattr(DeviceMapper, "resume", failing)
    failed = lvcrypt(pair, "pvmove", *CHUNK, source, check=False)
    monkeypatch.undo()
    assert failed.returncode == 5 and failed.stderr.count("\n") == 1, failed.stderr
    assert "stays suspended" in failed.stderr and f"lvcrypt lvchange --refresh {VG}/mv" in failed.stderr
    assert re.search(r"State:\s+SUSPENDED", sh("dmsetup", "info", f"{VG}-mv").stdout)

    lvchange(pair, "--refresh", f"{VG}/mv")  # what the line says to run
    assert re.search(r"State:\s+ACTIVE", sh("dmsetup", "info", f"{VG}-mv").stdout)
    rdev = os.stat(target).st_rdev
    assert table_lines(f"{VG}-mv")[0].split()[3] == f"{os.major(rdev)}:{os.minor(rdev)}"
    assert pair.lvm("lvs", "--noheadings", "-o", "devices", f"{VG}/mv").stdout.split()[0].startswith(f"{target}(")
    assert read_dev(mapper("mv"), 4 * MIB) == data == read_lv(pair, "mv")
    lvcrypt(pair, "pvmove", source)
    lvchange(pair, "-an", f"{VG}/mv")


def test_an_online_encrypt_and_reencrypt_whose_commit_fails_part_way_run_on_the_mapping_lvm2_reads(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, while_suspended: Callable[[Callable[[], None]], None]) -> None:
    """`lvconvert --encrypt`, then `--reencrypt`, of a one-chunk active LV, each commit failing at the second
    PV's committed header: the first PV's copy names the chunk's new extents (and new key), so the LV must
    run on those (the tables lvm2's `lvs -o devices` gives), reading the same data; the same command
    then finishes the conversion."""
    key = ["--key-file", str(pair.tmp / "pass")]
    source, target = pair.devices
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "en", VG, source)
    lvchange(pair, "-ay", f"{VG}/en")
    data = payload(4 * MIB, "encrypt")
    write_dev(mapper("en"), data)
    for command in (["--encrypt", *LUKS1], ["--reencrypt", *FAST]):
        headers = fail_the_second_committed_header(monkeypatch, while_suspended, target, then_unreadable=False)
        failed = lvcrypt(pair, "lvconvert", *command, *key, *CHUNK, f"{VG}/en", check=False)
        monkeypatch.undo()
        assert failed.returncode == 5 and headers == [2], (command, headers, failed.stderr)
        assert failed.stderr.count("\n") == 1 and "reached only some PVs" in failed.stderr, failed.stderr
        assert re.search(r"State:\s+ACTIVE", sh("dmsetup", "info", f"{VG}-en").stdout)
        [line] = table_lines(f"{VG}-en")
        assert line.split()[2] == "crypt" and table_mapping(line) == lvm2_mapping(pair, "en"), line
        assert read_dev(mapper("en"), 4 * MIB) == data == read_lv(pair, "en")
        data = payload(4 * MIB, f"after {command[0]}")  # written after the failure: where the metadata maps
        write_dev(mapper("en"), data)
        assert read_lv(pair, "en") == data

        lvcrypt(pair, "lvconvert", command[0], *key, *CHUNK, f"{VG}/en")  # the same command finishes it
        [line] = table_lines(f"{VG}-en")
        assert table_mapping(line) == lvm2_mapping(pair, "en"), line
        assert read_dev(mapper("en"), 4 * MIB) == data == read_lv(pair, "en")
        pair.lvm("vgck", VG)
    assert len(lvcrypt_keys()) == 1  # the re-encrypted LV's key alone
    lvchange(pair, "-an", f"{VG}/en")
    assert lvcrypt_keys() == []


def status_kib(field: str) -> int:
    """A `kB` line of this process's /proc/self/status."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1])


def test_a_switch_locks_the_process_memory_while_the_lv_is_suspended(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, while_suspended: Callable[[Callable[[], None]], None]) -> None:
    """lvm2's critical section (lib/mm/memlock.c): while the LV is suspended every page of the process is
    locked (mlockall), so no page fault can wait on I/O from the suspended device; afterwards the lock is
    gone again, except the secrets' own (a Secret made before is still locked)."""
    from lvcrypt.handlers.secret import Secret

    source = pair.devices[0]
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "ml", VG, source)
    lvchange(pair, "-ay", f"{VG}/ml")
    data = payload(4 * MIB, "memlock")
    write_dev(mapper("ml"), data)
    seen: list[tuple[int, int]] = []
    with Secret(b"k" * 64) as secret:
        assert secret.locked
        locked_before = status_kib("VmLck")
        while_suspended(lambda: seen.append((status_kib("VmLck"), status_kib("VmRSS"))))
        move = lvcrypt(pair, "pvmove", *CHUNK, source)
        monkeypatch.undo()
        locked_after = status_kib("VmLck")
        print(f"\nwhile suspended: VmLck {seen[0][0]} kB, VmRSS {seen[0][1]} kB; before {locked_before} kB, "
              f"after {locked_after} kB; longest I/O pause {pause_of(move.stdout)} ms")
        assert "cannot lock memory" not in move.stderr, move.stderr
        [(locked, resident)] = seen  # one chunk, one switch
        assert locked >= 0.95 * resident > 0  # all it maps is locked (all but the kernel's vdso pages)
        assert 0 < locked_after <= locked_before  # the secret's page is locked again, nothing else
    assert read_dev(mapper("ml"), 4 * MIB) == data
    lvchange(pair, "-an", f"{VG}/ml")


def lvcrypt_keys() -> list[str]:
    return [text for text in session_keys() if "lvcrypt:" in text]


def test_online_reencrypt_then_decrypt_swap_keys_in_the_keyring_as_the_tables_need_them(pair: Pair) -> None:
    """Mid-reencryption the table holds both keys (the new one takes the LV's key description); at the end
    only the new key is left, and after --decrypt none: each switch drops what its tables no longer use."""
    key = ["--key-file", str(pair.tmp / "pass")]
    crypt_lv(pair, "cr", "8M")
    lvchange(pair, "-ay", *key, f"{VG}/cr")
    data = payload(8 * MIB, "reencrypt")
    write_dev(mapper("cr"), data)
    old_key = lvcrypt_keys()
    assert len(old_key) == 1

    reencrypt = lvcrypt(pair, "lvconvert", "--reencrypt", *FAST, *key, *CHUNK, f"{VG}/cr")
    pause_of(reencrypt.stdout)
    assert coverage(f"{VG}-cr") == [("crypt", 16384)] and read_dev(mapper("cr"), 8 * MIB) == data
    assert len(lvcrypt_keys()) == 1  # the old keystore's key went with the last old segment
    lvchange(pair, "--refresh", f"{VG}/cr")  # the keyring's key is the new keystore's: the data reads back
    assert read_dev(mapper("cr"), 8 * MIB) == data == read_lv(pair, "cr")

    decrypt = lvcrypt(pair, "lvconvert", "--decrypt", *key, *CHUNK, f"{VG}/cr")
    pause_of(decrypt.stdout)
    assert coverage(f"{VG}-cr") == [("linear", 16384)] and read_dev(mapper("cr"), 8 * MIB) == data
    assert lvcrypt_keys() == []
    pair.lvm("vgck", VG)
    lvchange(pair, "-an", f"{VG}/cr")
    assert pair.lvm("lvs", "-a", "--noheadings", "-o", "lv_name", VG).stdout.split() == ["cr"]  # keystores gone


def test_a_conversion_killed_while_the_lv_is_suspended_is_finished_by_the_same_command(pair: Pair) -> None:
    """kill -9 during a chunk's switch leaves the LV suspended (before or after that chunk's commit); the
    same command first puts it on the committed mapping (the old tables may map extents now free and
    owed a wipe), then finishes."""
    from lvcrypt.activate.dm_ioctl import DeviceMapper

    name, password = f"{VG}-fs", str(pair.tmp / "pass")
    lvcrypt(pair, "lvcreate", "-L", "16M", "-n", "fs", VG, pair.devices[0])
    lvchange(pair, "-ay", f"{VG}/fs")
    data = payload(16 * MIB, "killed")
    write_dev(mapper("fs"), data)
    process = subprocess.Popen([sys.executable, "-m", "lvcrypt", "lvconvert", "--encrypt", "--devices",
                                pair.device_list, *LUKS1, "--key-file", password, *CHUNK, f"{VG}/fs"],
                               env=pair.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with DeviceMapper() as dm:
        def in_a_switch() -> bool:
            """Suspended with a crypt target live: a chunk's switch after the first chunk's."""
            info = dm.info(name)
            return info is not None and info.suspended and "crypt" in [t.type for t in dm.table(name)]
        while process.poll() is None:
            if in_a_switch():
                process.send_signal(signal.SIGSTOP)  # stopped, it cannot resume the LV before the kill
                if in_a_switch():
                    process.kill()
                    break
                process.send_signal(signal.SIGCONT)
        process.wait()
        assert process.returncode == -9, f"no switch was caught: {process.stderr.read() if process.stderr else ''}"
        assert dm.info(name).suspended  # type: ignore[union-attr]

    resumed = lvcrypt(pair, "lvconvert", "--encrypt", "--key-file", password, *CHUNK, f"{VG}/fs")
    pause_of(resumed.stdout)
    assert "ACTIVE" in sh("dmsetup", "info", name).stdout and coverage(name) == [("crypt", 32768)]
    assert read_dev(mapper("fs"), 16 * MIB) == data == read_lv(pair, "fs")
    pair.lvm("vgck", VG)
    lvchange(pair, "-an", f"{VG}/fs")
    assert lvcrypt_keys() == []


def test_online_decrypt_of_a_striped_crypt_lv_takes_its_hidden_layer_away(pair: Pair) -> None:
    """A striped crypt segment maps through a hidden striped layer (`-crypt0`); cut chunk by chunk into
    linear plain segments, the layer is renamed as segments shift and removed at the end."""
    key = ["--key-file", str(pair.tmp / "pass")]
    crypt_lv(pair, "scr", "16M", "-i", "2", "-I", "64k")
    lvchange(pair, "-ay", *key, f"{VG}/scr")
    assert f"{VG}-scr-crypt0" in dm_devices()
    data = payload(16 * MIB, "striped")
    write_dev(mapper("scr"), data)
    decrypt = lvcrypt(pair, "lvconvert", "--decrypt", *key, "--chunk-size", "8M", f"{VG}/scr")
    pause_of(decrypt.stdout)
    assert coverage(f"{VG}-scr")[0][0] == "linear" and len(coverage(f"{VG}-scr")) == 1
    assert {name for name in dm_devices() if name.startswith(f"{VG}-scr")} == {f"{VG}-scr"}
    assert read_dev(mapper("scr"), 16 * MIB) == data == read_lv(pair, "scr")
    assert lvcrypt_keys() == []
    pair.lvm("vgck", VG)
    lvchange(pair, "-an", f"{VG}/scr")
