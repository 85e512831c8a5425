"""Stochastic rounding: reproducible, unbiased, and independent of chunking and threads."""

from __future__ import annotations

import numpy as np
import pytest

import floatfmt
from floatfmt import _parallel, codec
from floatfmt._options import random_bits, random_bits_array

pytestmark = pytest.mark.usefixtures("each_kernel_backend")  # numpy's loops and numba's


def test_vector_random_bits_equal_the_scalar_definition():
    for seed, start in [(0, 0), (12345, 2**32 - 5), (2**64 - 1, 7 * 2**32 + 3)]:
        expected = [random_bits(seed, start + i) for i in range(20)]
        assert random_bits_array(seed, start, 20).tolist() == expected


def test_same_seed_same_codes_other_seed_other_codes():
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    a = floatfmt.encode(x, "e4m3", rounding="stochastic", seed=1)
    np.testing.assert_array_equal(a, floatfmt.encode(x, "e4m3", rounding="stochastic", seed=1))
    assert np.count_nonzero(a != floatfmt.encode(x, "e4m3", rounding="stochastic", seed=2)) > 100


@pytest.mark.parametrize("fmt", ["e4m3", "e2m1", "bf16", "tf32", "int8"])
def test_result_does_not_depend_on_chunks_or_threads(monkeypatch, fmt):
    x = (np.random.default_rng(1).standard_normal((300, 700)) * 3).astype(np.float32)
    whole = floatfmt.encode(x, fmt, rounding="stochastic", seed=9)
    monkeypatch.setattr(codec, "CHUNK_ELEMENTS", 1000)
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_ELEMENTS", 0)
    np.testing.assert_array_equal(floatfmt.encode(x, fmt, rounding="stochastic", seed=9), whole)
    # element i depends on (seed, i) only: encoding the tail alone differs only by the index offset
    np.testing.assert_array_equal(
        floatfmt.encode(x, fmt, rounding="stochastic", seed=9).reshape(-1)[:5000],
        floatfmt.encode(x.reshape(-1)[:5000], fmt, rounding="stochastic", seed=9),
    )


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e2m1", "bf16", "int4"])
def test_unbiased_on_average(fmt):
    # A value 30% of the way between two neighbours rounds up 30% of the time (binomial, 200k draws).
    lower, upper = {
        "e4m3": (1.0, 1.125),
        "e5m2": (1.0, 1.25),
        "e2m1": (2.0, 3.0),
        "bf16": (1.0, 1.0078125),
        "int4": (2.0, 3.0),
    }[fmt]
    x = np.full(200_000, lower + 0.3 * (upper - lower), dtype=np.float32)
    rounded = floatfmt.round(x, fmt, rounding="stochastic", seed=3)
    assert set(np.unique(rounded).tolist()) == {lower, upper}
    share_up = np.mean(rounded == upper)
    assert abs(share_up - 0.3) < 5 * np.sqrt(0.3 * 0.7 / x.size)


def test_unseeded_stochastic_rounding_still_works():
    x = np.full(1000, 1.0625, dtype=np.float32)
    assert set(np.unique(floatfmt.round(x, "e4m3", rounding="stochastic")).tolist()) == {1.0, 1.125}
