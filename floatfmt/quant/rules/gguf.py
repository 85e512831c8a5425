"""llama.cpp's GGML block types, byte for byte as ggml and gguf-py write them.

Every GGML type has a layout here (values per block and bytes per block, as gguf-py's ``GGML_QUANT_SIZES``), so
footprints of any GGUF file are exact; the types floatfmt quantizes into are listed in :data:`QUANTIZERS`.
Blocks are consecutive weights of a row; a tensor's storage is its rows of blocks, as ggml lays them out.

The legacy types Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 follow gguf-py's ``gguf/quants.py`` (itself matching
ggml-quants.c): float32 throughout, the block scale ``d`` computed in float32 and stored as float16, elements
from the float32 reciprocal of the unrounded ``d`` (``floatfmt.quant._kernels.gguf_blocks``, where one
deliberate difference is documented: blocks so small that ``1 / d`` overflows). Layouts per block:

* Q8_0 (34 bytes): ``d`` fp16, then 32 int8 ``round_half_away(x / d)``, ``d = amax / 127``.
* Q4_0 (18 bytes): ``d`` fp16, 16 bytes of nibbles; ``d = m / -8`` where ``m`` is the
  signed value of largest magnitude; ``q = trunc(x / d + 8.5)`` clipped to 0..15.
  Element ``j < 16`` is the low nibble of byte ``j``, element ``j + 16`` the high one.
* Q4_1 (20 bytes): ``d`` and ``min`` fp16, nibbles of ``trunc((x - min) / d + 0.5)``, ``d = (max - min) / 15``.
* Q5_0 (22 bytes) / Q5_1 (24 bytes): as Q4_0 / Q4_1 with 5-bit codes (16 and 31);
  the fifth bits of the 32 codes form a little-endian uint32 after the scales.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from floatfmt._parallel import CHUNK_ELEMENTS, DEQUANTIZE_CHUNK_ELEMENTS, map_chunks
from floatfmt.formats import get_format
from floatfmt.io._gguf import BLOCK_DEQUANTIZERS
from floatfmt.quant import _kernels
from floatfmt.quant.layout import Layout, Part
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.rules import ScaleRule, kquants, register_rule
from floatfmt.quant.scheme import Scheme, SchemeFormats, rows_cols

__all__ = ["GGML_TYPES", "QUANTIZERS", "GgmlType", "GgufRule", "dequantize_bytes", "ggml_type"]


@dataclass(frozen=True)
class GgmlType:
    """A GGML storage type: its name, ``block_size`` values in ``block_bytes`` bytes, ``element_bits`` of which
    are each value's own code (the rest of a block is its scales), and its id in GGUF files."""

    name: str
    type_id: int
    block_size: int
    block_bytes: int
    element_bits: float

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.block_bytes / self.block_size


GGML_TYPES = {
    kind.name: kind
    for kind in (
        GgmlType("f32", 0, 1, 4, 32),
        GgmlType("f16", 1, 1, 2, 16),
        GgmlType("q4_0", 2, 32, 18, 4),
        GgmlType("q4_1", 3, 32, 20, 4),
        GgmlType("q5_0", 6, 32, 22, 5),
        GgmlType("q5_1", 7, 32, 24, 5),
        GgmlType("q8_0", 8, 32, 34, 8),
        GgmlType("q8_1", 9, 32, 40, 8),
        GgmlType("q2_k", 10, 256, 84, 2),
        GgmlType("q3_k", 11, 256, 110, 3),
        GgmlType("q4_k", 12, 256, 144, 4),
        GgmlType("q5_k", 13, 256, 176, 5),
        GgmlType("q6_k", 14, 256, 210, 6),
        GgmlType("q8_k", 15, 256, 292, 8),
        GgmlType("iq2_xxs", 16, 256, 66, 2),
        GgmlType("iq2_xs", 17, 256, 74, 2),
        GgmlType("iq3_xxs", 18, 256, 98, 3),
        GgmlType("iq1_s", 19, 256, 50, 1),
        GgmlType("iq4_nl", 20, 32, 18, 4),
        GgmlType("iq3_s", 21, 256, 110, 3),
        GgmlType("iq2_s", 22, 256, 82, 2),
        GgmlType("iq4_xs", 23, 256, 136, 4),
        GgmlType("i8", 24, 1, 1, 8),
        GgmlType("i16", 25, 1, 2, 16),
        GgmlType("i32", 26, 1, 4, 32),
        GgmlType("i64", 27, 1, 8, 64),
        GgmlType("f64", 28, 1, 8, 64),
        GgmlType("iq1_m", 29, 256, 56, 1),
        GgmlType("bf16", 30, 1, 2, 16),
        GgmlType("tq1_0", 34, 256, 54, 1.6),
        GgmlType("tq2_0", 35, 256, 66, 2),
        GgmlType("mxfp4", 39, 32, 17, 4),
    )
}
"""Every GGML type by its lowercase name (gguf-py's ``GGMLQuantizationType`` names, lowercased)."""


def ggml_type(name: str) -> GgmlType:
    """A GGML type by name, in any case (``Q4_K``, ``q4_k``).

    Raises:
        ValueError: for an unknown name, listing close matches.
    """
    kind = GGML_TYPES.get(name.strip().lower()) if isinstance(name, str) else None
    if kind is None:
        close = difflib.get_close_matches(str(name).lower(), list(GGML_TYPES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown GGML type {name!r}.{hint}")
    return kind


BLOCK = 32
"""Values per block of the legacy types."""


@dataclass(frozen=True)
class _Legacy:
    bits: int  # element code width
    asymmetric: bool  # stores a block minimum beside the scale


_LEGACY = {
    "q8_0": _Legacy(8, False),
    "q4_0": _Legacy(4, False),
    "q4_1": _Legacy(4, True),
    "q5_0": _Legacy(5, False),
    "q5_1": _Legacy(5, True),
}

QUANTIZERS: dict[str, Callable[..., QuantizedTensor]] = {}
"""The GGML types floatfmt quantizes into, each with its quantizer ``(matrix, scheme, shape) -> QuantizedTensor``."""


class GgufRule(ScaleRule):
    name = "gguf"
    description = "the GGML block type's own rule, byte for byte as ggml and gguf-py"

    def check(self, scheme: Scheme) -> SchemeFormats:
        try:
            ggml_type(scheme.element)
        except ValueError as error:
            raise ValueError(f"scheme {scheme.name!r}: element {error}") from None
        if scheme.block not in ((0, 0), (1, ggml_type(scheme.element).block_size)):
            raise ValueError(f"scheme {scheme.name!r}: a GGML type fixes its own block")
        return SchemeFormats(None, None, None, None)

    def layout(self, scheme: Scheme, rows: int, cols: int) -> Layout:
        kind = ggml_type(scheme.element)
        if cols % kind.block_size:
            raise ValueError(
                f"{scheme.name} needs rows of whole {kind.block_size}-weight blocks, but rows have {cols} weights"
            )
        blocks = rows * cols // kind.block_size
        return Layout(rows * cols, kind.element_bits, (Part("blocks", get_format("uint8"), blocks * kind.block_bytes),))

    def row_block(self, scheme: Scheme, cols: int) -> int | None:
        return 1

    def matmul_bits(self, scheme: Scheme) -> int:
        return 16  # llama.cpp dequantizes blocks (or multiplies 8-bit integer dot products): no 4-bit tensor cores

    def quantize(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        importance: np.ndarray | None = None,
    ) -> QuantizedTensor:
        quantizer = QUANTIZERS.get(ggml_type(scheme.element).name)
        if quantizer is None:
            raise ValueError(
                f"floatfmt does not quantize into {scheme.element.upper()} (it knows its size); quantizable GGML "
                f"types: {', '.join(QUANTIZERS)}"
            )
        self.layout(scheme, *matrix.shape)  # refuses rows that are not whole blocks
        if importance is not None:
            return _quantize_with_blocks(matrix, scheme, shape, importance)
        return quantizer(matrix, scheme, shape)

    def uses_importance(self, scheme: Scheme) -> bool:
        return ggml_type(scheme.element).name in IMPORTANCE

    def approximate(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The dequantized blocks, in one pass where the type has one (:data:`kquants.ROUNDTRIPS`: Q4_K and Q5_K
        without an importance matrix), on the package's threads; the bytes and back otherwise."""
        name = ggml_type(scheme.element).name
        roundtrip = kquants.ROUNDTRIPS.get(name)
        if roundtrip is None or not matrix.size:
            return super().approximate(matrix, scheme, shape=shape, tensor_amax=tensor_amax, out=out)
        self.layout(scheme, *matrix.shape)  # refuses rows that are not whole blocks
        block = ggml_type(name).block_size
        target = out if out is not None else np.empty(matrix.shape, dtype=np.float32)
        blocks, values = matrix.reshape(-1, block), target.reshape(-1, block)
        fitted = []

        def work(start: int, stop: int) -> None:
            run = np.ascontiguousarray(blocks[start:stop], dtype=np.float32)
            fitted.append(roundtrip(run, values[start:stop]))

        map_chunks(work, blocks.shape[0], max(1, CHUNK_ELEMENTS // block), item_elements=block)
        if not all(fitted):  # a block scale beyond float16: quantizing says so
            return super().approximate(matrix, scheme, shape=shape, tensor_amax=tensor_amax, out=out)
        return target

    def stored(self, q: QuantizedTensor) -> dict[str, np.ndarray]:
        return {"blocks": q.extra["blocks"]}

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        name = ggml_type(q.scheme.element).name
        if name in kquants.DEQUANTIZERS:
            blocks = np.asarray(q.extra["blocks"]).reshape(-1, ggml_type(name).block_bytes)
            return dequantize_bytes(name, blocks).reshape(rows_cols(q.shape))
        assert q.codes is not None and q.scales is not None
        values = _dequantize_legacy(_LEGACY[name], q.codes, q.scales, q.zero_points)
        return values.reshape(rows_cols(q.shape))


def dequantize_bytes(name: str, data: np.ndarray) -> np.ndarray:
    """The float32 values ``(blocks, values per block)`` of GGML block bytes ``(blocks, bytes per block)``, as
    ggml's ``dequantize_row_<type>`` computes them (any bytes: infinite or NaN scales give what ggml gives).

    Raises:
        ValueError: for a type floatfmt does not dequantize.
    """
    kind = ggml_type(name)
    if kind.name in kquants.DEQUANTIZERS:
        return kquants.DEQUANTIZERS[kind.name](data)
    legacy = _LEGACY.get(kind.name)
    if legacy is None:
        known = ", ".join((*_LEGACY, *kquants.DEQUANTIZERS))
        raise ValueError(f"floatfmt does not dequantize {kind.name.upper()} blocks; it dequantizes {known}")
    scales = data[:, 0:2].copy().view("<f2")[:, 0]
    minimums = data[:, 2:4].copy().view("<f2")[:, 0] if legacy.asymmetric else None
    at = 4 if legacy.asymmetric else 2
    if legacy.bits == 8:
        codes = data[:, at:]
    else:
        high_bits = None
        if legacy.bits == 5:  # the fifth bits: a little-endian uint32, bit j for element j
            high_bits = np.unpackbits(data[:, at : at + 4], axis=1, bitorder="little")
            at += 4
        nibbles = data[:, at:]
        codes = np.concatenate([nibbles & 0xF, nibbles >> 4], axis=1)
        if high_bits is not None:
            codes |= high_bits << 4
    return _dequantize_legacy(legacy, codes, scales, minimums)


def _dequantize_legacy(kind: _Legacy, codes: np.ndarray, scales: np.ndarray, minimums: np.ndarray | None) -> np.ndarray:
    """A legacy type's values ``(blocks, 32)`` from its codes (uint8; int8 bytes for Q8_0) and float16 fields: each
    code's value (the int8 byte for Q8_0, the code itself for the asymmetric types, whose offset is the block
    minimum, the code less 2**(bits-1) for the symmetric ones: small integers, exact) times the block scale, plus
    the minimum for the asymmetric types, in float32, as ggml computes them; one compiled pass with numba."""
    codes = codes.reshape(-1, BLOCK)
    codes = codes.view(np.uint8) if codes.dtype == np.int8 else codes
    scales, minimums = scales.reshape(-1), None if minimums is None else minimums.reshape(-1)
    offset = 0 if kind.bits == 8 or kind.asymmetric else 2 ** (kind.bits - 1)
    values = np.empty(codes.shape, dtype=np.float32)

    def work(start: int, stop: int) -> None:  # in cache-sized runs of blocks on the package's threads
        d = scales[start:stop].astype(np.float32).reshape(1, -1)
        run, out = codes[start:stop].reshape(1, -1, BLOCK), values[start:stop].reshape(1, -1, BLOCK)
        if minimums is None:
            _kernels.offset_scale(run, offset, d, out)
        else:
            _kernels.offset_scale_shift(run, offset, d, minimums[start:stop].astype(np.float32).reshape(1, -1), out)

    map_chunks(work, codes.shape[0], DEQUANTIZE_CHUNK_ELEMENTS // BLOCK, item_elements=BLOCK)
    return values


def _quantize_legacy(matrix: np.ndarray, scheme: Scheme, shape: tuple[int, ...]) -> QuantizedTensor:
    """A legacy type's blocks, through cache-sized runs of blocks on the package's threads, each field written
    straight into its columns of the block bytes."""
    kind = _LEGACY[ggml_type(scheme.element).name]
    block_bytes = ggml_type(scheme.element).block_bytes
    rows, cols = matrix.shape
    blocks = matrix.reshape(-1, BLOCK)
    n = blocks.shape[0]
    data = np.empty((n, block_bytes), dtype=np.uint8)
    codes = np.empty((n, BLOCK), dtype=np.uint8)
    scales = np.empty(n, dtype=np.float16)
    minimums = np.empty(n, dtype=np.float16) if kind.asymmetric else None
    column = 4 if kind.asymmetric else 2  # the element bytes follow the fp16 scale (and minimum)

    def work(start: int, stop: int) -> None:
        d, low = np.empty(stop - start, np.float32), np.empty(stop - start, np.float32)
        run = np.ascontiguousarray(blocks[start:stop], dtype=np.float32)
        _kernels.gguf_blocks(run, kind.bits, kind.asymmetric, codes[start:stop], d, low, data[start:stop], column)
        scales[start:stop] = kquants.fp16_scales(d)
        data[start:stop, 0:2] = scales[start:stop, None].view(np.uint8)
        if minimums is not None:
            minimums[start:stop] = kquants.fp16_scales(low)
            data[start:stop, 2:4] = minimums[start:stop, None].view(np.uint8)

    # two chunks' worth of blocks per call: each call's few small allocations are then negligible
    map_chunks(work, n, 2 * CHUNK_ELEMENTS // BLOCK, item_elements=BLOCK)
    return QuantizedTensor(
        scheme,
        shape,
        codes.reshape(rows, cols),
        scales.reshape(rows, cols // BLOCK),
        None if minimums is None else minimums.reshape(rows, cols // BLOCK),
        extra={"blocks": data.reshape(-1)},
    )


IMPORTANCE = ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")
"""The GGML types whose quantizers weigh an importance vector (``quantize_<type>``'s ``quant_weights``)."""


def _quantize_with_blocks(
    matrix: np.ndarray, scheme: Scheme, shape: tuple[int, ...], importance: np.ndarray | None = None
) -> QuantizedTensor:
    data = kquants.quantize_blocks(ggml_type(scheme.element).name, matrix, importance)
    return QuantizedTensor(scheme, shape, None, extra={"blocks": data})


for _name in _LEGACY:
    QUANTIZERS[_name] = _quantize_legacy
for _name in (*_LEGACY, *kquants.DEQUANTIZERS):  # the GGUF reader dequantizes these types with floatfmt's loops
    _kind = ggml_type(_name)
    BLOCK_DEQUANTIZERS[_name] = (_kind.block_size, _kind.block_bytes, functools.partial(dequantize_bytes, _name))
for _name in kquants.QUANTIZERS:
    QUANTIZERS[_name] = _quantize_with_blocks

register_rule(GgufRule())
