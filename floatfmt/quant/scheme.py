"""A quantization scheme as data: element format, block shape, scales, and the rule that makes them.

A tensor is viewed as 2-D: its last axis is a row (the input features of a ``[out, in]`` weight), all leading
axes are flattened into rows. A scheme's ``block`` is ``(rows, cols)`` of the region that shares one scale, where
0 means "the whole axis": ``(0, 0)`` is per tensor, ``(1, 0)`` per output channel, ``(1, 32)`` groups of 32 along
a row, ``(128, 128)`` square tiles. ``scale_rule`` names the registered rule (``floatfmt.quant.rules``) that
quantizes, dequantizes and lays out the storage; the scheme resolves its formats once, when it is made.

Example:
    >>> import floatfmt
    >>> scheme = floatfmt.get_scheme("mxfp4")
    >>> scheme.element, scheme.block, scheme.scale_format, scheme.scale_rule
    ('float4_e2m1fn', (1, 32), 'float8_e8m0fnu', 'mx')
    >>> scheme.formats.element.bits, scheme.storage_bytes((4096, 4096))
    (4, 8912896)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from floatfmt._display import html_card
from floatfmt._options import ROUNDINGS, RoundingMode
from floatfmt.formats import Format
from floatfmt.quant.rules import get_rule

if TYPE_CHECKING:
    from floatfmt.quant.layout import Layout
    from floatfmt.quant.rules import ScaleRule

__all__ = ["Scheme", "SchemeFormats", "rows_cols"]


class SchemeFormats(NamedTuple):
    """A scheme's formats, resolved from its names by its rule (``None`` where the scheme has none)."""

    element: Format | None
    scale: Format | None
    zero_point: Format | None
    tensor_scale: Format | None


@dataclass(frozen=True, repr=False)
class Scheme:
    """How a tensor is quantized: element format, block shape, scales, and the rules that make them.

    Args:
        name: a short name.
        element: the element format (any ``floatfmt.get_format`` name) or, for ``scale_rule="gguf"``, a GGML type.
        block: ``(rows, cols)`` sharing one scale; 0 means the whole axis.
        scale_format: the format scales are stored in.
        scale_rule: the name of a registered rule (``floatfmt.quant.SCALE_RULES``).
        rounding: how elements round (``encode``'s modes).
        zero_point: the format of a stored zero point, if the scheme is asymmetric.
        tensor_scale: the format of a second-level per-tensor scale, if any.
        codebook: for ``scale_rule="codebook"``, the value of each element code, ascending.
        scale_group: if positive, the block scales are themselves quantized as bitsandbytes' double
            quantization does: minus their float32 mean (stored), in groups of this many, each group's scales
            divided by its largest magnitude (stored in float32) and coded with ``scale_codebook``.
        scale_codebook: the 256 ascending values of the scale codes (bitsandbytes' dynamic map).
        reference: the public implementation the scheme follows.

    Raises:
        ValueError: for an unknown rule, format or rounding, or fields the rule cannot use, saying which.
    """

    name: str
    element: str
    block: tuple[int, int] = (0, 0)
    scale_format: str = "float32"
    scale_rule: str = "amax"
    rounding: RoundingMode = "nearest_even"
    zero_point: str | None = None
    tensor_scale: str | None = None
    codebook: tuple[float, ...] | None = None
    scale_group: int = 0
    scale_codebook: tuple[float, ...] | None = None
    reference: str = ""
    formats: SchemeFormats = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a scheme needs a name, got {self.name!r}")
        block = self.block
        if not isinstance(block, tuple) or len(block) != 2 or any(not isinstance(b, int) or b < 0 for b in block):
            raise ValueError(f"block must be two non-negative integers (0 = whole axis), got {block!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}")
        object.__setattr__(self, "formats", get_rule(self.scale_rule).check(self))

    @property
    def rule(self) -> ScaleRule:
        """The rule that quantizes with this scheme and lays out its storage."""
        return get_rule(self.scale_rule)

    def replace(self, **changes: Any) -> Scheme:
        """A copy with some fields changed, e.g. ``rounding="nearest_away"``."""
        return dataclasses.replace(self, **changes)

    @property
    def tiles(self) -> bool:
        """Whether blocks span several rows (DeepSeek's 128 × 128): such checkpoints keep the weight's own shape,
        with one scale per started tile, so the padding of a partial tile is not stored."""
        return self.block[0] > 1

    def layout(self, shape: tuple[int, ...]) -> Layout:
        """What a tensor of ``shape`` stores in this scheme: each array, its format and its size."""
        rows, cols = rows_cols(shape)
        return self.rule.layout(self, rows, cols)

    def __repr__(self) -> str:
        block = "per tensor" if self.block == (0, 0) else f"blocks of {self.block[0]}×{self.block[1]}"
        bits = self.storage_bytes((4096, 4096)) * 8 / 4096**2
        return f"<Scheme {self.name}: {self.element}, {block}, {self.scale_format} scales, {bits:.4g} bits/weight>"

    def _repr_html_(self) -> str:
        bits = self.storage_bytes((4096, 4096)) * 8 / 4096**2
        rows = [
            ("element", self.element),
            ("block", "the whole tensor" if self.block == (0, 0) else f"{self.block[0]} × {self.block[1]}"),
            ("scales", f"{self.scale_format} ({self.scale_rule})"),
            ("bits per weight (4096 × 4096)", f"{bits:.4g}"),
            ("rounding", self.rounding),
        ]
        rows += [(label, value) for label, value in (("zero point", self.zero_point),
                 ("tensor scale", self.tensor_scale)) if value]  # fmt: skip
        return html_card(f"Scheme {self.name}", rows, f"follows: {self.reference}" if self.reference else "")

    def storage_bytes(self, shape: tuple[int, ...]) -> int:
        """The bytes a tensor of ``shape`` takes in this scheme, from its shape alone.

        This is what ``quantize(w, scheme).nbytes`` gives for such a tensor, and what ``to_bytes()`` writes:
        element codes of the padded blocks (of the tensor itself for ``tiles``), packed; one scale (and zero
        point) per block, packed; and the per-tensor scale.

        Example:
            >>> import floatfmt
            >>> floatfmt.get_scheme("nvfp4").storage_bytes((4096, 4096))  # 4-bit codes, 1 byte per 16, fp32
            9437188

        Raises:
            ValueError: for a shape the scheme cannot store (a GGUF type and rows that are not whole blocks).
        """
        return self.layout(shape).nbytes


def rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view quantization uses: all leading axes flattened into rows."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]
