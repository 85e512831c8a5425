"""The codec's innermost loops, in numpy; their numba twins are in ``floatfmt._kernels_numba``.

Each loop has one signature and one meaning, documented here; :func:`floatfmt._backend.twin` sends large calls
to the numba version of the same name when numba's loops are in use. numpy needs several passes over a chunk
for what is one loop in a compiled language (a table key is a shift, a mask and an OR before the lookup; a hash
is seven operations), which is what the compiled versions save.
"""

from __future__ import annotations

import numpy as np

from floatfmt._backend import twin
from floatfmt._parallel import CHUNK_ELEMENTS, scratch

__all__ = [
    "bfloat16_decode",
    "bfloat16_encode",
    "float32_rounded_to_odd",
    "gather",
    "half_decode",
    "half_encode",
    "narrower_encode",
    "nearest_encode",
    "random_bits",
    "stochastic_table_encode",
    "table_encode",
]

_NUMBA = "floatfmt._kernels_numba"


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def table_encode(bits: np.ndarray, dropped: int, table: np.ndarray, out: np.ndarray, flags: np.ndarray | None) -> int:
    """``out = table[key]`` with ``key = (bits >> dropped) | (low dropped bits != 0)``, for uint32 ``bits``.

    The key's last bit is thus a sticky bit: the first dropped bit or any below it. Returns how many keys
    ``flags`` (a boolean per key) marks, 0 without flags. Any size: numpy's passes run over cache-sized pieces
    (so that a caller can hand each thread one piece, as to the compiled loop, which makes no temporaries).
    """
    flagged = 0
    for start in range(0, bits.size, CHUNK_ELEMENTS):
        stop = min(start + CHUNK_ELEMENTS, bits.size)
        key = _key(bits[start:stop], dropped)
        table.take(key, out=out[start:stop])
        flagged += int(np.count_nonzero(flags.take(key))) if flags is not None else 0
    return flagged


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def nearest_encode(
    bits: np.ndarray,
    dropped: int,
    table: np.ndarray,
    mantissa_bits: int,
    min_normal: int,
    magic: np.float32,
    offset: int,
    max_code: int,
    above_code: int,
    nan_codes: tuple[int, int],
    sign_shift: int,
    out: np.ndarray,
) -> int:
    """Round-to-nearest-even of uint32 float32 ``bits`` into a small signed float format, as ``table_encode`` with
    the format's nearest-even table (and no flags), which is what this numpy version runs; returns 0.

    The numba twin computes the same codes with integer and float32 arithmetic the compiler vectorizes, from the
    format's parameters: a magnitude of at least ``min_normal`` (float32 bits) by rounding its bits at
    ``23 - mantissa_bits`` to nearest-even and rebiasing (``- offset``), a smaller one by adding ``magic``, a float32
    whose gap is the format's smallest subnormal, and taking the bits gained; any code above ``max_code`` (a
    finite overflow or infinity) becomes ``above_code``; the sign goes to bit ``sign_shift``; NaN becomes
    ``nan_codes[0]``, or ``nan_codes[1]`` with the sign bit set (each the whole code: formats without NaN put
    ml_dtypes' code there, which may drop the sign). The
    codec uses it only where the parameters were derived from the table, and the tests compare the two twins on
    every key of every such format.
    """
    return table_encode(bits, dropped, table, out, None)


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def stochastic_table_encode(
    bits: np.ndarray,
    random: np.ndarray,
    noise_shift: int,
    dropped: int,
    table: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray | None,
    regular_low: int,
    regular_high: int,
) -> tuple[int, np.ndarray]:
    """``table_encode`` of ``bits + (~random >> noise_shift)`` (wrapping at 2**32).

    Returns the number of flagged keys among the regular elements (those whose magnitude bits lie in
    ``[regular_low, regular_high)``) and the positions of the irregular ones, which the caller encodes another way.
    """
    perturbed = np.invert(random, out=scratch(3, bits.size, np.uint32))
    perturbed >>= np.uint32(noise_shift)
    perturbed += bits
    key = _key(perturbed, dropped)
    np.take(table, key, out=out)
    magnitude = np.bitwise_and(bits, np.uint32(0x7FFFFFFF), out=perturbed)
    irregular = (magnitude < np.uint32(regular_low)) | (magnitude >= np.uint32(regular_high))
    flagged = int(np.count_nonzero(flags.take(key) & ~irregular)) if flags is not None else 0
    return flagged, np.flatnonzero(irregular)


@twin(_NUMBA, size=lambda values, out: values.size)
def float32_rounded_to_odd(values: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the float64 ``values`` rounded to odd into float32: the nearest-even cast, stepped back toward
    zero where it went away, then the last bit set where the result is inexact. NaN stays NaN (its last bit set,
    as for any inexact result), signs and infinities are kept; a value beyond float32's range becomes its largest
    finite value, odd, as truncation says."""
    out[...] = values
    wide = out.astype(np.float64)
    bits = out.view(np.uint32)
    np.subtract(bits, np.abs(wide) > np.abs(values), out=bits, casting="unsafe")
    np.bitwise_or(bits, wide != values, out=bits, casting="unsafe")


@twin(_NUMBA, size=lambda key, first, out: out.size)
def random_bits(key: int, first: int, out: np.ndarray) -> None:
    """``out[i] = fmix32((first + i) mod 2**32 ^ key)``, MurmurHash3's 32-bit finalizer, as uint32.

    The run ``first .. first + out.size`` never crosses a multiple of 2**32 (the caller's contract).
    """
    h = out
    h[...] = np.arange(first, first + out.size, dtype=np.uint32)
    h ^= np.uint32(key)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)


@twin(_NUMBA, size=lambda table, codes, *rest: codes.size)
def gather(table: np.ndarray, codes: np.ndarray, out: np.ndarray, pairs: np.ndarray | None) -> None:
    """``out = table[codes]`` for unsigned codes below ``table.size``.

    ``pairs`` is a hint for numpy's loops (byte codes only: entry ``i`` holds the values of the bytes of the
    little-endian uint16 ``i``), which then look up two codes at once; the compiled loop, one pass already,
    ignores it.
    """
    if pairs is None or codes.size < 1024:  # pairs pay off over a few thousand codes, not in a small call
        np.take(table, codes, out=out)
        return
    codes = np.ascontiguousarray(codes)  # a strided chunk is copied: the pairs are adjacent bytes
    even = codes.size - codes.size % 2
    pair_out = out[:even].view(pairs.dtype) if pairs.ndim == 1 else out[:even].reshape(-1, 2)
    np.take(pairs, codes[:even].view(np.uint16), axis=0, out=pair_out)
    if even < codes.size:
        out[even:] = table[codes[even:]]


_UINT32 = tuple(np.array(n, dtype=np.uint32) for n in range(33))
"""0-d uint32 arrays of 0 .. 32, for shifts: a ufunc takes them as it takes an array, several times faster than a
Python int or a numpy scalar, whose type it must first settle (a third of a small call's time)."""

_LOW_BITS = tuple(np.array((1 << n) - 1, dtype=np.uint32) for n in range(33))
"""``_LOW_BITS[n]``: the mask of the low ``n`` bits, as a 0-d uint32 array."""


def _key(bits: np.ndarray, dropped: int) -> np.ndarray:
    """The table key in three passes; the first dropped bit lands on the sticky position, the rest is OR-ed in."""
    key = np.right_shift(bits, _UINT32[dropped], out=scratch(1, bits.size, np.uint32))
    low = np.bitwise_and(bits, _LOW_BITS[dropped], out=scratch(2, bits.size, np.uint32))
    np.minimum(low, _UINT32[1], out=low)
    key |= low
    return key


STEPS_AT_MOST = 256
"""Values up to which :func:`steps_encode` runs instead of :func:`table_encode`: one binary search each costs
more than the key's four passes over many values, less than their four calls over few."""


Steps = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def key_steps(table: np.ndarray, dropped: int, flags: np.ndarray | None) -> Steps:
    """``table_encode`` as a step function of the float32 bits, for :func:`steps_encode`: ``(starts, codes,
    flagged)``, where bits from ``starts[i - 1]`` (0 for ``i = 0``) up to ``starts[i]`` encode as ``codes[i]``,
    flagged as ``flagged[i]`` (``None`` without flags).

    The key is a non-decreasing function of the bits (an even key ``k`` begins at ``k << dropped``, an odd one
    one past ``(k - 1) << dropped``, the sticky bit's first value), so the codes change only where a key begins:
    the steps are the keys at which the code or the flag changes, and the lookup is exact for all 2**32 inputs.
    """
    keys = np.arange(table.size, dtype=np.uint64)
    first_bits = np.where(keys % 2 == 0, keys << np.uint64(dropped), ((keys - 1) << np.uint64(dropped)) + 1)
    if dropped == 0:
        first_bits = keys
    marks = np.zeros(table.size, dtype=np.bool_) if flags is None else flags
    changes = np.flatnonzero((table[1:] != table[:-1]) | (marks[1:] != marks[:-1])) + 1
    starts = first_bits[changes].astype(np.uint32)
    heads = np.concatenate([[0], changes])
    return starts, table[heads], None if flags is None else marks[heads]


def steps_encode(bits: np.ndarray, steps: Steps, out: np.ndarray) -> int:
    """``table_encode`` of a few uint32 ``bits`` by binary search in :func:`key_steps`' steps: the same codes, and
    the same count of flagged keys (0 when the steps carry no flags)."""
    starts, codes, flagged = steps
    step = starts.searchsorted(bits, side="right")
    codes.take(step, out=out)
    return int(np.count_nonzero(flagged.take(step))) if flagged is not None else 0


ROUNDING_CODES = {"nearest_even": 0, "nearest_away": 1, "toward_zero": 2, "up": 3, "down": 4, "odd": 5, "stochastic": 6}
"""The rounding modes as the loops take them (stochastic needs each element's random bits)."""

OVERFLOW_CODES = {"ieee": 0, "saturate": 1, "error": 2}


def round_away(
    rounding: int,
    above_half: np.ndarray,
    at_half: np.ndarray,
    inexact: np.ndarray,
    lower_is_even: np.ndarray,
    negative: np.ndarray,
) -> np.ndarray:
    """Whether each magnitude rounds away from zero under ``rounding`` (a :data:`ROUNDING_CODES` value), the
    vector twin of ``floatfmt._reference.round_away``."""
    if rounding == 0:
        return above_half | (at_half & ~lower_is_even)
    if rounding == 1:
        return above_half | at_half
    if rounding == 2:
        return np.zeros_like(inexact)
    if rounding == 3:
        return inexact & ~negative
    if rounding == 4:
        return inexact & negative
    if rounding == 5:
        return inexact & lower_is_even
    raise AssertionError("stochastic rounding compares each element's random bits: its callers do")


def overflows_to_infinity(rounding: int, negative: np.ndarray) -> np.ndarray | bool:
    """Whether a value beyond the largest finite one rounds to infinity (else to the largest) under ``rounding``:
    always for the nearest and stochastic modes, by sign for up and down, never toward zero or to odd."""
    if rounding == 3:
        return ~negative
    if rounding == 4:
        return negative
    return rounding in (0, 1, 6)


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def narrower_encode(
    bits: np.ndarray,
    mantissa_bits: int,
    exponent_bits: int,
    bias: int,
    rounding: int,
    overflow: int,
    random: np.ndarray,
    out: np.ndarray,
) -> int:
    """float32 ``bits`` (uint32) rounded into an IEEE-style format with fewer exponent bits (float16): its codes
    into ``out``; returns how many finite values overflowed. ``rounding`` and ``overflow`` are
    :data:`ROUNDING_CODES` and :data:`OVERFLOW_CODES` values; ``random`` holds each element's 32 random bits for
    stochastic rounding (any array otherwise), which rounds away when the dropped fraction exceeds
    ``random / 2**32``.

    A float32 in the format's normal range keeps its exponent less the difference of the biases and drops
    ``23 - m`` mantissa bits; below it, its significand (the implicit bit included) drops one more bit for each
    binade it lies under the format's smallest normal one (31 at most: every bit is then a sticky bit). A carry
    out of a subnormal's mantissa lands on the smallest normal code, out of the largest finite on infinity's.
    """
    m = mantissa_bits
    infinity = ((1 << exponent_bits) - 1) << m
    max_code = infinity - 1
    magnitude = bits & np.uint32(0x7FFFFFFF)
    negative = bits >= np.uint32(0x80000000)
    field = (magnitude >> np.uint32(23)).astype(np.int32)
    significand = (magnitude & np.uint32(0x7FFFFF)) | np.where(field > 0, np.uint32(0x800000), np.uint32(0))
    below = np.maximum(1 - bias - (np.maximum(field, 1) - 127), 0)  # binades under the smallest normal one
    dropped = 23 - m + below.astype(np.int64)  # the bits below the format's last one
    shift = np.minimum(dropped, 31).astype(np.uint32)
    normal = below == 0
    with np.errstate(over="ignore"):  # infinity and NaN wrap here; they are set apart below
        truncated = np.where(
            normal, (magnitude >> np.uint32(23 - m)) - np.uint32((127 - bias) << m), significand >> shift
        )
    low = np.where(normal, magnitude, significand) & ((np.uint32(1) << shift) - np.uint32(1))
    half = np.uint32(1) << (shift - np.uint32(1))
    lower_is_even = (truncated & np.uint32(1)) == 0
    if rounding == 6:
        # low / 2**s > random / 2**32, s the dropped bits before the clamp at 31: low > random >> (32 - s) up to
        # s = 32, beyond it significand > random << (s - 32), which from s = 56 on only random = 0 can lose to
        wide = random.astype(np.int64)
        narrow = np.where(dropped <= 32, wide >> np.clip(32 - dropped, 0, 32), 0)
        far = np.where(dropped >= 56, np.where(wide == 0, 0, np.int64(1) << 62), wide << np.clip(dropped - 32, 0, 23))
        away = np.where(dropped <= 32, low.astype(np.int64) > narrow, significand.astype(np.int64) > far)
    else:
        away = round_away(rounding, low > half, low == half, low != 0, lower_is_even, negative)
    code = truncated + away
    infinite_input = magnitude == np.uint32(0x7F800000)
    overflowed = (code > np.uint32(max_code)) & (magnitude < np.uint32(0x7F800000))
    if overflow == 0:
        to_max = np.logical_and(overflowed, np.logical_not(overflows_to_infinity(rounding, negative)))
    else:
        to_max = overflowed | infinite_input if overflow == 1 else overflowed
    code[overflowed | infinite_input] = infinity
    code[to_max] = max_code
    code[magnitude > np.uint32(0x7F800000)] = infinity | (1 << (m - 1))  # the quiet NaN
    code |= negative.astype(np.uint32) << np.uint32(exponent_bits + m)
    out[...] = code
    return int(np.count_nonzero(overflowed))


@twin(_NUMBA, size=lambda codes, out: codes.size)
def half_decode(codes: np.ndarray, out: np.ndarray) -> None:
    """IEEE binary16 ``codes`` (uint16) to their float32 values in ``out``, NaN payloads kept as numpy keeps
    them (the significand shifted into place, never made quiet)."""
    out[...] = codes.view(np.float16)


@twin(_NUMBA, size=lambda values, out: values.size)
def half_encode(values: np.ndarray, out: np.ndarray) -> int:
    """float32 ``values`` rounded to IEEE binary16 (nearest-even, overflow to infinity) as codes in ``out``
    (uint16), NaN as the canonical quiet NaN with its sign; returns 0 (nothing overflows under this rule)."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and overflow have their codes; nothing to warn of
        out.view(np.float16)[...] = values
    nan = np.isnan(values)
    if nan.any():  # a small call without NaN skips the indexing, which costs it more than the cast
        out[nan] = np.where(np.signbit(values[nan]), np.uint16(0xFE00), np.uint16(0x7E00))
    return 0


@twin(_NUMBA, size=lambda values, out: values.size)
def bfloat16_encode(values: np.ndarray, out: np.ndarray) -> int:
    """float32 ``values`` rounded to bfloat16 (nearest-even, overflow to infinity) as codes in ``out`` (uint16),
    NaN as ml_dtypes makes it (the quiet NaN, sign kept); returns 0."""
    import ml_dtypes  # here, not at the top: importing it costs more than the package (see formats.py)

    with np.errstate(invalid="ignore", over="ignore"):  # NaN and overflow have their codes; nothing to warn of
        out.view(ml_dtypes.bfloat16)[...] = values
    return 0


@twin(_NUMBA, size=lambda codes, out: codes.size)
def bfloat16_decode(codes: np.ndarray, out: np.ndarray) -> None:
    """bfloat16 ``codes`` (uint16) to their float32 values in ``out``: the code is the top half of the float32."""
    np.left_shift(codes, 16, out=out.view(np.uint32), dtype=np.uint32)
