"""GPUs as data, the fewest that hold a model, and time bounds from FLOPs and bandwidth.

GPU memory is sold in binary units: an "80GB" H100 holds 80 GiB, 85.9 GB. The catalog
stores that capacity in GiB and shows both; throughputs are dense (no 2:4 sparsity),
and each entry names its source (a few are labelled estimates).

Example:
    >>> from floatfmt.memory import get_gpu
    >>> h100 = get_gpu("H100-SXM")
    >>> h100.memory_bytes, round(h100.memory_bytes / 1e9, 1)
    (85899345920, 85.9)
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from floatfmt._display import format_bytes
from floatfmt.memory.footprint import Footprint, footprint, native_storage
from floatfmt.memory.model import ModelSpec
from floatfmt.quant.filetypes import FileType
from floatfmt.quant.storage import resolve

__all__ = ["Fit", "Gpu", "Roofline", "fit", "get_gpu", "gpu_hour_cost", "gpus", "roofline"]


@dataclass(frozen=True)
class Gpu:
    """One GPU model: memory, bandwidth, dense tensor throughput by precision, interconnect, and the source."""

    name: str
    memory_gib: float
    bandwidth_gbs: float
    bf16_tflops: float
    fp8_tflops: float | None
    fp4_tflops: float | None
    interconnect: str
    source: str
    estimate: bool = False

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    def tflops(self, bits: int) -> float:
        """Dense throughput for operands of ``bits`` bits: the narrowest precision the GPU has at or above them."""
        for width, value in ((4, self.fp4_tflops), (8, self.fp8_tflops)):
            if bits <= width and value:
                return value
        return self.bf16_tflops

    def __str__(self) -> str:
        label = " (estimate)" if self.estimate else ""
        return (
            f"{self.name}: {format_bytes(self.memory_bytes)}, {self.bandwidth_gbs:,.0f} GB/s, "
            f"BF16 {self.bf16_tflops:g} / FP8 {self.fp8_tflops or '-'} / FP4 {self.fp4_tflops or '-'} TFLOPS dense, "
            f"{self.interconnect}{label}"
        )


@functools.cache
def _catalog() -> dict[str, Gpu]:
    text = resources.files("floatfmt.memory").joinpath("gpus.json").read_text(encoding="utf-8")
    return {name: Gpu(name=name, **fields) for name, fields in json.loads(text).items()}


def gpus() -> list[str]:
    """Names of the GPUs in the catalog."""
    return list(_catalog())


def get_gpu(name: str | Gpu) -> Gpu:
    """A GPU by name (case and ``-``/``_``/space insensitive).

    Raises:
        ValueError: for an unknown GPU, listing close matches.
    """
    if isinstance(name, Gpu):
        return name
    key = name.strip().upper().replace("_", "-").replace(" ", "-")
    for gpu_name, gpu in _catalog().items():
        if gpu_name.upper() == key:
            return gpu
    close = difflib.get_close_matches(name, list(_catalog()), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown GPU {name!r}.{hint} floatfmt.memory.gpus() lists them.")


@dataclass(frozen=True)
class Fit:
    """The fewest GPUs that hold a model, their layout, and the room left for KV cache."""

    gpu: Gpu
    gpus: int
    tp: int
    pp: int
    usable_bytes: int
    footprint: Footprint
    kv_tokens: int

    @property
    def headroom_bytes(self) -> int:
        return self.usable_bytes - self.footprint.per_gpu

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: the GPU and layout, the bytes per GPU, the headroom and its tokens."""
        return {
            "gpu": self.gpu.name,
            "gpus": self.gpus,
            "tp": self.tp,
            "pp": self.pp,
            "usable_bytes_per_gpu": self.usable_bytes,
            "bytes_per_gpu": self.footprint.per_gpu,
            "headroom_bytes_per_gpu": self.headroom_bytes,
            "kv_tokens": self.kv_tokens,
        }

    def __str__(self) -> str:
        caches = any(line.label.startswith("KV cache") for line in self.footprint.lines)
        headroom = (
            f"the headroom holds {self.kv_tokens:,} more tokens of KV cache" if caches else "no KV cache (training)"
        )
        return (
            f"{self.gpus} × {self.gpu.name} (tp={self.tp}, pp={self.pp}): {format_bytes(self.footprint.per_gpu)} of "
            f"{format_bytes(self.usable_bytes)} usable per GPU; {headroom}"
        )


def fit(
    model: ModelSpec,
    gpu: str | Gpu,
    *,
    memory_utilization: float = 0.9,
    gpus_per_node: int = 8,
    max_gpus: int = 1024,
    **options: Any,
) -> Fit:
    """The fewest GPUs whose memory holds ``footprint(model, **options)``: tensor parallel inside a node
    (1, 2, 4 ... ``gpus_per_node``), then pipeline stages across nodes. A ``tp`` or ``pp`` among the options
    fixes that degree (the other is searched); every other option reaches the footprint as given, so the fit's
    per-GPU bytes are ``footprint(model, tp=fit.tp, pp=fit.pp, **options).per_gpu``.

    ``memory_utilization`` is the share of each GPU's memory the engine may use (vLLM's
    ``gpu_memory_utilization`` default, 0.9; the rest is the CUDA context and the engine's own buffers): an
    assumption, labelled as one. ``kv_tokens`` is how many more tokens of KV cache fit in what is left (0 for
    a training footprint, which keeps no cache).

    Raises:
        ValueError: if no layout up to ``max_gpus`` holds the model.
    """
    if not 0 < memory_utilization <= 1:
        raise ValueError(f"memory_utilization is a share of each GPU's memory, in (0, 1]; got {memory_utilization}")
    if gpus_per_node < 1 or max_gpus < 1:
        raise ValueError(f"gpus_per_node and max_gpus must be at least 1, got {gpus_per_node} and {max_gpus}")
    chosen = get_gpu(gpu)
    usable = int(chosen.memory_bytes * memory_utilization)
    fixed_tp, fixed_pp = options.pop("tp", None), options.pop("pp", None)
    layouts = [(tp, 1) for tp in _powers_of_two(gpus_per_node)]
    layouts += [(gpus_per_node, pp) for pp in range(2, max_gpus // gpus_per_node + 1)]
    if fixed_tp is not None or fixed_pp is not None:
        tps = [fixed_tp] if fixed_tp is not None else _powers_of_two(gpus_per_node)
        pps = [fixed_pp] if fixed_pp is not None else range(1, max_gpus + 1)
        layouts = sorted(
            ((tp, pp) for tp in tps for pp in pps if tp * pp <= max_gpus), key=lambda layout: layout[0] * layout[1]
        )
    for tp, pp in layouts:
        result = footprint(model, tp=tp, pp=pp, **options)
        if result.per_gpu <= usable:
            per_token = _kv_per_token(model, tp, pp, options)
            tokens = (usable - result.per_gpu) // per_token if per_token else 0
            return Fit(chosen, tp * pp, tp, pp, usable, result, tokens)
    fixed = "".join(f", {k}={v}" for k, v in (("tp", fixed_tp), ("pp", fixed_pp)) if v is not None)
    raise ValueError(
        f"{model.name} does not fit on {max_gpus} {chosen.name} GPUs at {memory_utilization:.0%} use{fixed}"
    )


def _kv_per_token(model: ModelSpec, tp: int, pp: int, options: dict[str, Any]) -> int:
    """Bytes per GPU one more token of KV cache takes (0 for a training footprint, which keeps no cache)."""
    if options.get("training") is not None:
        return 0
    line = footprint(model, tp=tp, pp=pp, **{**options, "context": 1, "batch": 1}).line("KV cache")
    return line.per_gpu if line.per_gpu is not None else line.bytes


def _powers_of_two(limit: int) -> list[int]:
    return [2**k for k in range(int(math.log2(limit)) + 1)]


@dataclass(frozen=True)
class Roofline:
    """Lower bounds on time: prefill from FLOPs at peak throughput, decode from bytes moved at peak bandwidth."""

    gpu: Gpu
    gpus: int
    prefill_flops: float
    prefill_seconds: float
    decode_bytes_per_step: float
    decode_tokens_per_second: float
    formula: str
    price_per_gpu_hour: float | None = None
    """What one GPU-hour costs, as the caller priced it (``None``: no cost asked for)."""

    @property
    def cost_per_million_tokens(self) -> float | None:
        """The least a million decoded tokens can cost on these GPUs at that price: the decode bound is the most
        tokens per second, so this is a lower bound on cost, like the bound it comes from."""
        if self.price_per_gpu_hour is None:
            return None
        return self.gpus * self.price_per_gpu_hour / (self.decode_tokens_per_second * 3600) * 1e6

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary of the bounds (lower bound on prefill time, upper bound on decode speed)."""
        return {
            "gpu": self.gpu.name,
            "gpus": self.gpus,
            "prefill_flops": self.prefill_flops,
            "prefill_seconds_at_least": self.prefill_seconds,
            "decode_bytes_per_step": self.decode_bytes_per_step,
            "decode_tokens_per_second_at_most": self.decode_tokens_per_second,
            "price_per_gpu_hour": self.price_per_gpu_hour,
            "cost_per_million_tokens_at_least": self.cost_per_million_tokens,
            "formula": self.formula,
        }

    def __str__(self) -> str:
        return (
            f"{self.gpus} × {self.gpu.name}: prefill ≥ {self.prefill_seconds * 1e3:,.1f} ms "
            f"({self.prefill_flops:.3g} FLOPs); decode ≤ {self.decode_tokens_per_second:,.1f} tokens/s "
            f"({format_bytes(int(self.decode_bytes_per_step))} read per step){self._cost()}. Bounds, not "
            f"predictions: {self.formula}"
        )

    def _cost(self) -> str:
        cost = self.cost_per_million_tokens
        if cost is None or self.price_per_gpu_hour is None:
            return ""
        return f"; at {self.price_per_gpu_hour:,.4g} per GPU-hour (your price), ≥ {cost:,.4g} per million output tokens"


def roofline(
    model: ModelSpec,
    gpu: str | Gpu,
    *,
    gpus: int = 1,
    weights: str | None = None,
    kv_cache: str = "bf16",
    context: int = 4096,
    batch: int = 1,
    overrides: Mapping[str, str] | None = None,
    price_per_gpu_hour: float | None = None,
    **options: Any,
) -> Roofline:
    """Time bounds on ``gpus`` GPUs: prefill of ``batch`` prompts of ``context`` tokens cannot beat
    ``FLOPs / peak``, and a decode step cannot beat ``bytes read / bandwidth``.

    Prefill FLOPs: ``2 × active parameters × tokens`` for the matrices, plus the attention scores and their
    weighted sums (``2 × 2 × layers × heads × head_dim × context² / 2`` per prompt, causal). A decode step
    reads every active weight once (the experts of one token; a larger batch touches more) and the whole KV
    cache. The peak is the GPU's dense throughput at the weights' element width. With ``price_per_gpu_hour``
    (yours: a rental price, or :func:`gpu_hour_cost` of a purchase), the result also gives the least a million
    output tokens can cost at the decode bound (``cost_per_million_tokens``). ``weights=None`` is the
    model's own checkpoint storage; ``options`` are :func:`footprint`'s others (``engine`` for its window rule:
    the KV cache read is the one that engine keeps).
    """
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    chosen = get_gpu(gpu)
    if options.get("training") is not None:
        raise ValueError("roofline bounds inference (prefill and decode); a training step has no such bound here")
    options = {key: value for key, value in options.items() if key not in _LAYOUT_OPTIONS}
    fp = footprint(
        model, weights=weights, kv_cache=kv_cache, context=context, batch=batch, overrides=overrides, **options
    )
    weight_bytes = sum(line.bytes for line in fp.lines if line.label.startswith(("weights", "scales")))
    active_share = model.active_params / model.num_params
    kv = fp.line("KV cache").bytes
    tokens = batch * context
    attention_dim = model.num_heads * (model.qk_nope_head_dim + model.qk_rope_head_dim or model.head_dim)
    flops = 2 * model.active_params * tokens + 2 * model.num_layers * attention_dim * context * context * batch
    bits = _element_bits(weights if weights is not None else native_storage(model).weights)
    seconds = flops / (chosen.tflops(bits) * 1e12 * gpus)
    step_bytes = weight_bytes * active_share + kv
    tokens_per_second = batch * chosen.bandwidth_gbs * 1e9 * gpus / step_bytes
    formula = (
        f"FLOPs = 2 × {model.active_params:,} × {tokens:,} + attention; peak {chosen.tflops(bits):g} TFLOPS × {gpus}; "
        f"step = {active_share:.3f} of the weights + the KV cache, at {chosen.bandwidth_gbs:,.0f} GB/s × {gpus}"
    )
    if price_per_gpu_hour is not None and not price_per_gpu_hour >= 0:
        raise ValueError(f"price_per_gpu_hour must be a non-negative number, got {price_per_gpu_hour}")
    return Roofline(chosen, gpus, flops, seconds, step_bytes, tokens_per_second, formula, price_per_gpu_hour)


HOURS_PER_YEAR = 8766
"""365.25 days."""


def gpu_hour_cost(
    purchase: float, *, years: float, watts: float = 0.0, energy_price_per_kwh: float = 0.0, utilization: float = 1.0
) -> float:
    """What one GPU-hour costs when you own the GPU: its purchase price spread over ``years`` of service, plus
    the energy it draws at ``watts`` (the whole server's share per GPU, cooling included, is yours to put in),
    over the share of hours it does useful work (``utilization``). All prices are yours, in one currency; none
    are built in.

    Example:
        >>> from floatfmt.memory import gpu_hour_cost
        >>> round(gpu_hour_cost(30_000, years=4, watts=1000, energy_price_per_kwh=0.15), 3)  # 0.856 + 0.15
        1.006
    """
    if purchase < 0 or years <= 0 or watts < 0 or energy_price_per_kwh < 0 or not 0 < utilization <= 1:
        raise ValueError(
            "gpu_hour_cost needs purchase >= 0, years > 0, watts >= 0, energy_price_per_kwh >= 0 and utilization in "
            f"(0, 1]; got {purchase}, {years}, {watts}, {energy_price_per_kwh}, {utilization}"
        )
    return (purchase / (years * HOURS_PER_YEAR) + watts / 1000 * energy_price_per_kwh) / utilization


_LAYOUT_OPTIONS = ("tp", "pp", "dp", "zero", "training", "activations", "recompute")
"""Footprint options that do not change what a decode step reads over all its GPUs (the bound sums them)."""


def _element_bits(weights: str) -> int:
    """The operand width the matrix multiplies run at for this storage (16 where engines dequantize first)."""
    chosen = resolve(weights)
    if isinstance(chosen, FileType):
        return 16  # llama.cpp's types: dequantized blocks (or 8-bit dot products), no low-precision tensor cores
    return chosen.rule.matmul_bits(chosen)
