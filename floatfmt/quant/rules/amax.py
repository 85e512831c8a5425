"""Scales from each block's largest magnitude: ``scale = amax / element max``.

* ``amax``: elements ``x / scale``, the scale as its format stores it (per-tensor FP8, custom schemes).
* ``symmetric_int``: the same into an integer element (symmetric INT8 per channel or tensor).
* ``amax_reciprocal``: DeepGEMM's ``per_block_cast_to_fp8``: the block amax clamped to at least 1e-4, elements
  ``x * (1 / scale)`` with the reciprocal rounded to float32.
* ``pow2_ceil_reciprocal``: the same with the scale rounded up to a power of two (DeepGEMM's UE8M0 scales).
* ``amax_times_reciprocal``: vLLM's ``scaled_fp8_quant`` (its online ``--quantization fp8``): ``scale = amax /
  448``, elements ``x * (1 / scale)`` with the reciprocal rounded to float32, no floor.
* ``compressed_tensors``: compressed-tensors' symmetric grid (``calculate_qparams`` and ``_quantize``, 0.20.1):
  ``scale = amax / ((q_max - q_min) / 2)``: ``amax / 7.5`` for int4, ``amax / 127.5`` for int8 (the largest
  magnitude lands on ``-8`` or ``7.5`` and is clamped), ``amax / 448`` for FP8; elements ``x / scale``; a zero
  scale becomes the scale format's epsilon.
"""

from __future__ import annotations

import numpy as np

from floatfmt.formats import FloatFormat, IntFormat
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockEncoding, BlockRule, element_max, store
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["AmaxRule"]

DEEPGEMM_AMAX_FLOOR = 1e-4
"""DeepGEMM clamps each block's amax to at least this before dividing (an all-zero tile gets a tiny scale)."""


class AmaxRule(BlockRule):
    """``scale = amax / element max``, with the variants named in the module's docstring."""

    def __init__(self, name: str, description: str, *, reciprocal: bool, floor: float | None, power_of_two: bool,
                 integer: bool, half_range: bool = False) -> None:  # fmt: skip
        self.name, self.description = name, description
        self.reciprocal, self.floor, self.power_of_two, self.integer = reciprocal, floor, power_of_two, integer
        self.half_range = half_range

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        if self.integer and not isinstance(formats.element, IntFormat):
            raise ValueError(f"scheme {scheme.name!r}: scale_rule='{self.name}' needs an integer element format")
        return formats

    def encoding(self, blocked: Blocked, scheme: Scheme) -> BlockEncoding:
        amax = self.block_amax(blocked, scheme)
        if self.floor is not None:
            amax = np.maximum(amax, np.float32(self.floor))
        assert scheme.formats.scale is not None and scheme.formats.element is not None
        if self.half_range:
            element = scheme.formats.element
            scale = amax / np.float32((element.max - element.min) / 2)
            assert isinstance(scheme.formats.scale, FloatFormat)
            scale[scale == 0] = np.float32(2.0**-scheme.formats.scale.mantissa_bits)  # the format's epsilon
        else:
            scale = amax / element_max(scheme)
        if self.power_of_two:
            scale = np.exp2(np.ceil(np.log2(scale))).astype(np.float32)
        stored = store(scale, scheme.formats.scale)  # elements are scaled by the scale as stored
        return BlockEncoding(stored, self.reciprocal, stored)


for _rule in (
    AmaxRule(
        "amax",
        "scale = block amax / element max; elements = x / scale",
        reciprocal=False,
        floor=None,
        power_of_two=False,
        integer=False,
    ),
    AmaxRule(
        "symmetric_int",
        "scale = block amax / integer max; elements = round(x / scale)",
        reciprocal=False,
        floor=None,
        power_of_two=False,
        integer=True,
    ),
    AmaxRule(
        "compressed_tensors",
        "scale = block amax / ((max - min) / 2) (amax / 7.5 for int4); x / scale, clamped (compressed-tensors)",
        reciprocal=False,
        floor=None,
        power_of_two=False,
        integer=False,
        half_range=True,
    ),
    AmaxRule(
        "amax_times_reciprocal",
        "scale = amax / element max; elements = x * (1 / scale) (vLLM scaled_fp8_quant)",
        reciprocal=True,
        floor=None,
        power_of_two=False,
        integer=False,
    ),
    AmaxRule(
        "amax_reciprocal",
        "scale = max(block amax, 1e-4) / element max; elements = x * (1 / scale) (DeepGEMM)",
        reciprocal=True,
        floor=DEEPGEMM_AMAX_FLOOR,
        power_of_two=False,
        integer=False,
    ),
    AmaxRule(
        "pow2_ceil_reciprocal",
        "as amax_reciprocal with the scale rounded up to a power of two (DeepGEMM ue8m0)",
        reciprocal=True,
        floor=DEEPGEMM_AMAX_FLOOR,
        power_of_two=True,
        integer=False,
    ),
):
    register_rule(_rule)
