"""Hypothesis-made bit strings, decimal strings, values, codes and command lines for ``explain``, ``encode``,
``decode`` and the CLI, each case run in a child process (``tests/fuzz_worker.py``) under a watchdog: a case must
answer within 5 seconds and within the worker's memory limit, with a value or a ``ValueError``/``TypeError``
whose message says something, never another exception, a hang or a crash. The ``@example``s are the fault
campaign's findings, run every time."""

from __future__ import annotations

import pytest
from helpers import FUZZ
from hypothesis import example, given
from hypothesis import strategies as st

FORMATS = ["e4m3", "e5m2", "float8_e8m0fnu", "e2m1", "e3m2", "bf16", "fp16", "tf32", "int4", "uint4", "int8",
           "e4m3fnuz", "no_such_format"]  # fmt: skip
ROUNDINGS = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic", "sideways"]
OVERFLOWS = ["ieee", "saturate", "error", "wrap", "never"]

digits = st.text("0123456789", min_size=1, max_size=12) | st.integers(1, 6000).map(lambda n: "7" * n)
decimal_strings = st.builds(
    lambda sign, whole, point, fraction, exponent: f"{sign}{whole}{point}{fraction}{exponent}",
    st.sampled_from(["", "-", "+"]),
    digits,
    st.sampled_from(["", "."]),
    st.text("0123456789", max_size=8),
    st.sampled_from([""]) | st.integers(-(10**7), 10**7).map(lambda e: f"e{e}"),
)
prefixed = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["0b", "0x", "0B", "0X"]),
    st.text("0123456789abcdefABCDEF_g", max_size=40),
)
bit_strings = st.text("01 _", max_size=40) | prefixed
specs = (
    decimal_strings
    | bit_strings
    | st.text(max_size=20)
    | st.integers(-(2**80), 2**80)
    | st.floats()
    | st.sampled_from(["inf", "-inf", "nan", "-0", "-0.0", "1e999999", "1e-999999"])
)


@FUZZ
@given(
    spec=specs, fmt=st.sampled_from(FORMATS), rounding=st.sampled_from(ROUNDINGS), overflow=st.sampled_from(OVERFLOWS)
)
@example(spec="1e999999", fmt="e4m3", rounding="nearest_even", overflow="ieee")  # minutes of exact arithmetic
@example(spec="1e99999", fmt="e4m3", rounding="toward_zero", overflow="saturate")  # 9-17 s
@example(spec="-1e-999999", fmt="e4m3", rounding="stochastic", overflow="ieee")
@example(spec="1e-400", fmt="float8_e8m0fnu", rounding="nearest_even", overflow="ieee")  # OverflowError
@example(spec="1" * 5000 + ".5", fmt="bf16", rounding="nearest_even", overflow="ieee")  # the 4300-digit limit
@example(spec="0x" + "f" * 5000, fmt="e4m3", rounding="nearest_even", overflow="ieee")  # str() of a huge code
@example(spec="1" * 5000, fmt="e4m3", rounding="nearest_even", overflow="ieee")  # a message quoting it twice
@example(spec=2**70, fmt="int4", rounding="nearest_even", overflow="ieee")
def test_explain_answers_any_input_at_once(fuzz_worker, spec, fmt, rounding, overflow):
    fuzz_worker.check("explain", spec, fmt, rounding=rounding, overflow=overflow)


values = st.lists(st.floats() | st.integers(-(2**70), 2**70), max_size=6)


@FUZZ
@given(
    values=values,
    fmt=st.sampled_from(FORMATS),
    dtype=st.sampled_from([None, "float32", "float64", ">f4", ">f8", "float16", "int64", "bool", "object"]),
    rounding=st.sampled_from(ROUNDINGS),
    overflow=st.sampled_from(OVERFLOWS),
)
@example(values=[1.5, -2.0], fmt="e4m3", dtype=">f4", rounding="nearest_even", overflow="ieee")  # big-endian
@example(values=[2**64], fmt="e5m2", dtype=None, rounding="nearest_even", overflow="saturate")
def test_encode_answers_any_input_at_once(fuzz_worker, values, fmt, dtype, rounding, overflow):
    fuzz_worker.check("encode", values, fmt, dtype=dtype, rounding=rounding, overflow=overflow)


@FUZZ
@given(
    codes=st.lists(st.integers(-(2**70), 2**70) | st.floats() | st.booleans() | st.text(max_size=3), max_size=6)
    | st.integers(-(2**100), 2**100),
    fmt=st.sampled_from(FORMATS),
)
@example(codes=2**64, fmt="e4m3")  # OverflowError from numpy
@example(codes=[1, 2**70], fmt="bf16")
@example(codes=[1.5], fmt="e4m3")
def test_decode_answers_any_input_at_once(fuzz_worker, codes, fmt):
    fuzz_worker.check("decode", codes, fmt)


words = st.sampled_from(
    ["explain", "table", "info", "formats", "--json", "--rounding", "up", "--overflow", "saturate", "e4m3", "int4",
     "bf16", "22", "-0.0", "1e999999", "0 1011 011", "0x5B", "--help", "-h", "nosuch", "--", "--rounding=odd"]
) | st.text(max_size=12)  # fmt: skip


@FUZZ
@given(argv=st.lists(words, min_size=1, max_size=5))
@example(argv=["explain", "1e999999", "e4m3"])
@example(argv=["explain", "1e-400", "float8_e8m0fnu"])
@example(argv=["explain", "--", "-1e-999999", "bf16"])
def test_the_command_line_answers_any_arguments(fuzz_worker, argv):
    fuzz_worker.check("cli", *argv)


def test_the_watchdog_catches_a_hang_and_a_bug(fuzz_worker):
    # the harness itself must fail a case that hangs or raises something unexpected, or it proves nothing
    reply = fuzz_worker.check("explain", "0 1011 011", "e4m3")
    assert reply["outcome"] == "value" and "22" in reply["text"]
    assert fuzz_worker.check("decode", [1], "no_such_format")["outcome"] == "error"
    with pytest.raises(pytest.fail.Exception, match="raised ZeroDivisionError"):
        fuzz_worker.check("harness", "bug")
    with pytest.raises(pytest.fail.Exception, match="raised MemoryError"):
        fuzz_worker.check("harness", "allocation")
    with pytest.raises(pytest.fail.Exception, match=r"took more than 0\.5 s"):
        fuzz_worker.check("harness", "hang", timeout=0.5)
    assert fuzz_worker.check("harness", "alive again")["text"] == "alive again"  # restarted after the hang
