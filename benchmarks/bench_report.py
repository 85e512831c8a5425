"""quant_report on a generated multi-shard BF16 checkpoint: weights/s and peak memory, against the same work
done on the same tensors already in memory (no I/O).

    python benchmarks/bench_report.py                      # 2.1 GB in 4 shards, four schemes
    python benchmarks/bench_report.py --size-gb 0.5 --workers 2 --json out.json

Each measurement runs in a fresh child process, which reports its own peak RSS
(``ru_maxrss``), so one run's memory cannot hide in another's; each child first runs a tiny report (loading
numba's compiled loops, about a second), timed and printed apart. The in-memory
baseline runs the same report one tensor at a time on arrays that are already
in memory (generated in the child, outside the timing). The checkpoint was
just written, so the streamed run reads from the page cache: the ratio is
floatfmt's own reading overhead, not the disk's speed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

import floatfmt
from floatfmt.io import save_safetensors

SCHEMES = "fp8_e4m3_block128,mxfp4,nvfp4,q4_k"
SHAPE = (4096, 4096)


def tensor(index: int) -> np.ndarray:
    """Tensor ``index`` of the generated checkpoint: Gaussian rows of varied scale, in BF16."""
    rng = np.random.default_rng(index)
    scales = rng.uniform(0.005, 0.05, (SHAPE[0], 1)).astype(np.float32)
    return (rng.standard_normal(SHAPE, dtype=np.float32) * scales).astype(ml_dtypes.bfloat16)


def generate(directory: Path, size_gb: float, shards: int) -> int:
    """Write the checkpoint with its index; returns the number of tensors."""
    count = max(shards, math.ceil(size_gb * 1e9 / (2 * SHAPE[0] * SHAPE[1])))
    per_shard = math.ceil(count / shards)
    weight_map = {}
    for shard in range(shards):
        names = [f"layers.{i}.weight" for i in range(shard * per_shard, min(count, (shard + 1) * per_shard))]
        file = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        save_safetensors(directory / file, {name: tensor(int(name.split(".")[1])) for name in names})
        weight_map.update(dict.fromkeys(names, file))
    index = {"metadata": {"total_size": count * 2 * SHAPE[0] * SHAPE[1]}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return count


def child(mode: str, directory: str, schemes: str, workers: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import resource
    from concurrent.futures import ProcessPoolExecutor

    weights = floatfmt.open_weights(directory)
    # the first report in a process loads the compiled loops (numba's cache) and starts the threads: timed apart,
    # and waited for (under "auto" they would load in the background while the first seconds ran numpy's loops)
    start = time.perf_counter()
    with floatfmt.using_backend("numba" if floatfmt.backend() == "numba" else "numpy"):
        floatfmt.quant_report({"warm-up": tensor(0)[:256]}, schemes, progress=False)
    warm_up = time.perf_counter() - start
    if mode == "read":  # the I/O limit: every byte of the shards read once, as the report would from the cache
        buffer = bytearray(64 << 20)
        start = time.perf_counter()
        for shard in sorted(Path(directory).glob("*.safetensors")):
            with shard.open("rb", buffering=0) as file:
                while file.readinto(buffer):
                    pass
        seconds = time.perf_counter() - start
        return {"mode": mode, "seconds": seconds, "params": weights.num_params, "peak_rss": 0, "sqnr_db": {},
                "warm_up": warm_up}  # fmt: skip
    if mode == "sampled":
        start = time.perf_counter()
        report = floatfmt.quant_report(weights, schemes, sample=0.05, progress=False)
        seconds = time.perf_counter() - start
        summary = {s.scheme: round(s.sqnr_db, 3) for s in report.summary}
        return {"mode": mode, "seconds": seconds, "params": weights.num_params, "peak_rss": _high_water_mark(),
                "sqnr_db": summary, "warm_up": warm_up}  # fmt: skip
    if mode == "streamed":
        start = time.perf_counter()
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                report = floatfmt.quant_report(weights, schemes, executor=pool, progress=False)
        else:
            report = floatfmt.quant_report(weights, schemes, progress=False)
        seconds = time.perf_counter() - start
        summary = {s.scheme: round(s.sqnr_db, 3) for s in report.summary}
    else:  # the same report, tensor by tensor, on arrays already in memory
        seconds, summary = 0.0, {}
        for name in weights:
            array = tensor(int(name.split(".")[1]))
            start = time.perf_counter()
            floatfmt.quant_report({name: array}, schemes, progress=False)
            seconds += time.perf_counter() - start
    peak = _high_water_mark()
    if workers > 1:  # workers forked from this small process: their ru_maxrss is their own
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
    return {"mode": mode, "seconds": seconds, "params": weights.num_params, "peak_rss": peak, "sqnr_db": summary,
            "warm_up": warm_up}  # fmt: skip


def _high_water_mark() -> int:
    """Peak resident bytes of this process. Linux's VmHWM, as ru_maxrss survives exec and would report the
    parent's peak (the generator's) at fork time."""
    import resource

    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(mode: str, directory: Path, schemes: str, workers: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", mode, str(directory), "--schemes", schemes, "--workers", str(workers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.1, help="checkpoint size in GB (default 2.1)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--schemes", default=SCHEMES)
    parser.add_argument("--workers", type=int, default=1, help="processes for the streamed report")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.schemes, args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="floatfmt-bench-") as temporary:
        directory = Path(temporary)
        count = generate(directory, args.size_gb, args.shards)
        on_disk = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
        print(
            f"checkpoint: {count} BF16 tensors of {SHAPE[0]}x{SHAPE[1]} in {args.shards} shards, {on_disk / 1e9:.2f} GB"
        )
        schemes = args.schemes.split(",")
        read = measure("read", directory, args.schemes, 1)
        streamed = measure("streamed", directory, args.schemes, args.workers)
        in_memory = measure("in_memory", directory, args.schemes, 1)
        sampled = measure("sampled", directory, args.schemes, 1)
    weight_schemes = streamed["params"] * len(schemes)
    result = {
        "checkpoint_bytes": on_disk,
        "tensors": count,
        "schemes": schemes,
        "workers": args.workers,
        "streamed_Mw_per_s": streamed["params"] / streamed["seconds"] / 1e6,
        "streamed_M_weight_schemes_per_s": weight_schemes / streamed["seconds"] / 1e6,
        "in_memory_Mw_per_s": streamed["params"] / in_memory["seconds"] / 1e6,
        "streamed_over_in_memory_time": streamed["seconds"] / in_memory["seconds"],
        "streamed_peak_rss_MB": streamed["peak_rss"] / 1e6,
        "in_memory_peak_rss_MB": in_memory["peak_rss"] / 1e6,
        "sqnr_db": streamed["sqnr_db"],
        "file_read_seconds": read["seconds"],
        "streamed_over_file_read_time": streamed["seconds"] / read["seconds"],
        "sample_5pct_seconds": sampled["seconds"],
        "full_over_sample_5pct_time": streamed["seconds"] / sampled["seconds"],
        "sample_5pct_sqnr_db": sampled["sqnr_db"],
        "warm_up_seconds": streamed["warm_up"],
    }
    print(f"schemes: {', '.join(schemes)}   workers: {args.workers}")
    print(f"{'':24}{'weights/s':>12}{'time':>10}{'peak RSS':>12}")
    print(
        f"{'streamed from disk':24}{result['streamed_Mw_per_s']:>10.1f} M{streamed['seconds']:>9.1f}s"
        f"{result['streamed_peak_rss_MB']:>9.0f} MB"
    )
    print(
        f"{'in memory, no I/O':24}{result['in_memory_Mw_per_s']:>10.1f} M{in_memory['seconds']:>9.1f}s"
        f"{result['in_memory_peak_rss_MB']:>9.0f} MB"
    )
    params = streamed["params"]
    for label, run, peak in (("5% sample, streamed", sampled, sampled["peak_rss"]), ("reading the files", read, None)):
        memory = f"{peak / 1e6:>9.0f} MB" if peak else ""
        print(f"{label:24}{params / run['seconds'] / 1e6:>10.1f} M{run['seconds']:>9.1f}s{memory}")
    print(f"first report in a fresh process (loading the compiled loops), apart: {streamed['warm_up']:.1f}s")
    print(
        f"streamed / in-memory time: {result['streamed_over_in_memory_time']:.2f}x; "
        f"streamed / file-read time: {result['streamed_over_file_read_time']:.0f}x; "
        f"full / 5% sample time: {result['full_over_sample_5pct_time']:.1f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
