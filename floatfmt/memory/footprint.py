"""What a model takes in memory: weights in any scheme (scales itemised), and the KV cache, with the arithmetic.

Example:
    >>> from floatfmt.memory import footprint, load_model
    >>> fp = footprint(load_model("llama-3.1-8b"), weights="bf16", kv_cache="bf16", context=8192)
    >>> fp.total, fp.line("KV cache").bytes        # 16.06 GB of weights, 1.07 GB of cache
    (17134264320, 1073741824)
"""

from __future__ import annotations

import fnmatch
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from floatfmt._display import format_bytes
from floatfmt.formats import FloatFormat, IntFormat, get_format
from floatfmt.memory.model import ModelSpec, Tensor
from floatfmt.quant.gguf import GGUF_TYPES
from floatfmt.quant.schemes import Scheme, get_scheme, schemes

__all__ = ["Footprint", "Line", "cache_bytes", "footprint", "tensor_storage"]

KEEP = "stored"
"""An override value that keeps a tensor in the model's stored dtype."""


@dataclass(frozen=True)
class Line:
    """One item of a footprint: what it is, its bytes, and how they were computed."""

    label: str
    bytes: int
    formula: str = ""
    estimate: bool = False

    @property
    def gb(self) -> float:
        return self.bytes / 1e9

    @property
    def gib(self) -> float:
        return self.bytes / 2**30


@dataclass(frozen=True)
class Footprint:
    """Itemised memory of a model: ``lines`` and their ``total`` (every byte exact unless a line says estimate)."""

    model: str
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines)

    def line(self, label: str) -> Line:
        """The line whose label starts with ``label``."""
        for line in self.lines:
            if line.label.startswith(label):
                return line
        raise KeyError(f"no line {label!r}; lines: {', '.join(line.label for line in self.lines)}")

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {"label": x.label, "bytes": x.bytes, "gb": x.gb, "gib": x.gib, "formula": x.formula, "estimate": x.estimate}
            for x in self.lines
        ]
        return {
            "model": self.model,
            "total": self.total,
            "total_gb": self.total / 1e9,
            "total_gib": self.total / 2**30,
            "lines": rows,
        }

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.as_dict()["lines"])

    def __str__(self) -> str:
        width = max([len(x.label) for x in self.lines] + [5])
        rows = [f"Memory of {self.model}"]
        for x in self.lines:
            note = f"  {x.formula}" if x.formula else ""
            rows.append(f"  {x.label:<{width}}  {format_bytes(x.bytes):>24}{' (estimate)' if x.estimate else ''}{note}")
        rows.append(f"  {'total':<{width}}  {format_bytes(self.total):>24}")
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{html.escape(x.label)}</td><td>{x.gb:.3f}</td><td>{x.gib:.3f}</td><td>{html.escape(x.formula)}</td></tr>"
            for x in self.lines
        )
        total = f"<tr><th>total</th><th>{self.total / 1e9:.3f}</th><th>{self.total / 2**30:.3f}</th><th></th></tr>"
        return (
            f"<table><caption>{html.escape(self.model)}</caption><thead><tr><th></th><th>GB</th><th>GiB</th>"
            f"<th>arithmetic</th></tr></thead><tbody>{body}{total}</tbody></table>"
        )


def tensor_storage(tensor: Tensor, storage: Scheme | str) -> tuple[int, int]:
    """Bytes of a tensor in a scheme or a plain format: (element codes, overhead: scales, zero points, padding)."""
    if isinstance(storage, str) and storage.strip().lower() not in schemes():
        fmt = get_format(storage)
        return math.ceil(tensor.size * fmt.bits / 8), 0
    scheme = get_scheme(storage)
    total = scheme.storage_bytes(tensor.shape)
    if scheme.scale_rule == "gguf":
        bits = GGUF_TYPES[scheme.element].bits
    else:
        bits = get_format(scheme.element).bits
    elements = math.ceil(tensor.size * bits / 8)
    return elements, total - elements


def cache_bytes(elements: int, dtype: str) -> float:
    """Bytes of ``elements`` cached values in a format (``bf16``, ``fp8``, ...) or a GGUF block type
    (``q8_0``, ``q4_0``: blocks of 32 values along each head, as llama.cpp stores its cache)."""
    name = dtype.lower()
    if name in GGUF_TYPES:
        return elements * GGUF_TYPES[name].block_bytes / 32
    fmt = get_format(dtype)
    if not isinstance(fmt, FloatFormat | IntFormat):  # pragma: no cover - every format is one of the two
        raise TypeError(f"{dtype} is not a storage format")
    return elements * fmt.bits / 8


def footprint(
    model: ModelSpec,
    *,
    weights: Scheme | str = "bf16",
    kv_cache: str = "bf16",
    context: int = 4096,
    batch: int = 1,
    overrides: Mapping[str, Scheme | str] | None = None,
    stored_dtype: str | None = None,
) -> Footprint:
    """Weights and KV cache of ``model``: weights per component in ``weights`` (a scheme or a format), with their
    scales itemised; matrices only (norms, biases and the MoE router stay in ``stored_dtype``, the model's own
    dtype by default); ``overrides`` maps glob patterns of tensor names to another scheme or ``"stored"``.

    Raises:
        ValueError: for an unknown scheme or format, or a negative context or batch.
    """
    if context < 0 or batch < 0:
        raise ValueError(f"context and batch must be non-negative, got {context} and {batch}")
    stored = stored_dtype or str(model.config.get("torch_dtype") or "bfloat16")
    chosen_name = weights.name if isinstance(weights, Scheme) else str(weights)
    by_component: dict[str, list[int]] = {}
    for tensor in model.tensors():
        storage: Scheme | str = weights if len(tensor.shape) >= 2 and tensor.component != "router" else stored
        for pattern, value in (overrides or {}).items():
            if fnmatch.fnmatchcase(tensor.name, pattern):
                storage = stored if value == KEEP else value
                break
        elements, overhead = tensor_storage(tensor, storage)
        sums = by_component.setdefault(tensor.component, [0, 0, 0])
        sums[0] += elements
        sums[1] += overhead
        sums[2] += tensor.size
    lines = []
    for component, (elements, overhead, params) in by_component.items():
        lines.append(Line(f"weights: {component}", elements, f"{params:,} parameters"))
        if overhead:
            lines.append(Line(f"scales: {component}", overhead, f"{chosen_name} block scales, zero points, padding"))
    per_token = model.kv_elements_per_token(context)
    kv = math.ceil(cache_bytes(per_token * context * batch, kv_cache))
    if model.kv_lora_rank:
        formula = (
            f"{batch} × {context:,} tokens × {model.num_layers} layers × (kv_lora_rank {model.kv_lora_rank} + "
            f"rope {model.qk_rope_head_dim}) × {kv_cache}"
        )
    else:
        formula = (
            f"{batch} × {context:,} tokens × {model.num_layers} layers × 2 (K, V) × {model.num_kv_heads} KV heads "
            f"× {model.head_dim} × {kv_cache}"
        )
        if model.sliding_window and per_token != model.kv_elements_per_token():
            formula += f"; sliding-window layers hold {model.sliding_window} tokens"
    lines.append(Line(f"KV cache ({kv_cache})", kv, formula))
    return Footprint(f"{model.name} ({chosen_name} weights)", lines)
