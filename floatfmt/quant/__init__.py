"""Quantization: schemes as data, quantized tensors with their true storage cost, and error metrics."""

from floatfmt.quant.metrics import ErrorStats, error_stats
from floatfmt.quant.schemes import SCALE_RULES, Scheme, get_scheme, register_scheme, schemes
from floatfmt.quant.tensor import QuantizedTensor, quantize

__all__ = [
    "SCALE_RULES",
    "ErrorStats",
    "QuantizedTensor",
    "Scheme",
    "error_stats",
    "get_scheme",
    "quantize",
    "register_scheme",
    "schemes",
]
