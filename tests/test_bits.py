"""explain, bits, fields, table and info against decode and the reference."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from helpers import float_formats, int_formats, same_floats, slow_if_wide

import floatfmt
from floatfmt import _reference

SMALL = float_formats(max_bits=16) + int_formats()


@pytest.mark.parametrize("fmt", SMALL, ids=str)
def test_fields_and_kinds_agree_with_decode_for_every_code(fmt):
    codes = np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt))
    values = floatfmt.decode(codes, fmt, dtype=np.float64)
    found = floatfmt.fields(codes, fmt)
    assert np.array_equal(np.isnan(values), found.kind == "nan")
    assert np.array_equal(np.isinf(values), found.kind == "inf")
    assert np.array_equal(values == 0, found.kind == "zero")
    if isinstance(fmt, floatfmt.FloatFormat):
        rebuilt = (found.sign << (fmt.exponent_bits + fmt.mantissa_bits)) | (found.exponent << fmt.mantissa_bits)
        assert np.array_equal(rebuilt | found.mantissa, codes)
        finite = np.isfinite(values) & (values != 0)
        subnormal = found.kind == "subnormal"
        assert np.all(np.abs(values[subnormal]) < fmt.smallest_normal)
        assert np.all(np.abs(values[finite & ~subnormal]) >= fmt.smallest_normal)


@pytest.mark.parametrize("fmt", [slow_if_wide(fmt) for fmt in SMALL], ids=str)
def test_explain_agrees_with_decode_and_its_formula_reproduces_exact(fmt):
    codes = np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt))
    decoded = floatfmt.decode(codes, fmt, dtype=np.float64)
    found = floatfmt.fields(codes, fmt)  # explain takes one code apart on Python ints, fields many on arrays
    for code in range(2**fmt.bits):
        d = floatfmt.explain(code, fmt)
        assert same_floats(np.array([d.value]), decoded[code : code + 1])
        one = (found.sign[code], found.exponent[code], found.mantissa[code], found.kind[code])
        assert (d.sign, d.exponent, d.mantissa, d.kind) == one
        assert d.bits.replace(" ", "") == format(code, f"0{fmt.bits}b")
        if code % 61 == 0 or fmt.bits <= 8:
            assert floatfmt.explain(d.bits, fmt).code == code  # printed bit strings parse back
        if isinstance(fmt, floatfmt.FloatFormat) and d.kind in ("normal", "subnormal"):
            assert formula_value(d.formula) == d.exact


def formula_value(formula: str) -> Fraction:
    """Evaluate '(-1)^s × 2^(a−b) × (l + n/d) = ...' from the numbers printed in it."""
    left = formula.split("=")[0]
    sign = re.search(r"\(-1\)\^(\d)", left)
    power = re.search(r"2\^\((\d+)−(\d+)\)", left)
    significand = re.search(r"\(([01]) \+ (\d+)/(\d+)\)", left)
    assert power is not None
    value = Fraction(2) ** (int(power[1]) - int(power[2]))
    if significand:
        value *= int(significand[1]) + Fraction(int(significand[2]), int(significand[3]))
    return -value if sign and sign[1] == "1" else value


def test_the_headline_example():
    d = floatfmt.explain("0 1011 011", "e4m3")
    assert (d.code, d.sign, d.exponent, d.mantissa, d.kind, d.value, d.exact) == (0x5B, 0, 11, 3, "normal", 22.0, 22)
    assert "(-1)^0 × 2^(11−7) × (1 + 3/8) = 22" in str(d)


@pytest.mark.parametrize(
    "spelling",
    [
        "0 1011 011",
        "0_1011_011",
        "01011011",
        "0b01011011",
        "0B0101_1011",
        "0x5B",
        "0x5b",
        " 0 1011 011 ",
        91,
        np.uint8(91),
    ],
)
def test_every_spelling_of_a_code(spelling):
    assert floatfmt.explain(spelling, "e4m3").code == 0x5B


@pytest.mark.parametrize(
    "spec, fmt, message",
    [
        ("0 101 1011", "e4m3", r"groups .* are 1/3/4 bits, but float8_e4m3fn has 1/4/3 .*float8_e3m4"),
        ("0101101", "e4m3", "has 7 bits, but float8_e4m3fn codes have 8"),
        ("010110110", "e4m3", "has 9 bits"),
        ("0 1x11 011", "e4m3", "stray 'x'"),
        ("0b0102", "e4m3", "stray '2'"),
        ("", "e4m3", "empty bit string"),
        ("   ", "e4m3", "empty bit string"),
        ("0x", "e4m3", "not a hex code"),
        ("0x1FF", "e4m3", "outside the 8-bit codes"),
        ("0xZZ", "e4m3", "stray 'z'"),
        (256, "e4m3", "outside \\[0, 255\\]"),
        (-1, "e4m3", "outside"),
        ("1 11 1 1", "e2m1", "1/2/1/1"),
    ],
)
def test_explain_errors(spec, fmt, message):
    with pytest.raises(ValueError, match=message):
        floatfmt.explain(spec, fmt)


def test_explain_rejects_other_types():
    with pytest.raises(TypeError):
        floatfmt.explain(True, "e4m3")
    with pytest.raises(TypeError):
        floatfmt.explain([1, 2], "e4m3")


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e2m1", "bf16", "int4", "e8m0"])
@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd"])
def test_rounding_explanations_agree_with_the_codec(fmt, rounding):
    rng = np.random.default_rng(5)
    for value in rng.standard_normal(40) * 3:
        if fmt == "e8m0":
            value = abs(value)
        d = floatfmt.explain(float(value), fmt, rounding=rounding, overflow="saturate")
        assert d.code == int(floatfmt.encode(np.float64(value), fmt, rounding=rounding, overflow="saturate"))
        r = d.rounding
        assert r is not None and r.lower is not None and r.upper is not None
        assert r.lower <= Fraction(value) <= r.upper
        assert r.direction in ("exact", "up", "down")
        if r.direction == "up":
            assert d.exact > Fraction(value)
        assert math.isclose(r.abs_error, abs(float(d.exact - Fraction(value))), rel_tol=1e-12, abs_tol=1e-300)


def test_ties_overflow_and_underflow_are_reported():
    tie = floatfmt.explain(1.0625, "e4m3").rounding
    assert tie.tie and tie.direction == "down" and float(tie.position) == 0.5
    assert floatfmt.explain(1.0625, "e4m3", rounding="nearest_away").rounding.direction == "up"
    big = floatfmt.explain(500.0, "e4m3")
    assert big.kind == "nan" and big.rounding.overflow
    saturated = floatfmt.explain(500.0, "e4m3", overflow="saturate")
    assert saturated.value == 448.0 and saturated.rounding.overflow
    assert not floatfmt.explain(449.0, "e4m3").rounding.overflow  # rounds back down to 448
    tiny = floatfmt.explain(2.0**-12, "e4m3").rounding
    assert tiny.underflow and tiny.direction == "down"
    assert floatfmt.explain("22.5", "e4m3").rounding.value == Fraction(45, 2)
    assert floatfmt.explain(float("inf"), "e5m2").kind == "inf"


def test_bits_strings():
    assert floatfmt.bits(22.0, "e4m3") == "0 1011 011"
    assert floatfmt.bits(1.0, "e8m0") == "01111111"
    assert floatfmt.bits(-1.0, "int4") == "1111"
    assert floatfmt.bits(0.3, "e4m3", rounding="toward_zero") == "0 0101 001"


def test_table_info_and_displays():
    values = floatfmt.table("e2m1")
    assert len(values) == 16 and values.rows()[7] == {"code": 7, "bits": "0 11 1", "kind": "normal", "value": 6.0}
    assert "| 0x7 | `0 11 1` | normal | 6.0 |" in values.to_markdown()
    assert "<table>" in values._repr_html_()
    assert "more codes" in repr(floatfmt.table("e4m3"))
    with pytest.raises(ValueError, match="at most 16 bits"):
        floatfmt.table("fp32")
    summary = floatfmt.info("e4m3").as_dict()
    assert summary["finite_codes"] == 254 and summary["finite_values"] == 253 and summary["infinity"] is None
    assert (summary["sign_bits"], summary["exponent_bits"], summary["mantissa_bits"], summary["bits"]) == (1, 4, 3, 8)
    assert floatfmt.info("e5m2").as_dict()["nan"] == {"pattern": "S 11111 (mantissa ≠ 0)", "codes": 6}
    assert floatfmt.info("e4m3fnuz").as_dict()["negative_zero"] is None  # structured for JSON, not prose
    assert floatfmt.info("e4m3").as_dict()["negative_zero"] == {"pattern": "1 0000 000"}
    assert floatfmt.info("int4").as_dict()["min"] == -8
    assert "1 sign, 4 exponent, 3 mantissa" in str(floatfmt.info("e4m3"))  # the text keeps its prose
    html = floatfmt.explain(0x5B, "e4m3")._repr_html_()
    assert html.count("<td") == 8 and "2^(11−7)" in html
    # finite counts agree with enumeration
    for fmt in float_formats(max_bits=16):
        values = floatfmt.decode(np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt)), fmt, dtype=np.float64)
        assert floatfmt.info(fmt).as_dict()["finite_codes"] == np.count_nonzero(np.isfinite(values))


def test_as_dict_is_json_ready():
    import json

    shown = floatfmt.explain(1e9, "e4m3").as_dict()
    text = json.dumps(shown, allow_nan=False)  # strict JSON: no NaN or Infinity tokens, no "nan" strings for numbers
    assert '"overflow": true' in text and shown["value"] is None and shown["kind"] == "nan"  # null, and what it is
    assert shown["rounding"]["abs_error"] is None and shown["rounding"]["value_text"] == "1000000000"


def test_reference_neighbours_bracket_the_value():
    fmt = floatfmt.get_format("e4m3")
    lower, upper, even = _reference.neighbours(Fraction(3, 10), fmt)
    assert (lower, upper, even) == (Fraction(9, 32), Fraction(5, 16), False)


def test_table_to_pandas():
    pd = pytest.importorskip("pandas")
    frame = floatfmt.table("e2m1").to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["code", "bits", "kind", "value"]
    assert frame["value"].tolist()[:8] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


FAR_FORMATS = ["e4m3", "e5m2", "float8_e8m0fnu", "e2m1", "bf16", "int4", "uint4"]
ALL_ROUNDINGS = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic"]


@pytest.mark.parametrize("fmt", FAR_FORMATS)
@pytest.mark.parametrize("rounding", ALL_ROUNDINGS)
@pytest.mark.parametrize("overflow", ["ieee", "saturate"])
def test_values_far_outside_a_format_code_as_the_exact_reference_says(fmt, rounding, overflow):
    # a million-digit decimal is explained from its magnitude: the code must be what exact arithmetic gives on a
    # value as far out that the reference can still afford (10**±400), for every mode and seed
    fmt = floatfmt.get_format(fmt)
    for sign, tens in [(s, t) for s in (1, -1) for t in (400, -400)]:
        if sign < 0 and not fmt.signed:
            continue
        for seed in (0, 1, 7) if rounding == "stochastic" else (0,):
            random = floatfmt._options.random_bits(seed, 0) if rounding == "stochastic" else None
            near = Fraction(10) ** tens * sign
            expected = _reference.encode(near, fmt, rounding, overflow, "error", random)
            for spec in (f"{'-' if sign < 0 else ''}1e{tens * 2500}", near):
                d = floatfmt.explain(spec, fmt, rounding=rounding, overflow=overflow, seed=seed)
                assert d.code == expected, (spec if isinstance(spec, str) else tens, seed)
                r = d.rounding
                assert r.overflow == (tens > 0 and isinstance(fmt, floatfmt.FloatFormat))
                assert r.underflow == (tens < 0 and isinstance(fmt, floatfmt.FloatFormat))
                assert r.direction in ("up", "down", "to NaN", "to infinity")
                assert r.rel_error >= 0.5 and not math.isnan(r.abs_error)
                json.dumps(d.as_dict())
                assert str(d)  # prints


def test_long_digit_strings_are_exact_and_error_messages_stay_short():
    # past Python's 4300-digit limit for int(str): still exact (a tie broken by the 5000th digit)
    tie = "1.0625" + "0" * 5000  # exactly halfway between 1 and 1.125 in e4m3: nearest-even goes down
    assert floatfmt.explain(tie, "e4m3").value == 1.0
    assert floatfmt.explain(tie + "1", "e4m3").value == 1.125
    for spec in ("0" + "1" * 4999, "0x" + "f" * 5000, "0 1011 011" + "x" * 5000):
        with pytest.raises(ValueError) as error:
            floatfmt.explain(spec, "e4m3")
        assert len(str(error.value)) < 400 and "characters" in str(error.value)


def test_a_negative_zero_string_keeps_its_sign():
    assert floatfmt.explain("-0", "e4m3").code == floatfmt.explain(-0.0, "e4m3").code == 0x80
    assert floatfmt.explain("-0.000", "bf16").code == 0x8000


@pytest.mark.parametrize(
    ("spec", "fmt", "code", "reading"),
    [
        ("1000", "int4", 0b1000, "read as the bits 1000: 4 binary digits, int4's width"),  # exactly the width
        ("1", "e4m3", None, "read as the number 1"),  # not the width, no leading 0: the number
        ("110", "e2m1", None, "read as the number 110"),
        ("01011011", "e4m3", 0x5B, ""),  # a leading zero: bits, and nothing else it could be
        ("0 1011 011", "e4m3", 0x5B, ""),  # grouped: bits
        ("0b0110", "e2m1", 0b0110, ""),  # a prefix: bits
    ],
)
def test_binary_digit_strings_are_read_by_one_stated_rule(spec, fmt, code, reading):
    d = floatfmt.explain(spec, fmt)
    if code is None:  # the number: its code is encode's, and the rounding is explained
        assert d.code == int(floatfmt.encode(float(spec), fmt)) and d.rounding is not None
    else:
        assert d.code == code and d.rounding is None
    assert d.reading.startswith(reading) if reading else d.reading == ""
    assert (f"({reading}" in str(d)) if reading else "read as" not in str(d)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e2m1", "e3m2", "int4", "int2", "uint4", "float8_e8m0fnu"])
@pytest.mark.parametrize("overflow", ["ieee", "saturate"])
def test_rounding_lines_name_only_values_of_the_format(fmt, overflow):
    # "between 983040 and 1048576" for 1e6 in e4m3 named values e4m3 does not have: every number the line names
    # as a neighbour, a limit or an outcome must be one of the format's values
    values = set(floatfmt.table(fmt).values[np.isfinite(floatfmt.table(fmt).values)].tolist())
    rng = np.random.default_rng(11)
    inputs = np.concatenate([rng.standard_normal(60) * 4, rng.standard_normal(30) * 1e3, [449.0, 500.0, 1.3, -22.0]])
    if fmt in ("uint4", "float8_e8m0fnu"):
        inputs = np.abs(inputs) + (2.0**-120 if fmt == "float8_e8m0fnu" else 0)
    named = re.compile(r"(?:between|and|value|to|above) (-?\d[\d.e+-]*)")
    for value in inputs:
        d = floatfmt.explain(float(value), fmt, overflow=overflow, nan="ml_dtypes")
        where = str(d.rounding).splitlines()[1]
        for number in named.findall(where):
            assert float(number) in values, (value, where)
        if d.rounding.direction == "exact":
            assert where.startswith("    exact:")
