"""A tensor stored as codes and scales, with its true size and its serialized bytes.

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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from floatfmt._display import format_bytes, html_card
from floatfmt.quant.layout import Layout, serialize

if TYPE_CHECKING:
    from floatfmt.quant.scheme import Scheme

__all__ = ["QuantizedTensor"]


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedTensor:
    """A tensor stored as codes and scales (made by :func:`floatfmt.quantize`).

    ``codes`` holds the element codes in the padded 2-D shape (rows, columns rounded up to whole blocks);
    ``scales`` (and ``zero_points``) have one entry per block, as the values the stored format holds;
    ``tensor_scale`` is a second-level per-tensor scale. ``extra`` holds what a rule stores beyond those (GGUF's
    block bytes, the codes of double-quantized scales). ``nbytes`` and ``to_bytes()`` follow the scheme's
    :class:`~floatfmt.quant.layout.Layout` for the tensor's shape, the same one ``Scheme.storage_bytes`` reads.
    """

    scheme: Scheme
    shape: tuple[int, ...]
    codes: np.ndarray | None
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None
    tensor_scale: float | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The number of weights."""
        return math.prod(self.shape)

    @property
    def layout(self) -> Layout:
        """What this tensor stores: each array, its format and its size."""
        return self.scheme.layout(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the real storage: packed codes, scales, zero points and tensor scale."""
        return self.layout.nbytes

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / self.size if self.size else 0.0

    def to_bytes(self) -> bytes:
        """The serialized storage: the layout's parts in order (for most schemes the tensor scale, block scales,
        zero points, then element codes), each packed below a byte and little-endian above.

        GGUF types give their blocks exactly as ggml writes them.
        """
        arrays = self.scheme.rule.stored(self)
        return b"".join(serialize(np.asarray(arrays[part.name]).reshape(-1), part) for part in self.layout.parts)

    def dequantize(self, dtype: Any = np.float32) -> np.ndarray:
        """The values the stored codes and scales stand for, in the original shape."""
        values = self.scheme.rule.dequantize(self)
        return values.reshape(self.shape).astype(dtype, copy=False)

    def __repr__(self) -> str:
        return (
            f"QuantizedTensor({self.scheme.name}, shape={self.shape}, {self.nbytes:,} bytes, "
            f"{self.bits_per_weight:.4g} bits/weight)"
        )

    def _repr_html_(self) -> str:
        rows = [("scheme", self.scheme.name), ("shape", " × ".join(map(str, self.shape)) or "scalar")]
        rows += [("stored", format_bytes(self.nbytes)), ("bits per weight", f"{self.bits_per_weight:.4g}")]
        rows += [(f"part: {part.name}", f"{part.count:,} × {part.format.name}") for part in self.layout.parts]
        return html_card(f"Quantized tensor ({self.scheme.name})", rows)
