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


def _loaded_after(code: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint('loaded:', *(m for m in {modules!r} if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return output.splitlines()[-1].split()[1:]


LAYERS = ["ml_dtypes", "floatfmt.quant", "floatfmt.io", "floatfmt.report", "floatfmt.memory", "floatfmt.comparison"]


def test_import_loads_only_the_codec_layer():
    # ml_dtypes 0.7 alone takes ~0.8 s to import; the quantization, file and report layers several times the codec
    assert _loaded_after("import floatfmt", LAYERS) == []


def test_codec_and_explain_work_without_loading_the_other_layers():
    code = """
import numpy as np, floatfmt
from floatfmt.cli import main
x = np.linspace(-500, 500, 10_001, dtype=np.float32)
for name in ("e4m3", "e5m2", "fp4", "fp16", "int4", "tf32"):
    assert floatfmt.decode(floatfmt.encode(x, name), name).shape == x.shape
assert floatfmt.explain("0 1011 011", "e4m3").value == 22
assert main(["explain", "0 1011 011", "e4m3"]) == 0
"""
    assert _loaded_after(code, LAYERS) == []


def test_explain_decode_and_info_run_without_numpy():
    """What keeps `floatfmt explain` fast: a code or a value is explained on Python ints and Fractions, and nothing
    on that path imports numpy (a tenth of a second here). Run in a fresh interpreter, where nothing is loaded yet."""
    script = (
        "import sys\n"
        "import floatfmt\n"
        "assert 'numpy' not in sys.modules, 'import floatfmt'\n"
        "from floatfmt.cli import main\n"
        "for argv in (['explain', '0 1011 011', 'e4m3'], ['explain', '22.5', 'e4m3', '--rounding', 'toward_zero'],\n"
        "             ['explain', '1e999', 'bf16', '--json'], ['decode', 'e5m2', '0x7C', '0b01111110'],\n"
        "             ['info', 'e2m1'], ['explain', '0.3', 'int4', '--rounding', 'stochastic', '--seed', '3']):\n"
        "    assert main(argv) == 0, argv\n"
        "    assert 'numpy' not in sys.modules, argv\n"
        "print(floatfmt.explain(0.3, 'e4m3').rounding.direction)\n"
        "assert 'numpy' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "up" and "= 22" in done.stdout


def test_lazy_names_resolve_to_their_modules():
    import floatfmt
    from floatfmt import quant, report

    assert floatfmt.quant_report is report.quant_report
    assert floatfmt.Scheme is quant.Scheme
    assert set(floatfmt.__all__) <= set(dir(floatfmt))
    for name in floatfmt.__all__:
        assert getattr(floatfmt, name) is not None
    try:
        floatfmt.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_submodules_are_attributes_of_the_package_in_a_fresh_process():
    code = (
        "import floatfmt; import floatfmt.memory as m, floatfmt.io as i\n"
        "assert floatfmt.memory is m and floatfmt.io is i\n"
        "import sys; del floatfmt.memory; assert floatfmt.memory is sys.modules['floatfmt.memory']\n"
        "print(hasattr(floatfmt, 'no_such_module'))"
    )
    fresh = "import floatfmt; print(floatfmt.memory.__name__, floatfmt.report.__name__)"
    run = [sys.executable, "-c"]
    assert subprocess.run([*run, fresh], check=True, capture_output=True, text=True).stdout.split() == [
        "floatfmt.memory",
        "floatfmt.report",
    ]
    assert subprocess.run([*run, code], check=True, capture_output=True, text=True).stdout.strip() == "False"


def test_ml_dtypes_arrays_still_read_after_a_lazy_start():
    code = """
import numpy as np, floatfmt, ml_dtypes
x = np.array([1.5, -2.0, 448.0], dtype=ml_dtypes.bfloat16)
assert floatfmt.encode(x, "e4m3").tolist() == floatfmt.encode(x.astype(np.float32), "e4m3").tolist()
assert floatfmt.get_format("bf16").ml_dtype == np.dtype(ml_dtypes.bfloat16)
"""
    assert _loaded_after(code, ["ml_dtypes"]) == ["ml_dtypes"]
