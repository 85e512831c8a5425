"""OCP Microscaling (MX v1.0): a shared E8M0 scale per block of 32, from the block's largest exponent.

The scale is ``2**(floor(log2 amax) - emax)``, ``emax`` the exponent of the element format's largest binade
(0 for MXINT8, whose elements are fixed point with 6 fraction bits, code / 64, clamped to ±127 as microxcaling
does), within ``[2**-127, 2**127]``, with ``floor(log2 amax)`` taken exactly from the float's exponent;
elements are ``x / scale`` rounded and saturated (the scale is a power of two, so multiplying by its reciprocal is
the same single rounding). A block holding NaN or infinity gets E8M0's NaN scale, as in microsoft/microxcaling.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from floatfmt.codec import decode, encode
from floatfmt.formats import FloatFormat, IntFormat
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockEncoding, BlockRule, ElementRounding
from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["MxRule"]

MXINT_FRACTION = 64
"""MXINT8's elements are 1.6 fixed point: a code stands for code / 64."""


class MxRule(BlockRule):
    name = "mx"
    description = "E8M0 scale 2**(floor(log2 block amax) - element emax); elements saturate (OCP MX v1.0)"
    handles_nonfinite = True

    def check(self, scheme: Scheme) -> SchemeFormats:
        formats = super().check(scheme)
        if not isinstance(formats.element, FloatFormat | IntFormat):  # pragma: no cover - every format is one
            raise ValueError(f"scheme {scheme.name!r}: MX needs a float or integer element")
        return formats

    def encoding(self, blocked: Blocked, scheme: Scheme) -> BlockEncoding:
        amax = self.block_amax(blocked, scheme)
        # floor(log2 amax) from the float's own exponent, exactly (a float32 log2 rounds up for values a few
        # ulps below a power of two, which would make the scale one step too large); NaN and infinity stay NaN
        finite = np.isfinite(amax)
        _, frexp_exponent = np.frexp(np.where(finite & (amax != 0), amax, np.float32(2.0**-126)))
        exponent = np.where(finite, (frexp_exponent - 1).astype(np.float64), np.nan)
        element = scheme.formats.element
        assert element is not None
        emax = 0 if isinstance(element, IntFormat) else element.maxexp - 1
        exponent = exponent - emax
        exponent = np.where(exponent < -127, -127, exponent)
        exponent = np.where((exponent > 127) | np.isnan(exponent), np.nan, exponent)
        scale = np.exp2(exponent).astype(np.float32)
        return BlockEncoding(scale, True, scale)

    def fused_rounding(self, scheme: Scheme) -> ElementRounding | None:
        # MXINT8's elements are fixed point (clamped to ±127): they take the codes' path
        return None if isinstance(scheme.formats.element, IntFormat) else super().fused_rounding(scheme)

    def encode_elements(self, scheme: Scheme) -> Callable[[np.ndarray, slice], np.ndarray]:
        element, rounding = scheme.formats.element, scheme.rounding
        assert element is not None
        fixed_point = isinstance(element, IntFormat)

        def to_codes(scaled: np.ndarray, rows: slice) -> np.ndarray:
            if fixed_point:
                scaled *= np.float32(MXINT_FRACTION)
                codes = encode(scaled, element, rounding=rounding, overflow="saturate", nan="ml_dtypes")
                # microxcaling clamps MXINT8 to ±127 (symmetric): the code of -128 is never used
                np.maximum(codes.view(np.int8), np.int8(-127), out=codes.view(np.int8))
                return codes
            return encode(scaled, element, rounding=rounding, overflow="saturate", nan="ml_dtypes")

        return to_codes

    def element_values(self, codes: np.ndarray, scheme: Scheme) -> np.ndarray:
        element = scheme.formats.element
        assert element is not None
        values = decode(codes, element, dtype=np.float32)
        if isinstance(element, IntFormat):
            values /= np.float32(MXINT_FRACTION)
        return values


register_rule(MxRule())
