"""numba twins of ``floatfmt.quant._kernels``: the same signatures and meanings, each one pass.

Imported by ``floatfmt._backend`` only when numba's loops are in use; the functions release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["codebook_encode", "gguf_blocks", "rows_absmax", "rows_max", "rows_min", "rows_strongest"]

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
