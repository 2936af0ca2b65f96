"""The kernel test tier's harness, on the host: a kernel test is never reported passed unless
it passed in the guest, a guest that cannot start skips them with the reason, and the
initramfs it builds is one the real cpio reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import xdist_group_of
from kernel.guest import CpioEntry, GuestUnavailable, cpio_newc, find_kernel, module_load_order
from kernel.guest_results import Verdict, verdicts

ROOT = Path(__file__).resolve().parent.parent
WANTED = ["tests/kernel/test_a.py::test_one", "tests/kernel/test_a.py::test_two"]


def report(nodeid: str, when: str, outcome: str, text: str = "", wasxfail: str | None = None) -> dict:
    return {"event": "report", "nodeid": nodeid, "when": when, "outcome": outcome, "text": text,
            "wasxfail": wasxfail}


def full_run(nodeid: str, call: str, text: str = "") -> list[dict]:
    return [{"event": "start", "nodeid": nodeid}, report(nodeid, "setup", "passed"),
            report(nodeid, "call", call, text), report(nodeid, "teardown", "passed")]


def test_guest_outcomes_are_reported_per_test() -> None:
    records = full_run(WANTED[0], "passed") + full_run(WANTED[1], "failed", "assert 1 == 2")
    result = verdicts(records, WANTED, finished=True, problem="pytest exit status 1")
    assert result[WANTED[0]] == Verdict("passed")
    assert result[WANTED[1]] == Verdict("failed", "assert 1 == 2")


def test_guest_skips_xfails_and_teardown_errors_keep_their_meaning() -> None:
    one, two = WANTED
    records = [report(one, "setup", "skipped", "no dm here"), report(one, "teardown", "passed"),
               *full_run(two, "passed")[:3], report(two, "teardown", "failed", "loop busy")]
    result = verdicts(records, WANTED, finished=True, problem="")
    assert result[one] == Verdict("skipped", "no dm here")
    assert result[two] == Verdict("failed", "error in teardown:\nloop busy")
    xfail = [report(one, "setup", "passed"), report(one, "call", "skipped", "", wasxfail="known bug"),
             report(one, "teardown", "passed")]
    assert verdicts(xfail, [one], finished=True, problem="")[one] == Verdict("xfailed", "known bug")


def test_a_test_the_guest_did_not_finish_is_never_passed() -> None:
    one, two = WANTED
    records = [{"event": "start", "nodeid": one}, report(one, "setup", "passed"), report(one, "call", "passed")]
    stopped = verdicts(records, WANTED, finished=False, problem="timeout")
    assert stopped[one].outcome == "failed" and "timeout" in stopped[one].text
    assert stopped[two].outcome == "skipped" and "timeout" in stopped[two].text
    missing = verdicts([], WANTED, finished=True, problem="pytest exit status 2")
    assert {v.outcome for v in missing.values()} == {"failed"}


def run_kernel_tier(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on tests/kernel in a subprocess, its temp files under tmp_path; the one-guest tier only
    (`host_side` tests boot guests of their own, which the tier's knobs do not govern)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "-m", "not host_side", "tests/kernel"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TMPDIR": str(tmp_path), **env})


def test_the_tier_runs_on_one_xdist_worker_with_tests_run_sh_options(tmp_path: Path) -> None:
    """Each worker that runs a kernel test boots a guest for ALL of them: split over two workers, the
    tier ran twice. tests/run.sh's `-n 2 --dist loadgroup` must put every kernel test on one worker,
    and the lvmlockd stand-ins (one shared daemon) on one worker too."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                             "no:cacheprovider", "-m", "not host_side", "tests/kernel/test_dm_crypt.py",
                             "tests/kernel/test_in_use_kernel.py", "tests/handlers/test_binary_layout.py"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(tmp_path),
                                 "LVCRYPT_KERNEL_IMAGE": str(tmp_path / "vmlinuz-none")})
    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.findall(r"^\[(gw\d)\] .*? (tests/\S+::\S+)", result.stdout, re.M)
    kernel_workers = {worker for worker, test in ran if test.startswith("tests/kernel/")}
    assert len([test for _, test in ran if test.startswith("tests/kernel/")]) == 14
    assert len(kernel_workers) == 1, result.stdout
    assert len({worker for worker, _ in ran}) == 2  # the rest is spread: the check is not vacuous
    assert xdist_group_of("tests/compat/test_lvmlockd_requests.py::test_x[a]") == "lvmlockd"
    assert xdist_group_of("tests/compat/test_lvm2_interop.py::test_x") is None


def test_kernel_tests_are_skipped_with_the_reason_when_no_kernel_is_there(tmp_path: Path) -> None:
    result = run_kernel_tier(tmp_path, LVCRYPT_KERNEL_IMAGE=str(tmp_path / "vmlinuz-none"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no kernel image with modules" in result.stdout
    assert " skipped" in result.stdout.splitlines()[-1]
    assert "passed" not in result.stdout.splitlines()[-1]


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 is not installed")
def test_a_guest_that_does_not_boot_in_time_is_killed_and_its_tests_skipped(tmp_path: Path) -> None:
    try:
        find_kernel()
    except GuestUnavailable as error:
        pytest.skip(str(error))
    result = run_kernel_tier(tmp_path, LVCRYPT_KERNEL_BOOT_TIMEOUT="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "did not boot within 0 s" in result.stdout
    assert "passed" not in result.stdout.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []
    leftover = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64.*{tmp_path}"], capture_output=True)
    assert leftover.returncode == 1


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
def test_initramfs_archive_is_read_back_by_cpio(tmp_path: Path) -> None:
    archive = cpio_newc([CpioEntry("bin", 0o040755), CpioEntry("bin/tool", 0o100755, b"#!/bin/sh\necho hi\n"),
                         CpioEntry("odd", 0o100644, b"x" * 5)])
    listing = subprocess.run(["cpio", "-t"], input=archive, capture_output=True, check=True).stdout.split()
    assert listing == [b"bin", b"bin/tool", b"odd"]
    subprocess.run(["cpio", "-id", "--quiet"], input=archive, cwd=tmp_path, check=True)
    assert (tmp_path / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(tmp_path / "bin/tool", os.X_OK)
    assert (tmp_path / "odd").read_bytes() == b"xxxxx"


def test_boot_modules_come_after_their_dependencies() -> None:
    try:
        kernel = find_kernel()
    except GuestUnavailable as error:
        pytest.skip(str(error))
    order = [path.name.split(".ko")[0].replace("-", "_") for path in module_load_order(kernel.modules, ["9p"])]
    assert order[-1] == "9p"
    dep_line = next(line for line in (kernel.modules / "modules.dep").read_text().splitlines()
                    if line.split(":")[0].endswith("/9p.ko"))
    for dep in dep_line.split(":")[1].split():
        assert Path(dep).name.split(".ko")[0].replace("-", "_") in order[:-1]
