"""Small calls, as a notebook makes them in a loop: floatfmt against ml_dtypes on the same values, per call.

    python benchmarks/bench_small.py                  # the table
    python benchmarks/bench_small.py --json out.json

Each row is timed in rounds that interleave floatfmt and ml_dtypes (so that a busy spell of the machine hits
both); each round keeps the best of three repeats, and the table gives the median over the rounds. Calls this
small stay below the compiled loops' threshold: they run numpy's loops whatever the backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

import floatfmt


def cases() -> list[tuple[str, Callable[[], Any], str, Callable[[], Any]]]:
    """(floatfmt call, its function, the ml_dtypes call a user would write instead, its function)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100).astype(np.float32)
    codes = floatfmt.encode(x, "e4m3")
    floats = [float(v) for v in x]
    many = [float(v) for v in rng.standard_normal(10_000)]
    e4m3, f16, bf16 = ml_dtypes.float8_e4m3fn, np.float16, ml_dtypes.bfloat16
    scalar = np.float32(1.5)
    return [
        ('encode(<100 float32>, "e4m3")', lambda: floatfmt.encode(x, "e4m3"), "astype", lambda: x.astype(e4m3)),
        (
            'decode(<100 codes>, "e4m3")',
            lambda: floatfmt.decode(codes, "e4m3"),
            "view + astype",
            lambda: codes.view(e4m3).astype(np.float32),
        ),
        ('encode(<100 float32>, "fp16")', lambda: floatfmt.encode(x, "fp16"), "astype", lambda: x.astype(f16)),
        ('encode(<100 float32>, "bf16")', lambda: floatfmt.encode(x, "bf16"), "astype", lambda: x.astype(bf16)),
        (
            'encode(1.5, "e4m3")',
            lambda: floatfmt.encode(1.5, "e4m3"),
            "np.array(1.5).astype",
            lambda: np.array(1.5).astype(e4m3),
        ),
        (
            'encode(np.float32(1.5), "e4m3")',
            lambda: floatfmt.encode(scalar, "e4m3"),
            "astype",
            lambda: scalar.astype(e4m3),
        ),
        (
            'encode(<list of 100 floats>, "e4m3")',
            lambda: floatfmt.encode(floats, "e4m3"),
            "np.asarray(l).astype",
            lambda: np.asarray(floats).astype(e4m3),
        ),
        (
            'encode(<list of 10,000 floats>, "e4m3")',
            lambda: floatfmt.encode(many, "e4m3"),
            "np.asarray(l).astype",
            lambda: np.asarray(many).astype(e4m3),
        ),
    ]


def per_call(function: Callable[[], Any]) -> float:
    """Seconds per call: the best of three repeats of enough calls to take about 20 ms."""
    timer = timeit.Timer(function)
    number = max(1, int(0.02 / max(timer.timeit(10) / 10, 1e-9)))
    return min(timer.repeat(3, number)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    rows = []
    for call, ours, theirs_name, theirs in cases():
        ours(), theirs()  # plans, tables and steps built outside the timing
        times: dict[str, list[float]] = {"floatfmt": [], "ml_dtypes": []}
        for _ in range(args.rounds):
            times["floatfmt"].append(per_call(ours))
            times["ml_dtypes"].append(per_call(theirs))
        floatfmt_us = statistics.median(times["floatfmt"]) * 1e6
        ml_dtypes_us = statistics.median(times["ml_dtypes"]) * 1e6
        rows.append({"call": call, "floatfmt_us": floatfmt_us, "ml_dtypes": theirs_name,
                     "ml_dtypes_us": ml_dtypes_us, "ratio": floatfmt_us / ml_dtypes_us})  # fmt: skip
    print(f"{'call':<42} {'floatfmt':>10} {'ml_dtypes':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row['call']:<42} {row['floatfmt_us']:>8.2f}us {row['ml_dtypes_us']:>8.2f}us {row['ratio']:>6.1f}x")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()
