"""Shared fixtures."""

from __future__ import annotations

import pytest

from floatfmt import _backend

SLOW_DOCUMENTS = ("memory.md", "report.md")
"""Docs whose examples read real checkpoints' worth of tensors (seconds each): left out of ``-m "not slow"``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_DOCUMENTS and item.path.parent.name == "docs":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module", params=["numpy", "numba"])
def each_kernel_backend(request):
    """Run a module's tests once with numpy's loops and once with numba's (skipped without numba)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    previous, smallest = _backend.backend(), _backend.COMPILED_MIN_SIZE
    _backend.set_backend(request.param)
    _backend.COMPILED_MIN_SIZE = 0  # compiled loops for the small arrays of the property tests too
    yield request.param
    _backend.set_backend(previous)
    _backend.COMPILED_MIN_SIZE = smallest


@pytest.fixture(scope="session")
def fuzz_worker():
    """The fuzz suites' child process (tests/fuzz_worker.py): cases run there under a watchdog and a memory limit."""
    from fuzz_worker import Worker

    worker = Worker()
    worker.run("encode", [1.0], "e4m3", timeout=120)  # the child's imports and first calls, not timed as a case
    yield worker
    worker.stop()
