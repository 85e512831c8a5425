"""Scales from each block's largest magnitude: ``scale = amax / element max``.

* ``amax``: elements ``x / scale``, the scale as its format stores it (per-tensor FP8, custom schemes).
* ``symmetric_int``: the same into an integer element (symmetric INT8 per channel or tensor).
* ``amax_reciprocal``: DeepGEMM's ``per_block_cast_to_fp8``: the block amax clamped to at least 1e-4, elements
  ``x * (1 / scale)`` with the reciprocal rounded to float32.
* ``pow2_ceil_reciprocal``: the same with the scale rounded up to a power of two (DeepGEMM's UE8M0 scales).
"""

from __future__ import annotations

import numpy as np

from floatfmt.codec import code_dtype
from floatfmt.formats import IntFormat
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockRule, element_max, store
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["AmaxRule"]

DEEPGEMM_AMAX_FLOOR = 1e-4
"""DeepGEMM clamps each block's amax to at least this before dividing (an all-zero tile gets a tiny scale)."""


class AmaxRule(BlockRule):
    """``scale = amax / element max``, with the variants named in the module's docstring."""

    def __init__(self, name: str, description: str, *, reciprocal: bool, floor: float | None, power_of_two: bool,
                 integer: bool) -> None:  # fmt: skip
        self.name, self.description = name, description
        self.reciprocal, self.floor, self.power_of_two, self.integer = reciprocal, floor, power_of_two, integer

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        if self.integer and not isinstance(formats.element, IntFormat):
            raise ValueError(f"scheme {scheme.name!r}: scale_rule='{self.name}' needs an integer element format")
        return formats

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        amax = self.block_amax(blocked, scheme)
        if self.floor is not None:
            amax = np.maximum(amax, np.float32(self.floor))
        scale = amax / element_max(scheme)
        if self.power_of_two:
            scale = np.exp2(np.ceil(np.log2(scale))).astype(np.float32)
        assert scheme.formats.scale is not None and scheme.formats.element is not None
        stored = store(scale, scheme.formats.scale)  # elements are scaled by the scale as stored
        codes = blocked.scale_and_encode(
            stored, self.reciprocal, self.encode_elements(scheme), code_dtype(scheme.formats.element)
        )
        return QuantizedTensor(scheme, blocked.shape, codes, stored)


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
