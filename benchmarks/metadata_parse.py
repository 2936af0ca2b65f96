"""`lvcrypt metadata check` of a 10,000-LV volume group's metadata (about 4.8 MB), against json.loads.

The row of issue 14: `metadata check FILE` as a whole process (start-up,
imports, parse, convert, validate), anchored on json.loads of the same tree
as JSON (a C parser reached from Python) measured in the same run; goal
<= 10x.  Also printed: the same anchor as a whole `python -c` process, and
where check's time goes (in process: the parse's fast path and lark's full
parser, conversion to the model, validation) and, with valgrind installed,
the instruction counts of both processes (callgrind: what the machine's
load does not move).

    .venv/bin/python benchmarks/metadata_parse.py [--lvs N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import callgrind
from lvcrypt.metadata.convert import tree_to_vg
from lvcrypt.metadata.lark_parse import parse_with_lark
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import Section, to_plain
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text


def uuid(n: int) -> str:
    digits = f"{n:032d}"
    return "-".join(digits[a:b] for a, b in ((0, 6), (6, 10), (10, 14), (14, 18), (18, 22), (22, 26), (26, 32)))


def big_vg(lv_count: int) -> Section:
    """A VG like lvm2 writes it: two PVs, half the LVs linear with two segments, half striped."""
    pe_count = lv_count * 4
    pvs = Section()
    for i in range(2):
        pvs[f"pv{i}"] = Section(id=uuid(i + 1), device=f"/dev/sd{'ab'[i]}", status=["ALLOCATABLE"], flags=[],
                                dev_size=pe_count * 8192 + 2048, pe_start=2048, pe_count=pe_count)
    lvs = Section()
    for n in range(lv_count):
        lv = Section(id=uuid(1000 + n), status=["READ", "WRITE", "VISIBLE"], flags=[], tags=["backup", f"t{n}"],
                     creation_time=1700000000 + n, creation_host="host.example.org")
        if n % 2:
            lv["segment_count"] = 1
            lv["segment1"] = Section(start_extent=0, extent_count=4, type="striped", stripe_count=2,
                                     stripe_size=128, stripes=["pv0", 4 * n, "pv1", 4 * n])
        else:
            lv["segment_count"] = 2
            lv["segment1"] = Section(start_extent=0, extent_count=2, type="striped", stripe_count=1,
                                     stripes=["pv0", 4 * n])
            lv["segment2"] = Section(start_extent=2, extent_count=2, type="striped", stripe_count=1,
                                     stripes=["pv1", 4 * n])
        lvs[f"lvol{n}"] = lv
    vg = Section(id=uuid(0), seqno=1, format="lvm2", status=["RESIZEABLE", "READ", "WRITE"], flags=[],
                 extent_size=8192, max_lv=0, max_pv=0, metadata_copies=0, physical_volumes=pvs,
                 logical_volumes=lvs)
    return Section(contents="Text Format Volume Group", version=1, description="benchmark",
                   creation_host="host.example.org", creation_time=1700000000, vg0=vg)


def best_of(runs: int, action) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def process_seconds(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall times (the user's view) and CPU times (user + system: what a loaded machine moves least) of
    `runs` whole processes, each run giving both."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def in_process_seconds(runs: int, action) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Wall and CPU times of `runs` calls, both from each call; what the call returns is kept until both
    clocks have stopped, so freeing it (a big tree: a fifth of the call) is not counted, as the
    command's process (which exits without freeing) does not pay it either."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        del result
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lvs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tree = big_vg(args.lvs)
    text = write_text(tree)
    as_json = json.dumps(to_plain(tree))
    del tree  # the anchor runs in a heap as small as a fresh process's (no big tree for the collector to walk)
    json_walls, json_cpus = in_process_seconds(args.runs, lambda: json.loads(as_json))
    with tempfile.TemporaryDirectory() as tmp:
        text_file, json_file = Path(tmp) / "vg.vg", Path(tmp) / "vg.json"
        text_file.write_text(text)
        json_file.write_text(as_json)
        check_argv = [sys.executable, "-m", "lvcrypt", "metadata", "check", "-q", str(text_file)]
        json_argv = [sys.executable, "-c", f"import json; json.load(open({str(json_file)!r}))"]
        check_walls, check_cpus = process_seconds(check_argv, args.runs)
        json_process_walls, json_process_cpus = process_seconds(json_argv, args.runs)
        env = dict(os.environ)
        counts = ((callgrind.instructions(check_argv, env), callgrind.instructions(json_argv, env))
                  if callgrind.available() else None)
    check_s, check_cpu = statistics.median(check_walls), statistics.median(check_cpus)
    json_s, json_cpu = statistics.median(json_walls), statistics.median(json_cpus)
    json_process_s, json_process_cpu = statistics.median(json_process_walls), statistics.median(json_process_cpus)
    parse_s = best_of(args.runs, lambda: parse_text(text))
    lark_s = best_of(1, lambda: parse_with_lark(text))
    parsed = parse_text(text)
    convert_s = best_of(args.runs, lambda: tree_to_vg(parsed))
    vg = tree_to_vg(parsed)
    validate_s = best_of(args.runs, lambda: validate(vg))
    print(f"metadata text: {len(text) / 1e6:.2f} MB, {args.lvs} LVs; JSON {len(as_json) / 1e6:.2f} MB")
    print(f"  lvcrypt metadata check (whole process):  {check_s:7.3f} s wall, {check_cpu:.3f} s CPU  "
          f"(median of {args.runs}; best {min(check_walls):.3f} s, {min(check_cpus):.3f} s CPU)")
    print(f"  json.loads (anchor, in process):          {json_s:7.3f} s wall, {json_cpu:.3f} s CPU  "
          f"(median; best {min(json_walls):.3f} s, {min(json_cpus):.3f} s CPU)")
    print(f"  ratio:                                    {check_s / json_s:7.1f}x wall, {check_cpu / json_cpu:.1f}x CPU  "
          f"(goal <= 10x); best to best {min(check_walls) / min(json_walls):.1f}x wall, "
          f"{min(check_cpus) / min(json_cpus):.1f}x CPU")
    print(f"  json.load as a whole python process:      {json_process_s:7.3f} s wall, {json_process_cpu:.3f} s CPU  "
          f"(check / that: {check_s / json_process_s:.1f}x wall, {check_cpu / json_process_cpu:.1f}x CPU)")
    if counts:
        print(f"  instructions (callgrind): check {counts[0] / 1e6:.0f}M, json.load process {counts[1] / 1e6:.0f}M "
              f"({counts[0] / counts[1]:.1f}x)")
    print("where check's time goes (in process, best of runs):")
    print(f"  parse (plain-layout fast path):  {parse_s:.3f} s  ({len(text) / parse_s / 1e6:.1f} MB/s)")
    print(f"  parse with lark (any layout):    {lark_s:.3f} s  (the fast path's reference)")
    print(f"  convert to the model:            {convert_s:.3f} s")
    print(f"  validate:                        {validate_s:.3f} s")


if __name__ == "__main__":
    main()
