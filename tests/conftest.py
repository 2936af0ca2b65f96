"""Shared fixtures: image files, loop devices and the lvm2 oracle.

Everything a test attaches is detached again, also when the test fails: CI and
later sessions share the machine's loop devices and kernel keyrings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sampling
from kernel.guest import opens_with_o_direct

ROOT = Path(__file__).resolve().parent.parent
LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}


def run_lvcrypt(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """`lvcrypt ARGS` as a user runs it: a separate process, real exit status."""
    result = subprocess.run([sys.executable, "-m", "lvcrypt", *args], input=input,
                            capture_output=True, env=env, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"lvcrypt {' '.join(args)} failed ({result.returncode}): "
                             f"{result.stderr.decode(errors='replace')}")
    return result


def lvm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an lvm2 command quietly; `check` raises with lvm2's own message."""
    result = subprocess.run(list(args), capture_output=True, text=True, env=LVM_ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def _takes_o_direct(directory: Path) -> bool:
    probe = directory / ".o_direct"
    probe.touch()
    try:
        return opens_with_o_direct(probe)
    finally:
        probe.unlink()


@pytest.fixture
def disk_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory on a file system that takes O_DIRECT, for the paths that write around the page
    cache: tests/run.sh puts tmp_path on tmpfs, which refuses O_DIRECT (those paths then fall back to the
    page cache and would go untested).  The same directory as tmp_path where that one takes O_DIRECT."""
    if _takes_o_direct(tmp_path):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="lvcrypt-disk-", dir="/var/tmp"))
    try:
        if not _takes_o_direct(directory):
            pytest.skip("no file system here takes O_DIRECT (tmp_path and /var/tmp refuse it)")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _can_losetup() -> str | None:
    if os.geteuid() != 0:
        return "loop devices need root"
    if shutil.which("losetup") is None:
        return "losetup is not installed"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control on this machine"
    return None


@pytest.fixture
def loop_devices(tmp_path: Path) -> Iterator[Callable[..., list[str]]]:
    """A factory: `loop_devices(n, size_mib)` -> paths of n fresh loop devices backed by image files."""
    reason = _can_losetup()
    if reason:
        pytest.skip(reason)
    attached: list[str] = []

    def make(count: int, size_mib: int = 64) -> list[str]:
        devices = []
        for _ in range(count):
            image = tmp_path / f"pv{len(attached)}.img"
            with open(image, "wb") as f:
                f.truncate(size_mib << 20)
            device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                    text=True, check=True).stdout.strip()
            attached.append(device)
            devices.append(device)
        return devices

    yield make
    for device in attached:
        subprocess.run(["losetup", "-d", device], capture_output=True)


@pytest.fixture
def lvm2() -> None:
    """Skip where the lvm2 oracle is missing (README's install puts it there)."""
    if shutil.which("lvm") is None:
        pytest.skip("lvm2 is not installed (bash install.sh installs it)")


@pytest.fixture
def made() -> Iterator[list[int]]:
    """A session keyring of the test's own (inherited by the commands it runs); every serial the test
    appends, and the keyring itself, is invalidated afterwards."""
    from lvcrypt import keyring

    try:
        serials = [keyring.join_session_keyring()]
    except Exception as error:  # noqa: BLE001 - a machine without keyrings skips, it does not fail
        pytest.skip(f"no kernel keyring here: {error}")
    yield serials
    for serial in reversed(serials):
        try:
            keyring.invalidate(serial)
        except Exception:  # noqa: BLE001 - already gone
            pass


# Tests that must share one xdist worker, by path: the kernel tier boots ONE guest for all its tests
# (each worker that runs one of them boots its own, for all of them), the lvmlockd stand-ins share a
# daemon. The files also carry `xdist_group` marks, but pytest 9.2 stores node ids where xdist 3.8's
# loadgroup no longer finds them (it sets `item._nodeid`), so the marks alone group nothing: the tier
# ran twice, once per worker. The scheduler below groups by these paths whatever xdist does.
# The two-guest lvmlockd test boots its own pair of guests: a group of its own runs it on the other
# worker while the one-guest tier runs (much of its time is waiting on sanlock's leases), instead of
# after it on the same worker. First match wins: the specific path before its directory.
XDIST_GROUPS = {"tests/kernel/test_two_guests_lvmlockd.py": "two-guests", "tests/kernel/": "kernel",
                "tests/compat/test_lvmlockd_requests.py": "lvmlockd"}
GUEST_GROUPS = ("kernel", "two-guests")  # scheduled first, one per worker


def xdist_group_of(nodeid: str) -> str | None:
    """The group a test id belongs to by its path (XDIST_GROUPS), None for a test of its own."""
    return next((group for prefix, group in XDIST_GROUPS.items() if nodeid.startswith(prefix)), None)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadgroup` with the path groups above; the biggest group (the kernel tier) goes first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or super()._split_scope(nodeid)

    return PathGroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the guests' groups first, then `slow` tests (each in their order): the scheduler
    hands the groups out in that order, one to each worker, so the two guest runs overlap; the workers
    then end on short tests instead of one finishing a minutes-long crash test alone."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: (xdist_group_of(item.nodeid) not in GUEST_GROUPS,
                                     item.get_closest_marker("slow") is None))


def pytest_configure(config: pytest.Config) -> None:
    """Choose this run's sampling seed before xdist starts its workers, which inherit it (they must
    collect the same sampled cases)."""
    sampling.seed()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed sampled test says how to rerun the same sample."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.get_closest_marker("sampled") is not None:
        report.sections.append(("sampling", sampling.describe()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(sampling.describe())
