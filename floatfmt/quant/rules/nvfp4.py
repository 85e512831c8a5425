"""NVIDIA's NVFP4: FP4 elements in blocks of 16 with E4M3 block scales, in units of an fp32 per-tensor scale.

As TensorRT-Model-Optimizer's ``NVFP4QTensor``: ``scale_2 = tensor amax / (6 * 448)`` (1 for an all-zero
tensor), block scales ``block amax / (6 * scale_2)`` rounded to E4M3 (1.0 for an all-zero block), elements
``x / (block scale * scale_2)`` rounded half to even and saturated.
"""

from __future__ import annotations

import numpy as np

from floatfmt.codec import code_dtype
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockRule, element_max, store
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["Nvfp4Rule"]


class Nvfp4Rule(BlockRule):
    name = "nvfp4"
    description = "fp32 tensor scale amax / (6 * 448); E4M3 block scales of block amax / 6 over it (ModelOpt)"

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        if formats.tensor_scale is None:
            raise ValueError(f"scheme {scheme.name!r}: scale_rule='nvfp4' needs a tensor_scale format (float32)")
        return formats

    def uses_tensor_amax(self, scheme: Scheme) -> bool:
        return True

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        amax = self.block_amax(blocked, scheme)
        assert scheme.formats.scale is not None and scheme.formats.element is not None
        elements_max, scale_max = element_max(scheme), np.float32(scheme.formats.scale.max)
        if blocked.tensor_amax is not None:
            global_amax = np.float32(blocked.tensor_amax)
        else:
            global_amax = np.float32(amax.max()) if amax.size else np.float32(0)
        tensor_scale = global_amax / (elements_max * scale_max) if global_amax else np.float32(1)
        block_scale = amax / (elements_max * tensor_scale)
        block_scale[block_scale == 0] = 1  # ModelOpt stores 1.0 for an all-zero block
        block_scale = store(block_scale, scheme.formats.scale)
        divisor = block_scale * tensor_scale
        codes = blocked.scale_and_encode(
            divisor, False, self.encode_elements(scheme), code_dtype(scheme.formats.element)
        )
        return QuantizedTensor(scheme, blocked.shape, codes, block_scale, tensor_scale=float(tensor_scale))


register_rule(Nvfp4Rule())
