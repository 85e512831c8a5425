"""numba twins of ``floatfmt._kernels``: the same signatures and meanings, each one pass without temporaries.

Imported by ``floatfmt._backend`` only when numba's loops are in use. The functions release the GIL, so the
codec's threads run them side by side. All arithmetic is on int64 with values below 2**48: nothing overflows.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import binding, ir
from numba.core import types
from numba.extending import intrinsic

__all__ = [
    "bfloat16_decode",
    "bfloat16_encode",
    "bits_of_float",
    "float32_rounded_to_odd",
    "float_of_bits",
    "gather",
    "half_decode",
    "half_encode",
    "narrower_encode",
    "nearest_encode",
    "random_bits",
    "stochastic_table_encode",
    "table_encode",
]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
_M32 = 0xFFFFFFFF


@_jit
def _key(bits: int, dropped: int) -> int:
    return (bits >> dropped) | min(bits & ((1 << dropped) - 1), 1)


@_jit
def table_encode(bits, dropped, table, out, flags):  # type: ignore[no-untyped-def]
    flagged = 0
    for i in range(bits.size):
        key = _key(np.int64(bits[i]), dropped)
        out[i] = table[key]
        if flags is not None:
            flagged += flags[key]
    return flagged


@_jit
def nearest_encode(
    bits, dropped, table, mantissa_bits, min_normal, magic, offset, max_code, above_code, nan_codes, sign_shift, out
):  # type: ignore[no-untyped-def]
    # every operand uint32 (numba widens a uint32 mixed with an int to float64), so that the loop vectorizes
    shift = np.uint32(23 - mantissa_bits)
    half = np.uint32((1 << (22 - mantissa_bits)) - 1)
    one, low_bits = np.uint32(1), np.uint32(0x7FFFFFFF)
    magic = np.float32(magic)
    magic_bits = bits_of_float(magic)
    offset, min_normal = np.uint32(offset), np.uint32(min_normal)
    max_code, above_code = np.uint32(max_code), np.uint32(above_code)
    nan_code, negative_nan_code = np.uint32(nan_codes[0]), np.uint32(nan_codes[1])
    sign_shift = np.uint32(sign_shift)
    for i in range(bits.size):
        word = bits[i]
        magnitude = word & low_bits
        normal = ((magnitude + half + ((magnitude >> shift) & one)) >> shift) - offset
        subnormal = bits_of_float(float_of_bits(magnitude) + magic) - magic_bits
        code = normal if magnitude >= min_normal else subnormal
        code = (above_code if code > max_code else code) | ((word >> np.uint32(31)) << sign_shift)
        nan = negative_nan_code if word >> np.uint32(31) else nan_code
        out[i] = nan if magnitude > np.uint32(0x7F800000) else code
    return 0


@_jit
def stochastic_table_encode(bits, random, noise_shift, dropped, table, out, flags, regular_low, regular_high):  # type: ignore[no-untyped-def]
    irregular = np.empty(bits.size, dtype=np.intp)
    count = 0
    flagged = 0
    for i in range(bits.size):
        b = np.int64(bits[i])
        key = _key((b + ((_M32 - np.int64(random[i])) >> noise_shift)) & _M32, dropped)
        out[i] = table[key]
        magnitude = b & 0x7FFFFFFF
        if magnitude < regular_low or magnitude >= regular_high:
            irregular[count] = i
            count += 1
        elif flags is not None:
            flagged += flags[key]
    return flagged, irregular[:count]


@_jit
def _times_mod32(h: int, factor: int) -> int:
    """``h * factor mod 2**32`` for 32-bit operands, in two products below 2**48."""
    return (h * (factor & 0xFFFF) + (((h * (factor >> 16)) & 0xFFFF) << 16)) & _M32


@_jit
def random_bits(key, first, out):  # type: ignore[no-untyped-def]
    for i in range(out.size):
        h = ((first + i) & _M32) ^ key
        h ^= h >> 16
        h = _times_mod32(h, 0x85EBCA6B)
        h ^= h >> 13
        h = _times_mod32(h, 0xC2B2AE35)
        out[i] = h ^ (h >> 16)


@_jit
def gather(table, codes, out, pairs):  # type: ignore[no-untyped-def]
    for i in range(codes.size):
        out[i] = table[codes[i]]


@_jit
def narrower_encode(bits, mantissa_bits, exponent_bits, bias, rounding, overflow, random, out):  # type: ignore[no-untyped-def]
    m = mantissa_bits
    infinity = ((1 << exponent_bits) - 1) << m
    max_code = infinity - 1
    quiet_nan = infinity | (1 << (m - 1))
    offset = (127 - bias) << m
    sign_shift = exponent_bits + m
    overflowed = 0
    for i in range(bits.size):
        word = np.int64(bits[i])
        magnitude = word & 0x7FFFFFFF
        negative = word >> 31
        field = magnitude >> 23
        significand = (magnitude & 0x7FFFFF) | (0x800000 if field > 0 else 0)
        below = max(1 - bias - (max(field, 1) - 127), 0)
        dropped = 23 - m + below
        shift = min(dropped, 31)
        if below == 0:
            truncated = (magnitude >> (23 - m)) - offset
            low = magnitude & ((1 << shift) - 1)
        else:
            truncated = significand >> shift
            low = significand & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        even = (truncated & 1) == 0
        if rounding == 0:
            away = (low > half) | ((low == half) & (not even))
        elif rounding == 1:
            away = low >= half
        elif rounding == 2:
            away = False
        elif rounding == 3:
            away = (low != 0) & (negative == 0)
        elif rounding == 4:
            away = (low != 0) & (negative == 1)
        elif rounding == 5:
            away = (low != 0) & even
        else:  # stochastic: the dropped fraction against random / 2**32 (see the numpy twin)
            r = np.int64(random[i])
            if dropped <= 32:
                away = low > (r >> (32 - dropped))
            elif dropped >= 56:
                away = (r == 0) & (significand > 0)
            else:
                away = significand > (r << (dropped - 32))
        code = truncated + away
        if magnitude > 0x7F800000:
            code = quiet_nan
        elif magnitude == 0x7F800000:
            code = max_code if overflow == 1 else infinity
        elif code > max_code:
            overflowed += 1
            if overflow == 0:
                up = (
                    rounding <= 1
                    or rounding == 6
                    or (rounding == 3 and negative == 0)
                    or (rounding == 4 and negative == 1)
                )
                code = infinity if up else max_code
            else:
                code = max_code
        out[i] = code | (negative << sign_shift)
    return overflowed


# float16 through the processor's own conversions (F16C's vcvtps2ph / vcvtph2ps: LLVM's fptrunc and fpext to
# half, round-to-nearest-even), where it has them; integer operations on the bits where it does not.

F16C = bool(binding.get_host_cpu_features().get("f16c"))


@intrinsic
def _half_bits(typingctx, value):  # type: ignore[no-untyped-def]
    """A float32 rounded to float16 (nearest-even), as its bits."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


@intrinsic
def _half_value(typingctx, code):  # type: ignore[no-untyped-def]
    """The float32 value of float16 bits."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def float_of_bits(typingctx, word):  # type: ignore[no-untyped-def]
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def bits_of_float(typingctx, value):  # type: ignore[no-untyped-def]
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@_jit
def float32_rounded_to_odd(values, out):  # type: ignore[no-untyped-def]
    words = out.view(np.uint32)
    for i in range(values.size):
        x = values[i]
        narrow = np.float32(x)
        wide = np.float64(narrow)
        word = bits_of_float(narrow) - np.uint32(abs(wide) > abs(x))
        words[i] = word | np.uint32(wide != x)


@_jit
def _half_encode_f16c(values, out):  # type: ignore[no-untyped-def]
    for i in range(values.size):
        v = values[i]
        code = _half_bits(v)
        out[i] = (code & 0x8000) | 0x7E00 if v != v else code  # NaN: the canonical quiet one, sign kept
    return 0


@_jit
def _half_encode_bits(values, out):  # type: ignore[no-untyped-def]
    return narrower_encode(values.view(np.uint32), 10, 5, 15, 0, 0, values.view(np.uint32)[:0], out) * 0


@_jit
def _half_decode_f16c(codes, out):  # type: ignore[no-untyped-def]
    for i in range(codes.size):
        h = codes[i]
        value = _half_value(h)
        if (h & 0x7C00) == 0x7C00 and (h & 0x3FF) != 0:  # NaN: its payload as numpy keeps it, not made quiet
            value = float_of_bits(
                np.uint32(((np.uint32(h) & 0x8000) << 16) | 0x7F800000 | ((np.uint32(h) & 0x3FF) << 13))
            )
        out[i] = value


@_jit
def _half_decode_bits(codes, out):  # type: ignore[no-untyped-def]
    words = out.view(np.uint32)
    tiny = np.float32(2.0**-24)
    for i in range(codes.size):
        h = np.int64(codes[i])
        exponent = (h >> 10) & 0x1F
        mantissa = h & 0x3FF
        if exponent == 0:  # zero and subnormals: the mantissa counts steps of 2**-24, exactly
            value = np.float32(mantissa) * tiny
            out[i] = -value if h & 0x8000 else value
        else:
            exponent = 0xFF if exponent == 0x1F else exponent + 112  # infinity and NaN, else float32's bias
            words[i] = ((h & 0x8000) << 16) | (exponent << 23) | (mantissa << 13)


half_encode = _half_encode_f16c if F16C else _half_encode_bits
half_decode = _half_decode_f16c if F16C else _half_decode_bits


@_jit
def bfloat16_encode(values, out):  # type: ignore[no-untyped-def]
    words = values.view(np.uint32)
    for i in range(values.size):
        word = np.int64(words[i])
        if (word & 0x7FFFFFFF) > 0x7F800000:
            out[i] = ((word >> 16) & 0x8000) | 0x7FC0  # NaN: the quiet one, sign kept, as ml_dtypes
        else:
            out[i] = (word + 0x7FFF + ((word >> 16) & 1)) >> 16  # nearest-even; a carry lands on infinity
    return 0


@_jit
def bfloat16_decode(codes, out):  # type: ignore[no-untyped-def]
    words = out.view(np.uint32)
    for i in range(codes.size):
        words[i] = np.uint32(codes[i]) << 16
