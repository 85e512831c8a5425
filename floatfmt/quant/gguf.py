"""GGUF's legacy block types Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, byte for byte as gguf-py writes them.

Blocks are 32 consecutive weights of a row. The arithmetic is gguf-py's
(``gguf/quants.py``, itself matching ggml-quants.c): float32 throughout, the
block scale ``d`` computed in float32 and stored as float16, elements from the
float32 reciprocal of the unrounded ``d`` (``floatfmt._kernels.gguf_blocks``, where
one deliberate difference is documented: blocks so small that ``1 / d``
overflows). Layouts per block:

* Q8_0 (34 bytes): ``d`` fp16, then 32 int8 ``round_half_away(x / d)``, ``d = amax / 127``.
* Q4_0 (18 bytes): ``d`` fp16, 16 bytes of nibbles; ``d = m / -8`` where ``m`` is the
  signed value of largest magnitude; ``q = trunc(x / d + 8.5)`` clipped to 0..15.
  Element ``j < 16`` is the low nibble of byte ``j``, element ``j + 16`` the high one.
* Q4_1 (20 bytes): ``d`` and ``min`` fp16, nibbles of ``trunc((x - min) / d + 0.5)``, ``d = (max - min) / 15``.
* Q5_0 (22 bytes) / Q5_1 (24 bytes): as Q4_0 / Q4_1 with 5-bit codes (16 and 31);
  the fifth bits of the 32 codes form a little-endian uint32 after the scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from floatfmt import _kernels
from floatfmt.codec import _map_chunks

__all__ = ["GGUF_TYPES", "GgufType", "quantize_blocks", "dequantize_blocks"]

BLOCK = 32


@dataclass(frozen=True)
class GgufType:
    name: str
    bits: int  # element code width
    asymmetric: bool  # stores a block minimum beside the scale

    @property
    def block_bytes(self) -> int:
        """fp16 scale (and minimum), the fifth bits of 5-bit codes, then the int8 codes or the nibbles."""
        scales = 4 if self.asymmetric else 2
        fifth_bits = BLOCK // 8 if self.bits == 5 else 0
        return scales + fifth_bits + (BLOCK if self.bits == 8 else BLOCK // 2)


GGUF_TYPES = {
    "q8_0": GgufType("q8_0", 8, False),
    "q4_0": GgufType("q4_0", 4, False),
    "q4_1": GgufType("q4_1", 4, True),
    "q5_0": GgufType("q5_0", 5, False),
    "q5_1": GgufType("q5_1", 5, True),
}


def quantize_blocks(blocks: np.ndarray, kind: GgufType) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Quantize float32 ``(n, 32)`` blocks: returns (bytes ``(n, block_bytes)``, codes, fp16 scales, fp16 minimums).

    Works through cache-sized runs of blocks on the codec's threads, writing each field straight into its
    columns of the block bytes.
    """
    n = blocks.shape[0]
    data = np.empty((n, kind.block_bytes), dtype=np.uint8)
    codes = np.empty((n, BLOCK), dtype=np.uint8)
    scales = np.empty((n, 1), dtype=np.float16)
    minimums = np.empty((n, 1), dtype=np.float16) if kind.asymmetric else None

    def work(start: int, stop: int) -> None:
        _quantize_run(
            blocks[start:stop],
            kind,
            data[start:stop],
            codes[start:stop],
            scales[start:stop],
            None if minimums is None else minimums[start:stop],
        )

    _map_chunks(work, n, chunk=4096)
    return data, codes, scales, minimums


def _quantize_run(
    blocks: np.ndarray,
    kind: GgufType,
    data: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    minimums: np.ndarray | None,
) -> None:
    column = 4 if minimums is not None else 2  # the element bytes follow the fp16 scale (and minimum)
    d, low = _kernels.gguf_blocks(
        blocks.astype(np.float32, copy=False), kind.bits, kind.asymmetric, codes, data, column
    )
    scales[...] = _fp16(d)
    data[:, 0:2] = scales.view(np.uint8)
    if minimums is not None:
        assert low is not None
        minimums[...] = _fp16(low)
        data[:, 2:4] = minimums.view(np.uint8)


def dequantize_blocks(codes: np.ndarray, scales: np.ndarray, minimums: np.ndarray | None, kind: GgufType) -> np.ndarray:
    """Values of ``(n, 32)`` codes with their fp16 scales (and minimums), in float32 as gguf-py computes them."""
    d = scales.astype(np.float32)
    if kind.name == "q8_0":
        return d * codes.view(np.int8).astype(np.float32)
    if kind.asymmetric:
        assert minimums is not None
        return d * codes.astype(np.float32) + minimums.astype(np.float32)
    return d * (codes.astype(np.int16) - 2 ** (kind.bits - 1)).astype(np.float32)


def _fp16(values: np.ndarray) -> np.ndarray:
    """Scales or minimums as float16, refusing what would overflow (gguf-py would store infinity)."""
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.isfinite(half).all():
        raise ValueError(
            f"{np.count_nonzero(~np.isfinite(half))} GGUF block scales or minimums exceed float16's range (65504); "
            "gguf-py would store them as infinity. Scale the tensor down first"
        )
    return half
