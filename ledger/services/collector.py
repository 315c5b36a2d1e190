"""Python's cyclic garbage collector relaxed for a bulk use case (an import, a month close).

Such a run keeps hundreds of thousands of objects alive (books, drafts, rows); each pass of the
young generation, every 700 allocations by default, scans the survivors again, and the passes
over the older generations scan all of them.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_relaxed(threshold: int = 50_000) -> Iterator[None]:
    """The collector paused for what exists (``gc.freeze``) and run every ``threshold``
    allocations instead of 700 inside the block, restored afterwards (about 1.5 s of CPU of a
    33,000-event business import, about 0.6 s of a 10,000-customer month close)."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
