"""Hypothesis-made bit strings, decimal strings, values, codes and command lines for ``explain``, ``encode``,
``decode`` and the CLI, each case run in a child process (``tests/fuzz_worker.py``) under a watchdog: a case must
answer within ``CASE_SECONDS`` and within the worker's memory limit, with a value or a ``ValueError``/``TypeError``
whose message says something, never another exception, a hang or a crash. The ``@example``s are the fault
campaign's findings, run every time."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

CASE_SECONDS = 5.0
"""The watchdog: a case that takes longer fails (the findings took 9 s to minutes)."""

WORKER = Path(__file__).with_name("fuzz_worker.py")

FUZZ = settings(
    max_examples=int(os.environ.get("FLOATFMT_FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize=os.environ.get("FLOATFMT_FUZZ_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""Derandomized in CI (the same cases every run); ``FLOATFMT_FUZZ_EXAMPLES=5000`` for a random campaign by hand."""


class Worker:
    """The child process, restarted after a case that hung or killed it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        return self.process

    def run(self, call: str, *args: Any, timeout: float = CASE_SECONDS, **options: Any) -> dict[str, str]:
        process = self.process if self.process and self.process.poll() is None else self.start()
        assert process.stdin is not None and process.stdout is not None
        case = json.dumps({"call": call, "args": list(args), "options": options})
        process.stdin.write(case + "\n")
        process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        if not ready:
            self.stop()
            pytest.fail(f"{call}{tuple(args)!r:.300} {options} took more than {timeout} s")
        line = process.stdout.readline()
        if not line:
            status = process.wait()
            self.stop()
            pytest.fail(f"{call}{tuple(args)!r:.300} {options} killed the worker (exit status {status})")
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            self.process = None


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    child = Worker()
    child.run("encode", [1.0], "e4m3", timeout=120)  # imports and first calls, not timed as a case
    yield child
    child.stop()


def check(reply: dict[str, str], what: str) -> None:
    assert reply["outcome"] != "bug", f"{what} raised {reply['type']}:\n{reply['text']}"


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
def test_explain_answers_any_input_at_once(worker, spec, fmt, rounding, overflow):
    check(worker.run("explain", spec, fmt, rounding=rounding, overflow=overflow), f"explain({spec!r:.80}, {fmt!r})")


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
def test_encode_answers_any_input_at_once(worker, values, fmt, dtype, rounding, overflow):
    reply = worker.run("encode", values, fmt, dtype=dtype, rounding=rounding, overflow=overflow)
    check(reply, f"encode({values!r}, {fmt!r}, dtype={dtype})")


@FUZZ
@given(
    codes=st.lists(st.integers(-(2**70), 2**70) | st.floats() | st.booleans() | st.text(max_size=3), max_size=6)
    | st.integers(-(2**100), 2**100),
    fmt=st.sampled_from(FORMATS),
)
@example(codes=2**64, fmt="e4m3")  # OverflowError from numpy
@example(codes=[1, 2**70], fmt="bf16")
@example(codes=[1.5], fmt="e4m3")
def test_decode_answers_any_input_at_once(worker, codes, fmt):
    check(worker.run("decode", codes, fmt), f"decode({codes!r}, {fmt!r})")


words = st.sampled_from(
    ["explain", "table", "info", "formats", "--json", "--rounding", "up", "--overflow", "saturate", "e4m3", "int4",
     "bf16", "22", "-0.0", "1e999999", "0 1011 011", "0x5B", "--help", "-h", "nosuch", "--", "--rounding=odd"]
) | st.text(max_size=12)  # fmt: skip


@FUZZ
@given(argv=st.lists(words, min_size=1, max_size=5))
@example(argv=["explain", "1e999999", "e4m3"])
@example(argv=["explain", "1e-400", "float8_e8m0fnu"])
@example(argv=["explain", "--", "-1e-999999", "bf16"])
def test_the_command_line_answers_any_arguments(worker, argv):
    check(worker.run("cli", *argv), f"floatfmt {' '.join(argv)}")


def test_the_watchdog_catches_a_hang_and_a_bug(worker):
    # the harness itself must fail a case that hangs or raises something unexpected, or it proves nothing
    reply = worker.run("explain", "0 1011 011", "e4m3")
    assert reply["outcome"] == "value" and "22" in reply["text"]
    assert worker.run("decode", [1], "no_such_format")["outcome"] == "error"
    with pytest.raises(pytest.fail.Exception, match="took more than"):
        worker.run("cli", "memory", "llama-3.1-405b", "--gpu", "h100", timeout=0.001)
