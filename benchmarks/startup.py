"""Start-up of a data command: `lvcrypt read --length 4096 VG/LV` against lvm2's `lvs` (goal <= 3.0x, aim 2.0x).

The crypt LV's keystore is LUKS2 with PBKDF2 at 1000 iterations and the key
comes from a key file, so the run is almost all start-up: interpreter, imports,
device scan, metadata, keystore unlock, one 4 KiB read.  The anchor is lvm2's
`lvs` of a one-LV VG on another loop device.  Both run as whole processes,
interleaved, on the same machine in the same run; medians of `--runs` runs.
lvcrypt runs as users run it: the `lvcrypt` console script next to this
interpreter (`python -m lvcrypt` is timed too).  Byte-code caching is left on
for the children (an installed package has its .pyc files), whatever this
shell's PYTHONDONTWRITEBYTECODE says, and one warm-up run writes them.

With valgrind installed, both commands' instruction counts (callgrind) and
their ratio follow: the one figure the machine's load does not move.  Then
where lvcrypt's time goes: interpreter start-up with and without `site`
(which runs the editable install's finder), each phase of the command timed in
one process (a phase includes the imports it makes lazily), and the modules
`python -X importtime` finds slowest.  Needs root (loop devices) and lvm2.

    .venv/bin/python benchmarks/startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import callgrind

LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}
GOAL, AIM = 3.0, 2.0
NO_BACKUPS = "backup { backup = 0 archive = 0 }"  # the throw-away VG leaves nothing in /etc/lvm

# Run in a fresh interpreter: the command's phases, timed by wrapping the functions it calls
# (installed before the modules that import them by name are loaded).
PHASES = r"""
import sys, time
clock = time.perf_counter
spent = {}
def timed(label, function):
    def wrapper(*args, **kwargs):
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + clock() - start
    return wrapper
start = clock()
import lvcrypt.cli, lvcrypt.cli.crypt
spent["import lvcrypt.cli + cli.crypt"] = clock() - start
start = clock()
from lvcrypt.store import commit
from lvcrypt import unlock
commit.scan = timed("scan (labels, mda headers, metadata text)", commit.scan)
commit.load_vg = timed("parse or parse cache, convert, validate", commit.load_vg)
unlock.unlock_lv = timed("unlock (keystore read, PBKDF2, AF merge, digest)", unlock.unlock_lv)
import lvcrypt.activation
from lvcrypt.activate import userspace
spent["import store, unlock, activation, userspace"] = clock() - start
userspace.Stack.__init__ = timed("open the stack (PV files, sector cipher)", userspace.Stack.__init__)
userspace.Stack.readinto = timed("read 4096 bytes", userspace.Stack.readinto)
import io
sys.stdout = io.TextIOWrapper(open("/dev/null", "wb"))
start = clock()
status = lvcrypt.cli.main(sys.argv[1:])
total = clock() - start
sys.stdout = sys.__stdout__
for label, seconds in spent.items():
    print(f"{label}\t{seconds}")
print(f"rest of main (argparse, locks, key file, KeyCache, sessions)\t{total - sum(v for k, v in spent.items() if not k.startswith('import'))}")
sys.exit(status)
"""


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}


def check_run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(argv, capture_output=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return result


class Runs:
    """Wall-clock and CPU (user + system) times of one command's runs."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, argv: list[str], env: dict[str, str]) -> None:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        stderr = child.stderr.read() if child.stderr else b""
        _, status, usage = os.wait4(child.pid, 0)
        self.wall.append(time.perf_counter() - start)
        self.cpu.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(argv)} failed: {stderr.decode(errors='replace')}")

    @property
    def median(self) -> float:
        return statistics.median(self.wall)


def interleaved(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, Runs]:
    """Each command's runs; the commands take turns so machine load spreads over all of them."""
    results = {name: Runs() for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            results[name].add(argv, env)
    return results


def console_script() -> str:
    script = Path(sys.executable).parent / "lvcrypt"
    if not script.exists():
        sys.exit(f"no console script at {script}: install lvcrypt into this interpreter's environment")
    return str(script)


def setup(tmp: Path, crypt_dev: str, lvm_dev: str, env: dict[str, str]) -> None:
    key = tmp / "pass"
    key.write_bytes(b"correct horse battery staple")
    lvc = [sys.executable, "-m", "lvcrypt"]
    check_run([*lvc, "pvcreate", "--devices", crypt_dev, crypt_dev], env)
    check_run([*lvc, "vgcreate", "--devices", crypt_dev, "vgstart", crypt_dev], env)
    check_run([*lvc, "lvcreate", "--devices", crypt_dev, "--encrypt", "--handler", "luks2", "--pbkdf", "pbkdf2",
               "--pbkdf-force-iterations", "1000", "--key-file", str(key), "-L", "8M", "-n", "data", "vgstart"], env)
    lvm = ["--devices", lvm_dev, "--config", NO_BACKUPS]
    check_run(["pvcreate", *lvm, lvm_dev], LVM_ENV)
    check_run(["vgcreate", *lvm, "vgref", lvm_dev], LVM_ENV)
    check_run(["lvcreate", *lvm, "--driverloaded", "n", "-an", "-Zn", "-L", "8M", "-n", "one", "vgref"], LVM_ENV)


def phases(read_args: list[str], runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median per phase over `runs` fresh processes."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        out = check_run([sys.executable, "-c", PHASES, *read_args], env).stdout.decode()
        for line in out.splitlines():
            label, seconds = line.rsplit("\t", 1)
            samples.setdefault(label, []).append(float(seconds))
    return {label: statistics.median(values) for label, values in samples.items()}


def slowest_imports(argv: list[str], env: dict[str, str], count: int) -> tuple[float, list[tuple[int, int, str]]]:
    """Total import time and the `count` modules with the most self time (`python -X importtime`)."""
    stderr = check_run([sys.executable, "-X", "importtime", *argv], env).stderr.decode()
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.strip()))
    return sum(row[0] for row in rows) / 1e6, sorted(rows, reverse=True)[:count]


def report(args: argparse.Namespace, read_args: list[str], lvm_dev: str, env: dict[str, str]) -> None:
    script = console_script()
    check_run([script, *read_args], env)  # writes the .pyc files, fills the parse cache
    lvm2_lvs = ["lvs", "--devices", lvm_dev, "--driverloaded", "n", "vgref"]
    main_times = interleaved({
        "lvm2 lvs": lvm2_lvs,
        "lvcrypt read": [script, *read_args],
        "python -m lvcrypt read": [sys.executable, "-m", "lvcrypt", *read_args],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -S -c pass": [sys.executable, "-S", "-c", "pass"],
        "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
    }, args.runs, env)
    anchor, ours = main_times["lvm2 lvs"], main_times["lvcrypt read"]
    print(f"start-up of `lvcrypt read --length 4096` (crypt LV, LUKS2, PBKDF2 1000 iterations, key file), "
          f"median of {args.runs} interleaved runs")
    print(f"  lvm2 lvs (one-LV VG):   {anchor.median * 1000:7.1f} ms")
    print(f"  lvcrypt read:           {ours.median * 1000:7.1f} ms")
    print(f"  ratio:                  {ours.median / anchor.median:7.2f}x (goal <= {GOAL}x, aim {AIM}x)")
    print(f"  fastest runs: {min(ours.wall) * 1000:.1f} ms vs {min(anchor.wall) * 1000:.1f} ms, ratio "
          f"{min(ours.wall) / min(anchor.wall):.2f}x (load only adds time; this shows the load's share)")
    print("where lvcrypt's time goes (whole processes: median wall, median CPU user+system):")
    for name, runs in main_times.items():
        print(f"  {name:44} {runs.median * 1000:7.1f} ms  cpu {statistics.median(runs.cpu) * 1000:7.1f} ms")
    if callgrind.available():
        ours_ir = callgrind.instructions([script, *read_args], env)
        anchor_ir = callgrind.instructions(lvm2_lvs, LVM_ENV)
        print(f"  instructions (callgrind): lvcrypt read {ours_ir / 1e6:.1f}M, lvm2 lvs {anchor_ir / 1e6:.1f}M, "
              f"ratio {ours_ir / anchor_ir:.2f}x")
    print(f"inside one process (medians of {args.runs}; a phase includes its lazy imports):")
    for label, seconds in phases(read_args, args.runs, env).items():
        print(f"  {label:58} {seconds * 1000:7.1f} ms")
    total, rows = slowest_imports([script, *read_args], env, args.top)
    print(f"python -X importtime: {total * 1000:.1f} ms in imports; most self time:")
    for own, cumulative, name in rows:
        print(f"  {name:44} self {own / 1000:6.1f} ms   with its imports {cumulative / 1000:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest imports to list")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root for loop devices")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = {**child_env(), "LVCRYPT_STATE_DIR": str(tmp / "state"), "LVCRYPT_RUN_DIR": str(tmp / "run")}
        devices = []
        try:
            for image in ("crypt.img", "lvm.img"):
                with open(tmp / image, "wb") as f:
                    f.truncate(64 << 20)
                devices.append(subprocess.run(["losetup", "-f", "--show", str(tmp / image)], capture_output=True,
                                              text=True, check=True).stdout.strip())
            setup(tmp, devices[0], devices[1], env)
            read_args = ["read", "--devices", devices[0], "--key-file", str(tmp / "pass"), "--length", "4096",
                         "vgstart/data"]
            report(args, read_args, devices[1], env)
        finally:
            for device in devices:
                subprocess.run(["losetup", "-d", device], capture_output=True)


if __name__ == "__main__":
    main()
