"""The key-handler registry: lvcrypt's own handlers are the ones pyproject.toml registers, and
looking one up reads no installed-package metadata (that import alone cost a data command
more start-up than its unlock: benchmarks/startup.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from lvcrypt.handlers import registry

PYPROJECT = Path(__file__).resolve().parent.parent.parent / "pyproject.toml"


def test_built_in_handlers_are_the_entry_points_pyproject_declares() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["entry-points"][registry.GROUP] == registry.BUILT_IN


def test_every_built_in_handler_is_listed_and_loads_under_its_name() -> None:
    names = registry.available()
    for name in registry.BUILT_IN:
        assert name in names
        assert registry.get(name).name == name


def test_a_built_in_lookup_reads_no_package_metadata() -> None:
    code = ("import sys; from lvcrypt.handlers import registry; registry.get('luks2'); registry.get('luks1'); "
            "print(sorted(m for m in sys.modules if m.startswith(('importlib.metadata', 'email'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
