"""Number formats: what each bit pattern of a storage format means.

A format is a small frozen spec. Everything else about it (largest value,
epsilon, smallest subnormal, ...) is derived from that spec, with the names
numpy's ``finfo`` uses. Formats are hashable, so they serve as cache keys for
the codec's lookup tables.

Naming follows ml_dtypes and LLVM: the suffix ``fn`` means *finite* (no
infinities, NaN only in the all-ones code), ``uz`` means *unsigned zero* (no
negative zero; the code that would be -0 is the only NaN), ``fnu`` means
finite and unsigned (no sign bit at all).

Example:
    >>> import floatfmt
    >>> fmt = floatfmt.get_format("e4m3")
    >>> fmt.name, fmt.bits, fmt.max, fmt.smallest_subnormal
    ('float8_e4m3fn', 8, 448.0, 0.001953125)
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FInfo",
    "FloatFormat",
    "IInfo",
    "IntFormat",
    "Format",
    "finfo",
    "NanEncoding",
    "UnknownFormatError",
    "formats",
    "aliases",
    "get_format",
    "is_registered",
    "register_format",
]

NanEncoding = Literal["ieee", "max_code", "negative_zero", "none"]
_NAN_ENCODINGS = ("ieee", "max_code", "negative_zero", "none")


class UnknownFormatError(ValueError):
    """A format name that is neither registered, an alias, nor ``eXmY``."""


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: sign, exponent field, mantissa field.

    A finite value with exponent field ``E`` and mantissa field ``M`` is
    ``2**(E - bias) * (1 + M / 2**mantissa_bits)``, or, where the format has
    subnormals and ``E == 0``, ``2**(1 - bias) * (M / 2**mantissa_bits)``.

    Args:
        name: the registry name, e.g. ``"float8_e4m3fn"``.
        exponent_bits: width of the exponent field.
        mantissa_bits: width of the mantissa (fraction) field.
        bias: exponent bias; ``None`` means the IEEE bias ``2**(exponent_bits-1) - 1``.
        signed: whether there is a sign bit (``float8_e8m0fnu`` has none).
        infinity: whether the code just below the NaN codes encodes infinity.
        nan: where NaN lives. ``"ieee"``: every code with the exponent field all
            ones and a non-zero mantissa; ``"max_code"``: only the all-ones
            magnitude; ``"negative_zero"``: only the sign-bit-only code (the
            ``uz`` formats, which then have no -0); ``"none"``: no NaN.
        subnormals: whether ``E == 0`` encodes subnormals. Without them the
            ``E == 0`` binade holds normal values.
        zero: whether the all-zeros magnitude encodes zero (``float8_e8m0fnu``
            has no zero: its code 0 is ``2**-127``).

    Example:
        >>> from floatfmt import FloatFormat
        >>> fmt = FloatFormat("my_e5m2", exponent_bits=5, mantissa_bits=2,
        ...                   infinity=False, nan="max_code")
        >>> fmt.bias, fmt.max
        (15, 98304.0)
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int = None  # type: ignore[assignment]  # filled in by __post_init__
    signed: bool = True
    infinity: bool = True
    nan: NanEncoding = "ieee"
    subnormals: bool = True
    zero: bool = True

    def __post_init__(self) -> None:
        if self.bias is None:
            object.__setattr__(self, "bias", 2 ** (self.exponent_bits - 1) - 1)
        _check(isinstance(self.name, str) and self.name != "", "name must be a non-empty string")
        _check(
            isinstance(self.exponent_bits, int) and 1 <= self.exponent_bits <= 11,
            f"exponent_bits must be an integer from 1 to 11 (float64's width), got {self.exponent_bits!r}",
        )
        _check(
            isinstance(self.mantissa_bits, int) and 0 <= self.mantissa_bits <= 52,
            f"mantissa_bits must be an integer from 0 to 52 (float64's width), got {self.mantissa_bits!r}",
        )
        _check(isinstance(self.bias, int), f"bias must be an integer, got {self.bias!r}")
        _check(self.nan in _NAN_ENCODINGS, f"nan must be one of {_NAN_ENCODINGS}, got {self.nan!r}")
        _check(self.signed or self.nan != "negative_zero", "nan='negative_zero' needs a sign bit")
        _check(self.zero or not self.subnormals, "a format without zero cannot have subnormals (set subnormals=False)")
        _check(
            self.subnormals or not self.zero or self.mantissa_bits <= 20,
            "a format with zero but no subnormals may have at most 20 mantissa bits (its gap below the smallest "
            "value is rounded in float64)",
        )
        _check(
            self.max_code >= self.smallest_code,
            "the format has no positive finite values: too many codes are NaN or infinity",
        )
        largest, smallest = self.magnitude_value(self.max_code), self.magnitude_value(self.smallest_code)
        _check(
            _pow2(-1074) <= smallest and largest <= Fraction(sys.float_info.max),
            f"the format's values must lie inside float64's range (bias {self.bias} puts them outside)",
        )

    # --- code layout -------------------------------------------------------------

    @property
    def bits(self) -> int:
        """Total width of a code in bits."""
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def nexp(self) -> int:
        """Width of the exponent field (numpy ``finfo`` name)."""
        return self.exponent_bits

    @property
    def nmant(self) -> int:
        """Width of the mantissa field (numpy ``finfo`` name)."""
        return self.mantissa_bits

    @property
    def sign_mask(self) -> int:
        """The sign bit of a code (0 for unsigned formats)."""
        return 1 << (self.exponent_bits + self.mantissa_bits) if self.signed else 0

    @property
    def magnitude_mask(self) -> int:
        """The bits of a code below the sign bit."""
        return (1 << (self.exponent_bits + self.mantissa_bits)) - 1

    @property
    def top_nan_count(self) -> int:
        """How many of the largest magnitude codes are NaN."""
        if self.nan == "ieee":
            return 2**self.mantissa_bits - 1
        return 1 if self.nan == "max_code" else 0

    @property
    def max_code(self) -> int:
        """The magnitude code of the largest finite value."""
        return self.magnitude_mask - self.top_nan_count - int(self.infinity)

    @property
    def smallest_code(self) -> int:
        """The magnitude code of the smallest positive value (code 0 is zero, unless the format has none)."""
        return 1 if self.zero else 0

    @property
    def infinity_code(self) -> int | None:
        """The magnitude code of infinity, or ``None``."""
        return self.max_code + 1 if self.infinity else None

    def nan_code(self, negative: bool = False) -> int | None:
        """The canonical NaN code, or ``None`` if the format has no NaN.

        IEEE-style formats use the quiet NaN (top mantissa bit set) and keep
        the sign, as ml_dtypes does.
        """
        if self.nan == "none" or (self.top_nan_count == 0 and self.nan == "ieee"):
            return None
        if self.nan == "negative_zero":
            return self.sign_mask
        if self.nan == "ieee":
            magnitude = (self.magnitude_mask >> self.mantissa_bits << self.mantissa_bits) | (
                1 << (self.mantissa_bits - 1)
            )
        else:
            magnitude = self.magnitude_mask
        return magnitude | (self.sign_mask if negative else 0)

    @property
    def has_nan(self) -> bool:
        return self.nan_code() is not None

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.zero and self.nan != "negative_zero"

    @property
    def lowest_binade_exponent(self) -> int:
        """Unbiased exponent of the quantum-defining lowest binade (``E == 0`` or ``E == 1``)."""
        return 1 - self.bias if self.subnormals else -self.bias

    # --- values (numpy finfo names) ---------------------------------------------------

    def magnitude_value(self, magnitude_code: int) -> Fraction:
        """The exact value of a finite, non-negative magnitude code."""
        if not 0 <= magnitude_code <= self.max_code:
            raise ValueError(f"{magnitude_code} is not a finite magnitude code of {self.name}")
        if magnitude_code == 0 and self.zero:
            return Fraction(0)
        exponent_field = magnitude_code >> self.mantissa_bits
        mantissa_field = magnitude_code & ((1 << self.mantissa_bits) - 1)
        if exponent_field == 0 and self.subnormals:
            return Fraction(mantissa_field, 2**self.mantissa_bits) * _pow2(1 - self.bias)
        return (1 + Fraction(mantissa_field, 2**self.mantissa_bits)) * _pow2(exponent_field - self.bias)

    @functools.cached_property
    def max(self) -> float:
        """Largest finite value."""
        return float(self.magnitude_value(self.max_code))

    @property
    def min(self) -> float:
        """Most negative finite value (for unsigned formats the smallest: 0, or the smallest positive value)."""
        if self.signed:
            return -self.max
        return 0.0 if self.zero else self.smallest_subnormal

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value: ``2**-mantissa_bits``."""
        return 2.0**-self.mantissa_bits

    @functools.cached_property
    def smallest_subnormal(self) -> float:
        """Smallest positive value (subnormal where the format has subnormals)."""
        return float(self.magnitude_value(self.smallest_code))

    @property
    def smallest_normal(self) -> float:
        """Smallest positive normal value."""
        if self.subnormals:
            return float(self.magnitude_value(1 << self.mantissa_bits))
        return self.smallest_subnormal

    @property
    def maxexp(self) -> int:
        """Smallest positive power of two that overflows (numpy ``finfo.maxexp``)."""
        return floor_log2(self.magnitude_value(self.max_code)) + 1

    @property
    def minexp(self) -> int:
        """Exponent of the smallest normal value (numpy ``finfo.minexp``)."""
        return floor_log2(Fraction(self.smallest_normal))

    @property
    def ml_dtype(self) -> np.dtype[Any] | None:
        """The numpy / ml_dtypes dtype with exactly this encoding, or ``None`` (asking for one of ml_dtypes' types
        imports ml_dtypes)."""
        found = _numpy_float_dtypes().get(self.layout)
        if found is not None or self.bits not in (4, 6, 8, 16):  # ml_dtypes' floats are of these widths
            return found
        return _ml_float_dtypes().get(self.layout)

    @property
    def layout(self) -> tuple[Any, ...]:
        """Every field that decides what a code means (all but the name)."""
        return (
            self.exponent_bits,
            self.mantissa_bits,
            self.bias,
            self.signed,
            self.infinity,
            self.nan,
            self.subnormals,
            self.zero,
        )

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class IntFormat:
    """A two's-complement (``signed``) or unsigned integer format.

    Example:
        >>> from floatfmt import get_format
        >>> fmt = get_format("int4")
        >>> fmt.min, fmt.max, fmt.bits
        (-8, 7, 4)
    """

    name: str
    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        _check(isinstance(self.bits, int) and 1 <= self.bits <= 32, f"bits must be from 1 to 32, got {self.bits!r}")

    @property
    def min(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def has_nan(self) -> bool:
        return False

    @property
    def ml_dtype(self) -> np.dtype[Any] | None:
        """The numpy / ml_dtypes integer dtype of this width and signedness, or ``None`` (asking for one of
        ml_dtypes' types imports ml_dtypes)."""
        if self.bits == 8:
            import numpy as np

            return np.dtype(np.int8 if self.signed else np.uint8)
        return _ml_int_dtypes().get((self.bits, self.signed))

    @property
    def layout(self) -> tuple[Any, ...]:
        return (self.bits, self.signed)

    def __str__(self) -> str:
        return self.name


Format = FloatFormat | IntFormat


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _pow2(exponent: int) -> Fraction:
    return Fraction(2) ** exponent


def floor_log2(value: Fraction) -> int:
    """``floor(log2(value))`` of a positive fraction, exactly."""
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    return exponent - 1 if _pow2(exponent) > value else exponent


# --- numpy's finfo surface --------------------------------------------------------------


@dataclass(frozen=True)
class FInfo:
    """numpy's ``finfo`` for any float format: every attribute numpy's has, with numpy's definitions.

    ``eps = 2**machep`` is the gap above 1, ``epsneg = 2**negep`` the gap below it; ``tiny`` is the smallest
    normal value; ``precision`` is numpy's ``int(-log10(eps))`` (ml_dtypes hand-picks 1 for its FP8 types, where
    this formula gives 0) and ``resolution`` is ``10**-precision``; ``dtype`` is the ml_dtypes/numpy dtype or
    ``None``. Values are Python floats (exact: every one is a float64).
    """

    format: FloatFormat
    bits: int
    dtype: np.dtype[Any] | None
    eps: float
    epsneg: float
    iexp: int
    machep: int
    max: float
    maxexp: int
    min: float
    minexp: int
    negep: int
    nexp: int
    nmant: int
    precision: int
    resolution: float
    smallest_normal: float
    smallest_subnormal: float
    tiny: float

    def __str__(self) -> str:
        rows = [f"Machine parameters for {self.format.name}", "-" * 60]
        pairs = [
            ("precision", self.precision, "resolution", self.resolution),
            ("machep", self.machep, "eps", self.eps),
            ("negep", self.negep, "epsneg", self.epsneg),
            ("minexp", self.minexp, "tiny", self.tiny),
            ("maxexp", self.maxexp, "max", self.max),
            ("nexp", self.nexp, "min", self.min),
        ]
        rows += [f"{a} = {x:>4}   {b} = {y:.6g}" for a, x, b, y in pairs]
        rows.append(
            f"smallest_normal = {self.smallest_normal:.6g}   smallest_subnormal = {self.smallest_subnormal:.6g}"
        )
        return "\n".join(rows)


@dataclass(frozen=True)
class IInfo:
    """numpy's ``iinfo`` for an integer format."""

    format: IntFormat
    bits: int
    dtype: np.dtype[Any] | None
    kind: str
    min: int
    max: int

    def __str__(self) -> str:
        return f"Machine parameters for {self.format.name}: {self.bits} bits, min = {self.min}, max = {self.max}"


def finfo(fmt: Format | str | Any) -> FInfo | IInfo:
    """numpy's ``finfo`` (or ``iinfo``, for integers) of any format.

    Example:
        >>> import floatfmt
        >>> info = floatfmt.finfo("e4m3")
        >>> info.eps, info.epsneg, info.tiny, info.max, info.precision, info.dtype
        (0.125, 0.0625, 0.015625, 448.0, 0, dtype(float8_e4m3fn))
        >>> floatfmt.finfo("int4").min, floatfmt.finfo("int4").max
        (-8, 7)
    """
    found = get_format(fmt)
    if isinstance(found, IntFormat):
        return IInfo(found, found.bits, found.ml_dtype, "i" if found.signed else "u", found.min, found.max)
    eps = found.eps
    below_one = found.magnitude_value(_magnitude_code_of_one(found) - 1)
    epsneg = 1 - below_one
    negep = floor_log2(epsneg)
    precision = int(-math.log10(eps))
    return FInfo(
        format=found,
        bits=found.bits,
        dtype=found.ml_dtype,
        eps=eps,
        epsneg=float(epsneg),
        iexp=found.nexp,
        machep=-found.mantissa_bits,
        max=found.max,
        maxexp=found.maxexp,
        min=found.min,
        minexp=found.minexp,
        negep=negep,
        nexp=found.nexp,
        nmant=found.nmant,
        precision=precision,
        resolution=10.0**-precision,
        smallest_normal=found.smallest_normal,
        smallest_subnormal=found.smallest_subnormal,
        tiny=found.smallest_normal,
    )


def _magnitude_code_of_one(fmt: FloatFormat) -> int:
    """The magnitude code of 1.0 (every registered and eXmY format has one; custom biases may not)."""
    code = fmt.bias << fmt.mantissa_bits  # 1.0 is 2**(E - bias) with E = bias and no fraction
    if not 0 < code <= fmt.max_code or fmt.magnitude_value(code) != 1:
        raise ValueError(f"{fmt.name} cannot hold 1.0, so its eps and epsneg are undefined")
    return code


# --- the registry ----------------------------------------------------------------------

_REGISTRY: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}


def register_format(fmt: Format, *alias_names: str) -> Format:
    """Add a format (and optional aliases) to the registry.

    Raises:
        ValueError: if the name or an alias is already taken.
    """
    for name in (fmt.name, *alias_names):
        key = _normalize(name)
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"format name {name!r} is already registered")
    _REGISTRY[_normalize(fmt.name)] = fmt
    for alias in alias_names:
        _ALIASES[_normalize(alias)] = _normalize(fmt.name)
    return fmt


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered name or alias: one that always stands for the same format (an ``eXmY``
    that is neither is built on the fly, and may be registered later as another format)."""
    key = _normalize(name)
    return key in _REGISTRY or key in _ALIASES


def formats() -> list[str]:
    """Every registered format name, in registration order (aliases excluded).

    Example:
        >>> import floatfmt
        >>> "float8_e4m3fn" in floatfmt.formats()
        True
    """
    return [fmt.name for fmt in _REGISTRY.values()]


def aliases() -> dict[str, str]:
    """Every alias and the registered name it stands for."""
    return {alias: _REGISTRY[target].name for alias, target in _ALIASES.items()}


_CUSTOM_FLOAT = re.compile(r"e(\d+)m(\d+)")


def get_format(fmt: Format | str | Any) -> Format:
    """Look up a format by name, alias, ``eXmY``, dtype, or pass a format through.

    ``eXmY`` that is not an alias builds an IEEE-like format: bias
    ``2**(X-1) - 1``, infinities and NaN in the top exponent, subnormals.

    Raises:
        UnknownFormatError: (a ``ValueError``) for an unknown name, listing close matches.

    Example:
        >>> import floatfmt, numpy as np
        >>> floatfmt.get_format("bf16").name, floatfmt.get_format(np.float16).name
        ('bfloat16', 'float16')
        >>> floatfmt.get_format("e6m5").max
        4227858432.0
    """
    if isinstance(fmt, (FloatFormat, IntFormat)):
        return fmt
    if not isinstance(fmt, str):
        import numpy as np  # a dtype or a scalar type: numpy is loaded already wherever one exists

        try:
            fmt = np.dtype(fmt).name
        except TypeError:
            raise TypeError(f"expected a format name, a FloatFormat/IntFormat or a dtype, got {fmt!r}") from None
    key = _normalize(fmt)
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    match = _CUSTOM_FLOAT.fullmatch(key)
    if match:
        return _custom_float(int(match[1]), int(match[2]))
    candidates = list(_REGISTRY) + list(_ALIASES)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownFormatError(
        f"unknown format {fmt!r}.{hint} Use floatfmt.formats() for every name, or 'eXmY' for a custom IEEE-like float."
    )


@functools.cache
def _custom_float(exponent_bits: int, mantissa_bits: int) -> FloatFormat:
    if exponent_bits < 2:
        raise UnknownFormatError(
            f"e{exponent_bits}m{mantissa_bits}: an IEEE-like format needs at least 2 exponent bits; "
            "build other layouts with FloatFormat(...)"
        )
    return FloatFormat(f"e{exponent_bits}m{mantissa_bits}", exponent_bits, mantissa_bits)


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _register_builtins() -> None:
    ieee = dict(infinity=True, nan="ieee")
    finite = dict(infinity=False, nan="max_code")
    unsigned_zero = dict(infinity=False, nan="negative_zero")
    no_specials = dict(infinity=False, nan="none")
    table: list[tuple[FloatFormat, tuple[str, ...]]] = [
        (FloatFormat("float64", 11, 52, **ieee), ("fp64", "double", "f64")),  # type: ignore[arg-type]
        (FloatFormat("float32", 8, 23, **ieee), ("fp32", "single", "float", "f32")),  # type: ignore[arg-type]
        (FloatFormat("tf32", 8, 10, **ieee), ("tensorfloat32",)),  # type: ignore[arg-type]
        (FloatFormat("float16", 5, 10, **ieee), ("fp16", "half", "f16", "e5m10")),  # type: ignore[arg-type]
        (FloatFormat("bfloat16", 8, 7, **ieee), ("bf16", "e8m7")),  # type: ignore[arg-type]
        (FloatFormat("float8_e4m3fn", 4, 3, **finite), ("e4m3", "e4m3fn", "fp8", "fp8_e4m3", "fp8_e4m3fn")),  # type: ignore[arg-type]
        (FloatFormat("float8_e4m3", 4, 3, **ieee), ("fp8_e4m3_ieee", "e4m3_ieee")),  # type: ignore[arg-type]
        (FloatFormat("float8_e4m3fnuz", 4, 3, bias=8, **unsigned_zero), ("e4m3fnuz", "fp8_e4m3fnuz")),  # type: ignore[arg-type]
        (FloatFormat("float8_e4m3b11fnuz", 4, 3, bias=11, **unsigned_zero), ("e4m3b11fnuz",)),  # type: ignore[arg-type]
        (FloatFormat("float8_e5m2", 5, 2, **ieee), ("e5m2", "fp8_e5m2")),  # type: ignore[arg-type]
        (FloatFormat("float8_e5m2fnuz", 5, 2, bias=16, **unsigned_zero), ("e5m2fnuz", "fp8_e5m2fnuz")),  # type: ignore[arg-type]
        (FloatFormat("float8_e3m4", 3, 4, **ieee), ("e3m4", "fp8_e3m4")),  # type: ignore[arg-type]
        (
            FloatFormat("float8_e8m0fnu", 8, 0, signed=False, subnormals=False, zero=False, **finite),  # type: ignore[arg-type]
            ("e8m0", "e8m0fnu", "ue8m0", "fp8_e8m0"),
        ),
        (
            FloatFormat("float8_e5m3fnu", 5, 3, signed=False, **finite),  # type: ignore[arg-type]
            ("e5m3fnu", "ue5m3", "fp8_e5m3fnu"),
        ),
        (FloatFormat("float6_e2m3fn", 2, 3, **no_specials), ("e2m3", "e2m3fn", "fp6_e2m3")),  # type: ignore[arg-type]
        (FloatFormat("float6_e3m2fn", 3, 2, **no_specials), ("e3m2", "e3m2fn", "fp6_e3m2", "fp6")),  # type: ignore[arg-type]
        (FloatFormat("float4_e2m1fn", 2, 1, **no_specials), ("e2m1", "e2m1fn", "fp4", "fp4_e2m1")),  # type: ignore[arg-type]
    ]
    for fmt, names in table:
        register_format(fmt, *names)
    for bits in (8, 4, 2, 1):
        register_format(IntFormat(f"int{bits}", bits, signed=True))
        register_format(IntFormat(f"uint{bits}", bits, signed=False))


_register_builtins()

_BUILTINS = tuple(_REGISTRY.values())


# numpy is imported the first time a dtype is asked for, and ml_dtypes the first time one of its types is: ml_dtypes
# 0.7 takes over a second to import, numpy a tenth of one, and `floatfmt explain` needs neither.
@functools.cache
def _numpy_float_dtypes() -> dict[tuple[Any, ...], np.dtype[Any]]:
    import numpy as np

    return {
        fmt.layout: np.dtype(getattr(np, fmt.name))
        for fmt in _BUILTINS
        if fmt.name in ("float64", "float32", "float16")
    }


@functools.cache
def _ml_float_dtypes() -> dict[tuple[Any, ...], np.dtype[Any]]:
    import ml_dtypes
    import numpy as np

    return {
        fmt.layout: np.dtype(getattr(ml_dtypes, fmt.name))
        for fmt in _BUILTINS
        if isinstance(fmt, FloatFormat) and hasattr(ml_dtypes, fmt.name)
    }


@functools.cache
def _ml_int_dtypes() -> dict[tuple[int, bool], np.dtype[Any]]:
    """ml_dtypes 0.6 added int1/uint1 and 0.7 float8_e5m3fnu: a format whose dtype the installed release lacks has
    none."""
    import ml_dtypes
    import numpy as np

    return {
        (bits, signed): np.dtype(getattr(ml_dtypes, name))
        for bits in (4, 2, 1)
        for signed, name in ((True, f"int{bits}"), (False, f"uint{bits}"))
        if hasattr(ml_dtypes, name)
    }
