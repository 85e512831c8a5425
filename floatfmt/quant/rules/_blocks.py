"""What the block-scaled rules share: padding to whole blocks, block reductions, scaling and encoding in
cache-sized row chunks, and :class:`BlockRule`, the layout and dequantization of codes with one scale (and zero
point) per block.

A block rule's tensor stores, in ``to_bytes()`` order: the per-tensor scale (if the scheme has one), the block
scales, the zero points (if any), then the element codes of the padded blocks (of the tensor itself for 2-D
tiles, whose partial-tile padding checkpoints leave out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from floatfmt._parallel import CHUNK_ELEMENTS, map_chunks
from floatfmt.codec import decode, encode
from floatfmt.formats import FloatFormat, Format, get_format
from floatfmt.quant import _kernels
from floatfmt.quant.layout import Layout, Part
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import ScaleRule
from floatfmt.quant.scheme import Scheme, SchemeFormats, rows_cols

__all__ = [
    "BlockRule",
    "Blocked",
    "block_reduce",
    "block_shape",
    "pad",
    "per_element",
    "resolve",
    "scale_and_encode",
    "store",
]


def resolve(name: str | None, what: str, scheme: Scheme) -> Format | None:
    """A format named by a scheme's field, or ``None``; the error names the scheme and the field."""
    if name is None:
        return None
    try:
        return get_format(name)
    except ValueError as error:
        raise ValueError(f"scheme {scheme.name!r}: {what} {error}") from None


def block_shape(scheme: Scheme, rows: int, cols: int) -> tuple[int, int]:
    """The block of a ``rows × cols`` tensor, 0 in the scheme meaning the whole axis."""
    block_rows, block_cols = scheme.block
    return (block_rows or max(rows, 1)), (block_cols or max(cols, 1))


def pad(matrix: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """``matrix`` with zero rows and columns appended up to whole blocks (itself when they already are)."""
    rows, cols = matrix.shape
    padded_rows, padded_cols = -(-rows // block_rows) * block_rows, -(-cols // block_cols) * block_cols
    if (padded_rows, padded_cols) == (rows, cols):
        return matrix
    padded = np.zeros((padded_rows, padded_cols), dtype=np.float32)
    padded[:rows, :cols] = matrix
    return padded


def per_element(per_block: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """Spread one value per block over the block's elements."""
    return np.repeat(np.repeat(per_block, block_rows, axis=0), block_cols, axis=1)


def _row_chunk(cols: int) -> int:
    """Rows per chunk: a chunk of rows and its temporaries stay in L2."""
    return max(1, CHUNK_ELEMENTS // max(cols, 1))


_REDUCTIONS = {"absmax": _kernels.rows_absmax, "max": _kernels.rows_max, "min": _kernels.rows_min}


def block_reduce(padded: np.ndarray, block_rows: int, block_cols: int, kind: str) -> np.ndarray:
    """The ``absmax``, ``max`` or ``min`` of each block of a padded matrix: one value per block.

    Each row's column blocks are reduced in cache-sized chunks of rows on the package's threads; the rows of a
    block are then reduced together, which is cheap.
    """
    rows, cols = padded.shape
    column_blocks = cols // block_cols
    per_row = np.empty((rows, column_blocks), dtype=np.float32)
    loop = _REDUCTIONS[kind]

    def work(start: int, stop: int) -> None:
        part = np.ascontiguousarray(padded[start:stop]).reshape(-1, block_cols)
        loop(part, per_row[start:stop].reshape(-1))

    if per_row.size:
        map_chunks(work, rows, _row_chunk(cols), item_elements=cols)
    if rows == 0:
        return np.zeros((0, column_blocks), dtype=np.float32)
    combine = np.min if kind == "min" else np.max
    return combine(per_row.reshape(rows // block_rows, block_rows, column_blocks), axis=1)


def scale_and_encode(
    padded: np.ndarray,
    divisor: np.ndarray,
    block_rows: int,
    block_cols: int,
    reciprocal: bool,
    to_codes: Callable[[np.ndarray, slice], np.ndarray],
    codes_dtype: Any,
    *,
    factors: np.ndarray | None = None,
) -> np.ndarray:
    """Divide each block by its divisor (or multiply by its float32 reciprocal), then ``to_codes``, in row chunks.

    ``factors``, when given, are what each block is multiplied by instead (a tool's own reciprocal arithmetic).
    A zero divisor (only all-zero blocks have one) scales its elements to 0.
    """
    rows, cols = padded.shape
    column_blocks = cols // block_cols
    codes = np.empty((rows, cols), dtype=codes_dtype)
    divisor_rows = np.repeat(divisor.astype(np.float32), block_rows, axis=0)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor_rows = np.where(divisor_rows == 0, np.float32(0), np.float32(1) / divisor_rows) if reciprocal else None
    if factors is not None:
        factor_rows = np.repeat(factors.astype(np.float32), block_rows, axis=0)[:, :, None]

    def work(start: int, stop: int) -> None:
        part = padded[start:stop].reshape(stop - start, column_blocks, block_cols)
        if factor_rows is not None:
            scaled = part * factor_rows[start:stop]
        else:
            divisor = divisor_rows[start:stop]
            if (divisor == 0).any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    scaled = np.where(divisor == 0, np.float32(0), part / divisor)
            else:
                scaled = part / divisor
        codes[start:stop] = to_codes(
            scaled.reshape(stop - start, cols).astype(np.float32, copy=False), slice(start, stop)
        )

    map_chunks(work, rows, _row_chunk(cols), item_elements=cols)
    return codes


def store(scale: np.ndarray, fmt: Format) -> np.ndarray:
    """Scales as the stored format holds them (rounded to nearest, saturated), as float32 values."""
    if isinstance(fmt, FloatFormat) and fmt.name == "float32":
        return scale.astype(np.float32)
    codes = encode(scale.astype(np.float32), fmt, overflow="saturate", nan="ml_dtypes")
    return decode(codes, fmt, dtype=np.float32)


@dataclass(frozen=True)
class Blocked:
    """A matrix padded to whole blocks, and what a rule needs to know about it."""

    padded: np.ndarray
    shape: tuple[int, ...]
    """The tensor's own shape."""
    block_rows: int
    block_cols: int
    tensor_amax: float | None
    """The whole tensor's largest magnitude, when the matrix is a block of its rows (see ``uses_tensor_amax``)."""

    def reduce(self, kind: str) -> np.ndarray:
        """The ``absmax``, ``max`` or ``min`` of each block."""
        return block_reduce(self.padded, self.block_rows, self.block_cols, kind)

    def scale_and_encode(
        self,
        divisor: np.ndarray,
        reciprocal: bool,
        to_codes: Callable[[np.ndarray, slice], np.ndarray],
        codes_dtype: Any,
        *,
        factors: np.ndarray | None = None,
    ) -> np.ndarray:
        """:func:`scale_and_encode` of this matrix."""
        return scale_and_encode(
            self.padded, divisor, self.block_rows, self.block_cols, reciprocal, to_codes, codes_dtype, factors=factors
        )


class BlockRule(ScaleRule):
    """A rule whose tensors store element codes with one scale per block (and maybe a zero point per block
    and a per-tensor scale). Subclasses implement :meth:`quantize_blocks` and, where the elements are not
    plain codes of the element format, :meth:`element_values`."""

    def check(self, scheme: Scheme) -> SchemeFormats:
        element = resolve(scheme.element, "element", scheme)
        scale = resolve(scheme.scale_format, "scale_format", scheme)
        zero_point = resolve(scheme.zero_point, "zero_point", scheme)
        tensor_scale = resolve(scheme.tensor_scale, "tensor_scale", scheme)
        if scheme.codebook is not None or scheme.scale_group or scheme.scale_codebook is not None:
            raise ValueError(
                f"scheme {scheme.name!r}: codebook, scale_group and scale_codebook belong to scale_rule='codebook'"
            )
        return SchemeFormats(element, scale, zero_point, tensor_scale)

    # --- layout ----------------------------------------------------------------------------------------

    def scale_parts(self, scheme: Scheme, blocks: int) -> list[Part]:
        """The parts that store the block scales."""
        assert scheme.formats.scale is not None
        return [Part("scales", scheme.formats.scale, blocks, "values")]

    def layout(self, scheme: Scheme, rows: int, cols: int) -> Layout:
        formats = scheme.formats
        assert formats.element is not None
        block_rows, block_cols = block_shape(scheme, rows, cols)
        blocks = -(-rows // block_rows) * -(-cols // block_cols)
        stored = rows * cols if scheme.tiles else blocks * block_rows * block_cols
        parts: list[Part] = []
        if formats.tensor_scale is not None:
            parts.append(Part("tensor_scale", formats.tensor_scale, 1, "values"))
        parts += self.scale_parts(scheme, blocks)
        if formats.zero_point is not None:
            parts.append(Part("zero_points", formats.zero_point, blocks))
        parts.append(Part("codes", formats.element, stored))
        return Layout(rows * cols, formats.element.bits, tuple(parts))

    def stored(self, q: QuantizedTensor) -> dict[str, np.ndarray]:
        assert q.codes is not None
        codes = q.codes
        if q.scheme.tiles:
            rows, cols = rows_cols(q.shape)
            codes = codes[:rows, :cols]
        arrays = {"codes": codes}
        if q.scales is not None:
            arrays["scales"] = q.scales
        if q.zero_points is not None:
            arrays["zero_points"] = q.zero_points
        if q.tensor_scale is not None:
            arrays["tensor_scale"] = np.array([q.tensor_scale], dtype=np.float32)
        return {**arrays, **q.extra}

    # --- quantizing --------------------------------------------------------------------------------------

    def uses_tensor_amax(self, scheme: Scheme) -> bool:
        return scheme.block == (0, 0)

    def row_block(self, scheme: Scheme, cols: int) -> int | None:
        if self.uses_tensor_amax(scheme):
            return scheme.block[0] or 1
        return scheme.block[0] or None

    def quantize(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        importance: np.ndarray | None = None,
    ) -> QuantizedTensor:
        rows, cols = matrix.shape
        block_rows, block_cols = block_shape(scheme, rows, cols)
        blocked = Blocked(pad(matrix, block_rows, block_cols), shape, block_rows, block_cols, tensor_amax)
        return self.quantize_blocks(blocked, scheme)

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        """Quantize a matrix padded to whole blocks."""
        raise NotImplementedError

    def block_amax(self, blocked: Blocked, scheme: Scheme) -> np.ndarray:
        """Each block's largest magnitude; for per-tensor scales, the whole tensor's (``tensor_amax`` if given)."""
        amax = blocked.reduce("absmax")
        if blocked.tensor_amax is not None and scheme.block == (0, 0):
            amax = np.full_like(amax, np.float32(blocked.tensor_amax))
        return amax

    def encode_elements(self, scheme: Scheme) -> Callable[[np.ndarray, slice], np.ndarray]:
        """Scaled values to element codes: the scheme's rounding, saturating at the element's range."""
        element, rounding = scheme.formats.element, scheme.rounding
        assert element is not None

        def to_codes(scaled: np.ndarray, rows: slice) -> np.ndarray:
            return encode(scaled, element, rounding=rounding, overflow="saturate", nan="ml_dtypes")

        return to_codes

    # --- dequantizing ------------------------------------------------------------------------------------

    def element_values(self, codes: np.ndarray, scheme: Scheme) -> np.ndarray:
        """A fresh float32 array of what each element code stands for, before scaling."""
        assert scheme.formats.element is not None
        return decode(codes, scheme.formats.element, dtype=np.float32)

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        assert q.codes is not None
        rows, cols = rows_cols(q.shape)
        values = self.element_values(q.codes, q.scheme)  # a fresh array: scaled in place, block by block
        if q.scales is not None:
            block_rows, block_cols = block_shape(q.scheme, rows, cols)
            padded_rows, padded_cols = values.shape
            tiles = values.reshape(padded_rows // block_rows, block_rows, padded_cols // block_cols, block_cols)
            if q.zero_points is not None:
                tiles -= q.zero_points.astype(np.float32)[:, None, :, None]
            tiles *= q.scales.astype(np.float32)[:, None, :, None]
        if q.tensor_scale is not None:
            values *= np.float32(q.tensor_scale)
        return values[:rows, :cols]


def element_max(scheme: Scheme) -> np.float32:
    """The largest element value, as float32."""
    element = scheme.formats.element
    assert element is not None
    return np.float32(element.max)
