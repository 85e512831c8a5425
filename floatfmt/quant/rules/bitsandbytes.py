"""bitsandbytes' codebook quantization: NF4 (``quantize_4bit``) and its double quantization of the scales.

Elements: ``x * (1 / absmax)`` in float32, then the codebook entry whose midpoints bracket it; a value exactly on
a midpoint goes to the lower entry (the CUDA kernel tests ``x > midpoint``) and an all-zero block gets the code
of 0.0, as ``quantize_4bit`` gives it. With ``scale_group`` the block absmaxes are themselves quantized, as
``compress_statistics=True`` does: minus their float32 mean, in groups of ``scale_group``, each group times the
float32 reciprocal of its largest magnitude and coded with the 8-bit dynamic map by the kernel's
``dQuantize`` search. The stored mean is the float32 rounding of the exact mean (torch's float32 reduction may
differ in the last bit).
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np

from floatfmt import _reference
from floatfmt._parallel import CHUNK_ELEMENTS, map_chunks
from floatfmt.formats import IntFormat, get_format
from floatfmt.quant import _kernels
from floatfmt.quant.layout import Layout, Part
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import register_rule
from floatfmt.quant.rules._blocks import Blocked, BlockRule, per_element, resolve
from floatfmt.quant.scheme import Scheme, SchemeFormats, rows_cols

__all__ = ["DYNAMIC_CODEBOOK", "NF4_CODEBOOK", "CodebookRule", "codebook_tables", "dynamic_map_search"]

# bitsandbytes get_4bit_type("nf4"): float32 quantiles of N(0, 1), normalized to [-1, 1]
NF4_CODEBOOK = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip


def _dynamic_codebook() -> tuple[float, ...]:
    """bitsandbytes ``create_dynamic_map(signed=True)``, bit for bit: for ``i`` in 0..6, the float32 midpoints of
    ``torch.linspace(0.1, 1, 2**i + 1)`` scaled by ``float32(10**(i - 6))``, both signs, then 0 and 1, sorted.

    torch's float32 ``linspace`` computes ``start + k·step`` (from the end for the upper half) with one
    rounding, as a fused multiply-add: the exact reference encoder stands in for the FMA.
    """
    float32 = get_format("float32")

    def rounded(value: Fraction) -> float:
        return float(_reference.decode(_reference.encode(value, float32), float32))

    values = [0.0, 1.0]
    for i in range(7):
        steps = 2**i + 1
        start, end = np.float32(0.1), np.float32(1.0)
        step = np.float32((end - start) / np.float32(steps - 1))
        points = np.array(
            [
                rounded(Fraction(float(start)) + Fraction(float(step)) * k)
                if k < steps // 2
                else rounded(Fraction(float(end)) - Fraction(float(step)) * (steps - 1 - k))
                for k in range(steps)
            ],
            dtype=np.float32,
        )
        means = (points[:-1] + points[1:]) / np.float32(2)
        scaled = np.float32(10.0 ** (i - 6)) * means
        values += [float(v) for v in scaled] + [-float(v) for v in scaled]
    return tuple(sorted(values))


DYNAMIC_CODEBOOK = _dynamic_codebook()
"""bitsandbytes' signed 8-bit dynamic map, the codes of double-quantized NF4 scales."""

_TABLE_KEY_WIDTH = 2.0**-7
"""The widest interval of float32s in [-1, 1] sharing their top 16 bits."""


def _check_codebook(book: tuple[float, ...] | None, size: int, what: str, scheme: Scheme) -> np.ndarray:
    if book is None:
        raise ValueError(f"scheme {scheme.name!r}: scale_rule='codebook' needs a {what}")
    values = np.asarray(book, dtype=np.float64)
    if values.ndim != 1 or not 2 <= values.size <= size:
        raise ValueError(f"scheme {scheme.name!r}: the {what} needs 2 to {size} values, got {values.size}")
    if not np.all(np.isfinite(values)) or not np.all(np.diff(values) > 0):
        raise ValueError(f"scheme {scheme.name!r}: the {what} must be finite and strictly ascending")
    if values.astype(np.float32).astype(np.float64).tolist() != values.tolist():
        raise ValueError(f"scheme {scheme.name!r}: the {what} values must be float32 numbers (bitsandbytes' are)")
    return values


class CodebookRule(BlockRule):
    name = "codebook"
    description = (
        "scale = block absmax; elements = nearest codebook entry of x * (1 / absmax), ties down (bitsandbytes)"
    )

    def check(self, scheme: Scheme) -> SchemeFormats:
        element = resolve(scheme.element, "element", scheme)
        scale = resolve(scheme.scale_format, "scale_format", scheme)
        if not isinstance(element, IntFormat) or element.signed or element.bits > 8:
            raise ValueError(f"scheme {scheme.name!r}: codebook codes need an unsigned integer element (uint4)")
        _check_codebook(scheme.codebook, 2**element.bits, "codebook", scheme)
        if scheme.zero_point is not None or scheme.tensor_scale is not None:
            raise ValueError(f"scheme {scheme.name!r}: scale_rule='codebook' has no zero point or tensor scale")
        if scheme.scale_group < 0:
            raise ValueError(f"scheme {scheme.name!r}: scale_group must be non-negative, got {scheme.scale_group}")
        if scheme.scale_group:
            _check_codebook(scheme.scale_codebook, 256, "scale_codebook of 8-bit scale codes", scheme)
        return SchemeFormats(element, scale, None, None)

    def scale_parts(self, scheme: Scheme, blocks: int) -> list[Part]:
        if not scheme.scale_group:
            return super().scale_parts(scheme, blocks)
        float32, uint8 = get_format("float32"), get_format("uint8")
        groups = -(-blocks // scheme.scale_group)
        return [
            Part("scale_mean", float32, 1, "values"),
            Part("scale_group_max", float32, groups, "values"),
            Part("scale_codes", uint8, blocks),
        ]

    # bitsandbytes blocks the flattened tensor: blocks run on across rows, and only the last one is partial

    def layout(self, scheme: Scheme, rows: int, cols: int) -> Layout:
        size = rows * cols
        flat = super().layout(scheme, 1 if size else 0, size)
        # the codes of the last, partial block are not padded: ceil(size / 2) bytes of 4-bit codes
        return replace(flat, parts=tuple(replace(p, count=size) if p.name == "codes" else p for p in flat.parts))

    def stored(self, q: QuantizedTensor) -> dict[str, np.ndarray]:
        arrays = super().stored(q)
        assert q.codes is not None
        arrays["codes"] = q.codes.reshape(-1)[: q.size]
        if q.scheme.scale_group:
            del arrays["scales"]  # stored as their double quantization, in q.extra
        return arrays

    def row_block(self, scheme: Scheme, cols: int) -> int | None:
        if scheme.scale_group:  # the scales' mean and their groups run across the whole tensor
            return None
        block = scheme.block[1]
        return block // math.gcd(block, cols) if cols else 1  # the fewest rows that hold whole blocks

    def quantize(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        importance: np.ndarray | None = None,
    ) -> QuantizedTensor:
        block = scheme.block[1]
        if matrix.size and matrix.size % block == 0:  # one block per row: rows for the threads to share
            blocks = matrix.reshape(matrix.size // block, block)
            q = super().quantize(blocks, scheme, shape=shape, tensor_amax=tensor_amax, importance=importance)
            assert q.codes is not None and q.scales is not None
            return replace(q, codes=q.codes.reshape(1, -1), scales=q.scales.reshape(1, -1))  # the flat tensor's
        flat = matrix.reshape(1 if matrix.size else 0, matrix.size)  # a partial last block: the padded row
        return super().quantize(flat, scheme, shape=shape, tensor_amax=tensor_amax, importance=importance)

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        assert q.codes is not None and q.scales is not None
        rows, cols = rows_cols(q.shape)
        block = q.scheme.block[1]  # the flattened tensor's blocks, one per row (rows for the threads to share)
        blocks = replace(q, shape=(q.codes.size // block, block), codes=q.codes.reshape(-1, block))
        blocks = replace(blocks, scales=q.scales.reshape(-1, 1))
        return super().dequantize(blocks).reshape(-1)[: rows * cols].reshape(rows, cols)

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        assert scheme.codebook is not None
        scale = self.block_amax(blocked, scheme).astype(np.float32)
        codes = blocked.scale_and_encode(scale, True, _codebook_encoder(scheme.codebook), np.uint8)
        zero_code = int(np.searchsorted(scheme.codebook, 0.0))
        codes[per_element(scale == 0, blocked.block_rows, blocked.block_cols)] = zero_code  # 0 * inf would be NaN
        if not scheme.scale_group:
            return QuantizedTensor(scheme, blocked.shape, codes, scale)
        scales, extra = _double_quantize(scale, scheme)
        return QuantizedTensor(scheme, blocked.shape, codes, scales, extra=extra)

    def element_values(self, codes: np.ndarray, scheme: Scheme) -> np.ndarray:
        assert scheme.codebook is not None
        return np.asarray(scheme.codebook, dtype=np.float32)[codes]


def _codebook_encoder(codebook: tuple[float, ...]):  # type: ignore[no-untyped-def]
    tables = codebook_tables(codebook)
    if tables is None:  # entries too close for the one-midpoint-per-key table: an exact binary search
        midpoints = _midpoints(codebook)

        def search(normalized: np.ndarray, rows: slice) -> np.ndarray:
            return np.searchsorted(midpoints, normalized, side="left").astype(np.uint8)

        return search
    base, threshold = tables

    def lookup(normalized: np.ndarray, rows: slice) -> np.ndarray:
        flat = np.ascontiguousarray(normalized).reshape(-1)
        out = np.empty(flat.size, dtype=np.uint8)
        _kernels.codebook_encode(flat, base, threshold, out)
        return out.reshape(normalized.shape)

    return lookup


def _midpoints(codebook: tuple[float, ...]) -> np.ndarray:
    book = np.asarray(codebook, dtype=np.float64)
    return ((book[1:] + book[:-1]) / 2).astype(np.float32)


@functools.lru_cache(maxsize=8)
def codebook_tables(codebook: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Per top-16-bit key of a float32: the code of the key's lowest value, and the one midpoint inside its range.

    The float32s sharing their top 16 bits form an interval at most 2**-7 wide in [-1, 1]; where that is
    narrower than every gap between two codebook midpoints, each interval holds at most one: the code of ``x``
    is ``base[key] + (x > threshold[key])`` (``+inf`` where there is none), and ``x`` equal to a midpoint goes
    down. ``None`` for a codebook whose midpoints are closer (its codes come from a binary search instead).
    """
    midpoints = _midpoints(codebook)
    if midpoints.size > 1 and not np.all(np.diff(midpoints) > _TABLE_KEY_WIDTH):
        return None
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


def _double_quantize(scale: np.ndarray, scheme: Scheme) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """bitsandbytes' double quantization of block scales: the scales it dequantizes to, and its stored arrays
    (float32 mean, float32 group maxima, 8-bit codes)."""
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
    codes = dynamic_map_search(normalized[: flat.size], book)
    decoded = book[codes] * np.repeat(group_max, group)[: flat.size] + offset
    extra = {
        "scale_mean": np.array([offset], dtype=np.float32),
        "scale_group_max": group_max.astype(np.float32),
        "scale_codes": codes,
    }
    return decoded.reshape(scale.shape), extra


def dynamic_map_search(x: np.ndarray, book: np.ndarray) -> np.ndarray:
    """bitsandbytes ``dQuantize<0>`` (csrc/kernels.cu) over arrays: a binary search of the 256-entry map in
    seven halving steps from entry 127, then the nearer of the last two entries by their float32 midpoint.
    It is not always the nearest entry, and a NaN lands on entry 0, exactly as in the kernel.

    Runs over small pieces on the package's threads: its dozens of temporaries would otherwise each be as large
    as ``x``."""
    flat = np.ascontiguousarray(x).reshape(-1)
    codes = np.empty(flat.size, dtype=np.uint8)

    def work(start: int, stop: int) -> None:
        codes[start:stop] = _search_piece(flat[start:stop], book)

    map_chunks(work, flat.size, CHUNK_ELEMENTS // 4)
    return codes.reshape(np.shape(x))


def _search_piece(x: np.ndarray, book: np.ndarray) -> np.ndarray:
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


register_rule(CodebookRule())
