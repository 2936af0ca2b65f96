"""The memory lock around a suspend when the process may not lock its memory: lvm2 warns once and goes on.

lvm2's critical section (lib/mm/memlock.c) mlockalls the process so that no page fault waits on the
suspended device; where that is refused (no CAP_IPC_LOCK and a small RLIMIT_MEMLOCK, as in a
container), lvm2 says so and suspends anyway rather than failing the command.  Tested in a child
that really lacks the capability, with the real mlockall.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

# Two suspends of one conversion (the second nested, as a chunk inside the conversion's lock), then a
# second LV: the key material must stay usable throughout, and the warning come once per process.
NESTED_SUSPENDS = """
from lvcrypt.activate.kernel import memory_locked
from lvcrypt.handlers.secret import Secret
with Secret(b"k" * 64) as key:
    with memory_locked("vg0/a"):
        with memory_locked("vg0/a"):
            pass
    with memory_locked("vg0/b"):
        pass
    print(bytes(key.buffer) == b"k" * 64)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("prlimit") is None,
                    reason="dropping CAP_IPC_LOCK needs root and util-linux's setpriv and prlimit")
def test_a_refused_memory_lock_is_one_warning_and_the_command_goes_on() -> None:
    child = subprocess.run(["prlimit", "--memlock=65536:65536", "setpriv", "--inh-caps=-ipc_lock",
                            "--bounding-set=-ipc_lock", sys.executable, "-c", NESTED_SUSPENDS],
                           capture_output=True, text=True, cwd=ROOT)
    assert child.returncode == 0, child.stderr
    assert child.stdout == "True\n"
    assert child.stderr.splitlines() == [
        "lvcrypt: warning: cannot lock memory while vg0/a is suspended (Cannot allocate memory); going on without"]


def test_the_lock_is_taken_as_root() -> None:
    """The test above proves something only if the same code locks when it may: as root, no warning."""
    if os.geteuid() != 0:
        pytest.skip("mlockall of a whole interpreter needs CAP_IPC_LOCK")
    child = subprocess.run([sys.executable, "-c", NESTED_SUSPENDS], capture_output=True, text=True, cwd=ROOT)
    assert child.returncode == 0 and child.stdout == "True\n" and child.stderr == "", child.stderr
