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
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from floatfmt._display import format_bytes, html_card
from floatfmt.memory.engines import VLLM_BLOCK_TOKENS
from floatfmt.memory.footprint import Footprint, footprint, native_storage
from floatfmt.memory.model import ModelSpec
from floatfmt.quant.filetypes import FileType
from floatfmt.quant.storage import resolve

__all__ = ["Fit", "Gpu", "Layout", "LayoutCheck", "Roofline", "fit", "get_gpu", "gpu_hour_cost", "gpus", "roofline"]


@dataclass(frozen=True, repr=False)
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

    def __repr__(self) -> str:
        fp8 = f", {self.fp8_tflops:g} FP8" if self.fp8_tflops else ""
        return (
            f"<Gpu {self.name}: {format_bytes(self.memory_bytes)}, {self.bandwidth_gbs:,.0f} GB/s, "
            f"{self.bf16_tflops:g} BF16{fp8} TFLOPS{' (estimates)' if self.estimate else ''}>"
        )

    def _repr_html_(self) -> str:
        rows = [("memory", format_bytes(self.memory_bytes)), ("bandwidth", f"{self.bandwidth_gbs:,.0f} GB/s")]
        rows += [
            (f"{name} TFLOPS (dense)", f"{value:g}")
            for name, value in (("BF16", self.bf16_tflops), ("FP8", self.fp8_tflops), ("FP4", self.fp4_tflops))
            if value
        ]
        rows.append(("interconnect", self.interconnect))
        return html_card(f"GPU {self.name}", rows, f"source: {self.source}" + (" (estimates)" if self.estimate else ""))

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


_SHORT_NAMES = {"H100": "H100-SXM", "A100": "A100-80GB", "MI300": "MI300X", "910B": "Ascend-910B"}
"""Names people type for a GPU sold in several variants: the one a bare name means (the printed name says which)."""


def _key(name: str) -> str:
    """A GPU name as compared: upper case, without spaces, dashes, underscores or an ``RTX``/``NVIDIA`` prefix."""
    key = name.strip().upper()
    for prefix in ("NVIDIA", "GEFORCE", "AMD", "HUAWEI"):
        key = key.removeprefix(prefix).strip(" -_")
    key = "".join(c for c in key if c not in " -_")
    return key.removeprefix("RTX")


def get_gpu(name: str | Gpu) -> Gpu:
    """A GPU by name as people type it: case, spaces, ``-`` and ``_`` aside, with or without ``RTX`` (``4090``,
    ``rtx4090``, ``RTX 4090``), a bare ``H100`` meaning the SXM part and ``A100`` the 80 GB one (the GPU's
    printed name says which), or ``custom:GIB`` for a GPU of that many GiB with no throughput figures.

    Raises:
        ValueError: for an unknown GPU, listing close matches.
    """
    if isinstance(name, Gpu):
        return name
    text = name.strip()
    if text.lower().startswith("custom:"):
        try:
            gib = float(text.split(":", 1)[1].lower().removesuffix("gib").removesuffix("gb"))
        except ValueError:
            gib = -1.0
        if not gib > 0:
            raise ValueError(f"{name!r}: a custom GPU is custom:GIB, its memory in GiB (custom:24 for a 24 GiB card)")
        return Gpu(f"custom {gib:g} GiB", gib, 0.0, 0.0, None, None, "unknown", "given on the command line", True)
    catalog = _catalog()
    wanted = _key(_SHORT_NAMES.get(_key(text), text))
    for gpu_name, gpu in catalog.items():
        if _key(gpu_name) == wanted:
            return gpu
    close = difflib.get_close_matches(text.upper(), [g.upper() for g in catalog], n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown GPU {name!r}.{hint} `floatfmt gpus` (or floatfmt.memory.gpus()) lists them.")


@dataclass(frozen=True)
class Layout:
    """How a model is spread over GPUs: ``tp``-way tensor parallel, ``pp`` pipeline stages, and for a mixture of
    experts ``ep``-way expert parallel with data-parallel attention (1: none)."""

    tp: int
    pp: int = 1
    ep: int = 1
    gpus_per_node: int = 8

    @property
    def gpus(self) -> int:
        return (self.ep if self.ep > 1 else self.tp) * self.pp

    @property
    def name(self) -> str:
        if self.ep > 1:
            groups = f", attention TP{self.tp}" if self.tp > 1 else ""
            return f"EP{self.ep} with data-parallel attention{groups}" + (f" × PP{self.pp}" if self.pp > 1 else "")
        across = f" across {self.tp // self.gpus_per_node} nodes" if self.tp > self.gpus_per_node else ""
        return f"TP{self.tp}{across}" + (f" × PP{self.pp}" if self.pp > 1 else "")


@dataclass(frozen=True)
class LayoutCheck:
    """One layout ``fit`` tried: its bytes per GPU, and whether they fit (and if not, by how much not)."""

    layout: Layout
    bytes_per_gpu: int
    fits: bool
    reason: str

    def __str__(self) -> str:
        verdict = "fits" if self.fits else f"does not fit: {self.reason}"
        return f"{self.layout.gpus:>5} GPUs  {self.layout.name:<44} {format_bytes(self.bytes_per_gpu):>24}  {verdict}"


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
    ep: int = 1
    checks: tuple[LayoutCheck, ...] = ()
    """Every layout tried, fewest GPUs first, the ones that fit and the ones that do not, with why."""
    engine_kv_tokens: int | None = None
    """With ``engine="vllm"``: the tokens of KV cache vLLM itself would allocate on this layout (every attention
    replica's, the requested context × batch included), in whole blocks."""

    @property
    def headroom_bytes(self) -> int:
        return self.usable_bytes - self.footprint.per_gpu

    @property
    def layout(self) -> Layout:
        return Layout(self.tp, self.pp, self.ep)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: the GPU and layout, the bytes per GPU, the headroom and its tokens."""
        return {
            "gpu": self.gpu.name,
            "gpus": self.gpus,
            "tp": self.tp,
            "pp": self.pp,
            "ep": self.ep,
            "layout": self.layout.name,
            "usable_bytes_per_gpu": self.usable_bytes,
            "bytes_per_gpu": self.footprint.per_gpu,
            "headroom_bytes_per_gpu": self.headroom_bytes,
            "kv_tokens": self.kv_tokens,
            "engine_kv_tokens": self.engine_kv_tokens,
            "layouts_tried": [
                {"layout": c.layout.name, "gpus": c.layout.gpus, "bytes_per_gpu": c.bytes_per_gpu, "fits": c.fits,
                 "reason": c.reason}
                for c in self.checks
            ],
        }  # fmt: skip

    def table(self) -> str:
        """Every layout tried, one per line, with its bytes per GPU and whether it fits."""
        return "\n".join(str(check) for check in self.checks)

    def __repr__(self) -> str:
        return (
            f"<Fit {self.gpus} × {self.gpu.name} ({self.layout.name}): {format_bytes(self.footprint.per_gpu)} of "
            f"{format_bytes(self.usable_bytes)} usable per GPU>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("GPUs", f"{self.gpus} × {self.gpu.name}"),
            ("layout", self.layout.name),
            ("per GPU", format_bytes(self.footprint.per_gpu)),
            ("usable per GPU", f"{format_bytes(self.usable_bytes)} ({self.usable_bytes / self.gpu.memory_bytes:.0%})"),
            ("headroom", f"{format_bytes(self.headroom_bytes)}: {self.kv_tokens:,} more tokens of KV cache"),
        ]
        if self.engine_kv_tokens is not None:
            rows.append(("vLLM's KV cache", f"{self.engine_kv_tokens:,} tokens"))
        tried = "".join(
            f"<tr><td>{c.layout.gpus}</td><td>{html.escape(c.layout.name)}</td><td>{format_bytes(c.bytes_per_gpu)}"
            f"</td><td>{'fits' if c.fits else html.escape(c.reason)}</td></tr>"
            for c in self.checks
        )
        layouts = f"<details><summary>{len(self.checks)} layouts tried</summary><table>{tried}</table></details>"
        return html_card(f"Fit of {self.footprint.model}", rows) + layouts

    def __str__(self) -> str:
        caches = any(line.label.startswith("KV cache") for line in self.footprint.lines)
        headroom = (
            f"the headroom holds {self.kv_tokens:,} more tokens of KV cache" if caches else "no KV cache (training)"
        )
        if self.engine_kv_tokens is not None:
            headroom += (
                f"; vLLM would allocate {self.engine_kv_tokens:,} tokens of KV cache in blocks of "
                f"{VLLM_BLOCK_TOKENS} (the rest of its {self.usable_bytes / self.gpu.memory_bytes:.0%} share)"
            )
        return (
            f"{self.gpus} × {self.gpu.name} ({self.layout.name}): {format_bytes(self.footprint.per_gpu)} of "
            f"{format_bytes(self.usable_bytes)} usable per GPU; {headroom}"
        )


def fit(
    model: ModelSpec,
    gpu: str | Gpu,
    *,
    memory_utilization: float | None = None,
    gpus_per_node: int = 8,
    max_gpus: int = 1024,
    **options: Any,
) -> Fit:
    """The fewest GPUs whose memory holds ``footprint(model, **options)``, and the layout that does it.

    The layouts tried, fewest GPUs first: tensor parallel inside a node (1, 2, 4 ... ``gpus_per_node``); for a
    mixture of experts, expert parallelism with data-parallel attention (``ep``, as SGLang and vLLM deploy
    DeepSeek); tensor parallel inside nodes with pipeline stages across them; tensor parallel across nodes
    (TP16 on two nodes of 8). At the same count they are preferred in that order (the least traffic between
    nodes first). A ``tp``, ``pp`` or ``ep`` among the options fixes that degree; every other option reaches the
    footprint as given, so the fit's per-GPU bytes are ``footprint(model, tp=fit.tp, pp=fit.pp, ep=fit.ep,
    **options).per_gpu``. ``checks`` lists every layout tried with its bytes per GPU and, for those that do
    not fit, by how much (``Fit.table()`` prints them).

    ``memory_utilization`` is the share of each GPU's memory the engine may use: by default vLLM's
    ``gpu_memory_utilization`` default, 0.9 (the rest is the CUDA context and the engine's own buffers), an
    assumption labelled as one; 1.0 for ``engine="llama.cpp"`` or ``"ollama"``, whose reservations the footprint
    already counts and which take no share. ``kv_tokens`` is how many more tokens of KV cache fit in what is left, over
    all attention replicas (0 for a training footprint, which keeps no cache).

    Raises:
        ValueError: if no layout up to ``max_gpus`` holds the model (the message lists the closest tried).
    """
    if memory_utilization is None:
        memory_utilization = 1.0 if options.get("engine") in ("llama.cpp", "ollama") else 0.9
    if not 0 < memory_utilization <= 1:
        raise ValueError(f"memory_utilization is a share of each GPU's memory, in (0, 1]; got {memory_utilization}")
    if gpus_per_node < 1 or max_gpus < 1:
        raise ValueError(f"gpus_per_node and max_gpus must be at least 1, got {gpus_per_node} and {max_gpus}")
    chosen = get_gpu(gpu)
    usable = int(chosen.memory_bytes * memory_utilization)
    fixed: dict[str, int] = {key: options.pop(key) for key in ("tp", "pp", "ep") if key in options}
    checks: list[LayoutCheck] = []
    found: tuple[Layout, Footprint] | None = None
    for layout in _layouts(model, gpus_per_node, max_gpus, fixed):
        if found is not None and layout.gpus > found[0].gpus:
            break  # the alternatives at the chosen count are tried too, then no more
        result = footprint(model, tp=layout.tp, pp=layout.pp, ep=layout.ep, **options)
        fits = result.per_gpu <= usable
        reason = "" if fits else f"{format_bytes(result.per_gpu - usable)} over the {format_bytes(usable)} usable"
        checks.append(LayoutCheck(layout, result.per_gpu, fits, reason))
        if fits and found is None:
            found = (layout, result)
    if found is None:
        closest = sorted(checks, key=lambda check: check.bytes_per_gpu)[:3]
        tried = "; ".join(
            f"{c.layout.name} on {c.layout.gpus} needs {format_bytes(c.bytes_per_gpu)} per GPU" for c in closest
        )
        fixing = "".join(f", {key}={value}" for key, value in fixed.items())
        raise ValueError(
            f"{model.name} does not fit on {max_gpus} {chosen.name} GPUs at {memory_utilization:.0%} use{fixing}"
            + (f" (closest: {tried})" if tried else "")
        )
    layout, result = found
    per_token = _kv_per_token(model, layout, options)
    replicas = layout.ep // layout.tp if layout.ep > 1 else 1
    tokens = (usable - result.per_gpu) // per_token * replicas if per_token else 0
    allocated = None
    if options.get("engine") == "vllm" and per_token:  # vLLM gives the KV cache all of the share that is left
        kv = result.line("KV cache")
        others = result.per_gpu - (kv.bytes if kv.per_gpu is None else kv.per_gpu)
        allocated = (usable - others) // (per_token * VLLM_BLOCK_TOKENS) * VLLM_BLOCK_TOKENS * replicas
    return Fit(chosen, layout.gpus, layout.tp, layout.pp, usable, result, tokens, layout.ep, tuple(checks), allocated)


def _layouts(model: ModelSpec, per_node: int, most: int, fixed: dict[str, int]) -> list[Layout]:
    """The layouts to try, fewest GPUs first, then in the order of preference at the same count."""
    powers = _powers_of_two(most)
    candidates = [Layout(tp, 1, 1, per_node) for tp in powers if tp <= per_node]  # tensor parallel in a node
    if model.num_experts:
        candidates += [Layout(1, 1, ep, per_node) for ep in powers if ep > 1]  # EP with data-parallel attention
    candidates += [Layout(per_node, pp, 1, per_node) for pp in range(2, most // per_node + 1)]  # PP across nodes
    candidates += [Layout(tp, 1, 1, per_node) for tp in powers if tp > per_node]  # TP across nodes
    if fixed:
        tps = [fixed["tp"]] if "tp" in fixed else powers
        pps = [fixed["pp"]] if "pp" in fixed else range(1, most + 1)
        eps = [fixed["ep"]] if "ep" in fixed else [1, *(p for p in powers if p > 1 and model.num_experts)]
        candidates = [
            Layout(tp, pp, ep, per_node)
            for ep in eps
            for tp in tps
            for pp in pps
            if (ep == 1 or ep % tp == 0) and (ep if ep > 1 else tp) * pp <= most
        ]
    order = {id(layout): index for index, layout in enumerate(candidates)}
    return sorted(candidates, key=lambda layout: (layout.gpus, order[id(layout)]))


def _kv_per_token(model: ModelSpec, layout: Layout, options: dict[str, Any]) -> int:
    """Bytes per GPU one more token of KV cache takes (0 for a training footprint, which keeps no cache)."""
    if options.get("training") is not None:
        return 0
    probe = {**options, "context": 1, "batch": 1}
    line = footprint(model, tp=layout.tp, pp=layout.pp, ep=layout.ep, **probe).line("KV cache")
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

    def __repr__(self) -> str:
        return (
            f"<Roofline {self.gpus} × {self.gpu.name}: prefill ≥ {self.prefill_seconds * 1e3:,.1f} ms, decode ≤ "
            f"{self.decode_tokens_per_second:,.1f} tokens/s{self._cost()}>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("GPUs", f"{self.gpus} × {self.gpu.name}"),
            ("prefill at least", f"{self.prefill_seconds * 1e3:,.1f} ms ({self.prefill_flops:.3g} FLOPs)"),
            ("decode at most", f"{self.decode_tokens_per_second:,.1f} tokens/s"),
            ("read per decode step", format_bytes(int(self.decode_bytes_per_step))),
        ]
        if self.cost_per_million_tokens is not None:
            rows.append(("cost at least", f"{self.cost_per_million_tokens:,.4g} per million output tokens"))
        return html_card("Time bounds (not predictions)", rows, self.formula)

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
    if not chosen.bandwidth_gbs > 0 or not chosen.bf16_tflops > 0:
        raise ValueError(f"{chosen.name} has no bandwidth or throughput figures: a time bound needs them")
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


_LAYOUT_OPTIONS = ("tp", "pp", "dp", "ep", "zero", "training", "activations", "recompute")
"""Footprint options that do not change what a decode step reads over all its GPUs (the bound sums them)."""


def _element_bits(weights: str) -> int:
    """The operand width the matrix multiplies run at for this storage (16 where engines dequantize first)."""
    chosen = resolve(weights)
    if isinstance(chosen, FileType):
        return 16  # llama.cpp's types: dequantized blocks (or 8-bit dot products), no low-precision tensor cores
    return chosen.rule.matmul_bits(chosen)
