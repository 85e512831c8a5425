"""Scale rules: one family of schemes each, and the registry ``Scheme.scale_rule`` names them in.

A rule is everything a family of schemes does differently from the others, behind one small interface
(:class:`ScaleRule`): which fields of a scheme it uses (``check``), what a tensor stores (``layout``, from the
shape alone), how a float32 matrix becomes codes and scales (``quantize``) and back (``dequantize``), the arrays
``to_bytes()`` writes (``stored``), and what it needs from the whole tensor when the tensor is streamed in blocks
of rows (``uses_tensor_amax``, ``row_block``). Nothing outside a rule's module asks which rule a scheme has.

The families: ``amax`` (per-block absolute maximum: ``amax``, ``amax_reciprocal``, ``pow2_ceil_reciprocal``,
``symmetric_int``), ``mx`` (OCP MX), ``nvfp4`` (NVIDIA's two-level FP4), ``minmax`` (GPTQ-style asymmetric),
``bitsandbytes`` (``codebook``: NF4 and its double quantization), ``gguf`` (llama.cpp's block types) and ``cast``.
docs/architecture.md shows how to add one.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from floatfmt.quant.layout import Layout
    from floatfmt.quant.quantized import QuantizedTensor
    from floatfmt.quant.scheme import Scheme, SchemeFormats

__all__ = ["RULES", "ScaleRule", "get_rule", "register_rule"]


class ScaleRule:
    """The behaviour of one family of schemes. Subclasses set ``name`` and ``description`` and implement the
    methods; a rule holds no state, so one instance serves every scheme that names it."""

    name: str = ""
    description: str = ""
    handles_nonfinite: bool = False
    """Whether the rule's reference defines what NaN and infinity become (MX, casts); otherwise ``quantize``
    refuses tensors holding them before the rule sees them."""

    def check(self, scheme: Scheme) -> SchemeFormats:
        """Resolve the scheme's format names; raise ``ValueError`` for fields this rule cannot use."""
        raise NotImplementedError

    def layout(self, scheme: Scheme, rows: int, cols: int) -> Layout:
        """The stored arrays of a ``rows × cols`` tensor, in ``to_bytes()`` order."""
        raise NotImplementedError

    def quantize(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        importance: np.ndarray | None = None,
    ) -> QuantizedTensor:
        """Quantize a finite (unless ``handles_nonfinite``) float32 ``rows × cols`` matrix of a tensor of ``shape``.

        ``tensor_amax`` (only when :meth:`uses_tensor_amax`) is the largest magnitude of the whole tensor when
        ``matrix`` is a block of its rows; ``importance`` (only when :meth:`uses_importance`) one float32 weight per
        column, as llama.cpp's importance matrix gives it.
        """
        raise NotImplementedError

    def approximate(
        self,
        matrix: np.ndarray,
        scheme: Scheme,
        *,
        shape: tuple[int, ...],
        tensor_amax: float | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``dequantize(quantize(matrix))``: the values the stored tensor stands for, without keeping it, written
        into ``out`` (float32, the matrix's shape) when given. Rules with a faster way override this; it must
        give the same bits."""
        values = self.dequantize(self.quantize(matrix, scheme, shape=shape, tensor_amax=tensor_amax))
        if out is None:
            return values
        out[...] = values
        return out

    def uses_importance(self, scheme: Scheme) -> bool:
        """Whether the rule weighs its choices by a per-column importance vector (llama.cpp's imatrix)."""
        return False

    def dequantize(self, q: QuantizedTensor) -> np.ndarray:
        """The float32 ``rows × cols`` values the stored codes and scales stand for."""
        raise NotImplementedError

    def stored(self, q: QuantizedTensor) -> dict[str, np.ndarray]:
        """The array of each part of the layout (codes, or values for parts that hold values)."""
        raise NotImplementedError

    def uses_tensor_amax(self, scheme: Scheme) -> bool:
        """Whether the scales depend on the whole tensor's largest magnitude (and on nothing else global)."""
        return False

    def row_block(self, scheme: Scheme, cols: int) -> int | None:
        """Rows a block spans in a matrix of ``cols`` columns: the tensor can be quantized in independent pieces
        of that many rows (given ``tensor_amax`` where the rule uses it); ``None`` when it needs the whole tensor
        at once."""
        return scheme.block[0] or None

    def matmul_bits(self, scheme: Scheme) -> int:
        """The operand width an engine multiplies this storage at (the element's, unless it dequantizes first)."""
        element = scheme.formats.element
        return element.bits if element is not None else 16

    def __repr__(self) -> str:
        return f"<scale rule {self.name!r}: {self.description}>"


RULES: dict[str, ScaleRule] = {}
"""Every registered rule by name."""


def register_rule(rule: ScaleRule) -> ScaleRule:
    """Add a rule under its name.

    Raises:
        ValueError: if the name is taken or empty.
    """
    if not rule.name:
        raise ValueError("a scale rule needs a name")
    if rule.name in RULES:
        raise ValueError(f"scale rule {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule


def get_rule(name: str) -> ScaleRule:
    """The rule registered under ``name``.

    Raises:
        ValueError: for an unknown name, listing the registered ones.
    """
    rule = RULES.get(name) if isinstance(name, str) else None
    if rule is None:
        close = difflib.get_close_matches(str(name), list(RULES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown scale_rule {name!r}.{hint} Registered: {', '.join(RULES)}")
    return rule


def _register_families() -> Any:
    # Each family module registers its rules when imported; imported here, after the registry exists.
    from floatfmt.quant.rules import amax, bitsandbytes, cast, gguf, minmax, mx, nvfp4

    return amax, bitsandbytes, cast, gguf, minmax, mx, nvfp4


_register_families()
