"""Parallel work for the whole package: cache-sized chunks over a thread pool, safe across fork.

numpy (and the compiled loops, which release the GIL) run in parallel on threads, so the codec and the
quantizers split large arrays into chunks that fit in L2 cache and hand contiguous runs of chunks to a shared
pool. Results come back in chunk order, so nothing a caller computes depends on how many threads ran.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = ["CHUNK_ELEMENTS", "PARALLEL_MIN_ELEMENTS", "map_chunks", "per_thread_chunk", "scratch", "thread_count"]

CHUNK_ELEMENTS = 1 << 16
"""Elements per chunk: a float32 chunk and its few temporaries stay inside L2 (measured in benchmarks/)."""

PARALLEL_MIN_ELEMENTS = 1 << 18
"""Below this many elements of work, threads cost more than they save."""

Result = TypeVar("Result")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


def _forget_pool_after_fork() -> None:
    """A forked child (a process pool's worker) inherits the pool object but none of its threads: work
    submitted to it would wait forever. The child starts its own when it first needs one."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def thread_count() -> int:
    """The CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def map_chunks(
    work: Callable[[int, int], Result], count: int, chunk: int = CHUNK_ELEMENTS, *, item_elements: int = 1
) -> list[Result]:
    """``[work(start, stop) for each chunk-sized piece of range(count)]``, threads taking contiguous runs.

    ``item_elements`` is how many elements one item of ``range(count)`` stands for (a row's length, when the
    items are rows), so that the choice to use threads follows the amount of work. A call from inside a pool
    thread runs serially: the pool's threads never wait on each other. NaN, infinity and overflow are the
    codec's policies, not accidents, so numpy's floating-point warnings are off inside.
    """
    chunk = max(chunk, 1)
    chunks = (count + chunk - 1) // chunk
    threads = min(thread_count(), chunks)

    def run(first: int, last: int) -> list[Result]:
        with np.errstate(invalid="ignore", over="ignore"):
            return [work(i * chunk, min((i + 1) * chunk, count)) for i in range(first, last)]

    def run_in_pool(first: int) -> list[Result]:
        _local.in_pool = True  # a pool thread: map_chunks calls made by `work` run serially
        return run(first, min(first + per_thread, chunks))

    if count * item_elements < PARALLEL_MIN_ELEMENTS or threads <= 1 or getattr(_local, "in_pool", False):
        return run(0, chunks)
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(thread_count(), thread_name_prefix="floatfmt")
    per_thread = (chunks + threads - 1) // threads
    parts = _pool.map(run_in_pool, range(0, chunks, per_thread))
    return [result for part in parts for result in part]


def per_thread_chunk(size: int) -> int:
    """A piece size that gives each thread one even-length piece (at least one chunk): for work that makes no
    temporaries, such as a platform cast, where cache-sized chunks only add calls."""
    piece = -(-size // thread_count())
    return max(CHUNK_ELEMENTS, piece + piece % 2)


def scratch(slot: int, size: int, dtype: Any) -> np.ndarray:
    """A per-thread buffer, reused across chunks so that numpy's passes allocate nothing (a small one is simply
    allocated: cheaper than the lookup)."""
    if size <= 4096:
        return np.empty(size, dtype=dtype)
    buffers: dict[tuple[int, np.dtype[Any]], np.ndarray] = _local.__dict__.setdefault("buffers", {})
    key = (slot, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(max(size, CHUNK_ELEMENTS), dtype=dtype)
    return buffer[:size]
