"""Model architectures as data: every weight tensor a checkpoint holds, with its shape and component.

A ``ModelSpec`` is built from a Hugging Face ``config.json`` (or a preset). Its
:meth:`ModelSpec.tensors` lists the weights by the names and shapes the
checkpoints use, so parameter counts, bytes in any scheme (scales included,
from ``Scheme.storage_bytes``) and per-component sums all come from one list,
the same one a checkpoint's safetensors headers give.

Example:
    >>> from floatfmt.memory import ModelSpec
    >>> tiny = ModelSpec.from_config({"model_type": "llama", "vocab_size": 1000, "hidden_size": 64,
    ...     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128})
    >>> tiny.num_params, tiny.params_by_component()["attention"]
    (202048, 24576)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from floatfmt._display import format_bytes, html_card
from floatfmt.quant.storage import cache_bytes

__all__ = ["ARCHITECTURES", "ModelSpec", "Tensor", "TensorGroup", "UnsupportedModelError", "VisionTower"]


class UnsupportedModelError(ValueError):
    """A config floatfmt cannot count exactly; the message names what is missing."""


@dataclass(frozen=True)
class Tensor:
    """One weight: its checkpoint name, shape, and the component it is counted in.

    ``role`` is the component it would be in a main layer, for the MTP layer's tensors (whose router stays
    unquantized like any router); ``dtype`` the checkpoint's own dtype where it differs from the model's
    (DeepSeek's router correction bias is float32 in a bfloat16 model).
    """

    name: str
    shape: tuple[int, ...]
    component: str
    layer: int | None = None
    role: str | None = None
    dtype: str | None = None

    @property
    def part(self) -> str:
        """What the tensor does: its ``role`` if it has one, else its component."""
        return self.role or self.component

    @property
    def size(self) -> int:
        return math.prod(self.shape)


EXPERT_INDEX = "{expert}"
"""Where a routed expert's number goes in the names of :class:`_Experts`' block."""


@dataclass(frozen=True)
class TensorGroup:
    """``count`` tensors alike in all but the expert number in their names (one projection of a layer's routed
    experts), or a single tensor (``count`` 1). ``first`` is the member numbered 0, ``template`` its name with
    the number as ``{expert}``. Sums over :meth:`ModelSpec.tensor_groups` equal sums over
    :meth:`ModelSpec.tensors` in ``count`` times fewer steps, for any rule that does not read the expert number.
    """

    first: Tensor
    count: int = 1
    template: str = ""

    def names(self) -> Iterator[str]:
        """The members' names, numbered 0 to ``count - 1``."""
        if self.count == 1 and not self.template:
            yield self.first.name
            return
        for expert in range(self.count):
            yield self.template.replace(EXPERT_INDEX, str(expert))


@dataclass(frozen=True)
class _Experts:
    """A layer's routed experts as a checkpoint stores them: ``block`` (one expert's tensors, ``{expert}`` in
    their names) once for each of ``count`` experts, in that order."""

    block: tuple[Tensor, ...]
    count: int

    def mapped(self, change: Callable[[Tensor], Tensor]) -> _Experts:
        return _Experts(tuple(change(t) for t in self.block), self.count)

    def tensors(self) -> Iterator[Tensor]:
        for expert in range(self.count):
            number = str(expert)
            for t in self.block:
                yield Tensor(t.name.replace(EXPERT_INDEX, number), t.shape, t.component, t.layer, t.role, t.dtype)

    def groups(self) -> Iterator[TensorGroup]:
        for t in self.block:
            yield TensorGroup(replace(t, name=t.name.replace(EXPERT_INDEX, "0")), self.count, t.name)


def _mapped(item: Tensor | _Experts, change: Callable[[Tensor], Tensor]) -> Tensor | _Experts:
    return item.mapped(change) if isinstance(item, _Experts) else change(item)


COMPONENTS = (
    "embedding", "attention", "mlp", "router", "experts", "shared_experts", "norm", "head", "mtp", "vision",
    "projector",
)  # fmt: skip
"""The components parameters are counted in; ``mtp`` is DeepSeek's multi-token-prediction module, ``vision`` and
``projector`` a multimodal model's image encoder and the projection of its features into the text model."""

NOT_PER_TOKEN = ("mtp", "vision", "projector")
"""Components a generated text token does not run through (MTP drafts, the image encoder runs per image)."""


@dataclass(frozen=True)
class VisionTower:
    """A SigLIP image encoder (``vision_config``) and Gemma 3's projector into a text model of ``text_hidden``.

    Named as the published checkpoints name them (``vision_tower.vision_model.*``,
    ``multi_modal_projector.*``); ``use_head`` is SigLIP's attention-pooling head, which Gemma 3 leaves out.
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    image_size: int
    patch_size: int
    text_hidden: int
    num_channels: int = 3
    use_head: bool = True

    def tensors(self) -> Iterator[Tensor]:
        h, inner, p = self.hidden_size, self.intermediate_size, self.patch_size
        v = "vision_tower.vision_model."
        yield Tensor(v + "embeddings.patch_embedding.weight", (h, self.num_channels, p, p), "vision")
        yield Tensor(v + "embeddings.patch_embedding.bias", (h,), "vision")
        yield Tensor(v + "embeddings.position_embedding.weight", ((self.image_size // p) ** 2, h), "vision")
        for layer in range(self.num_layers):
            prefix = f"{v}encoder.layers.{layer}."
            for name, shape in [
                ("layer_norm1", (h,)), ("self_attn.q_proj", (h, h)), ("self_attn.k_proj", (h, h)),
                ("self_attn.v_proj", (h, h)), ("self_attn.out_proj", (h, h)), ("layer_norm2", (h,)),
                ("mlp.fc1", (inner, h)), ("mlp.fc2", (h, inner)),
            ]:  # fmt: skip
                yield Tensor(f"{prefix}{name}.weight", shape, "vision", layer)
                yield Tensor(f"{prefix}{name}.bias", shape[:1], "vision", layer)
        yield Tensor(v + "post_layernorm.weight", (h,), "vision")
        yield Tensor(v + "post_layernorm.bias", (h,), "vision")
        if self.use_head:  # SiglipMultiheadAttentionPoolingHead
            head = v + "head."
            yield Tensor(head + "probe", (1, 1, h), "vision")
            yield Tensor(head + "attention.in_proj_weight", (3 * h, h), "vision")
            yield Tensor(head + "attention.in_proj_bias", (3 * h,), "vision")
            yield Tensor(head + "attention.out_proj.weight", (h, h), "vision")
            yield Tensor(head + "attention.out_proj.bias", (h,), "vision")
            yield Tensor(head + "layernorm.weight", (h,), "vision")
            yield Tensor(head + "layernorm.bias", (h,), "vision")
            yield Tensor(head + "mlp.fc1.weight", (inner, h), "vision")
            yield Tensor(head + "mlp.fc1.bias", (inner,), "vision")
            yield Tensor(head + "mlp.fc2.weight", (h, inner), "vision")
            yield Tensor(head + "mlp.fc2.bias", (h,), "vision")
        yield Tensor("multi_modal_projector.mm_input_projection_weight", (h, self.text_hidden), "projector")
        yield Tensor("multi_modal_projector.mm_soft_emb_norm.weight", (h,), "projector")


SIGLIP_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "image_size": 224,
                   "patch_size": 16, "num_channels": 3}  # fmt: skip
"""transformers' ``SiglipVisionConfig`` defaults, for the fields a ``vision_config`` leaves out."""

GEMMA3_TEXT_DEFAULTS = {"vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216,
                        "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                        "tie_word_embeddings": True, "sliding_window": 4096}  # fmt: skip
"""transformers' ``Gemma3TextConfig`` defaults: the published Gemma 3 configs give only what differs from them."""


@dataclass(frozen=True, repr=False)
class ModelSpec:
    """The numbers that fix a decoder-only transformer's weights, from its ``config.json``.

    Attention is multi-head latent attention (MLA) when ``kv_lora_rank`` is set, else grouped-query attention
    with ``num_kv_heads`` heads of ``head_dim``. Layers below ``first_dense_layers`` (all of them when
    ``num_experts`` is 0) have a dense SwiGLU MLP of ``intermediate_size``; the others route each token to
    ``experts_per_token`` of ``num_experts`` experts of ``moe_intermediate_size``, plus ``shared_experts``.
    ``layer_types`` marks sliding-window layers (``"sliding_attention"``) with ``sliding_window`` tokens, and
    Qwen3-Next's linear-attention layers (``"linear_attention"``: a gated delta net with ``linear_*`` heads and a
    causal convolution, which keeps a fixed-size state per sequence instead of a KV cache).
    """

    name: str
    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    tie_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False
    router_score_bias: bool = False
    expert_bias: bool = False
    fused_experts: bool = False
    first_dense_layers: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    mtp_layers: int = 0
    sliding_window: int = 0
    layer_types: tuple[str, ...] = ()
    attention_sinks: bool = False
    fused_projections: bool = False
    attention_output_gate: bool = False
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel: int = 0
    index_heads: int = 0
    index_head_dim: int = 0
    vision: VisionTower | None = None
    text_prefix: str = ""
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str | None = None) -> ModelSpec:
        """A spec from a Hugging Face ``config.json`` (as a dict).

        Raises:
            UnsupportedModelError: for an architecture floatfmt does not know, or a config missing a field.
        """
        wrapper, vision = config, None
        text = config.get("text_config")
        if config.get("model_type") == "gemma3":  # the multimodal wrapper: a partial text config and a vision one
            text = {**GEMMA3_TEXT_DEFAULTS, **(text if isinstance(text, Mapping) else {}), "model_type": "gemma3_text"}
            config = {key: value for key, value in config.items() if key not in ("text_config", "vision_config")}
            config = {**config, **text}
            vision = _vision_tower(wrapper.get("vision_config"), int(config["hidden_size"]))
        elif isinstance(text, Mapping) and "hidden_size" not in config:  # other wrappers: the text model alone
            config = {**text, "model_type": text.get("model_type", config.get("model_type"))}
        elif config.get("model_type") == "gemma3_text":
            config = {**GEMMA3_TEXT_DEFAULTS, **config}
        model_type = str(config.get("model_type", ""))
        family = ARCHITECTURES.get(model_type)
        if family is None:
            raise UnsupportedModelError(
                f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(ARCHITECTURES))}. "
                "A checkpoint directory still gets exact counts from its safetensors headers."
            )
        read = _Reader(config, model_type)
        spec = family(read, name or str(wrapper.get("_name_or_path") or model_type))
        if vision is not None:
            spec = replace(spec, vision=vision, text_prefix="language_model.")
        return replace(spec, config=dict(config))

    # --- display -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        experts = f", {self.num_experts} experts ({self.experts_per_token} per token)" if self.num_experts else ""
        return (
            f"<ModelSpec {self.name}: {self.architecture}, {self.num_params:,} parameters, {self.active_params:,} "
            f"active{experts}, {self.num_layers} layers>"
        )

    def _repr_html_(self) -> str:
        if self.kv_lora_rank:
            attention = f"MLA: latent {self.kv_lora_rank} + rope {self.qk_rope_head_dim}, {self.num_heads} heads"
        else:
            attention = f"{self.num_heads} heads, {self.num_kv_heads} KV heads of {self.head_dim}"
        rows = [
            ("architecture", self.architecture),
            ("parameters", f"{self.num_params:,}"),
            ("active per token", f"{self.active_params:,}"),
            ("layers × hidden", f"{self.num_layers} × {self.hidden_size}"),
            ("attention", attention),
            ("KV cache per token (BF16)", format_bytes(int(self.kv_bytes_per_token("bfloat16")))),
        ]
        if self.num_experts:
            rows.append(("experts", f"{self.num_experts}, {self.experts_per_token} per token"))
        if self.sliding_layers:
            rows.append(("sliding window", f"{self.sliding_window} tokens on {self.sliding_layers} layers"))
        counts = ", ".join(f"{name} {count:,}" for name, count in self.params_by_component().items() if count)
        return html_card(f"Model {self.name}", rows, f"by component: {counts}")

    # --- weights -----------------------------------------------------------------------------

    def tensors(self) -> Iterator[Tensor]:
        """Every weight, named and shaped as in the Hugging Face checkpoint (a multimodal model's text weights
        under ``language_model.``, then its vision tower and projector)."""
        return iter(self._tensor_list)

    def tensor_groups(self) -> Iterator[TensorGroup]:
        """The tensors of :meth:`tensors` with each layer's routed experts folded, one group per projection (the
        way to price or count a MoE without walking its 46k tensors)."""
        for item in self._items:
            if isinstance(item, _Experts):
                yield from item.groups()
            else:
                yield TensorGroup(item)

    @functools.cached_property
    def _items(self) -> tuple[Tensor | _Experts, ...]:
        """The tensors with each layer's routed experts as one block, built once per spec (a spec is
        immutable)."""
        text: Iterator[Tensor | _Experts] = self._text_tensors()
        if self.text_prefix:
            prefix = self.text_prefix
            text = (_mapped(item, lambda t: replace(t, name=prefix + t.name)) for item in text)
        vision = self.vision.tensors() if self.vision is not None else iter(())
        return (*text, *vision)

    @functools.cached_property
    def _tensor_list(self) -> tuple[Tensor, ...]:
        """The tensors, expanded once per spec (DeepSeek-V3 has 46k of them)."""
        tensors: list[Tensor] = []
        for item in self._items:
            if isinstance(item, _Experts):
                tensors.extend(item.tensors())
            else:
                tensors.append(item)
        return tuple(tensors)

    @functools.cached_property
    def _component_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(COMPONENTS, 0)
        for group in self.tensor_groups():
            counts[group.first.component] += group.first.size * group.count
        return counts

    def _text_tensors(self) -> Iterator[Tensor | _Experts]:
        h = self.hidden_size
        yield Tensor("model.embed_tokens.weight", (self.vocab_size, h), "embedding")
        for layer in range(self.num_layers):
            yield from self._layer(layer, f"model.layers.{layer}.")
        yield Tensor("model.norm.weight", (h,), "norm")
        if not self.tie_embeddings:
            yield Tensor("lm_head.weight", (self.vocab_size, h), "head")
        for extra in range(self.mtp_layers):  # DeepSeek: a full decoder layer after the last, with its own head
            layer = self.num_layers + extra
            prefix = f"model.layers.{layer}."
            for item in self._layer(layer, prefix):
                yield _mapped(item, lambda t: replace(t, component="mtp", role=t.component))
            for part, shape in [
                ("embed_tokens.weight", (self.vocab_size, h)),
                ("enorm.weight", (h,)),
                ("hnorm.weight", (h,)),
                ("eh_proj.weight", (h, 2 * h)),
                ("shared_head.norm.weight", (h,)),
                ("shared_head.head.weight", (self.vocab_size, h)),
            ]:
                yield Tensor(prefix + part, shape, "mtp", layer)

    def _layer(self, layer: int, prefix: str) -> Iterator[Tensor | _Experts]:
        h = self.hidden_size
        norms = ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm"][: self.norms_per_layer]
        if self.norms_per_layer == 4:
            norms.append("post_feedforward_layernorm")
        for norm in norms:
            yield Tensor(f"{prefix}{norm}.weight", (h,), "norm", layer)
        if self.layer_types and self.layer_types[layer] == "linear_attention":
            yield from self._linear_attention(prefix, layer)
        else:
            yield from self._attention(prefix, layer)
        yield from self._feed_forward(prefix, layer)

    def _linear_attention(self, prefix: str, layer: int) -> Iterator[Tensor]:
        """Qwen3-Next's gated delta net, as its checkpoints store it (``linear_attn.*``)."""
        h, a = self.hidden_size, prefix + "linear_attn."
        keys = self.linear_key_heads * self.linear_key_head_dim
        values = self.linear_value_heads * self.linear_value_head_dim
        yield Tensor(a + "in_proj_qkvz.weight", (2 * keys + 2 * values, h), "attention", layer)
        yield Tensor(a + "in_proj_ba.weight", (2 * self.linear_value_heads, h), "attention", layer)
        yield Tensor(a + "conv1d.weight", (2 * keys + values, 1, self.linear_conv_kernel), "attention", layer)
        yield Tensor(a + "dt_bias", (self.linear_value_heads,), "attention", layer)
        yield Tensor(a + "A_log", (self.linear_value_heads,), "attention", layer, dtype="float32")
        yield Tensor(a + "norm.weight", (self.linear_value_head_dim,), "norm", layer)
        yield Tensor(a + "out_proj.weight", (h, values), "attention", layer)

    def _attention(self, prefix: str, layer: int) -> Iterator[Tensor]:
        h, heads = self.hidden_size, self.num_heads
        a = prefix + "self_attn."
        if self.kv_lora_rank:  # MLA (DeepSeek-V2/V3)
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                yield Tensor(a + "q_a_proj.weight", (self.q_lora_rank, h), "attention", layer)
                yield Tensor(a + "q_a_layernorm.weight", (self.q_lora_rank,), "norm", layer)
                yield Tensor(a + "q_b_proj.weight", (heads * qk_head, self.q_lora_rank), "attention", layer)
            else:
                yield Tensor(a + "q_proj.weight", (heads * qk_head, h), "attention", layer)
            yield Tensor(
                a + "kv_a_proj_with_mqa.weight", (self.kv_lora_rank + self.qk_rope_head_dim, h), "attention", layer
            )
            yield Tensor(a + "kv_a_layernorm.weight", (self.kv_lora_rank,), "norm", layer)
            kv_b = heads * (self.qk_nope_head_dim + self.v_head_dim)
            yield Tensor(a + "kv_b_proj.weight", (kv_b, self.kv_lora_rank), "attention", layer)
            yield Tensor(a + "o_proj.weight", (h, heads * self.v_head_dim), "attention", layer)
            if self.index_heads:  # DeepSeek-V3.2's lightning indexer, which picks the tokens attention reads
                i, d = a + "indexer.", self.index_head_dim
                yield Tensor(i + "wq_b.weight", (self.index_heads * d, self.q_lora_rank), "attention", layer)
                yield Tensor(i + "wk.weight", (d, h), "attention", layer)
                yield Tensor(i + "k_norm.weight", (d,), "norm", layer)
                yield Tensor(i + "k_norm.bias", (d,), "norm", layer)
                yield Tensor(i + "weights_proj.weight", (self.index_heads, h), "attention", layer)
            return
        q, kv = heads * self.head_dim, self.num_kv_heads * self.head_dim
        if self.attention_output_gate:  # Qwen3-Next: q_proj also gives a sigmoid gate per head element
            yield Tensor(a + "q_proj.weight", (2 * q, h), "attention", layer)
        if self.fused_projections:  # Phi-3/4: one qkv_proj matrix
            yield Tensor(a + "qkv_proj.weight", (q + 2 * kv, h), "attention", layer)
        separate = () if self.fused_projections else (("q_proj", q), ("k_proj", kv), ("v_proj", kv))
        for proj, rows in separate[1:] if self.attention_output_gate else separate:
            yield Tensor(f"{a}{proj}.weight", (rows, h), "attention", layer)
            if self.qkv_bias:
                yield Tensor(f"{a}{proj}.bias", (rows,), "attention", layer)
        yield Tensor(a + "o_proj.weight", (h, q), "attention", layer)
        if self.o_bias:
            yield Tensor(a + "o_proj.bias", (h,), "attention", layer)
        if self.qk_norm:
            yield Tensor(a + "q_norm.weight", (self.head_dim,), "norm", layer)
            yield Tensor(a + "k_norm.weight", (self.head_dim,), "norm", layer)
        if self.attention_sinks:
            yield Tensor(a + "sinks", (heads,), "attention", layer)

    def _feed_forward(self, prefix: str, layer: int) -> Iterator[Tensor | _Experts]:
        h = self.hidden_size
        if self.fused_projections:  # Phi-3/4: gate and up stacked in one gate_up_proj
            inner = self.intermediate_size
            yield Tensor(prefix + "mlp.gate_up_proj.weight", (2 * inner, h), "mlp", layer)
            yield Tensor(prefix + "mlp.down_proj.weight", (h, inner), "mlp", layer)
            return
        if not self.num_experts or layer < self.first_dense_layers:
            yield from _swiglu(prefix + "mlp.", h, self.intermediate_size, "mlp", layer=layer)
            return
        m, experts = self.moe_intermediate_size, self.num_experts
        names = _MOE_NAMES[self.architecture]
        yield Tensor(prefix + names["router"] + ".weight", (experts, h), "router", layer)
        if self.router_bias:
            yield Tensor(prefix + names["router"] + ".bias", (experts,), "router", layer)
        if self.router_score_bias:  # DeepSeek-V3's and GLM-4.5's aux-loss-free balancing bias
            yield Tensor(prefix + "mlp.gate.e_score_correction_bias", (experts,), "router", layer, dtype="float32")
        if self.fused_experts:  # gpt-oss stores each layer's experts as two stacked tensors
            yield Tensor(prefix + "mlp.experts.gate_up_proj", (experts, h, 2 * m), "experts", layer)
            yield Tensor(prefix + "mlp.experts.down_proj", (experts, m, h), "experts", layer)
            if self.expert_bias:
                yield Tensor(prefix + "mlp.experts.gate_up_proj_bias", (experts, 2 * m), "experts", layer)
                yield Tensor(prefix + "mlp.experts.down_proj_bias", (experts, h), "experts", layer)
        else:
            block = _swiglu(f"{prefix}{names['experts']}.{EXPERT_INDEX}.", h, m, "experts", names["projections"], layer)
            yield _Experts(tuple(block), experts)
        if self.shared_experts:
            size = self.shared_expert_intermediate_size or self.shared_experts * m
            yield from _swiglu(prefix + names["shared"] + ".", h, size, "shared_experts", layer=layer)
            if self.shared_expert_gate:
                yield Tensor(prefix + "mlp.shared_expert_gate.weight", (1, h), "router", layer)

    # --- counts ------------------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        """Every parameter the checkpoint stores (tied embeddings once, MTP layers included)."""
        return sum(self._component_counts.values())

    def params_by_component(self) -> dict[str, int]:
        """Parameters per component, in :data:`COMPONENTS` order (components the model lacks are 0)."""
        return dict(self._component_counts)

    @property
    def active_params(self) -> int:
        """Parameters one token uses: everything but the routed experts not chosen (MTP and an image encoder
        excluded)."""
        counts = self.params_by_component()
        total = sum(counts.values()) - sum(counts[part] for part in NOT_PER_TOKEN)
        if self.num_experts:
            total -= counts["experts"] * (self.num_experts - self.experts_per_token) // self.num_experts
        return total

    @property
    def active_mlp_width(self) -> int:
        """The MLP width one token goes through: the dense MLP's, or its experts' plus the shared experts'."""
        if not self.num_experts:
            return self.intermediate_size
        shared = self.shared_expert_intermediate_size or self.shared_experts * self.moe_intermediate_size
        return self.experts_per_token * self.moe_intermediate_size + shared

    # --- KV cache ----------------------------------------------------------------------------

    @property
    def cached_layers(self) -> int:
        """Layers that keep a KV cache: all but Qwen3-Next's linear-attention layers."""
        return self.num_layers - sum(1 for kind in self.layer_types if kind == "linear_attention")

    @property
    def linear_state_elements(self) -> int:
        """Values a linear-attention model keeps per sequence, whatever its length: each such layer's causal
        convolution window (``kernel - 1`` inputs) and its recurrent state (a key × value matrix per head)."""
        layers = self.num_layers - self.cached_layers
        keys = self.linear_key_heads * self.linear_key_head_dim
        channels = 2 * keys + self.linear_value_heads * self.linear_value_head_dim
        recurrent = self.linear_value_heads * self.linear_key_head_dim * self.linear_value_head_dim
        return layers * (channels * max(self.linear_conv_kernel - 1, 0) + recurrent)

    @property
    def sliding_layers(self) -> int:
        """Layers that attend within ``sliding_window`` tokens (the rest attend to the whole context)."""
        return sum(1 for kind in self.layer_types if kind == "sliding_attention") if self.sliding_window else 0

    def kv_elements_per_token(self, context: int | None = None, window: int | None = None) -> int:
        """Cached values per token over all layers; with ``context``, sliding-window layers hold at most
        ``window`` tokens (``sliding_window`` by default; 0 for an engine that keeps full attention on every
        layer), so this is the average over a sequence of that length.

        MLA caches the compressed latent and the shared rope key (``kv_lora_rank + qk_rope_head_dim`` per layer,
        whatever the number of heads); grouped-query attention caches a key and a value per KV head.
        """
        per_layer = (
            self.kv_lora_rank + self.qk_rope_head_dim if self.kv_lora_rank else 2 * self.num_kv_heads * self.head_dim
        )
        window = self.sliding_window if window is None else window
        if context is None or not window or not self.sliding_layers:
            return per_layer * self.cached_layers
        windowed = self.sliding_layers
        full = self.cached_layers - windowed
        return per_layer * full + per_layer * windowed * min(context, window) // max(context, 1)

    def kv_elements(self, context: int, window: int | None = None) -> int:
        """Cached values of one sequence of ``context`` tokens over all layers: full-attention layers hold every
        token, sliding-window layers at most ``window`` (``sliding_window`` by default; 0: full attention)."""
        per_layer = self.kv_elements_per_token() // max(self.cached_layers, 1)
        window = self.sliding_window if window is None else window
        windowed = self.sliding_layers if window else 0
        return per_layer * ((self.cached_layers - windowed) * context + windowed * min(context, window))

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> float:
        """Bytes of KV cache per token over all layers (full attention) in a cache format or scheme."""
        return cache_bytes(self.kv_elements_per_token(), dtype)


_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def _swiglu(
    prefix: str,
    hidden: int,
    inner: int,
    component: str,
    names: tuple[str, ...] = _PROJECTIONS,
    layer: int | None = None,
) -> Iterator[Tensor]:
    gate, up, down = names
    yield Tensor(f"{prefix}{gate}.weight", (inner, hidden), component, layer)
    yield Tensor(f"{prefix}{up}.weight", (inner, hidden), component, layer)
    yield Tensor(f"{prefix}{down}.weight", (hidden, inner), component, layer)


_MOE_NAMES: dict[str, dict[str, Any]] = {
    "mixtral": {
        "router": "block_sparse_moe.gate",
        "experts": "block_sparse_moe.experts",
        "projections": ("w1", "w3", "w2"),
        "shared": "",
    },
    "qwen2_moe": {
        "router": "mlp.gate",
        "experts": "mlp.experts",
        "projections": _PROJECTIONS,
        "shared": "mlp.shared_expert",
    },
    "qwen3_moe": {"router": "mlp.gate", "experts": "mlp.experts", "projections": _PROJECTIONS, "shared": ""},
    "qwen3_next": {
        "router": "mlp.gate",
        "experts": "mlp.experts",
        "projections": _PROJECTIONS,
        "shared": "mlp.shared_expert",
    },
    "deepseek_v3": {
        "router": "mlp.gate",
        "experts": "mlp.experts",
        "projections": _PROJECTIONS,
        "shared": "mlp.shared_experts",
    },
    "deepseek_v32": {
        "router": "mlp.gate",
        "experts": "mlp.experts",
        "projections": _PROJECTIONS,
        "shared": "mlp.shared_experts",
    },
    "glm4_moe": {
        "router": "mlp.gate",
        "experts": "mlp.experts",
        "projections": _PROJECTIONS,
        "shared": "mlp.shared_experts",
    },
    "gpt_oss": {"router": "mlp.router", "experts": "mlp.experts", "projections": (), "shared": ""},
}


class _Reader:
    """Reads config fields, naming the model type and the field when one is missing or wrong."""

    def __init__(self, config: Mapping[str, Any], model_type: str) -> None:
        self.config, self.model_type = config, model_type

    def __call__(self, key: str, default: Any = ...) -> Any:
        if key in self.config and self.config[key] is not None:
            return self.config[key]
        if default is ...:
            raise UnsupportedModelError(f"a {self.model_type} config needs {key!r}, and this one has none")
        return default

    def count(self, key: str, default: Any = ...) -> int:
        value = self(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UnsupportedModelError(
                f"{self.model_type} config field {key!r} must be a non-negative integer, got {value!r}"
            )
        return value


def _vision_tower(config: Any, text_hidden: int) -> VisionTower:
    read = _Reader({**SIGLIP_DEFAULTS, **(config if isinstance(config, Mapping) else {})}, "vision_config")
    return VisionTower(
        hidden_size=read.count("hidden_size"),
        intermediate_size=read.count("intermediate_size"),
        num_layers=read.count("num_hidden_layers"),
        image_size=read.count("image_size"),
        patch_size=read.count("patch_size"),
        text_hidden=text_hidden,
        num_channels=read.count("num_channels"),
        use_head=bool(read("vision_use_head", True)),
    )


def _dense(read: _Reader, name: str, **extra: Any) -> ModelSpec:
    heads = read.count("num_attention_heads")
    hidden = read.count("hidden_size")
    return ModelSpec(
        name=name,
        architecture=read.model_type,
        vocab_size=read.count("vocab_size"),
        hidden_size=hidden,
        num_layers=read.count("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=read.count("num_key_value_heads", heads),
        head_dim=read.count("head_dim", hidden // heads if heads else 0),
        intermediate_size=read.count("intermediate_size", 0),
        tie_embeddings=bool(read("tie_word_embeddings", False)),
        qkv_bias=bool(read("attention_bias", False)),
        o_bias=bool(read("attention_bias", False)),
        **extra,
    )


_SLIDING_DEFAULTS = {"gemma2": (4096, 2), "gemma3": (4096, 6), "gemma3_text": (4096, 6), "gpt_oss": (128, 2)}
"""transformers' defaults where a config leaves them out: the window, and the period of the layer pattern (layer
``i`` is global when ``(i + 1) % period == 0``, else sliding: Gemma 2 and gpt-oss alternate, Gemma 3 keeps one
global layer in six, its ``sliding_window_pattern``)."""


def _sliding(read: _Reader) -> dict[str, Any]:
    """The sliding window and which layers use it, as transformers' config classes decide when ``layer_types``
    is absent: the architecture's pattern (Gemma 2 and 3, gpt-oss), every layer (Mistral), the layers from
    ``max_window_layers`` on when ``use_sliding_window`` is set (Qwen2/3), none otherwise (Llama)."""
    window_default, period = _SLIDING_DEFAULTS.get(read.model_type, (0, 0))
    if read.model_type == "llama" or not read("use_sliding_window", not read.model_type.startswith("qwen")):
        return {"sliding_window": 0, "layer_types": ()}
    window = read.count("sliding_window", window_default)
    layers = read.count("num_hidden_layers") if window else 0
    types = tuple(read("layer_types", ()))
    if window and not types:
        if period:
            period = read.count("sliding_window_pattern", period)
            types = tuple("full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(layers))
        elif read.model_type.startswith("qwen"):
            first = read.count("max_window_layers", 28)
            types = tuple("sliding_attention" if i >= first else "full_attention" for i in range(layers))
        else:  # Mistral, Mixtral, Phi-3: the window applies to every layer
            types = ("sliding_attention",) * layers
    return {"sliding_window": window, "layer_types": types}


def _llama(read: _Reader, name: str) -> ModelSpec:
    return _dense(read, name, **_sliding(read))


def _qwen2(read: _Reader, name: str) -> ModelSpec:
    spec = _dense(read, name, **_sliding(read))
    return replace(spec, qkv_bias=True, o_bias=False)


def _qwen3(read: _Reader, name: str) -> ModelSpec:
    return replace(_dense(read, name, **_sliding(read)), qk_norm=True)


def _gemma(read: _Reader, name: str) -> ModelSpec:
    spec = _dense(read, name, norms_per_layer=4, **_sliding(read))
    return replace(
        spec, tie_embeddings=bool(read("tie_word_embeddings", True)), qk_norm=read.model_type.startswith("gemma3")
    )


def _phi3(read: _Reader, name: str) -> ModelSpec:
    return replace(_dense(read, name, **_sliding(read)), fused_projections=True)


def _mixtral(read: _Reader, name: str) -> ModelSpec:
    experts = read.count("num_local_experts")
    spec = _dense(read, name, **_sliding(read))
    return replace(
        spec,
        num_experts=experts,
        experts_per_token=read.count("num_experts_per_tok"),
        moe_intermediate_size=spec.intermediate_size,
    )


def _qwen_moe(read: _Reader, name: str) -> ModelSpec:
    spec = _qwen2(read, name) if read.model_type == "qwen2_moe" else _qwen3(read, name)
    shared = read.count("shared_expert_intermediate_size", 0)
    return replace(
        spec,
        num_experts=read.count("num_experts"),
        experts_per_token=read.count("num_experts_per_tok"),
        moe_intermediate_size=read.count("moe_intermediate_size"),
        shared_experts=1 if shared else 0,
        shared_expert_intermediate_size=shared,
        shared_expert_gate=bool(shared),
        first_dense_layers=0,
    )


def _qwen3_next(read: _Reader, name: str) -> ModelSpec:
    """Qwen3-Next: Qwen3's MoE with a shared expert, gated attention on every ``full_attention_interval``-th layer
    (4: layer 3, 7, ...) and a gated delta net on the others, as transformers' Qwen3NextConfig lays them out."""
    layers = read.count("num_hidden_layers")
    interval = read.count("full_attention_interval", 4)
    types = tuple(read("layer_types", ())) or tuple(
        "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)
    )
    spec = _qwen_moe(read, name)
    return replace(
        spec,
        layer_types=types,
        attention_output_gate=True,
        linear_key_heads=read.count("linear_num_key_heads"),
        linear_value_heads=read.count("linear_num_value_heads"),
        linear_key_head_dim=read.count("linear_key_head_dim"),
        linear_value_head_dim=read.count("linear_value_head_dim"),
        linear_conv_kernel=read.count("linear_conv_kernel_dim", 4),
    )


def _deepseek_v3(read: _Reader, name: str) -> ModelSpec:
    heads = read.count("num_attention_heads")
    return ModelSpec(
        name=name,
        architecture="deepseek_v3",
        vocab_size=read.count("vocab_size"),
        hidden_size=read.count("hidden_size"),
        num_layers=read.count("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=read.count("qk_nope_head_dim") + read.count("qk_rope_head_dim"),
        intermediate_size=read.count("intermediate_size"),
        tie_embeddings=bool(read("tie_word_embeddings", False)),
        num_experts=read.count("n_routed_experts"),
        experts_per_token=read.count("num_experts_per_tok"),
        moe_intermediate_size=read.count("moe_intermediate_size"),
        shared_experts=read.count("n_shared_experts", 0),
        first_dense_layers=read.count("first_k_dense_replace", 0),
        q_lora_rank=read.count("q_lora_rank", 0),
        kv_lora_rank=read.count("kv_lora_rank"),
        qk_nope_head_dim=read.count("qk_nope_head_dim"),
        qk_rope_head_dim=read.count("qk_rope_head_dim"),
        v_head_dim=read.count("v_head_dim"),
        router_score_bias=True,
        mtp_layers=read.count("num_nextn_predict_layers", 0),
    )


def _deepseek_v32(read: _Reader, name: str) -> ModelSpec:
    """DeepSeek-V3.2: DeepSeek-V3 with a lightning indexer in every layer's attention (``index_n_heads`` heads of
    ``index_head_dim``), whose keys are cached beside the MLA latent."""
    return replace(
        _deepseek_v3(read, name),
        architecture="deepseek_v32",
        index_heads=read.count("index_n_heads"),
        index_head_dim=read.count("index_head_dim"),
    )


def _glm4_moe(read: _Reader, name: str) -> ModelSpec:
    """GLM-4.5 and later (``glm4_moe``): grouped-query attention with biased q/k/v (``attention_bias``, o_proj
    unbiased) and optional per-head q/k norms (``use_qk_norm``), DeepSeek-V3's MoE (sigmoid router with its
    correction bias, shared experts, ``first_k_dense_replace`` dense layers first) and its appended MTP layer,
    as transformers' Glm4MoeConfig defaults them."""
    spec = _dense(read, name)
    return replace(
        spec,
        o_bias=False,
        qk_norm=bool(read("use_qk_norm", False)),
        num_experts=read.count("n_routed_experts", 128),
        experts_per_token=read.count("num_experts_per_tok", 8),
        moe_intermediate_size=read.count("moe_intermediate_size", 1408),
        shared_experts=read.count("n_shared_experts", 1),
        first_dense_layers=read.count("first_k_dense_replace", 1),
        router_score_bias=True,
        mtp_layers=read.count("num_nextn_predict_layers", 0),
    )


def _gpt_oss(read: _Reader, name: str) -> ModelSpec:
    spec = _dense(read, name, **_sliding(read))
    return replace(
        spec,
        qkv_bias=True,
        o_bias=True,
        attention_sinks=True,
        num_experts=read.count("num_local_experts"),
        experts_per_token=read.count("num_experts_per_tok", read("experts_per_token", 0)),
        moe_intermediate_size=spec.intermediate_size,
        router_bias=True,
        expert_bias=True,
        fused_experts=True,
    )


ARCHITECTURES = {
    "llama": _llama,
    "mistral": _llama,
    "phi3": _phi3,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "gemma2": _gemma,
    "gemma3_text": _gemma,
    "gemma3": _gemma,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "qwen3_next": _qwen3_next,
    "deepseek_v3": _deepseek_v3,
    "deepseek_v32": _deepseek_v32,
    "glm4_moe": _glm4_moe,
    "gpt_oss": _gpt_oss,
}
"""Supported ``model_type`` values and the builder of each."""
