"""Garbage-collector settings for processes that allocate heavily per request or batch.

CPython runs a young-generation collection every 700 net allocations and, every so often, a
full one that walks every long-lived object (modules, caches, the consumer's trail cache). A
consumer batch allocates hundreds of thousands of short-lived objects, so with the defaults a
large share of its CPU went to the collector. Freezing what start-up created moves it out of
the collector's sight; the higher thresholds keep collections rare without turning them off,
so reference cycles are still reclaimed.

The GIL's switch interval stays at its default: a shorter one made ingest's workers slower.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_throughput() -> None:
    """Call once in each process (each uvicorn worker too), after start-up built what lasts."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
