"""issue 15 (Reports): lvm2's report options give lvm2's bytes, over a matrix of command lines.

Two kinds of VG, both written by lvm2 itself: `tg`, made here with lvcreate (linear, striped,
an LV of two segments, LV, VG and PV tags), and every fixture of tests/data/lvm2_types
(thin, snapshot, raid, mirror, cache, integrity, history, mixed) restored with vgcfgrestore.
Each command line runs under lvm2 and under lvcrypt with the same `--devices`: standard output
and exit status must be byte-equal.  lvm2 runs as a process; lvcrypt runs in this process
(its CLI entry point, with stdout captured) so the few hundred lines stay fast.

The lines cover `-S` (every operator, regexes, lists and subsets, sizes with units, && || !
and parentheses, field aliases), `-O` (ascending, descending, several keys), `--units` with
every letter, `--nosuffix`, `--nameprefixes`, `--unquoted`, `--rows`, `--aligned`,
`--separator`, `--segments`, `-o +f`/`-o -f` and the tag fields, reports joining objects
(`pvs -o +lv_name,vg_free`, `vgs -o all,pv_free`...), and objects named that are missing.
Nothing here is a crypt field, so no difference is expected anywhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import LVM_ENV
from lvcrypt.report_all import LV_ALL, PV_ALL, VG_ALL
from lvcrypt.report_segments import SEG_ALL
from sampling import cover
from test_lvm2_types_matrix import FIXTURES, Fixture, detach, templates  # noqa: F401

pytestmark = pytest.mark.slow  # builds one VG with lvm2 and restores the lvm2_types fixtures
FIXTURES_PER_LINE = 3  # of the ten lvm2_types fixtures, per run (tests/sampling.py; LVCRYPT_TEST_FULL=1: all)

UNITS = list("rRhHbBsSkKmMgGtTpPeE")
LV_AND_SEGMENT_ALL = [name for name in dict.fromkeys(LV_ALL + SEG_ALL) if name != "vg_name"]
SELECTIONS = [
    "lv_size>8m", "lv_size>=8m", "lv_size<8m", "lv_size<=8m", "lv_size=8m", "lv_size!=8m", "lv_size>8",
    "lv_size>8M", "lv_size>16384s", "lv_size>0.01g", "lv_size=8.0m", "lv_size = 8m", "size>=12",
    "lv_name=lin", "name=lin", "LV_NAME=lin", "lv_name!=lin", 'lv_name="lin"', "lv_name='big'",
    "lv_name=~^s", "lv_name!~l", "lv_name=~(s|b)", "lv_name=~[ig]", "attr=~^-w", "lv_attr=~X",
    "lv_tags=db", "tags=db", "lv_tags=[db]", "lv_tags={db}", "lv_tags=[db,prod]", "lv_tags={prod,db}",
    "lv_tags=[db||web]", "lv_tags={db||web}", 'lv_tags=""', "lv_tags=[]", "lv_tags!=db", "lv_tags!=[db]",
    "vg_tags=vgtag", "vg_tags={other.tag}", "seg_count=2", "seg_count>1", "stripes=2", "segtype=striped",
    "seg_size>4m", "seg_start>0", "seg_start_pe=0", "stripe_size>0",
    "lv_size<16m && !(lv_name=lin)", "lv_name=lin,lv_name=big", "lv_name=lin#lv_name=big",
    "lv_name=lin || lv_name=big", "(lv_name=lin || lv_name=big) && lv_tags=db", "vg_name=tg",
    "pool_lv=\"\"", "origin=\"\"", "data_percent>=0", "!(data_percent>=0)", "lv_size>8 || lv_tags={web}",
    "all", "", "uuid=~.", "lv_full_name=tg/lin", "lv_path=/dev/tg/big",
    # refused: exit 5 and nothing on stdout, as lvm2
    "lv_size>8x", "nosuch=1", "lv_tags=~db", "devices=~loop", "seg_count=2m", "lv_name<a", "(lv_name=lin",
    "lv_name=lin)", "!lv_name=lin",
]
# Time selections (issue 15): lvm2's formatted dates and times (ranges when coarser than a second,
# zones, compact forms), @epoch, its words (today, weekdays, months, `N units ago`, AM/PM, noon),
# the time operators, and its quirks (`!=` on a range is `=`, a clock at the end of a quoted value
# reads on past the quote).  `tg` was made a moment ago, the fixtures on 2026-12-01 near 22:08 UTC.
TIME_SELECTIONS = [
    "lv_time>@1796162930", "lv_time<=@1796162930", "lv_time=@0", "time since 2026",
    "lv_time since 2026-12-01", "lv_time after 2026-12-01", "lv_time before 2026-12-02",
    "lv_time=2026-12", "lv_time>2025-12-30", "lv_time=202612", "lv_time!=2026-12-02",
    'lv_time="2026-12-02 10"', 'lv_time<"2026-12-02 1000"', 'lv_time>="2026-12-02 08:00:00"',
    'lv_time<="2026-12-02 23:59 +14:00"', 'lv_time>"2026-12-01 23:00 -02"', "lv_time since today",
    "lv_time=yesterday", 'lv_time since "1 day ago"', 'lv_time since "3 hours ago"',
    'lv_time before "30 min ago"', 'lv_time until "1 month ago"', "lv_time=Dec",
    'lv_time="Dec 2026"', 'lv_time="2 Dec 2026"', 'lv_time>"Nov 30"', "lv_time=Wednesdays",
    'lv_time since "yesterday 10 PM"', 'lv_time before "noon today"',
    'lv_time since "yesterday 20:00"', 'lv_time since "yesterday 20:00" && lv_name=~i', "lv_time_removed=@0",
    "lv_time_removed<@1 && lv_time>@1",
    # refused: exit 5, as lvm2 (the last one: a clock ends the quoted value and a parenthesis follows)
    "lv_time>2026-13-01", "lv_time>2026-02-30", "lv_time>12:00", "lv_time>@x",
    "lv_time=~2026", "lv_name since 2026", "lv_time=\"\"", 'lv_time="3 hours ago today"',
    '(lv_time since "yesterday 20:00")',
]
# Not string lists (tags, devices) nor percentages: lvm2 2.03.16 compares those sort keys with
# strcmp() over its internal value structures, so their order depends on lvm2's memory layout.
SORTS = ["lv_size", "-lv_size", "-size,name", "lv_full_name,-lv_name", "seg_count,lv_name", "-seg_count",
         "vg_name,-lv_size", "lv_attr", "-stripes,lv_name", "lv_name", "-lv_name"]
# --units with a number (lvm2's dm_units_to_factor): a custom unit printed U, a fraction that keeps
# its letter (1.5k), a number ignored before human units, exponents; refused: exit 3, nothing printed.
CUSTOM_UNITS = [["--units", unit] for unit in ("3m", "3M", "1.5k", "2.5m", "0.5g", "10b", "7s", "3h", "1e3m",
                                               "2.7R", "0x10m", "2x", "3mm", "0m", "0.5h", "0.1")]
CUSTOM_UNITS += [["--units", "3m", "--nosuffix"], ["--units", "1.5k", "--nosuffix"],
                 ["--units", "3m", "--reportformat", "json"], ["--units", "3m", "-S", "lv_size>9"]]
LAYOUTS = [
    ["--nosuffix", "--units", "b"], ["--nosuffix", "--units", "s"], ["--nosuffix", "--units", "k"],
    ["--nosuffix"], ["--nameprefixes"], ["--nameprefixes", "--unquoted"], ["--nameprefixes", "--noheadings"],
    ["--unquoted"], ["--nameprefixes", "--separator", ":"], ["--nameprefixes", "--rows"], ["--rows"],
    ["--rows", "--noheadings"], ["--rows", "--separator", ":"], ["--rows", "--aligned"],
    ["--separator", ":", "--aligned"], ["--separator", ":", "--aligned", "--noheadings"],
    ["--separator", ",", "--unquoted"], ["--binary"], ["--segments"], ["--segments", "-o", "+devices"],
    ["--segments", "--units", "k", "-O", "-seg_size"], ["-o", "+lv_tags"], ["-o", "-lv_attr"],
    ["-o", "lv_name,lv_tags", "-o", "+vg_tags"], ["-o", "lv_name,size,tags", "-o", "-size"],
    ["-o", "name,attr,size,seg_count,devices"], ["--reportformat", "json", "-S", "lv_name=none"],
    ["-S", "lv_name=none"], ["--separator", ":", "-S", "lv_name=none"],
]
VG_LINES = [["vgs", "-o", "+vg_tags"], ["vgs", "-o", "name,tags,size"], ["vgs", "-S", "vg_tags=vgtag"],
            ["vgs", "-S", "tags={other.tag,vgtag}"], ["vgs", "-S", "vg_free>100m"], ["vgs", "-S", "pv_count=3"],
            ["vgs", "--nameprefixes", "--unquoted"], ["vgs", "--rows"], ["vgs", "-O", "-vg_free"],
            ["pvs", "-o", "+pv_tags"], ["pvs", "-S", "pv_tags=fast"], ["pvs", "-S", "pv_tags=[]"],
            ["pvs", "-S", "pv_free<60m"], ["pvs", "-O", "pv_free,-pv_name"], ["pvs", "-O", "-pv_name"],
            ["pvs", "--nameprefixes"], ["pvs", "--rows", "--units", "k", "--nosuffix"],
            ["pvs", "-S", "pv_size=60m && pv_tags!=slow", "-o", "pv_name,pv_tags"],
            ["lvs", "-a", "-o", "all"], ["lvs", "-a", "-o", "all", "--reportformat", "json"],
    ["lvs", "-a", "-S", "lv_layout={thin} || lv_layout=[raid,raid1]", "-o", "lv_name,lv_layout"],
    ["lvs", "-a", "-S", "lv_parent!=\"\" && lv_read_ahead=auto", "-o", "lv_name,lv_parent"],
    ["lvs", "-a", "-S", "lv_skip_activation=1 || lv_merging=1", "-o", "lv_name"],
    # linked LVs select and sort by bare name; lvm2 keeps one "not" flag, so !(!(x)) is !(x)
    ["lvs", "-a", "-S", "data_lv=pool_tdata || origin=cached_corig || mirror_log=mdisk_mlog || pool_lv=cpool_cpool",
     "-o", "lv_name"],
    ["lvs", "-a", "-S", "!(!(lv_size>1m)) || !(!(!(seg_count=1)))", "-o", "lv_name"],
    ["lvs", "-a", "-O", "data_lv,-origin,lv_parent,lv_name", "-o", "lv_name,data_lv,origin,lv_parent"],
    # lvm2's reserved values: undefined numbers, `auto`, binary fields' and named fields' words
    ["lvs", "-a", "-S", "lv_major=-1 && raid_mismatch_count=undefined && lv_suspended=unknown", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_major>5 || lv_major<5 || lv_read_ahead>1 || lv_read_ahead<1", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_read_ahead=auto", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_skip_activation=skip || lv_when_full=queue || lv_merging=merging", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_when_full=undefined", "-o", "lv_name"],
    ["lvs", "-a", "-O", "lv_read_ahead,-raidintegrityblocksize,lv_name", "-o", "lv_name,lv_read_ahead"],
    ["lvs", "-a", "-O", "-writecache_block_size,-lv_metadata_size,origin_size", "-o", "lv_name"], ["vgs", "-o", "all"], ["pvs", "-o", "all"], ["pvs", "-o", "all", "--rows"],
            ["vgs", "-o", "all", "--nameprefixes"], ["lvs", "-a", "-o", "all", "--binary"],
            ["pvs", "--binary", "-o", "pv_name,pv_allocatable,pv_exported,pv_in_use"],
            ["vgs", "--binary", "-o", "vg_name,vg_extendable,vg_partial,vg_autoactivation"],
            ["lvs", "-S", "lv_autoactivation=1", "-o", "lv_name"], ["lvs", "-S", "lv_merging=0", "-o", "lv_name"],
            ["lvs", "-S", "lv_autoactivation=enabled", "-o", "lv_name"], ["lvs", "-O", "-lv_merging,lv_name"], ["lvs", "-o", "+lv_layout,lv_dm_path", "-S", "lv_layout=striped"]]
# `pvs --segments` and the pvseg_* fields: LV areas and free runs in extent order, a PV of no VG as
# one empty segment; -o +f, -S and -O on them, the JSON report's `pvseg` key.
PVSEG_LINES = [["pvs", "--segments"], ["pvs", "--segments", "-o", "+pvseg_start,pvseg_size,pv_tags"],
               ["pvs", "-o", "pv_name,pvseg_start,pvseg_size"], ["pvs", "--segments", "-o", "all"],
               ["pvs", "--segments", "-S", "pvseg_size>2 && pv_tags=fast"],
               ["pvs", "-S", "pvseg_start=0", "-o", "pv_name"],
               ["pvs", "--segments", "-O", "-pvseg_size,pv_name"], ["pvs", "--segments", "--units", "k", "--rows"],
               ["pvs", "--segments", "--reportformat", "json", "-S", "pvseg_start>=4"],
               ["pvs", "--segments", "--nameprefixes", "-o", "pv_name,pvseg_size", "-S", "pvseg_size<5"]]
# Reports that join objects (lvm2's _get_final_report_type): pvs with LV or segment fields has a row
# per PV segment (free runs as lvm2's `free` segment of no LV), vgs with LV fields one per LV (per LV
# segment with segment fields), with PV fields one per PV; lvs with PV fields and vgs with both fail.
JOINED_LINES = [["pvs", "-o", "+lv_name"], ["pvs", "--segments", "-o", "+lv_name,seg_size"],
                ["pvs", "-o", "+lv_name,lv_size,segtype,seg_start,seg_size,devices,seg_pe_ranges,stripe_size"],
                ["pvs", "-o", "pv_name,lv_name,lv_full_name,lv_path,seg_count,stripes,seg_start_pe,pvseg_start",
                 "--nameprefixes"],
                ["pvs", "-o", "pv_name,lv_name,lv_tags", "-S", "lv_tags=db", "-O", "-lv_name"],
                ["pvs", "-o", "+lv_name", "--reportformat", "json"],
                ["vgs", "-o", "+lv_name"], ["vgs", "-o", "vg_name,lv_name,seg_size", "-O", "-seg_size"],
                ["vgs", "-o", "+pv_name,pv_free"], ["vgs", "-o", "vg_name,lv_name,pv_name"],
                ["pvs", "-o", "pv_name,lv_name", "-S", "seg_size>10m", "-O", "lv_size,pv_name"],
                ["vgs", "-o", "vg_name,pv_name,seg_size"],
                ["lvs", "-o", "lv_name,pv_name"], ["lvs", "--segments", "-o", "+pv_name"],
                # VG fields in pvs (a PV of no VG reads lvm2's orphan VG: r-----, 0, unknown, unmanaged)
                ["pvs", "-o", "+vg_free"], ["pvs", "-o", "pv_name,vg_name,vg_size", "-S", "vg_free>10m"],
                ["pvs", "--rows", "-o", "pv_name," + ",".join(VG_ALL)], ["pvs", "-S", "vg_attr=r-----"],
                ["pvs", "-O", "-vg_mda_free,pv_name", "-o", "+vg_mda_free,vg_tags", "--reportformat", "json"],
                # -o all's LV and segment fields on pvs rows (lvm2's values on free runs) and in vgs rows
                ["pvs", "-o", "pv_name," + ",".join(LV_AND_SEGMENT_ALL)],
                ["pvs", "--segments", "--reportformat", "json", "-o", "pv_name," + ",".join(LV_AND_SEGMENT_ALL)],
                ["pvs", "-o", "pv_name,lv_name,lv_layout,lv_dm_path", "-S", "lv_layout=unknown || lv_major=-1"],
                ["vgs", "-o", "vg_name," + ",".join(LV_AND_SEGMENT_ALL)], ["vgs", "-o", "+lv_layout", "-O", "-lv_time"],
                # PV fields beyond the common ones and pvseg_* in vgs (a row per PV segment)
                ["vgs", "-o", "+" + ",".join(PV_ALL)], ["vgs", "-o", "+pvseg_start"],
                ["vgs", "-o", "vg_name,pv_name,pvseg_start,pvseg_size", "-O", "-pvseg_size,pv_name"],
                ["vgs", "-S", "pvseg_start=0"], ["vgs", "-o", "vg_name,lv_name,pvseg_start"],
                # lvs naming a PV field anywhere: lvm2's refusal (exit 5), not an unknown field (exit 3)
                ["lvs", "-S", "pv_name=/dev/loop0"], ["lvs", "-S", "lv_name=lin && pv_free>0"], ["lvs", "-o", "+pv_major"],
                ["lvs", "-O", "pv_in_use"],
                # -o all as lvm2 expands it in joined reports (the types of the fields named beside it),
                # and the one-object groups
                ["vgs", "-o", "all,lv_name"], ["vgs", "-o", "all,pv_free"], ["vgs", "-o", "all,pvseg_size"],
                ["vgs", "-o", "all,data_percent"], ["vgs", "-o", "+all", "-O", "lv_attr"], ["pvs", "-o", "+all"],
                ["pvs", "-o", "all,lv_name,vg_name"], ["pvs", "--segments", "-o", "all,vg_name", "--rows"],
                ["pvs", "-o", "all,seg_size", "--reportformat", "json"], ["lvs", "-o", "all,seg_size"],
                ["lvs", "--segments", "-o", "+all"], ["lvs", "-o", "lv_all"], ["lvs", "-o", "name,vg_all"],
                ["lvs", "-o", "name,seg_all"], ["pvs", "-o", "pv_all"], ["pvs", "-o", "pv_name,pvseg_all"],
                ["pvs", "-o", "pv_name,lv_all"], ["vgs", "-o", "vg_name,pv_all"], ["lvs", "-o", "pv_all"]]
# lvm2's options of the commands that only read: -y, -q (-qq), -t taken; -f and -A refused (exit 3).
READ_ONLY_LINES = [["lvs", "-t"], ["vgs", "-y", "-qq"], ["pvs", "--test", "--quiet"], ["lvs", "-f"],
                   ["pvs", "-A", "y"]]
# The same options on every lvm2-written fixture (thin, snapshot, raid, mirror, cache...).
FIXTURE_LINES = [
    ["lvs", "-a", "-O", "-lv_size,lv_name"], ["lvs", "-a", "-O", "lv_attr"], ["lvs", "-O", "-name"],
    ["lvs", "-a", "-S", "lv_size>2m"], ["lvs", "-a", "-S", "lv_name=~_"], ["lvs", "-a", "-S", "lv_attr=~^[A-Za-z]"],
    ["lvs", "-a", "-S", "origin!=\"\" || pool_lv!=\"\""], ["lvs", "-a", "--segments"],
    ["lvs", "-a", "--segments", "-o", "+devices", "-O", "-seg_size"], ["lvs", "--rows"],
    ["lvs", "-a", "--nameprefixes", "--noheadings", "--unquoted"], ["lvs", "-a", "--units", "k", "--nosuffix"],
    ["lvs", "-a", "-S", "lv_name=~rimage && seg_count=1"], ["lvs", "-a", "-o", "+lv_tags", "-S", "lv_tags=[]"],
    ["vgs", "-O", "vg_name", "--units", "b"], ["lvs", "-a", "-S", "lv_role=public"],
    ["lvs", "-a", "-S", "lv_role={private}"], ["lvs", "-a", "-O", "vg_name"], ["lvs", "-a", "--segments", "-O", "vg_name"],
    ["lvs", "-a", "-o", "all"], ["lvs", "-a", "-o", "all", "--reportformat", "json"],
    ["lvs", "-a", "-S", "lv_layout={thin} || lv_layout=[raid,raid1]", "-o", "lv_name,lv_layout"],
    ["lvs", "-a", "-S", "lv_parent!=\"\" && lv_read_ahead=auto", "-o", "lv_name,lv_parent"],
    ["lvs", "-a", "-S", "lv_skip_activation=1 || lv_merging=1", "-o", "lv_name"],
    # linked LVs select and sort by bare name; lvm2 keeps one "not" flag, so !(!(x)) is !(x)
    ["lvs", "-a", "-S", "data_lv=pool_tdata || origin=cached_corig || mirror_log=mdisk_mlog || pool_lv=cpool_cpool",
     "-o", "lv_name"],
    ["lvs", "-a", "-S", "!(!(lv_size>1m)) || !(!(!(seg_count=1)))", "-o", "lv_name"],
    ["lvs", "-a", "-O", "data_lv,-origin,lv_parent,lv_name", "-o", "lv_name,data_lv,origin,lv_parent"],
    # lvm2's reserved values: undefined numbers, `auto`, binary fields' and named fields' words
    ["lvs", "-a", "-S", "lv_major=-1 && raid_mismatch_count=undefined && lv_suspended=unknown", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_major>5 || lv_major<5 || lv_read_ahead>1 || lv_read_ahead<1", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_read_ahead=auto", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_skip_activation=skip || lv_when_full=queue || lv_merging=merging", "-o", "lv_name"],
    ["lvs", "-a", "-S", "lv_when_full=undefined", "-o", "lv_name"],
    ["lvs", "-a", "-O", "lv_read_ahead,-raidintegrityblocksize,lv_name", "-o", "lv_name,lv_read_ahead"],
    ["lvs", "-a", "-O", "-writecache_block_size,-lv_metadata_size,origin_size", "-o", "lv_name"], ["lvs", "-a", "-o", "all", "--units", "b"],
    ["vgs", "-o", "all"], ["pvs", "-o", "all"], ["lvs", "-a", "-o", "all", "--rows"],
    ["lvs", "-a", "-o", "lv_name,lv_layout,lv_parent,lv_ancestors,lv_full_descendants,lv_modules,origin_size"],
    ["lvs", "-a", "-S", "lv_layout=pool || lv_modules=~raid", "-o", "lv_name,lv_layout,lv_modules"],
    ["pvs", "--segments", "-o", "+pv_used"], ["pvs", "--segments", "-S", "pvseg_size>1", "-O", "-pvseg_size,pv_name"],
    ["pvs", "-o", "+lv_name,lv_attr,segtype,seg_size,devices"], ["vgs", "-o", "+lv_name,lv_attr,segtype"],
    ["vgs", "-o", "+pv_name,pv_attr,pv_used"],
    ["pvs", "-o", "pv_name,vg_name,vg_size,vg_free,lv_name,lv_layout,lv_role,seg_size_pe,region_size,chunk_size,zero"],
    ["pvs", "-o", "pv_name," + ",".join(LV_AND_SEGMENT_ALL), "--reportformat", "json"],
    ["vgs", "-o", "vg_name,lv_name,lv_layout,lv_parent,data_stripes", "-S", "lv_layout=~raid || lv_role=~private"],
    ["vgs", "-o", "vg_name,pv_name,pvseg_start,pvseg_size,pv_in_use"],
    ["vgs", "-o", "all,lv_name", "-O", "lv_name"], ["pvs", "-o", "all,lv_name,vg_name", "-O", "pv_name,lv_name"],
]

# Creation times on lvm2-written VGs: seconds apart, -a's hidden LVs, and sorting by time; and
# `--segments -o all` (lvm2's segment fields of every type: raid copies and parity, thin ids,
# cache settings, LE ranges, metadata devices).
FIXTURE_TIME_LINES = [
    ["lvs", "-a", "--segments", "-o", "all"], ["lvs", "-a", "--segments", "-o", "all", "--rows", "--units", "k"],
    ["lvs", "-a", "-O", "-lv_time,lv_name", "-o", "lv_name,lv_time",
     "-S", 'lv_time since "2026-12-01 22:08:45" || lv_time=@1796162923 || lv_time="2026-12-01 22:09"'],
]


@pytest.fixture(scope="module")
def tagged_vg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tg` on three loop devices, made by lvm2: linear, striped, two segments, tags everywhere;
    a fourth device is a PV of no VG (an orphan, as pvs lists it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices")
    directory = tmp_path_factory.mktemp("reports")
    devices: list[str] = []
    try:
        for index in range(4):
            image = directory / f"t{index}.img"
            with open(image, "wb") as f:
                f.truncate(64 << 20)
            devices.append(subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True,
                                          check=True).stdout.strip())
        listed = ",".join(devices)
        steps = [["pvcreate", "-q", *devices], ["vgcreate", "-q", "--addtag", "vgtag", "--addtag", "other.tag",
                                                 "tg", *devices[:3]]]
        for spec in (["-n", "lin", "-L", "8m", "--addtag", "db", "--addtag", "prod"],
                     ["-n", "str", "-i", "2", "-I", "64k", "-L", "16m", "--addtag", "db"],
                     ["-n", "big", "-L", "20m", "--addtag", "web"], ["-n", "small", "-L", "4m"]):
            steps.append(["lvcreate", "--driverloaded", "n", "-an", "-Zn", "-q", *spec, "tg", devices[0],
                          *(devices[1:2] if "str" in spec else [])])
        steps += [["pvchange", "-q", "--addtag", "fast", "--addtag", "ssd", devices[0]],
                  ["pvchange", "-q", "--addtag", "slow", devices[2]],
                  ["lvextend", "--driverloaded", "n", "-q", "-L", "+8m", "tg/small", devices[2]]]
        for step in steps:
            result = subprocess.run([step[0], "--devices", listed, *step[1:]], capture_output=True, text=True,
                                    env=LVM_ENV)
            assert result.returncode == 0, f"{step}: {result.stderr}"
        yield listed
    finally:
        detach(devices)


@pytest.fixture(scope="module")
def fixture_devices(templates: Callable[[Fixture], list[Path]]) -> Iterator[Callable[[Fixture], str]]:  # noqa: F811
    """The lvm2_types fixtures' restored PVs on read-only loop devices (reports write nothing)."""
    attached: dict[str, list[str]] = {}

    def get(fixture: Fixture) -> str:
        if fixture.name not in attached:
            attached[fixture.name] = []
            for image in templates(fixture):
                attached[fixture.name].append(subprocess.run(["losetup", "-r", "-f", "--show", str(image)],
                                                             capture_output=True, text=True,
                                                             check=True).stdout.strip())
        return ",".join(attached[fixture.name])

    yield get
    for devices in attached.values():
        detach(devices)


def run_lvcrypt_here(words: list[str], tmp_path: Path) -> tuple[int, str, str]:
    """lvcrypt's CLI in this process: its exit status, standard output and standard error."""
    from lvcrypt.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR")}
    os.environ["LVCRYPT_STATE_DIR"], os.environ["LVCRYPT_RUN_DIR"] = str(tmp_path / "state"), str(tmp_path / "run")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(words)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return status, out.getvalue(), err.getvalue()


def compare(words: list[str], devices: str, names: list[str], tmp_path: Path) -> None:
    """Both tools on one command line; a line about times whose outputs differ is run again when
    the two runs straddled a second, since relative times ("3 hours ago") are read against each
    tool's clock."""
    line = [words[0], "--devices", devices, *words[1:], *names]
    for _ in range(3):
        started = int(time.time())
        theirs = subprocess.run(["lvm", *line], capture_output=True, text=True, env=LVM_ENV)
        status, ours, _ = run_lvcrypt_here(line, tmp_path)
        same = (status, ours) == (theirs.returncode, theirs.stdout)
        if same or int(time.time()) == started or not any("time" in word for word in words):
            break
    assert (status, ours) == (theirs.returncode, theirs.stdout), (
        f"lvm {' '.join(line)}\nlvm2 ({theirs.returncode}):\n{theirs.stdout}{theirs.stderr}\n"
        f"lvcrypt ({status}):\n{ours}")


def _tagged_lines() -> Iterator[list[str]]:
    fields = ["-o", "lv_name,lv_size,lv_tags,seg_count"]
    for selection in SELECTIONS:
        yield ["lvs", *fields, "-S", selection]
    for index, selection in enumerate(TIME_SELECTIONS):  # lv_time shown, or only selected on
        yield ["lvs", "-o", "lv_name,lv_time" if index % 2 else "lv_name", "-S", selection]
    yield ["lvs", "-o", "lv_name,lv_time", "-O", "-lv_time,lv_name"]
    for keys in SORTS:
        yield ["lvs", *fields, "-O", keys]
    for selection, keys in zip(SELECTIONS[:12], SORTS * 2):
        yield ["lvs", "-S", selection, "-O", keys, "-o", "+lv_tags"]
    for layout in LAYOUTS:
        yield ["lvs", *layout]
    for words in CUSTOM_UNITS:
        yield ["lvs", *words]
    yield from [["vgs", "--units", "3m"], ["pvs", "--units", "7s", "-o", "+pv_used"], ["vgs", "--units", "1.5K"],
                ["lvs", "--segments", "-o", "all"], ["lvs", "--segments", "-o", "all", "--reportformat", "json"],
                ["lvs", "--segments", "-o", "lv_name,seg_le_ranges,data_copies,region_size,seg_size_pe",
                 "-S", "data_stripes=2"]]
    for unit in UNITS:
        yield ["lvs", "--units", unit]
        yield ["vgs", "--units", unit]
        yield ["pvs", "--units", unit, "-o", "+pv_used"]
    yield from VG_LINES
    yield from PVSEG_LINES
    yield from JOINED_LINES
    yield from READ_ONLY_LINES


TAGGED = list(_tagged_lines())


@pytest.mark.parametrize("words", TAGGED, ids=[" ".join(words) for words in TAGGED])
def test_tagged_vg_report_matches_lvm2(words: list[str], tagged_vg: str, tmp_path: Path) -> None:
    compare(words, tagged_vg, [] if words[0] == "pvs" else ["tg"], tmp_path)


def _fixture_cases() -> Iterator[object]:
    """Every line on FIXTURES_PER_LINE fixtures, every fixture on some lines, drawn anew each run."""
    lines = [(words, " ".join(words)) for words in FIXTURE_LINES + FIXTURE_TIME_LINES]
    lines += [(["vgs", "--units", unit, "-o", "+vg_extent_size"], f"vgs --units {unit}")
              for unit in ("r", "H", "b", "s", "k", "M", "e")]
    for (words, name), fixture in sorted(cover(lines, FIXTURES, FIXTURES_PER_LINE, "report lines"),
                                         key=lambda case: FIXTURES.index(case[1])):
        yield pytest.param(fixture, words, id=f"{fixture.name}-{name}")


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,words", list(_fixture_cases()))
def test_lvm2_types_report_matches_lvm2(fixture: Fixture, words: list[str],
                                        fixture_devices: Callable[[Fixture], str], tmp_path: Path) -> None:
    compare(words, fixture_devices(fixture), [] if words[0] == "pvs" else [fixture.vg], tmp_path)


def test_matrix_size() -> None:
    """The issue asks for at least 200 command lines, -S and -O combinations among them."""
    cases = TAGGED + [words for _, words in ((f, w) for f in FIXTURES for w in FIXTURE_LINES)]
    assert len(cases) >= 200
    assert sum(1 for words in cases if "-S" in words and "-O" in words) >= 10


# Every VG at once: rows that -O leaves equal come in lvm2's collection order (VGs in the order
# named, else the reverse of the device scan; LVs and PVs in metadata order; orphan PVs last).
MULTI_LINES = [["lvs", "-O", "-lv_size"], ["lvs", "-a", "-O", "seg_count,-lv_name"], ["vgs", "-O", "-vg_free"],
               ["vgs", "-O", "vg_fmt"], ["pvs", "-O", "-pv_free"], ["pvs", "-O", "vg_name"], ["pvs", "-O", "pv_fmt"],
               ["lvs", "-S", "lv_size>=4m", "-O", "lv_attr"], ["lvs", "-a", "-O", "lv_allocation_policy"],
               ["vgs", "-O", "vg_fmt", "cache", "thin", "mixed"], ["vgs", "-O", "vg_fmt", "mixed", "cache", "tg"],
               ["lvs", "-O", "lv_allocation_policy", "mixed/plain1", "cache", "thin/plain"], ["vgs"], ["pvs"],
               ["lvs", "-S", "lv_name=~^r && lv_size<4m"], ["pvs", "-o", "all", "-S", "vg_name=\"\""]]


@pytest.mark.parametrize("words", MULTI_LINES, ids=[" ".join(words) for words in MULTI_LINES])
def test_every_vg_at_once_matches_lvm2(words: list[str], tagged_vg: str, fixture_devices: Callable[[Fixture], str],
                                       tmp_path: Path) -> None:
    devices = ",".join([tagged_vg, *(fixture_devices(fixture) for fixture in FIXTURES)])
    compare(words, devices, [], tmp_path)


# `-o help` (`?` too, alone or among fields): lvm2 2.03.16 prints one list of every report's fields
# on standard error, whatever the command, and exits 0 with nothing on standard output; a missing
# VG named after it still exits 5.
HELP_LINES = [["lvs", "-o", "help"], ["vgs", "-o", "help"], ["pvs", "-o", "help"], ["lvs", "--segments", "-o", "help"],
              ["lvs", "-o", "?"], ["lvs", "-o", "lv_name,help", "-S", "lv_name=lin"], ["vgs", "-o", "help", "nosuch"]]


@pytest.mark.parametrize("words", HELP_LINES, ids=[" ".join(words) for words in HELP_LINES])
def test_field_help_matches_lvm2(words: list[str], tagged_vg: str, tmp_path: Path) -> None:
    """lvm2's text byte for byte, then the documented difference: lvcrypt's crypt fields (which
    lvm2 has not) in one section of their own after lvm2's last, so nothing of lvm2's moves."""
    from lvcrypt.reportfields import LV_FIELDS

    line = [words[0], "--devices", tagged_vg, *words[1:]]
    theirs = subprocess.run(["lvm", *line], capture_output=True, text=True, env=LVM_ENV)
    status, ours, errors = run_lvcrypt_here(line, tmp_path)
    assert (status, ours) == (theirs.returncode, theirs.stdout)
    listed = theirs.stderr.split("  Volume group")[0]  # the list, without lvm2's "not found" message
    assert errors.startswith(listed), errors[:2000]
    title, underline, *entries = errors[len(listed):].splitlines()
    assert "Crypt" in title and underline == "  " + "-" * (len(title) - 2)
    assert {entry.split()[0] for entry in entries if entry.startswith("    ")} == {
        name for name in LV_FIELDS if f"    {name} " not in listed}


# `lvs -H/--history` on the `history` fixture (thin1 <- tsnap (removed, remembered) <- tsnap2): the
# removed LV as `-tsnap` with lvm2's attr, size, segment, times, layout and ancestry, also named
# on the command line; selecting and sorting on it. lvm2 2.03.16 crashes (exit 139) on some
# fields of a historical LV (`-o all`, `lv_modules`, `data_lv`...), which no line here asks for.
HISTORY_LINES = [
    ["lvs", "-H"], ["lvs", "-a", "--history"], ["lvs", "-H", "--segments"],
    ["lvs", "-H", "-o", "+lv_time_removed,lv_historical"],
    ["lvs", "-a", "-H", "-o", "lv_name,lv_attr,origin,lv_time,lv_time_removed,lv_historical,lv_full_ancestors"],
    ["lvs", "-H", "-o", "name,lv_full_descendants,lv_descendants,lv_ancestors,lv_parent,lv_active,lv_dm_path"],
    ["lvs", "-H", "--separator", ",", "-o", "lv_name,lv_size,seg_size,lv_attr,segtype,seg_count,stripes,lv_uuid,"
     "lv_path,lv_role,lv_layout,devices,lv_time"],
    ["lvs", "-H", "-S", "lv_historical=1"], ["lvs", "-H", "-S", "lv_size=0", "-o", "name"],
    ["lvs", "-H", "-S", "lv_full_ancestors=thin1", "-o", "name"],
    ["lvs", "-H", "-O", "-lv_time_removed", "-o", "name,lv_time_removed"],
    ["lvs", "-H", "--units", "b", "--nosuffix", "-S", "lv_historical=1"],
    ["lvs", "-H", "--reportformat", "json", "-S", "lv_historical=1", "-o", "name,size,attr,lv_time_removed"],
    ["lvs", "-H", "history/-tsnap"], ["lvs", "history/-tsnap"], ["lvs", "-H", "-o", "name", "history/tsnap2"],
]


@pytest.mark.parametrize("words", HISTORY_LINES, ids=[" ".join(words) for words in HISTORY_LINES])
def test_history_matches_lvm2(words: list[str], fixture_devices: Callable[[Fixture], str], tmp_path: Path) -> None:
    history = next(fixture for fixture in FIXTURES if fixture.name == "history")
    named = any("/" in word for word in words)
    compare(words, fixture_devices(history), [] if named else [history.vg], tmp_path)


# Objects named and not found (issue 15): lvm2 reports (or displays) the others, says so of each
# missing one and exits 5.  `PV0` is tg's first PV.
MISSING_LINES = [["lvs", "nov/x", "tg/lin"], ["lvs", "tg/zz", "tg/lin", "tg/aa"], ["lvs", "nov1", "nov2", "tg/str"],
                 ["lvs", "tg/lin", "tg"], ["lvs", "--reportformat", "json", "nov", "tg/str"],
                 ["lvs", "-S", "lv_size>4m", "-o", "lv_name", "tg/lin", "tg/big", "tg/none"], ["lvs", "tg/none"],
                 ["vgs", "-o", "+lv_name", "nov", "tg"], ["vgs", "nov"], ["pvs", "/dev/nosuch", "PV0"],
                 ["pvs", "-o", "+lv_name", "PV0", "/dev/nosuch"], ["pvs", "/dev/nosuch"],
                 # The displays too: lvm2 shows what it found, then the messages and status 5.
                 ["lvdisplay", "nov", "tg"], ["lvdisplay", "-c", "tg/x", "tg/lin"], ["lvdisplay", "nov/x", "tg/lin"],
                 ["vgdisplay", "nov", "tg"], ["vgdisplay", "-s", "tg", "nov"], ["pvdisplay", "/dev/nosuch", "PV0"],
                 ["pvdisplay", "-c", "PV0", "/dev/nosuch"], ["lvdisplay", "tg/x"]]


@pytest.mark.parametrize("words", MISSING_LINES, ids=[" ".join(words) for words in MISSING_LINES])
def test_missing_objects_as_lvm2(words: list[str], tagged_vg: str, tmp_path: Path) -> None:
    """Same rows and status; each lvcrypt error line is one of lvm2's, after `lvcrypt: `."""
    words = [tagged_vg.split(",")[0] if word == "PV0" else word for word in words]
    line = [words[0], "--devices", tagged_vg, *words[1:]]
    theirs = subprocess.run(["lvm", *line], capture_output=True, text=True, env=LVM_ENV)
    status, ours, errors = run_lvcrypt_here(line, tmp_path)
    assert (status, ours) == (theirs.returncode, theirs.stdout)
    said = errors.splitlines()
    assert bool(said) == bool(status) and all(message.startswith("lvcrypt: ") and f"  {message[9:]}\n" in theirs.stderr
                        for message in said), (errors, theirs.stderr)


def test_pv_field_in_lvs_selection_is_lvm2s_refusal(tagged_vg: str, tmp_path: Path) -> None:
    """The message too: a script reading lvm2's error reads the same words."""
    line = ["lvs", "--devices", tagged_vg, "-S", "pv_free>0", "tg"]
    theirs = subprocess.run(["lvm", *line], capture_output=True, text=True, env=LVM_ENV)
    status, _, errors = run_lvcrypt_here(line, tmp_path)
    assert status == theirs.returncode == 5
    assert errors.startswith("lvcrypt: ") and f"  {errors[9:]}" in theirs.stderr


@pytest.mark.parametrize("selection", ["lv_size", "lv_size>", "lv_size>1m &&", "(lv_size>1m", "lv_size>1m && lv_name",
                                       "lv_name='a,b' || lv_size", "lv_size>8x"])
def test_unfinished_selection_is_lvm2s_refusal(selection: str, tagged_vg: str, tmp_path: Path) -> None:
    """An unfinished -S says what libdm says: where the unfinished item starts, or the missing parenthesis."""
    line = ["lvs", "--devices", tagged_vg, "-S", selection, "tg"]
    theirs = subprocess.run(["lvm", *line], capture_output=True, text=True, env=LVM_ENV)
    status, ours, errors = run_lvcrypt_here(line, tmp_path)
    assert (status, ours) == (theirs.returncode, theirs.stdout) == (5, "")
    assert errors.startswith("lvcrypt: ") and f"  {errors[9:]}" in theirs.stderr, (errors, theirs.stderr)
