"""`lvcrypt lvs` against lvm2's `lvs` on a VG with 2,000 LVs written by lvm2.

Both run as whole processes on the same loop devices in the same run (median of
several runs each); prints both times and the ratios of issue 14's row (goal:
<= 1.0x with a warm model cache, <= 2.0x cold, i.e. with the cache emptied
before each run), with valgrind installed the instruction counts of the three
(callgrind: what the machine's load does not move), and where lvcrypt's time
goes: interpreter start-up, imports, scan, parse and the model cache.
Needs root (loop devices) and lvm2.

    .venv/bin/python benchmarks/lvs_many.py [--lvs 2000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import callgrind

LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}


def backup_with_lvs(name: str, pv_id: str, device: str, dev_size: int, pe_count: int, count: int) -> str:
    """A vgcfgbackup-style text with `count` one-extent linear LVs, for lvm2's vgcfgrestore."""
    from lvcrypt.lvops import new_uuid
    from lvcrypt.metadata.convert import vg_to_tree
    from lvcrypt.metadata.model import Area, LogicalVolume, PhysicalVolume, StripedSegment, VolumeGroup
    from lvcrypt.metadata.write import write_text

    vg = VolumeGroup(name, new_uuid(), seqno=1)
    vg.pvs["pv0"] = PhysicalVolume("pv0", pv_id, device, ["ALLOCATABLE"], [], [], dev_size, 2048, pe_count)
    for index in range(count):
        vg.lvs[f"lv{index}"] = LogicalVolume(f"lv{index}", new_uuid(), ["READ", "WRITE", "VISIBLE"], [], [],
                                             1700000000, "bench", [StripedSegment(0, 1, "striped", stripes=[
                                                 Area("pv0", index)])])
    return write_text(vg_to_tree(vg))


def timed(argv: list[str], runs: int, env: dict[str, str], before: Callable[[], None] = lambda: None
          ) -> tuple[float, float, str]:
    """Median wall time, median CPU time (user + system: what a loaded machine moves least), last output."""
    times = []
    cpus = []
    output = ""
    for _ in range(runs):
        before()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime)
        if result.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {result.stderr}")
        output = result.stdout
    return statistics.median(times), statistics.median(cpus), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lvs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root for loop devices")
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "pv.img"
        with open(image, "wb") as f:
            f.truncate((args.lvs * 4 + 64) << 20)
        device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                                check=True).stdout.strip()
        try:
            run_benchmark(device, Path(tmp), args)
        finally:
            subprocess.run(["losetup", "-d", device], capture_output=True)


def run_benchmark(device: str, tmp: Path, args: argparse.Namespace) -> None:
    lvm = ["--devices", device]
    subprocess.run(["pvcreate", *lvm, "--metadatasize", "16m", device], env=LVM_ENV, capture_output=True, check=True)
    subprocess.run(["vgcreate", *lvm, "vgbench", device], env=LVM_ENV, capture_output=True, check=True)
    info = subprocess.run(["pvs", *lvm, "--noheadings", "--units", "s", "--nosuffix", "-o",
                           "pv_uuid,dev_size,pv_pe_count", device], env=LVM_ENV, capture_output=True, text=True,
                          check=True).stdout.split()
    backup = tmp / "vgbench.vg"
    backup.write_text(backup_with_lvs("vgbench", info[0], device, int(info[1]), int(info[2]), args.lvs))
    subprocess.run(["vgcfgrestore", *lvm, "-f", str(backup), "vgbench"], env=LVM_ENV, capture_output=True,
                   check=True)
    # Byte-code caching on, as for an installed package, whatever this shell's PYTHONDONTWRITEBYTECODE says.
    env = {**{key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"},
           "LVCRYPT_STATE_DIR": str(tmp / "state"), "LVCRYPT_RUN_DIR": str(tmp / "run")}

    lvm_time, lvm_cpu, lvm_out = timed(["lvs", *lvm, "vgbench"], args.runs, LVM_ENV)
    ours_argv = [sys.executable, "-m", "lvcrypt", "lvs", *lvm, "vgbench"]
    cold_time, cold_cpu, _ = timed(ours_argv, args.runs, env, lambda: shutil.rmtree(tmp / "run" / "cache", ignore_errors=True))
    ours_time, ours_cpu, ours_out = timed(ours_argv, args.runs, env)
    lines_lvm = len(lvm_out.splitlines())
    lines_ours = len(ours_out.splitlines())
    if lines_lvm != lines_ours or lines_ours != args.lvs + 1:
        sys.exit(f"outputs differ: lvm2 printed {lines_lvm} lines, lvcrypt {lines_ours}")

    startup, _, _ = timed([sys.executable, "-c", "pass"], args.runs, env)
    imports, _, _ = timed([sys.executable, "-c", "import lvcrypt.cli.report, lvcrypt.store.commit, lvcrypt.store.cache"],
                       args.runs, env)
    from lvcrypt.store import cache
    from lvcrypt.store.commit import parse_vg, scan

    start = time.perf_counter()
    found = scan([device])
    scanned = time.perf_counter() - start
    copy = found.copies("vgbench")[0][1]
    start = time.perf_counter()
    parse_vg(copy.text, "bench")
    parsed = time.perf_counter() - start
    os.environ["LVCRYPT_RUN_DIR"] = env["LVCRYPT_RUN_DIR"]
    parse_vg(copy.text, "bench", copy.vg_id)  # stores the entry whole: lvs kept only the VG's head
    start = time.perf_counter()
    hit = cache.lookup_head(copy.vg_id, copy.text)
    if hit is None:
        sys.exit("the model cache missed after lvcrypt lvs ran")
    cached = time.perf_counter() - start
    start = time.perf_counter()
    if hit[1]() is None:
        sys.exit("the model cache kept no whole model")
    whole = time.perf_counter() - start

    print(f"VG with {args.lvs} LVs written by lvm2 (vgcfgrestore), median of {args.runs} runs")
    print(f"  lvm2 lvs:     {lvm_time * 1000:8.1f} ms ({lvm_cpu * 1000:.1f} ms CPU)")
    print(f"  lvcrypt lvs:  {ours_time * 1000:8.1f} ms warm (model cache hit), "
          f"{cold_time * 1000:.1f} ms cold (no cache); CPU {ours_cpu * 1000:.1f} ms warm, {cold_cpu * 1000:.1f} ms cold")
    print(f"  ratio:        {ours_time / lvm_time:8.2f}x warm, {cold_time / lvm_time:.2f}x cold "
          "(goal <= 1.0x warm, <= 2.0x cold)")
    print(f"  CPU ratio:    {ours_cpu / lvm_cpu:8.2f}x warm, {cold_cpu / lvm_cpu:.2f}x cold")
    if callgrind.available():
        shutil.rmtree(tmp / "run" / "cache", ignore_errors=True)
        cold_ir = callgrind.instructions(ours_argv, env)
        warm_ir = callgrind.instructions(ours_argv, env)
        lvm_ir = callgrind.instructions(["lvs", *lvm, "vgbench"], LVM_ENV)
        print(f"  instructions: lvm2 {lvm_ir / 1e6:.0f}M, lvcrypt {warm_ir / 1e6:.0f}M warm, {cold_ir / 1e6:.0f}M cold; "
              f"ratio {warm_ir / lvm_ir:.2f}x warm, {cold_ir / lvm_ir:.2f}x cold")
    print("where lvcrypt's time goes:")
    print(f"  python start-up:                       {startup * 1000:7.1f} ms")
    print(f"  imports of the lvs path (with start-up): {imports * 1000:7.1f} ms")
    print(f"  scan (labels, mda headers, text, CRC): {scanned * 1000:7.1f} ms")
    print(f"  parse + convert + validate (cache miss): {parsed * 1000:7.1f} ms")
    print(f"  model cache hit (entry read, text hashed, the VG's head unpickled): {cached * 1000:7.1f} ms")
    print(f"  the whole model unpickled (not by a warm plain lvs): {whole * 1000:7.1f} ms")

if __name__ == "__main__":
    main()
