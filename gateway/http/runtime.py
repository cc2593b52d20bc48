"""Process-level tuning applied once per worker at start-up."""

from __future__ import annotations

import gc

# A response of the hot shapes allocates tens of thousands of short-lived objects; with the
# default first-generation threshold (700) the collector runs dozens of times per request.
# In a one-off experiment with bench/graph/ data: R1 CPU/request 64-87 → 50 ms, R2 at
# 16 connections 353-375 → 144 ms.
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Move start-up objects (modules, schema) out of the collector's way and collect less
    often: a request leaves no reference cycles (``tests/test_garbage.py``), so what it
    allocates is freed when it is answered and the collector seldom has a reason to run."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
