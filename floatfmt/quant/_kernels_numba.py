"""numba twins of ``floatfmt.quant._kernels``: the same signatures and meanings, each one pass.

Imported by ``floatfmt._backend`` only when numba's loops are in use; the functions release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["codebook_encode", "error_sums", "gguf_blocks", "rows_absmax", "rows_max", "rows_min", "rows_strongest"]

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
    """Eight running maxima per row, so that the compares do not wait on each other; zeros are all +0 here."""
    width = rows.shape[1]
    x = rows.reshape(-1)
    lanes = min(8, width)
    running = np.empty(8, dtype=rows.dtype)
    for i in range(rows.shape[0]):
        first = i * width
        for lane in range(lanes):
            running[lane] = abs(x[first + lane])
        for j in range(first + lanes, first + width - width % lanes, lanes):
            for lane in range(lanes):
                v, m = abs(x[j + lane]), running[lane]
                running[lane] = v if (v > m) | (v != v) else m
        m = running[0]
        for lane in range(1, lanes):
            v = running[lane]
            m = v if (v > m) | (v != v) else m
        for j in range(first + width - width % lanes, first + width):
            v = abs(x[j])
            m = v if (v > m) | (v != v) else m
        out[i] = m


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


# The error sums: numpy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src, pairwise_sum with
# PW_BLOCKSIZE 128) of the four float64 products, carried through one traversal instead of four arrays.


@_jit
def _leaf_products(r, a, start, n, out):  # type: ignore[no-untyped-def]
    """A leaf of numpy's pairwise sum (n <= 128): sequential below 8, else eight running sums combined as a tree."""
    if n < 8:
        for k in range(4):
            out[k] = 0.0
        for i in range(start, start + n):
            x, y = np.float64(r[i]), np.float64(a[i])
            e = y - x
            out[0] += e * e
            out[1] += x * x
            out[2] += y * y
            out[3] += x * y
        return
    # eight running sums of each product, as scalars so that they stay in registers
    x, y = np.float64(r[start + 0]), np.float64(a[start + 0])
    e = y - x
    ee0, rr0, aa0, ra0 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 1]), np.float64(a[start + 1])
    e = y - x
    ee1, rr1, aa1, ra1 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 2]), np.float64(a[start + 2])
    e = y - x
    ee2, rr2, aa2, ra2 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 3]), np.float64(a[start + 3])
    e = y - x
    ee3, rr3, aa3, ra3 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 4]), np.float64(a[start + 4])
    e = y - x
    ee4, rr4, aa4, ra4 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 5]), np.float64(a[start + 5])
    e = y - x
    ee5, rr5, aa5, ra5 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 6]), np.float64(a[start + 6])
    e = y - x
    ee6, rr6, aa6, ra6 = e * e, x * x, y * y, x * y
    x, y = np.float64(r[start + 7]), np.float64(a[start + 7])
    e = y - x
    ee7, rr7, aa7, ra7 = e * e, x * x, y * y, x * y
    i = 8
    while i < n - (n % 8):
        b = start + i
        x, y = np.float64(r[b + 0]), np.float64(a[b + 0])
        e = y - x
        ee0 += e * e
        rr0 += x * x
        aa0 += y * y
        ra0 += x * y
        x, y = np.float64(r[b + 1]), np.float64(a[b + 1])
        e = y - x
        ee1 += e * e
        rr1 += x * x
        aa1 += y * y
        ra1 += x * y
        x, y = np.float64(r[b + 2]), np.float64(a[b + 2])
        e = y - x
        ee2 += e * e
        rr2 += x * x
        aa2 += y * y
        ra2 += x * y
        x, y = np.float64(r[b + 3]), np.float64(a[b + 3])
        e = y - x
        ee3 += e * e
        rr3 += x * x
        aa3 += y * y
        ra3 += x * y
        x, y = np.float64(r[b + 4]), np.float64(a[b + 4])
        e = y - x
        ee4 += e * e
        rr4 += x * x
        aa4 += y * y
        ra4 += x * y
        x, y = np.float64(r[b + 5]), np.float64(a[b + 5])
        e = y - x
        ee5 += e * e
        rr5 += x * x
        aa5 += y * y
        ra5 += x * y
        x, y = np.float64(r[b + 6]), np.float64(a[b + 6])
        e = y - x
        ee6 += e * e
        rr6 += x * x
        aa6 += y * y
        ra6 += x * y
        x, y = np.float64(r[b + 7]), np.float64(a[b + 7])
        e = y - x
        ee7 += e * e
        rr7 += x * x
        aa7 += y * y
        ra7 += x * y
        i += 8
    out[0] = ((ee0 + ee1) + (ee2 + ee3)) + ((ee4 + ee5) + (ee6 + ee7))
    out[1] = ((rr0 + rr1) + (rr2 + rr3)) + ((rr4 + rr5) + (rr6 + rr7))
    out[2] = ((aa0 + aa1) + (aa2 + aa3)) + ((aa4 + aa5) + (aa6 + aa7))
    out[3] = ((ra0 + ra1) + (ra2 + ra3)) + ((ra4 + ra5) + (ra6 + ra7))
    while i < n:
        x, y = np.float64(r[start + i]), np.float64(a[start + i])
        e = y - x
        out[0] += e * e
        out[1] += x * x
        out[2] += y * y
        out[3] += x * y
        i += 1


@_jit
def _pairwise_products(r, a):  # type: ignore[no-untyped-def]
    """(Σ e², Σ r², Σ a², Σ r·a) with e = a - r in float64, in the order of numpy's recursive pairwise sum: its
    tree (halves rounded down to a multiple of 8, leaves of at most 128) walked with an explicit stack."""
    starts = np.empty(64, dtype=np.int64)
    sizes = np.empty(64, dtype=np.int64)
    stages = np.empty(64, dtype=np.int64)
    values = np.empty((64, 4))
    nodes, depth = 1, 0  # depth: values on the value stack
    starts[0], sizes[0], stages[0] = 0, r.size, 0
    leaf = np.empty(4)
    while nodes:
        node = nodes - 1
        n = sizes[node]
        if n <= 128:
            _leaf_products(r, a, starts[node], n, leaf)
            values[depth, :] = leaf
            depth += 1
            nodes -= 1
            continue
        half = n // 2
        half -= half % 8
        if stages[node] == 0:
            stages[node] = 1
            starts[nodes], sizes[nodes], stages[nodes] = starts[node], half, 0
            nodes += 1
        elif stages[node] == 1:
            stages[node] = 2
            starts[nodes], sizes[nodes], stages[nodes] = starts[node] + half, n - half, 0
            nodes += 1
        else:
            for k in range(4):
                values[depth - 2, k] = values[depth - 2, k] + values[depth - 1, k]
            depth -= 1
            nodes -= 1
    return values[0]


@_jit
def _piece_sums(r, a, top):  # type: ignore[no-untyped-def]
    products = np.zeros(4)
    for start in range(0, r.size, 8192):  # SUM_BLOCK: pairwise within each block, the blocks added in order
        block = _pairwise_products(r[start : start + 8192], a[start : start + 8192])
        for k in range(4):
            products[k] += block[k]
    max_abs = 0.0
    saturated = flushed = 0
    limit = top if top != 0 else np.inf  # no saturation without a largest magnitude
    for i in range(r.size):  # branch-free: counts add the comparisons
        x, y = np.float64(r[i]), np.float64(a[i])
        max_abs = max(max_abs, abs(y - x))
        saturated += (abs(y) >= limit) & (abs(x) > limit)
        flushed += (y == 0) & (x != 0)
    return products, max_abs, saturated, flushed


@_jit
def error_sums(reference, approx, top):  # type: ignore[no-untyped-def]
    n = reference.size
    finite = 0
    for i in range(n):
        if np.isfinite(reference[i]) and np.isfinite(approx[i]):
            finite += 1
    if finite == n:
        products, max_abs, saturated, flushed = _piece_sums(reference, approx, top)
        return products, n, max_abs, 0, saturated, flushed
    r = np.empty(finite)
    a = np.empty(finite)
    k = 0
    for i in range(n):
        if np.isfinite(reference[i]) and np.isfinite(approx[i]):
            r[k], a[k] = reference[i], approx[i]
            k += 1
    products, max_abs, saturated, flushed = _piece_sums(r, a, top)
    return products, finite, max_abs, n - finite, saturated, flushed
