"""Every code of every format of <= 16 bits, and every rounding boundary, against ml_dtypes and the reference."""

from __future__ import annotations

import re
import warnings

import ml_dtypes
import numpy as np
import pytest
from helpers import (
    boundary_values,
    float_formats,
    int_formats,
    is_e8m0_tie,
    reference_decode,
    reference_encode,
    representable_inputs,
    same_floats,
    slow_if_wide,
)

import floatfmt
from floatfmt import compat
from floatfmt._options import OVERFLOWS, ROUNDINGS

pytestmark = pytest.mark.usefixtures("each_kernel_backend")  # numpy's loops and numba's

SMALL_FLOATS = float_formats(max_bits=16)
WITH_ML_DTYPE = [fmt for fmt in SMALL_FLOATS if fmt.ml_dtype is not None]
MODES = [(rounding, overflow) for rounding in ROUNDINGS for overflow in OVERFLOWS if overflow != "wrap"]


def ids(formats):
    return [fmt.name for fmt in formats]


def ml_dtypes_cast(values: np.ndarray, fmt: floatfmt.FloatFormat) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return values.astype(fmt.ml_dtype).view(floatfmt.code_dtype(fmt))


@pytest.mark.parametrize("fmt", SMALL_FLOATS + int_formats(), ids=ids(SMALL_FLOATS + int_formats()))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_every_code_matches_reference(fmt, dtype):
    codes = np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt))
    assert same_floats(floatfmt.decode(codes, fmt, dtype=dtype), reference_decode(codes, fmt).astype(dtype))


@pytest.mark.parametrize("fmt", WITH_ML_DTYPE, ids=ids(WITH_ML_DTYPE))
def test_decode_every_code_matches_ml_dtypes(fmt):
    codes = np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt))
    with np.errstate(invalid="ignore"):  # signalling NaN codes
        expected = codes.view(fmt.ml_dtype).astype(np.float64)
    assert same_floats(floatfmt.decode(codes, fmt, dtype=np.float64), expected)


def without_ml_dtypes_quirks(values: np.ndarray, fmt: floatfmt.FloatFormat) -> np.ndarray:
    """Drop the inputs where the installed ml_dtypes differs on purpose (floatfmt.compat; tested in test_compat)."""
    known = {difference.key for difference in compat.ml_dtypes_differences()}
    if fmt.name == "float8_e8m0fnu" and "e8m0_subnormals_round_up" in known:
        values = values[~((np.abs(values) < np.finfo(np.float32).tiny) & (values != 0))]
    if fmt.name == "float8_e8m0fnu" and "e8m0_ties_to_even_code" in known:
        values = values[~is_e8m0_tie(values)]
    return values[~np.isnan(values)] if not fmt.has_nan else values


@pytest.mark.parametrize("fmt", WITH_ML_DTYPE, ids=ids(WITH_ML_DTYPE))
def test_encode_matches_ml_dtypes_on_every_boundary(fmt):
    values = without_ml_dtypes_quirks(boundary_values(fmt), fmt)
    np.testing.assert_array_equal(floatfmt.encode(values, fmt), ml_dtypes_cast(values, fmt))


def sample(values: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    if values.size <= size:
        return values
    return np.random.default_rng(seed).choice(values, size, replace=False)


@pytest.mark.parametrize("rounding, overflow", MODES)
@pytest.mark.parametrize("fmt", [slow_if_wide(fmt) for fmt in SMALL_FLOATS], ids=ids(SMALL_FLOATS))
def test_encode_matches_reference_on_boundaries(fmt, rounding, overflow):
    # 8-bit formats: the whole boundary set; 16-bit formats: a seeded sample of it.
    values = representable_inputs(sample(boundary_values(fmt), 2500), fmt)
    expected = reference_encode(values, fmt, seed=7, rounding=rounding, overflow=overflow)
    accepted = expected >= 0
    got = floatfmt.encode(values[accepted], fmt, rounding=rounding, overflow=overflow, seed=7)
    if rounding == "stochastic":  # the random bits follow the element's index, so compare the whole array
        got = floatfmt.encode(values, fmt, rounding=rounding, overflow="saturate", seed=7)[accepted]
        expected_all = reference_encode(values, fmt, seed=7, rounding=rounding, overflow="saturate")
        np.testing.assert_array_equal(got, expected_all[accepted])
    else:
        np.testing.assert_array_equal(got, expected[accepted])
    rejected = np.count_nonzero(~accepted)
    if rejected:
        with pytest.raises(floatfmt.EncodeError, match=rf"^{rejected} of {values.size} values overflow"):
            floatfmt.encode(values, fmt, rounding=rounding, overflow=overflow, seed=7)


@pytest.mark.parametrize("rounding, overflow", [(r, o) for r in ROUNDINGS for o in OVERFLOWS])
@pytest.mark.parametrize("fmt", int_formats(), ids=ids(int_formats()))
def test_int_encode_matches_reference(fmt, rounding, overflow):
    edges = np.arange(fmt.min - 3, fmt.max + 4, dtype=np.float64)
    values = np.concatenate([edges, edges + 0.5, edges + 0.25, edges - 1e-9, [0.0, -0.0, 1e9, -1e9]])
    if overflow != "wrap":
        values = np.concatenate([values, [np.inf, -np.inf]])
    for dtype in (np.float32, np.float64):
        typed = values.astype(dtype)
        expected = reference_encode(typed, fmt, seed=3, rounding=rounding, overflow=overflow)
        accepted = expected >= 0
        if overflow == "error":
            if rounding != "stochastic":  # stochastic bits follow the index; covered by the other policies
                got = floatfmt.encode(typed[accepted], fmt, rounding=rounding, overflow=overflow)
                np.testing.assert_array_equal(got, expected[accepted])
            with pytest.raises(floatfmt.EncodeError, match="overflow"):
                floatfmt.encode(typed, fmt, rounding=rounding, overflow=overflow, seed=3)
        else:
            got = floatfmt.encode(typed, fmt, rounding=rounding, overflow=overflow, seed=3)
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fmt", [f for f in int_formats() if f.ml_dtype is not None], ids=str)
def test_int_wrap_is_what_integer_casts_do(fmt):
    # numpy's and ml_dtypes' integer-to-integer casts wrap around, in every release.
    values = np.arange(-300, 301, dtype=np.int32)
    codes = floatfmt.encode(values, fmt, rounding="toward_zero", overflow="wrap")
    np.testing.assert_array_equal(codes, values.astype(fmt.ml_dtype).astype(np.int64) % 2**fmt.bits)


@pytest.mark.parametrize("fmt", SMALL_FLOATS, ids=ids(SMALL_FLOATS))
def test_float64_input_rounds_once(fmt):
    # A float64 just above a midpoint must round up; through float32 it would land on the tie and go to even.
    values = boundary_values(fmt).astype(np.float64)
    values = values[np.isfinite(values)]
    nudged = sample(np.concatenate([values * (1 + 2.0**-40), values * (1 - 2.0**-40)]), 3000, seed=1)
    nudged = representable_inputs(nudged, fmt)
    for overflow in ("saturate", "ieee"):
        np.testing.assert_array_equal(
            floatfmt.encode(nudged, fmt, overflow=overflow), reference_encode(nudged, fmt, overflow=overflow)
        )


NARROWED = [
    pytest.param(fmt, rounding, overflow, id=f"{fmt.name}-{rounding}-{overflow}")
    for fmt in [*SMALL_FLOATS, floatfmt.get_format("tf32"), *int_formats()]
    for rounding, overflow in MODES
    if floatfmt.codec.encode_path(fmt, np.float64, rounding, overflow) != "generic"
]


@pytest.mark.parametrize("fmt, rounding, overflow", NARROWED)
def test_float64_rounded_to_odd_through_float32_keeps_every_rounding_decision(fmt, rounding, overflow):
    # float64 input takes float32's path after rounding to odd; values between float32's neighbours, in and below
    # its subnormals and beyond its range must still round as the float64 values themselves.
    values = sample(boundary_values(fmt).astype(np.float64), 1200, seed=3)
    values = values[np.isfinite(values)]
    tiny = np.array([1e-38, 1e-40, 2.0**-149, 2.0**-150, 3 * 2.0**-151, 1e-300, 5e-324])
    huge = np.array([float(np.finfo(np.float32).max) * (1 + 2.0**-30), 2.0**128, 1e39, 1e300, np.inf])
    special = np.concatenate([tiny, huge, -tiny, -huge, [0.0, -0.0, np.nan]])
    nudged = np.concatenate([values * (1 + 2.0**-35), values * (1 - 2.0**-35), values + 2.0**-160, special])
    nudged = representable_inputs(nudged, fmt)
    expected = reference_encode(nudged, fmt, rounding=rounding, overflow=overflow)
    accepted = expected >= 0  # overflow="error" rejects some: the codec must reject the same call
    if accepted.all():
        np.testing.assert_array_equal(floatfmt.encode(nudged, fmt, rounding=rounding, overflow=overflow), expected)
    else:
        with pytest.raises(floatfmt.EncodeError):
            floatfmt.encode(nudged, fmt, rounding=rounding, overflow=overflow)
        kept = nudged[accepted]
        np.testing.assert_array_equal(
            floatfmt.encode(kept, fmt, rounding=rounding, overflow=overflow), expected[accepted]
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf32", "float32", "e6m9", "e8m12", "e5m20"])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_wide_formats_match_reference(name, rounding):
    fmt = floatfmt.get_format(name)
    rng = np.random.default_rng(11)
    magnitudes = np.ldexp(rng.uniform(1, 2, 1500), rng.integers(fmt.minexp - fmt.nmant - 3, fmt.maxexp + 1, 1500))
    values = np.concatenate([magnitudes, -magnitudes, [0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max]])
    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore"):  # values past float32's range become infinities, also worth testing
            typed = values.astype(dtype)
        np.testing.assert_array_equal(
            floatfmt.encode(typed, fmt, rounding=rounding, overflow="saturate", seed=2),
            reference_encode(typed, fmt, seed=2, rounding=rounding, overflow="saturate"),
        )
        np.testing.assert_array_equal(
            floatfmt.encode(typed, fmt, rounding=rounding, seed=2),
            reference_encode(typed, fmt, seed=2, rounding=rounding, overflow="ieee"),
        )


def test_float16_and_bfloat16_inputs_are_exact():
    values = boundary_values(floatfmt.get_format("e4m3"))
    for dtype in (np.float16, ml_dtypes.bfloat16):
        with np.errstate(over="ignore"):
            typed = values.astype(dtype)
        np.testing.assert_array_equal(floatfmt.encode(typed, "e4m3"), floatfmt.encode(typed.astype(np.float32), "e4m3"))


@pytest.mark.parametrize("fmt", ["e4m3", "e2m1", "bf16", "fp16", "int4", "tf32"])
def test_overflow_error_counts_and_explains(fmt):
    big = np.finfo(np.float32).max  # rounds past the largest value of every format narrower than float32
    values = np.array([1.0, big, -big, 2.0], dtype=np.float32)
    with pytest.raises(floatfmt.EncodeError, match=r"^2 of 4 values overflow"):
        floatfmt.encode(values, fmt, overflow="error")


@pytest.mark.parametrize("fmt", ["e2m1", "e2m3", "e3m2", "int8", "int4", "uint2"])
def test_nan_into_format_without_nan_raises_unless_asked(fmt):
    values = np.array([1.0, np.nan, -np.nan], dtype=np.float32)
    with pytest.raises(floatfmt.EncodeError, match=re.escape("2 of 3 values are NaN")):
        floatfmt.encode(values, fmt)
    codes = floatfmt.encode(values, fmt, nan="ml_dtypes")
    target = floatfmt.get_format(fmt)
    if target.ml_dtype is not None and isinstance(target, floatfmt.FloatFormat):
        np.testing.assert_array_equal(codes, ml_dtypes_cast(values, target))


def test_e8m0_zero_and_negatives_become_nan_like_ml_dtypes():
    values = np.array([0.0, -0.0, -1.0, 1.0, 5.0], dtype=np.float32)
    codes = floatfmt.encode(values, "e8m0")
    np.testing.assert_array_equal(codes, ml_dtypes_cast(values, floatfmt.get_format("e8m0")))
    assert codes.tolist() == [255, 255, 255, 127, 129]


@pytest.mark.parametrize("fmt", ["e4m3", "e2m1", "int4", "e8m0"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_odd_lengths_offsets_and_strides(fmt, dtype):
    target = floatfmt.get_format(fmt)
    codes = np.random.default_rng(4).integers(0, 2**target.bits, 1001).astype(np.uint8)
    expected = reference_decode(codes, target).astype(dtype)
    for piece in (slice(None), slice(1, None), slice(1, 700), slice(None, None, 3)):
        assert same_floats(floatfmt.decode(codes[piece], target, dtype=dtype), expected[piece])
