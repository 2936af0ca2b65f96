"""Keeping Python's cyclic garbage collector off a large metadata tree while it is built and read.

A 10,000-LV VG is about a million new containers (sections, lists, model
objects), none of them garbage and none in a cycle.  With the collector on,
allocation bursts trigger collections that walk all of them again and again,
a quarter of `metadata check`'s time.  So the collector is paused while they
are made; reference counting still frees everything as usual.

When the collector resumes, its next collection walks once more everything
made during the pause.  A command's process can skip that too: the CLI calls
`freeze_after_pauses`, and what is alive at the end of each pause is then
frozen (`gc.freeze`: moved out of the generations the collector walks).  Only
short-lived processes should: a reference cycle alive at that moment would
never be collected, which a library caller running for days must not risk.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

_freeze = False


def freeze_after_pauses() -> None:
    """For a process that ends soon (a CLI command): freeze what a pause built instead of walking it again."""
    global _freeze
    _freeze = True


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
