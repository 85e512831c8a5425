"""numba twins of ``floatfmt.quant._kernels``: the same signatures and meanings, each one pass.

Imported by ``floatfmt._backend`` only when numba's loops are in use; the functions release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "block_roundtrip",
    "codebook_encode",
    "error_sums",
    "gguf_blocks",
    "lookup_scale",
    "offset_scale",
    "offset_scale_shift",
    "rows_absmax",
    "rows_max",
    "rows_min",
    "rows_strongest",
]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


# Row reductions: a NaN wins, as np.maximum and np.minimum propagate it; of equal values (zeros of both
# signs) the first.


@_jit
def _row_extreme(rows, out, largest):  # type: ignore[no-untyped-def]
    for i in range(rows.shape[0]):
        m = rows[i, 0]
        for j in range(1, rows.shape[1]):
            if m != m:
                break
            v = rows[i, j]
            if (v > m if largest else v < m) or v != v:
                m = v
        out[i] = m


@_jit
def rows_max(rows, out):  # type: ignore[no-untyped-def]
    _row_extreme(rows, out, True)


@_jit
def rows_min(rows, out):  # type: ignore[no-untyped-def]
    _row_extreme(rows, out, False)


@_jit
def rows_absmax(rows, out):  # type: ignore[no-untyped-def]
    """On the magnitudes' float32 bits, whose order as integers is the values' (a NaN's bits exceed infinity's):
    an integer maximum, which the compiler vectorizes; zeros are all +0 here."""
    width = rows.shape[1]
    bits = rows.reshape(-1).view(np.uint32)
    largest = np.empty(rows.shape[0], dtype=np.uint32)
    for i in range(rows.shape[0]):
        m = np.uint32(0)
        for j in range(i * width, (i + 1) * width):
            m = max(m, bits[j] & np.uint32(0x7FFFFFFF))
        largest[i] = m
    out[:] = largest.view(np.float32)


@_jit
def rows_strongest(rows, out):  # type: ignore[no-untyped-def]
    for i in range(rows.shape[0]):
        best = rows[i, 0]
        for j in range(1, rows.shape[1]):
            if best != best:
                break
            v = rows[i, j]
            if abs(v) > abs(best) or v != v:
                best = v
        out[i] = best


@_jit
def _reciprocal_or_zero(d):  # type: ignore[no-untyped-def]
    if d == 0:
        return np.float32(0)
    inverse = np.float32(1) / d
    return inverse if abs(inverse) != np.inf else np.float32(0)


@_jit
def gguf_blocks(blocks, bits, asymmetric, codes, scales, minimums, data, column):  # type: ignore[no-untyped-def]
    """Flat indexing throughout (block i's weights at ``32 i ...``): numba vectorizes the code loops then."""
    x, q, out = blocks.reshape(-1), codes.reshape(-1), data.reshape(-1)
    top = (1 << bits) - 1
    half = np.float32(1 << (bits - 1))
    offset = half + np.float32(0.5)
    width = data.shape[1]
    for i in range(blocks.shape[0]):
        first, at = 32 * i, width * i + column
        high, low = x[first], x[first]
        for j in range(first + 1, first + 32):
            high = x[j] if x[j] > high else high
            low = x[j] if x[j] < low else low
        if bits == 8:
            d = max(abs(high), abs(low)) / np.float32(127)  # abs: an all-zero block has +0, whatever its signs
            inverse = _reciprocal_or_zero(d)
            for j in range(first, first + 32):
                scaled = x[j] * inverse
                magnitude = abs(scaled)
                rounded = np.float32(math.floor(magnitude))
                if magnitude - rounded >= np.float32(0.5):  # half away from zero, like roundf
                    rounded += np.float32(1)
                code = np.int32(rounded)
                q[j] = (-code if scaled < 0 else code) & 0xFF
            for j in range(32):
                out[at + j] = q[first + j]
            scales[i] = d
            continue
        if asymmetric:
            d = (high - low) / np.float32(top)
            inverse = _reciprocal_or_zero(d)
            for j in range(first, first + 32):
                q[j] = min(np.int32((x[j] - low) * inverse + np.float32(0.5)), top)
            minimums[i] = low
        else:
            strongest = high if high >= -low else low
            if high == -low and high != 0:  # both signs reach the largest magnitude: the first one counts
                for j in range(first, first + 32):
                    if abs(x[j]) == high:
                        strongest = x[j]
                        break
            if strongest == 0:
                strongest = np.float32(0)  # ggml's loop keeps its initial +0 for a block of zeros: d = -0
            d = strongest / -half
            inverse = _reciprocal_or_zero(d)
            for j in range(first, first + 32):
                q[j] = min(np.int32(x[j] * inverse + offset), top)
        scales[i] = d
        if bits == 5:  # the fifth bits of the 32 codes, a little-endian uint32
            for k in range(4):
                byte = 0
                for b in range(8):
                    byte |= (q[first + 8 * k + b] >> 4) << b
                out[at + k] = byte
            at += 4
        for j in range(16):
            out[at + j] = (q[first + j] & 15) | ((q[first + j + 16] & 15) << 4)


@_jit
def codebook_encode(values, base, threshold, out):  # type: ignore[no-untyped-def]
    bits = values.view(np.uint32)
    for i in range(values.size):
        key = bits[i] >> 16
        out[i] = base[key] + (1 if values[i] > threshold[key] else 0)


# The error sums (see floatfmt.quant._kernels.error_sums): per block of 8192 products, 32 lanes added row by row,
# the lanes pairwise, a partial row one by one, the blocks in order. The lanes are a loop of 32 the compiler
# vectorizes: each lane's own order is untouched.

_LANES = 32
_BLOCK = 8192


@_jit
def _halve_lanes(acc, k):  # type: ignore[no-untyped-def]
    """Lanes ``32k .. 32k + 31`` of ``acc`` added pairwise, as ``_halved`` does."""
    width = _LANES
    base = k * _LANES
    work = acc[base : base + _LANES].copy()
    while width > 1:
        width //= 2
        for j in range(width):
            work[j] = work[2 * j] + work[2 * j + 1]
    return work[0]


@_jit
def _add_rows(r, a, start, rows, acc, top, hits):  # type: ignore[no-untyped-def]
    """Rows of 32 pairs from ``start``, each product added to its lane, and the pairs at ``±top`` whose reference
    lies beyond counted (a loop the compiler vectorizes: over slices indexed from 0, which it runs in vector
    registers; indexed from ``start`` in the whole arrays it did not, 7x slower)."""
    r, a = r[start : start + rows * 32], a[start : start + rows * 32]
    for i in range(r.size // 32):
        base = i * 32
        for j in range(32):
            x = np.float64(r[base + j])
            y = np.float64(a[base + j])
            e = y - x
            acc[j] += e * e
            acc[32 + j] += x * x
            acc[64 + j] += y * y
            acc[96 + j] += x * y
            hits[j] += (abs(y) == top) & (abs(x) > top)


@_jit
def _lane_products(r, a, top):  # type: ignore[no-untyped-def]
    """The four lane sums of finite pairs, and the pairs at ``±top`` with the reference beyond (none for 0)."""
    products = np.zeros(4)
    acc = np.empty(4 * _LANES)
    hits = np.zeros(_LANES, dtype=np.int64)
    level = top if top != 0 else np.inf  # no finite value is at an infinite top
    n = r.size
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        rows = m // _LANES
        part = np.zeros(4)
        if rows:
            for j in range(_LANES):
                x, y = np.float64(r[start + j]), np.float64(a[start + j])
                e = y - x
                acc[j] = e * e
                acc[_LANES + j] = x * x
                acc[2 * _LANES + j] = y * y
                acc[3 * _LANES + j] = x * y
                hits[j] += (abs(y) == level) & (abs(x) > level)
            _add_rows(r, a, start + _LANES, rows - 1, acc, level, hits)
            for k in range(4):
                part[k] = _halve_lanes(acc, k)
        for t in range(start + rows * _LANES, start + m):
            x, y = np.float64(r[t]), np.float64(a[t])
            e = y - x
            part[0] += e * e
            part[1] += x * x
            part[2] += y * y
            part[3] += x * y
            hits[0] += (abs(y) == level) & (abs(x) > level)
        for k in range(4):
            products[k] += part[k]
    return products, hits.sum()


@_jit
def _piece_stats(r, a):  # type: ignore[no-untyped-def]
    """(pairs not both finite, max |a - r|, flushed, top) over the finite pairs (``top``: over the finite ``a``),
    in lanes of 32 the compiler vectorizes: maxima and counts do not depend on the order they are taken in."""
    n = r.size
    largest = np.zeros(_LANES)
    tops = np.zeros(_LANES)
    counts = np.zeros((2, _LANES), dtype=np.int64)
    huge = np.float64(np.finfo(np.float64).max)
    rows = n // _LANES
    for i in range(rows):
        base = i * _LANES
        for j in range(_LANES):
            x, y = np.float64(r[base + j]), np.float64(a[base + j])
            t = abs(y)
            finite_y = t <= huge
            pair = (abs(x) <= huge) & finite_y
            e = abs(y - x)
            largest[j] = e if pair & (e > largest[j]) else largest[j]
            tops[j] = t if finite_y & (t > tops[j]) else tops[j]
            counts[0, j] += not pair
            counts[1, j] += pair & (y == 0) & (x != 0)
    max_abs = top = 0.0
    for j in range(_LANES):
        max_abs = max(max_abs, largest[j])
        top = max(top, tops[j])
    nonfinite, flushed = counts[0].sum(), counts[1].sum()
    for i in range(rows * _LANES, n):
        x, y = np.float64(r[i]), np.float64(a[i])
        t = abs(y)
        pair = (abs(x) <= huge) & (t <= huge)
        nonfinite += not pair
        if pair:
            max_abs = max(max_abs, abs(y - x))
            flushed += (y == 0) & (x != 0)
        if t <= huge:
            top = max(top, t)
    return nonfinite, max_abs, flushed, top


@_jit
def error_sums(reference, approx):  # type: ignore[no-untyped-def]
    n = reference.size
    nonfinite, max_abs, flushed, top = _piece_stats(reference, approx)
    if nonfinite == 0:
        products, at_top = _lane_products(reference, approx, top)
        return products, n, max_abs, 0, top, at_top, flushed
    finite = n - nonfinite
    r = np.empty(finite)
    a = np.empty(finite)
    k = 0
    for i in range(n):
        if np.isfinite(reference[i]) and np.isfinite(approx[i]):
            r[k], a[k] = reference[i], approx[i]
            k += 1
    products, at_top = _lane_products(r, a, top)
    return products, finite, max_abs, nonfinite, top, at_top, flushed


@_jit
def block_roundtrip(padded, by, divide, block_rows, block_cols, integer, shift, smallest_normal, magic, largest,  # type: ignore[no-untyped-def]
                    smallest, positive_zero, dequant, tensor_scale, out):  # fmt: skip
    rows, cols = padded.shape
    scaled = np.empty(block_cols, dtype=np.float32)
    rounded = np.empty(block_cols, dtype=np.float32)
    scaled_bits = scaled.view(np.uint32)
    rounded_bits = rounded.view(np.uint32)
    half = np.uint32((1 << (shift - 1)) - 1)
    mask = np.uint32(~((1 << shift) - 1) & 0xFFFFFFFF)
    two23 = np.float32(2.0**23)
    zero = np.float32(0)
    huge = np.float32(3.4028235e38)
    bad = 0
    for i in range(rows):
        bi = i // block_rows
        for bj in range(cols // block_cols):
            f = by[bi, bj]
            q = dequant[bi, bj]
            c0 = bj * block_cols
            if divide:
                if f == 0:
                    for k in range(block_cols):
                        scaled[k] = zero
                else:
                    for k in range(block_cols):
                        scaled[k] = padded[i, c0 + k] / f
            else:
                for k in range(block_cols):
                    scaled[k] = padded[i, c0 + k] * f
            for k in range(block_cols):  # the magnitudes' bits rounded at bit ``shift``
                b = scaled_bits[k] & np.uint32(0x7FFFFFFF)
                rounded_bits[k] = (b + half + ((b >> np.uint32(shift)) & np.uint32(1))) & mask
            for k in range(block_cols):
                s = scaled[k]
                a = abs(s)
                bad += not (a <= huge)
                if integer:
                    r = (a + two23) - two23 if a < two23 else a
                    v = min(max(math.copysign(r, s), smallest), largest) + zero
                else:
                    r = rounded[k] if a >= smallest_normal else (a + magic) - magic
                    v = math.copysign(min(r, largest), s)
                    if positive_zero:
                        v += zero
                out[i, c0 + k] = (np.float32(v) * q) * tensor_scale
    return bad


@_jit
def lookup_scale(codes, table, scales, out):  # type: ignore[no-untyped-def]
    rows, blocks, block = codes.shape
    size = table.size
    for r in range(rows):
        for b in range(blocks):
            largest = 0
            for i in range(block):  # checked a block at a time, so that the loop below has no exit
                largest = max(largest, codes[r, b, i])
            if largest >= size:
                return False
            scale = scales[r, b]
            for i in range(block):
                out[r, b, i] = table[codes[r, b, i]] * scale
    return True


@_jit
def offset_scale(codes, offset, scales, out):  # type: ignore[no-untyped-def]
    rows, blocks, block = codes.shape
    for r in range(rows):
        for b in range(blocks):
            scale = scales[r, b]
            for i in range(block):
                out[r, b, i] = np.float32(np.int32(np.int8(codes[r, b, i])) - offset) * scale


@_jit
def offset_scale_shift(codes, offset, scales, shifts, out):  # type: ignore[no-untyped-def]
    rows, blocks, block = codes.shape
    for r in range(rows):
        for b in range(blocks):
            scale, shift = scales[r, b], shifts[r, b]
            for i in range(block):
                product = np.float32(np.int32(np.int8(codes[r, b, i])) - offset) * scale
                out[r, b, i] = product + shift  # a product, then a sum: no fastmath, so never fused
