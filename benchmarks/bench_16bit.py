"""float16 in every rounding mode and overflow policy, and bfloat16, beside numpy's and ml_dtypes' casts, torch's
(one thread and two) and memcpy, in one process.

    python benchmarks/bench_16bit.py
    python benchmarks/bench_16bit.py --size 1000000 --json out.json

Each figure is the best of ``--repeat`` runs, in millions of values per second, with ``out=`` reused so that no
run pays for fresh pages.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import ml_dtypes
import numpy as np
from _timing import best_time

import floatfmt

MODES = [("nearest_even", "saturate"), ("toward_zero", "ieee"), ("up", "ieee"), ("down", "saturate")]


def rate(call: Callable[[], object], size: int, repeat: int) -> float:
    return size / best_time(call, repeat) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    x = (np.random.default_rng(0).standard_normal(args.size) * 100).astype(np.float32)
    codes, values = np.empty(x.size, np.uint16), np.empty(x.size, np.float32)
    floatfmt.encode(x[:100_000], "fp16")  # the compiled loops, loaded before the clock starts
    floatfmt.decode(codes[:100_000], "fp16")
    rows: list[tuple[str, float]] = [
        ("floatfmt encode nearest_even/ieee", rate(lambda: floatfmt.encode(x, "fp16", out=codes), x.size, args.repeat)),
        ("floatfmt decode", rate(lambda: floatfmt.decode(codes, "fp16", out=values), x.size, args.repeat)),
    ]
    for rounding, overflow in MODES:
        floatfmt.encode(x[:100_000], "fp16", rounding=rounding, overflow=overflow)
        call = lambda: floatfmt.encode(x, "fp16", rounding=rounding, overflow=overflow, out=codes)  # noqa: B023, E731
        rows.append((f"floatfmt encode {rounding}/{overflow}", rate(call, x.size, args.repeat)))
    rows.append(("numpy astype(float16)", rate(lambda: x.astype(np.float16), x.size, args.repeat)))
    rows.append(
        (
            "numpy clip + astype (saturate)",
            rate(lambda: np.clip(x, -65504, 65504).astype(np.float16), x.size, args.repeat),
        )
    )
    rows.append(
        (
            "numpy astype(float32) of float16",
            rate(lambda: codes.view(np.float16).astype(np.float32), x.size, args.repeat),
        )
    )
    floatfmt.encode(x[:100_000], "bf16")
    floatfmt.decode(codes[:100_000], "bf16")
    bf16 = np.empty(x.size, np.uint16)
    rows.append(("floatfmt encode bf16", rate(lambda: floatfmt.encode(x, "bf16", out=bf16), x.size, args.repeat)))
    rows.append(("floatfmt decode bf16", rate(lambda: floatfmt.decode(bf16, "bf16", out=values), x.size, args.repeat)))
    rows.append(("ml_dtypes astype(bfloat16)", rate(lambda: x.astype(ml_dtypes.bfloat16), x.size, args.repeat)))
    widen = lambda: bf16.view(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    rows.append(("ml_dtypes astype(float32) of bfloat16", rate(widen, x.size, args.repeat)))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        tensor = torch.from_numpy(x)
        half, brain = tensor.half(), tensor.bfloat16()
        threads = torch.get_num_threads()
        for count in (1, 2):
            torch.set_num_threads(count)
            rows.append((f"torch .half(), {count} thread(s)", rate(tensor.half, x.size, args.repeat)))
            rows.append((f"torch .float() of half, {count} thread(s)", rate(half.float, x.size, args.repeat)))
            rows.append((f"torch .bfloat16(), {count} thread(s)", rate(tensor.bfloat16, x.size, args.repeat)))
            rows.append((f"torch .float() of bfloat16, {count} thread(s)", rate(brain.float, x.size, args.repeat)))
        torch.set_num_threads(threads)
    rows.append(("memcpy of the float32 input", rate(lambda: np.copyto(values, x), x.size, args.repeat)))
    print(f"floatfmt {floatfmt.__version__}, numpy {np.__version__}, {x.size:,} float32 values, best of {args.repeat}")
    for name, mvals in rows:
        print(f"{name:38s} {mvals:8.0f} Mval/s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({name: mvals for name, mvals in rows}, handle, indent=1)


if __name__ == "__main__":
    main()
