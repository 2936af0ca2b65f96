"""Keeping Python's cyclic garbage collector off a large metadata tree while it is built and read.

A 10,000-LV VG is about a million new containers (sections, lists, model
objects), none of them garbage and none in a cycle.  With the collector on,
allocation bursts trigger collections that walk all of them again and again,
a quarter of `metadata check`'s time.  So the collector is paused while they
are made; reference counting still frees everything as usual.

When the collector resumes, its next collection walks once more everything
made during the pause.  A command's process can skip that too: the CLI calls
`for_a_command_process`, and what is alive at the end of each pause is then
frozen (`gc.freeze`: moved out of the generations the collector walks).  Only
short-lived processes should: a reference cycle alive at that moment would
never be collected, which a library caller running for days must not risk.
The same call spaces the process's collections further apart, for the same
reason: all of a command's collector policy is here, in one place.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

_freeze = False


def for_a_command_process() -> None:
    """For a process that ends soon (a CLI command): freeze what a pause built instead of walking it
    again, and collect every 20,000 new containers instead of 700.

    Start-up makes tens of thousands of containers (modules' functions, classes, parsed headers) that
    all live on: a collection every 700 new ones made 40 in a 4 KiB read, 8M of its 386M instructions
    (benchmarks/startup.py).  Long commands still collect, 20,000 new containers apart.
    """
    global _freeze
    _freeze = True
    gc.set_threshold(20000)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested blocks are fine); the previous state after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if _freeze:
                gc.freeze()
            gc.enable()
