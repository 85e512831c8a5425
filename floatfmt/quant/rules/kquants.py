"""llama.cpp's super-block types (K-quants), ternary types and GGUF's MXFP4, byte for byte as ggml writes them.

Each quantizer transcribes the function ``llama-quantize`` runs for the type, ``quantize_<type>`` in ggml's
``ggml/src/ggml-quants.c`` (without an importance matrix the ``quantize_row_<type>_ref`` functions), vectorized
over blocks: every float32 operation in the same order, sums accumulated element by element as the C loops do
(not pairwise, as ``np.sum`` would), ``nearest_int`` as round-half-even, the scale searches run in full for every
block. The tests compare the bytes with ggml's own C, compiled from the llama-cpp-python source distribution.

Block layouts (bytes per 256 values): Q8_K 292 (float32 ``d``, 256 int8, 16 int16 sums), Q4_K 144 (fp16 ``d`` and
``dmin``, 12 bytes of 6-bit sub-block scales and mins, 128 bytes of nibbles), TQ1_0 54, TQ2_0 66; MXFP4 17 bytes
per 32 values (an E8M0 exponent, 16 bytes of nibbles).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from floatfmt._backend import twin
from floatfmt._parallel import CHUNK_ELEMENTS, DEQUANTIZE_CHUNK_ELEMENTS, map_chunks

__all__ = ["DEQUANTIZERS", "QUANTIZERS", "ROUNDTRIPS", "fp16_scales", "quantize_blocks"]

F32 = np.float32
_NUMBA = "floatfmt.quant.rules._kquants_numba"
"""The numba twins of the scale searches below (one row at a time, as the C runs them)."""


def _x_size(x: np.ndarray, *rest: object) -> int:
    return int(x.size)


QK_K = 256
GROUP_MAX_EPS = F32(1e-15)

Quantizer = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
QUANTIZERS: dict[str, tuple[int, int, Quantizer]] = {}
"""Type name to (values per block, bytes per block, quantizer of float32 ``(blocks, values)`` into block bytes)."""
DEQUANTIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
"""Type name to the dequantizer of block bytes ``(blocks, bytes)`` into float32 ``(blocks, values)``."""


def quantize_blocks(name: str, matrix: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    """The block bytes of a float32 ``rows × cols`` matrix (rows of whole blocks), in cache-sized runs of blocks
    on the package's threads; ``importance`` has one weight per column."""
    block, block_bytes, quantizer = QUANTIZERS[name]
    cols = matrix.shape[1]
    blocks = matrix.reshape(-1, block)
    per_row = cols // block
    weights = None if importance is None else np.asarray(importance, dtype=F32).reshape(per_row, block)
    data = np.empty((blocks.shape[0], block_bytes), dtype=np.uint8)

    def work(start: int, stop: int) -> None:
        run_weights = None if weights is None else np.tile(weights, (-(-(stop - start) // per_row) + 1, 1))
        if run_weights is not None:
            offset = start % per_row
            run_weights = run_weights[offset : offset + stop - start]
        data[start:stop] = quantizer(np.ascontiguousarray(blocks[start:stop], dtype=F32), run_weights)

    map_chunks(work, blocks.shape[0], max(1, CHUNK_ELEMENTS // block), item_elements=block)
    return data.reshape(-1)


Dequantizer = Callable[[np.ndarray, np.ndarray], None]


def _register(name: str, block: int, block_bytes: int, quantize: Quantizer, dequantize: Dequantizer) -> None:
    QUANTIZERS[name] = (block, block_bytes, quantize)
    into = _dequantizer_into(name, dequantize)

    def dequantize_blocks(data: np.ndarray) -> np.ndarray:
        """Block bytes ``(blocks, bytes)`` into float32 ``(blocks, values)``, in cache-sized runs of blocks on the
        package's threads (the compiled twin where numba's loops are in use)."""
        out = np.empty((data.shape[0], block), dtype=F32)

        def work(start: int, stop: int) -> None:
            into(data[start:stop], out[start:stop])

        map_chunks(work, data.shape[0], max(1, DEQUANTIZE_CHUNK_ELEMENTS // block), item_elements=block)
        return out

    dequantize_blocks.into = into  # type: ignore[attr-defined]
    DEQUANTIZERS[name] = dequantize_blocks


def _dequantizer_into(name: str, dequantize: Dequantizer) -> Callable[..., None]:
    """``dequantize`` (block bytes into ``out``, float32 ``(blocks, values)``), declared as the twin of
    ``_kquants_numba.dequantize_<name>``."""

    def numpy_into(data: np.ndarray, out: np.ndarray) -> None:
        dequantize(data, out)

    numpy_into.__name__ = numpy_into.__qualname__ = f"dequantize_{name}"
    return twin(_NUMBA, size=_out_size)(numpy_into)


def _out_size(data: np.ndarray, out: np.ndarray) -> int:
    return int(out.size)  # the values written: a run of blocks is fewer bytes than values


# --- the C helpers, vectorized -----------------------------------------------------------------------------


def nearest_int(values: np.ndarray) -> np.ndarray:
    """ggml's ``nearest_int``: float32 to the nearest integer, ties to even (exact for |x| < 2**22)."""
    return np.rint(values).astype(np.int32)


def _sequential_sum(terms: np.ndarray) -> np.ndarray:
    """``s = 0; for t in terms: s += t`` along the last axis, in float32, as the C loops accumulate."""
    total = np.zeros(terms.shape[:-1], dtype=F32)
    for i in range(terms.shape[-1]):
        total += terms[..., i]
    return total


def _first_strongest(x: np.ndarray) -> np.ndarray:
    """The signed value of largest magnitude of each row, the first on ties (``if (ax > amax)`` loops)."""
    index = np.argmax(np.abs(x), axis=-1)
    return np.take_along_axis(x, index[..., None], axis=-1)[..., 0]


def fp16_scales(values: np.ndarray) -> np.ndarray:
    """Block scales or minimums as float16, refusing what would overflow (ggml and gguf-py would store infinity)."""
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.isfinite(half).all():
        raise ValueError(
            f"{np.count_nonzero(~np.isfinite(half))} GGUF block scales or minimums exceed float16's range (65504); "
            "ggml and gguf-py would store them as infinity. Scale the tensor down first"
        )
    return half


def _half_bytes(half: np.ndarray) -> np.ndarray:
    """The little-endian bytes of float16 values, two per value along a new last axis."""
    return half.astype("<f2").view(np.uint8).reshape(*half.shape, 2)


def _fp16_bytes(values: np.ndarray) -> np.ndarray:
    return _half_bytes(fp16_scales(values))


def _half_field(data: np.ndarray, at: int) -> np.ndarray:
    """The float16 stored at bytes ``at, at + 1`` of each block, as float32 ``(blocks, 1)``."""
    return data[:, at : at + 2].copy().view("<f2").astype(F32)


@twin(_NUMBA, size=_x_size)
def make_qkx2_quants(
    x: np.ndarray, weights: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int, use_mad: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml's ``make_qkx2_quants`` over rows: (scale, -min, codes); the error is absolute with ``use_mad``."""

    def cost(diff: np.ndarray) -> np.ndarray:
        return np.abs(diff) if use_mad else diff * diff

    n = x.shape[-1]
    low, high = x[:, 0].copy(), x[:, 0].copy()
    sum_w = weights[:, 0].copy()
    sum_x = sum_w * x[:, 0]
    for i in range(1, n):
        low = np.where(x[:, i] < low, x[:, i], low)
        high = np.where(x[:, i] > high, x[:, i], high)
        sum_w += weights[:, i]
        sum_x += weights[:, i] * x[:, i]
    low = np.where(low > 0, F32(0), low)
    flat = high == low
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(nmax) / (high - low)
        scale = F32(1) / iscale
        codes = np.clip(nearest_int(iscale[:, None] * (x - low[:, None])), 0, nmax).astype(F32)
        diff = scale[:, None] * codes + low[:, None] - x
        best_error = _sequential_sum(weights * cost(diff))
        for step in range(nstep + 1):
            iscale = (F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)) / (high - low)
            trial = np.clip(nearest_int(iscale[:, None] * (x - low[:, None])), 0, nmax).astype(F32)
            wl = weights * trial
            sum_l, sum_l2, sum_xl = _sequential_sum(wl), _sequential_sum(wl * trial), _sequential_sum(wl * x)
            determinant = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / determinant
            positive = this_min > 0
            this_min = np.where(positive, F32(0), this_min)
            this_scale = np.where(positive, sum_xl / sum_l2, this_scale)
            diff = this_scale[:, None] * trial + this_min[:, None] - x
            error = _sequential_sum(weights * cost(diff))
            better = (determinant > 0) & (error < best_error)
            codes = np.where(better[:, None], trial, codes)
            best_error = np.where(better, error, best_error)
            scale = np.where(better, this_scale, scale)
            low = np.where(better, this_min, low)
    scale = np.where(flat, F32(0), scale)
    codes = np.where(flat[:, None], F32(0), codes)
    return scale.astype(F32), (-low).astype(F32), codes.astype(np.int32)


@twin(_NUMBA, size=_x_size)
def make_qx_quants(x: np.ndarray, nmax: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """ggml's ``make_qx_quants`` with ``rmse_type=1`` over rows: (scale, codes + nmax); weights ``x*x`` if None."""
    strongest = _first_strongest(x)
    zero = np.abs(strongest) < GROUP_MAX_EPS
    w = x * x if weights is None else weights
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(-nmax) / strongest
        steps = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(F32)
        sumlx = _sequential_sum(w * x * steps)
        suml2 = _sequential_sum(w * steps * steps)
        scale = np.where(suml2 != 0, sumlx / suml2, F32(0)).astype(F32)
        best = scale * sumlx
        codes = steps
        for step in range(-9, 10):
            if step == 0:
                continue
            iscale = -(F32(nmax) + F32(0.1) * F32(step)) / strongest
            trial = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(F32)
            sumlx = _sequential_sum(w * x * trial)
            suml2 = _sequential_sum(w * trial * trial)
            better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
            codes = np.where(better[:, None], trial, codes)
            scale = np.where(better, sumlx / suml2, scale)
            best = np.where(better, scale * sumlx, best)
    codes = np.where(zero[:, None], F32(-nmax), codes)  # all-zero rows: codes 0
    return np.where(zero, F32(0), scale).astype(F32), (codes + F32(nmax)).astype(np.int32)


@twin(_NUMBA, size=_x_size)
def make_qp_quants(x: np.ndarray, nmax: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ggml's ``make_qp_quants`` over rows of positive values (sub-block scales): (scale, codes 0..nmax)."""
    top = np.max(np.maximum(x, F32(0)), axis=1)
    zero = top < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(nmax) / top
        scale = F32(1) / iscale
        codes = nearest_int(iscale[:, None] * x).astype(F32)
        diff = x - scale[:, None] * codes
        best = _sequential_sum(weights * diff * diff)
        for step in range(-4, 5):
            if step == 0:
                continue
            iscale_step = (F32(0.1) * F32(step) + F32(nmax)) / top
            scale_step = F32(1) / iscale_step
            trial = np.minimum(nearest_int(iscale_step[:, None] * x), nmax).astype(F32)
            diff = x - scale_step[:, None] * trial
            error = _sequential_sum(weights * diff * diff)
            better = error < best
            best = np.where(better, error, best)
            iscale = np.where(better, iscale_step, iscale)
        codes = np.minimum(nearest_int(iscale[:, None] * x), nmax).astype(F32)
        sumlx = _sequential_sum(weights * x * codes)
        suml2 = _sequential_sum(weights * codes * codes)
        for _ in range(5):
            for i in range(x.shape[1]):
                wi, xi, li = weights[:, i], x[:, i], codes[:, i]
                slx = sumlx - wi * xi * li
                sl2 = suml2 - wi * li * li
                new = np.minimum(nearest_int(xi * sl2 / slx), nmax).astype(F32)
                slx_new = slx + wi * xi * new
                sl2_new = sl2 + wi * new * new
                take = (slx > 0) & (sl2 > 0) & (new != li) & (slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new)
                codes[:, i] = np.where(take, new, li)
                sumlx = np.where(take, slx_new, sumlx)
                suml2 = np.where(take, sl2_new, suml2)
        scale = np.where(suml2 > 0, sumlx / suml2, F32(0))
    codes = np.where(zero[:, None], F32(0), codes)
    return np.where(zero, F32(0), scale).astype(F32), codes.astype(np.int32)


def _importance_weights(x: np.ndarray, importance: np.ndarray, sigma_factor: float) -> np.ndarray:
    """``qw * sqrtf(sigma2 + x*x)`` with ``sigma2 = factor * sum(x*x) / 256`` per super-block."""
    sum_x2 = _sequential_sum(x * x)
    sigma2 = (F32(sigma_factor) * sum_x2 / F32(QK_K)) if sigma_factor != 1 else sum_x2 / F32(QK_K)
    return importance * np.sqrt(sigma2[:, None] + x * x)


@twin(_NUMBA, size=_x_size)
def make_q3_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """ggml's ``make_q3_quants`` with ``do_rmse`` over rows: (scale, codes + nmax), the greedy refinement run in
    full (a pass that changes nothing leaves the next one nothing to change, so the C loop's early exit agrees)."""
    strongest = _first_strongest(x)
    zero = np.abs(strongest) < GROUP_MAX_EPS
    w = x * x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = F32(-nmax) / strongest
        codes = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(F32)
        sumlx = _sequential_sum(w * x * codes)
        suml2 = _sequential_sum(w * codes * codes)
        for _ in range(5):
            for i in range(x.shape[1]):
                wi, xi, li = w[:, i], x[:, i], codes[:, i]
                slx = sumlx - wi * xi * li
                sl2 = suml2 - wi * li * li
                new = np.clip(nearest_int(xi * sl2 / slx), -nmax, nmax - 1).astype(F32)
                slx_new = slx + wi * xi * new
                sl2_new = sl2 + wi * new * new
                take = (slx > 0) & (new != li) & (sl2_new > 0) & (slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new)
                codes[:, i] = np.where(take, new, li)
                sumlx = np.where(take, slx_new, sumlx)
                suml2 = np.where(take, sl2_new, suml2)
        scale = np.where(suml2 > 0, sumlx / suml2, F32(0))
    codes = np.where(zero[:, None], F32(-nmax), codes)
    return np.where(zero, F32(0), scale).astype(F32), (codes + F32(nmax)).astype(np.int32)


@twin(_NUMBA, size=_x_size)
def requantize(
    x: np.ndarray, sub_d: np.ndarray, sub_m: np.ndarray | None, low: int, high: int, offset: int, fallback: np.ndarray
) -> np.ndarray:
    """The final codes of ``x`` (blocks, sub-blocks, n) from the stored sub-block scales: ``clip(nearest_int((x +
    sub_m) / sub_d), low, high) + offset`` (``x / sub_d`` without mins), ``fallback`` where ``sub_d`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = x if sub_m is None else x + sub_m[:, :, None]
        codes = np.clip(nearest_int(shifted / sub_d[:, :, None]), low, high) + offset
    return np.where((sub_d != 0)[:, :, None], codes, fallback)


def _pack_2bit(codes: np.ndarray) -> np.ndarray:
    """Q2_K/Q3_K's low bits: for each 128 values, byte ``l`` holds codes ``l, l+32, l+64, l+96`` from the low bits."""
    groups = codes.reshape(codes.shape[0], 2, 4, 32)
    packed = groups[:, :, 0] | (groups[:, :, 1] << 2) | (groups[:, :, 2] << 4) | (groups[:, :, 3] << 6)
    return packed.reshape(codes.shape[0], 64).astype(np.uint8)


_SHIFTS_2BIT = (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]
_BITS = np.arange(8, dtype=np.uint8)


def _unpack_2bit(qs: np.ndarray) -> np.ndarray:
    """``_pack_2bit`` undone, as uint8."""
    return ((qs.reshape(-1, 2, 1, 32) >> _SHIFTS_2BIT) & 3).reshape(-1, 256)


def _max_positive(values: np.ndarray) -> np.ndarray:
    """The C loops' ``m = 0; if (v > m) m = v``: the largest positive value, or 0."""
    return np.max(np.maximum(values, F32(0)), axis=1)


# --- Q2_K -------------------------------------------------------------------------------------------------------


def _quantize_q2_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    blocks = x.shape[0]
    sub = x.reshape(-1, 16)
    if importance is None:  # quantize_row_q2_K_ref
        scales, mins, codes = make_qkx2_quants(sub, np.abs(sub), 3, -0.5, 0.1, 15, True)  # use_mad
        scales, mins, codes = scales.reshape(blocks, 16), mins.reshape(blocks, 16), codes.reshape(blocks, 256)
        max_scale, max_min = _max_positive(scales), _max_positive(mins)
        with np.errstate(divide="ignore", invalid="ignore"):
            iscale = F32(15) / max_scale
            iscale_min = F32(15) / max_min
        low = np.where((max_scale > 0)[:, None], nearest_int(iscale[:, None] * scales) & 0xFF, 0)
        high = np.where((max_min > 0)[:, None], (nearest_int(iscale_min[:, None] * mins) << 4) & 0xFF, 0)
        d = fp16_scales(np.where(max_scale > 0, max_scale / F32(15), F32(0)))
        dmin = fp16_scales(np.where(max_min > 0, max_min / F32(15), F32(0)))
    else:  # quantize_row_q2_K_impl
        weights = _importance_weights(x, importance, 1).reshape(-1, 16)
        sums = _sequential_sum(weights).reshape(blocks, 16)
        scales, mins, codes = make_qkx2_quants(sub, weights, 3, -0.9, 0.05, 36)
        scales, mins, codes = scales.reshape(blocks, 16), mins.reshape(blocks, 16), codes.reshape(blocks, 256)
        dm, low = make_qp_quants(scales, 15, sums)
        mm, high = make_qp_quants(mins, 15, sums)
        low, high = low & 0xFF, (high << 4) & 0xFF
        d, dmin = fp16_scales(dm), fp16_scales(mm)
    packed_scales = (low | high).astype(np.uint8)
    sub_d = d.astype(F32)[:, None] * (packed_scales & 0xF).astype(F32)
    sub_m = dmin.astype(F32)[:, None] * (packed_scales >> 4).astype(F32)
    codes = requantize(x.reshape(blocks, 16, 16), sub_d, sub_m, 0, 3, 0, codes.reshape(blocks, 16, 16))
    codes = codes.reshape(blocks, 256)
    out = np.empty((blocks, 84), dtype=np.uint8)
    out[:, :16] = packed_scales
    out[:, 16:80] = _pack_2bit(codes)
    out[:, 80:82] = _half_bytes(d)
    out[:, 82:84] = _half_bytes(dmin)
    return out


def _dequantize_q2_k(data: np.ndarray, out: np.ndarray) -> None:
    scales = data[:, :16]
    sub_d = _half_field(data, 80) * (scales & 0xF).astype(F32)
    sub_m = _half_field(data, 82) * (scales >> 4).astype(F32)
    values = out.reshape(-1, 16, 16)
    np.multiply(sub_d[:, :, None], _unpack_2bit(data[:, 16:80]).reshape(-1, 16, 16), out=values)
    values -= sub_m[:, :, None]


# --- Q3_K -------------------------------------------------------------------------------------------------------


def _q3_scale_bytes(levels: np.ndarray) -> np.ndarray:
    """Sixteen 6-bit sub-block scales (0..63) into Q3_K's 12 bytes."""
    out = np.zeros((levels.shape[0], 12), dtype=np.int32)
    out[:, :8] = levels[:, :8] & 0xF
    out[:, :8] |= (levels[:, 8:] & 0xF) << 4
    high = levels >> 4
    for j in range(16):
        out[:, 8 + j % 4] |= high[:, j] << (2 * (j // 4))
    return out.astype(np.uint8)


def _q3_scale_levels(scale_bytes: np.ndarray) -> np.ndarray:
    """Q3_K's signed sub-block scales (-32..31) from its 12 bytes."""
    q = scale_bytes
    low = np.concatenate([q[:, :8] & 0xF, q[:, :8] >> 4], axis=1)
    high = (q[:, None, 8:12] >> _SHIFTS_2BIT[0, 0]) & 3  # scale j: bits 2 (j // 4) of byte 8 + j % 4
    return (low | (high.reshape(-1, 16) << 4)).astype(np.int32) - 32


def _quantize_q3_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    blocks = x.shape[0]
    if importance is None:  # quantize_row_q3_K_ref
        scales, codes = make_q3_quants(x.reshape(-1, 16), 4)
        scales, codes = scales.reshape(blocks, 16), codes.reshape(blocks, 256)
        strongest = _first_strongest(scales)
        has_scale = strongest != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            iscale = F32(-32) / strongest
            levels = np.clip(nearest_int(iscale[:, None] * scales), -32, 31) + 32
            d = fp16_scales(np.where(has_scale, F32(1) / iscale, F32(0)))
        scale_bytes = np.where(has_scale[:, None], _q3_scale_bytes(np.where(has_scale[:, None], levels, 0)), 0)
    else:  # quantize_row_q3_K_impl
        weights = _importance_weights(x, importance, 2).reshape(-1, 16)
        scales, codes = make_qx_quants(x.reshape(-1, 16), 4, weights)
        scales, codes = scales.reshape(blocks, 16), codes.reshape(blocks, 256)
        d_block, levels = make_qx_quants(scales, 32, _sequential_sum(weights).reshape(blocks, 16))
        scale_bytes = _q3_scale_bytes(levels)
        d = fp16_scales(d_block)
    scale_bytes = scale_bytes.astype(np.uint8)
    sub_d = d.astype(F32)[:, None] * _q3_scale_levels(scale_bytes).astype(F32)
    codes = requantize(x.reshape(blocks, 16, 16), sub_d, None, -4, 3, 4, codes.reshape(blocks, 16, 16))
    codes = codes.reshape(blocks, 256)
    high_bits = codes > 3
    codes = np.where(high_bits, codes - 4, codes)
    hmask = np.zeros((blocks, 32), dtype=np.int32)
    for bit in range(8):
        hmask |= high_bits[:, 32 * bit : 32 * (bit + 1)].astype(np.int32) << bit
    out = np.empty((blocks, 110), dtype=np.uint8)
    out[:, :32] = hmask
    out[:, 32:96] = _pack_2bit(codes)
    out[:, 96:108] = scale_bytes
    out[:, 108:110] = _half_bytes(d)
    return out


def _dequantize_q3_k(data: np.ndarray, out: np.ndarray) -> None:
    sub_d = _half_field(data, 108) * _q3_scale_levels(data[:, 96:108]).astype(F32)
    codes = _unpack_2bit(data[:, 32:96]).view(np.int8)
    # value 32 * bit + l has its high bit in bit ``bit`` of hmask byte ``l``; without it the code is 4 lower
    high = (data[:, None, :32] >> _BITS[:, None]) & 1
    high <<= 2
    codes += high.reshape(-1, 256).view(np.int8)
    codes -= np.int8(4)
    np.multiply(sub_d[:, :, None], codes.reshape(-1, 16, 16), out=out.reshape(-1, 16, 16))


# --- Q5_K -------------------------------------------------------------------------------------------------------


def _quantize_q5_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    head, codes = _q45_k(x, 31, -0.5, 0.1, 15, importance)
    blocks = x.shape[0]
    groups = codes.reshape(blocks, 4, 2, 32)
    qh = np.zeros((blocks, 32), dtype=np.int32)
    for n in range(4):
        qh |= (groups[:, n, 0] > 15).astype(np.int32) << (2 * n)
        qh |= (groups[:, n, 1] > 15).astype(np.int32) << (2 * n + 1)
    low = groups & 0xF
    out = np.empty((blocks, 176), dtype=np.uint8)
    out[:, :16] = head
    out[:, 16:48] = qh
    out[:, 48:] = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(blocks, 128)
    return out


def _dequantize_q5_k(data: np.ndarray, out: np.ndarray) -> None:
    codes = _nibbles(data[:, 48:])
    # sub-block j's fifth bits are bit j of the 32 bytes of qh
    high = np.unpackbits(data[:, None, 16:48], axis=1, bitorder="little")
    high <<= 4
    codes |= high
    _scaled_with_offset(data, codes, out)


def _nibbles(q: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K's codes: for each 64 values, the low nibbles of 32 bytes then their high nibbles, as uint8
    ``(blocks, 8 sub-blocks, 32)``."""
    codes = np.empty((q.shape[0], 4, 2, 32), dtype=np.uint8)
    pairs = q.reshape(-1, 4, 32)
    np.bitwise_and(pairs, 0xF, out=codes[:, :, 0])
    np.right_shift(pairs, 4, out=codes[:, :, 1])
    return codes.reshape(-1, 8, 32)


def _scaled_with_offset(data: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
    """Q4_K/Q5_K's values ``scale * code - offset`` of each 32-value sub-block, into ``out``."""
    scale, offset = _q45_scales(data)
    values = out.reshape(-1, 8, 32)
    np.multiply(scale[:, :, None], codes, out=values)
    values -= offset[:, :, None]


def _q45_k(
    x: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int, importance: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K's and Q5_K's shared part: sub-block scales and mins, their 6-bit codes, the fp16 super-block scales,
    and the requantized codes. Returns (the 16 head bytes, codes). Without importance ``quantize_row_q{4,5}_K_ref``
    (``make_qkx2_quants``, the scale codes by rounding); with it ``quantize_row_q{4,5}_K_impl`` (weights from the
    importance, the scale codes by ``make_qp_quants``)."""
    blocks = x.shape[0]
    sub = x.reshape(-1, 32)
    if importance is None:
        sum_x2 = _sequential_sum(sub * sub)
        av_x = np.sqrt(sum_x2 / F32(32))
        weights = av_x[:, None] + np.abs(sub)
        scales, mins, codes = make_qkx2_quants(sub, weights, nmax, rmin, rdelta, nstep)
        scales, mins, codes = scales.reshape(blocks, 8), mins.reshape(blocks, 8), codes.reshape(blocks, 256)
        max_scale, max_min = _max_positive(scales), _max_positive(mins)
        with np.errstate(divide="ignore"):
            inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0)).astype(F32)
            inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0)).astype(F32)
        ls = np.minimum(nearest_int(inv_scale[:, None] * scales) & 0xFF, 63).astype(np.uint8)
        lm = np.minimum(nearest_int(inv_min[:, None] * mins) & 0xFF, 63).astype(np.uint8)
        d = fp16_scales(max_scale / F32(63))
        dmin = fp16_scales(max_min / F32(63))
    else:
        weights = _importance_weights(x, importance, 2).reshape(-1, 32)
        sums = _sequential_sum(weights).reshape(blocks, 8)
        scales, mins, codes = make_qkx2_quants(sub, weights, nmax, -0.9, 0.05, 36)
        scales, mins, codes = scales.reshape(blocks, 8), mins.reshape(blocks, 8), codes.reshape(blocks, 256)
        d_block, ls = make_qp_quants(scales, 63, sums)
        m_block, lm = make_qp_quants(mins, 63, sums)
        ls, lm = np.minimum(ls & 0xFF, 63).astype(np.uint8), np.minimum(lm & 0xFF, 63).astype(np.uint8)
        d, dmin = fp16_scales(d_block), fp16_scales(m_block)
    sub_d = d.astype(F32)[:, None] * ls.astype(F32)
    sub_m = dmin.astype(F32)[:, None] * lm.astype(F32)
    codes = requantize(x.reshape(blocks, 8, 32), sub_d, sub_m, 0, nmax, 0, codes.reshape(blocks, 8, 32))
    codes = codes.reshape(blocks, 256)
    head = np.empty((blocks, 16), dtype=np.uint8)
    head[:, 0:2] = _half_bytes(d)
    head[:, 2:4] = _half_bytes(dmin)
    head[:, 4:16] = _pack_scales_k4(ls, lm)
    return head, codes


@twin(_NUMBA, size=_x_size)
def q45_k_roundtrip(x: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int, out: np.ndarray) -> bool:
    """The values Q4_K (``nmax`` 15) or Q5_K (31) stores for float32 ``x`` (blocks, 256), without an importance
    matrix, into ``out``: the dequantized block bytes (the numba twin skips the bytes, the same bits). Returns
    whether every super-block scale fits float16; here one that does not raises, as quantizing does."""
    head, codes = _q45_k(x, nmax, rmin, rdelta, nstep, None)
    scale, offset = _q45_scales(head)
    stored = (codes & 0xF) + (16 * (codes > 15) if nmax > 15 else 0)  # a search's stray code keeps what fits
    levels = stored.reshape(-1, 8, 32).astype(F32)
    out[...] = (scale[:, :, None] * levels - offset[:, :, None]).reshape(-1, 256)
    return True


ROUNDTRIPS: dict[str, Callable[[np.ndarray, np.ndarray], bool]] = {
    "q4_k": lambda x, out: q45_k_roundtrip(x, 15, -1.0, 0.1, 20, out),
    "q5_k": lambda x, out: q45_k_roundtrip(x, 31, -0.5, 0.1, 15, out),
}
"""Type name to quantize-then-dequantize of float32 (blocks, values) into ``out`` in one pass, for the types that
have one (used when no importance matrix is given); ``False`` when a block scale overflows float16."""


def _q45_scales(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sc, mn = _unpack_scales_k4(data[:, 4:16])
    return _half_field(data, 0) * sc.astype(F32), _half_field(data, 2) * mn.astype(F32)


# --- Q6_K -------------------------------------------------------------------------------------------------------


def _quantize_q6_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    blocks = x.shape[0]
    weights = None if importance is None else importance.reshape(-1, 16)
    scales, codes = make_qx_quants(x.reshape(-1, 16), 32, weights)
    scales, codes = scales.reshape(blocks, 16), codes.reshape(blocks, 256)
    strongest = _first_strongest(scales)
    zero = np.abs(strongest) < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(-128) / strongest
        d = fp16_scales(np.where(zero, F32(0), F32(1) / iscale))
        levels = np.where(zero[:, None], 0, np.minimum(nearest_int(iscale[:, None] * scales), 127))
    sub_d = d.astype(F32)[:, None] * levels.astype(F32)
    codes = requantize(x.reshape(blocks, 16, 16), sub_d, None, -32, 31, 32, codes.reshape(blocks, 16, 16))
    codes = codes.reshape(blocks, 256)
    groups = codes.reshape(blocks, 2, 4, 32)
    low = groups & 0xF
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)], axis=2)
    high = groups >> 4
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    out = np.zeros((blocks, 210), dtype=np.uint8)
    out[:, :128] = ql.reshape(blocks, 128)
    out[:, 128:192] = qh.reshape(blocks, 64)
    out[:, 192:208] = levels.astype(np.int8).view(np.uint8)
    out[:, 208:210] = _half_bytes(d)
    out[zero] = 0  # ggml clears the whole block
    return out


def _dequantize_q6_k(data: np.ndarray, out: np.ndarray) -> None:
    levels = data[:, 192:208].view(np.int8).astype(F32).reshape(-1, 2, 8)
    ql = data[:, :128].reshape(-1, 2, 2, 32)  # (blocks, halves, which 32 bytes, 32)
    nibbles = np.empty((data.shape[0], 2, 2, 2, 32), dtype=np.uint8)  # quarter k: nibble k // 2 of half k % 2
    np.bitwise_and(ql, 0xF, out=nibbles[:, :, 0])
    np.right_shift(ql, 4, out=nibbles[:, :, 1])
    high = data[:, 128:192].reshape(-1, 2, 1, 32) >> _SHIFTS_2BIT  # quarter k: bits 2k, 2k + 1
    high &= 3
    high <<= 4
    codes = nibbles.reshape(-1, 2, 4, 32)
    codes |= high
    signed = codes.view(np.int8)
    signed -= np.int8(32)  # (blocks, 2 halves, 4 quarters, 32)
    scale = (_half_field(data, 208)[:, :, None] * levels).reshape(-1, 2, 4, 2, 1)  # scales[is + 2k], is = l // 16
    np.multiply(scale, signed.reshape(-1, 2, 4, 2, 16), out=out.reshape(-1, 2, 4, 2, 16))


# --- Q8_K ------------------------------------------------------------------------------------------------------


@twin(_NUMBA, size=_x_size)
def q8_k_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_row_q8_K_ref``'s scale and codes: ``d = 1 / iscale``, ``min(127, nearest_int(iscale * x))`` with
    ``iscale = -127 / strongest`` (0 and codes 0 for an all-zero block)."""
    strongest = _first_strongest(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(-127) / strongest
        q = np.minimum(nearest_int(iscale[:, None] * x), 127)
    zero = strongest == 0
    q[zero] = 0
    return np.where(zero, F32(0), (F32(1) / iscale).astype(F32)), q


def _quantize_q8_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    d, q = q8_k_codes(x)
    sums = q.reshape(-1, 16, 16).sum(axis=-1).astype("<i2")
    out = np.empty((x.shape[0], 292), dtype=np.uint8)
    out[:, :4] = d.astype("<f4").view(np.uint8).reshape(-1, 4)
    out[:, 4:260] = q.astype(np.int8).view(np.uint8)
    out[:, 260:] = sums.view(np.uint8).reshape(-1, 32)
    return out


def _dequantize_q8_k(data: np.ndarray, out: np.ndarray) -> None:
    np.multiply(data[:, :4].copy().view("<f4"), data[:, 4:260].view(np.int8), out=out)


# --- TQ1_0 and TQ2_0 ---------------------------------------------------------------------------------------------


@twin(_NUMBA, size=_x_size)
def _ternary(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each block's amax (the scale d) and the trits ``lroundf(x / d) + 1`` (0, 1, 2)."""
    d = np.max(np.abs(x), axis=-1)
    with np.errstate(divide="ignore"):
        inverse = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    scaled = x * inverse[:, None]
    return d, (_lround(scaled) + 1).astype(np.int32)


def _lround(values: np.ndarray) -> np.ndarray:
    """C's ``lroundf``: to the nearest integer, halves away from zero (exactly: ``v - trunc(v)`` is exact)."""
    whole = np.trunc(values)
    away = np.abs(values - whole) >= F32(0.5)
    return whole + np.where(away, np.sign(values), F32(0))


def _quantize_tq2_0(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    d, trits = _ternary(x)
    groups = trits.reshape(-1, 2, 4, 32)  # two runs of 128 values, 4 values per byte 32 apart
    q = np.zeros((x.shape[0], 2, 32), dtype=np.int32)
    for n in range(4):
        q += (groups[:, :, n, :] & 3) << (2 * n)
    out = np.empty((x.shape[0], 66), dtype=np.uint8)
    out[:, :64] = q.reshape(-1, 64)
    out[:, 64:] = _fp16_bytes(d)
    return out


def _dequantize_tq2_0(data: np.ndarray, out: np.ndarray) -> None:
    trits = _unpack_2bit(data[:, :64]).view(np.int8)
    trits -= np.int8(1)
    np.multiply(trits, _half_field(data, 64), out=out)


@twin(_NUMBA, size=_x_size)
def _pack_trits(trits: np.ndarray, count: int, spread: int) -> np.ndarray:
    """``count`` trits per byte taken ``spread`` apart, the first the most significant, then the ceiling of
    ``q * 256 / 243`` (so that a byte's top bits hold the first trit)."""
    q = np.zeros((*trits.shape[:-2], spread), dtype=np.int32)
    for n in range(count):
        q = q * 3 + trits[..., n, :]
    if count == 4:
        q = q * 3
    return ((q * 256 + 242) // 243).astype(np.uint8)


def _quantize_tq1_0(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    d, trits = _ternary(x)
    out = np.empty((x.shape[0], 54), dtype=np.uint8)
    out[:, :32] = _pack_trits(trits[:, :160].reshape(-1, 5, 32), 5, 32)
    out[:, 32:48] = _pack_trits(trits[:, 160:240].reshape(-1, 5, 16), 5, 16)
    out[:, 48:52] = _pack_trits(trits[:, 240:].reshape(-1, 4, 4), 4, 4)
    out[:, 52:] = _fp16_bytes(d)
    return out


_POWERS_OF_3 = np.array([1, 3, 9, 27, 81], dtype=np.uint8)[None, :, None]


def _unpack_trits(q: np.ndarray, count: int) -> np.ndarray:
    """The trits (-1, 0, 1) of ``_pack_trits``' bytes, as int8: byte times 3**n (mod 256), times 3, the top bits."""
    digits = (q[..., None, :] * _POWERS_OF_3[:, :count]).astype(np.uint16)  # uint8 products wrap: the mod 256
    return (((digits * 3) >> 8).astype(np.int8)) - np.int8(1)


def _dequantize_tq1_0(data: np.ndarray, out: np.ndarray) -> None:
    d = _half_field(data, 52)
    for first, count, digits, at in ((0, 32, 5, 0), (32, 16, 5, 160), (48, 4, 4, 240)):
        trits = _unpack_trits(data[:, first : first + count], digits).reshape(-1, count * digits)
        np.multiply(trits, d, out=out[:, at : at + count * digits])


# --- MXFP4 as ggml writes it -----------------------------------------------------------------------------------

_FP4_DOUBLED = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=F32)
"""ggml's ``kvalues_mxfp4``: twice the E2M1 values, so that the scale is half of 2**(e - 127)."""


def _e8m0_half(e: np.ndarray) -> np.ndarray:
    """ggml's ``ggml_e8m0_to_fp32_half``: 2**(e - 128), as float32 (subnormal for e < 2)."""
    return np.ldexp(F32(1), e.astype(np.int32) - 128).astype(F32)


@twin(_NUMBA, size=_x_size)
def mxfp4_codes(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The index of the nearest of ``kvalues_mxfp4 * d`` for each value, the first of equal errors (the smaller
    magnitude), as ``quantize_row_mxfp4_ref``'s ``best_index_mxfp4`` finds it."""
    error = np.abs(_FP4_DOUBLED[None, None, :] * d[:, None, None] - x[:, :, None])
    return np.argmin(error, axis=-1).astype(np.uint8)


def _quantize_mxfp4(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    amax = np.max(np.abs(x), axis=-1)
    with np.errstate(divide="ignore"):
        # log2f of a float32, correctly rounded to float32 (glibc's), then its floor
        exponent = np.floor(np.log2(amax.astype(np.float64)).astype(F32))
    e = np.where(amax > 0, (exponent - 2 + 127).astype(np.int64) & 0xFF, 0).astype(np.uint8)
    index = mxfp4_codes(x, _e8m0_half(e))
    out = np.empty((x.shape[0], 17), dtype=np.uint8)
    out[:, 0] = e
    out[:, 1:] = index[:, :16] | (index[:, 16:] << 4)
    return out


def _dequantize_mxfp4(data: np.ndarray, out: np.ndarray) -> None:
    d = _e8m0_half(data[:, 0])[:, None]
    np.multiply(_FP4_DOUBLED[data[:, 1:] & 0x0F], d, out=out[:, :16])
    np.multiply(_FP4_DOUBLED[data[:, 1:] >> 4], d, out=out[:, 16:])


# --- Q4_K -------------------------------------------------------------------------------------------------------


def _pack_scales_k4(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The 12 bytes of eight 6-bit scales and mins (``get_scale_min_k4``'s layout)."""
    out = np.zeros((ls.shape[0], 12), dtype=np.uint8)
    out[:, :4] = ls[:, :4]
    out[:, 4:8] = lm[:, :4]
    out[:, 8:12] = (ls[:, 4:] & 0xF) | ((lm[:, 4:] & 0xF) << 4)
    out[:, :4] |= ((ls[:, 4:] >> 4) << 6).astype(np.uint8)
    out[:, 4:8] |= ((lm[:, 4:] >> 4) << 6).astype(np.uint8)
    return out


def _unpack_scales_k4(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = scales.astype(np.int32)
    sc = np.empty((q.shape[0], 8), dtype=np.int32)
    mn = np.empty((q.shape[0], 8), dtype=np.int32)
    sc[:, :4], mn[:, :4] = q[:, :4] & 63, q[:, 4:8] & 63
    sc[:, 4:] = (q[:, 8:12] & 0xF) | ((q[:, :4] >> 6) << 4)
    mn[:, 4:] = (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)
    return sc, mn


def _quantize_q4_k(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    head, codes = _q45_k(x, 15, -1.0, 0.1, 20, importance)
    pairs = codes.reshape(x.shape[0], 4, 2, 32)
    out = np.empty((x.shape[0], 144), dtype=np.uint8)
    out[:, :16] = head
    out[:, 16:] = (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).reshape(x.shape[0], 128)
    return out


def _dequantize_q4_k(data: np.ndarray, out: np.ndarray) -> None:
    _scaled_with_offset(data, _nibbles(data[:, 16:]), out)


# --- IQ4_NL and IQ4_XS ---------------------------------------------------------------------------------------

_IQ4_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=F32)
"""ggml's ``kvalues_iq4nl``: the 16 non-linear levels (a scale maps them to the weights)."""


def _best_index(values: np.ndarray) -> np.ndarray:
    """ggml's ``best_index_int8`` over the IQ4 levels: the nearer level, the upper one on a tie."""
    levels = _IQ4_VALUES
    upper = np.clip(np.searchsorted(levels, values, side="right"), 1, 15)
    lower_gap = values - levels[upper - 1]
    upper_gap = levels[upper] - values
    index = np.where(lower_gap < upper_gap, upper - 1, upper)
    index = np.where(values <= levels[0], 0, index)
    return np.where(values >= levels[15], 15, index).astype(np.int32)


@twin(_NUMBA, size=_x_size)
def _iq4_blocks(x: np.ndarray, weights: np.ndarray, ntry: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-block part of ``quantize_row_iq4_nl_impl`` over rows of 32: (scale, codes)."""
    strongest = _first_strongest(x)
    zero = np.abs(strongest) < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = (-strongest / _IQ4_VALUES[0]) if ntry > 0 else (strongest / _IQ4_VALUES[0])
        inverse = F32(1) / d
        codes = _best_index(inverse[:, None] * x)
        q = _IQ4_VALUES[codes]
        wq = weights * q
        sumqx, sumq2 = _sequential_sum(wq * x), _sequential_sum(wq * q)
        d = np.where(sumq2 > 0, sumqx / sumq2, F32(0)).astype(F32)
        best = d * sumqx
        for step in range(-ntry, ntry + 1):
            inverse = F32(step + int(_IQ4_VALUES[0])) / strongest
            q = _IQ4_VALUES[_best_index(inverse[:, None] * x)]
            wq = weights * q
            sumqx, sumq2 = _sequential_sum(wq * x), _sequential_sum(wq * q)
            better = (sumq2 > 0) & (sumqx * sumqx > best * sumq2)
            d = np.where(better, sumqx / sumq2, d)
            best = np.where(better, d * sumqx, best)
    return np.where(zero, F32(0), d).astype(F32), codes


def _iq4_weights(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    """``qw * sqrtf(sigma2 + x*x)`` with ``sigma2 = 2 * sum(x*x) / n`` over the super-block, or ``x*x``."""
    if importance is None:
        return x * x
    sigma2 = _sequential_sum(x * x) * (F32(2) / F32(x.shape[1]))
    return importance * np.sqrt(sigma2[:, None] + x * x)


def _pack_iq4(codes: np.ndarray) -> np.ndarray:
    groups = codes.reshape(codes.shape[0], -1, 2, 16)
    return (groups[:, :, 0] | (groups[:, :, 1] << 4)).reshape(codes.shape[0], -1).astype(np.uint8)


def _quantize_iq4_nl(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    scale, _ = _iq4_blocks(x, _iq4_weights(x, importance), 7)
    with np.errstate(divide="ignore"):
        inverse = np.where(scale != 0, F32(1) / scale, F32(0)).astype(F32)
    codes = _best_index(inverse[:, None] * x)
    out = np.empty((x.shape[0], 18), dtype=np.uint8)
    out[:, :2] = _fp16_bytes(scale)
    out[:, 2:] = _pack_iq4(codes)
    return out


def _dequantize_iq4_nl(data: np.ndarray, out: np.ndarray) -> None:
    d = _half_field(data, 0)
    np.multiply(d, _IQ4_VALUES[data[:, 2:] & 0xF], out=out[:, :16])
    np.multiply(d, _IQ4_VALUES[data[:, 2:] >> 4], out=out[:, 16:])


def _quantize_iq4_xs(x: np.ndarray, importance: np.ndarray | None) -> np.ndarray:
    blocks = x.shape[0]
    weights = _iq4_weights(x, importance).reshape(-1, 32)
    scales, _ = _iq4_blocks(x.reshape(-1, 32), weights, 7)
    scales = scales.reshape(blocks, 8)
    strongest = _first_strongest(scales)  # the first of the largest magnitudes, 0 if all are 0
    d = (-strongest / F32(32)).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
        levels = np.clip(nearest_int(inverse[:, None] * scales), -32, 31)
        sub_d = d[:, None] * levels.astype(F32)
        sub_inverse = np.where(sub_d != 0, F32(1) / sub_d, F32(0)).astype(F32)
    codes = _best_index(sub_inverse[:, :, None] * x.reshape(blocks, 8, 32)).reshape(blocks, 256)
    stored = levels + 32
    scales_l = ((stored[:, 0::2] & 0xF) | ((stored[:, 1::2] & 0xF) << 4)).astype(np.uint8)
    scales_h = np.zeros(blocks, dtype=np.int64)
    for ib in range(8):
        scales_h |= (stored[:, ib] >> 4).astype(np.int64) << (2 * ib)
    out = np.empty((blocks, 136), dtype=np.uint8)
    out[:, :2] = _fp16_bytes(d)
    out[:, 2:4] = scales_h.astype("<u2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = scales_l
    out[:, 8:] = _pack_iq4(codes)
    return out


def _dequantize_iq4_xs(data: np.ndarray, out: np.ndarray) -> None:
    d = _half_field(data, 0)
    scales_h = data[:, 2:4].copy().view("<u2").astype(np.int32)
    scales_l = data[:, 4:8].astype(np.int32)
    levels = np.empty((data.shape[0], 8), dtype=np.int32)
    for ib in range(8):
        low = (scales_l[:, ib // 2] >> (4 * (ib % 2))) & 0xF
        levels[:, ib] = low | (((scales_h[:, 0] >> (2 * ib)) & 3) << 4)
    q = data[:, 8:].reshape(-1, 8, 16)
    codes = np.concatenate([q & 0xF, q >> 4], axis=2)
    np.multiply((d * (levels - 32).astype(F32))[:, :, None], _IQ4_VALUES[codes], out=out.reshape(-1, 8, 32))


_register("q8_k", QK_K, 292, _quantize_q8_k, _dequantize_q8_k)
_register("q2_k", QK_K, 84, _quantize_q2_k, _dequantize_q2_k)
_register("q3_k", QK_K, 110, _quantize_q3_k, _dequantize_q3_k)
_register("q4_k", QK_K, 144, _quantize_q4_k, _dequantize_q4_k)
_register("q5_k", QK_K, 176, _quantize_q5_k, _dequantize_q5_k)
_register("q6_k", QK_K, 210, _quantize_q6_k, _dequantize_q6_k)
_register("iq4_nl", 32, 18, _quantize_iq4_nl, _dequantize_iq4_nl)
_register("iq4_xs", QK_K, 136, _quantize_iq4_xs, _dequantize_iq4_xs)
_register("tq1_0", QK_K, 54, _quantize_tq1_0, _dequantize_tq1_0)
_register("tq2_0", QK_K, 66, _quantize_tq2_0, _dequantize_tq2_0)
_register("mxfp4", 32, 17, _quantize_mxfp4, _dequantize_mxfp4)
