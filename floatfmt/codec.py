"""Vectorized encode / decode / round: the fast core.

Every path computes exactly what ``floatfmt._reference`` computes, element by
element; the tests check this on every code of every format of <= 16 bits and
on every rounding boundary. The paths differ only in how many times they
touch each byte:

* float32-exact input (float32, float16, bfloat16) into a format of <= 8 bits,
  deterministic rounding: one lookup in a 2**17-entry table indexed by the top
  16 bits of the float32 and a sticky bit for the low 16. The guard bit of
  such a format always lies in the top 16 bits, so the table is exact; it is
  built once per (format, rounding, overflow, nan) by the generic path.
* float32 into a format with float32's exponent (bfloat16, tf32): integer
  operations on the bits (ml_dtypes' own cast for bfloat16 round-to-nearest,
  which is the same bits and faster than anything numpy can express).
* float32 into float16, round-to-nearest: numpy's cast, with NaN made canonical.
* everything else (float64 input, stochastic rounding, integer formats,
  custom formats): the generic path, float64 arithmetic that is exact because
  scaling by a power of two and taking the floor never round.

Large arrays are processed in chunks that fit in L2 cache, spread over threads
(numpy releases the GIL inside its loops); temporaries never grow with the input.
"""

from __future__ import annotations

import builtins
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ml_dtypes
import numpy as np

from floatfmt._options import (
    EncodeError,
    NanPolicy,
    Overflow,
    Rounding,
    check_options,
    random_bits_array,
)
from floatfmt.formats import FloatFormat, Format, IntFormat, get_format

__all__ = ["encode", "decode", "round", "code_dtype", "EncodeError"]

CHUNK = 1 << 15
"""Elements per chunk: a float32 chunk and its temporaries stay well inside L2."""

_PARALLEL_MIN = 1 << 18
"""Below this many elements threads cost more than they save."""

_FLOAT32 = get_format("float32")
_FLOAT16 = get_format("float16")
_BFLOAT16 = get_format("bfloat16")
_FLOAT32_EXACT_INPUTS = tuple(
    np.dtype(t)
    for t in (
        np.float16,
        ml_dtypes.bfloat16,
        ml_dtypes.float8_e4m3fn,
        ml_dtypes.float8_e4m3,
        ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e4m3b11fnuz,
        ml_dtypes.float8_e5m2,
        ml_dtypes.float8_e5m2fnuz,
        ml_dtypes.float8_e3m4,
        ml_dtypes.float8_e8m0fnu,
        ml_dtypes.float6_e2m3fn,
        ml_dtypes.float6_e3m2fn,
        ml_dtypes.float4_e2m1fn,
    )
)
_DIRECTED_TO_INFINITY = ("nearest_even", "nearest_away", "stochastic")


def code_dtype(fmt: Format | str) -> np.dtype[Any]:
    """The smallest unsigned integer dtype that holds a code of ``fmt``.

    Example:
        >>> import floatfmt
        >>> floatfmt.code_dtype("e4m3"), floatfmt.code_dtype("tf32")
        (dtype('uint8'), dtype('uint32'))
    """
    bits = get_format(fmt).bits
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise AssertionError("formats are at most 64 bits wide")


# --- public functions -------------------------------------------------------------------


def encode(
    x: Any,
    fmt: Format | str,
    *,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "ieee",
    nan: NanPolicy = "error",
    seed: int | None = None,
) -> np.ndarray:
    """Encode real values as codes of ``fmt``.

    Args:
        x: array-like of floats (float16, bfloat16, float32, float64, and the
            ml_dtypes formats) or integers; any shape, or a scalar.
        fmt: a format or its name (see ``floatfmt.formats()``).
        rounding: ``nearest_even`` (default), ``nearest_away``, ``toward_zero``,
            ``up`` (toward +inf), ``down`` (toward -inf), ``odd`` (to the
            neighbour with an odd last bit, unless exact), or ``stochastic``
            (away from zero with probability equal to the fraction of the gap,
            reproducible from ``seed`` whatever the chunking).
        overflow: ``ieee`` (default; what ml_dtypes does: infinity where the
            format has one, else NaN where it has one, else saturate; directed
            roundings saturate toward zero as IEEE 754 says), ``saturate``
            (clamp to the largest finite value, infinities too), ``error``
            (raise ``EncodeError`` saying how many values overflowed), or, for
            integer formats only, ``wrap`` (two's-complement wrap-around, as
            ml_dtypes' integer casts do).
        nan: what a NaN becomes in a format without NaN: ``error`` (default)
            raises ``EncodeError``; ``ml_dtypes`` gives what ml_dtypes gives
            (a zero of the opposite sign for floats, 0 for integers).
        seed: the seed of stochastic rounding (a fresh one if ``None``).

    Returns:
        An array of ``x``'s shape and dtype ``code_dtype(fmt)``.

    Raises:
        EncodeError: (a ``ValueError``) for values the policies reject.

    Example:
        >>> import floatfmt
        >>> int(floatfmt.encode(22.0, "e4m3"))
        91
        >>> floatfmt.encode([1.0, 1.0625, 1.1875], "e4m3").tolist()   # ties to even
        [56, 56, 58]
        >>> floatfmt.encode([1.0625], "e4m3", rounding="nearest_away").tolist()
        [57]
    """
    fmt = get_format(fmt)
    check_options(isinstance(fmt, IntFormat), rounding, overflow, nan, seed)
    values = _as_real_array(x)
    if rounding == "stochastic" and seed is None:
        seed = int(np.random.SeedSequence().generate_state(2, np.uint64)[0])
    out = np.empty(values.shape, dtype=code_dtype(fmt))
    kernel = _encode_kernel(fmt, values.dtype, rounding, overflow, nan)
    source = values.reshape(-1)
    target = out.reshape(-1)

    def run(start: int, stop: int) -> tuple[int, int]:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and overflow are policies here, not accidents
            return encode_chunk(start, stop)

    def encode_chunk(start: int, stop: int) -> tuple[int, int]:
        chunk = source[start:stop]
        if chunk.dtype != np.float64 and chunk.dtype != np.float32:
            chunk = chunk.astype(np.float32)
        random = random_bits_array(seed, start, stop - start) if rounding == "stochastic" else None  # type: ignore[arg-type]
        rejected = _count_rejected(chunk, fmt, nan)
        overflowed = kernel(chunk, target[start:stop], random)
        return rejected, overflowed

    rejected, overflowed = map(sum, zip(*_map_chunks(run, source.size), strict=True)) if source.size else (0, 0)
    if rejected:
        raise EncodeError(_rejected_message(fmt, rejected, values.size))
    if overflowed and overflow == "error":
        raise EncodeError(
            f"{overflowed} of {values.size} values overflow {fmt.name} (largest finite value {fmt.max}); "
            "use overflow='saturate' to clamp them or overflow='ieee' for infinity/NaN"
        )
    return out if values.ndim else out[()]


def decode(codes: Any, fmt: Format | str, *, dtype: Any = np.float32) -> np.ndarray:
    """Decode codes of ``fmt`` to real values.

    Args:
        codes: array-like of non-negative integers below ``2**fmt.bits``.
        fmt: a format or its name.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``. Values that
            do not fit the dtype are rounded to nearest-even.

    Example:
        >>> import floatfmt
        >>> floatfmt.decode([0x5B, 0x7F, 0x80], "e4m3").tolist()
        [22.0, nan, -0.0]
    """
    fmt = get_format(fmt)
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"decode dtype must be float32 or float64, got {out_dtype}")
    code_array = _as_code_array(codes, fmt)
    out = np.empty(code_array.shape, dtype=out_dtype)
    kernel = _decode_kernel(fmt, out_dtype)
    source, target = code_array.reshape(-1), out.reshape(-1)

    def run(start: int, stop: int) -> None:
        with np.errstate(invalid="ignore", over="ignore"):  # signalling NaNs and float64-only values
            kernel(source[start:stop], target[start:stop])

    _map_chunks(run, source.size)
    return out if code_array.ndim else out[()]


def round(
    x: Any,
    fmt: Format | str,
    *,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "ieee",
    nan: NanPolicy = "error",
    seed: int | None = None,
) -> np.ndarray:
    """Round ``x`` to the values of ``fmt`` (quantize-dequantize), keeping ``x``'s float dtype.

    Takes the options of ``encode``. Integer and Python-float input comes back as float64.

    Example:
        >>> import floatfmt
        >>> floatfmt.round([0.3, 100.0, 1000.0], "e4m3", overflow="saturate").tolist()
        [0.3125, 96.0, 448.0]
    """
    values = _as_real_array(x)
    codes = encode(values, fmt, rounding=rounding, overflow=overflow, nan=nan, seed=seed)
    if values.dtype == np.float64:
        return decode(codes, fmt, dtype=np.float64)
    return decode(codes, fmt, dtype=np.float32).astype(values.dtype, copy=False)


# --- input checking ------------------------------------------------------------------------


def _as_real_array(x: Any) -> np.ndarray:
    array = np.asarray(x)
    dtype = array.dtype
    if dtype in (np.dtype(np.float32), np.dtype(np.float64)) or dtype in _FLOAT32_EXACT_INPUTS:
        return array
    if dtype.kind in "iu":
        as_float = array.astype(np.float64)
        if dtype.itemsize >= 8 and array.size and not np.array_equal(as_float.astype(dtype), array):
            raise ValueError("integers above 2**53 lose precision as float64; pass them as floats if that is intended")
        return as_float
    if dtype.kind == "b":
        raise TypeError("boolean input cannot be encoded; convert it to a float array first")
    if dtype.kind == "f":
        raise TypeError(f"{dtype} input is not supported; convert it to float64 first (which may round)")
    raise TypeError(f"expected real numbers, got an array of dtype {dtype}")


def _as_code_array(codes: Any, fmt: Format) -> np.ndarray:
    array = np.asarray(codes)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "O" or array.size == 0:
            array = array.astype(np.int64) if array.size else array.astype(code_dtype(fmt))
        else:
            raise TypeError(f"codes must be integers, got dtype {array.dtype}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= 2**fmt.bits:
            bad = np.count_nonzero((array < 0) | (array >= 2**fmt.bits))
            raise ValueError(
                f"{bad} codes are outside [0, {2**fmt.bits - 1}], the range of {fmt.bits}-bit {fmt.name} codes "
                f"(e.g. {low if low < 0 else high})"
            )
    target = code_dtype(fmt)
    return array if array.dtype == target else array.astype(target)


def _count_rejected(chunk: np.ndarray, fmt: Format, nan: str) -> int:
    """Values the format cannot take at all: NaN without a NaN code, negatives or zero without one."""
    rejected = 0
    if not fmt.has_nan:
        if nan == "error":
            rejected += int(np.count_nonzero(np.isnan(chunk)))
        if isinstance(fmt, FloatFormat) and not fmt.signed:
            rejected += int(np.count_nonzero(chunk < 0))
        if isinstance(fmt, FloatFormat) and not fmt.zero:
            rejected += int(np.count_nonzero(chunk == 0))
    return rejected


def _rejected_message(fmt: Format, count: int, total: int) -> str:
    what = "NaN"
    if isinstance(fmt, FloatFormat) and not fmt.signed:
        what += " or negative"
    if isinstance(fmt, FloatFormat) and not fmt.zero:
        what += " or zero"
    return (
        f"{count} of {total} values are {what}, which {fmt.name} cannot represent; "
        "pass nan='ml_dtypes' to convert NaN the way ml_dtypes does, or clean the input first"
    )


# --- chunks and threads ------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> int:
    return builtins.max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _map_chunks(work: Callable[[int, int], Any], size: int) -> list[Any]:
    """Run ``work(start, stop)`` over CHUNK-sized pieces of ``range(size)``, threads taking contiguous runs."""
    threads = _threads()
    if size < _PARALLEL_MIN or threads == 1:
        return [work(start, builtins.min(start + CHUNK, size)) for start in range(0, size, CHUNK)]
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="floatfmt")
    chunks = (size + CHUNK - 1) // CHUNK
    per_thread = (chunks + threads - 1) // threads

    def run(first_chunk: int) -> list[Any]:
        stop_chunk = builtins.min(first_chunk + per_thread, chunks)
        return [work(i * CHUNK, builtins.min((i + 1) * CHUNK, size)) for i in range(first_chunk, stop_chunk)]

    results: list[Any] = []
    for part in _pool.map(run, range(0, chunks, per_thread)):
        results.extend(part)
    return results


# --- choosing an encode path ----------------------------------------------------------------------

EncodeKernel = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], int]
"""``kernel(values, codes_out, random_bits) -> number of values that overflowed``."""


def _encode_kernel(fmt: Format, source: np.dtype[Any], rounding: str, overflow: str, nan: str) -> EncodeKernel:
    float32_exact = source != np.float64
    if isinstance(fmt, IntFormat):
        if float32_exact and _table_is_exact(fmt) and rounding != "stochastic" and overflow != "wrap":
            return _table_kernel(fmt, rounding, overflow)
        return functools.partial(_encode_int_generic, fmt=fmt, rounding=rounding, overflow=overflow, nan=nan)
    if float32_exact:
        if rounding != "stochastic" and _table_is_exact(fmt):
            return _table_kernel(fmt, rounding, overflow)
        if fmt == _BFLOAT16 and rounding == "nearest_even" and overflow == "ieee":
            return _cast_kernel(ml_dtypes.bfloat16)
        if fmt == _FLOAT16 and rounding == "nearest_even" and overflow == "ieee":
            return _cast_kernel(np.float16)
        if fmt.layout[2:] == _FLOAT32.layout[2:] and fmt.mantissa_bits < 23:
            return functools.partial(_encode_float32_exponent, fmt=fmt, rounding=rounding, overflow=overflow)
        if fmt == _FLOAT32 and overflow != "saturate":
            return _cast_kernel(np.float32)  # exact: no rounding, no overflow
    return functools.partial(_encode_float_generic, fmt=fmt, rounding=rounding, overflow=overflow, nan=nan)


def _table_is_exact(fmt: Format) -> bool:
    """Whether the top 16 bits of a float32 and a sticky bit decide the rounding (see the module docstring)."""
    if isinstance(fmt, IntFormat):
        return fmt.max < 2**7  # the bit worth 1/2 of any value below 128 lies in the top 16
    return fmt.bits <= 8 and fmt.mantissa_bits <= 6 and fmt.smallest_subnormal >= 2.0**-132


# --- the table path -----------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _encode_table(fmt: Format, rounding: str, overflow: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The codes of all 2**17 (top 16 bits, sticky) keys, and which keys overflow (for ``overflow='error'``).

    NaN gets ml_dtypes' code in formats without NaN: under ``nan='error'`` it is
    counted and rejected before any lookup.
    """
    keys = np.arange(2**17, dtype=np.uint32)
    representatives = (((keys >> 1) << 16) | (keys & 1)).view(np.float32)
    codes = np.empty(keys.size, dtype=code_dtype(fmt))
    flags = np.zeros(keys.size, dtype=np.bool_) if overflow == "error" else None
    options = dict(rounding=rounding, overflow=overflow, nan="ml_dtypes", overflow_flags=flags)
    with np.errstate(invalid="ignore", over="ignore"):
        if isinstance(fmt, IntFormat):
            _encode_int_generic(representatives, codes, None, fmt=fmt, **options)  # type: ignore[arg-type]
        else:
            _encode_float_generic(representatives, codes, None, fmt=fmt, **options)  # type: ignore[arg-type]
    for array in (codes, flags):
        if array is not None:
            array.flags.writeable = False
    return codes, flags


def _table_kernel(fmt: Format, rounding: str, overflow: str) -> EncodeKernel:
    table, overflow_flags = _encode_table(fmt, rounding, overflow)

    def kernel(values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
        index = _table_index(values)
        np.take(table, index, out=out)
        return int(np.count_nonzero(overflow_flags.take(index))) if overflow_flags is not None else 0

    return kernel


def _table_index(values: np.ndarray) -> np.ndarray:
    """``(top 16 bits << 1) | (low 16 bits != 0)`` of float32 values, in three cheap passes."""
    bits = values.view(np.uint32)
    index = bits >> np.uint32(15)  # top 16 bits, then bit 15 in the sticky position
    low = bits & np.uint32(0x7FFF)
    np.minimum(low, np.uint32(1), out=low)
    index |= low  # sticky: bit 15 or any lower bit
    return index


# --- casts the platform already does right ------------------------------------------------------------


def _cast_kernel(dtype: Any) -> EncodeKernel:
    """numpy / ml_dtypes round-to-nearest-even casts, with NaN made canonical (quiet, sign kept)."""
    fmt = get_format(dtype)
    assert isinstance(fmt, FloatFormat)
    quiet_nan = np.array([fmt.nan_code(False), fmt.nan_code(True)], dtype=code_dtype(fmt))

    def kernel(values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
        result = out.view(dtype)
        result[...] = values
        if np.isnan(result).any():
            nan_mask = np.isnan(values)
            out[nan_mask] = quiet_nan[np.signbit(values[nan_mask]).astype(np.intp)]
        return 0

    return kernel


# --- formats with float32's exponent: bfloat16, tf32 ---------------------------------------------------


def _encode_float32_exponent(
    values: np.ndarray, out: np.ndarray, random: np.ndarray | None, *, fmt: FloatFormat, rounding: str, overflow: str
) -> int:
    """Round float32 bits to fewer mantissa bits; the exponent field carries over unchanged."""
    dropped = 23 - fmt.mantissa_bits
    bits = values.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    negative = bits >= np.uint32(0x80000000)
    low = magnitude & np.uint32((1 << dropped) - 1)
    truncated = magnitude >> np.uint32(dropped)
    if rounding == "stochastic":
        assert random is not None
        away = low > (random >> np.uint32(32 - dropped))
    else:
        half = np.uint32(1 << (dropped - 1))
        lower_is_even = (truncated & np.uint32(1)) == 0
        away = _round_away(rounding, low > half, low == half, low != 0, lower_is_even, negative)
    code = truncated + away.astype(np.uint32)  # a carry out of the mantissa lands on infinity's code
    infinite_input = magnitude == np.uint32(0x7F800000)
    overflowed = (code > np.uint32(fmt.max_code)) & ~infinite_input & (magnitude < np.uint32(0x7F800000))
    if overflow == "ieee":
        to_max = np.logical_and(overflowed, np.logical_not(_overflows_to_infinity(rounding, negative)))
    else:
        to_max = overflowed | infinite_input if overflow == "saturate" else overflowed
    code[to_max] = fmt.max_code
    code[magnitude > np.uint32(0x7F800000)] = fmt.nan_code(False)  # type: ignore[call-overload]
    code |= negative.astype(np.uint32) << np.uint32(fmt.bits - 1)
    out[...] = code
    return int(np.count_nonzero(overflowed))


def _round_away(
    rounding: str,
    above_half: np.ndarray,
    at_half: np.ndarray,
    inexact: np.ndarray,
    lower_is_even: np.ndarray,
    negative: np.ndarray,
) -> np.ndarray:
    """Whether each magnitude rounds away from zero (the vector twin of ``_reference.round_away``)."""
    if rounding == "nearest_even":
        return above_half | (at_half & ~lower_is_even)
    if rounding == "nearest_away":
        return above_half | at_half
    if rounding == "toward_zero":
        return np.zeros_like(inexact)
    if rounding == "up":
        return inexact & ~negative
    if rounding == "down":
        return inexact & negative
    if rounding == "odd":
        return inexact & lower_is_even
    raise AssertionError(f"{rounding} is handled by its caller")


# --- the generic path: exact float64 arithmetic -----------------------------------------------------


def _encode_float_generic(
    values: np.ndarray,
    out: np.ndarray,
    random: np.ndarray | None,
    *,
    fmt: FloatFormat,
    rounding: str,
    overflow: str,
    nan: str,
    overflow_flags: np.ndarray | None = None,
) -> int:
    """Encode any float values into any FloatFormat, mirroring ``_reference._encode_float`` step by step."""
    x = values.astype(np.float64, copy=False)
    m = fmt.mantissa_bits
    negative = np.signbit(x)
    finite = np.isfinite(x)
    magnitude = np.where(finite, np.abs(x), 0.0)
    # The grid around each magnitude: quantum 2**(exponent - m) in its binade (or the lowest one).
    _, frexp_exponent = np.frexp(magnitude)
    exponent = np.maximum(frexp_exponent.astype(np.int64) - 1, fmt.lowest_binade_exponent)
    scaled = np.ldexp(magnitude, (m - exponent).astype(np.int32))  # exact: a power-of-two scaling
    steps = np.floor(scaled)
    fraction = scaled - steps  # exact, in [0, 1)
    lower_is_even = np.fmod(steps, 2.0) == 0
    if rounding == "stochastic":
        assert random is not None
        away = fraction > np.ldexp(random.astype(np.float64), -32)
    else:
        away = _round_away(rounding, fraction > 0.5, fraction == 0.5, fraction > 0, lower_is_even, negative)
    magnitude_code = ((exponent + fmt.bias) << m) + steps.astype(np.int64) + away - (1 << m)

    smallest = fmt.smallest_subnormal
    if not fmt.subnormals:  # below the smallest value lie only zero (if any) and the gap to it
        gap = magnitude < smallest
        if fmt.zero:
            if rounding == "stochastic":
                assert random is not None
                gap_away = np.ldexp(magnitude, 32) > random.astype(np.float64) * smallest
            else:
                twice = 2 * magnitude
                even = np.ones_like(gap)  # the lower neighbour, zero, counts as even
                gap_away = _round_away(rounding, twice > smallest, twice == smallest, magnitude > 0, even, negative)
            magnitude_code = np.where(gap, gap_away.astype(np.int64), magnitude_code)
        else:
            magnitude_code = np.where(gap, 0, magnitude_code)
    magnitude_code[magnitude == 0] = 0
    is_nan, infinite = np.isnan(x), np.isinf(x)
    magnitude_code[infinite] = fmt.max_code  # saturated unless a policy below says otherwise
    # Values the format cannot hold at all become NaN (the reference checks them first).
    unrepresentable = is_nan.copy()
    if not fmt.signed:
        unrepresentable |= negative & (x != 0)
    if not fmt.zero:
        unrepresentable |= x == 0
    overflowed = ~unrepresentable & (finite & (magnitude_code > fmt.max_code) | infinite & (not fmt.infinity))
    if overflow_flags is not None:
        overflow_flags[...] = overflowed
    # uint64 so that float64's sign bit fits
    sign = np.where(negative & fmt.signed, np.uint64(fmt.sign_mask), np.uint64(0))
    if fmt.zero and not fmt.has_negative_zero:
        sign[magnitude_code == 0] = 0
    code = sign | np.minimum(magnitude_code, fmt.max_code).astype(np.uint64)
    nan_codes = _nan_codes(fmt, negative, nan)
    if fmt.infinity and overflow != "saturate":
        code[infinite] = (sign | fmt.infinity_code)[infinite]  # type: ignore[operator]
    if overflow == "ieee":
        to_special = np.logical_and(overflowed, _overflows_to_infinity(rounding, negative)) | (overflowed & infinite)
        _put_special(code, to_special, fmt, sign, nan_codes)
    code[unrepresentable] = nan_codes[unrepresentable]
    out[...] = code
    return int(np.count_nonzero(overflowed))


def _overflows_to_infinity(rounding: str, negative: np.ndarray) -> np.ndarray | bool:
    if rounding in _DIRECTED_TO_INFINITY:
        return True
    if rounding == "up":
        return ~negative
    if rounding == "down":
        return negative
    return False


def _nan_codes(fmt: FloatFormat, negative: np.ndarray, nan: str) -> np.ndarray:
    """The code each element gets if it is NaN (or unrepresentable)."""
    if fmt.has_nan:
        positive_nan, negative_nan = fmt.nan_code(False) or 0, fmt.nan_code(True) or 0
    else:  # only reached with nan="ml_dtypes": a zero of the opposite sign
        positive_nan, negative_nan = fmt.sign_mask, 0
    return np.asarray(np.where(negative, np.uint64(negative_nan), np.uint64(positive_nan)))


def _put_special(
    code: np.ndarray, where: np.ndarray, fmt: FloatFormat, sign: np.ndarray, nan_codes: np.ndarray
) -> None:
    """Overflow to infinity, else NaN, else the largest value: the ``ieee`` policy."""
    if fmt.infinity:
        code[where] = (sign | fmt.infinity_code)[where]  # type: ignore[operator]
    elif fmt.has_nan:
        code[where] = nan_codes[where]
    else:
        code[where] = (sign | fmt.max_code)[where]


def _encode_int_generic(
    values: np.ndarray,
    out: np.ndarray,
    random: np.ndarray | None,
    *,
    fmt: IntFormat,
    rounding: str,
    overflow: str,
    nan: str,
    overflow_flags: np.ndarray | None = None,
) -> int:
    """Round to integers, then saturate, wrap or flag; mirrors ``_reference._encode_int``."""
    x = values.astype(np.float64, copy=False)
    negative = x < 0
    finite = np.isfinite(x)
    magnitude = np.where(finite, np.abs(x), 0.0)
    steps = np.floor(magnitude)
    fraction = magnitude - steps
    lower_is_even = np.fmod(steps, 2.0) == 0
    if rounding == "stochastic":
        assert random is not None
        away = fraction > np.ldexp(random.astype(np.float64), -32)
    else:
        away = _round_away(rounding, fraction > 0.5, fraction == 0.5, fraction > 0, lower_is_even, negative)
    result = np.where(negative, -(steps + away), steps + away)
    infinite = np.isinf(x)
    result[infinite] = np.where(negative[infinite], -np.inf, np.inf)
    overflowed = (result > fmt.max) | (result < fmt.min)
    if overflow_flags is not None:
        overflow_flags[...] = overflowed
    if overflow == "wrap":
        if infinite.any():
            raise EncodeError(f"infinity cannot wrap around in {fmt.name}; use overflow='saturate'")
        result = np.mod(result, 2.0**fmt.bits)
    else:
        result = np.clip(result, fmt.min, fmt.max)
    result[np.isnan(x)] = 0  # NaN errors were counted before; this is nan="ml_dtypes"
    out[...] = np.mod(result, 2.0**fmt.bits).astype(np.int64)
    return int(np.count_nonzero(overflowed))


# --- decoding ---------------------------------------------------------------------------------------

DecodeKernel = Callable[[np.ndarray, np.ndarray], None]


def _decode_kernel(fmt: Format, dtype: np.dtype[Any]) -> DecodeKernel:
    if fmt == _FLOAT32 or fmt == get_format("float64"):
        return lambda codes, out: _assign(out, codes.view(fmt.ml_dtype))  # type: ignore[arg-type]
    if fmt == _FLOAT16:
        return lambda codes, out: _assign(out, codes.view(np.float16))
    if isinstance(fmt, FloatFormat) and fmt.layout[2:] == _FLOAT32.layout[2:]:
        shift = np.uint32(23 - fmt.mantissa_bits)  # bfloat16, tf32: the code is the top of a float32
        return lambda codes, out: _assign(out, (codes.astype(np.uint32) << shift).view(np.float32))
    if fmt.bits <= 16:
        table = _decode_table(fmt, dtype)

        def look_up(codes: np.ndarray, out: np.ndarray) -> None:
            np.take(table, codes, out=out)

        return look_up
    return lambda codes, out: _assign(out, _decode_generic(codes, fmt))  # type: ignore[arg-type]


def _assign(out: np.ndarray, values: np.ndarray) -> None:
    out[...] = values


@functools.lru_cache(maxsize=64)
def _decode_table(fmt: Format, dtype: np.dtype[Any]) -> np.ndarray:
    codes = np.arange(2**fmt.bits, dtype=np.uint64)
    if isinstance(fmt, IntFormat):
        values = codes.astype(np.float64)
        if fmt.signed:
            values[codes >= 2 ** (fmt.bits - 1)] -= 2.0**fmt.bits
    else:
        values = _decode_generic(codes, fmt)
    table = values.astype(dtype)
    table.flags.writeable = False
    return table


def _decode_generic(codes: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Exact float64 values of any codes of a float format (mirrors ``_reference.decode``)."""
    codes = codes.astype(np.uint64)
    m = fmt.mantissa_bits
    magnitude = codes & np.uint64(fmt.magnitude_mask)
    negative = (codes & np.uint64(fmt.sign_mask)) != 0
    exponent_field = (magnitude >> np.uint64(m)).astype(np.int64)
    mantissa_field = (magnitude & np.uint64((1 << m) - 1)).astype(np.float64)
    subnormal = (exponent_field == 0) & fmt.subnormals
    significand = np.where(subnormal, mantissa_field, mantissa_field + 2.0**m)
    exponent = np.where(subnormal, 1, exponent_field) - fmt.bias - m
    with np.errstate(over="ignore"):  # only the infinity and NaN codes overflow, and are replaced below
        values = np.ldexp(significand, exponent.astype(np.int32))
    if fmt.zero:
        values[magnitude == 0] = 0.0
    if fmt.infinity:
        values[magnitude == np.uint64(fmt.max_code + 1)] = np.inf
    is_nan = magnitude > np.uint64(fmt.max_code + int(fmt.infinity))
    if fmt.nan == "negative_zero":
        is_nan = negative & (magnitude == 0)
    values[is_nan] = np.nan
    return np.where(negative, -np.abs(values), np.abs(values))
