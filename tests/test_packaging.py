"""The project installs as one `lvcrypt` namespace from three rooms, as a wheel too, with its compiled modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_all_rooms_and_the_grammar(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("lvcrypt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("lvcrypt/cli/__init__.py", "lvcrypt/metadata/grammar.lark", "lvcrypt/metadata/parse.py",
                     "lvcrypt/handlers/__init__.py", "lvcrypt/errors.py"):
        assert required in names
    # The two compiled modules (setup.py), built for this interpreter.
    for module in ("lvcrypt/crypto/_sectors.", "lvcrypt/metadata/_plain_layout."):
        assert any(name.startswith(module) and name.endswith(".so") for name in names), module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lvcrypt = lvcrypt.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    # Every package folder in the source tree made it into the wheel (pyproject lists them by hand).
    for room, prefix in (("lvcrypt", "lvcrypt"), ("metadata", "lvcrypt/metadata"), ("handlers", "lvcrypt/handlers")):
        for init in (ROOT / room).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / room).as_posix()
            packaged = f"{prefix}/{relative}/__init__.py" if relative != "." else f"{prefix}/__init__.py"
            assert packaged in names, f"{init.parent} is missing from pyproject's packages list"


def test_console_script_and_module_entry_points() -> None:
    script = Path(sys.executable).with_name("lvcrypt")
    for command in ([str(script), "--help"], [sys.executable, "-m", "lvcrypt", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        assert result.returncode == 0, result.stderr
        assert "metadata" in result.stdout
