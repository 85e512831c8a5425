"""No scale: a plain cast to the element format (BF16, FP16, or any format), NaN kept where the format has it."""

from __future__ import annotations

import numpy as np

from floatfmt.codec import decode, encode
from floatfmt.quant.layout import Layout, Part
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import ScaleRule, register_rule
from floatfmt.quant.rules._blocks import resolve
from floatfmt.quant.scheme import Scheme, SchemeFormats, rows_cols

__all__ = ["CastRule"]


class CastRule(ScaleRule):
    name = "cast"
    description = "no scale: a plain cast to the element format"
    handles_nonfinite = True

    def check(self, scheme: Scheme) -> SchemeFormats:
        if scheme.zero_point is not None or scheme.tensor_scale is not None or scheme.codebook is not None:
            raise ValueError(f"scheme {scheme.name!r}: a cast has no scales, zero points or codebook")
        return SchemeFormats(resolve(scheme.element, "element", scheme), None, None, None)

    def layout(self, scheme: Scheme, rows: int, cols: int) -> Layout:
        element = scheme.formats.element
        assert element is not None
        return Layout(rows * cols, element.bits, (Part("codes", element, rows * cols),))

    def row_block(self, scheme: Scheme, cols: int) -> int | None:
        return 1

    def quantize(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        importance: np.ndarray | None = None,
    ) -> QuantizedTensor:
        codes = encode(matrix, scheme.formats.element, rounding=scheme.rounding, nan="ml_dtypes")  # type: ignore[arg-type]
        return QuantizedTensor(scheme, shape, codes)

    def stored(self, q: QuantizedTensor) -> dict[str, np.ndarray]:
        assert q.codes is not None
        return {"codes": q.codes}

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        assert q.codes is not None and q.scheme.formats.element is not None
        return decode(q.codes, q.scheme.formats.element, dtype=np.float32).reshape(rows_cols(q.shape))


register_rule(CastRule())
