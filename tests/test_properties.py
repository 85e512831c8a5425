"""Hypothesis: the fast codec equals the reference on arbitrary inputs and arbitrary formats."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import float_formats, reference_encode, representable_inputs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import floatfmt
from floatfmt._options import ROUNDINGS

pytestmark = pytest.mark.usefixtures("each_kernel_backend")  # numpy's loops and numba's

FORMATS = float_formats(max_bits=32) + [floatfmt.get_format(n) for n in ("int8", "uint8", "int4", "uint2")]
DETERMINISTIC = [r for r in ROUNDINGS if r != "stochastic"]
settings.register_profile("floatfmt", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("floatfmt")


def float_arrays(dtype):
    return hnp.arrays(dtype, st.integers(1, 40), elements=st.floats(width=np.dtype(dtype).itemsize * 8))


custom_formats = st.builds(
    lambda e, m, bias_shift, signed, nan, infinity, subnormals: floatfmt.FloatFormat(
        "custom",
        exponent_bits=e,
        mantissa_bits=m,
        bias=2 ** (e - 1) - 1 + bias_shift,
        signed=signed or nan == "negative_zero",
        nan=nan,
        infinity=infinity and nan != "max_code",
        subnormals=subnormals,
    ),
    e=st.integers(2, 8),
    m=st.integers(0, 10),
    bias_shift=st.integers(-3, 3),
    signed=st.booleans(),
    nan=st.sampled_from(["ieee", "max_code", "negative_zero", "none"]),
    infinity=st.booleans(),
    subnormals=st.booleans(),
).filter(lambda fmt: fmt.nan != "ieee" or fmt.mantissa_bits > 0)


@given(
    values=st.one_of(float_arrays(np.float32), float_arrays(np.float64)),
    fmt=st.sampled_from(FORMATS),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(["ieee", "saturate"]),
    seed=st.integers(0, 2**64 - 1),
)
def test_fast_path_equals_reference(values, fmt, rounding, overflow, seed):
    values = representable_inputs(values, fmt)
    got = floatfmt.encode(values, fmt, rounding=rounding, overflow=overflow, nan="ml_dtypes", seed=seed)
    expected = reference_encode(values, fmt, seed=seed, rounding=rounding, overflow=overflow, nan="ml_dtypes")
    np.testing.assert_array_equal(got, expected)


# a float64 subnormal whose scaling onto a format's coarsest grid underflows (found by this test in CI)
_TINY_IN_A_COARSE_FORMAT = floatfmt.FloatFormat(
    "custom", exponent_bits=2, mantissa_bits=1, bias=-1, signed=False, infinity=False
)


@given(values=float_arrays(np.float64), fmt=custom_formats, rounding=st.sampled_from(ROUNDINGS))
@example(values=np.array([0.0, 5e-324]), fmt=_TINY_IN_A_COARSE_FORMAT, rounding="up")
@example(values=np.array([5e-324, -5e-324]), fmt=_TINY_IN_A_COARSE_FORMAT, rounding="stochastic")
def test_custom_formats_equal_reference(values, fmt, rounding):
    values = representable_inputs(values, fmt)
    got = floatfmt.encode(values, fmt, rounding=rounding, overflow="saturate", seed=1)
    expected = reference_encode(values, fmt, seed=1, rounding=rounding, overflow="saturate")
    np.testing.assert_array_equal(got, expected)
    codes = np.arange(min(2**fmt.bits, 4096), dtype=floatfmt.code_dtype(fmt))
    from helpers import reference_decode, same_floats

    assert same_floats(floatfmt.decode(codes, fmt, dtype=np.float64), reference_decode(codes, fmt))


@given(values=float_arrays(np.float32), fmt=st.sampled_from(FORMATS), rounding=st.sampled_from(ROUNDINGS))
def test_encoding_a_decoded_value_is_idempotent(values, fmt, rounding):
    values = representable_inputs(values, fmt)
    once = floatfmt.round(values, fmt, rounding=rounding, overflow="saturate", seed=5)
    twice = floatfmt.round(once, fmt, rounding=rounding, overflow="saturate", seed=6)
    np.testing.assert_array_equal(once, twice)


@given(
    values=float_arrays(np.float64),
    fmt=st.sampled_from(FORMATS),
    rounding=st.sampled_from(DETERMINISTIC),
    overflow=st.sampled_from(["ieee", "saturate"]),
)
def test_rounding_is_monotonic(values, fmt, rounding, overflow):
    values = np.sort(representable_inputs(values[~np.isnan(values)], fmt))
    rounded = floatfmt.round(values, fmt, rounding=rounding, overflow=overflow)
    rounded = rounded[~np.isnan(rounded)]  # overflow to NaN (formats without infinity) leaves the order
    assert np.all(rounded[1:] >= rounded[:-1])


@given(values=float_arrays(np.float64), fmt=st.sampled_from(FORMATS))
def test_directed_roundings_bracket_the_value(values, fmt):
    values = representable_inputs(values[np.isfinite(values)], fmt)
    if isinstance(fmt, floatfmt.FloatFormat) and not fmt.signed:
        return
    down = floatfmt.round(values, fmt, rounding="down", overflow="saturate").astype(np.float64)
    up = floatfmt.round(values, fmt, rounding="up", overflow="saturate").astype(np.float64)
    inside = (values >= fmt.min) & (values <= fmt.max)
    assert np.all(down[inside] <= values[inside]) and np.all(values[inside] <= up[inside])
