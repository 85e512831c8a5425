"""Timing shared by the benchmarks: the best of several runs after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(function: Callable[[], Any], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls, after one untimed call that builds caches and tables."""
    function()
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
