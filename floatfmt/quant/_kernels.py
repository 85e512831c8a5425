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
from floatfmt._parallel import scratch

__all__ = [
    "block_roundtrip",
    "codebook_encode",
    "error_sums",
    "gguf_blocks",
    "lookup_scale",
    "offset_scale",
    "offset_scale_shift",
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
def error_sums(reference: np.ndarray, approx: np.ndarray) -> tuple[np.ndarray, int, float, int, float, int, int]:
    """The error sums of one piece (1-D float arrays of equal size) over the pairs where both are finite:
    ``([err², ref², app², ref·app], count, max |err|, pairs left out, top, at top, flushed)``, in float64.

    Each sum runs over blocks of :data:`SUM_BLOCK` products in :data:`SUM_LANES` lanes: a block's rows of
    ``SUM_LANES`` products are added lane by lane in order (``np.add.reduce`` over the rows), the lanes then
    pairwise (halving), the products of a last partial row one by one, and the blocks' sums in order from 0.
    Every step has one order in numpy and in the numba twin (whose lanes the compiler vectorizes), so the two
    agree bit for bit. ``top`` is the largest finite ``|approx|``, ``at top`` the pairs whose approximation is
    ``±top`` while the reference lies beyond (0 when ``top`` is 0): the saturated values, once the pieces' tops
    are compared. ``flushed`` counts the non-zero references approximated by 0.
    """
    # float64 copies in this thread's reused buffers: fresh arrays would cost a page fault per 4 KiB
    r = scratch(0, reference.size, np.float64)
    a = scratch(1, approx.size, np.float64)
    r[...], a[...] = reference, approx
    finite_approx = np.isfinite(a)
    top = float(np.max(np.abs(a), where=finite_approx, initial=0.0))
    finite = np.isfinite(r)
    finite &= finite_approx
    left_out = 0
    if not finite.all():
        left_out = int(r.size - np.count_nonzero(finite))
        r, a = r[finite], a[finite]
    at_top = int(np.count_nonzero((np.abs(a) == top) & (np.abs(r) > top))) if top else 0
    error = np.subtract(a, r, out=scratch(2, r.size, np.float64))
    product = scratch(3, r.size, np.float64)
    products = np.array(
        [_lane_sum(np.multiply(x, y, out=product)) for x, y in ((error, error), (r, r), (a, a), (r, a))]
    )
    max_abs = float(np.max(np.abs(error, out=product))) if error.size else 0.0
    flushed = int(np.count_nonzero(r[np.flatnonzero(a == 0)]))
    return products, int(r.size), max_abs, left_out, top, at_top, flushed


SUM_BLOCK = 8192
"""Products per block of :func:`error_sums`."""

SUM_LANES = 32
"""Lanes of a block's sums: products ``i``, ``i + 32``, ``i + 64`` ... of a block run in lane ``i % 32``."""


def _lane_sum(terms: np.ndarray) -> float:
    """:func:`error_sums`' sum of ``terms``: blocks of rows of lanes, as its docstring says."""
    rows = SUM_BLOCK // SUM_LANES
    whole = terms.size // SUM_BLOCK
    lanes = np.add.reduce(terms[: whole * SUM_BLOCK].reshape(whole, rows, SUM_LANES), axis=1)  # row by row
    sums = [*_halved(lanes)]
    rest = terms[whole * SUM_BLOCK :]
    if rest.size:
        full = rest.size // SUM_LANES
        part = (
            float(_halved(np.add.reduce(rest[: full * SUM_LANES].reshape(1, full, SUM_LANES), axis=1))[0])
            if full
            else 0.0
        )
        for term in rest[full * SUM_LANES :].tolist():
            part += term
        sums.append(part)
    total = 0.0
    for block in sums:
        total += float(block)
    return total


def _halved(lanes: np.ndarray) -> np.ndarray:
    """Each row's lanes added pairwise: ``(l0 + l1)``, ``(l2 + l3)`` ... and again, down to one sum per row."""
    while lanes.shape[1] > 1:
        lanes = lanes[:, 0::2] + lanes[:, 1::2]
    return lanes[:, 0]


def _padded_size(padded: np.ndarray, *rest: Any) -> int:
    return int(padded.size)


@twin(_NUMBA, size=_padded_size)
def block_roundtrip(
    padded: np.ndarray,
    by: np.ndarray,
    divide: bool,
    block_rows: int,
    block_cols: int,
    integer: bool,
    shift: int,
    smallest_normal: np.float32,
    magic: np.float32,
    largest: np.float32,
    smallest: np.float32,
    positive_zero: bool,
    dequant: np.float32 | np.ndarray,
    tensor_scale: np.float32,
    out: np.ndarray,
) -> int:
    """Quantize and dequantize in one pass, without codes: what a block rule's ``quantize`` then ``dequantize``
    give, for elements that round to nearest-even and saturate. Returns the count of scaled values that are not
    finite (then ``out`` is undefined and the caller takes the codes' path).

    Each element ``x`` of block ``(i, j)`` (of ``block_rows × block_cols`` in the float32 ``padded`` matrix) is
    scaled, ``s = x / by[i, j]`` (``divide``; 0 where ``by`` is 0) or ``s = x * by[i, j]``, in float32, rounded to
    the element format, and scaled back, ``out = (v * dequant[i, j]) * tensor_scale``. The rounding of ``|s|``:

    * a float element: at or above ``smallest_normal`` its float32 bits rounded to nearest-even at bit ``shift``
      (``23 -`` the element's mantissa bits); below, ``(|s| + magic) - magic`` (``magic`` is the power of two
      whose float32 spacing is the element's subnormal step); at most ``largest``; the sign of ``s``, made +0
      for a zero where ``positive_zero``;
    * an integer element: ``rint`` (``(|s| + 2**23) - 2**23`` below 2**23), signed, clipped to ``[smallest,
      largest]``, +0 for zero.
    """
    rows, cols = padded.shape
    tiles = padded.reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    factor = np.asarray(by, dtype=np.float32)[:, None, :, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = np.where(factor == 0, np.float32(0), tiles / factor) if divide else tiles * factor
    finite = np.isfinite(scaled)
    if not finite.all():
        return int(scaled.size - np.count_nonzero(finite))
    magnitude = np.abs(scaled)
    if integer:
        two23 = np.float32(2.0**23)
        rounded = np.where(magnitude < two23, (magnitude + two23) - two23, magnitude)
        values = np.clip(np.copysign(rounded, scaled), smallest, largest) + np.float32(0)
    else:
        bits = magnitude.view(np.uint32)
        up = (bits + (np.uint32((1 << (shift - 1)) - 1) + ((bits >> np.uint32(shift)) & np.uint32(1)))) & np.uint32(
            ~((1 << shift) - 1) & 0xFFFFFFFF
        )
        rounded = np.where(magnitude >= smallest_normal, up.view(np.float32), (magnitude + magic) - magic)
        values = np.copysign(np.minimum(rounded, largest), scaled)
        if positive_zero:
            values += np.float32(0)
    values *= np.asarray(dequant, dtype=np.float32)[:, None, :, None]
    values *= tensor_scale
    out[...] = values.reshape(rows, cols)
    return 0


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


def _codes_size(codes: np.ndarray, *rest: Any) -> int:
    return int(codes.size)


@twin(_NUMBA, size=_codes_size)
def lookup_scale(codes: np.ndarray, table: np.ndarray, scales: np.ndarray, out: np.ndarray) -> bool:
    """``out = table[codes] * scales[:, :, None]`` for uint8 codes ``(rows, blocks, block)`` and float32 block
    scales ``(rows, blocks)``: a block type's values from its element codes, one float32 product each. Returns
    False, leaving ``out`` incomplete, if a code is beyond the table."""
    return _table_times_scale(codes, table, scales, out)


def _table_times_scale(codes: np.ndarray, table: np.ndarray, scales: np.ndarray, out: np.ndarray) -> bool:
    try:
        np.take(table, codes, out=out)  # raises for a code beyond the table
    except IndexError:
        return False
    out *= scales[:, :, None]
    return True


@twin(_NUMBA, size=_codes_size)
def offset_scale(codes: np.ndarray, offset: int, scales: np.ndarray, out: np.ndarray) -> None:
    """``out = (int8(codes) - offset) * scales[:, :, None]`` for code bytes ``(rows, blocks, block)`` (each
    byte read as int8) and float32 block scales ``(rows, blocks)``: a block type whose element values are its
    codes less an offset (GGUF's legacy types), one float32 product each, as ``lookup_scale`` with the table
    ``int8(byte) - offset`` but with no table to read."""
    signed = codes.view(np.int8)
    if offset:
        signed = np.subtract(signed, np.int16(offset), dtype=np.int16)  # exact for every byte and offset
    np.multiply(signed, scales[:, :, None], out=out)


@twin(_NUMBA, size=_codes_size)
def offset_scale_shift(codes: np.ndarray, offset: int, scales: np.ndarray, shifts: np.ndarray, out: np.ndarray) -> None:
    """``offset_scale`` plus a float32 shift per block: ``out = (int8(codes) - offset) * scales[:, :, None] +
    shifts[:, :, None]``, the product rounded before the sum (GGUF's asymmetric types: ``d * q + m``)."""
    offset_scale.numpy(codes, offset, scales, out)  # type: ignore[attr-defined]  # numpy's, as this one is
    out += shifts[:, :, None]
