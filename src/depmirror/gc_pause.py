"""Pause Python's cyclic garbage collector while a fleet-sized result is built.

Planning 10k dependencies allocates a few hundred thousand objects (plan records, instance lists, JSON
dicts) that all stay reachable until the call returns. The collector runs every 700 allocations and,
once the new objects outnumber a quarter of the old ones, walks the whole heap (the graph included)
to free nothing: at 10k that made planning scale worse than linearly (docs/performance.md, "Planning").

Nothing built here forms reference cycles, so reference counting still frees every temporary at once;
the collector is only postponed until the call returns, not skipped. The previous setting is restored
(a caller that disabled collection itself keeps it disabled).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
