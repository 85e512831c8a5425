"""floatfmt: what a number is in each storage format, what accuracy a format costs, and what hardware a model needs.

Example:
    >>> import floatfmt
    >>> floatfmt.decode(floatfmt.encode(22.0, "e4m3"), "e4m3")
    np.float32(22.0)
"""

from floatfmt._options import EncodeError
from floatfmt.bits import Decoded, Fields, FormatInfo, Rounding, ValueTable, bits, explain, fields, info, table
from floatfmt.codec import code_dtype, decode, encode, round
from floatfmt.formats import (
    FloatFormat,
    Format,
    IntFormat,
    UnknownFormatError,
    aliases,
    formats,
    get_format,
    register_format,
)
from floatfmt.io import TensorInfo, Weights, WeightsError, open_weights
from floatfmt.packing import pack, packed_nbytes, unpack
from floatfmt.quant import (
    ErrorStats,
    QuantizedTensor,
    Scheme,
    error_stats,
    get_scheme,
    quantize,
    register_scheme,
    schemes,
)
from floatfmt.report import QuantReport, quant_report

__version__ = "0.1.0"

__all__ = [
    "Decoded",
    "TensorInfo",
    "Weights",
    "WeightsError",
    "open_weights",
    "QuantReport",
    "quant_report",
    "EncodeError",
    "ErrorStats",
    "QuantizedTensor",
    "Scheme",
    "error_stats",
    "get_scheme",
    "quantize",
    "register_scheme",
    "schemes",
    "Fields",
    "FormatInfo",
    "Rounding",
    "ValueTable",
    "bits",
    "explain",
    "fields",
    "info",
    "pack",
    "packed_nbytes",
    "unpack",
    "table",
    "FloatFormat",
    "Format",
    "IntFormat",
    "UnknownFormatError",
    "__version__",
    "aliases",
    "code_dtype",
    "decode",
    "encode",
    "formats",
    "get_format",
    "register_format",
    "round",
]
