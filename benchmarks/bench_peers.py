"""One table per path: floatfmt beside every peer that does the same work, in one process, runs interleaved.

    python benchmarks/bench_peers.py                       # every path, 10 M values (4096² for dequantizing)
    python benchmarks/bench_peers.py --paths encode:e4m3,dequantize:q4_k --repeat 9 --json out.json

Paths: ``encode:<format>`` and ``decode:<format>`` (float32 values, standard normal x 100), and
``dequantize:<scheme>`` (a 4096 x 4096 float32 matrix quantized once). Peers, each where it is installed and
computes the same bits: ml_dtypes' ``astype`` (numpy's for float16), torch's CPU casts on one thread and on all,
gguf-py's numpy dequantizer, bitsandbytes' CPU ``dequantize_4bit`` (NF4) on one thread and on all, and ``np.copyto``
of the larger array (the physical floor of a pass). floatfmt runs with numpy's loops and, with the ``fast`` extra,
numba's (after the compiled loops are loaded: see ``_timing.best_time``). Every call allocates its output, as a
user's call does.

Each round times every implementation once, in turn, so that a change in the machine's load falls on all of
them; the figure is the median over ``--repeat`` rounds. "vs floatfmt" is the peer's time divided by floatfmt's
fastest backend: above 1, floatfmt is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from _timing import best_time, numba_version

import floatfmt

PATHS = (
    "encode:e4m3", "encode:e5m2", "encode:e2m1", "encode:fp16", "encode:bf16",
    "decode:e4m3", "decode:e5m2", "decode:e2m1", "decode:fp16", "decode:bf16",
    "dequantize:q8_0", "dequantize:q4_0", "dequantize:q4_k", "dequantize:q6_k", "dequantize:nf4",
)  # fmt: skip

TORCH_DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "fp16": "float16", "bf16": "bfloat16"}
ML_DTYPES = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m1": ml_dtypes.float4_e2m1fn}
ML_DTYPES |= {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}

Call = Callable[[], object]


def optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


class Threads:
    """A call of torch's, timed with torch on ``count`` threads (set before the clock starts: setting it can
    rebuild torch's thread pool, which is not the call's cost)."""

    def __init__(self, torch: Any, count: int, call: Call) -> None:
        self.torch, self.count, self.call = torch, count, call

    def prepare(self) -> None:
        if self.torch.get_num_threads() != self.count:
            self.torch.set_num_threads(self.count)

    def __call__(self) -> object:
        return self.call()


def floatfmt_calls(call: Call) -> dict[str, Call]:
    """floatfmt's call under each loop backend installed."""
    backends = ["numpy"] + (["numba"] if numba_version() != "not installed" else [])

    def under(backend: str) -> Call:
        def run() -> object:
            with floatfmt.using_backend(backend):
                return call()

        return run

    return {f"floatfmt ({backend})": under(backend) for backend in backends}


def torch_calls(torch: Any, call: Call) -> dict[str, Call]:
    if torch is None:
        return {}
    threads = torch.get_num_threads()
    return {f"torch, {count} thread(s)": Threads(torch, count, call) for count in sorted({1, threads})}


def codec_path(kind: str, name: str, size: int, torch: Any) -> tuple[dict[str, Call], int]:
    x = (np.random.default_rng(0).standard_normal(size) * 100).astype(np.float32)
    codes = floatfmt.encode(x, name)
    dtype = ML_DTYPES.get(name)
    torch_name = TORCH_DTYPES.get(name)
    calls: dict[str, Call]
    if kind == "encode":
        calls = floatfmt_calls(lambda: floatfmt.encode(x, name))
        if dtype is not None:
            calls["ml_dtypes / numpy astype"] = lambda: x.astype(dtype)
        if torch is not None and torch_name is not None:
            tensor, target = torch.from_numpy(x), getattr(torch, torch_name)
            calls |= torch_calls(torch, lambda: tensor.to(target))
    else:
        calls = floatfmt_calls(lambda: floatfmt.decode(codes, name))
        if dtype is not None:
            typed = codes.view(dtype) if np.dtype(dtype).itemsize == codes.itemsize else None
            if typed is not None:
                calls["ml_dtypes / numpy astype"] = lambda: typed.astype(np.float32)
        if torch is not None and torch_name is not None:
            tensor = torch.from_numpy(codes.view(np.uint8 if codes.itemsize == 1 else np.int16))
            tensor = tensor.view(getattr(torch, torch_name))
            calls |= torch_calls(torch, lambda: tensor.to(torch.float32))
    larger = max(x.nbytes, codes.nbytes)
    source, copy = np.empty(larger, np.uint8), np.empty(larger, np.uint8)
    calls["np.copyto (the floor)"] = lambda: np.copyto(copy, source)
    return calls, size


def dequantize_path(name: str, side: int, torch: Any) -> tuple[dict[str, Call], int]:
    w = (np.random.default_rng(0).standard_normal((side, side)) * 0.02).astype(np.float32)
    q = floatfmt.quantize(w, name)
    calls = floatfmt_calls(q.dequantize)
    gguf = optional("gguf")
    if gguf is not None and name != "nf4":
        from gguf.quants import dequantize

        data = np.frombuffer(q.to_bytes(), dtype=np.uint8).reshape(side, -1)
        qtype = getattr(gguf.GGMLQuantizationType, name.upper())
        calls["gguf-py"] = lambda: dequantize(data, qtype)
    if name == "nf4" and torch is not None and optional("bitsandbytes") is not None:
        import bitsandbytes.functional as bnb

        packed, state = bnb.quantize_4bit(torch.from_numpy(w), blocksize=64, quant_type="nf4")
        calls |= {
            key.replace("torch", "bitsandbytes"): call
            for key, call in torch_calls(torch, lambda: bnb.dequantize_4bit(packed, state)).items()
        }
    source, copy = np.empty_like(w), np.empty_like(w)
    calls["np.copyto (the floor)"] = lambda: np.copyto(copy, source)
    return calls, w.size


def measure(calls: dict[str, Call], repeat: int) -> dict[str, float]:
    """The median seconds of each call over ``repeat`` rounds, each round timing every call once in turn."""
    for call in calls.values():
        if isinstance(call, Threads):
            call.prepare()
        best_time(call, 0)  # warm-up: tables, caches and the compiled loops
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeat):
        for key, call in calls.items():
            if isinstance(call, Threads):
                call.prepare()
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def table(path: str, seconds: dict[str, float], size: int) -> list[dict[str, Any]]:
    ours = min(value for key, value in seconds.items() if key.startswith("floatfmt"))
    rows = []
    print(f"\n{path} ({size:,} values)")
    print(f"  {'implementation':28s} {'Mval/s':>9s} {'vs floatfmt':>12s}")
    for key, value in seconds.items():
        versus = "" if key.startswith("floatfmt") else f"{value / ours:11.2f}x"
        print(f"  {key:28s} {size / value / 1e6:9.0f} {versus:>12s}")
        rate = size / value / 1e6
        rows.append({"path": path, "implementation": key, "Mval_per_s": rate, "vs_floatfmt": value / ours})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated kind:name, e.g. encode:e4m3")
    parser.add_argument("--size", type=int, default=10_000_000, help="values for encode/decode (default 10M)")
    parser.add_argument("--side", type=int, default=4096, help="the dequantized matrix is side x side")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds; the median is kept")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch = optional("torch")
    print(
        f"floatfmt {floatfmt.__version__}, numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}, "
        f"numba {numba_version()}, torch {getattr(torch, '__version__', 'not installed')}, "
        f"median of {args.repeat} interleaved rounds"
    )
    rows = []
    for path in args.paths.split(","):
        kind, _, name = path.partition(":")
        if kind in ("encode", "decode"):
            calls, size = codec_path(kind, name, args.size, torch)
        elif kind == "dequantize":
            calls, size = dequantize_path(name, args.side, torch)
        else:
            parser.error(f"unknown path {path!r}: use encode:<format>, decode:<format> or dequantize:<scheme>")
        rows += table(path, measure(calls, args.repeat), size)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
