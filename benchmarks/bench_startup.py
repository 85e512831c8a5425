"""What a new process pays before its first answer: importing floatfmt, the CLI's ``explain``, and the first large
encode under each loop backend, with numba's disk cache warm and cold.

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --runs 9 --size 10000000 --json out.json

Every figure is the median over ``--runs`` fresh interpreters, the variants interleaved run by run so that a change
in the machine's load reaches them all alike. Import times are wall time of the whole interpreter; the first call
is timed inside the child around ``floatfmt.encode`` alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FIRST_CALL = """
import time, numpy as np, floatfmt
x = (np.random.default_rng(0).standard_normal({size}) * 100).astype(np.float32)
started = time.perf_counter()
floatfmt.encode(x, "e4m3")
print(time.perf_counter() - started)
"""

STARTS = {
    "python -c pass": ["-c", "pass"],
    "import numpy": ["-c", "import numpy"],
    "import numpy, ml_dtypes": ["-c", "import numpy, ml_dtypes"],
    "import floatfmt": ["-c", "import floatfmt"],
    "import floatfmt + its codec": ["-c", "import floatfmt; floatfmt.encode"],  # numpy and the codec load on first use
    "floatfmt explain (CLI)": ["-m", "floatfmt", "explain", "0 1011 011", "e4m3"],
}


def wall_time(arguments: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], env=environment, check=True, capture_output=True)
    return time.perf_counter() - started


def first_call(size: int, environment: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL.format(size=size)],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--size", type=int, default=10_000_000, help="values in the first call (default 10 M)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    base = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "NUMBA_CACHE_DIR")
    }
    starts: dict[str, list[float]] = {name: [] for name in STARTS}
    calls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        warm_cache = os.path.join(scratch, "warm")
        variants = {"numpy": ("numpy", None), "auto, cache warm": ("auto", warm_cache)}
        variants |= {"numba, cache warm": ("numba", warm_cache)}
        variants |= {"auto, cache cold": ("auto", "cold"), "numba, cache cold": ("numba", "cold")}
        first_call(100_000, base | {"FLOATFMT_KERNELS": "numba", "NUMBA_CACHE_DIR": warm_cache})  # fills the cache
        for name in STARTS:  # bytecode written once, outside the clock
            wall_time(STARTS[name], base)
        for run in range(args.runs):
            for name, arguments in STARTS.items():
                starts[name].append(wall_time(arguments, base))
            for name, (kernels, cache) in variants.items():
                if cache == "cold":
                    cache = os.path.join(scratch, f"cold{run}{kernels}")
                environment = base | {"FLOATFMT_KERNELS": kernels} | ({"NUMBA_CACHE_DIR": cache} if cache else {})
                calls.setdefault(name, []).append(first_call(args.size, environment))
    pass_time = statistics.median(starts["python -c pass"])
    print(f"median of {args.runs} fresh interpreters; load {os.getloadavg()[0]:.1f}")
    for name, times in starts.items():
        median = statistics.median(times)
        print(f"{name:28s} {median * 1e3:8.0f} ms   +{(median - pass_time) * 1e3:6.0f} ms over python -c pass")
    print(f"first encode of {args.size:,} float32 values to e4m3 in a new process, FLOATFMT_KERNELS=")
    for name, times in calls.items():
        spread = f"{min(times) * 1e3:.0f}-{max(times) * 1e3:.0f}"
        print(f"{name:28s} {statistics.median(times) * 1e3:8.0f} ms   (range {spread})")
    if args.json:
        results = {"start_ms": {name: statistics.median(times) * 1e3 for name, times in starts.items()}}
        results["first_call_ms"] = {name: statistics.median(times) * 1e3 for name, times in calls.items()}
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
