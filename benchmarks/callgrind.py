"""Instruction counts of a whole process under callgrind: a figure the machine's load does not move.

Wall and CPU times on a shared 2-core machine swing with the other jobs; the
number of instructions a command executes does not, so the benchmarks print
it beside the times when `valgrind` is installed (about 50x slower to run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile


def available() -> bool:
    return shutil.which("valgrind") is not None


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions executed by `argv` and its threads (callgrind's `Collected`)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(tmp, 'out')}",
                                 *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                errors="replace", env=env)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"callgrind failed on {' '.join(argv)}: {result.stderr[-2000:]}")
    return int(found.group(1))
