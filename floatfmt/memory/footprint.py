"""What a model takes in memory: weights in any scheme (scales itemised), and the KV cache, with the arithmetic.

Example:
    >>> from floatfmt.memory import footprint, load_model
    >>> fp = footprint(load_model("llama-3.1-8b"), weights="bf16", kv_cache="bf16", context=8192)
    >>> fp.total, fp.line("KV cache").bytes        # 16.06 GB of weights, 1.07 GB of cache
    (17134264320, 1073741824)
"""

from __future__ import annotations

import fnmatch
import functools
import html
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floatfmt._display import aligned_bytes, format_bytes
from floatfmt.io import open_weights
from floatfmt.memory.engines import ENGINES, kv_window, prefill_peak, runtime_bytes
from floatfmt.memory.model import COMPONENTS, ModelSpec, Tensor, TensorGroup
from floatfmt.quant.filetypes import FileType, group_types
from floatfmt.quant.scheme import Scheme
from floatfmt.quant.storage import cache_bytes, ggml_scheme, resolve, resolve_scheme

__all__ = [
    "ENGINES",
    "OPTIMIZERS",
    "Footprint",
    "Line",
    "checkpoint_footprint",
    "component_of",
    "footprint",
    "native_storage",
    "tensor_storage",
]

OPTIMIZERS = {
    "adam": (2, 12, "fp32 master weights, momentum and variance (mixed precision, as in the ZeRO paper)"),
    "adamw": (2, 12, "fp32 master weights, momentum and variance (mixed precision)"),
    "adam_8bit": (2, 6, "fp32 master weights, 8-bit momentum and variance (bitsandbytes)"),
    "sgd": (2, 8, "fp32 master weights and momentum"),
}
"""Per parameter, in training: bytes of (BF16) gradients, bytes of optimizer states, and what the states are.
With the 2-byte weights, mixed-precision Adam is the ZeRO paper's 2 + 2 + 12 = 16 bytes per parameter."""

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projections LoRA adapts by default (PEFT's ``target_modules="all-linear"`` for these models)."""

RECOMPUTE = ("none", "selective", "full")

KEEP = "stored"
"""An override value that keeps a tensor in the model's stored dtype."""


@dataclass(frozen=True)
class Line:
    """One item of a footprint: what it is, its bytes, and how they were computed."""

    label: str
    bytes: int
    formula: str = ""
    estimate: bool = False
    per_gpu: int | None = None
    """This line's bytes on each GPU, when the model is spread over several (``None``: all on one)."""

    @property
    def gb(self) -> float:
        return self.bytes / 1e9

    @property
    def gib(self) -> float:
        return self.bytes / 2**30


@dataclass(frozen=True, repr=False)
class Footprint:
    """Itemised memory of a model: ``lines`` and their ``total`` (every byte exact unless a line says estimate)."""

    model: str
    lines: list[Line] = field(default_factory=list)
    gpus: int = 1

    @property
    def total(self) -> int:
        """Bytes of one copy of everything (data-parallel replicas not multiplied in)."""
        return sum(line.bytes for line in self.lines)

    @property
    def per_gpu(self) -> int:
        """Bytes on each GPU: shards of the weights, KV cache and training states, as the layout splits them."""
        return sum(line.bytes if line.per_gpu is None else line.per_gpu for line in self.lines)

    def line(self, label: str) -> Line:
        """The line whose label starts with ``label``."""
        for line in self.lines:
            if line.label.startswith(label):
                return line
        raise KeyError(f"no line {label!r}; lines: {', '.join(line.label for line in self.lines)}")

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {
                "label": x.label,
                "bytes": x.bytes,
                "per_gpu": x.bytes if x.per_gpu is None else x.per_gpu,
                "gb": x.gb,
                "gib": x.gib,
                "formula": x.formula,
                "estimate": x.estimate,
            }
            for x in self.lines
        ]
        return {
            "model": self.model,
            "total": self.total,
            "total_gb": self.total / 1e9,
            "total_gib": self.total / 2**30,
            "gpus": self.gpus,
            "per_gpu": self.per_gpu,
            "per_gpu_gb": self.per_gpu / 1e9,
            "per_gpu_gib": self.per_gpu / 2**30,
            "lines": rows,
        }

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.as_dict()["lines"])

    def __repr__(self) -> str:
        spread = f", {format_bytes(self.per_gpu)} on each of {self.gpus} GPUs" if self.gpus > 1 else ""
        return f"<Footprint of {self.model}: {format_bytes(self.total)}{spread}>"

    def __str__(self) -> str:
        width = max([len(x.label) for x in self.lines] + [5])
        rows = [f"Memory of {self.model}"]
        for x in self.lines:
            note = f"  {x.formula}" if x.formula else ""
            rows.append(f"  {x.label:<{width}}  {aligned_bytes(x.bytes)}{' (estimate)' if x.estimate else ''}{note}")
        rows.append(f"  {'total':<{width}}  {aligned_bytes(self.total)}")
        if self.gpus > 1:
            rows.append(f"  {'per GPU':<{width}}  {aligned_bytes(self.per_gpu)}  on each of {self.gpus} GPUs")
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
    """Bytes of a tensor in a scheme, a GGML type (``Q4_K``, ``F32``, ...) or a plain format:
    (element codes, overhead: scales, zero points, padding)."""
    return _shape_storage(tensor.shape, storage)


@functools.lru_cache(maxsize=4096)
def _shape_storage(shape: tuple[int, ...], storage: Scheme | str) -> tuple[int, int]:
    """:func:`tensor_storage` by shape: a model repeats a few dozen shapes over thousands of tensors."""
    layout = resolve_scheme(storage).layout(shape)
    return layout.element_bytes, layout.overhead_bytes


@functools.lru_cache(maxsize=64)
def _component_bytes(
    model: ModelSpec, weights: Scheme | str, overrides: tuple[tuple[str, Scheme | str], ...], stored: str
) -> tuple[tuple[str, int, int, int, str], ...]:
    """Per component: (component, element bytes, overhead bytes, parameters, the storages that add the overhead).
    One pass over the model's tensors,
    kept for the layouts ``fit`` tries and the lines ``footprint`` builds."""
    chosen = resolve(weights)
    patterns = tuple(pattern for pattern, _ in overrides)
    # a layer's routed experts are priced once when no pattern can tell their numbers apart (globs with no
    # digits, "?" or "[": such a glob matches a name whatever number stands where)
    folded = not any(character.isdigit() or character in "?[" for pattern in patterns for character in pattern)
    groups = list(model.tensor_groups()) if folded else [TensorGroup(t) for t in model.tensors()]
    llama_cpp = None
    if isinstance(chosen, FileType):
        llama_cpp = {id(group): kind for group, kind in group_types(model, chosen.name, groups=groups)}
    sums: dict[str, list[int]] = {}
    scaled: dict[str, dict[str, None]] = {}  # per component, the storages whose scales it holds, in order
    first_match = _first_match(patterns)
    for group in groups:
        tensor, count = group.first, group.count
        storage: Scheme | str
        own = tensor.dtype or stored
        if llama_cpp is not None:
            ggml_name = llama_cpp.get(id(group))
            if ggml_name is None and tensor.component == "mtp":
                continue  # not in the GGUF: the converter drops this architecture's MTP layers
            storage = ggml_scheme(ggml_name) if ggml_name is not None else own
        else:
            assert isinstance(chosen, Scheme)
            matrix = len(tensor.shape) >= 2 and tensor.part not in ("router", "vision", "projector")
            storage = chosen if matrix else own
        if first_match is not None and (found := first_match(tensor.name)) is not None:
            which = next(name for name, text in found.groupdict().items() if text is not None and name[0] == "p")
            value = overrides[int(which[1:])][1]
            storage = own if value == KEEP else value
        elements, overhead = tensor_storage(tensor, storage)
        component = sums.setdefault(tensor.component, [0, 0, 0])
        component[0] += elements * count
        component[1] += overhead * count
        component[2] += tensor.size * count
        if overhead:
            scaled.setdefault(tensor.component, {})[storage.name if isinstance(storage, Scheme) else storage] = None
    return tuple(
        (component, elements, overhead, params, ", ".join(scaled.get(component, {})))
        for component, (elements, overhead, params) in sums.items()
    )


@dataclass(frozen=True)
class NativeStorage:
    """How a model's own checkpoint stores its weights: the storage of its matrices, the tensors that differ from
    it (glob patterns, the first match wins), and a label saying so."""

    weights: str
    overrides: dict[str, str]
    label: str


DEEPSEEK_FP8_KEPT = ("*embed_tokens*", "lm_head*", "*shared_head.head*", "*eh_proj*", "*indexer.weights_proj*")
"""The matrices DeepSeek-V3/R1's FP8 checkpoints keep in BF16: embeddings, output heads, the MTP ``eh_proj``
(from a listing of the published shards' headers; ``quantization_config`` does not name them), and V3.2's
indexer head weights (which vLLM and SGLang load unquantized)."""


def native_storage(model: ModelSpec) -> NativeStorage:
    """The storage of ``model``'s published checkpoint, from its ``quantization_config``: block-scaled FP8
    (DeepSeek's ``quant_method: fp8`` with ``weight_block_size``), MXFP4 outside ``modules_to_not_convert``
    (gpt-oss), or the config's ``torch_dtype`` (BF16 if it has none) for a checkpoint that ships unquantized.

    Raises:
        ValueError: for a ``quantization_config`` whose method floatfmt cannot count (say which, and to pass
            ``weights=`` for the storage you mean).
    """
    stored = str(model.config.get("torch_dtype") or "bfloat16")
    config = model.config.get("quantization_config")
    if not isinstance(config, Mapping):
        return NativeStorage(stored, {}, stored)
    method = str(config.get("quant_method", ""))
    if method == "fp8" and config.get("weight_block_size"):
        rows, cols = config["weight_block_size"]
        fmt = str(config.get("fmt", "e4m3"))
        if (rows, cols) != (128, 128) or fmt != "e4m3":
            raise ValueError(f"{model.name}: FP8 {fmt} blocks of {rows}×{cols} have no scheme yet; pass weights=")
        kept = dict.fromkeys(DEEPSEEK_FP8_KEPT, KEEP)
        return NativeStorage("fp8_e4m3_block128", kept, "FP8 e4m3 in 128×128 tiles, embeddings and heads BF16")
    if method == "mxfp4":
        skipped = [str(m) for m in config.get("modules_to_not_convert", [])]
        quantized: dict[str, str] = {}
        for tensor in model.tensors():
            if len(tensor.shape) < 2 or tensor.name.endswith("bias") or tensor.part == "router":
                continue
            if any(fnmatch.fnmatchcase(tensor.name, f"{module}*") for module in skipped):
                continue
            quantized[_pattern_of(tensor.name)] = "mxfp4"
        return NativeStorage(stored, quantized, "MXFP4 experts, the rest BF16")
    raise ValueError(
        f"{model.name}: its checkpoint is quantized with {method!r}, which floatfmt does not count yet; pass "
        "weights= (and overrides=) for the storage you mean"
    )


def _pattern_of(name: str) -> str:
    """A tensor name with its layer and expert numbers as wildcards: the pattern for every tensor like it."""
    return ".".join("*" if part.isdigit() else part for part in name.split("."))


def _first_match(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None] | None:
    """One regular expression for glob ``patterns`` whose match names (``p<i>``) the first pattern that matches a
    whole name, as trying them in order with ``fnmatchcase`` would (alternatives are tried left to right)."""
    if not patterns:
        return None
    alternatives = "|".join(f"(?P<p{i}>{fnmatch.translate(pattern)})" for i, pattern in enumerate(patterns))
    return re.compile(alternatives).match


def footprint(
    model: ModelSpec,
    *,
    weights: Scheme | str | None = None,
    kv_cache: str = "bf16",
    context: int = 4096,
    batch: int = 1,
    overrides: Mapping[str, Scheme | str] | None = None,
    stored_dtype: str | None = None,
    training: str | None = None,
    zero: int = 0,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = LORA_TARGETS,
    activations: bool = False,
    recompute: str = "none",
    engine: str = "none",
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    ep: int = 1,
) -> Footprint:
    """Weights and KV cache of ``model``: weights per component in ``weights`` (a scheme or a format), with their
    scales itemised; matrices only (norms, biases and the MoE router stay in ``stored_dtype``, the model's own
    dtype by default); ``overrides`` maps glob patterns of tensor names to another scheme or ``"stored"``.
    ``weights=None`` (the default) is the storage the model's own checkpoint ships in (:func:`native_storage`:
    DeepSeek-R1's FP8, gpt-oss's MXFP4 experts, BF16 for most), its overrides after yours.

    ``training`` adds gradients and optimizer states (a name from :data:`OPTIMIZERS`), partitioned over ``dp``
    data-parallel ranks by ZeRO stage ``zero`` (1: optimizer states, 2: and gradients, 3: and weights).
    ``lora_rank`` trains LoRA adapters of that rank on the ``lora_targets`` projections instead of the whole
    model: the base weights stay frozen in ``weights`` (``"nf4"`` makes it QLoRA) and only the adapters get
    gradients and optimizer states. ``activations`` adds an estimate of activation memory: for inference the
    peak of one layer's transients while prefilling ``batch × context`` tokens; for training the activations
    kept for the backward pass (Korthikanti et al. 2022, adapted to SwiGLU, grouped-query attention and
    FlashAttention; ``recompute`` ``"none"``, ``"selective"`` or ``"full"``). Both are labelled estimates.
    ``engine`` adds that engine's runtime reservation on every GPU (:mod:`floatfmt.memory.engines`; labelled
    as estimates: measure yours). vLLM's ``gpu_memory_utilization`` is a share, not a size: see :func:`fit`.
    ``tp`` and ``pp`` give each GPU's share (``per_gpu``): weights and states split evenly (an estimate: norms
    and routers are in truth replicated); the KV cache split by layers over ``pp`` and by KV heads over ``tp``,
    each rank keeping at least one head (heads are replicated when ``tp`` exceeds them) and the whole MLA latent
    (it has no heads to split), as vLLM and SGLang shard them; activations by ``tp`` only (under 1F1B the first
    pipeline stage holds ``pp`` micro-batches of its layers, as much as the whole model's for one). ``batch`` is
    per data-parallel replica.

    ``ep`` is expert parallelism for a mixture of experts, as SGLang and vLLM deploy DeepSeek: each pipeline
    stage runs on ``ep`` GPUs that hold ``1/ep`` of its routed experts each, while attention runs data parallel
    over groups of ``tp`` of them (``ep / tp`` attention replicas, each serving its own ``batch`` of sequences
    with its own KV cache: no latent replicated across ranks) and the other weights are split ``tp`` ways.

    Raises:
        ValueError: for an unknown scheme, format or optimizer, or a layout or size that cannot be.
    """
    if context < 0 or batch < 0:
        raise ValueError(f"context and batch must be non-negative, got {context} and {batch}")
    if min(tp, pp, dp, ep) < 1 or zero not in (0, 1, 2, 3):
        raise ValueError(
            f"tp, pp, dp and ep must be at least 1 and zero one of 0-3; got {tp}, {pp}, {dp}, {ep}, {zero}"
        )
    if ep > 1 and (not model.num_experts or ep % tp):
        problem = "has no routed experts to split" if not model.num_experts else f"cannot group ep={ep} GPUs by tp={tp}"
        raise ValueError(f"{model.name} {problem}: ep is expert parallelism for a mixture of experts, a multiple of tp")
    if training is not None and training not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {training!r}; choose one of {', '.join(OPTIMIZERS)}")
    stored = stored_dtype or str(model.config.get("torch_dtype") or "bfloat16")
    if weights is None:
        native = native_storage(model)
        weights, overrides = native.weights, {**(overrides or {}), **native.overrides}
        described = f"its checkpoint's storage: {native.label}"
    else:  # the storage's name as it is spelled, not as it was typed
        described = f"{weights.name if isinstance(weights, Scheme) else resolve(weights).name} weights"
    by_component = _component_bytes(model, weights, tuple((overrides or {}).items()), stored)
    model_split: float = tp * pp
    zero_split = dp if training and zero == 3 else 1
    stage_gpus = ep if ep > 1 else tp  # the GPUs of one pipeline stage

    def share(total: int, split: float) -> int | None:
        return None if split == 1 else math.ceil(total / split)

    def split_of(component: str) -> int:
        return (stage_gpus if component == "experts" else tp) * pp * zero_split

    lines = []
    for component, elements, overhead, params, scaled_by in by_component:
        split = split_of(component)
        lines.append(Line(f"weights: {component}", elements, f"{params:,} parameters", per_gpu=share(elements, split)))
        if overhead:
            formula = f"{scaled_by} block scales, zero points, padding"
            lines.append(Line(f"scales: {component}", overhead, formula, per_gpu=share(overhead, split)))
    if ep > 1:  # the parameters one GPU holds, for the training states that follow them
        counts = model.params_by_component()
        on_one = counts["experts"] / ep + (model.num_params - counts["experts"]) / tp
        model_split = model.num_params / on_one * pp
    if recompute not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE)}, got {recompute!r}")
    if lora_rank < 0:
        raise ValueError(f"lora_rank must be non-negative, got {lora_rank}")
    trainable = model.num_params
    if lora_rank:
        targets = [t for t in model.tensors() if len(t.shape) == 2 and any(f".{n}." in t.name for n in lora_targets)]
        trainable = sum(lora_rank * (t.shape[0] + t.shape[1]) for t in targets)
        adapter_formula = f"rank {lora_rank} × (in + out) over {len(targets)} matrices: {trainable:,} parameters, BF16"
        lines.append(Line("LoRA adapters", 2 * trainable, adapter_formula, per_gpu=share(2 * trainable, model_split)))
    if training is not None:
        gradient_bytes, state_bytes, description = OPTIMIZERS[training]
        params = trainable
        gradient_split = model_split * (dp if zero >= 2 else 1)
        state_split = model_split * (dp if zero >= 1 else 1)
        lines.append(
            Line(
                f"gradients ({training})",
                gradient_bytes * params,
                f"{gradient_bytes} B × {params:,} parameters",
                per_gpu=share(gradient_bytes * params, gradient_split),
            )
        )
        lines.append(
            Line(
                f"optimizer states ({training})",
                state_bytes * params,
                f"{state_bytes} B × {params:,} parameters: {description}",
                per_gpu=share(state_bytes * params, state_split),
            )
        )
    window, window_rule = kv_window(engine, model)
    kv = math.ceil(cache_bytes(model.kv_elements(context, window) * batch, kv_cache))
    if model.kv_lora_rank:
        formula = (
            f"{batch} × {context:,} tokens × {model.cached_layers} layers × (kv_lora_rank {model.kv_lora_rank} + "
            f"rope {model.qk_rope_head_dim}) × {kv_cache}"
        )
    else:
        formula = (
            f"{batch} × {context:,} tokens × {model.cached_layers} layers × 2 (K, V) × {model.num_kv_heads} KV heads "
            f"× {model.head_dim} × {kv_cache}"
        )
    if window_rule:
        formula += f"; {window_rule}"
    if model.kv_lora_rank:
        heads_per_gpu = 1.0  # the latent is replicated on every tensor-parallel rank
    else:
        heads_per_gpu = max(1, model.num_kv_heads // tp) / model.num_kv_heads
    kv_per_gpu = math.ceil(kv * heads_per_gpu * math.ceil(model.num_layers / pp) / model.num_layers)
    if ep > 1:
        formula += f"; per attention replica ({ep // tp} of them, each its own {batch} sequences)"
    if training is None:  # a training step runs whole sequences: it keeps activations, not a KV cache
        lines.append(Line(f"KV cache ({kv_cache})", kv, formula, per_gpu=kv_per_gpu if tp * pp > 1 else None))
    if training is None and model.index_heads:  # DeepSeek-V3.2: the indexer's keys, FP8 with a scale per 128
        per_token = model.index_head_dim + 4 * -(-model.index_head_dim // 128)
        indexer = batch * context * model.cached_layers * per_token
        indexer_formula = (
            f"{batch} × {context:,} tokens × {model.cached_layers} layers × ({model.index_head_dim} FP8 + 4 B scale "
            "per 128) bytes, as vLLM and SGLang cache the indexer's keys"
        )
        lines.append(Line("indexer key cache (fp8)", indexer, indexer_formula, per_gpu=share(indexer, pp)))
    if training is None and model.linear_state_elements:  # Qwen3-Next's linear layers: a state, not a cache
        state = math.ceil(cache_bytes(model.linear_state_elements * batch, kv_cache))
        linear = model.num_layers - model.cached_layers
        state_formula = (
            f"{batch} sequences × {linear} linear-attention layers × (convolution {model.linear_conv_kernel - 1} "
            f"steps of its channels + a {model.linear_key_head_dim} × {model.linear_value_head_dim} state per "
            f"value head) × {kv_cache}, whatever the context"
        )
        lines.append(Line(f"linear-attention state ({kv_cache})", state, state_formula, per_gpu=share(state, tp * pp)))
    gpus = stage_gpus * pp * dp
    if engine != "none":
        reserved, note = runtime_bytes(engine, model, context=context, batch=batch, kv_cache=kv_cache)
        lines.append(
            Line(
                f"runtime ({engine}, per GPU)",
                reserved * gpus,
                note,
                estimate=True,
                per_gpu=reserved if gpus > 1 else None,
            )
        )
    if activations:
        estimate, formula = _activations(model, context, batch, training is not None, recompute)
        if pp > 1:  # neither kind of work spreads over the pipeline's stages
            formula += (
                f"; per GPU / tp only: under 1F1B the first of {pp} stages holds {pp} micro-batches of its "
                f"{math.ceil(model.num_layers / pp)} layers (Korthikanti et al. 2022, §4.2)"
                if training is not None
                else f"; per GPU / tp only: each of {pp} stages peaks at one layer's transients"
            )
        lines.append(Line("activations", estimate, formula, estimate=True, per_gpu=share(estimate, tp)))
    layout = f", tp={tp} pp={pp} dp={dp}" + (f" ep={ep}" if ep > 1 else "") if gpus > 1 else ""
    return Footprint(f"{model.name} ({described}{layout})", lines, gpus=gpus)


def _activations(model: ModelSpec, context: int, batch: int, training: bool, recompute: str) -> tuple[int, str]:
    """Activation bytes (16-bit) for ``batch × context`` tokens, and the formula used."""
    h = model.hidden_size
    if model.kv_lora_rank:
        q = model.num_heads * (model.qk_nope_head_dim + model.qk_rope_head_dim)
        kv = (q + model.num_heads * model.v_head_dim) // 2
    else:
        q, kv = model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
    inner = model.active_mlp_width
    tokens = batch * context
    logits = 4 * tokens * model.vocab_size  # float32 logits for the loss
    if not training:
        peak, formula = prefill_peak(model, tokens, batch)
        return peak, f"inference, one layer at a time: {formula}"
    per_layer = 8 * h + 4 * q + 4 * kv + 6 * inner  # bytes per token per layer, 16-bit
    if recompute == "full":
        kept = tokens * 2 * h * model.num_layers + tokens * per_layer
        formula = (
            f"full recomputation: layer inputs {tokens:,} × 2 B × {h} × {model.num_layers} layers, plus one layer "
            f"recomputed ({per_layer} B per token)"
        )
    else:
        kept = tokens * per_layer * model.num_layers
        formula = (
            f"{tokens:,} tokens × {model.num_layers} layers × (8h + 4q + 4kv + 6·MLP) = {per_layer} B per token "
            f"per layer (h={h}, q={q}, kv={kv}, MLP={inner}; Korthikanti et al. 2022 without dropout, with "
            "FlashAttention, so selective recomputation saves nothing more)"
        )
    return kept + logits, formula + f"; + float32 logits {tokens:,} × {model.vocab_size} × 4 B"


_COMPONENT_PATTERNS = [  # (substring of the tensor name, component); the first match wins
    ("embed_tokens", "embedding"),
    ("token_embd", "embedding"),  # GGUF's names (llama.cpp's tensor map) from here to "ffn_"
    ("shared_head.head", "head"),
    ("lm_head", "head"),
    ("shared_expert", "shared_experts"),
    ("_shexp", "shared_experts"),
    (".experts", "experts"),
    ("_exps", "experts"),
    ("mlp.gate.", "router"),
    ("mlp.router", "router"),
    ("block_sparse_moe.gate", "router"),
    ("ffn_gate_inp", "router"),
    ("vision_tower", "vision"),
    ("multi_modal_projector", "projector"),
    ("norm", "norm"),
    ("output.weight", "head"),
    ("attn", "attention"),
    ("mlp", "mlp"),
    ("ffn_", "mlp"),
]
_SCALE_SUFFIXES = ("_scale", "_scale_inv", "_scales", ".scales", "_zeros", ".qzeros", ".absmax", "_scale_2")


def component_of(name: str, num_layers: int | None = None) -> str:
    """The component a checkpoint tensor belongs to, from its name (layers past ``num_layers`` are MTP)."""
    if num_layers is not None and ".layers." in name:
        index = name.split(".layers.", 1)[1].split(".", 1)[0]
        if index.isdigit() and int(index) >= num_layers:
            return "mtp"
    for pattern, component in _COMPONENT_PATTERNS:
        if pattern in name:
            return component
    return "other"


def checkpoint_footprint(path: str | Any, model: ModelSpec | None = None, **options: Any) -> Footprint:
    """Exact bytes of a checkpoint from its headers alone, by component and storage dtype, with quantization
    scale tensors (``weight_scale_inv``, ``*_scale``, ``*_scales``, zero points) itemised as overhead.

    With ``model`` (the checkpoint's config as a :class:`ModelSpec`), the KV cache, runtime, training and
    activation lines of ``footprint(model, **options)`` follow the weights, so the total is what serving or
    training this very checkpoint takes.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from floatfmt.io import save_safetensors
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = save_safetensors(folder / "model.safetensors", {
        ...     "model.layers.0.mlp.up_proj.weight": np.zeros((256, 128), np.uint8),
        ...     "model.layers.0.mlp.up_proj.weight_scale_inv": np.ones((2, 1), np.float32)})
        >>> [(line.label, line.bytes) for line in checkpoint_footprint(folder).lines]
        [('weights: mlp (U8)', 32768), ('scales: mlp (F32)', 8)]
    """
    weights = open_weights(path)
    layers = None
    config = (
        Path(weights.path) / "config.json" if Path(weights.path).is_dir() else Path(weights.path).parent / "config.json"
    )
    if config.is_file():
        try:
            layers = int(json.loads(config.read_text(encoding="utf-8")).get("num_hidden_layers"))
        except (ValueError, TypeError, json.JSONDecodeError):
            layers = None
    totals: dict[tuple[str, str, str], list[int]] = {}
    for name, info in weights.tensors.items():
        kind = "scales" if name.endswith(_SCALE_SUFFIXES) else "weights"
        key = (kind, component_of(name, layers), info.dtype)
        sums = totals.setdefault(key, [0, 0, 0])
        sums[0] += info.nbytes
        sums[1] += info.size
        sums[2] += 1
    order = [*COMPONENTS, "other"]
    lines = [
        Line(f"{kind}: {component} ({dtype})", nbytes, f"{count} tensors, {size:,} values")
        for (kind, component, dtype), (nbytes, size, count) in sorted(
            totals.items(), key=lambda item: (order.index(item[0][1]), item[0][0] == "scales", item[0][2])
        )
    ]
    weights.close()
    gpus = 1
    if model is not None:
        rest = footprint(model, **options)
        lines += [line for line in rest.lines if not line.label.startswith(("weights:", "scales:"))]
        gpus = rest.gpus
    return Footprint(f"checkpoint {weights.path} (as stored, from its headers)", lines, gpus=gpus)
