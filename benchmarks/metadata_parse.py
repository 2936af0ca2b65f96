"""Parse time of a 10,000-LV volume group's metadata (about 4 MB), against json.loads.

json.loads of the same tree as JSON is the anchor: a C parser reached from
Python.  Prints both times and the ratio; the goal for lvcrypt is under 1 s.

    .venv/bin/python benchmarks/metadata_parse.py [--lvs N]
"""

from __future__ import annotations

import argparse
import json
import time

from lvcrypt.metadata.convert import tree_to_vg
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lvs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tree = big_vg(args.lvs)
    text = write_text(tree)
    as_json = json.dumps(to_plain(tree))
    parse_text("warm = 1")
    parse_s = best_of(args.runs, lambda: parse_text(text))
    json_s = best_of(args.runs, lambda: json.loads(as_json))
    parsed = parse_text(text)
    model_s = best_of(args.runs, lambda: validate(tree_to_vg(parsed)))
    print(f"metadata text: {len(text) / 1e6:.2f} MB, {args.lvs} LVs")
    print(f"lvcrypt parse:       {parse_s:.3f} s  ({len(text) / parse_s / 1e6:.1f} MB/s)")
    print(f"json.loads (anchor): {json_s:.3f} s")
    print(f"ratio parse/json:    {parse_s / json_s:.1f}x")
    print(f"model + validate:    {model_s:.3f} s")


if __name__ == "__main__":
    main()
