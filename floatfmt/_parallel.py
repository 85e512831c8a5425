"""Parallel work for the whole package: cache-sized chunks over a thread pool, safe across fork.

numpy (and the compiled loops, which release the GIL) run in parallel on threads, so the codec and the
quantizers split large arrays into chunks that fit in L2 cache, and a shared pool's threads each take the next
chunk as they finish one. Results come back in chunk order, so nothing a caller computes depends on
how many threads ran or which ran what.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "CHUNK_ELEMENTS",
    "DEQUANTIZE_CHUNK_ELEMENTS",
    "PARALLEL_MIN_ELEMENTS",
    "map_chunks",
    "per_thread_chunk",
    "scratch",
    "thread_count",
]

CHUNK_ELEMENTS = 1 << 16
"""Elements per chunk: a float32 chunk and its few temporaries stay inside L2 (measured in benchmarks/)."""

DEQUANTIZE_CHUNK_ELEMENTS = 4 * CHUNK_ELEMENTS
"""Values per chunk when dequantizing: numpy's few passes over block bytes cost less than the calls they take at
``CHUNK_ELEMENTS`` (the chunk's values and its byte codes still fit in L2); the compiled loops are indifferent."""

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
    """``[work(start, stop) for each chunk-sized piece of range(count)]``, the pool's threads each taking the next
    piece as it finishes its last (a core slowed by another process does less, rather than holding the rest up),
    the results in piece order.

    ``item_elements`` is how many elements one item of ``range(count)`` stands for (a row's length, when the
    items are rows), so that the choice to use threads follows the amount of work. A call from inside the work
    of another runs serially: the threads never wait on each other. An exception in any piece stops the threads
    taking more and is raised once they have finished the pieces they hold. NaN, infinity and overflow are the
    codec's policies, not accidents, so numpy's floating-point warnings are off inside.
    """
    chunk = max(chunk, 1)
    chunks = (count + chunk - 1) // chunk
    threads = min(thread_count(), chunks)

    def piece(i: int) -> Result:
        return work(i * chunk, min((i + 1) * chunk, count))

    if count * item_elements < PARALLEL_MIN_ELEMENTS or threads <= 1 or getattr(_local, "in_pool", False):
        with np.errstate(invalid="ignore", over="ignore"):
            return [piece(i) for i in range(chunks)]
    results: list[Any] = [None] * chunks
    taken = itertools.count()  # next() on it is one step under the GIL: each piece is taken once
    stopped: list[bool] = []

    def take() -> None:
        _local.in_pool = True  # work that calls map_chunks runs serially in this thread
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                while not stopped:
                    i = next(taken)
                    if i >= chunks:
                        return
                    results[i] = piece(i)
        except BaseException:
            stopped.append(True)
            raise
        finally:
            _local.in_pool = False

    # The calling thread waits rather than works: Ctrl-C then lands in Python, not inside a compiled loop (which
    # would return with the interrupt pending and raise SystemError).
    helpers = [_shared_pool().submit(take) for _ in range(threads)]
    try:
        wait(helpers)
    finally:
        stopped.append(True)  # a no-op once every piece is done; after Ctrl-C here, the threads take no more
        for helper in helpers:
            helper.cancel()  # not started (the pool busy with another caller's work): nothing left for it
        wait(helpers)  # no thread writes on after the return
    for helper in helpers:
        if not helper.cancelled():
            helper.result()  # raises a helper's exception
    return results


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(thread_count(), thread_name_prefix="floatfmt")
        return _pool


PIECES_PER_THREAD = 4
"""For work that makes no temporaries: enough pieces per thread that a slowed core hands some to the other."""


def per_thread_chunk(size: int) -> int:
    """A piece size that gives each thread a few even-length pieces (at least one chunk): for work that makes no
    temporaries, such as a platform cast, where cache-sized chunks only add calls."""
    piece = -(-size // (thread_count() * PIECES_PER_THREAD))
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
