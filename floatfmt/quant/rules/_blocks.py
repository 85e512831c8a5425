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

from floatfmt._parallel import CHUNK_ELEMENTS, DEQUANTIZE_CHUNK_ELEMENTS, map_chunks, scratch
from floatfmt.codec import code_dtype, decode, encode
from floatfmt.formats import FloatFormat, Format, IntFormat, get_format
from floatfmt.quant import _kernels
from floatfmt.quant.layout import Layout, Part
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import ScaleRule
from floatfmt.quant.scheme import Scheme, SchemeFormats, rows_cols

__all__ = [
    "BlockEncoding",
    "BlockRule",
    "Blocked",
    "ElementRounding",
    "block_reduce",
    "block_shape",
    "pad",
    "per_element",
    "resolve",
    "scale_and_encode",
    "element_rounding",
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


_SCALED = 24
"""The per-thread buffer (``floatfmt._parallel.scratch`` slot) a chunk's scaled values go into."""


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
        # into this thread's buffer: a fresh chunk-sized array costs page faults, which do not scale with threads
        scaled = scratch(_SCALED, part.size, np.float32).reshape(part.shape)
        if factor_rows is not None:
            np.multiply(part, factor_rows[start:stop], out=scaled)
        else:
            divisor = divisor_rows[start:stop]
            zero = divisor == 0
            if zero.any():  # only all-zero blocks have a zero divisor: their elements scale to 0
                with np.errstate(divide="ignore", invalid="ignore"):
                    np.divide(part, divisor, out=scaled)
                np.copyto(scaled, np.float32(0), where=np.broadcast_to(zero, scaled.shape))
            else:
                np.divide(part, divisor, out=scaled)
        codes[start:stop] = to_codes(scaled.reshape(stop - start, cols), slice(start, stop))

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


@dataclass(frozen=True)
class BlockEncoding:
    """What a block rule computes from the blocks before it encodes the elements: each block's ``divisor`` (the
    elements are ``x / divisor``, or ``x * (1 / divisor)`` in float32 where ``reciprocal``, or ``x * factors``
    where a tool computes its own factors), and what the tensor stores beside the codes."""

    divisor: np.ndarray
    reciprocal: bool
    scales: np.ndarray | None
    factors: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    tensor_scale: float | None = None

    def multipliers(self) -> np.ndarray | None:
        """What each block's elements are multiplied by, or ``None`` where they are divided."""
        if self.factors is not None:
            return self.factors.astype(np.float32)
        if not self.reciprocal:
            return None
        divisor = self.divisor.astype(np.float32)
        with np.errstate(divide="ignore"):
            return np.where(divisor == 0, np.float32(0), np.float32(1) / divisor)


@dataclass(frozen=True)
class ElementRounding:
    """An element format's round-to-nearest-even with saturation as float32 arithmetic (see
    :func:`floatfmt.quant._kernels.block_roundtrip`)."""

    integer: bool
    shift: int
    smallest_normal: np.float32
    magic: np.float32
    largest: np.float32
    smallest: np.float32
    positive_zero: bool

    def replace_zero(self, positive_zero: bool) -> ElementRounding:
        return ElementRounding(self.integer, self.shift, self.smallest_normal, self.magic, self.largest,
                               self.smallest, positive_zero)  # fmt: skip


def element_rounding(scheme: Scheme) -> ElementRounding | None:
    """The scheme's element rounding as arithmetic, where encoding then decoding is exactly that: nearest-even
    rounding, saturating at the largest value, for integers of at most 24 bits and for signed floats with zero
    and subnormals whose values float32 holds (``None`` otherwise)."""
    element = scheme.formats.element
    if scheme.rounding != "nearest_even":
        return None
    if isinstance(element, IntFormat):
        if element.bits > 24:
            return None
        zero = np.float32(0)
        return ElementRounding(True, 1, zero, zero, np.float32(element.max), np.float32(element.min), True)
    if not isinstance(element, FloatFormat):
        return None
    regular = element.signed and element.zero and element.subnormals and element.nan != "negative_zero"
    if not regular or not 1 <= element.mantissa_bits <= 22 or element.smallest_subnormal < 2.0**-149:
        return None
    if element.max > float(np.finfo(np.float32).max):
        return None
    magic = np.float32(2.0 ** (element.minexp - element.mantissa_bits + 23))  # float32 spacing: the subnormal step
    return ElementRounding(False, 23 - element.mantissa_bits, np.float32(element.smallest_normal), magic,
                           np.float32(element.max), np.float32(-element.max), False)  # fmt: skip


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

    def encoding(self, blocked: Blocked, scheme: Scheme) -> BlockEncoding | None:
        """The blocks' divisors and what the tensor stores beside the codes; ``None`` for a rule that writes its
        own :meth:`quantize_blocks` (and so has no fused :meth:`approximate`)."""
        return None

    def quantize_blocks(self, blocked: Blocked, scheme: Scheme) -> QuantizedTensor:
        """Quantize a matrix padded to whole blocks: the :meth:`encoding`'s scaling, then :meth:`encode_elements`."""
        encoding = self.encoding(blocked, scheme)
        if encoding is None:
            raise NotImplementedError(f"{type(self).__name__} implements neither encoding nor quantize_blocks")
        return self._encode_blocks(blocked, scheme, encoding)

    def _encode_blocks(self, blocked: Blocked, scheme: Scheme, encoding: BlockEncoding) -> QuantizedTensor:
        assert scheme.formats.element is not None
        codes = blocked.scale_and_encode(
            encoding.divisor, encoding.reciprocal, self.encode_elements(scheme), code_dtype(scheme.formats.element),
            factors=encoding.factors,
        )  # fmt: skip
        return QuantizedTensor(scheme, blocked.shape, codes, encoding.scales, zero_points=encoding.zero_points,
                               tensor_scale=encoding.tensor_scale)  # fmt: skip

    def fused_rounding(self, scheme: Scheme) -> ElementRounding | None:
        """:meth:`encode_elements` then :meth:`element_values` as arithmetic (``None`` where they are not the
        element format's plain saturating round trip); a rule that overrides either overrides this too."""
        return element_rounding(scheme)

    def dequantization(self, encoding: BlockEncoding) -> tuple[np.ndarray, np.float32]:
        """What :meth:`dequantize` multiplies each block's element values by, then the whole tensor by."""
        assert encoding.scales is not None
        tensor = np.float32(1 if encoding.tensor_scale is None else encoding.tensor_scale)
        return encoding.scales.astype(np.float32), tensor

    def approximate(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``dequantize(quantize(matrix))``, bit for bit, in one pass without codes where the rule's encoding and
        element rounding allow it (:func:`floatfmt.quant._kernels.block_roundtrip`)."""
        rows, cols = matrix.shape
        block_rows, block_cols = block_shape(scheme, rows, cols)
        blocked = Blocked(pad(matrix, block_rows, block_cols), shape, block_rows, block_cols, tensor_amax)
        rounding = self.fused_rounding(scheme)
        encoding = self.encoding(blocked, scheme) if rounding is not None else None
        if rounding is None or encoding is None or encoding.zero_points is not None or encoding.scales is None:
            return super().approximate(matrix, scheme, shape=shape, tensor_amax=tensor_amax, out=out)
        multipliers = encoding.multipliers()
        by = (encoding.divisor.astype(np.float32) if multipliers is None else multipliers).reshape(
            -1, blocked.padded.shape[1] // block_cols
        )
        dequant, tensor_scale = self.dequantization(encoding)
        dequant = dequant.reshape(by.shape)
        padded = blocked.padded
        target = out if out is not None and padded is matrix else np.empty_like(padded)

        def work(start: int, stop: int) -> int:
            band = slice(start * block_rows, stop * block_rows)
            return int(
                _kernels.block_roundtrip(
                    padded[band], by[start:stop], multipliers is None, block_rows, block_cols, rounding.integer,
                    rounding.shift, rounding.smallest_normal, rounding.magic, rounding.largest, rounding.smallest,
                    rounding.positive_zero, dequant[start:stop], tensor_scale, target[band],
                )
            )  # fmt: skip

        bands = padded.shape[0] // block_rows
        band_chunk = max(1, _row_chunk(padded.shape[1]) // block_rows)
        if bands and sum(map_chunks(work, bands, band_chunk, item_elements=block_rows * padded.shape[1])):
            # a scaled value that is not finite: the codes' path says what it becomes
            target = self.dequantize(self._encode_blocks(blocked, scheme, encoding))
        if out is None or target is out:
            return target[:rows, :cols]
        out[...] = target[:rows, :cols]
        return out

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

    def element_table(self, codes: np.ndarray, scheme: Scheme) -> np.ndarray | None:
        """The float32 value of every element code, where ``codes`` are uint8 of at most 8 bits (else None)."""
        element = scheme.formats.element
        count = len(scheme.codebook) if scheme.codebook else 0
        if not count and element is not None and element.bits <= 8:
            count = 2**element.bits
        if codes.dtype != np.uint8 or not count:
            return None
        return np.ascontiguousarray(self.element_values(np.arange(count, dtype=np.uint8), scheme), dtype=np.float32)

    def stored_dequantization(self, q: QuantizedTensor) -> tuple[np.ndarray | None, np.float32 | None]:
        """What :meth:`dequantize` multiplies each block's element values by (float32 block scales, or None),
        and then the whole tensor by (None for nothing): :meth:`dequantization`'s rule, from what ``q`` stores."""
        scales = None if q.scales is None else q.scales.astype(np.float32, copy=False)
        return scales, None if q.tensor_scale is None else np.float32(q.tensor_scale)

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        """The element values, less the zero points, times the block scales, times the tensor scale: one row of
        blocks after another in cache-sized runs on the package's threads."""
        assert q.codes is not None
        rows, cols = rows_cols(q.shape)
        padded_rows, padded_cols = q.codes.shape
        block_rows, block_cols = block_shape(q.scheme, rows, cols)
        if q.scales is None:
            block_rows = 1  # no blocks to keep whole: any run of rows
        out = np.empty((rows, cols), dtype=np.float32)
        scales, tensor_scale = self.stored_dequantization(q)
        zero_points = None if q.zero_points is None else q.zero_points.astype(np.float32, copy=False)
        all_codes = q.codes
        table = None  # one pass from codes to values where the elements are a table and the blocks are row runs
        if (padded_rows, padded_cols) == (rows, cols) and block_rows == 1 and zero_points is None:
            table = self.element_table(all_codes, q.scheme)

        def work(start: int, stop: int) -> None:  # block rows start..stop
            first, last = start * block_rows, stop * block_rows
            if table is not None and scales is not None:
                target = out[first:last].reshape(stop - start, -1, block_cols)
                codes = all_codes[first:last].reshape(target.shape)
                if _kernels.lookup_scale(codes, table, scales[start:stop], target):
                    if tensor_scale is not None:
                        target *= tensor_scale
                    return
            values = self.element_values(all_codes[first:last], q.scheme)  # fresh: scaled in place
            if scales is not None:
                tiles = values.reshape(stop - start, block_rows, padded_cols // block_cols, block_cols)
                if zero_points is not None:
                    tiles -= zero_points[start:stop, None, :, None]
                tiles *= scales[start:stop, None, :, None]
            if tensor_scale is not None:
                values *= tensor_scale
            out[first : min(last, rows)] = values[: min(last, rows) - first, :cols]

        row_elements = block_rows * padded_cols
        run = max(1, DEQUANTIZE_CHUNK_ELEMENTS // row_elements)
        map_chunks(work, padded_rows // block_rows, run, item_elements=row_elements)
        return out


def element_max(scheme: Scheme) -> np.float32:
    """The largest element value, as float32."""
    element = scheme.formats.element
    assert element is not None
    return np.float32(element.max)
