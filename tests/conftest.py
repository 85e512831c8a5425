"""Shared fixtures."""

from __future__ import annotations

import pytest

from floatfmt import _kernels


@pytest.fixture(scope="module", params=["numpy", "numba"])
def each_kernel_backend(request):
    """Run a module's tests once with numpy's loops and once with numba's (skipped without numba)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    previous = _kernels.backend()
    _kernels.set_backend(request.param)
    yield request.param
    _kernels.set_backend(previous)
