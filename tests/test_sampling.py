"""Sampled matrices (tests/sampling.py): a run's sample is fixed by its seed, covers every kind and
slice, the full matrix is one variable away, and a failing sampled test says how to rerun it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sampling
from conftest import ROOT


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv(sampling.SEED_ENV, "4242")
    monkeypatch.delenv(sampling.FULL_ENV, raising=False)
    return monkeypatch


def test_one_seed_one_sample_and_the_full_matrix_on_request(seeded: pytest.MonkeyPatch) -> None:
    items = list(range(40))
    first = sampling.pick(items, 5, "kind")
    assert len(first) == 5 and first == sorted(first)
    assert sampling.pick(items, 5, "kind") == first
    seeded.setenv(sampling.SEED_ENV, "4243")
    assert sampling.pick(items, 5, "kind") != first
    seeded.setenv(sampling.FULL_ENV, "1")
    assert sampling.pick(items, 5, "kind") == items
    assert sampling.spread(50, 12, "kind") == list(range(50))
    assert len(sampling.cover("abc", "wxyz", 2, "kind")) == 12


def test_spread_takes_every_slice_and_what_it_must_keep(seeded: pytest.MonkeyPatch) -> None:
    chosen = sampling.spread(53, 12, "crash points", keep=(0, 52))
    assert {0, 52} <= set(chosen) and len(chosen) <= 14
    for part in range(12):
        assert any(part * 53 // 12 <= index < (part + 1) * 53 // 12 for index in chosen)


def test_cover_puts_every_row_and_every_column_in_each_run(seeded: pytest.MonkeyPatch) -> None:
    rows, columns = [f"line{i}" for i in range(7)], [f"vg{i}" for i in range(9)]
    cases = sampling.cover(rows, columns, 3, "grid")
    assert len(cases) == 21 and len(set(cases)) == 21
    assert {row for row, _ in cases} == set(rows) and {column for _, column in cases} == set(columns)


def test_a_failing_sampled_test_names_the_seed_that_reruns_it(tmp_path: Path) -> None:
    test_file = tmp_path / "test_example.py"
    test_file.write_text("import pytest\n\n@pytest.mark.sampled\ndef test_fails():\n    assert False\n")
    env = {key: value for key, value in os.environ.items() if key not in (sampling.SEED_ENV, sampling.FULL_ENV)}
    env.update({sampling.SEED_ENV: "777", "PYTHONPATH": str(ROOT / "tests")})
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                             "--rootdir", str(ROOT), str(test_file)],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sampling" in result.stdout and result.stdout.count("LVCRYPT_TEST_SEED=777") == 2, result.stdout
