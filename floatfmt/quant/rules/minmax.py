"""Integer groups with a zero point, as GPTQ's ``Quantizer`` makes them: the range always holds 0.

* ``minmax`` (``sym=False``): ``scale = (max - min) / (2**bits - 1)`` over ``[min(block min, 0), max(block max,
  0)]`` (an all-zero block uses ``[-1, 1]``), zero point ``round(-min / scale)``.
* ``minmax_symmetric`` (``sym=True``): the range ``[-amax, amax]``, so ``scale = 2 amax / (2**bits - 1)`` and the
  zero point is ``2**(bits - 1)`` (8 for 4 bits: codes 0..15 stand for -8..7 steps).

* ``minmax_awq``: AutoAWQ's ``pseudo_quantize_tensor`` (``zero_point=True``): the block's own ``[min, max]``
  (0 need not be inside), ``scale = max(max - min, 1e-5) / (2**bits - 1)``, zero point
  ``clamp(-round(min / scale), 0, 2**bits - 1)``.

Codes ``clamp(round(x / scale) + zero, 0, 2**bits - 1)``; the scale stored in its format (fp16 in GPTQ/AWQ
checkpoints) and the zero point as an unsigned integer, as GPTQ checkpoints store it even when symmetric.
"""

from __future__ import annotations

import numpy as np

from floatfmt.formats import IntFormat
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockRule, store
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["MinmaxRule"]


class MinmaxRule(BlockRule):
    def __init__(self, name: str, description: str, *, symmetric: bool, awq: bool = False) -> None:
        self.name, self.description, self.symmetric, self.awq = name, description, symmetric, awq

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        element = formats.element
        if not (isinstance(element, IntFormat) and not element.signed and element.bits <= 8):
            raise ValueError(
                f"scheme {scheme.name!r}: scale_rule='minmax' needs an unsigned integer element of at most 8 bits "
                "(uint4)"
            )
        if formats.zero_point is None:
            raise ValueError(f"scheme {scheme.name!r}: scale_rule='minmax' needs a zero_point format (uint4)")
        return formats

    def uses_tensor_amax(self, scheme: Scheme) -> bool:
        return False  # a per-tensor minimum and maximum cannot come from one number

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        element = scheme.formats.element
        assert isinstance(element, IntFormat) and scheme.formats.scale is not None
        maximum_code = element.max
        if self.awq:
            return self._awq(blocked, scheme, maximum_code)
        low = np.minimum(blocked.reduce("min"), 0)
        high = np.maximum(blocked.reduce("max"), 0)
        if self.symmetric:  # GPTQ: xmax = max(|xmin|, xmax), xmin = -xmax
            high = np.maximum(-low, high)
            low = -high
        empty = (low == 0) & (high == 0)
        low, high = np.where(empty, -1, low), np.where(empty, 1, high)
        scale = ((high - low) / np.float32(maximum_code)).astype(np.float32)
        zero = np.full_like(scale, (maximum_code + 1) // 2) if self.symmetric else np.rint(-low / scale)
        return self._encode(blocked, scheme, scale, zero, maximum_code)

    def _awq(self, blocked: Blocked, scheme: Scheme, maximum_code: int) -> QuantizedTensor:
        low, high = blocked.reduce("min"), blocked.reduce("max")
        scale = (np.maximum(high - low, np.float32(1e-5)) / np.float32(maximum_code)).astype(np.float32)
        zero = np.clip(-np.rint(low / scale), 0, maximum_code)
        return self._encode(blocked, scheme, scale, zero, maximum_code)

    @staticmethod
    def _encode(
        blocked: Blocked, scheme: Scheme, scale: np.ndarray, zero: np.ndarray, maximum_code: int
    ) -> QuantizedTensor:
        assert scheme.formats.scale is not None
        zero_rows = np.repeat(zero, blocked.block_rows, axis=0)
        block_cols = blocked.block_cols

        def to_codes(scaled: np.ndarray, rows: slice) -> np.ndarray:
            steps = np.rint(scaled, out=scaled).reshape(scaled.shape[0], -1, block_cols)
            steps += zero_rows[rows][:, :, None]
            np.clip(steps, 0, maximum_code, out=steps)
            return steps.reshape(scaled.shape).astype(np.uint8)

        codes = blocked.scale_and_encode(scale, False, to_codes, np.uint8)
        stored = store(scale, scheme.formats.scale)
        return QuantizedTensor(scheme, blocked.shape, codes, stored, zero_points=zero.astype(np.uint8))


register_rule(
    MinmaxRule(
        "minmax",
        "asymmetric: scale = (max - min) / (2**bits - 1) with 0 inside the range; integer zero point (GPTQ)",
        symmetric=False,
    )
)
register_rule(
    MinmaxRule(
        "minmax_awq",
        "asymmetric over the block's own range: scale = max(max - min, 1e-5) / (2**bits - 1), clamped zero (AutoAWQ)",
        symmetric=False,
        awq=True,
    )
)
register_rule(
    MinmaxRule(
        "minmax_symmetric",
        "symmetric: scale = 2 amax / (2**bits - 1), zero point 2**(bits - 1) (GPTQ sym=True)",
        symmetric=True,
    )
)
