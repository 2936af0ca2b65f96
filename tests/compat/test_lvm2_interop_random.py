"""Seeded random operation sequences alternating lvcrypt and lvm2 on the same VG.

After every step both tools must list the same LVs with the same segments and sizes; at the
end of every fourth sequence all of lvs/vgs/pvs agree and vgck/pvck are clean.  A step either tool
refuses (only for lack of space) must leave the VG untouched.  Each run takes a seeded sample of the
SEQUENCES seeds, half begun by each tool (tests/sampling.py: LVCRYPT_TEST_FULL=1 runs them all).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import pytest

from sampling import pick
from store_helpers import LV_FIELDS, Pair

pytestmark = [pytest.mark.oracle, pytest.mark.slow]
SEQUENCES = 50
PER_RUN = 4  # sequences begun by lvcrypt, and as many begun by lvm2
STEPS = 6


# The compared report also carries what the next step is chosen from (lvm2's lvs has VG fields too).
FIELDS = LV_FIELDS + ",vg_extent_size,vg_free_count"


def _state(pair: Pair, vg: str, rows: list[dict[str, str]]) -> tuple[dict[str, int], int]:
    """LV sizes in extents and the free extent count, from the last compared report."""
    if not rows:
        return {}, int(pair.report("lvcrypt", "vgs", "vg_free_count", vg)[0]["vg_free_count"])
    extent = int(rows[0]["vg_extent_size"].rstrip("B"))
    return {row["lv_name"]: int(row["lv_size"].rstrip("B")) // extent for row in rows}, int(rows[0]["vg_free_count"])


def _step(pair: Pair, rng: random.Random, tool: str, vg: str, counter: list[int],
          rows: list[dict[str, str]]) -> list[str]:
    """One random change as argument lists for the chosen tool."""
    sizes, free = _state(pair, vg, rows)
    names = sorted(sizes)
    choices = ["create", "create_striped"] if free >= 2 else []
    if names:
        choices += ["remove", "rename"] + (["extend"] if free >= 4 else [])
        choices += ["reduce"] if any(size >= 4 for size in sizes.values()) else []
    if not choices:
        choices = ["remove"] if names else []
    action = rng.choice(choices)
    counter[0] += 1
    if action == "create":
        return ["lvcreate", "-l", str(rng.randint(1, min(free, 5))), "-n", f"lv{counter[0]}", vg]
    if action == "create_striped":
        return ["lvcreate", "-i", "2", "-I", rng.choice(["64k", "128k"]), "-l", str(2 * rng.randint(1, free // 2 if
                free < 6 else 3)), "-n", f"st{counter[0]}", vg]
    target = f"{vg}/{rng.choice(names)}"
    if action == "reduce":
        target = f"{vg}/{rng.choice([name for name in names if sizes[name] >= 4])}"
    if action == "remove":
        return ["lvremove", *(["-y"] if tool == "lvm2" else []), target]
    if action == "rename":
        return ["lvrename", target, f"rn{counter[0]}"]
    if action == "extend":
        return ["lvextend", "-l", f"+{rng.choice([2, 4])}", target]
    return ["lvreduce", "-y" if tool == "lvcrypt" else "-f", "-l", "-2", target]


@pytest.mark.sampled
def test_random_sequences_alternating_tools(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                            lvm2: None) -> None:
    pair = Pair(loop_devices(2, 48), tmp_path)
    executed = refused = 0
    seeds = sorted(pick(range(0, SEQUENCES, 2), PER_RUN, "lvcrypt first")
                   + pick(range(1, SEQUENCES, 2), PER_RUN, "lvm2 first"))
    for index, seed in enumerate(seeds):
        rng = random.Random(seed)
        vg = f"vgr{seed}"
        tools = ["lvcrypt", "lvm2"] if seed % 2 == 0 else ["lvm2", "lvcrypt"]
        creator = pair.lvc if tools[0] == "lvcrypt" else pair.lvm
        if index:
            pair.lvc("vgremove", "-f", f"vgr{seeds[index - 1]}")
        creator("pvcreate", "-ff", "-y", *pair.devices) if creator == pair.lvm else creator("pvcreate", "-ff",
                                                                                              *pair.devices)
        creator("vgcreate", "-s", rng.choice(["1m", "2m", "4m"]), vg, *pair.devices)
        counter = [0]
        before = pair.report("lvcrypt", "lvs", FIELDS, vg)
        for step in range(STEPS):
            tool = tools[step % 2]
            argv = _step(pair, rng, tool, vg, counter, before)
            result = (pair.lvc if tool == "lvcrypt" else pair.lvm)(*argv, check=False)
            if result.returncode != 0:
                # Allowed refusals: no room (the tools allocate differently) or a cut inside stripes.
                assert any(reason in result.stderr for reason in ("nsufficient", "stripe")), \
                    (seed, step, tool, argv, result.stderr)
                refused += 1
            executed += 1
            ours = pair.report("lvcrypt", "lvs", FIELDS, vg)
            theirs = pair.report("lvm2", "lvs", FIELDS, vg)
            assert ours == theirs, (seed, step, tool, argv)
            if result.returncode != 0:
                assert ours == before, "a refused step changed the VG"
            before = ours
        if index % 4 == 3:  # the full comparison (vgs, pvs, vgck, pvck) on every fourth sequence
            pair.assert_agree(vg)
            pair.assert_lvm2_clean(vg)
    assert executed == len(seeds) * STEPS and refused < executed // 4
