"""Quantize a tensor with a scheme, dequantize it, and count the bytes it really takes.

Example:
    >>> import numpy as np, floatfmt
    >>> w = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    >>> q = floatfmt.quantize(w, "mxfp4")
    >>> q.nbytes, q.bits_per_weight                      # 4-bit codes + one E8M0 byte per 32
    (69632, 4.25)
    >>> float(np.abs(q.dequantize() - w).max()) < 1.0
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from floatfmt import _kernels
from floatfmt._kernels import row_absmax, row_max, row_min
from floatfmt.codec import _FLOAT32_EXACT_INPUTS, _map_chunks, code_dtype, decode, encode
from floatfmt.formats import FloatFormat, IntFormat, get_format
from floatfmt.packing import pack
from floatfmt.quant import gguf
from floatfmt.quant.schemes import Scheme, get_scheme

__all__ = ["QuantizedTensor", "needs_tensor_amax", "quantize", "row_block"]


@dataclass(frozen=True, repr=False)
class QuantizedTensor:
    """A tensor stored as codes and scales.

    ``codes`` has the padded 2-D shape (rows, columns rounded up to whole
    blocks; the stored bytes leave out the padding of 2-D tiles); ``scales``
    (and ``zero_points``) have one entry per block, as the values the stored
    format holds. ``data`` is the serialized bytes of GGUF
    blocks. ``scale_storage`` is the serialized scales when they are themselves
    quantized (``nf4_dq``); ``scales`` are then the values they dequantize to.
    """

    scheme: Scheme
    shape: tuple[int, ...]
    codes: np.ndarray
    scales: np.ndarray | None
    zero_points: np.ndarray | None = None
    tensor_scale: float | None = None
    data: np.ndarray | None = None
    scale_storage: bytes | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the real storage: packed codes, scales, zero points and tensor scale."""
        if self.data is not None:
            return int(self.data.nbytes)
        element_bits = get_format(self.scheme.element).bits
        total = math.ceil(self._stored_codes().size * element_bits / 8)
        if self.scale_storage is not None:
            total += len(self.scale_storage)
        elif self.scales is not None:
            total += math.ceil(self.scales.size * get_format(self.scheme.scale_format).bits / 8)
        if self.zero_points is not None and self.scheme.zero_point is not None:
            total += math.ceil(self.zero_points.size * get_format(self.scheme.zero_point).bits / 8)
        if self.tensor_scale is not None and self.scheme.tensor_scale is not None:
            total += get_format(self.scheme.tensor_scale).bits // 8
        return total

    def to_bytes(self) -> bytes:
        """The serialized storage: tensor scale, block scales, zero points, then element codes, each packed.

        GGUF types give their blocks exactly as gguf-py writes them.
        """
        if self.data is not None:
            return self.data.tobytes()
        parts = []
        if self.tensor_scale is not None and self.scheme.tensor_scale is not None:
            parts.append(_serialize(np.array([self.tensor_scale], dtype=np.float32), self.scheme.tensor_scale))
        if self.scale_storage is not None:
            parts.append(self.scale_storage)
        elif self.scales is not None:
            parts.append(_serialize(self.scales, self.scheme.scale_format))
        if self.zero_points is not None and self.scheme.zero_point is not None:
            parts.append(_serialize(self.zero_points, self.scheme.zero_point, already_codes=True))
        parts.append(_serialize(self._stored_codes(), self.scheme.element, already_codes=True))
        return b"".join(parts)

    def _stored_codes(self) -> np.ndarray:
        """The codes as stored: tiles keep the weight's own shape (see ``Scheme.tiles``), other blocks are padded."""
        if not self.scheme.tiles:
            return self.codes
        rows, cols = _rows_cols(self.shape)
        return self.codes[:rows, :cols]

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / self.size if self.size else 0.0

    def dequantize(self, dtype: Any = np.float32) -> np.ndarray:
        """The values the stored codes and scales stand for, in the original shape."""
        scheme = self.scheme
        rows, cols = _rows_cols(self.shape)
        if scheme.scale_rule == "gguf":
            kind = gguf.GGUF_TYPES[scheme.element]
            assert self.scales is not None, "GGUF blocks always have scales"
            blocks = gguf.dequantize_blocks(
                self.codes.reshape(-1, gguf.BLOCK),
                self.scales.reshape(-1, 1),
                None if self.zero_points is None else self.zero_points.reshape(-1, 1),
                kind,
            )
            return blocks.reshape(self.shape).astype(dtype, copy=False)
        values = _element_values(self.codes, scheme)  # a fresh array: scaled in place, block by block
        if self.scales is not None:
            block_rows, block_cols = _block_shape(scheme, rows, cols)
            padded_rows, padded_cols = values.shape
            tiles = values.reshape(padded_rows // block_rows, block_rows, padded_cols // block_cols, block_cols)
            if self.zero_points is not None:
                tiles -= self.zero_points.astype(np.float32)[:, None, :, None]
            tiles *= self.scales.astype(np.float32)[:, None, :, None]
        if self.tensor_scale is not None:
            values *= np.float32(self.tensor_scale)
        return values[:rows, :cols].reshape(self.shape).astype(dtype, copy=False)

    def __repr__(self) -> str:
        return (
            f"QuantizedTensor({self.scheme.name}, shape={self.shape}, {self.nbytes:,} bytes, "
            f"{self.bits_per_weight:.4g} bits/weight)"
        )


def quantize(w: Any, scheme: Scheme | str, *, tensor_amax: float | None = None, **options: Any) -> QuantizedTensor:
    """Quantize ``w`` with a scheme (a name from ``floatfmt.schemes()`` or a ``Scheme``).

    Keyword options replace fields of the scheme, e.g. ``rounding="nearest_away"``.
    ``tensor_amax`` is the largest magnitude of the whole tensor when ``w`` is a
    block of its rows: per-tensor scales (``block=(0, 0)``, NVFP4's fp32 scale)
    then come from it, so the rows quantize exactly as inside the whole tensor.
    Input is converted to float32 first, as every reference computes in float32.
    Blocks run along the last axis; leading axes are rows. Columns (and, for
    tiles, rows) that do not fill a block are padded with zeros, as the MX
    reference and DeepGEMM do; GGUF types need whole blocks, as gguf-py does.

    Raises:
        ValueError: for NaN or infinity where the scheme's reference has no rule
            for them (every scheme but the MX ones and the plain casts), or a
            row length GGUF cannot block.
    """
    chosen = get_scheme(scheme)
    if options:
        chosen = chosen.replace(**options)
    array = np.asarray(w)
    if array.dtype.kind not in "fiu" and array.dtype not in _FLOAT32_EXACT_INPUTS:
        raise TypeError(f"expected a real-valued tensor, got dtype {array.dtype}")
    values = array.astype(np.float32, copy=False)  # the references all compute in float32
    shape = tuple(int(n) for n in array.shape)
    rows, cols = _rows_cols(shape)
    matrix = values.reshape(rows, cols)
    # max and min carry NaN and infinity through without a temporary the size of the tensor
    if chosen.scale_rule not in ("mx", "cast") and matrix.size and not np.isfinite(matrix.max() - matrix.min()):
        bad = int(np.count_nonzero(~np.isfinite(matrix)))
        if bad:
            raise ValueError(
                f"the tensor has {bad} NaN or infinite values; {chosen.name}'s reference has no rule for them "
                "(MX schemes give such blocks a NaN scale): clean the tensor first"
            )
    if chosen.scale_rule == "gguf":
        return _quantize_gguf(matrix, shape, chosen)
    if chosen.scale_rule == "cast":
        codes = encode(matrix, chosen.element, rounding=chosen.rounding, nan="ml_dtypes")
        return QuantizedTensor(chosen, shape, codes, None)
    block_rows, block_cols = _block_shape(chosen, rows, cols)
    padded = _pad(matrix, block_rows, block_cols)
    rule = chosen.scale_rule
    if tensor_amax is not None and not needs_tensor_amax(chosen):
        raise ValueError(f"{chosen.name} has no per-tensor scale for tensor_amax to set")
    if rule == "minmax":
        return _quantize_minmax(padded, shape, chosen, block_rows, block_cols)
    amax = _block_reduce(padded, block_rows, block_cols, np.max, absolute=True)
    if tensor_amax is not None and chosen.block == (0, 0):
        amax = np.full_like(amax, np.float32(tensor_amax))
    if rule == "codebook":
        return _quantize_codebook(padded, amax, shape, chosen, block_rows, block_cols)
    tensor_scale = None
    if rule == "mx":
        scales, divisor = _mx_scales(amax, chosen)
    elif rule == "nvfp4":
        tensor_scale, scales, divisor = _nvfp4_scales(amax, chosen, tensor_amax)
    else:
        scales, divisor = _amax_scales(amax, chosen)
    element = get_format(chosen.element)
    fixed_point = rule == "mx" and isinstance(element, IntFormat)  # MXINT8 elements are 1.6 fixed point: code / 64

    def to_codes(scaled: np.ndarray, rows: slice) -> np.ndarray:
        if fixed_point:
            scaled *= np.float32(64)
        return encode(scaled, element, rounding=chosen.rounding, overflow="saturate", nan="ml_dtypes")

    # MX scales are powers of two: multiplying by the reciprocal is the same single rounding as dividing.
    reciprocal = rule.endswith("reciprocal") or rule == "mx"
    codes = _scale_and_encode(padded, divisor, block_rows, block_cols, reciprocal, to_codes, element)
    return QuantizedTensor(chosen, shape, codes, scales, tensor_scale=tensor_scale)


def needs_tensor_amax(scheme: Scheme) -> bool:
    """Whether the scheme's scales depend on the whole tensor's largest magnitude (and on nothing else global).

    Such a tensor can be quantized in blocks of rows given ``tensor_amax``; per-tensor
    min/max (asymmetric) schemes and column-spanning blocks cannot.
    """
    per_tensor = scheme.block == (0, 0) and scheme.scale_rule not in ("minmax", "gguf", "cast")
    return per_tensor or scheme.tensor_scale is not None


def row_block(scheme: Scheme) -> int | None:
    """Rows a quantization block spans, so a tensor can be cut into independent blocks of that many rows
    (given ``tensor_amax`` where :func:`needs_tensor_amax`); ``None`` when it needs the whole tensor at once."""
    if scheme.scale_group:  # the scales' mean and their groups run across the whole tensor
        return None
    if scheme.scale_rule == "cast" or needs_tensor_amax(scheme):
        return scheme.block[0] or 1
    return scheme.block[0] or None


# --- scale rules ----------------------------------------------------------------------------


def _amax_scales(amax: np.ndarray, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """Stored scales and the float32 divisor each block's elements were scaled by."""
    element_max = np.float32(_element_max(scheme))
    if scheme.scale_rule in ("amax_reciprocal", "pow2_ceil_reciprocal"):
        amax = np.maximum(amax, np.float32(1e-4))  # DeepGEMM clamps the block amax
    scale = amax / element_max
    if scheme.scale_rule == "pow2_ceil_reciprocal":
        scale = np.exp2(np.ceil(np.log2(scale))).astype(np.float32)
    stored = _store(scale, scheme.scale_format)
    return stored, stored  # elements are scaled by the scale as stored


def _mx_scales(amax: np.ndarray, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """OCP MX: shared exponent floor(log2(amax)) - element emax, in [-127, 127], NaN beyond (microxcaling)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log2(np.where(amax == 0, np.float32(2.0**-126), amax)))
    element = get_format(scheme.element)
    emax = 0 if isinstance(element, IntFormat) else element.maxexp - 1
    exponent = exponent - emax
    exponent = np.where(exponent < -127, -127, exponent)
    exponent = np.where((exponent > 127) | np.isnan(exponent), np.nan, exponent)
    scale = np.exp2(exponent).astype(np.float32)
    return scale, scale


def _nvfp4_scales(amax: np.ndarray, scheme: Scheme, tensor_amax: float | None) -> tuple[float, np.ndarray, np.ndarray]:
    """ModelOpt NVFP4QTensor: fp32 ``scale_2 = amax / (6 * 448)`` (1 if 0), E4M3 ``block amax / (6 * scale_2)``
    (1.0 for an all-zero block), elements ``x / (block scale * scale_2)`` rounded half to even and saturated."""
    element_max, scale_max = np.float32(_element_max(scheme)), np.float32(get_format(scheme.scale_format).max)
    if tensor_amax is not None:
        global_amax = np.float32(tensor_amax)
    else:
        global_amax = np.float32(amax.max()) if amax.size else np.float32(0)
    tensor_scale = global_amax / (element_max * scale_max) if global_amax else np.float32(1)
    block_scale = amax / (element_max * tensor_scale)
    block_scale[block_scale == 0] = 1  # ModelOpt stores 1.0 for an all-zero block
    block_scale = _store(block_scale, scheme.scale_format)
    divisor = block_scale * tensor_scale
    return float(tensor_scale), block_scale, divisor


def _quantize_minmax(
    padded: np.ndarray, shape: tuple[int, ...], scheme: Scheme, block_rows: int, block_cols: int
) -> QuantizedTensor:
    """GPTQ's asymmetric rule: the range always holds 0; zero point round(-min / scale); codes clamp(round(x/s) + z)."""
    maximum_code = get_format(scheme.element).max
    low = np.minimum(_block_reduce(padded, block_rows, block_cols, np.min), 0)
    high = np.maximum(_block_reduce(padded, block_rows, block_cols, np.max), 0)
    empty = (low == 0) & (high == 0)
    low, high = np.where(empty, -1, low), np.where(empty, 1, high)
    scale = ((high - low) / np.float32(maximum_code)).astype(np.float32)
    zero = np.rint(-low / scale)
    zero_rows = np.repeat(zero, block_rows, axis=0)

    def to_codes(scaled: np.ndarray, rows: slice) -> np.ndarray:
        steps = np.rint(scaled, out=scaled).reshape(scaled.shape[0], -1, block_cols)
        steps += zero_rows[rows][:, :, None]
        np.clip(steps, 0, maximum_code, out=steps)
        return steps.reshape(scaled.shape).astype(np.uint8)

    codes = _scale_and_encode(padded, scale, block_rows, block_cols, False, to_codes, get_format(scheme.element))
    return QuantizedTensor(scheme, shape, codes, _store(scale, scheme.scale_format), zero_points=zero.astype(np.uint8))


def _quantize_codebook(
    padded: np.ndarray, amax: np.ndarray, shape: tuple[int, ...], scheme: Scheme, block_rows: int, block_cols: int
) -> QuantizedTensor:
    """bitsandbytes NF4: x * (1 / absmax) in float32, then the codebook entry whose midpoints bracket it.

    A value exactly on a midpoint goes to the lower entry (the kernel tests ``x > midpoint``); an all-zero
    block gets the code of 0.0, as bitsandbytes' ``quantize_4bit`` gives it.
    """
    assert scheme.codebook is not None
    base, threshold = _codebook_tables(scheme.codebook)
    scale = amax.astype(np.float32)

    def to_codes(normalized: np.ndarray, rows: slice) -> np.ndarray:
        return _kernels.codebook_encode(normalized, base, threshold)

    codes = _scale_and_encode(padded, scale, block_rows, block_cols, True, to_codes, get_format(scheme.element))
    zero_code = int(np.searchsorted(scheme.codebook, 0.0))
    codes[_per_element(scale == 0, block_rows, block_cols)] = zero_code  # 0 * inf would be NaN
    if not scheme.scale_group:
        return QuantizedTensor(scheme, shape, codes, scale)
    stored_scale, stored = _double_quantize(scale, scheme)
    return QuantizedTensor(scheme, shape, codes, stored_scale, scale_storage=stored)


def _double_quantize(scale: np.ndarray, scheme: Scheme) -> tuple[np.ndarray, bytes]:
    """bitsandbytes' double quantization of block scales: the scales it dequantizes to, and their storage
    (float32 mean, float32 group maxima, 8-bit codes).

    ``quantize_4bit(compress_statistics=True)`` subtracts the scales' mean and quantizes them with
    ``quantize_blockwise(blocksize=256)``: each group of 256 is multiplied by the float32 reciprocal of its
    largest magnitude and coded by ``dQuantize``'s seven-step search of the dynamic map (its CUDA kernel).
    The mean is the float32 rounding of the exact mean; torch's float32 reduction may differ in the last bit.
    """
    assert scheme.scale_codebook is not None
    book = np.asarray(scheme.scale_codebook, dtype=np.float32)
    flat = scale.reshape(-1)
    offset = np.float32(flat.astype(np.float64).mean()) if flat.size else np.float32(0)
    centered = flat - offset
    group = scheme.scale_group
    groups = -(-flat.size // group)
    padded = np.zeros(groups * group, dtype=np.float32)
    padded[: flat.size] = centered
    group_max = np.max(np.abs(padded.reshape(groups, group)), axis=1, initial=np.float32(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = (padded.reshape(groups, group) * (np.float32(1) / group_max)[:, None]).reshape(-1)
    codes = _bnb_search(normalized[: flat.size], book)
    decoded = book[codes] * np.repeat(group_max, group)[: flat.size] + offset
    stored = np.float32(offset).tobytes() + group_max.astype("<f4").tobytes() + codes.tobytes()
    return decoded.reshape(scale.shape), stored


def _bnb_search(x: np.ndarray, book: np.ndarray) -> np.ndarray:
    """bitsandbytes ``dQuantize<0>`` (csrc/kernels.cu) over arrays: a binary search of the 256-entry map in
    seven halving steps from entry 127, then the nearer of the last two entries by their float32 midpoint.
    It is not always the nearest entry, and a NaN lands on entry 0, exactly as in the kernel.

    Runs over cache-sized pieces on the codec's threads: its dozens of temporaries would otherwise each be
    as large as ``x``."""
    flat = np.ascontiguousarray(x).reshape(-1)
    codes = np.empty(flat.size, dtype=np.uint8)

    def work(start: int, stop: int) -> None:
        codes[start:stop] = _bnb_search_piece(flat[start:stop], book)

    _map_chunks(work, flat.size, chunk=1 << 14)
    return codes.reshape(np.shape(x))


def _bnb_search_piece(x: np.ndarray, book: np.ndarray) -> np.ndarray:
    pivot = np.full(x.shape, 127, dtype=np.intp)
    lower_pivot, upper_pivot = np.zeros_like(pivot), np.full_like(pivot, 255)
    lower, upper = np.full(x.shape, -1, np.float32), np.ones(x.shape, np.float32)
    value = book[pivot]
    for step in (64, 32, 16, 8, 4, 2, 1):
        right = x > value
        lower_pivot = np.where(right, pivot, lower_pivot)
        lower = np.where(right, value, lower)
        upper_pivot = np.where(right, upper_pivot, pivot)
        upper = np.where(right, upper, value)
        pivot = pivot + np.where(right, step, -step)
        value = book[pivot]
    upper = np.where(upper_pivot == 255, book[255], upper)
    lower = np.where(lower_pivot == 0, book[0], lower)
    right = x > value
    half = np.float32(0.5)
    above = np.where(x > (upper + value) * half, upper_pivot, pivot)
    below = np.where(x < (lower + value) * half, lower_pivot, pivot)
    return np.where(right, above, below).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _codebook_tables(codebook: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per top-16-bit key of a float32: the code of the key's lowest value, and the one midpoint inside its range.

    The float32s sharing their top 16 bits form an interval at most 2**-7 wide in [-1, 1], narrower than any
    gap between two codebook midpoints, so each holds at most one: the code of ``x`` is
    ``base[key] + (x > threshold[key])`` (``+inf`` where there is none), and ``x`` equal to a midpoint goes down.
    """
    book = np.asarray(codebook, dtype=np.float64)
    midpoints = ((book[1:] + book[:-1]) / 2).astype(np.float32)
    assert np.all(np.diff(midpoints) > 2.0**-7), "midpoints closer than a top-16-bit interval"
    keys = np.arange(2**16, dtype=np.uint32)
    negative = keys >= 0x8000
    low_half = np.where(negative, np.uint32(0xFFFF), np.uint32(0))  # negative values grow downward in their bits
    lowest = ((keys << np.uint32(16)) | low_half).view(np.float32)
    highest = ((keys << np.uint32(16)) | (low_half ^ np.uint32(0xFFFF))).view(np.float32)
    with np.errstate(invalid="ignore"):
        base = np.searchsorted(midpoints, lowest, side="left").astype(np.uint8)
        inside = np.searchsorted(midpoints, highest, side="left") > base  # a midpoint in (lowest, highest]
    threshold = np.full(keys.size, np.inf, dtype=np.float32)
    threshold[inside] = midpoints[base[inside]]
    base[np.isnan(lowest)] = 0  # NaN (0 * inf in an all-zero block) is recoded afterwards
    return base, threshold


def _quantize_gguf(matrix: np.ndarray, shape: tuple[int, ...], scheme: Scheme) -> QuantizedTensor:
    rows, cols = matrix.shape
    if cols % gguf.BLOCK:
        raise ValueError(f"{scheme.name} needs rows of whole 32-weight blocks, but rows have {cols} weights")
    kind = gguf.GGUF_TYPES[scheme.element]
    data, codes, scales, minimums = gguf.quantize_blocks(matrix.reshape(-1, gguf.BLOCK), kind)
    return QuantizedTensor(
        scheme,
        shape,
        codes.reshape(rows, cols),
        scales.reshape(rows, cols // gguf.BLOCK),
        None if minimums is None else minimums.reshape(rows, cols // gguf.BLOCK),
        data=data.reshape(rows, cols // gguf.BLOCK * kind.block_bytes),
    )


# --- helpers ---------------------------------------------------------------------------------


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def _block_shape(scheme: Scheme, rows: int, cols: int) -> tuple[int, int]:
    block_rows, block_cols = scheme.block
    return (block_rows or max(rows, 1)), (block_cols or max(cols, 1))


def _pad(matrix: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    rows, cols = matrix.shape
    padded_rows, padded_cols = -(-rows // block_rows) * block_rows, -(-cols // block_cols) * block_cols
    if (padded_rows, padded_cols) == (rows, cols):
        return matrix
    padded = np.zeros((padded_rows, padded_cols), dtype=np.float32)
    padded[:rows, :cols] = matrix
    return padded


def _per_element(per_block: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """Spread one value per block over the block's elements."""
    return np.repeat(np.repeat(per_block, block_rows, axis=0), block_cols, axis=1)


_ROWS_ELEMENTS = 1 << 16
"""Elements per chunk of rows: a chunk and its temporaries stay in L2."""


def _row_chunk(cols: int) -> int:
    return max(1, _ROWS_ELEMENTS // max(cols, 1))


def _block_reduce(
    padded: np.ndarray, block_rows: int, block_cols: int, reduce: Any, absolute: bool = False
) -> np.ndarray:
    """``reduce`` (np.max or np.min) of each block, of ``|x|`` if ``absolute``: one value per block.

    Each row's column blocks are reduced by pairwise halving in cache-sized chunks of rows on the codec's
    threads; the rows of a block are then reduced together, which is cheap.
    """
    rows, cols = padded.shape
    column_blocks = cols // block_cols
    per_row = np.empty((rows, column_blocks), dtype=np.float32)
    row_reduce = row_absmax if absolute else row_max if reduce is np.max else row_min

    def work(start: int, stop: int) -> None:
        part = padded[start:stop]
        per_row[start:stop] = row_reduce(part.reshape(stop - start, column_blocks, block_cols))[..., 0]

    _map_chunks(work, rows, chunk=_row_chunk(cols))
    if rows == 0:
        return np.zeros((0, column_blocks), dtype=np.float32)
    return reduce(per_row.reshape(rows // block_rows, block_rows, column_blocks), axis=1)


def _scale_and_encode(
    padded: np.ndarray,
    divisor: np.ndarray,
    block_rows: int,
    block_cols: int,
    reciprocal: bool,
    to_codes: Callable[[np.ndarray, slice], np.ndarray],
    element: Any,
) -> np.ndarray:
    """Divide each block by its divisor (or multiply by its float32 reciprocal), then ``to_codes``, in row chunks."""
    rows, cols = padded.shape
    column_blocks = cols // block_cols
    codes = np.empty((rows, cols), dtype=code_dtype(element))
    divisor_rows = np.repeat(divisor.astype(np.float32), block_rows, axis=0)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor_rows = np.float32(1) / divisor_rows if reciprocal else None

    def work(start: int, stop: int) -> None:
        part = padded[start:stop].reshape(stop - start, column_blocks, block_cols)
        if factor_rows is not None:
            scaled = part * factor_rows[start:stop]
        else:
            divisor = divisor_rows[start:stop]
            if (divisor == 0).any():  # only all-zero blocks have one; their elements are 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    scaled = np.where(divisor == 0, np.float32(0), part / divisor)
            else:
                scaled = part / divisor
        codes[start:stop] = to_codes(
            scaled.reshape(stop - start, cols).astype(np.float32, copy=False), slice(start, stop)
        )

    _map_chunks(work, rows, chunk=_row_chunk(cols))
    return codes


def _element_max(scheme: Scheme) -> float:
    return float(get_format(scheme.element).max)


def _element_values(codes: np.ndarray, scheme: Scheme) -> np.ndarray:
    if scheme.codebook is not None:
        return np.asarray(scheme.codebook, dtype=np.float32)[codes]
    element = get_format(scheme.element)
    values = decode(codes, element, dtype=np.float32)
    if scheme.scale_rule == "mx" and isinstance(element, IntFormat):
        values = values / np.float32(64)
    return values


def _serialize(values: np.ndarray, format_name: str, already_codes: bool = False) -> bytes:
    """Codes of ``values`` in a format, packed below a byte, little-endian above."""
    fmt = get_format(format_name)
    codes = values if already_codes else encode(values.astype(np.float32), fmt, nan="ml_dtypes")
    if fmt.bits < 8:
        return pack(codes, fmt).tobytes()
    return np.asarray(codes).astype(code_dtype(fmt).newbyteorder("<")).tobytes()


def _store(scale: np.ndarray, scale_format: str) -> np.ndarray:
    """Scales as the stored format holds them (rounded to nearest, saturated), as float32 values."""
    fmt = get_format(scale_format)
    if isinstance(fmt, FloatFormat) and fmt.name == "float32":
        return scale.astype(np.float32)
    codes = encode(scale.astype(np.float32), fmt, overflow="saturate", nan="ml_dtypes")
    return decode(codes, fmt, dtype=np.float32)
