"""NVIDIA's NVFP4: FP4 elements in blocks of 16 with E4M3 block scales, in units of an fp32 per-tensor scale.

Two tools write it, with different arithmetic (both read here from their sources, nvidia-modelopt 0.47.0's
``modelopt/torch/quantization/qtensor/nvfp4_tensor.py`` and torchao 0.18.0's
``torchao/prototype/mx_formats/nvfp4_tensor.py``):

========================  ==============================================  =========================================
step                      ModelOpt ``NVFP4QTensor`` (scheme ``nvfp4``)    torchao ``nvfp4_quantize`` (``nvfp4_torchao``)
========================  ==============================================  =========================================
tensor scale ``s2``       ``amax / (6 * 448)``                            the same
block scale               ``block amax / (6 * s2)``; 0 becomes 1.0;      ``(block amax / 6) / s2``
                          clamped into ``[2**-9, 448]``, cast to E4M3     clamped into ``[2**-6, 448]``, cast to E4M3
elements                  ``x / (scale * s2)``, to E2M1                   ``x * ((1 / s2) / scale)``, clamped to ±6
a zero element's sign     from ``x < 0``: -0.0 is stored as +0, and the   kept: -0.0 is stored as -0
                          code of -0 reads as +0
dequantized               ``e2m1 * (scale * s2)``                         the same
========================  ==============================================  =========================================

Both round to nearest, ties to even, and saturate at ±6. An all-zero tensor (``s2 = 0``) gives NaN scales in
both tools; floatfmt stores ``s2 = 1`` there so that the tensor round-trips to zeros.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from floatfmt.codec import code_dtype
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import (
    Blocked,
    BlockEncoding,
    BlockRule,
    ElementRounding,
    element_max,
    store,
)
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["Nvfp4Rule", "TorchaoNvfp4Rule"]


class Nvfp4Rule(BlockRule):
    """ModelOpt's arithmetic; :class:`TorchaoNvfp4Rule` changes the three places where torchao's differs."""

    name = "nvfp4"
    description = "fp32 tensor scale amax / (6 * 448); E4M3 block scales of block amax / 6 over it (ModelOpt)"
    scale_floor = np.float32(2.0**-9)
    """The smallest block scale stored (ModelOpt: E4M3's smallest subnormal)."""
    signed_zero = False
    """Whether a zero element keeps the sign of the float it came from (ModelOpt takes it from ``x < 0``)."""

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        if formats.tensor_scale is None:
            raise ValueError(f"scheme {scheme.name!r}: scale_rule={self.name!r} needs a tensor_scale format (float32)")
        return formats

    def uses_tensor_amax(self, scheme: Scheme) -> bool:
        return True

    def block_scales(self, amax: np.ndarray, tensor_scale: np.float32, elements_max: np.float32) -> np.ndarray:
        """The float32 block scales before their cast to E4M3."""
        scale = amax / (elements_max * tensor_scale)
        scale[scale == 0] = 1  # ModelOpt stores 1.0 for an all-zero block
        return scale

    def encoding(self, blocked: Blocked, scheme: Scheme) -> BlockEncoding:
        amax = self.block_amax(blocked, scheme)
        assert scheme.formats.scale is not None and scheme.formats.element is not None
        elements_max, scale_max = element_max(scheme), np.float32(scheme.formats.scale.max)
        if blocked.tensor_amax is not None:
            global_amax = np.float32(blocked.tensor_amax)
        else:
            global_amax = np.float32(amax.max()) if amax.size else np.float32(0)
        tensor_scale = global_amax / (elements_max * scale_max) if global_amax else np.float32(1)
        unclamped = self.block_scales(amax.astype(np.float32), np.float32(tensor_scale), elements_max)
        block_scale = store(np.clip(unclamped, self.scale_floor, scale_max), scheme.formats.scale)
        return BlockEncoding(
            block_scale * np.float32(tensor_scale),
            False,
            block_scale,
            factors=self.factors(block_scale, np.float32(tensor_scale)),
            tensor_scale=float(tensor_scale),
        )

    def fused_rounding(self, scheme: Scheme) -> ElementRounding | None:
        rounding = super().fused_rounding(scheme)
        return None if rounding is None else rounding.replace_zero(not self.signed_zero)

    def dequantization(self, encoding: BlockEncoding) -> tuple[np.ndarray, np.float32]:
        assert encoding.scales is not None and encoding.tensor_scale is not None
        return encoding.scales.astype(np.float32) * np.float32(encoding.tensor_scale), np.float32(1)

    def factors(self, block_scale: np.ndarray, tensor_scale: np.float32) -> np.ndarray | None:
        """What each block's elements are multiplied by, or ``None`` to divide them by ``scale * s2``."""
        return None

    def encode_elements(self, scheme: Scheme) -> Callable[[np.ndarray, slice], np.ndarray]:
        to_codes = super().encode_elements(scheme)
        if self.signed_zero:
            return to_codes
        assert scheme.formats.element is not None
        sign = np.array(1 << (scheme.formats.element.bits - 1)).astype(code_dtype(scheme.formats.element))

        def unsigned_zero(scaled: np.ndarray, rows: slice) -> np.ndarray:
            codes = to_codes(scaled, rows)
            codes[scaled == 0] &= ~sign  # -0.0 is not < 0: ModelOpt stores it as +0
            return codes

        return unsigned_zero

    def element_values(self, codes: np.ndarray, scheme: Scheme) -> np.ndarray:
        values = super().element_values(codes, scheme)
        if not self.signed_zero:
            values += np.float32(0)  # -0.0 + 0.0 is +0.0: ModelOpt's table reads code 8 as +0
        return values

    def stored_dequantization(self, q: QuantizedTensor) -> tuple[np.ndarray | None, np.float32 | None]:
        """``e2m1 * (block scale * tensor scale)``: both tools multiply the two scales first, so each element is
        one product (in row runs on the threads, as every block rule dequantizes)."""
        assert q.scales is not None and q.tensor_scale is not None
        return q.scales.astype(np.float32) * np.float32(q.tensor_scale), None


class TorchaoNvfp4Rule(Nvfp4Rule):
    """torchao's ``nvfp4_quantize`` with a per-tensor scale (``NVFP4Tensor.to_nvfp4(..., per_tensor_scale)``)."""

    name = "nvfp4_torchao"
    description = "NVFP4 as torchao writes it: block scales floored at 2**-6, elements times a reciprocal"
    scale_floor = np.float32(2.0**-6)  # torch.finfo(torch.float8_e4m3fn).tiny
    signed_zero = True

    def block_scales(self, amax: np.ndarray, tensor_scale: np.float32, elements_max: np.float32) -> np.ndarray:
        return (amax / elements_max) / tensor_scale

    def factors(self, block_scale: np.ndarray, tensor_scale: np.float32) -> np.ndarray | None:
        return (np.float32(1) / tensor_scale) / block_scale  # block scales are >= 2**-6: never 0


register_rule(Nvfp4Rule())
register_rule(TorchaoNvfp4Rule())
