"""Quantize / dequantize throughput of every scheme on a 4096 x 4096 float32 matrix, beside gguf-py.

    python benchmarks/bench_quant.py
    python benchmarks/bench_quant.py --schemes q4_0,mxfp4 --size 1024 --json out.json
    python benchmarks/bench_quant.py --kernels numpy,numba   # numpy's loops, then the compiled ones
    python benchmarks/bench_quant.py --schemes q4_k,q6_k,iq4_xs --ggml   # beside ggml's own C, one thread

Where bitsandbytes imports (a scratch venv: it is not a test dependency), ``nf4`` and ``nf4_dq`` are also timed
against its CPU ``quantize_4bit``/``dequantize_4bit`` (blocksize 64) with torch on one thread and on all:
"vs bnb" is bitsandbytes' time divided by floatfmt's.

``--ggml`` times llama.cpp's C quantizers (``ggml-quants.c``, built once by ``tests/ggml_reference.py`` from the
llama-cpp-python sdist) on the same matrix in the same process: "vs ggml C" is ggml's time divided by floatfmt's.

Each timing is the best of ``--repeat`` runs after one warm-up (which builds
the codec's tables). "vs gguf-py" is gguf-py's time divided by floatfmt's for
the same GGUF type, in the same process.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from _timing import best_time, numba_version

import floatfmt

try:  # optional peer
    import gguf
    from gguf.quants import dequantize as gguf_dequantize
    from gguf.quants import quantize as gguf_quantize
except ImportError:  # pragma: no cover - depends on the machine
    gguf = None


def bitsandbytes_times(w: np.ndarray, double: bool, repeat: int) -> dict[str, float]:
    """bitsandbytes' CPU NF4 quantize and dequantize times (blocksize 64) with torch on 1 thread and on all,
    or nothing where it does not import."""
    try:
        import bitsandbytes.functional as bnb
        import torch
    except ImportError:
        return {}
    x = torch.from_numpy(w)
    threads = torch.get_num_threads()
    times = {}
    for count in sorted({1, threads}):
        torch.set_num_threads(count)
        quantize = lambda: bnb.quantize_4bit(x, blocksize=64, compress_statistics=double, quant_type="nf4")  # noqa: E731
        packed, state = quantize()
        times[f"quantize_{count}"] = best_time(quantize, repeat)
        dequantize = lambda packed=packed, state=state: bnb.dequantize_4bit(packed, state)  # noqa: E731
        times[f"dequantize_{count}"] = best_time(dequantize, repeat)
    torch.set_num_threads(threads)
    return times


def ggml_reference() -> Any:
    """tests/ggml_reference.py, which builds and loads ggml's C quantizers."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import ggml_reference as reference

    return reference


GGUF_PY_QUANTIZES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
"""The GGUF types gguf-py quantizes in numpy (it dequantizes every type floatfmt has)."""


def gguf_type(name: str) -> Any:
    """gguf-py's ``GGMLQuantizationType`` for a GGUF scheme it can dequantize, else None."""
    if gguf is None:
        return None
    ggml_name = {"gguf_mxfp4": "mxfp4"}.get(name, name if name.startswith(("q", "iq", "tq")) else "")
    qtype = getattr(gguf.GGMLQuantizationType, ggml_name.upper(), None) if ggml_name else None
    return qtype if qtype is not None and qtype in gguf.quants._type_traits else None


def run(names: list[str], size: int, repeat: int, ggml: Any = None) -> list[dict[str, Any]]:
    w = (np.random.default_rng(0).standard_normal((size, size)) * 0.02).astype(np.float32)
    rows = []
    for name in names:
        q = floatfmt.quantize(w, name)
        quantize_time = best_time(lambda name=name: floatfmt.quantize(w, name), repeat)
        dequantize_time = best_time(q.dequantize, repeat)
        stats = floatfmt.error_stats(w, q.dequantize())
        row: dict[str, Any] = {
            "scheme": name,
            "kernels": floatfmt.backend(),
            "bits_per_weight": q.bits_per_weight,
            "sqnr_db": stats.sqnr_db,
            "quantize_Mw_per_s": w.size / quantize_time / 1e6,
            "dequantize_Mw_per_s": w.size / dequantize_time / 1e6,
        }
        qtype = gguf_type(name)
        if qtype is not None:  # gguf-py dequantizing the same block bytes (byte-identical to floatfmt's)
            data = np.frombuffer(q.to_bytes(), dtype=np.uint8).reshape(size, -1)
            row["dequantize_vs_gguf_py"] = (
                best_time(lambda qtype=qtype, data=data: gguf_dequantize(data, qtype), repeat) / dequantize_time
            )
            if name in GGUF_PY_QUANTIZES:
                row["quantize_vs_gguf_py"] = (
                    best_time(lambda qtype=qtype: gguf_quantize(w, qtype), repeat) / quantize_time
                )
        if name in ("nf4", "nf4_dq"):
            for key, seconds in bitsandbytes_times(w, name == "nf4_dq", repeat).items():
                step = key.split("_")[0]
                row[f"{key}_thread_vs_bnb"] = seconds / (quantize_time if step == "quantize" else dequantize_time)
        ggml_name = {"gguf_mxfp4": "mxfp4"}.get(name, name)
        if ggml is not None and ggml_name in ggml.TYPES:
            row["quantize_vs_ggml_c"] = best_time(lambda n=ggml_name: ggml.quantize(n, w), repeat) / quantize_time
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict[str, Any]) -> str:
    versus = ""
    if "quantize_vs_ggml_c" in row:
        versus += f"  vs ggml C: quantize {row['quantize_vs_ggml_c']:.2f}x"
    if "dequantize_vs_gguf_py" in row:
        versus += "  vs gguf-py:"
        if "quantize_vs_gguf_py" in row:
            versus += f" quantize {row['quantize_vs_gguf_py']:.2f}x,"
        versus += f" dequantize {row['dequantize_vs_gguf_py']:.2f}x"
    bnb = {key: value for key, value in row.items() if key.endswith("_vs_bnb")}
    if bnb:
        versus += "  vs bnb: " + ", ".join(f"{key[: -len('_thread_vs_bnb')]}t {v:.2f}x" for key, v in bnb.items())
    return (
        f"{row['scheme']:24s} {row['kernels']:7s} {row['bits_per_weight']:7.3f} {row['sqnr_db']:8.2f} "
        f"{row['quantize_Mw_per_s']:10.0f} {row['dequantize_Mw_per_s']:10.0f}{versus}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schemes", default="all", help="comma-separated scheme names, or 'all'")
    parser.add_argument("--size", type=int, default=4096, help="the matrix is size x size (default 4096)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--kernels", default="auto", help="comma-separated loop backends to time in turn: auto, numpy, numba"
    )
    parser.add_argument("--ggml", action="store_true", help="also time ggml's C quantizers (built on first use)")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    args = parser.parse_args(argv)
    names = floatfmt.schemes() if args.schemes == "all" else args.schemes.split(",")
    print(
        f"floatfmt {floatfmt.__version__}, {args.size}x{args.size} float32 (normal x 0.02), best of {args.repeat}; "
        f"gguf-py {'installed' if gguf else 'not installed'}, numba {numba_version()}"
    )
    print(f"{'scheme':24s} {'kernels':7s} {'bits/w':>7s} {'SQNR dB':>8s} {'quant Mw/s':>10s} {'deq Mw/s':>10s}")
    rows = []
    for kernels in args.kernels.split(","):
        floatfmt.set_backend(kernels)
        rows += run(names, args.size, args.repeat, ggml_reference() if args.ggml else None)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"size": args.size, "rows": rows}, file, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
