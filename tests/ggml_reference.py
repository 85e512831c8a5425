"""ggml's own C quantizers, built from the llama-cpp-python source distribution and called through ctypes.

The sdist carries ``vendor/llama.cpp/ggml/src/ggml-quants.c``, which compiles on its own into a shared library
once the four ggml functions it calls for errors and type sizes are given small definitions (below). The build
happens once per machine (cached under ``$FLOATFMT_TEST_CACHE``, by default ``~/.cache/floatfmt-tests``), the way
a test extra installs a package; it needs pip (to download the sdist) and gcc. Compiled without FMA contraction:
ggml's reference quantizers round every float32 operation.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

VERSION = "0.3.36"
"""The llama-cpp-python release whose vendored ggml is the reference (docs/quantization.md names it)."""

CACHE = Path(os.environ.get("FLOATFMT_TEST_CACHE", Path.home() / ".cache" / "floatfmt-tests"))

# GGML type ids and (values per block, bytes per block) for ggml_row_size / ggml_type_size
TYPES = {
    "q4_0": (2, 32, 18), "q4_1": (3, 32, 20), "q5_0": (6, 32, 22), "q5_1": (7, 32, 24), "q8_0": (8, 32, 34),
    "q2_k": (10, 256, 84), "q3_k": (11, 256, 110), "q4_k": (12, 256, 144), "q5_k": (13, 256, 176),
    "q6_k": (14, 256, 210), "q8_k": (15, 256, 292), "iq4_nl": (20, 32, 18), "iq4_xs": (23, 256, 136),
    "tq1_0": (34, 256, 54), "tq2_0": (35, 256, 66), "mxfp4": (39, 32, 17),
}  # fmt: skip

_STUBS = r"""
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort at %s:%d\n", file, line); abort();
}
static int64_t block_of(int type, int64_t * bytes) {
    switch (type) {
%CASES%
        default: fprintf(stderr, "ggml stub: type %d unknown\n", type); abort();
    }
}
size_t ggml_type_size(int type) { int64_t bytes; block_of(type, &bytes); return (size_t) bytes; }
size_t ggml_row_size(int type, int64_t ne) {
    int64_t bytes; int64_t block = block_of(type, &bytes); return (size_t) (bytes * (ne / block));
}
const char * ggml_type_name(int type) { (void) type; return "ggml type"; }
"""


def _download(target: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"llama-cpp-python=={VERSION}", "-d", str(target)],
        check=True,
    )  # fmt: skip
    return next(target.glob("llama_cpp_python-*.tar.gz"))


def _build(library: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        sdist = _download(work)
        prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/ggml/"
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith((prefix + "include/", prefix + "src/"))]
            archive.extractall(work, members=members, filter="data")
        source = work / prefix / "src"
        cases = "\n".join(
            f"        case {type_id}: *bytes = {size}; return {block};" for type_id, block, size in TYPES.values()
        )
        (source / "stubs.c").write_text(_STUBS.replace("%CASES%", cases))
        built = work / "libggml-quants.so"
        subprocess.run(
            ["gcc", "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{source.parent / 'include'}", f"-I{source}",
             str(source / "ggml-quants.c"), str(source / "stubs.c"), "-o", str(built), "-lm"],
            check=True,
        )  # fmt: skip
        library.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), library)


def converter() -> Path:
    """The sdist's ``vendor/llama.cpp`` with ``convert_hf_to_gguf.py``'s ``conversion`` package and its own
    gguf-py (extracted once into the cache): put it and its ``gguf-py`` first on ``PYTHONPATH`` to run the real
    converter's classes."""
    root = CACHE / f"llama.cpp-{VERSION}"
    if not (root / "conversion" / "__init__.py").exists():
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
            with tarfile.open(_download(work)) as archive:
                wanted = (prefix + "conversion/", prefix + "gguf-py/", prefix + "convert_hf_to_gguf.py")
                archive.extractall(work, members=[m for m in archive.getmembers() if m.name.startswith(wanted)],
                                   filter="data")  # fmt: skip
            if root.exists():
                shutil.rmtree(root)
            root.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(work / prefix), root)
    return root


@cache
def library() -> ctypes.CDLL:
    path = CACHE / f"libggml-quants-{VERSION}.so"
    if not path.exists():
        _build(path)
    return ctypes.CDLL(str(path))


def quantize(name: str, matrix: np.ndarray, importance: np.ndarray | None = None) -> bytes:
    """``quantize_<name>(src, dst, nrow, n_per_row, quant_weights)``: what llama-quantize writes for the type."""
    _, block, size = TYPES[name]
    rows, cols = matrix.shape
    src = np.ascontiguousarray(matrix, dtype=np.float32)
    dst = np.zeros(rows * cols // block * size, dtype=np.uint8)
    c_name = name.replace("_k", "_K")
    if not hasattr(library(), f"quantize_{c_name}"):  # Q8_K has only its row reference (no importance)
        assert importance is None
        row = getattr(library(), f"quantize_row_{c_name}_ref")
        row.restype = None
        row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        row(src.ctypes.data, dst.ctypes.data, rows * cols)
        return dst.tobytes()
    function = getattr(library(), f"quantize_{c_name}")
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    weights = None if importance is None else np.ascontiguousarray(importance, dtype=np.float32)
    written = function(src.ctypes.data, dst.ctypes.data, rows, cols, None if weights is None else weights.ctypes.data)
    assert written == dst.size
    return dst.tobytes()


def dequantize(name: str, data: bytes, count: int) -> np.ndarray:
    """``dequantize_row_<name>(blocks, out, count)``."""
    blocks = np.frombuffer(data, dtype=np.uint8).copy()
    out = np.empty(count, dtype=np.float32)
    function = getattr(library(), f"dequantize_row_{name.replace('_k', '_K')}")
    function.restype = None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    function(blocks.ctypes.data, out.ctypes.data, count)
    return out
