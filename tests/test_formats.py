"""The registry and the derived properties of every format."""

from __future__ import annotations

import importlib
import math
import pickle

import ml_dtypes
import numpy as np
import pytest

import floatfmt
from floatfmt import FloatFormat, IntFormat

ALL = [floatfmt.get_format(name) for name in floatfmt.formats()]
FLOATS = [fmt for fmt in ALL if isinstance(fmt, FloatFormat)]
CUSTOM = [floatfmt.get_format(name) for name in ("e2m2", "e3m3", "e5m7", "e6m1", "e11m4", "e7m20")]


@pytest.mark.parametrize("fmt", FLOATS + CUSTOM, ids=str)
def test_finfo_identities(fmt):
    assert fmt.nmant + fmt.nexp + int(fmt.signed) == fmt.bits
    assert fmt.eps == 2.0**-fmt.nmant
    assert math.frexp(fmt.max)[1] == fmt.maxexp  # max lies in [2**(maxexp-1), 2**maxexp)
    assert fmt.smallest_normal == 2.0**fmt.minexp or not fmt.zero or not fmt.subnormals
    assert 0 < fmt.smallest_subnormal <= fmt.smallest_normal <= fmt.max


@pytest.mark.parametrize("fmt", FLOATS + CUSTOM, ids=str)
def test_max_is_representable_and_one_ulp_more_overflows(fmt):
    assert float(floatfmt.decode(floatfmt.encode(fmt.max, fmt), fmt, dtype=np.float64)) == fmt.max
    beyond = fmt.max + 2.0 ** (fmt.maxexp - 1 - fmt.nmant)  # one ulp more: infinity for float64 itself
    if math.isfinite(beyond):
        with pytest.raises(floatfmt.EncodeError, match="overflow"):
            floatfmt.encode(beyond, fmt, overflow="error", rounding="toward_zero")
    assert float(floatfmt.decode(floatfmt.encode(fmt.smallest_subnormal, fmt), fmt, dtype=np.float64)) == (
        fmt.smallest_subnormal
    )


@pytest.mark.parametrize("fmt", [f for f in FLOATS if f.ml_dtype is not None], ids=str)
def test_properties_match_ml_dtypes_finfo(fmt):
    info = ml_dtypes.finfo(fmt.ml_dtype)
    assert (fmt.bits, fmt.nmant, fmt.nexp, fmt.maxexp, fmt.minexp) == (
        info.bits,
        info.nmant,
        info.nexp,
        info.maxexp,
        info.minexp,
    )
    assert fmt.max == float(info.max) and fmt.min == float(info.min)
    assert fmt.eps == float(info.eps)
    assert fmt.smallest_normal == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)


@pytest.mark.parametrize("fmt", [f for f in ALL if isinstance(f, IntFormat) and f.ml_dtype is not None], ids=str)
def test_int_formats_match_iinfo(fmt):
    info = ml_dtypes.iinfo(fmt.ml_dtype)
    assert (fmt.min, fmt.max) == (int(info.min), int(info.max))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("e4m3", "float8_e4m3fn"),
        ("fp8", "float8_e4m3fn"),
        ("E5M2", "float8_e5m2"),
        ("bf16", "bfloat16"),
        ("fp16", "float16"),
        ("tf32", "tf32"),
        ("fp6", "float6_e3m2fn"),
        ("e2m3", "float6_e2m3fn"),
        ("fp4", "float4_e2m1fn"),
        ("e2m1", "float4_e2m1fn"),
        ("e8m0", "float8_e8m0fnu"),
        ("float8-e4m3fnuz", "float8_e4m3fnuz"),
        (np.float16, "float16"),
        (ml_dtypes.bfloat16, "bfloat16"),
        (np.dtype(ml_dtypes.float8_e5m2fnuz), "float8_e5m2fnuz"),
    ],
)
def test_names_aliases_and_dtypes_resolve(name, expected):
    assert floatfmt.get_format(name).name == expected


def test_every_alias_points_at_a_registered_format():
    for alias, target in floatfmt.aliases().items():
        assert floatfmt.get_format(alias) is floatfmt.get_format(target)


def test_ml_dtype_is_found_by_layout():
    assert floatfmt.get_format("e5m2").ml_dtype == np.dtype(ml_dtypes.float8_e5m2)
    assert floatfmt.get_format("e5m10").ml_dtype == np.dtype(np.float16)
    assert floatfmt.get_format("tf32").ml_dtype is None
    assert floatfmt.get_format("int4").ml_dtype == np.dtype(ml_dtypes.int4)


def test_custom_eXmY_is_ieee_like():
    fmt = floatfmt.get_format("e6m5")
    assert (fmt.bias, fmt.infinity, fmt.nan, fmt.subnormals) == (31, True, "ieee", True)
    assert fmt.max == 2.0**31 * (2 - 2.0**-5)  # exponent field 62 of 0..63, bias 31
    assert floatfmt.get_format("e6m5") is fmt  # cached: one object per name


def test_unknown_name_lists_close_matches():
    with pytest.raises(floatfmt.UnknownFormatError, match=r"unknown format 'float8_e4m3f'.*'float8_e4m3fn'"):
        floatfmt.get_format("float8_e4m3f")
    with pytest.raises(ValueError, match=r"floatfmt\.formats\(\)"):
        floatfmt.get_format("nonsense")
    with pytest.raises(floatfmt.UnknownFormatError, match="at least 2 exponent bits"):
        floatfmt.get_format("e1m6")
    with pytest.raises(TypeError, match="format name"):
        floatfmt.get_format(3.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(exponent_bits=0, mantissa_bits=3), "exponent_bits"),
        (dict(exponent_bits=12, mantissa_bits=3), "exponent_bits"),
        (dict(exponent_bits=4, mantissa_bits=53), "mantissa_bits"),
        (dict(exponent_bits=4, mantissa_bits=3, nan="weird"), "nan must be one of"),
        (dict(exponent_bits=4, mantissa_bits=3, signed=False, nan="negative_zero"), "sign bit"),
        (dict(exponent_bits=4, mantissa_bits=3, zero=False), "without zero"),
        (dict(exponent_bits=11, mantissa_bits=3, bias=-2000), "float64's range"),
        (dict(exponent_bits=4, mantissa_bits=30, subnormals=False), "at most 20 mantissa bits"),
        (dict(exponent_bits=1, mantissa_bits=0, nan="ieee", infinity=True), "no positive finite values"),
    ],
)
def test_invalid_custom_formats_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FloatFormat("bad", **kwargs)


def test_custom_constructor_with_chosen_rules():
    fmt = FloatFormat("e4m3_ocp_like", exponent_bits=4, mantissa_bits=3, infinity=False, nan="max_code")
    assert fmt.layout == floatfmt.get_format("e4m3").layout
    assert fmt.ml_dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    no_subnormals = FloatFormat(
        "e3m2_ftz", exponent_bits=3, mantissa_bits=2, subnormals=False, nan="none", infinity=False
    )
    assert no_subnormals.smallest_subnormal == no_subnormals.smallest_normal == 2.0**-3 * 1.25


def test_formats_are_hashable_comparable_and_picklable():
    fmt = floatfmt.get_format("e4m3")
    assert hash(fmt) == hash(FloatFormat("float8_e4m3fn", 4, 3, infinity=False, nan="max_code"))
    assert pickle.loads(pickle.dumps(fmt)) == fmt
    with pytest.raises(AttributeError):
        fmt.bias = 3  # type: ignore[misc]


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        floatfmt.register_format(FloatFormat("bf16", 8, 7))


def test_registered_names():
    names = floatfmt.formats()
    expected = """float64 float32 tf32 float16 bfloat16 float8_e4m3fn float8_e4m3 float8_e4m3fnuz float8_e4m3b11fnuz
    float8_e5m2 float8_e5m2fnuz float8_e3m4 float8_e8m0fnu float8_e5m3fnu float6_e2m3fn float6_e3m2fn float4_e2m1fn
    int8 uint8 int4 uint4 int2 uint2 int1 uint1""".split()
    assert sorted(names) == sorted(expected)


def test_spec_values_from_the_ocp_tables():
    # OCP 8-bit FP spec v1.0, table 1: E4M3 max 448 (S.1111.110), min subnormal 2**-9; E5M2 max 57344.
    e4m3, e5m2 = floatfmt.get_format("e4m3"), floatfmt.get_format("e5m2")
    assert (e4m3.max, e4m3.smallest_normal, e4m3.smallest_subnormal) == (448.0, 2.0**-6, 2.0**-9)
    assert (e5m2.max, e5m2.smallest_normal, e5m2.smallest_subnormal) == (57344.0, 2.0**-14, 2.0**-16)
    # OCP MX spec v1.0, section 5.3.3: the eight FP4 E2M1 magnitudes.
    codes = np.arange(8, dtype=np.uint8)
    assert floatfmt.decode(codes, "e2m1").tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    # OCP MX spec v1.0, section 5.4.1: E8M0 spans 2**-127 .. 2**127, NaN at 0xFF.
    e8m0 = floatfmt.decode(np.array([0, 127, 254, 255], dtype=np.uint8), "e8m0", dtype=np.float64)
    assert e8m0[:3].tolist() == [2.0**-127, 1.0, 2.0**127] and math.isnan(e8m0[3])


def test_an_exmy_name_registered_later_as_another_format_encodes_as_registered():
    registry = importlib.import_module("floatfmt.formats")  # the module: floatfmt.formats is the function

    before = floatfmt.encode(3.0, "e7m2")  # built on the fly: IEEE bias 63
    decoded_before = floatfmt.decode(int(before), "e7m2")
    custom = FloatFormat("e7m2", 7, 2, bias=3, infinity=False, nan="none")
    floatfmt.register_format(custom)
    try:
        assert floatfmt.encode(3.0, "e7m2") == floatfmt.encode(3.0, custom) != before
        assert floatfmt.decode(int(before), "e7m2") == floatfmt.decode(int(before), custom) != decoded_before
    finally:
        del registry._REGISTRY["e7m2"]
