"""numba twins of the scale searches in ``floatfmt.quant.rules.kquants``: the same signatures and results.

Each twin runs ggml's search one row (sub-block) at a time, as the C does, with the float32 operations of the
numpy version in the same order: every product and sum typed float32, constants cast to float32, no fused
multiply-adds (numba contracts nothing without ``fastmath``), sums accumulated element by element. ``nearest``
is numpy's ``rint(...).astype(int32)``, including its INT_MIN for NaN and out-of-range values, so that even the
branches that discard such values see the same numbers. Division by zero gives infinity or NaN, as in numpy.

Imported by ``floatfmt._backend`` only when numba's loops are in use; the functions release the GIL.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from floatfmt._kernels_numba import float_of_bits

__all__ = [
    "_iq4_blocks",
    "dequantize_iq4_nl",
    "dequantize_iq4_xs",
    "dequantize_mxfp4",
    "dequantize_q2_k",
    "dequantize_q3_k",
    "dequantize_q4_k",
    "dequantize_q5_k",
    "dequantize_q6_k",
    "dequantize_q8_k",
    "dequantize_tq1_0",
    "dequantize_tq2_0",
    "_pack_trits",
    "_ternary",
    "make_q3_quants",
    "make_qkx2_quants",
    "make_qp_quants",
    "make_qx_quants",
    "mxfp4_codes",
    "q45_k_roundtrip",
    "q8_k_codes",
    "requantize",
]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_inlined = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always")

F32 = np.float32
_EPS = np.float32(1e-15)  # GROUP_MAX_EPS
_IQ4 = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32)


_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23: adding and subtracting it rounds a float32 below 2**22 to even


@_jit
def _nearest(v):  # type: ignore[no-untyped-def]
    """numpy's ``rint(v).astype(int32)`` as a float32 (INT_MIN for NaN and values beyond int32)."""
    if abs(v) < np.float32(4194304.0):
        return (v + _MAGIC) - _MAGIC  # ggml's nearest_int: exact round-half-even here
    r = np.rint(v)
    if not (r >= -2147483648.0 and r < 2147483648.0):
        return np.float32(-2147483648.0)
    return np.float32(r)


@_jit
def _nearest_small(v):  # type: ignore[no-untyped-def]
    """``_nearest`` where ``|v| < 2**22`` is known (a NaN stays NaN: callers discard such rows)."""
    return (v + _MAGIC) - _MAGIC


@_jit
def _clip(v, low, high):  # type: ignore[no-untyped-def]
    """``np.clip`` of one float32: NaN stays NaN."""
    if v < low:
        return low
    if v > high:
        return high
    return v


@_jit
def _strongest(x, r):  # type: ignore[no-untyped-def]
    """The first value of largest magnitude in row ``r`` (``argmax(abs(x))``: a NaN wins at once)."""
    best, where = abs(x[r, 0]), 0
    if best != best:
        return x[r, 0]
    for i in range(1, x.shape[1]):
        a = abs(x[r, i])
        if a > best or a != a:
            best, where = a, i
            if a != a:
                break
    return x[r, where]


_LANES = 128
"""Sub-blocks searched side by side: each lane is one sub-block, its sums in the serial order of its own
elements, so the lanes are independent and the compiler can run them as one vector (the same bits as one at a
time)."""

_UNROLL = 8
"""Elements of a lane summed in registers before its sums go back to memory: the same additions in the same
order, with a fraction of the loads and stores (the sums of 64 lanes do not fit in registers across a row)."""


@_jit
def _to_lanes(rows, start, lanes):  # type: ignore[no-untyped-def]
    """Rows ``start:start + lanes.shape[1]`` of ``rows`` into ``lanes`` element-major (one row per column), spare
    lanes past the last row repeating the block's first (their results are dropped); returns the rows used."""
    used = min(lanes.shape[1], rows.shape[0] - start)
    for i in range(rows.shape[1]):
        for j in range(lanes.shape[1]):
            lanes[i, j] = rows[start + (j if j < used else 0), i]
    return used


@_inlined
def _trial_sums(xt, wt, iscale, low, top, start, count, trial, sum_l, sum_l2, sum_xl):  # type: ignore[no-untyped-def]
    """One step of the search over elements ``start:start + count`` of every lane: the trial codes, and their
    sums added to each lane's in element order (called with the constant ``_UNROLL``, the count unrolls)."""
    for j in range(xt.shape[1]):
        s, lo = iscale[j], low[j]
        a, b, c = sum_l[j], sum_l2[j], sum_xl[j]
        for i in range(start, start + count):
            t = _clip(_nearest_small(s * (xt[i, j] - lo)), F32(0), top)
            trial[i, j] = t
            wl = wt[i, j] * t
            a += wl
            b += wl * t
            c += wl * xt[i, j]
        sum_l[j], sum_l2[j], sum_xl[j] = a, b, c


@_inlined
def _trial_error(xt, wt, trial, this_scale, this_min, use_mad, start, count, error):  # type: ignore[no-untyped-def]
    """The weighted error of the trial codes with each lane's fitted scale and min, as ``_trial_sums`` goes."""
    for j in range(xt.shape[1]):
        s, m, e = this_scale[j], this_min[j], error[j]
        for i in range(start, start + count):
            diff = s * trial[i, j] + m - xt[i, j]
            e += wt[i, j] * (abs(diff) if use_mad else diff * diff)
        error[j] = e


@_jit
def make_qkx2_quants(x, weights, nmax, rmin, rdelta, nstep, use_mad=False):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    scales = np.empty(rows, dtype=np.float32)
    mins = np.empty(rows, dtype=np.float32)
    codes_out = np.empty((rows, n), dtype=np.int32)
    lanes = _LANES
    xt = np.empty((n, lanes), dtype=np.float32)  # a block of sub-blocks, element-major: lanes are contiguous
    wt = np.empty((n, lanes), dtype=np.float32)
    codes = np.empty((n, lanes), dtype=np.float32)
    trial = np.empty((n, lanes), dtype=np.float32)
    low = np.empty(lanes, dtype=np.float32)
    high = np.empty(lanes, dtype=np.float32)
    sum_w = np.empty(lanes, dtype=np.float32)
    sum_x = np.empty(lanes, dtype=np.float32)
    scale = np.empty(lanes, dtype=np.float32)
    best_error = np.empty(lanes, dtype=np.float32)
    iscale = np.empty(lanes, dtype=np.float32)
    sum_l = np.empty(lanes, dtype=np.float32)
    sum_l2 = np.empty(lanes, dtype=np.float32)
    sum_xl = np.empty(lanes, dtype=np.float32)
    error = np.empty(lanes, dtype=np.float32)
    this_scale = np.empty(lanes, dtype=np.float32)
    this_min = np.empty(lanes, dtype=np.float32)
    determinant = np.empty(lanes, dtype=np.float32)
    flat = np.empty(lanes, dtype=np.bool_)
    top = F32(nmax)
    for start in range(0, rows, lanes):
        used = _to_lanes(x, start, xt)
        _to_lanes(weights, start, wt)
        for j in range(lanes):
            low[j] = xt[0, j]
            high[j] = xt[0, j]
            sum_w[j] = wt[0, j]
            sum_x[j] = sum_w[j] * xt[0, j]
        for i in range(1, n):
            for j in range(lanes):
                v = xt[i, j]
                low[j] = v if v < low[j] else low[j]
                high[j] = v if v > high[j] else high[j]
                sum_w[j] += wt[i, j]
                sum_x[j] += wt[i, j] * v
        for j in range(lanes):
            low[j] = F32(0) if low[j] > 0 else low[j]
            flat[j] = high[j] == low[j]
            iscale[j] = top / (high[j] - low[j])
            scale[j] = F32(1) / iscale[j]
            best_error[j] = F32(0)
        for i in range(n):  # |iscale * (x - low)| <= nmax + 2 where the row is not flat: _nearest_small is exact
            for j in range(lanes):
                c = _clip(_nearest_small(iscale[j] * (xt[i, j] - low[j])), F32(0), top)
                codes[i, j] = c
                diff = scale[j] * c + low[j] - xt[i, j]
                best_error[j] += wt[i, j] * (abs(diff) if use_mad else diff * diff)
        for step in range(nstep + 1):
            for j in range(lanes):
                iscale[j] = (F32(rmin) + F32(rdelta) * F32(step) + top) / (high[j] - low[j])
                sum_l[j] = F32(0)
                sum_l2[j] = F32(0)
                sum_xl[j] = F32(0)
            whole = n - n % _UNROLL  # each lane's sums in registers over _UNROLL elements at a time
            for i0 in range(0, whole, _UNROLL):
                _trial_sums(xt, wt, iscale, low, top, i0, _UNROLL, trial, sum_l, sum_l2, sum_xl)
            _trial_sums(xt, wt, iscale, low, top, whole, n - whole, trial, sum_l, sum_l2, sum_xl)
            for j in range(lanes):
                determinant[j] = sum_w[j] * sum_l2[j] - sum_l[j] * sum_l[j]
                this_scale[j] = (sum_w[j] * sum_xl[j] - sum_x[j] * sum_l[j]) / determinant[j]
                this_min[j] = (sum_l2[j] * sum_x[j] - sum_l[j] * sum_xl[j]) / determinant[j]
                if this_min[j] > 0:
                    this_min[j] = F32(0)
                    this_scale[j] = sum_xl[j] / sum_l2[j]
                error[j] = F32(0)
            for i0 in range(0, whole, _UNROLL):
                _trial_error(xt, wt, trial, this_scale, this_min, use_mad, i0, _UNROLL, error)
            _trial_error(xt, wt, trial, this_scale, this_min, use_mad, whole, n - whole, error)
            for j in range(lanes):
                if determinant[j] > 0 and error[j] < best_error[j]:
                    for i in range(n):
                        codes[i, j] = trial[i, j]
                    best_error[j], scale[j], low[j] = error[j], this_scale[j], this_min[j]
        for j in range(used):
            if flat[j]:
                scale[j] = F32(0)
                for i in range(n):
                    codes[i, j] = F32(0)
            scales[start + j] = scale[j]
            mins[start + j] = -low[j]
            for i in range(n):
                codes_out[start + j, i] = np.int32(codes[i, j])
    return scales, mins, codes_out


@_jit
def make_qx_quants(x, nmax, weights):  # type: ignore[no-untyped-def]
    """Rows searched :data:`_LANES` at a time, each lane one row with its sums in the row's serial order."""
    rows, n = x.shape
    w = x * x if weights is None else weights
    scales = np.empty(rows, dtype=np.float32)
    codes_out = np.empty((rows, n), dtype=np.int32)
    lanes = _LANES
    xt = np.empty((n, lanes), dtype=np.float32)
    wt = np.empty((n, lanes), dtype=np.float32)
    wxt = np.empty((n, lanes), dtype=np.float32)
    codes = np.empty((n, lanes), dtype=np.float32)
    trial = np.empty((n, lanes), dtype=np.float32)
    strongest = np.empty(lanes, dtype=np.float32)
    iscale = np.empty(lanes, dtype=np.float32)
    sumlx = np.empty(lanes, dtype=np.float32)
    suml2 = np.empty(lanes, dtype=np.float32)
    scale = np.empty(lanes, dtype=np.float32)
    best = np.empty(lanes, dtype=np.float32)
    zero = np.empty(lanes, dtype=np.bool_)
    low, high = F32(-nmax), F32(nmax - 1)
    for start in range(0, rows, lanes):
        used = _to_lanes(x, start, xt)
        _to_lanes(w, start, wt)
        for i in range(n):
            for j in range(lanes):
                wxt[i, j] = wt[i, j] * xt[i, j]
        for j in range(lanes):
            strongest[j] = _strongest(x, start + (j if j < used else 0))
            zero[j] = abs(strongest[j]) < _EPS  # an all-zero row: scale 0, codes 0, whatever the search finds
            iscale[j] = F32(-nmax) / strongest[j]
            sumlx[j] = F32(0)
            suml2[j] = F32(0)
        for i in range(n):  # |iscale * x| <= nmax + 1 (no NaN) except in all-zero rows, which are dropped
            for j in range(lanes):
                c = min(max(_nearest_small(iscale[j] * xt[i, j]), low), high)
                codes[i, j] = c
                sumlx[j] += wxt[i, j] * c
                suml2[j] += wt[i, j] * c * c
        for j in range(lanes):
            scale[j] = sumlx[j] / suml2[j] if suml2[j] != 0 else F32(0)
            best[j] = scale[j] * sumlx[j]
        for step in range(-9, 10):
            if step == 0:
                continue
            for j in range(lanes):
                iscale[j] = -(F32(nmax) + F32(0.1) * F32(step)) / strongest[j]
                sumlx[j] = F32(0)
                suml2[j] = F32(0)
            for i in range(n):
                for j in range(lanes):
                    c = min(max(_nearest_small(iscale[j] * xt[i, j]), low), high)
                    trial[i, j] = c
                    sumlx[j] += wxt[i, j] * c
                    suml2[j] += wt[i, j] * c * c
            for j in range(lanes):
                if suml2[j] > 0 and sumlx[j] * sumlx[j] > best[j] * suml2[j]:
                    for i in range(n):
                        codes[i, j] = trial[i, j]
                    scale[j] = sumlx[j] / suml2[j]
                    best[j] = scale[j] * sumlx[j]
        for j in range(used):
            if zero[j]:
                scales[start + j] = F32(0)
                for i in range(n):
                    codes_out[start + j, i] = 0
                continue
            scales[start + j] = scale[j]
            for i in range(n):
                codes_out[start + j, i] = np.int32(codes[i, j] + F32(nmax))
    return scales, codes_out


@_jit
def make_qp_quants(x, nmax, weights):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    scales = np.empty(rows, dtype=np.float32)
    codes_out = np.empty((rows, n), dtype=np.int32)
    codes = np.empty(n, dtype=np.float32)
    top_code = F32(nmax)
    for r in range(rows):
        top = max(x[r, 0], F32(0))
        for i in range(1, n):
            v = max(x[r, i], F32(0))
            if v > top or v != v:
                top = v
        iscale = top_code / top
        scale = F32(1) / iscale
        best = F32(0)
        for i in range(n):
            diff = x[r, i] - scale * _nearest(iscale * x[r, i])
            best += weights[r, i] * diff * diff
        for step in range(-4, 5):
            if step == 0:
                continue
            iscale_step = (F32(0.1) * F32(step) + top_code) / top
            scale_step = F32(1) / iscale_step
            error = F32(0)
            for i in range(n):
                diff = x[r, i] - scale_step * min(_nearest(iscale_step * x[r, i]), top_code)
                error += weights[r, i] * diff * diff
            if error < best:
                best, iscale = error, iscale_step
        sumlx, suml2 = F32(0), F32(0)
        for i in range(n):
            codes[i] = min(_nearest(iscale * x[r, i]), top_code)
            sumlx += weights[r, i] * x[r, i] * codes[i]
            suml2 += weights[r, i] * codes[i] * codes[i]
        for _ in range(5):  # a pass that changes nothing leaves the next nothing to change: ggml stops there
            changed = False
            for i in range(n):
                wi, xi, li = weights[r, i], x[r, i], codes[i]
                slx = sumlx - wi * xi * li
                sl2 = suml2 - wi * li * li
                new = min(_nearest(xi * sl2 / slx), top_code)
                slx_new = slx + wi * xi * new
                sl2_new = sl2 + wi * new * new
                if slx > 0 and sl2 > 0 and new != li and slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new:
                    codes[i], sumlx, suml2 = new, slx_new, sl2_new
                    changed = True
            if not changed:
                break
        zero = top < _EPS
        scales[r] = F32(0) if zero or not suml2 > 0 else sumlx / suml2
        for i in range(n):
            codes_out[r, i] = 0 if zero else np.int32(codes[i])
    return scales, codes_out


@_jit
def make_q3_quants(x, nmax):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    scales = np.empty(rows, dtype=np.float32)
    codes_out = np.empty((rows, n), dtype=np.int32)
    codes = np.empty(n, dtype=np.float32)
    low, high = F32(-nmax), F32(nmax - 1)
    for r in range(rows):
        strongest = _strongest(x, r)
        if abs(strongest) < _EPS:  # an all-zero row: scale 0, codes 0, whatever the search would find
            scales[r] = F32(0)
            for i in range(n):
                codes_out[r, i] = 0
            continue
        iscale = F32(-nmax) / strongest
        sumlx, suml2 = F32(0), F32(0)
        for i in range(n):
            wi = x[r, i] * x[r, i]
            codes[i] = min(max(_nearest_small(iscale * x[r, i]), low), high)  # |iscale * x| <= nmax
            sumlx += wi * x[r, i] * codes[i]
            suml2 += wi * codes[i] * codes[i]
        for _ in range(5):
            changed = False
            for i in range(n):
                xi, li = x[r, i], codes[i]
                wi = xi * xi
                slx = sumlx - wi * xi * li
                if not slx > 0:  # the first condition of the C's test: the candidate is not needed
                    continue
                sl2 = suml2 - wi * li * li
                new = _clip(_nearest(xi * sl2 / slx), low, high)
                slx_new = slx + wi * xi * new
                sl2_new = sl2 + wi * new * new
                if new != li and sl2_new > 0 and slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new:
                    codes[i], sumlx, suml2 = new, slx_new, sl2_new
                    changed = True
            if not changed:
                break
        scales[r] = sumlx / suml2 if suml2 > 0 else F32(0)
        for i in range(n):
            codes_out[r, i] = np.int32(codes[i] + F32(nmax))
    return scales, codes_out


@_jit
def _best_index(v):  # type: ignore[no-untyped-def]
    """ggml's ``best_index_int8`` as the numpy version computes it (a NaN gets 15)."""
    if v != v:
        return 15
    upper = 0
    while upper < 16 and _IQ4[upper] <= v:
        upper += 1
    upper = min(max(upper, 1), 15)
    index = upper - 1 if v - _IQ4[upper - 1] < _IQ4[upper] - v else upper
    if v <= _IQ4[0]:
        return 0
    if v >= _IQ4[15]:
        return 15
    return index


@_jit
def _iq4_blocks(x, weights, ntry):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    scales = np.empty(rows, dtype=np.float32)
    codes = np.empty((rows, n), dtype=np.int32)
    first = _IQ4[0]
    for r in range(rows):
        strongest = _strongest(x, r)
        d = (-strongest / first) if ntry > 0 else (strongest / first)
        inverse = F32(1) / d
        sumqx, sumq2 = F32(0), F32(0)
        for i in range(n):
            code = _best_index(inverse * x[r, i])
            codes[r, i] = code
            q = _IQ4[code]
            wq = weights[r, i] * q
            sumqx += wq * x[r, i]
            sumq2 += wq * q
        d = sumqx / sumq2 if sumq2 > 0 else F32(0)
        best = d * sumqx
        for step in range(-ntry, ntry + 1):
            inverse = F32(step + int(first)) / strongest
            sumqx, sumq2 = F32(0), F32(0)
            for i in range(n):
                q = _IQ4[_best_index(inverse * x[r, i])]
                wq = weights[r, i] * q
                sumqx += wq * x[r, i]
                sumq2 += wq * q
            if sumq2 > 0 and sumqx * sumqx > best * sumq2:
                d = sumqx / sumq2
                best = d * sumqx
        scales[r] = F32(0) if abs(strongest) < _EPS else d
    return scales, codes


@_jit
def requantize(x, sub_d, sub_m, low, high, offset, fallback):  # type: ignore[no-untyped-def]
    blocks, subs, n = x.shape
    codes = np.empty((blocks, subs, n), dtype=np.int32)
    low_f, high_f = F32(low), F32(high)
    for b in range(blocks):
        for s in range(subs):
            d = sub_d[b, s]
            for i in range(n):
                if d == 0:
                    codes[b, s, i] = fallback[b, s, i]
                    continue
                v = x[b, s, i] if sub_m is None else x[b, s, i] + sub_m[b, s]
                codes[b, s, i] = np.int32(_clip(_nearest(v / d), low_f, high_f)) + offset
    return codes


@_jit
def q8_k_codes(x):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    d = np.empty(rows, dtype=np.float32)
    q = np.empty((rows, n), dtype=np.int32)
    for r in range(rows):
        strongest = _strongest(x, r)
        iscale = F32(-127) / strongest
        zero = strongest == 0
        for i in range(n):
            q[r, i] = 0 if zero else np.int32(min(_nearest(iscale * x[r, i]), F32(127)))
        d[r] = F32(0) if zero else F32(1) / iscale
    return d, q


@_jit
def _ternary(x):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    d = np.empty(rows, dtype=np.float32)
    trits = np.empty((rows, n), dtype=np.int32)
    for r in range(rows):
        amax = abs(x[r, 0])
        for i in range(1, n):
            a = abs(x[r, i])
            if a > amax or a != a:
                amax = a
        d[r] = amax
        inverse = F32(1) / amax if amax != 0 else F32(0)
        for i in range(n):
            v = x[r, i] * inverse
            whole = np.trunc(v)
            if abs(v - whole) >= F32(0.5):
                whole += F32(1) if v > 0 else F32(-1)
            trits[r, i] = np.int32(whole) + 1
    return d, trits


_FP4_DOUBLED = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.float32)


@_jit
def mxfp4_codes(x, d):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    index = np.empty((rows, n), dtype=np.uint8)
    for r in range(rows):
        scale = d[r]
        for i in range(n):
            best, where = abs(_FP4_DOUBLED[0] * scale - x[r, i]), 0
            for k in range(1, 16):
                error = abs(_FP4_DOUBLED[k] * scale - x[r, i])
                if error < best:
                    best, where = error, k
            index[r, i] = where
    return index


@_jit
def _pack_trits(trits, count, spread):  # type: ignore[no-untyped-def]
    blocks = trits.shape[0]
    out = np.empty((blocks, spread), dtype=np.uint8)
    for b in range(blocks):
        for j in range(spread):
            q = 0
            for k in range(count):
                q = q * 3 + trits[b, k, j]
            if count == 4:
                q *= 3
            out[b, j] = (q * 256 + 242) // 243
    return out


@_jit
def _half(v):  # type: ignore[no-untyped-def]
    """A float32 ``v >= 0`` rounded to the nearest float16, ties to even, as a float32 (numpy's
    ``astype(float16)``); infinity beyond float16's range. In float64, where every step is exact: the 11
    significant bits of a normal float16, or whole multiples of 2**-24 below 2**-14."""
    value = np.float64(v)
    if value < 2.0**-14:
        return F32(np.rint(value * 2.0**24) * 2.0**-24)
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= mantissa < 1
    rounded = math.ldexp(np.rint(mantissa * 2048.0), exponent - 11)
    return F32(np.inf) if rounded > 65504.0 else F32(rounded)


@_jit
def q45_k_roundtrip(x, nmax, rmin, rdelta, nstep, out):  # type: ignore[no-untyped-def]
    """Q4_K (``nmax`` 15) or Q5_K (31) without an importance matrix, quantized and dequantized with no block bytes
    in between: ``quantize_row_q{4,5}_K_ref`` then ``dequantize_row_q{4,5}_K`` into ``out`` (blocks, 256). Returns
    False if a super-block scale overflows float16 (``out`` is then incomplete)."""
    blocks = x.shape[0]
    sub = x.reshape(blocks * 8, 32)
    weights = np.empty((blocks * 8, 32), dtype=np.float32)
    for r in range(blocks * 8):
        sum_x2 = F32(0)
        for i in range(32):
            sum_x2 += sub[r, i] * sub[r, i]
        av_x = np.sqrt(sum_x2 / F32(32))
        for i in range(32):
            weights[r, i] = av_x + abs(sub[r, i])
    scales, mins, codes = make_qkx2_quants(sub, weights, nmax, rmin, rdelta, nstep)
    top = F32(nmax)
    for b in range(blocks):
        max_scale, max_min = F32(0), F32(0)
        for j in range(8):
            max_scale = scales[b * 8 + j] if scales[b * 8 + j] > max_scale else max_scale
            max_min = mins[b * 8 + j] if mins[b * 8 + j] > max_min else max_min
        inv_scale = F32(63) / max_scale if max_scale > 0 else F32(0)
        inv_min = F32(63) / max_min if max_min > 0 else F32(0)
        d = _half(max_scale / F32(63))
        dmin = _half(max_min / F32(63))
        if d == np.inf or dmin == np.inf:
            return False
        for j in range(8):
            r = b * 8 + j
            ls = min(np.int32(_nearest(inv_scale * scales[r])) & 0xFF, 63)
            lm = min(np.int32(_nearest(inv_min * mins[r])) & 0xFF, 63)
            sub_d = d * F32(ls)
            sub_m = dmin * F32(lm)
            for i in range(32):
                if sub_d == 0:  # the search's code as the block stores it: its low nibble, and Q5_K's fifth bit
                    code = codes[r, i]
                    level = F32((code & 0xF) + (16 if nmax > 15 and code > 15 else 0))
                else:
                    level = _clip(_nearest((sub[r, i] + sub_m) / sub_d), F32(0), top)
                out[b, j * 32 + i] = sub_d * level - sub_m
    return True


# --- dequantizers: block bytes (blocks, bytes) into float32 (blocks, values), each value as the numpy version
# computes it (the same float32 products in the same order), straight from the bytes with no unpacked copies

_FP4_DOUBLED = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.float32)


@_jit
def _half_at(data, b, k):  # type: ignore[no-untyped-def]
    """The little-endian float16 at bytes ``k, k + 1`` of block ``b``, as a float32 (numpy's conversion: NaN
    payloads kept)."""
    h = np.uint32(data[b, k]) | (np.uint32(data[b, k + 1]) << 8)
    exponent = (h >> 10) & 0x1F
    mantissa = h & 0x3FF
    if exponent == 0:  # zero and subnormals: whole steps of 2**-24, exact in float32
        value = F32(mantissa) * F32(2.0**-24)
        return -value if h & 0x8000 else value
    exponent = np.uint32(0xFF) if exponent == 0x1F else exponent + np.uint32(112)
    return float_of_bits(((h & 0x8000) << 16) | (exponent << 23) | (mantissa << 13))


@_jit
def dequantize_q2_k(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d, dmin = _half_at(data, b, 80), _half_at(data, b, 82)
        for j in range(16):  # sub-block j: values 16j..16j+15, bits 2k of bytes 16 + 32h + 16(j % 2) + i
            h, k, half = j // 8, (j // 2) % 4, j % 2
            scale = data[b, j]
            sub_d, sub_m = d * F32(scale & 0xF), dmin * F32(scale >> 4)
            at = 16 + 32 * h + 16 * half
            for i in range(16):
                out[b, 16 * j + i] = sub_d * F32((data[b, at + i] >> (2 * k)) & 3) - sub_m


@_jit
def dequantize_q3_k(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 108)
        for j in range(16):
            low = (np.int32(data[b, 96 + j]) & 0xF) if j < 8 else (np.int32(data[b, 88 + j]) >> 4)
            high = (np.int32(data[b, 104 + j % 4]) >> (2 * (j // 4))) & 3
            sub_d = d * F32((low | (high << 4)) - 32)
            h, k, half = j // 8, (j // 2) % 4, j % 2
            at, bit = 32 + 32 * h + 16 * half, 4 * h + k  # value 16j + i = 32 * bit + 16 * half + i
            for i in range(16):
                code = np.int32((data[b, at + i] >> (2 * k)) & 3)
                code -= 4 - 4 * np.int32((data[b, 16 * half + i] >> bit) & 1)
                out[b, 16 * j + i] = sub_d * F32(code)


@_jit
def _scale_min_k4(data, b, j):  # type: ignore[no-untyped-def]
    """``get_scale_min_k4``: sub-block ``j``'s 6-bit scale and min from bytes 4..15 of a Q4_K/Q5_K block."""
    if j < 4:
        return np.int32(data[b, 4 + j] & 63), np.int32(data[b, 8 + j] & 63)
    scale = (data[b, 8 + j] & 0xF) | ((data[b, j] >> 6) << 4)
    low = (data[b, 8 + j] >> 4) | ((data[b, 4 + j] >> 6) << 4)
    return np.int32(scale), np.int32(low)


@_jit
def _dequantize_4bit_k(data, out, fifth_bit):  # type: ignore[no-untyped-def]
    """Q4_K, and Q5_K with ``fifth_bit``: eight 32-weight sub-blocks of ``scale * code - offset``, the low
    nibbles after 16 bytes of fields (and Q5_K's 32 bytes of fifth bits)."""
    codes_at = 48 if fifth_bit else 16
    for b in range(data.shape[0]):
        d, dmin = _half_at(data, b, 0), _half_at(data, b, 2)
        for j in range(8):
            sc, mn = _scale_min_k4(data, b, j)
            scale, offset = d * F32(sc), dmin * F32(mn)
            base, shift = codes_at + (j // 2) * 32, 4 * (j % 2)
            for i in range(32):
                code = (data[b, base + i] >> shift) & 0xF
                if fifth_bit:
                    code += 16 * ((data[b, 16 + i] >> j) & 1)
                out[b, j * 32 + i] = scale * F32(code) - offset


@_jit
def dequantize_q4_k(data, out):  # type: ignore[no-untyped-def]
    _dequantize_4bit_k(data, out, False)


@_jit
def dequantize_q5_k(data, out):  # type: ignore[no-untyped-def]
    _dequantize_4bit_k(data, out, True)


@_jit
def dequantize_q6_k(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 208)
        for h in range(2):
            for k in range(4):
                low_at, shift = 64 * h + 32 * (k % 2), 4 * (k // 2)
                for i in range(32):
                    level = np.int8(data[b, 192 + 8 * h + 2 * k + i // 16])
                    code = ((data[b, low_at + i] >> shift) & 0xF) | (((data[b, 128 + 32 * h + i] >> (2 * k)) & 3) << 4)
                    out[b, 128 * h + 32 * k + i] = (d * F32(level)) * F32(np.int32(code) - 32)


@_jit
def dequantize_q8_k(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        word = np.uint32(data[b, 0]) | (np.uint32(data[b, 1]) << 8) | (np.uint32(data[b, 2]) << 16)
        d = float_of_bits(word | (np.uint32(data[b, 3]) << 24))
        for v in range(256):
            out[b, v] = d * F32(np.int8(data[b, 4 + v]))


@_jit
def dequantize_iq4_nl(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 0)
        for i in range(16):
            byte = data[b, 2 + i]
            out[b, i] = d * _IQ4[byte & 0xF]
            out[b, 16 + i] = d * _IQ4[byte >> 4]


@_jit
def dequantize_iq4_xs(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 0)
        high = np.uint32(data[b, 2]) | (np.uint32(data[b, 3]) << 8)
        for j in range(8):
            level = ((data[b, 4 + j // 2] >> (4 * (j % 2))) & 0xF) | (((high >> (2 * j)) & 3) << 4)
            sub_d = d * F32(np.int32(level) - 32)
            for i in range(16):
                byte = data[b, 8 + 16 * j + i]
                out[b, 32 * j + i] = sub_d * _IQ4[byte & 0xF]
                out[b, 32 * j + 16 + i] = sub_d * _IQ4[byte >> 4]


@_jit
def dequantize_tq2_0(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 64)
        for h in range(2):
            for k in range(4):
                for i in range(32):
                    trit = np.int32((data[b, 32 * h + i] >> (2 * k)) & 3) - 1
                    out[b, 128 * h + 32 * k + i] = F32(trit) * d


_TRIT_OF = np.array(
    [[((((byte * 3**n) & 0xFF) * 3) >> 8) - 1 for n in range(5)] for byte in range(256)], dtype=np.float32
)
"""Trit ``n`` of a TQ1_0 byte, -1, 0 or 1: the byte times 3**n (mod 256), times 3, the top bits, less one."""


@_jit
def _trits(data, b, first, count, digits, d, out, at):  # type: ignore[no-untyped-def]
    """``digits`` trits from each of bytes ``first .. first + count`` of block ``b``, times ``d``, into ``out``
    from value ``at``: trit ``n`` of byte ``i`` is value ``at + n * count + i``."""
    for n in range(digits):
        for i in range(count):
            out[b, at + n * count + i] = _TRIT_OF[data[b, first + i], n] * d


@_jit
def dequantize_tq1_0(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        d = _half_at(data, b, 52)
        _trits(data, b, 0, 32, 5, d, out, 0)
        _trits(data, b, 32, 16, 5, d, out, 160)
        _trits(data, b, 48, 4, 4, d, out, 240)


@_jit
def dequantize_mxfp4(data, out):  # type: ignore[no-untyped-def]
    for b in range(data.shape[0]):
        e = np.uint32(data[b, 0])  # 2**(e - 128) as float32: subnormal below e = 2
        d = float_of_bits((e - np.uint32(1)) << 23 if e >= 2 else np.uint32(1) << (21 + e))
        for i in range(16):
            byte = data[b, 1 + i]
            out[b, i] = _FP4_DOUBLED[byte & 0x0F] * d
            out[b, 16 + i] = _FP4_DOUBLED[byte >> 4] * d
