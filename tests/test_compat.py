"""floatfmt.compat's table of differences from ml_dtypes holds for the installed release, and every option it
names gives the installed ml_dtypes' result on many values, not only the probe's one."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
from helpers import boundary_values, float_formats, int_formats, is_e8m0_tie

import floatfmt
from floatfmt import compat

INSTALLED = {difference.key for difference in compat.ml_dtypes_differences()}
ML_DTYPES_FLOATS = [  # ml_dtypes' own float types (numpy's float16 cast rounds float64 once in every release)
    fmt for fmt in float_formats(16) if fmt.ml_dtype is not None and fmt.name not in ("float16",)
]
ML_DTYPES_INTS = [fmt for fmt in int_formats() if fmt.ml_dtype is not None and fmt.bits < 8]


def ml_cast(values: np.ndarray, fmt: floatfmt.Format) -> np.ndarray:
    """ml_dtypes' cast as codes (integers as their two's-complement codes), its warnings silenced."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        cast = values.astype(fmt.ml_dtype)
    if isinstance(fmt, floatfmt.IntFormat):
        return cast.astype(np.int64) % 2**fmt.bits
    return cast.view(floatfmt.code_dtype(fmt))


def test_the_installed_ml_dtypes_behaves_as_documented():
    shown = {key for key, present in compat.probe_installed().items() if present}
    assert shown == INSTALLED, f"ml_dtypes {ml_dtypes.__version__}: update floatfmt.compat.DIFFERENCES"
    assert compat.installed_matches_documented()


@pytest.mark.parametrize(
    "version, expected",
    [
        ("0.5.0", {"float64_through_float32", "e8m0_ties_to_even_code", "e8m0_subnormals_round_up", "int_wraparound"}),
        ("0.5.4", {"float64_through_float32", "e8m0_subnormals_round_up", "int_wraparound"}),
        ("0.6.0", {"float64_through_float32", "e8m0_subnormals_round_up", "int_wraparound"}),
        ("0.7.0", {"int_out_of_range_zero"}),
        ("0.7.1rc1", {"int_out_of_range_zero"}),
        ("0.8.0.dev0", {"int_out_of_range_zero"}),
    ],
)
def test_differences_by_release(version, expected):
    always = {"nan_to_zero", "int_truncation"}
    assert {d.key for d in compat.ml_dtypes_differences(version)} == expected | always


def test_a_version_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="not a version number"):
        compat.ml_dtypes_differences("latest")


def test_table_has_a_column_per_release_and_a_row_per_difference():
    lines = compat.differences_table().splitlines()
    assert lines[0].count("|") == 1 + 3 + len(compat.RELEASES) + 1 and len(lines) == 2 + len(compat.DIFFERENCES)
    wrap = next(line for line in lines if "wrapped around" in line)
    assert "| yes | yes | yes | no |" in wrap
    assert [d.releases for d in compat.DIFFERENCES[:4]] == ["before 0.7.0", "before 0.5.1", "before 0.7.0", "all"]


def nudged_float64(fmt: floatfmt.FloatFormat) -> np.ndarray:
    values = boundary_values(fmt).astype(np.float64)
    values = values[np.isfinite(values) & (values != 0)]
    nudged = np.concatenate([values * (1 + 2.0**-40), values * (1 - 2.0**-40)])
    if not fmt.signed:
        nudged = nudged[nudged > 0]
    return nudged


@pytest.mark.parametrize("fmt", ML_DTYPES_FLOATS, ids=str)
def test_float64_input_against_ml_dtypes(fmt):
    values = nudged_float64(fmt)
    expected = ml_cast(values, fmt)
    if fmt.name == "float8_e8m0fnu":  # its own differences are tested below
        keep = np.abs(values) >= np.finfo(np.float32).tiny
        if "e8m0_ties_to_even_code" in INSTALLED:
            keep &= ~is_e8m0_tie(values)  # and then no float64 rounds differently through float32
        values, expected = values[keep], expected[keep]
    if "float64_through_float32" in INSTALLED:  # the documented option reproduces it
        np.testing.assert_array_equal(floatfmt.encode(values.astype(np.float32), fmt), expected)
        if fmt.name != "float8_e8m0fnu" or "e8m0_ties_to_even_code" not in INSTALLED:
            assert not np.array_equal(floatfmt.encode(values, fmt), expected)  # the difference is real
    else:
        np.testing.assert_array_equal(floatfmt.encode(values, fmt), expected)


def test_e8m0_from_float32_subnormals_against_ml_dtypes():
    fmt = floatfmt.get_format("e8m0")
    bits = np.arange(1, 0x800000, 97, dtype=np.uint32)  # positive float32 subnormals, evenly spread
    values = bits.view(np.float32)
    expected = ml_cast(values, fmt)
    nearest = floatfmt.encode(values, fmt)
    if "e8m0_subnormals_round_up" in INSTALLED:
        between = values > np.float32(2.0**-127)
        np.testing.assert_array_equal(expected[between], floatfmt.encode(values[between], fmt, rounding="up"))
        np.testing.assert_array_equal(expected[~between], nearest[~between])
        assert np.count_nonzero(expected != nearest) > 0
    else:
        np.testing.assert_array_equal(expected, nearest)


def test_e8m0_ties_against_ml_dtypes():
    fmt = floatfmt.get_format("e8m0")
    ties = np.ldexp(np.float32(1.5), np.arange(-126, 127)).astype(np.float32)
    expected, got = ml_cast(ties, fmt), floatfmt.encode(ties, fmt)
    np.testing.assert_array_equal(got, floatfmt.encode(ties, fmt, rounding="up"))  # floatfmt: the larger
    if "e8m0_ties_to_even_code" in INSTALLED:
        np.testing.assert_array_equal(expected, got - (got % 2))  # the even code of the two neighbours
    else:
        np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize("fmt", [f for f in ML_DTYPES_FLOATS if not f.has_nan] + ML_DTYPES_INTS, ids=str)
def test_nan_option_gives_ml_dtypes_result(fmt):
    values = np.array([np.nan, -np.nan, fmt.max, fmt.min, 0.0, np.nan], dtype=np.float32)  # the rest in range
    with pytest.raises(floatfmt.EncodeError, match="NaN"):
        floatfmt.encode(values, fmt)
    rounding = "toward_zero" if isinstance(fmt, floatfmt.IntFormat) else "nearest_even"
    got = floatfmt.encode(values, fmt, nan="ml_dtypes", rounding=rounding)
    np.testing.assert_array_equal(got, ml_cast(values, fmt))


@pytest.mark.parametrize("fmt", ML_DTYPES_INTS, ids=str)
def test_integers_in_range_truncate_in_ml_dtypes(fmt):
    values = np.linspace(fmt.min - 0.99, fmt.max + 0.99, 997).astype(np.float32)
    got = floatfmt.encode(values, fmt, rounding="toward_zero")
    np.testing.assert_array_equal(got, ml_cast(values, fmt))
    assert not np.array_equal(floatfmt.encode(values, fmt), got)  # floatfmt's default rounds to nearest


@pytest.mark.parametrize("fmt", ML_DTYPES_INTS, ids=str)
def test_integers_out_of_range_against_ml_dtypes(fmt):
    values = np.linspace(-300, 300, 2401, dtype=np.float32)
    expected = ml_cast(values, fmt)
    truncated = np.trunc(values)
    out_of_range = (truncated < fmt.min) | (truncated > fmt.max)
    wrapped = floatfmt.encode(values, fmt, rounding="toward_zero", overflow="wrap")
    if "int_wraparound" in INSTALLED:
        np.testing.assert_array_equal(wrapped, expected)
    if "int_out_of_range_zero" in INSTALLED:
        assert np.all(expected[out_of_range] == 0)
        np.testing.assert_array_equal(expected[~out_of_range], wrapped[~out_of_range])
    # either way floatfmt's default saturates, and says so with overflow="error"
    saturated = floatfmt.encode(values, fmt, rounding="toward_zero")
    assert set(floatfmt.decode(saturated[out_of_range], fmt).tolist()) == {fmt.min, fmt.max}
    with pytest.raises(floatfmt.EncodeError, match="overflow"):
        floatfmt.encode(values, fmt, overflow="error")
