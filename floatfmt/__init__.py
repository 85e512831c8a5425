"""floatfmt: what a number is in each storage format, what accuracy a format costs, and what hardware a model needs.

Example:
    >>> import floatfmt
    >>> floatfmt.decode(floatfmt.encode(22.0, "e4m3"), "e4m3")
    np.float32(22.0)
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from floatfmt._options import EncodeError
from floatfmt.bits import Decoded, bits, explain, fields, info, table
from floatfmt.formats import (
    FloatFormat,
    Format,
    IntFormat,
    UnknownFormatError,
    aliases,
    finfo,
    formats,
    get_format,
    register_format,
)

if TYPE_CHECKING:
    from floatfmt._backend import backend, set_backend, using_backend
    from floatfmt.codec import code_dtype, decode, encode
    from floatfmt.codec import round as round  # public, but not in __all__ (see below)
    from floatfmt.comparison import compare
    from floatfmt.io import TensorInfo, Weights, WeightsError, open_weights
    from floatfmt.packing import pack, packed_nbytes, unpack
    from floatfmt.quant import ErrorStats, QuantizedTensor, Scheme, error_stats, quantize
    from floatfmt.quant.schemes import get_scheme, register_scheme, schemes
    from floatfmt.report import QuantReport, ReportError, quant_report

_LAZY = {
    **dict.fromkeys(("code_dtype", "decode", "encode", "round"), "floatfmt.codec"),
    **dict.fromkeys(("backend", "set_backend", "using_backend"), "floatfmt._backend"),
    **dict.fromkeys(("pack", "packed_nbytes", "unpack"), "floatfmt.packing"),
    "compare": "floatfmt.comparison",
    **dict.fromkeys(("TensorInfo", "Weights", "WeightsError", "open_weights"), "floatfmt.io"),
    **dict.fromkeys(
        ("ErrorStats", "QuantizedTensor", "Scheme", "error_stats", "get_scheme", "quantize"), "floatfmt.quant"
    ),
    **dict.fromkeys(("register_scheme", "schemes"), "floatfmt.quant"),
    **dict.fromkeys(("QuantReport", "ReportError", "quant_report"), "floatfmt.report"),
}
"""Names whose modules load on first use. The codec and everything above it import numpy, which takes ten times as
long as the formats and ``explain``: ``import floatfmt`` loads only those, and ``floatfmt explain`` never loads
numpy at all. The quantization, file and report layers take several times the codec's import time, and a process
that only encodes never needs them."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"floatfmt.{name}") is not None:
        return importlib.import_module(f"floatfmt.{name}")  # a submodule: floatfmt.memory works as before
    raise AttributeError(f"module 'floatfmt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

# `round` is floatfmt.round, like numpy's: left out of `from floatfmt import *`, which would shadow the builtin.
__all__ = [
    "Decoded",
    "EncodeError",
    "ErrorStats",
    "FloatFormat",
    "Format",
    "IntFormat",
    "QuantReport",
    "QuantizedTensor",
    "Scheme",
    "TensorInfo",
    "UnknownFormatError",
    "Weights",
    "WeightsError",
    "__version__",
    "aliases",
    "backend",
    "bits",
    "code_dtype",
    "decode",
    "encode",
    "error_stats",
    "explain",
    "fields",
    "finfo",
    "formats",
    "get_format",
    "get_scheme",
    "info",
    "open_weights",
    "pack",
    "packed_nbytes",
    "quant_report",
    "compare",
    "ReportError",
    "quantize",
    "register_format",
    "register_scheme",
    "schemes",
    "set_backend",
    "table",
    "unpack",
    "using_backend",
]
