"""The kernel test tier: tests under tests/kernel/ run in a QEMU guest with a real device-mapper.

On the host, each kernel test is collected as usual and then replaced by a
stand-in with the same node id. The first stand-in to run boots ONE guest that
runs all selected kernel tests with pytest over the shared checkout; every
stand-in then reports its test's outcome from the guest (failure text and skip
reasons included). If the guest cannot start, every kernel test is skipped with
the reason; none is ever reported passed without having passed in the guest.

In the guest ($LVCRYPT_KERNEL_GUEST=1, set by the boot) the same tests run for
real, and this file records their outcomes in the results file the host reads.
Setting LVCRYPT_KERNEL_GUEST=1 yourself runs them directly on a machine whose
own kernel has device-mapper.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import sampling
from .guest import CHECKOUT, GUEST_ENV, GUEST_XFER, Guest, GuestUnavailable
from .guest_results import (Verdict, append_record, collect_error_record, read_records,
                            report_record, start_record, verdicts)

KERNEL_DIR = Path(__file__).resolve().parent
IN_GUEST = os.environ.get(GUEST_ENV) == "1"
SELECT_ENV = "LVCRYPT_KERNEL_SELECT"
RESULTS_ENV = "LVCRYPT_KERNEL_RESULTS"
PREPARED_ENV = "LVCRYPT_KERNEL_PREPARED"
VERDICTS = pytest.StashKey[dict[str, Verdict]]()
# Marks the guest evaluates itself: the host must not skip or xfail on its own view of them.
GUEST_EVALUATED_MARKS = {"skip", "skipif", "xfail"}
BOOT_ATTEMPTS = 2


def _is_kernel_test(item: pytest.Item) -> bool:
    """Tests under tests/kernel run in the guest, except `host_side` ones, which boot guests themselves."""
    return isinstance(item, pytest.Function) and KERNEL_DIR in item.path.resolve().parents \
        and item.get_closest_marker("host_side") is None


class GuestTestFailed(Exception):
    """The guest reported this test as failed; the message is the guest's failure text."""


class GuestReportedTest(pytest.Item):
    """Host stand-in for a kernel test: no fixtures, reports the guest's outcome for it."""

    def __init__(self, *, original: pytest.Function, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original_nodeid = original.nodeid
        self._reportinfo = original.reportinfo()
        self.own_markers.extend(m for m in original.own_markers if m.name not in GUEST_EVALUATED_MARKS)
        self.keywords.update({k: v for k, v in original.keywords.items() if k not in GUEST_EVALUATED_MARKS})
        self.extra_keyword_matches.update(original.extra_keyword_matches)

    def runtest(self) -> None:
        verdict = _guest_verdicts(self.session)[self.original_nodeid]
        if verdict.outcome == "skipped":
            pytest.skip(verdict.text)
        if verdict.outcome == "xfailed":
            pytest.xfail(verdict.text)
        if verdict.outcome != "passed":
            raise GuestTestFailed(verdict.text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, GuestTestFailed):
            return f"[in the kernel guest]\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> Any:
        return self._reportinfo


def _guest_verdicts(session: pytest.Session) -> dict[str, Verdict]:
    """Run the guest once per process, for every kernel test this session selected."""
    if VERDICTS not in session.stash:
        stand_ins = [item for item in session.items if isinstance(item, GuestReportedTest)]
        prepared = CHECKOUT / "build" / f"kernel-prepared-{os.urandom(4).hex()}"
        try:
            failed = _prepare_on_host(stand_ins, prepared) if _guest_can_start() else {}
            wanted = [item.original_nodeid for item in stand_ins if item.original_nodeid not in failed]
            session.stash[VERDICTS] = {**_run_in_guest(wanted, prepared), **failed}
        finally:
            shutil.rmtree(prepared, ignore_errors=True)
    return session.stash[VERDICTS]


def _guest_can_start() -> bool:
    """The machine checks a boot makes first (QEMU, kernel, busybox, root): without them the tests
    are skipped anyway, and nothing is prepared for them."""
    try:
        with Guest():
            return True
    except GuestUnavailable:
        return False


def _prepare_on_host(stand_ins: list[GuestReportedTest], prepared: Path) -> dict[str, Verdict]:
    """Before the boot, each selected module's `prepare_on_host(directory)` (if it has one) fills
    `prepared/<module name>` with what the guest cannot make itself (an Argon2 keyslot needing more
    memory than the guest has); the guest finds it through $LVCRYPT_KERNEL_PREPARED (the checkout is
    shared).  A preparation that fails fails its module's tests, which then do not run in the guest."""
    failed: dict[str, Verdict] = {}
    modules: dict[str, tuple[pytest.Module, list[str]]] = {}
    for item in stand_ins:
        module = item.getparent(pytest.Module)
        if module is not None and hasattr(module.obj, "prepare_on_host"):
            modules.setdefault(module.nodeid, (module, []))[1].append(item.original_nodeid)
    for nodeid, (module, tests) in modules.items():
        directory = prepared / module.path.stem
        directory.mkdir(parents=True)
        try:
            module.obj.prepare_on_host(directory)
        except Exception as error:  # any failure of the preparation is that module's failure
            failed.update({test: Verdict("failed", f"prepare_on_host of {nodeid} failed on the host: {error!r}")
                           for test in tests})
    return failed


@pytest.fixture(scope="module")
def host_prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory this module's `prepare_on_host` filled on the host before the guest booted; made
    here when the tests run without a guest ($LVCRYPT_KERNEL_GUEST=1 on a machine with device-mapper)."""
    stem = Path(request.module.__file__).stem
    root = os.environ.get(PREPARED_ENV)
    if root:
        return Path(root) / stem
    directory = tmp_path_factory.mktemp(stem)
    request.module.prepare_on_host(directory)
    return directory


def _run_in_guest(wanted: list[str], prepared: Path) -> dict[str, Verdict]:
    """Verdicts from one guest run; a guest that fails to boot (a rare panic under a loaded
    TCG host) is tried once more before its tests are skipped."""
    reason = ""
    for _ in range(BOOT_ATTEMPTS):
        try:
            attempt = _guest_attempt(wanted, prepared)
        except GuestUnavailable as error:
            return {nodeid: Verdict("skipped", f"kernel guest unavailable: {error}") for nodeid in wanted}
        if isinstance(attempt, dict):
            return attempt
        reason = attempt
    return {nodeid: Verdict("skipped", reason) for nodeid in wanted}


def precompile_for_guest(files: list[str]) -> None:
    """Write, on the host, the bytecode the guest's processes would otherwise compile at every start:
    the guest runs with PYTHONDONTWRITEBYTECODE (so does this machine), and under TCG compiling is slow
    (the guest's pytest collected tests/kernel in 71-82 s without its assertion-rewritten test modules'
    .pyc files, 26 s with them). lvcrypt's own sources are compiled again where edited since
    install.sh; a collection of the same files here, with bytecode writing on, leaves pytest's
    rewritten .pyc files of the test modules and conftests and the plain ones of their helpers.
    Both only read a source's mtime where its .pyc is current. A failure here costs time, not
    results: the guest then compiles, as before."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    commands = [[sys.executable, "-m", "compileall", "-q", "lvcrypt", "metadata", "handlers"],
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only",
                 "-q", "--rootdir", str(CHECKOUT), *files]]
    for argv in commands:
        subprocess.run(argv, cwd=CHECKOUT, env=env, stdin=subprocess.DEVNULL, capture_output=True)


def _guest_attempt(wanted: list[str], prepared: Path) -> dict[str, Verdict] | str:
    """Boot once and run the wanted tests: their verdicts, or why the guest did not start."""
    env = os.environ
    files = sorted({nodeid.split("::", 1)[0] for nodeid in wanted})
    precompile_for_guest(files)
    with Guest(boot_timeout=float(env.get("LVCRYPT_KERNEL_BOOT_TIMEOUT", "180")),
               total_timeout=float(env.get("LVCRYPT_KERNEL_TIMEOUT", "1800")),
               cpus=int(env.get("LVCRYPT_KERNEL_CPUS", "1"))) as guest:
        (guest.xfer / "select.json").write_text(json.dumps(wanted))
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--durations=0",
                "--rootdir", str(CHECKOUT), *files]
        # The host's sampling seed goes in: the guest must collect the same sampled cases.
        sampled = {name: env[name] for name in (sampling.SEED_ENV, sampling.FULL_ENV) if name in env}
        result = guest.run(argv, env={SELECT_ENV: f"{GUEST_XFER}/select.json",
                                      RESULTS_ENV: f"{GUEST_XFER}/results.jsonl", PREPARED_ENV: str(prepared),
                                      **sampled})
        records = read_records(guest.xfer / "results.jsonl")
        output_file = guest.xfer / "output.log"
        output = output_file.read_text(errors="replace") if output_file.exists() else ""
    if not result.started:
        return f"the kernel guest did not start: {result.problem}\n{result.console_tail}"
    # Kept for whoever looks at where the tier's time went (the guest's own --durations list); a
    # guest that did not start (the tier's own tests make some) leaves the last run's log.
    (CHECKOUT / "build").mkdir(exist_ok=True)
    (CHECKOUT / "build" / "kernel-guest.log").write_text(output)
    output_tail = "\n".join(output.splitlines()[-30:])
    problem = result.problem or f"pytest exit status {result.status}"
    return verdicts(records, wanted, finished=result.status is not None,
                    problem=f"{problem}\n--- guest output (tail) ---\n{output_tail}\n"
                            f"--- guest console (tail) ---\n{result.console_tail}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Host: swap kernel tests for stand-ins, all in one xdist group. Guest: keep the host's selection."""
    if IN_GUEST:
        select = os.environ.get(SELECT_ENV)
        if select:
            wanted = set(json.loads(Path(select).read_text()))
            config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in wanted])
            items[:] = [i for i in items if i.nodeid in wanted]
        return
    for index, item in enumerate(items):
        if _is_kernel_test(item):
            assert isinstance(item, pytest.Function)
            stand_in = GuestReportedTest.from_parent(item.parent, name=item.name, original=item)
            stand_in.add_marker(pytest.mark.kernel)
            stand_in.add_marker(pytest.mark.xdist_group("kernel"))
            items[index] = stand_in


def _record(record: dict[str, Any]) -> None:
    results = os.environ.get(RESULTS_ENV)
    if IN_GUEST and results:
        append_record(Path(results), record)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _record(start_record(nodeid))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report_record(report))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _record(collect_error_record(report))


@pytest.fixture(scope="session", autouse=True)
def kernel_modules() -> None:
    """The guest's device-mapper, dm-crypt and loop modules, loaded (nothing auto-loads them)."""
    if not IN_GUEST:
        pytest.skip("needs the kernel guest")
    subprocess.run(["modprobe", "-a", "dm_mod", "dm_crypt", "loop"], check=True, capture_output=True)
    assert Path("/dev/mapper/control").exists()


@dataclass(frozen=True)
class LoopImage:
    """An image file and the loop device showing it."""

    path: Path
    device: str


@pytest.fixture
def loop_image(tmp_path: Path) -> Iterator[Callable[[int], LoopImage]]:
    """A factory: `loop_image(size_bytes)` -> a zero-filled image on a loop device, detached afterwards."""
    attached: list[str] = []

    def make(size: int) -> LoopImage:
        path = tmp_path / f"disk{len(attached)}.img"
        with open(path, "wb") as f:
            f.truncate(size)
        device = subprocess.run(["losetup", "-f", "--show", str(path)], capture_output=True,
                                text=True, check=True).stdout.strip()
        attached.append(device)
        return LoopImage(path, device)

    yield make
    for device in attached:
        subprocess.run(["losetup", "-d", device], capture_output=True)


@pytest.fixture
def dm_names(loop_image: Callable[[int], LoopImage]) -> Iterator[list[str]]:
    """Names of dm devices a test creates; whatever is still there afterwards is removed
    (before loop_image detaches the devices under them)."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        subprocess.run(["dmsetup", "remove", "--retry", name], capture_output=True)
