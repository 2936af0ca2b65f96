"""Sampled test matrices: every kind of case in every run, a seeded sample of the cases within a kind.

Some tests enumerate many equivalent cases (each crash point of a command, each command line of
a report option against lvm2, each LV of one role in the lvm2 types matrix). Running all of them
in every run kept the suite at 30 minutes; a fixed subset would leave the rest untested forever.
So each run draws its sample with a seed that changes from run to run (over runs, every case is
covered), and a failure reproduces with that seed:

- `LVCRYPT_TEST_SEED=N` fixes the seed (the run prints it at the end, and in every failure
  of a sampled test);
- `LVCRYPT_TEST_FULL=1` runs every case.

The seed is chosen once, in the controlling pytest process (`tests/conftest.py`), and passed to
the xdist workers in the environment: every worker must collect the same cases.
"""

from __future__ import annotations

import os
import random
from typing import Hashable, Iterable, Sequence, TypeVar

SEED_ENV = "LVCRYPT_TEST_SEED"
FULL_ENV = "LVCRYPT_TEST_FULL"
T = TypeVar("T")
U = TypeVar("U")


def full() -> bool:
    """True when every case runs (LVCRYPT_TEST_FULL=1)."""
    return os.environ.get(FULL_ENV) == "1"


def seed() -> int:
    """This run's seed: LVCRYPT_TEST_SEED, which conftest sets once per run when it is not given."""
    value = os.environ.get(SEED_ENV)
    if value is None:
        value = os.environ[SEED_ENV] = str(new_seed())
    return int(value)


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 1_000_000)


def _rng(kind: Hashable) -> random.Random:
    """One generator per kind, so adding a kind elsewhere does not change this kind's sample."""
    return random.Random(f"{seed()}:{kind!r}")


def pick(items: Sequence[T], count: int, kind: Hashable) -> list[T]:
    """`count` of `items` (all of them with LVCRYPT_TEST_FULL=1 or when there are no more), in their order."""
    if full() or len(items) <= count:
        return list(items)
    chosen = set(_rng(kind).sample(range(len(items)), count))
    return [item for index, item in enumerate(items) if index in chosen]


def spread(total: int, count: int, kind: Hashable, keep: Iterable[int] = ()) -> list[int]:
    """Indexes out of range(total): `keep`, plus one drawn from each of `count` equal slices, so every
    phase of a sequence (say, the writes of one command from first to last) is in every sample."""
    if full() or total <= count:
        return list(range(total))
    rng = _rng(kind)
    chosen = {index for index in keep if 0 <= index < total}
    for part in range(count):
        low, high = part * total // count, (part + 1) * total // count
        chosen.add(rng.randrange(low, max(high, low + 1)))
    return sorted(chosen)


def cover(rows: Sequence[T], columns: Sequence[U], per_row: int, kind: Hashable) -> list[tuple[T, U]]:
    """(row, column) pairs of a grid (command lines x lvm2 fixtures, say): each row with `per_row`
    columns, the columns dealt in turn from a seeded shuffle, so every row AND every column is in
    every run (the whole grid with LVCRYPT_TEST_FULL=1)."""
    if full() or len(columns) <= per_row:
        return [(row, column) for row in rows for column in columns]
    order = list(range(len(columns)))
    _rng(kind).shuffle(order)
    dealt = []
    for index, row in enumerate(rows):
        picked = sorted(order[(index * per_row + offset) % len(order)] for offset in range(per_row))
        dealt += [(row, columns[column]) for column in picked]
    return dealt


def describe() -> str:
    """The line that says how this run sampled, for the summary and for failures."""
    if full():
        return f"{FULL_ENV}=1: every case of the sampled tests ran"
    return (f"sampled tests ran with {SEED_ENV}={seed()} (set it to rerun the same cases; "
            f"{FULL_ENV}=1 runs them all)")
