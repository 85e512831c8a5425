"""The exact scalar codec, on ``fractions.Fraction``: the truth the fast codec is tested against.

Short and slow on purpose. Every value is exact, so rounding is decided by
comparing fractions, never floats. Encoding a magnitude finds the two
neighbouring values on the format's grid, extended without bound above the
largest finite value, and chooses between them by the rounding mode; only
then is overflow judged, as IEEE 754 does.

Values are ``Fraction``s, except those a ``Fraction`` cannot hold, which are
floats: negative zero (``-0.0``), the infinities and NaN.
"""

from __future__ import annotations

import math
from fractions import Fraction

from floatfmt._options import EncodeError, check_options
from floatfmt.formats import FloatFormat, Format, IntFormat, floor_log2, get_format

__all__ = ["decode", "encode", "neighbours", "round_away"]

Value = Fraction | float


def decode(code: int, fmt: Format | str) -> Value:
    """The exact value of ``code`` in ``fmt``."""
    fmt = get_format(fmt)
    if not 0 <= code < 2**fmt.bits:
        raise ValueError(f"code {code} does not fit in {fmt.bits} bits")
    if isinstance(fmt, IntFormat):
        return Fraction(code - 2**fmt.bits if fmt.signed and code >= 2 ** (fmt.bits - 1) else code)
    negative = bool(code & fmt.sign_mask)
    magnitude = code & fmt.magnitude_mask
    sign = -1.0 if negative else 1.0
    if negative and magnitude == 0 and fmt.nan == "negative_zero":
        return math.copysign(math.nan, -1.0)
    if magnitude > fmt.max_code:
        return sign * math.inf if magnitude == fmt.infinity_code else math.copysign(math.nan, sign)
    value = fmt.magnitude_value(magnitude)
    if negative:
        return -0.0 if value == 0 else -value
    return value


def round_away(fraction: Fraction, lower_is_even: bool, negative: bool, rounding: str, random: int | None) -> bool:
    """Whether a magnitude ``fraction`` of the way from one value to the next rounds away from zero."""
    if fraction == 0:
        return False
    if rounding == "nearest_even":
        return fraction > Fraction(1, 2) or (fraction == Fraction(1, 2) and not lower_is_even)
    if rounding == "nearest_away":
        return fraction >= Fraction(1, 2)
    if rounding == "toward_zero":
        return False
    if rounding == "up":
        return not negative
    if rounding == "down":
        return negative
    if rounding == "odd":
        return lower_is_even
    if random is None:
        raise ValueError("stochastic rounding needs the element's random bits")
    return fraction > Fraction(random, 2**32)


def encode(
    value: float | Fraction,
    fmt: Format | str,
    rounding: str = "nearest_even",
    overflow: str = "ieee",
    nan: str = "error",
    random: int | None = None,
) -> int:
    """The code of ``value`` in ``fmt`` under the given rounding, overflow and NaN policies.

    ``random`` is the element's 32 random bits, used by stochastic rounding only.
    """
    fmt = get_format(fmt)
    check_options(isinstance(fmt, IntFormat), rounding, overflow, nan, None)
    if isinstance(fmt, IntFormat):
        return _encode_int(value, fmt, rounding, overflow, nan, random)
    return _encode_float(value, fmt, rounding, overflow, nan, random)


def _is_negative(value: float | Fraction) -> bool:
    return value < 0 if isinstance(value, Fraction) else math.copysign(1.0, value) < 0


def _encode_float(
    value: float | Fraction, fmt: FloatFormat, rounding: str, overflow: str, nan: str, random: int | None
) -> int:
    negative = _is_negative(value)
    if isinstance(value, float) and math.isnan(value):
        code = fmt.nan_code(negative)
        if code is not None:
            return code
        if nan == "ml_dtypes":  # ml_dtypes turns NaN into a zero of the opposite sign
            return 0 if negative else fmt.sign_mask
        raise EncodeError(f"NaN cannot be encoded in {fmt.name}, which has no NaN; pass nan='ml_dtypes' to get -0")
    if not fmt.signed and negative and value != 0:
        return _unrepresentable(fmt, f"negative value {value} in unsigned format {fmt.name}")
    sign_bit = fmt.sign_mask if negative and fmt.signed else 0
    if isinstance(value, float) and math.isinf(value):
        if fmt.infinity and overflow != "saturate":
            return sign_bit | fmt.max_code + 1
        if overflow == "error":
            raise EncodeError(f"{value} overflows {fmt.name}, which has no infinity")
        if overflow == "ieee" and fmt.has_nan:
            return fmt.nan_code(negative)  # type: ignore[return-value]
        return sign_bit | fmt.max_code
    magnitude = abs(Fraction(value))
    if magnitude == 0:
        if fmt.zero:
            return sign_bit if fmt.has_negative_zero else 0
        return _unrepresentable(fmt, f"zero in {fmt.name}, which has no zero")

    lower, upper, lower_is_even = neighbours(magnitude, fmt)
    if lower is None:
        result = upper  # nothing below the smallest value: a format without zero clamps to it
    else:
        fraction = (magnitude - lower) / (upper - lower)
        result = upper if round_away(fraction, lower_is_even, negative, rounding, random) else lower

    if result > fmt.max:
        if overflow == "error":
            raise EncodeError(f"{float(value)!r} overflows {fmt.name} (max {fmt.max})")
        overflows_to_infinity = rounding in ("nearest_even", "nearest_away", "stochastic") or rounding == (
            "down" if negative else "up"
        )
        if overflow == "ieee" and overflows_to_infinity:
            if fmt.infinity:
                return sign_bit | fmt.max_code + 1
            if fmt.has_nan:
                return fmt.nan_code(negative)  # type: ignore[return-value]
        return sign_bit | fmt.max_code
    if result == 0:
        return sign_bit if fmt.has_negative_zero else 0
    return sign_bit | _magnitude_code(result, fmt)


def neighbours(magnitude: Fraction, fmt: FloatFormat) -> tuple[Fraction | None, Fraction, bool]:
    """``(lower, upper, lower_is_even)``: the grid values with ``lower <= magnitude < upper``.

    The grid is the format's, extended without bound above its largest value;
    ``lower`` is ``None`` below the smallest value of a format without zero.
    """
    smallest = fmt.magnitude_value(fmt.smallest_code)
    if magnitude < smallest:
        return (Fraction(0) if fmt.zero else None), smallest, True
    exponent = max(floor_log2(magnitude), fmt.lowest_binade_exponent)
    quantum = Fraction(2) ** (exponent - fmt.mantissa_bits)
    steps = math.floor(magnitude / quantum)
    return steps * quantum, (steps + 1) * quantum, steps % 2 == 0


def _unrepresentable(fmt: FloatFormat, what: str) -> int:
    code = fmt.nan_code()
    if code is None:
        raise EncodeError(f"cannot encode {what}")
    return code


def _magnitude_code(value: Fraction, fmt: FloatFormat) -> int:
    exponent = max(floor_log2(value), fmt.lowest_binade_exponent)
    steps = value / Fraction(2) ** (exponent - fmt.mantissa_bits)
    assert steps.denominator == 1, "a rounded value lies on the grid"
    code = ((exponent + fmt.bias) << fmt.mantissa_bits) + int(steps) - 2**fmt.mantissa_bits
    assert fmt.magnitude_value(code) == value
    return code


def _encode_int(
    value: float | Fraction, fmt: IntFormat, rounding: str, overflow: str, nan: str, random: int | None
) -> int:
    if isinstance(value, float) and math.isnan(value):
        if nan == "ml_dtypes":
            return 0
        raise EncodeError(f"NaN cannot be encoded in {fmt.name}; pass nan='ml_dtypes' to get 0")
    negative = _is_negative(value)
    if isinstance(value, float) and math.isinf(value):
        if overflow in ("error", "wrap"):
            raise EncodeError(f"{value} cannot be encoded in {fmt.name}")
        return (fmt.min if negative else fmt.max) % 2**fmt.bits
    magnitude = abs(Fraction(value))
    steps = math.floor(magnitude)
    away = round_away(magnitude - steps, steps % 2 == 0, negative, rounding, random)
    result = (steps + away) * (-1 if negative else 1)
    if not fmt.min <= result <= fmt.max:
        if overflow == "error":
            raise EncodeError(f"{float(value)!r} is outside {fmt.name}'s range [{fmt.min}, {fmt.max}]")
        if overflow != "wrap":
            result = min(max(result, fmt.min), fmt.max)
    return result % 2**fmt.bits
