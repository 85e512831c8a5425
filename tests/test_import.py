"""``import floatfmt`` pulls in no optional dependency."""

from __future__ import annotations

import subprocess
import sys


def test_import_needs_only_numpy_and_ml_dtypes():
    optional = [
        "matplotlib",
        "pandas",
        "torch",
        "dask",
        "distributed",
        "scipy",
        "hypothesis",
        "pytest",
        "gguf",
        "safetensors",
        "numba",
    ]
    code = f"import sys, floatfmt; print(' '.join(m for m in {optional!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == ""
