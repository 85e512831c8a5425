"""Quantization: schemes as data, one rule per family, quantized tensors with their true storage, error metrics.

``floatfmt.quant.rules`` holds the rules, ``floatfmt.quant.schemes`` the named schemes, ``floatfmt.quant.storage``
the resolver of storage names (schemes, formats, GGML types, llama.cpp file types), and
``floatfmt.quant.layout`` the one size formula they all read.
"""

from floatfmt.quant.metrics import ErrorStats, error_stats
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import RULES, ScaleRule, get_rule, register_rule
from floatfmt.quant.scheme import Scheme
from floatfmt.quant.schemes import get_scheme, register_scheme, schemes
from floatfmt.quant.storage import resolve
from floatfmt.quant.tensor import approximate, quantize

SCALE_RULES = {name: rule.description for name, rule in RULES.items()}
"""Every registered rule and what it does (the rule objects are in ``floatfmt.quant.RULES``)."""

__all__ = [
    "RULES",
    "SCALE_RULES",
    "ErrorStats",
    "QuantizedTensor",
    "ScaleRule",
    "Scheme",
    "approximate",
    "error_stats",
    "get_rule",
    "get_scheme",
    "quantize",
    "register_rule",
    "register_scheme",
    "resolve",
    "schemes",
]
