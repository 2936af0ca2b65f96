"""Keeping Python's cyclic garbage collector off a large metadata tree while it is built and read.

A 10,000-LV VG is about a million new containers (sections, lists, model
objects), none of them garbage and none in a cycle.  With the collector on,
allocation bursts trigger collections that walk all of them again and again,
a quarter of `metadata check`'s time.  So the collector is paused while they
are made, and what is alive at the end is frozen (`gc.freeze`: moved out of
the generations the collector walks) instead of being walked once more by the
first collection after it resumes.  Reference counting still frees all of it
as usual; only a reference cycle alive at that moment would outlive its use,
and the parser and model make none.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested blocks are fine); the previous state after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()
