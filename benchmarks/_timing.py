"""Timing shared by the benchmarks: the best of several runs after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(function: Callable[[], Any], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls, after untimed calls that build caches and tables and, under the
    ``auto`` backend, until the compiled loops they ask for are ready (a call meanwhile runs numpy's loops)."""
    from floatfmt._backend import wait_for_loops

    for _ in range(3):  # a call with the loops ready may ask for more (another chunk's types)
        function()
        wait_for_loops()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def numba_version() -> str:
    """numba's version, or "not installed" (then floatfmt's loops run in numpy)."""
    try:
        import numba
    except ImportError:
        return "not installed"
    return str(numba.__version__)
