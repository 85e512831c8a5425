"""Encode / decode throughput of every format, beside ml_dtypes, numpy, torch and memcpy, in one process.

    python benchmarks/bench_codec.py                  # every format, 10M values
    python benchmarks/bench_codec.py --formats e4m3,bf16 --size 1000000 --json out.json
    python benchmarks/bench_codec.py --kernels numpy,numba   # the codec's loops in numpy, then compiled

Each timing is the best of ``--repeat`` runs. "vs peer" is the peer's time
divided by floatfmt's (above 1: floatfmt is faster); "x memcpy" is floatfmt's
time divided by the time to copy the larger of the input and output arrays
once, the physical floor for a pass over the data.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from _timing import best_time, numba_version

import floatfmt

try:  # optional peer
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

TORCH_DTYPES = {
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e4m3fnuz": "float8_e4m3fnuz",
    "float8_e5m2": "float8_e5m2",
    "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e8m0fnu": "float8_e8m0fnu",
}


def memcpy_time(nbytes: int, repeat: int) -> float:
    source = np.ones(nbytes, dtype=np.uint8)
    target = np.empty_like(source)
    return best_time(lambda: np.copyto(target, source), repeat)


def peer_casts(fmt: floatfmt.Format, values: np.ndarray) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """(encode, decode) callables of every installed peer that has this format."""
    peers: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    if fmt.ml_dtype is not None:
        dtype = fmt.ml_dtype
        stored = values.astype(dtype)
        name = "numpy" if dtype.type.__module__ == "numpy" else "ml_dtypes"
        peers[name] = (lambda: values.astype(dtype), lambda: stored.astype(np.float32))
    if torch is not None and fmt.name in TORCH_DTYPES and hasattr(torch, TORCH_DTYPES[fmt.name]):
        torch_dtype = getattr(torch, TORCH_DTYPES[fmt.name])
        tensor = torch.from_numpy(values)
        stored_tensor = tensor.to(torch_dtype)
        peers["torch"] = (lambda: tensor.to(torch_dtype), lambda: stored_tensor.to(torch.float32))
    return peers


def run(
    formats: list[str], size: int, repeat: int, stochastic: list[str], source: str = "float32"
) -> list[dict[str, Any]]:
    values = (np.random.default_rng(0).standard_normal(size) * 100).astype(np.float32 if source == "torch" else source)
    copy_input = memcpy_time(values.nbytes, repeat)
    given: Any = values  # what floatfmt is handed: the array, or a CPU torch tensor of the same memory
    if source == "torch":
        if torch is None:
            raise SystemExit("--input torch needs torch installed")
        given = torch.from_numpy(values)
    rows = []
    cases = [(name, "nearest_even") for name in formats] + [(name, "stochastic") for name in stochastic]
    for name, rounding in cases:
        fmt = floatfmt.get_format(name)
        options: dict[str, Any] = dict(rounding=rounding, overflow="saturate", nan="ml_dtypes", seed=1)
        if rounding == "nearest_even":
            options = dict(overflow="ieee", nan="ml_dtypes")
        floatfmt.encode(given[:1000], fmt, **options)  # build tables outside the timing
        codes = floatfmt.encode(given, fmt, **options)
        floatfmt.decode(codes[:1000], fmt)
        if source == "torch":
            codes = torch.from_numpy(codes) if codes.dtype.itemsize != 2 or codes.dtype.kind != "u" else codes
        encode_time = best_time(lambda fmt=fmt, options=options: floatfmt.encode(given, fmt, **options), repeat)
        decode_time = best_time(lambda fmt=fmt, codes=codes: floatfmt.decode(codes, fmt), repeat)
        row: dict[str, Any] = {
            "format": fmt.name,
            "rounding": rounding,
            "kernels": floatfmt.backend(),
            "values": size,
            "encode_Mvals_per_s": size / encode_time / 1e6,
            "decode_Mvals_per_s": size / decode_time / 1e6,
            "encode_x_memcpy": encode_time / copy_input,
            "decode_x_memcpy": decode_time / copy_input,
        }
        if rounding == "nearest_even":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for peer, (peer_encode, peer_decode) in peer_casts(fmt, values).items():
                    row[f"encode_vs_{peer}"] = best_time(peer_encode, repeat) / encode_time
                    row[f"decode_vs_{peer}"] = best_time(peer_decode, repeat) / decode_time
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


HEADER = (
    f"{'format':20s} {'rounding':13s} {'kernels':7s} {'enc Mval/s':>10s} {'dec Mval/s':>10s} {'enc x memcpy':>12s} "
    f"{'dec x memcpy':>12s}  peers (speed-up: peer time / floatfmt time)"
)


def format_row(row: dict[str, Any]) -> str:
    peers = "  ".join(f"{key.replace('_vs_', ' vs ')} {value:.2f}x" for key, value in row.items() if "_vs_" in key)
    return (
        f"{row['format']:20s} {row['rounding']:13s} {row['kernels']:7s} "
        f"{row['encode_Mvals_per_s']:10.0f} {row['decode_Mvals_per_s']:10.0f} "
        f"{row['encode_x_memcpy']:12.1f} {row['decode_x_memcpy']:12.1f}  {peers}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="all", help="comma-separated format names, or 'all'")
    parser.add_argument("--stochastic", default="e4m3,e5m2,e2m1,bf16,int8", help="formats to time stochastic rounding")
    parser.add_argument("--size", type=int, default=10_000_000, help="values per array (default 10M)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing; the best is kept")
    parser.add_argument(
        "--kernels", default="auto", help="comma-separated loop backends to time in turn: auto, numpy, numba"
    )
    parser.add_argument(
        "--input",
        default="float32",
        choices=["float32", "float64", "torch"],
        help="the values: a float32 or float64 array, or a float32 CPU torch tensor (read in place)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    args = parser.parse_args(argv)
    names = floatfmt.formats() if args.formats == "all" else args.formats.split(",")
    stochastic = [name for name in args.stochastic.split(",") if name]
    print(
        f"floatfmt {floatfmt.__version__}, numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}, "
        f"torch {torch.__version__ if torch else 'not installed'}, numba {numba_version()}, "
        f"{platform.processor() or platform.machine()}, "
        f"{args.size:,} {args.input} values (standard normal x 100), best of {args.repeat}"
    )
    print(HEADER)
    rows = []
    for kernels in args.kernels.split(","):
        floatfmt.set_backend(kernels)
        rows += run(names, args.size, args.repeat, stochastic, args.input)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"python": sys.version, "numpy": np.__version__, "rows": rows}, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
