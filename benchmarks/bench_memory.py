"""How long `fit` takes to place a model, the first time in a process (the spec builds its tensor list, one pass
prices it in the storage) and again (another context or batch: the priced components are reused).

    python benchmarks/bench_memory.py                 # the MoE presets and a dense one
    python benchmarks/bench_memory.py --json out.json

Each case runs in a fresh child process (imports done before the clock starts), so the first call is really the
first; medians over ``--rounds`` runs, interleaved (each round runs every case once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from floatfmt.memory import fit, load_model

MODELS = ["deepseek-r1", "glm-4.5", "gpt-oss-120b", "mixtral-8x7b", "llama-3.1-405b"]
STORAGES = [None, "nvfp4", "Q4_K_M"]


def once(name: str, weights: str | None) -> tuple[float, float, int]:
    """In a fresh process: seconds for the first fit, for a second one at another context, and the GPUs."""
    call = f"bench_memory.timed({name!r}, {weights!r})"
    code = f"import sys; sys.path[:0] = {sys.path!r}; import bench_memory; print(*{call})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def timed(name: str, weights: str | None) -> tuple[float, float, int]:
    """This process's first fit of the model (loading it included), a second, and the GPUs."""
    started = time.perf_counter()
    model = load_model(name)
    placed = fit(model, "H100-SXM", weights=weights, context=8192)
    first = time.perf_counter() - started
    started = time.perf_counter()
    fit(model, "H100-SXM", weights=weights, context=32768, batch=4)
    return first, time.perf_counter() - started, placed.gpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    cases = [(name, weights) for name in MODELS for weights in STORAGES]
    times: dict[tuple[str, str | None], list[tuple[float, float, int]]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            times[case].append(once(*case))
    rows = []
    print(f"{'model':16} {'weights':10} {'GPUs':>5} {'first fit ms':>13} {'again ms':>9}")
    for (name, weights), runs in times.items():
        first = statistics.median(run[0] for run in runs) * 1e3
        again = statistics.median(run[1] for run in runs) * 1e3
        label = weights or "as shipped"
        print(f"{name:16} {label:10} {runs[0][2]:5d} {first:13.1f} {again:9.1f}")
        rows.append({"model": name, "weights": label, "gpus": runs[0][2], "first_ms": first, "again_ms": again})
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
