"""The structure docs/architecture.md describes: layers import downward only, no module reaches into another's
private names, the codec's fast paths stay chosen, and the public surface is what the docs say."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from helpers import float_formats

import floatfmt
from floatfmt import codec
from floatfmt._options import OVERFLOWS, ROUNDINGS

PACKAGE = Path(floatfmt.__file__).parent

LAYERS = [
    {
        "floatfmt.formats",
        "floatfmt._display",
        "floatfmt._parallel",
        "floatfmt._backend",
        "floatfmt.compat",
        "floatfmt._rowlog",
    },
    {"floatfmt._kernels", "floatfmt._kernels_numba"},
    {"floatfmt._options", "floatfmt._reference"},
    {"floatfmt.codec"},
    {"floatfmt.bits", "floatfmt.packing"},
    {"floatfmt.io"},
    {"floatfmt.quant"},
    {"floatfmt.memory"},
    {"floatfmt.report", "floatfmt.plot", "floatfmt.comparison", "floatfmt.packed_layers"},
    {"floatfmt"},  # the package's __init__: the public surface, gathered from every layer
    {"floatfmt.cli", "floatfmt.__main__"},
]
"""docs/architecture.md's layers, bottom first: a module imports only from its own layer or the ones below."""


def layer_of(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if any(module == name or (name != "floatfmt" and module.startswith(name + ".")) for name in layer):
            return rank
    raise AssertionError(f"{module} belongs to no layer of docs/architecture.md")


def modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        found.append((name, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def runtime_imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import outside ``if TYPE_CHECKING:`` blocks, in functions too."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    imports = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("floatfmt"):
            imports.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            imports += [(alias.name, []) for alias in node.names if alias.name.startswith("floatfmt")]
    return imports


@pytest.mark.parametrize("name, tree", modules(), ids=lambda value: value if isinstance(value, str) else "")
def test_imports_go_downward_only(name, tree):
    own = layer_of(name)
    for target, names in runtime_imports(tree):
        for imported in names or [""]:
            full = f"{target}.{imported}" if target == "floatfmt" and imported else target
            assert layer_of(full) <= own, f"{name} imports {full}, a layer above it"


@pytest.mark.parametrize("name, tree", modules(), ids=lambda value: value if isinstance(value, str) else "")
def test_no_module_imports_another_modules_private_names(name, tree):
    for target, names in runtime_imports(tree):
        private = [n for n in names if n.startswith("_") and not (PACKAGE / f"{n}.py").exists()]
        private = [n for n in private if not (PACKAGE.joinpath(*target.split(".")[1:]) / f"{n}.py").exists()]
        assert not private, f"{name} imports private names {private} from {target}"


def expected_path(fmt: floatfmt.Format, dtype: np.dtype, rounding: str, overflow: str) -> str:
    """The encode path each case must take, written out from docs/codec.md's description."""
    exact = dtype != np.float64
    if not exact and rounding != "stochastic" and overflow != "wrap":  # rounded to odd into float32 first
        as_float32 = expected_path(fmt, np.dtype(np.float32), rounding, overflow)
        reaches_2_128 = fmt.max >= 2.0**127  # bfloat16, tf32, e8m0: float32's largest value may not overflow them
        narrowed = as_float32 in ("table", "float32_bits") or (as_float32 == "cast" and fmt.name == "bfloat16")
        if narrowed and not (reaches_2_128 and overflow == "error"):
            return as_float32
    if isinstance(fmt, floatfmt.IntFormat):
        return "table" if exact and rounding != "stochastic" and overflow != "wrap" else "generic"
    nearest = rounding == "nearest_even" and overflow == "ieee"
    if fmt.name == "float64":
        return "cast" if overflow != "saturate" else "generic"
    if fmt.name == "float32":
        return "cast" if (exact and overflow != "saturate") or nearest else "generic"
    if fmt.name == "float16":
        return "cast" if nearest else ("float32_bits" if exact else "generic")
    if fmt.name == "bfloat16" and nearest and exact:
        return "cast"
    if fmt.bits <= 8:
        return ("stochastic_table" if rounding == "stochastic" else "table") if exact else "generic"
    if fmt.name in ("bfloat16", "tf32"):
        return "float32_bits" if exact else "generic"
    return "generic"


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16, np.float64], ids=str)
def test_every_format_takes_its_encode_path(dtype):
    dtype = np.dtype(dtype)
    for name in floatfmt.formats():
        fmt = floatfmt.get_format(name)
        for rounding in ROUNDINGS:
            for overflow in OVERFLOWS:
                if overflow == "wrap" and not isinstance(fmt, floatfmt.IntFormat):
                    continue
                got = codec.encode_path(fmt, dtype, rounding, overflow)
                assert got == expected_path(fmt, dtype, rounding, overflow), (name, dtype, rounding, overflow)


def test_public_surface():
    assert "round" not in floatfmt.__all__ and floatfmt.round is codec.round  # numpy's rule for builtin names
    for moved in ("Fields", "ValueTable", "FormatInfo", "Rounding"):
        assert not hasattr(floatfmt, moved)
    assert set(floatfmt.__all__) <= set(dir(floatfmt))
    q = floatfmt.quantize(np.ones((2, 32), np.float32), "mxfp4")
    fields = floatfmt.fields([1, 2], "e4m3")
    assert q == q and q != floatfmt.quantize(np.ones((2, 32), np.float32), "mxfp4")  # identity, never an array
    assert fields == fields and hash(q) and hash(fields)


@pytest.mark.parametrize("fmt", float_formats(64), ids=str)
def test_finfo_matches_numpy_and_ml_dtypes(fmt):
    info = floatfmt.finfo(fmt)
    assert info.eps == 2.0**info.machep and info.epsneg == 2.0**info.negep
    assert info.tiny == info.smallest_normal and info.iexp == info.nexp == fmt.exponent_bits
    assert info.resolution == 10.0**-info.precision and info.precision == int(-math.log10(info.eps))
    assert info.dtype == fmt.ml_dtype
    if fmt.ml_dtype is None:
        return
    reference = (np.finfo if fmt.ml_dtype.type.__module__ == "numpy" else ml_dtypes.finfo)(fmt.ml_dtype)
    for attribute in ("bits", "machep", "negep", "nexp", "nmant", "iexp", "maxexp", "minexp"):
        assert getattr(info, attribute) == getattr(reference, attribute), attribute
    for attribute in ("eps", "epsneg", "max", "min", "tiny", "smallest_normal", "smallest_subnormal"):
        assert getattr(info, attribute) == float(getattr(reference, attribute)), attribute
    if fmt.name in ("float16", "float32", "float64", "bfloat16") or fmt.bits <= 6:
        assert info.precision == reference.precision  # where ml_dtypes follows numpy's formula too


def test_finfo_of_integers_and_of_formats_without_one():
    assert (floatfmt.finfo("uint4").min, floatfmt.finfo("uint4").max, floatfmt.finfo("int8").kind) == (0, 15, "i")
    with pytest.raises(ValueError, match=r"cannot hold 1\.0"):
        floatfmt.finfo(floatfmt.FloatFormat("tiny_values", 3, 2, bias=9))
    assert "Machine parameters for float8_e4m3fn" in str(floatfmt.finfo("e4m3"))
