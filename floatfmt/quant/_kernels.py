"""The quantizers' innermost loops, in numpy; their numba twins are in ``floatfmt.quant._kernels_numba``.

Each loop has one signature and one meaning, documented here (see ``floatfmt._backend``). Rows are 2-D
C-contiguous float32 ``(n, width)``; results go into the ``out`` arrays given. The functions at the bottom
(``row_max`` ...) are conveniences over the loops for any leading shape.

numpy reduces a short contiguous last axis slowly (about 3 ns per element for rows of 32); halving the row with
elementwise operations on adjacent pairs touches each element about twice and runs at memory speed. NaN
propagates, as through ``np.maximum``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from floatfmt._backend import twin

__all__ = [
    "codebook_encode",
    "error_sums",
    "gguf_blocks",
    "reduce_rows",
    "row_absmax",
    "row_max",
    "row_min",
    "row_strongest",
    "rows_absmax",
    "rows_max",
    "rows_min",
    "rows_strongest",
]

_NUMBA = "floatfmt.quant._kernels_numba"


def _rows_size(rows: np.ndarray, *rest: Any) -> int:
    return int(rows.size)


@twin(_NUMBA, size=_rows_size)
def rows_max(rows: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = rows[i].max()``; of zeros of both signs the first (as gguf-py's ``np.max`` gives)."""
    out[...] = _first_zero(rows, _halve(rows, np.maximum))[:, 0]


@twin(_NUMBA, size=_rows_size)
def rows_min(rows: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = rows[i].min()``; of zeros of both signs the first."""
    out[...] = _first_zero(rows, _halve(rows, np.minimum))[:, 0]


@twin(_NUMBA, size=_rows_size)
def rows_absmax(rows: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = abs(rows[i]).max()`` (a +0 for a row of zeros)."""
    out[...] = _halve(np.abs(rows), np.maximum)[:, 0]


@twin(_NUMBA, size=_rows_size)
def rows_strongest(rows: np.ndarray, out: np.ndarray) -> None:
    """The signed value of largest magnitude in each row, the first one on ties (as ``argmax`` picks).

    In numpy it is the row's maximum or its minimum; only rows holding both +v and -v as their extremes need the
    position of the first, and are looked up one by one.
    """
    high, low = _halve(rows, np.maximum), _halve(rows, np.minimum)
    strongest = np.where(high >= -low, high, low)
    tied = np.flatnonzero((high == -low) & (high != 0))
    if tied.size:
        first = np.abs(rows[tied]).argmax(axis=-1)[:, None]
        strongest[tied] = np.take_along_axis(rows[tied], first, axis=-1)
    out[...] = strongest[:, 0]


def _first_zero(rows: np.ndarray, extreme: np.ndarray) -> np.ndarray:
    """Where a row's extreme is zero, the row's first zero: halving's pairing decides the sign otherwise."""
    zero = np.flatnonzero(extreme[:, 0] == 0)
    if zero.size:
        candidates = rows[zero]
        extreme[zero, 0] = candidates[np.arange(zero.size), (candidates == 0).argmax(axis=-1)]
    return extreme


def _halve(rows: np.ndarray, pick: np.ufunc) -> np.ndarray:
    while rows.shape[-1] > 1 and rows.shape[-1] % 2 == 0:
        rows = pick(rows[..., 0::2], rows[..., 1::2])
    return rows if rows.shape[-1] == 1 else pick.reduce(rows, axis=-1, keepdims=True)


@twin(_NUMBA, size=_rows_size)
def gguf_blocks(
    blocks: np.ndarray,
    bits: int,
    asymmetric: bool,
    codes: np.ndarray,
    scales: np.ndarray,
    minimums: np.ndarray,
    data: np.ndarray,
    column: int,
) -> None:
    """GGUF's legacy block quantizers' arithmetic (gguf-py's ``quants.py``), float32 throughout.

    For finite float32 ``(n, 32)`` ``blocks``, fills ``codes`` (uint8, same shape), the float32 scales ``d``
    (``scales``, ``n``) and, if ``asymmetric``, the minimums (``minimums``, ``n``; untouched otherwise), and the
    element bytes of each block, ``data[:, column:]`` (the fifth bits of 5-bit codes as a little-endian uint32,
    then nibbles, low nibble element ``j``, high nibble ``j + 16``; or the int8 codes):

    * 8 bits: ``d = amax / 127``, codes ``round_half_away(x / d)`` as int8 bytes;
    * 4 and 5 bits, symmetric: ``d = strongest / -half`` (the signed value of largest magnitude, the first on
      ties, +0 for a block of zeros as ggml's loop leaves it; ``half = 2**(bits - 1)``), codes
      ``trunc(x / d + half + 0.5)``;
    * asymmetric: ``d = (max - min) / (2**bits - 1)``, codes ``trunc((x - min) / d + 0.5)``.

    ``x / d`` is ``x * (1 / d)`` with the reciprocal rounded to float32, as in gguf-py; it is 0 where ``d`` is 0
    or its reciprocal overflows (there gguf-py would cast infinity or NaN to integers), so such blocks get the
    zero codes. Codes of 4 and 5 bits are capped at ``2**bits - 1``.
    """
    x = blocks
    low = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if bits == 8:
            d = _reduced(rows_absmax, x) / np.float32(127)
        elif asymmetric:
            low = _reduced(rows_min, x)
            d = (_reduced(rows_max, x) - low) / np.float32(2**bits - 1)
        else:
            strongest = _reduced(rows_strongest, x)
            strongest[strongest == 0] = 0  # ggml's loop keeps its initial +0 for a block of zeros: d = -0
            d = strongest / np.float32(-(2 ** (bits - 1)))
        inverse = np.float32(1) / d
    inverse[(d == 0) | np.isinf(inverse)] = 0
    scales[...] = d[:, 0]
    if low is not None:
        minimums[...] = low[:, 0]
    if bits == 8:
        scaled = x * inverse
        magnitude = np.abs(scaled)
        rounded = np.floor(magnitude)
        rounded += (magnitude - rounded) >= np.float32(0.5)  # half away from zero, like roundf
        codes[...] = np.copysign(rounded, scaled).astype(np.int8).view(np.uint8)
        data[:, column:] = codes
        return
    if low is not None:
        q = np.trunc((x - low) * inverse + np.float32(0.5))
    else:
        q = np.trunc(x * inverse + np.float32(2 ** (bits - 1) + 0.5))
    # q >= 0 always (x / d lies in [-half, half] or (x - min) / d in [0, 2**bits - 1]), so only the top clips
    np.minimum(q, np.float32(2**bits - 1), out=q)
    codes[...] = q
    if bits == 5:
        data[:, column : column + 4] = np.packbits(codes >> np.uint8(4), axis=1, bitorder="little")
        column += 4
    data[:, column:] = (codes[:, :16] & np.uint8(0x0F)) | (codes[:, 16:] << np.uint8(4))


def _reduced(reduce: Any, rows: np.ndarray) -> np.ndarray:
    out = np.empty(rows.shape[0], dtype=rows.dtype)
    reduce.numpy(rows, out)  # inside a numpy loop, the numpy versions
    return out[:, None]


@twin(_NUMBA, size=lambda values, *rest: values.size)
def codebook_encode(values: np.ndarray, base: np.ndarray, threshold: np.ndarray, out: np.ndarray) -> None:
    """Codes of flat float32 ``values`` from per-key tables: ``base[k] + (x > threshold[k])``, ``k`` the top 16
    bits of ``x``. ``base`` (uint8) and ``threshold`` (float32) have 2**16 entries; a NaN compares false."""
    key = values.view(np.uint32) >> np.uint32(16)
    out[...] = base.take(key) + (values > threshold.take(key))


# --- conveniences over any leading shape ---------------------------------------------------------------------


def _pair_size(reference: np.ndarray, *rest: Any) -> int:
    return int(reference.size)


@twin(_NUMBA, size=_pair_size)
def error_sums(reference: np.ndarray, approx: np.ndarray, top: float) -> tuple[np.ndarray, int, float, int, int, int]:
    """The error sums of one piece (1-D float arrays of equal size) over the pairs where both are finite:
    ``([err², ref², app², ref·app], count, max |err|, pairs left out, saturated, flushed)``, in float64.

    The four sums run over blocks of :data:`SUM_BLOCK` products, each block summed by numpy's pairwise
    summation (``np.add.reduce``, one call per block in every numpy release) and the blocks added in order; the
    numba twin reproduces exactly that. ``saturated`` counts values the approximation put at ``±top`` (or
    beyond) whose reference lies beyond ``top``, ``flushed`` the non-zero references approximated by 0.
    """
    r = reference.astype(np.float64)
    a = approx.astype(np.float64)
    finite = np.isfinite(r)
    finite &= np.isfinite(a)
    left_out = 0
    if not finite.all():
        left_out = int(r.size - np.count_nonzero(finite))
        r, a = r[finite], a[finite]
    error = a - r
    products = np.array([_blocked_sum(x * y) for x, y in ((error, error), (r, r), (a, a), (r, a))])
    max_abs = float(np.max(np.abs(error))) if error.size else 0.0
    at_top = np.flatnonzero((a >= top) | (a <= -top)) if top else np.zeros(0, np.intp)
    saturated = int(np.count_nonzero(np.abs(r[at_top]) > top))
    flushed = int(np.count_nonzero(r[np.flatnonzero(a == 0)]))
    return products, int(r.size), max_abs, left_out, saturated, flushed


SUM_BLOCK = 8192
"""Products per pairwise sum in :func:`error_sums` (numpy's ufunc buffer size: a block is always one call)."""


def _blocked_sum(terms: np.ndarray) -> float:
    total = 0.0
    for start in range(0, terms.size, SUM_BLOCK):
        total += float(np.add.reduce(terms[start : start + SUM_BLOCK]))
    return total


def reduce_rows(loop: Any, rows: np.ndarray) -> np.ndarray:
    """``loop`` (one of the ``rows_*`` loops) over the last axis of ``rows``, keeping a last axis of 1."""
    shape = (*rows.shape[:-1], 1)
    flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1]) if rows.shape[-1] else None
    if flat is None:
        raise ValueError("cannot reduce rows of no elements")
    out = np.empty(flat.shape[0], dtype=rows.dtype)
    loop(flat, out)
    return out.reshape(shape)


def row_max(rows: np.ndarray) -> np.ndarray:
    """``rows.max(axis=-1, keepdims=True)``; of zeros of both signs, the first."""
    return reduce_rows(rows_max, rows)


def row_min(rows: np.ndarray) -> np.ndarray:
    """``rows.min(axis=-1, keepdims=True)``; of zeros of both signs, the first."""
    return reduce_rows(rows_min, rows)


def row_absmax(rows: np.ndarray) -> np.ndarray:
    """``abs(rows).max(axis=-1, keepdims=True)``."""
    return reduce_rows(rows_absmax, rows)


def row_strongest(rows: np.ndarray) -> np.ndarray:
    """The signed value of largest magnitude of each row (keeping a last axis of 1), the first on ties."""
    return reduce_rows(rows_strongest, rows)
