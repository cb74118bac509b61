"""Building an export's objects without the cyclic collector: they hold no reference cycles.

Reading and verifying allocate a few containers per entry and keep most of them, so the collector's
generational passes re-scan everything read so far, again and again: about a quarter of the time at 10^5
entries, for nothing to collect. Reference counting still frees what each step drops; the collector's
previous state comes back on the way out, and it collects as usual from then on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
