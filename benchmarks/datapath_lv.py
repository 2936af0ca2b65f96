"""`lvcrypt write` and `lvcrypt read` streams of a crypt LV, as a user runs them, against openssl.

Builds a VG on a sparse image file with lvcrypt itself and an aes-xts-plain64
crypt LV with 512-byte sectors (512-bit key, like LUKS2's default), then runs
the commands in subprocesses over pipes, the way `... | lvcrypt write VG/LV`
and `lvcrypt read VG/LV | ...` are used:
- start-up is excluded: the clock starts when the first MiB has crossed the
  pipe (process start, VG scan and unlock are behind it) and stops when the
  last byte has (read) or the process has exited (write: its final fsync is
  part of the work); that first MiB is not counted;
- the LV is written or read once before the measured passes (2nd pass: its
  blocks exist in the image, the page cache is warm); the median of the
  measured passes is shown, and their best: a CPU figure is a difference of
  two runs, so a pass whose short run's start-up happened to be slow flatters
  the best, and the median is the figure to quote;
- lvcrypt runs as a user runs it, unpinned (with an idle CPU, two threads
  cipher every other MiB each, and a third moves the pipe's bytes); the anchor is `openssl speed -evp aes-256-xts
  -bytes 512` on one CPU, measured for a second right before each pass, and
  each pass is compared with its own: this VM's speed drifts by a third
  within a minute (openssl said 2,892 and 3,947 MB/s in two runs 30 s apart,
  2026-12-03), and a pass against an anchor taken at another moment measured
  the drift, not lvcrypt; the median of the passes' ratios is the figure;
- two figures each: wall-clock MB/s (what the user waits for; the machine's
  load lowers it) and MB per CPU second of all lvcrypt's threads, the way
  openssl speed counts (user time; a loaded machine lowers it too, though
  less, by evicting lvcrypt's MiB buffers from the caches, which openssl's
  512-byte buffer does not feel).  Start-up cancels out of the CPU figure as a
  difference of two sizes (the LV against its first MiB).
Memory: peak RSS (VmHWM of lvcrypt, sampled while it streams) of a 2 GiB read against
a 256 MiB read.  With --loop the PV is a loop device over the image, as a disk
is (lvcrypt then reads it around the page cache; the image file's cache may
serve a read instead).

    .venv/bin/python benchmarks/datapath_lv.py [--size-mib 256] [--passes 5] [--loop]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).parent))
from datapath import openssl_xts_mb_s  # noqa: E402

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
MIB = 1 << 20
SECTOR = 512
GOAL, AIM = 0.30, 0.50
BIG_MIB = 2048


def lvcrypt(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "lvcrypt", *args], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_image(work: Path, size_mib: int) -> Path:
    """The sparse image the PV lives on: room for the measured LV and a 2 GiB one for the memory check."""
    image = work / "pv.img"
    with open(image, "wb") as f:
        f.truncate((size_mib + BIG_MIB + 64) * MIB)
    return image


@contextlib.contextmanager
def loop_device(image: Path) -> Iterator[str]:
    """`image` attached to a free loop device for the block's length, detached after."""
    device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


def setup(work: Path, size_mib: int, pv: str) -> dict[str, str]:
    """A VG on the PV `pv` with the measured LV and a 2 GiB one for the memory check."""
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(work / "state"), "LVCRYPT_RUN_DIR": str(work / "run")}
    (work / "pass").write_bytes(b"benchmark passphrase")
    devices = ["--devices", pv]
    lvcrypt(env, "pvcreate", *devices, pv)
    lvcrypt(env, "vgcreate", *devices, "vgb", pv)
    for name, mib in (("stream", size_mib), ("big", BIG_MIB)):
        lvcrypt(env, "lvcreate", *devices, "--encrypt", *FAST, "--sector-size", str(SECTOR), "--key-file",
                str(work / "pass"), "-L", f"{mib}M", "-n", name, "vgb")
    return env


@dataclass
class Run:
    wall_rate: float  # MB/s from the first MiB through the pipe to the end
    cpu: float  # user + system seconds of the whole process, all threads
    peak_rss: int  # KiB


class Command:
    """`lvcrypt read|write` of an LV in the work directory, as a subprocess over a pipe."""

    def __init__(self, work: Path, pv: str, env: dict[str, str], cpus: set[int]):
        self.work, self.pv, self.env, self.cpus = work, pv, env, cpus

    def start(self, verb: str, lv: str, *extra: str, **pipes: int) -> subprocess.Popen[bytes]:
        argv = ["taskset", "-c", ",".join(map(str, sorted(self.cpus))),
                sys.executable, "-m", "lvcrypt", verb, "--devices", self.pv,
                "--key-file", str(self.work / "pass"), *extra, f"vgb/{lv}"]
        return subprocess.Popen(argv, env=self.env, stderr=subprocess.PIPE, **pipes)

    def read(self, lv: str, length: int | None = None) -> Run:
        process = self.start("read", lv, *(["--length", str(length)] if length else []), stdout=subprocess.PIPE)
        assert process.stdout is not None
        buffer = memoryview(bytearray(MIB))
        first = got = peak = 0
        start = end = time.perf_counter()
        while (n := process.stdout.readinto(buffer)) > 0:
            got += n
            if not first and got >= MIB:
                first, start = got, time.perf_counter()
            if got % (64 * MIB) < n:
                peak = max(peak, _peak_rss(process.pid))
            end = time.perf_counter()
        cpu = _reap(process)
        return Run((got - first) / max(end - start, 1e-9) / 1e6, cpu, peak)

    def write(self, lv: str, data: memoryview) -> Run:
        """The clock runs from the first MiB taken by lvcrypt to its exit (the final fsync included)."""
        process = self.start("write", lv, stdin=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(data[:MIB])
        process.stdin.flush()
        start = time.perf_counter()
        process.stdin.write(data[MIB:])
        process.stdin.close()
        cpu = _reap(process)
        return Run((len(data) - MIB) / max(time.perf_counter() - start, 1e-9) / 1e6, cpu, 0)


def _peak_rss(pid: int) -> int:
    """VmHWM (KiB) of a running process plus that of its children, if any: peak RSS since exec.
    (wait4's ru_maxrss would include this benchmark's own RSS, which the child shares between fork
    and exec.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        children = [int(child) for task in os.listdir(f"/proc/{pid}/task")
                    for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except (FileNotFoundError, StopIteration):
        return 0
    return own + sum(_peak_rss(child) for child in children)


def _reap(process: subprocess.Popen[bytes]) -> float:
    """Wait for `process` alone (wait4) and return the CPU seconds it used."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        assert process.stderr is not None
        raise SystemExit(f"lvcrypt failed: {process.stderr.read().decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Passes:
    """Each measured pass: wall MB/s, CPU MB/s, and openssl's MB/s measured right before it."""

    walls: list[float]
    cpus: list[float]
    anchors: list[float]


def rates(passes: int, size: int, full: Callable[[], Run], small: Callable[[], Run],
          anchor: Callable[[], float]) -> Passes:
    """`passes` passes after one unmeasured pass, each after its own anchor.

    The CPU rate is the difference of two sizes: the whole LV against its
    first MiB, so that start-up cancels out.
    """
    full()
    measured = Passes([], [], [])
    for _ in range(passes):
        measured.anchors.append(anchor())
        big, little = full(), small()
        measured.walls.append(big.wall_rate)
        measured.cpus.append((size - MIB) / max(big.cpu - little.cpu, 1e-9) / 1e6)
    return measured


def row(name: str, measured: Passes) -> str:
    """Median MB/s, then the median and best of the passes' ratios to their anchors, wall then CPU; the
    verdict is the median ratio's."""
    def verdict(rates: list[float]) -> str:
        ratios = [rate / anchor for rate, anchor in zip(rates, measured.anchors)]
        median = statistics.median(ratios)
        return (f"{statistics.median(rates):>7.0f} {median:>6.1%} {max(ratios):>6.1%} "
                f"{'ok' if median >= GOAL else 'LOW':<4}")
    return (f"{name:<22} {verdict(measured.walls)} {verdict(measured.cpus)} "
            f"{statistics.median(measured.anchors):>9.0f}  >= {GOAL:.0%} (aim {AIM:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--passes", type=int, default=5, help="measured passes after the first (median counts)")
    parser.add_argument("--one-cpu", action="store_true",
                        help="run lvcrypt on the anchor's CPU only (then it starts no worker thread)")
    parser.add_argument("--loop", action="store_true", help="the PV is a loop device over the image (root)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    cpus = {cpu} if args.one_cpu else os.sched_getaffinity(0)
    size = args.size_mib * MIB
    data = memoryview(os.urandom(size))
    with tempfile.TemporaryDirectory(prefix="lvcrypt-bench-") as temp, contextlib.ExitStack() as attached:
        work = Path(temp)
        image = make_image(work, args.size_mib)
        pv = attached.enter_context(loop_device(image)) if args.loop else str(image)
        command = Command(work, pv, setup(work, args.size_mib, pv), cpus)
        def anchor() -> float:
            return openssl_xts_mb_s(SECTOR, 1, cpu)

        write = rates(args.passes, size, lambda: command.write("stream", data),
                      lambda: command.write("stream", data[:MIB]), anchor)
        read = rates(args.passes, size, lambda: command.read("stream"), lambda: command.read("stream", MIB), anchor)
        small_rss = max(command.read("stream").peak_rss for _ in range(2))
        big_rss = command.read("big").peak_rss
    print(f"crypt LV of {args.size_mib} MiB on {'a loop device' if args.loop else 'an image file'}, "
          f"aes-xts-plain64 512-bit key, {SECTOR}-byte sectors, 2nd pass, "
          f"start-up excluded; lvcrypt may use {len(cpus)} CPUs, openssl speed runs on "
          f"cpu {cpu}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("wall: first MiB through the pipe to the end, as the user waits; CPU: bytes per CPU second of all "
          "threads (difference of two sizes), as openssl counts")
    print("ratio: median of the passes' ratios, each to the openssl figure measured right before it")
    print(f"{'MB/s (median of passes)':<22} {'wall':>7} {'ratio':>6} {'best':>6} {'':<4} {'CPU':>7} "
          f"{'ratio':>6} {'best':>6} {'':<4} {'openssl':>9}  goal")
    print(row("lvcrypt write stream", write))
    print(row("lvcrypt read stream", read))
    growth = big_rss / small_rss - 1
    print(f"peak RSS: read of {args.size_mib} MiB {small_rss / 1024:.1f} MiB, read of {BIG_MIB} MiB "
          f"{big_rss / 1024:.1f} MiB ({growth:+.1%}; goal within 10%: {'ok' if abs(growth) <= 0.10 else 'NO'})")


if __name__ == "__main__":
    main()
