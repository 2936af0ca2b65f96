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
  blocks exist in the image, the page cache is warm), and the best of the
  measured passes counts;
- lvcrypt runs as a user runs it, on every CPU the process may use (it uses a
  second one for large streams); the anchor is `openssl speed -evp
  aes-256-xts -bytes 512` on one CPU, in the same run.  A second figure runs
  lvcrypt pinned to that one CPU, for the like-for-like comparison.
Memory: peak RSS (VmHWM, sampled while it streams) of a 2 GiB read against a 256 MiB read.

    .venv/bin/python benchmarks/datapath_lv.py [--size-mib 256] [--passes 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

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


def setup(work: Path, size_mib: int) -> dict[str, str]:
    """A VG on one sparse image with the measured LV and a 2 GiB one for the memory check."""
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(work / "state"), "LVCRYPT_RUN_DIR": str(work / "run")}
    image = work / "pv.img"
    with open(image, "wb") as f:
        f.truncate((size_mib + BIG_MIB + 64) * MIB)
    (work / "pass").write_bytes(b"benchmark passphrase")
    devices = ["--devices", str(image)]
    lvcrypt(env, "pvcreate", *devices, str(image))
    lvcrypt(env, "vgcreate", *devices, "vgb", str(image))
    for name, mib in (("stream", size_mib), ("big", BIG_MIB)):
        lvcrypt(env, "lvcreate", *devices, "--encrypt", *FAST, "--sector-size", str(SECTOR), "--key-file",
                str(work / "pass"), "-L", f"{mib}M", "-n", name, "vgb")
    return env


class Command:
    """One `lvcrypt read|write` of an LV in the work directory, optionally pinned to one CPU."""

    def __init__(self, work: Path, env: dict[str, str], cpu: int | None):
        self.work, self.env = work, env
        self.prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []

    def start(self, verb: str, lv: str, **pipes: int) -> subprocess.Popen[bytes]:
        argv = [*self.prefix, sys.executable, "-m", "lvcrypt", verb, "--devices", str(self.work / "pv.img"),
                "--key-file", str(self.work / "pass"), f"vgb/{lv}"]
        return subprocess.Popen(argv, env=self.env, stderr=subprocess.PIPE, **pipes)

    def read(self, lv: str) -> tuple[float, int]:
        """(MB/s from the first MiB received to the last byte, peak RSS in KiB)."""
        process = self.start("read", lv, stdout=subprocess.PIPE)
        assert process.stdout is not None
        buffer = memoryview(bytearray(MIB))
        first = got = peak = 0
        start = 0.0
        while (n := process.stdout.readinto(buffer)) > 0:
            got += n
            if not first and got >= MIB:
                first, start = got, time.perf_counter()
            if got % (64 * MIB) < n:
                peak = max(peak, _peak_rss(process.pid))
        end = time.perf_counter()
        _reap(process)
        return (got - first) / (end - start) / 1e6, peak

    def write(self, lv: str, data: memoryview) -> float:
        """MB/s from the first MiB taken by lvcrypt to its exit (the final fsync included)."""
        process = self.start("write", lv, stdin=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(data[:MIB])
        process.stdin.flush()
        start = time.perf_counter()
        process.stdin.write(data[MIB:])
        process.stdin.close()
        _reap(process)
        return (len(data) - MIB) / (time.perf_counter() - start) / 1e6


def _peak_rss(pid: int) -> int:
    """VmHWM (KiB) of a running process: its peak RSS since exec.  (wait4's ru_maxrss would
    include this benchmark's own RSS, which the child shares between fork and exec.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (FileNotFoundError, StopIteration):
        return 0


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.wait():
        assert process.stderr is not None
        raise SystemExit(f"lvcrypt failed: {process.stderr.read().decode(errors='replace')}")


def best(passes: int, measure: Callable[[], float]) -> float:
    """Best of `passes` after one unmeasured pass (the 2nd pass onwards counts)."""
    measure()
    return max(measure() for _ in range(passes))


def row(name: str, rate: float, one_cpu: float, anchor: float) -> str:
    verdict = "ok" if rate >= GOAL * anchor else "BELOW GOAL"
    return (f"{name:<22} {rate:>9.0f} {anchor:>9.0f} {rate / anchor:>6.1%}  >= {GOAL:.0%} (aim {AIM:.0%})  "
            f"{verdict:<10} | one CPU {one_cpu:>5.0f} MB/s {one_cpu / anchor:>6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--passes", type=int, default=2, help="measured passes after the first (best counts)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    data = memoryview(os.urandom(args.size_mib * MIB))
    with tempfile.TemporaryDirectory(prefix="lvcrypt-bench-") as temp:
        work = Path(temp)
        env = setup(work, args.size_mib)
        free, pinned = Command(work, env, None), Command(work, env, cpu)
        anchor = openssl_xts_mb_s(SECTOR, 2, cpu)
        write = best(args.passes, lambda: free.write("stream", data))
        write_one = best(args.passes, lambda: pinned.write("stream", data))
        read = best(args.passes, lambda: free.read("stream")[0])
        read_one = best(args.passes, lambda: pinned.read("stream")[0])
        anchor = max(anchor, openssl_xts_mb_s(SECTOR, 2, cpu))
        small_rss = max(free.read("stream")[1] for _ in range(2))
        big_rss = free.read("big")[1]
    print(f"crypt LV of {args.size_mib} MiB, aes-xts-plain64 512-bit key, {SECTOR}-byte sectors, 2nd pass, "
          f"start-up excluded; lvcrypt on {len(os.sched_getaffinity(0))} CPUs, openssl speed on cpu {cpu} "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print(f"{'MB/s':<22} {'lvcrypt':>9} {'openssl':>9} {'ratio':>6}  goal")
    print(row("lvcrypt write stream", write, write_one, anchor))
    print(row("lvcrypt read stream", read, read_one, anchor))
    growth = big_rss / small_rss - 1
    print(f"peak RSS: read of {args.size_mib} MiB {small_rss / 1024:.1f} MiB, read of {BIG_MIB} MiB "
          f"{big_rss / 1024:.1f} MiB ({growth:+.1%}; goal within 10%: {'ok' if abs(growth) <= 0.10 else 'NO'})")


if __name__ == "__main__":
    main()
