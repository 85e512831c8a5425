"""llama-quantize's file types (Q4_K_M, ...): the GGML type each tensor gets, by name, layer index and shape.

The rules are a port of ``llama_tensor_get_type`` and ``tensor_type_fallback`` in ``src/llama-quant.cpp``
(llama.cpp as vendored by llama-cpp-python 0.3.36) for the file types listed in :data:`FILE_TYPES`: the output
(and tied embeddings) in Q6_K, value projections and FFN down projections of chosen layers one or two steps up,
Mixtral-style 8-expert models' attention in Q8_0 / Q5_K, the grouped-query rules of Q2_K and IQ4_*, and the
fallbacks for rows that are not whole blocks. Tensors llama.cpp does not quantize keep the converter's type: F32
for vectors, norms and the MoE router (``ffn_gate_inp``), as ``convert_hf_to_gguf.py`` writes them, and the
checkpoint's 16-bit type for position and token-type embeddings.

Tensor names are the Hugging Face checkpoint's; each is put in the category llama.cpp would give its GGUF name
(``v_proj`` and BERT's ``attention.self.value`` are ``attn_v``, ``qkv_proj`` is ``attn_qkv``, and so on).

File types are spelled as ``llama-quantize`` prints them, in capitals; a name that is both a file type and a
block type (``Q6_K``) means the file type in capitals and the block type in lower case (``q6_k``: every matrix in
that type); other names are understood in any case (``q4_k_m``).

Example:
    >>> from floatfmt.memory import load_model
    >>> from floatfmt.quant.filetypes import tensor_types
    >>> types = tensor_types(load_model("llama-3.1-8b"), "Q4_K_M")
    >>> types["model.layers.0.self_attn.v_proj.weight"], types["model.layers.5.self_attn.v_proj.weight"]
    ('Q6_K', 'Q4_K')
    >>> types["lm_head.weight"], types["model.norm.weight"]
    ('Q6_K', 'F32')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from floatfmt.quant.rules.gguf import GGML_TYPES, ggml_type

__all__ = ["FILE_TYPES", "FileType", "file_type", "group_types", "tensor_types"]


class TensorLike(Protocol):
    """A weight as the file-type rules need it (``floatfmt.memory.Tensor`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def layer(self) -> int | None: ...
    @property
    def part(self) -> str: ...
    @property
    def component(self) -> str: ...


class GroupLike(Protocol):
    """Tensors alike but for the expert number in their names (``floatfmt.memory.TensorGroup`` is one)."""

    @property
    def first(self) -> TensorLike: ...
    @property
    def count(self) -> int: ...
    def names(self) -> Iterable[str]: ...


class ModelLike(Protocol):
    """A model as the file-type rules need it (``floatfmt.memory.ModelSpec`` is one)."""

    @property
    def architecture(self) -> str: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def num_experts(self) -> int: ...
    @property
    def first_dense_layers(self) -> int: ...
    @property
    def shared_experts(self) -> int: ...
    @property
    def tie_embeddings(self) -> bool: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    def tensors(self) -> Iterable[TensorLike]: ...


@dataclass(frozen=True)
class FileType:
    """A llama-quantize file type: most tensors in ``base``, some in others (see :func:`tensor_types`)."""

    name: str
    base: str

    def types(self, model: ModelLike, *, imatrix: bool = False) -> dict[str, str]:
        """The GGML type of every tensor of ``model`` in the GGUF (see :func:`tensor_types`)."""
        return tensor_types(model, self.name, imatrix=imatrix)

    def group_types(self, model: ModelLike, *, imatrix: bool = False) -> list[tuple[GroupLike, str]]:
        """The GGML type of each of the model's tensor groups (see :func:`group_types`)."""
        return group_types(model, self.name, imatrix=imatrix)

    def __str__(self) -> str:
        return self.name


_FILE_TYPE_BASES = (
    ("Q4_0", "Q4_0"), ("Q4_1", "Q4_1"), ("Q5_0", "Q5_0"), ("Q5_1", "Q5_1"), ("Q8_0", "Q8_0"),
    ("Q2_K", "Q2_K"), ("Q3_K_S", "Q3_K"), ("Q3_K_M", "Q3_K"), ("Q3_K_L", "Q3_K"),
    ("Q4_K_S", "Q4_K"), ("Q4_K_M", "Q4_K"), ("Q5_K_S", "Q5_K"), ("Q5_K_M", "Q5_K"), ("Q6_K", "Q6_K"),
    ("IQ4_NL", "IQ4_NL"), ("IQ4_XS", "IQ4_XS"), ("TQ1_0", "TQ1_0"), ("TQ2_0", "TQ2_0"), ("MXFP4_MOE", "MXFP4"),
)  # fmt: skip

FILE_TYPES: dict[str, FileType] = {name: FileType(name, base) for name, base in _FILE_TYPE_BASES}
"""llama-quantize's file types floatfmt can quantize into, by name, with the type most of their tensors get.
(Q2_K_S and the IQ1/IQ2/IQ3 file types need i-quant grids floatfmt does not have.)"""

_FALLBACK = {
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0",
    "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "IQ4_XS": "IQ4_NL",
}  # fmt: skip
"""``tensor_type_fallback``: the type for rows that are not whole blocks of the chosen one (32-value types have
none: they become F16, as does a fallback that does not fit either)."""

_BLOCK_TYPE_NAMES = {name.lower() for name in FILE_TYPES} & set(GGML_TYPES)
"""File-type names that also name a GGML block type (``q6_k``): in lower case they mean the block type."""


def file_type(name: str) -> FileType | None:
    """The file type a name means, or ``None`` (lower case names that are also block types are block types)."""
    upper = name.strip().upper()
    if upper not in FILE_TYPES:
        return None
    if name.strip() != upper and upper.lower() in _BLOCK_TYPE_NAMES:
        return None
    return FILE_TYPES[upper]


# --- the category llama.cpp gives a tensor (tensor_get_category), from its Hugging Face name ---------------

_CATEGORIES = (  # (substring of the Hugging Face name, llama.cpp's category); the first match wins
    ("embed_tokens.", "token_embd"), ("word_embeddings.", "token_embd"), ("wte.", "token_embd"),
    ("lm_head.", "output"), ("embed_out.", "output"),
    ("qkv_proj.", "attn_qkv"), ("query_key_value.", "attn_qkv"), ("c_attn.", "attn_qkv"), ("Wqkv.", "attn_qkv"),
    ("kv_b_proj.", "attn_kv_b"),
    (".v_proj.", "attn_v"), (".self.value.", "attn_v"),
    (".k_proj.", "attn_k"), (".self.key.", "attn_k"),
    (".q_proj.", "attn_q"), (".self.query.", "attn_q"),
    (".o_proj.", "attn_output"), (".attention.output.dense.", "attn_output"), (".self_attn.dense.", "attn_output"),
    ("up_proj", "ffn_up"), (".w3.", "ffn_up"), (".intermediate.dense.", "ffn_up"), ("dense_h_to_4h", "ffn_up"),
    ("gate_proj", "ffn_gate"), (".w1.", "ffn_gate"),
    ("down_proj", "ffn_down"), (".w2.", "ffn_down"), (".output.dense.", "ffn_down"), ("dense_4h_to_h", "ffn_down"),
)  # fmt: skip
_KEPT_AS_STORED = ("position_embeddings.", "token_type_embeddings.", "wpe.")
"""2-D tensors llama.cpp does not quantize (BERT's position and token-type embeddings)."""

_ATTN_V = ("attn_v", "attn_qkv", "attn_kv_b")  # category_is_attn_v


def _category(tensor: TensorLike) -> str:
    if tensor.part == "mtp":  # the MTP layer's own eh_proj, embedding and head: blk.N.nextn.*, no category
        return "other"
    for pattern, category in _CATEGORIES:
        if pattern in tensor.name:
            return category
    return "other"


def _quantizable(tensor: TensorLike) -> bool:
    """tensor_allows_quantization: matrices (and merged experts), not norms, routers or position embeddings."""
    return (
        len(tensor.shape) >= 2
        and tensor.part != "router"
        and tensor.name.endswith(("weight", "proj"))
        and not any(kept in tensor.name for kept in _KEPT_AS_STORED)
    )


def _gqa_ratio(model: ModelLike, tensors: list[TensorLike]) -> int:
    """n_gqa = query heads / key-value heads, from the config or else from the first layer's shapes."""
    config = model.config
    heads, kv_heads = config.get("num_attention_heads"), config.get("num_key_value_heads")
    if isinstance(heads, int) and isinstance(kv_heads, int) and kv_heads > 0:
        return heads // kv_heads
    queries = [t for t in tensors if _category(t) == "attn_q" and len(t.shape) == 2]
    keys = [t for t in tensors if _category(t) == "attn_k" and len(t.shape) == 2]
    if queries and keys and keys[0].shape[0] > 0:
        return queries[0].shape[0] // keys[0].shape[0]
    return 1


def _use_more_bits(layer: int, layers: int) -> bool:
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


CONVERTER_KEEPS_MTP = ("glm4_moe", "deepseek_v32")
"""Architectures whose MTP layers ``convert_hf_to_gguf.py`` writes into the GGUF (its Glm4MoeModel and
DeepseekV32Model count them in ``block_count``); DeepSeek-V3/R1's converter (DeepseekV2Model, ``skip_mtp``) and
every other drops them. llama-quantize then treats the kept layer like any other: its tensors are counted in
``n_attention_wv`` and against ``n_layer``, and its ``nextn`` eh_proj, embedding and head get the base type."""


def tensor_types(model: ModelLike, name: str, *, imatrix: bool = False) -> dict[str, str]:
    """The GGML type of every tensor of ``model`` in a llama.cpp file type: MTP layers only where the converter
    keeps them (:data:`CONVERTER_KEEPS_MTP`), an image encoder never (it goes to a separate mmproj file).

    ``imatrix`` says whether ``llama-quantize`` is given an importance matrix, which changes the FFN down
    projections of the first layers in Q4_0, Q5_0 and IQ4_* files.

    Raises:
        ValueError: for a file type not in :data:`FILE_TYPES`.
    """
    return {member: kind for group, kind in group_types(model, name, imatrix=imatrix) for member in group.names()}


def group_types(
    model: ModelLike, name: str, *, imatrix: bool = False, groups: Iterable[GroupLike] | None = None
) -> list[tuple[GroupLike, str]]:
    """:func:`tensor_types` for the model's tensor groups (``groups``, else its ``tensor_groups()`` where it has
    them, else its tensors one by one): one type per group, which every member gets, in a step per group."""
    preset = name.strip().upper()
    if preset not in FILE_TYPES:
        raise ValueError(f"unknown llama.cpp file type {name!r}; choose one of {', '.join(FILE_TYPES)}")
    base = FILE_TYPES[preset].base
    left_out = ("vision", "projector") if model.architecture in CONVERTER_KEEPS_MTP else ("mtp", "vision", "projector")
    if groups is None:
        tensor_groups = getattr(model, "tensor_groups", None)
        groups = tensor_groups() if tensor_groups else (_Single(t) for t in model.tensors())
    # a group stands for its members only where the rule cannot tell them apart: not where it reads the running
    # count of value projections, or of FFN down projections whose layer is unknown
    kept: list[GroupLike] = []
    for group in groups:
        if group.first.component in left_out:
            continue
        category = _category(group.first)
        if group.count > 1 and (category in _ATTN_V or (category == "ffn_down" and group.first.layer is None)):
            raise ValueError(f"{group.first.name}: a folded group whose type depends on its members' order")
        kept.append(group)
    # llama.cpp walks a file's tensors by layer (its loader's weight_name_comparer: those of no layer first), and
    # counts the value projections and FFN down projections in that order
    kept.sort(key=lambda g: -1 if g.first.layer is None else g.first.layer)
    firsts = [g.first for g in kept]
    layers = max((t.layer + 1 for t in firsts if t.layer is not None), default=model.num_layers)
    gqa = _gqa_ratio(model, firsts)
    context = _Context(
        preset,
        base,
        layers=max(layers, model.num_layers),
        experts=max(1, model.num_experts),
        gqa=gqa,
        tied=model.tie_embeddings,
        imatrix=imatrix,
        is_70b=model.architecture == "llama" and model.num_layers == 80 and gqa > 1,
        falcon=model.architecture == "falcon",
        # n_attention_wv: the tensors whose GGUF name holds "attn_v.weight" (and the fused kinds), not the biases
        value_tensors=sum(_category(t) in _ATTN_V and not t.name.endswith("bias") for t in firsts),
    )
    stored = "BF16" if str(model.config.get("torch_dtype", "bfloat16")) == "bfloat16" else "F16"
    types: list[tuple[GroupLike, str]] = []
    for group in kept:
        tensor = group.first
        if not _quantizable(tensor):
            # convert_hf_to_gguf.py writes vectors, norms and the MoE router (ffn_gate_inp) in F32
            types.append((group, "F32" if len(tensor.shape) < 2 or tensor.part == "router" else stored))
            continue
        category = _category(tensor)
        chosen = context.choose(tensor, category)
        if category == "ffn_down":
            context.down_index += group.count - 1  # the members after the first, as llama.cpp counts them
        types.append((group, _fit_row(chosen, tensor.shape[-1])))
    return types


@dataclass(frozen=True)
class _Single:
    """A tensor as a group of one, for models that offer no ``tensor_groups()``."""

    first: TensorLike
    count: int = 1

    def names(self) -> Iterable[str]:
        return (self.first.name,)


@dataclass
class _Context:
    """llama-quant.cpp's quantize_state_impl: the file type, the model's facts, and the running counters."""

    preset: str
    base: str
    layers: int
    experts: int
    gqa: int
    tied: bool
    imatrix: bool
    is_70b: bool
    falcon: bool
    value_tensors: int
    value_index: int = 0
    down_index: int = 0

    def choose(self, tensor: TensorLike, category: str) -> str:
        """llama_tensor_get_type_impl for the file types of :data:`FILE_TYPES` (before the row fallback)."""
        ft, new = self.preset, self.base
        if category == "output" or (category == "token_embd" and self.tied):
            if ft == "MXFP4_MOE" or self.falcon or tensor.shape[-1] % ggml_type(new).block_size:
                return "Q8_0"
            return new if new == "Q8_0" else "Q6_K"
        if ft == "MXFP4_MOE":
            return "MXFP4" if tensor.part == "experts" else "Q8_0"  # merged 3-D expert tensors
        if category == "token_embd":
            return "Q4_K" if ft in ("TQ1_0", "TQ2_0") else new
        if category in _ATTN_V:
            return self._value(new)
        if category == "attn_k":
            return "Q8_0" if self.experts == 8 else new
        if category == "ffn_down":
            # the layer from the name (MoE files merge a layer's experts), else the running count
            layer = tensor.layer if tensor.layer is not None else self.down_index
            self.down_index += 1
            return self._down(new, layer, self.layers)
        if category == "attn_output":
            if self.falcon:
                return "Q4_K" if ft == "Q3_K_L" else new
            if self.experts == 8:
                eight = ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS")
                return "Q5_K" if ft in eight else new
            return {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ft, new)
        return new

    def _value(self, new: str) -> str:
        ft, index = self.preset, self.value_index
        self.value_index += 1
        if ft == "Q2_K":
            new = "Q4_K" if self.gqa >= 4 else "Q3_K"
        elif ft == "Q3_K_M":
            new = "Q5_K" if index < 2 else "Q4_K"
        elif ft == "Q3_K_L":
            new = "Q5_K"
        elif ft in ("IQ4_NL", "IQ4_XS") and self.gqa >= 4:
            new = "Q5_K"
        elif ft in ("Q4_K_M", "Q5_K_M") and _use_more_bits(index, self.value_tensors):
            new = "Q6_K"
        elif ft == "Q4_K_S" and index < 4:
            new = "Q5_K"
        if self.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"  # llama.cpp's 70B rule: attn_v is 8x smaller than attn_q there
        return "Q8_0" if self.experts == 8 else new

    def _down(self, new: str, layer: int, layers: int) -> str:
        ft = self.preset
        if ft == "Q2_K":
            return "Q3_K"
        if ft == "Q3_K_M":
            if layer < layers // 16:
                return "Q5_K"
            return "Q4_K" if not self.falcon or _use_more_bits(layer, layers) else "Q3_K"
        if ft == "Q3_K_L":
            return "Q4_K" if self.falcon else "Q5_K"
        if ft == "Q4_K_M":
            if self.falcon:
                return "Q6_K" if layer < layers // 16 else "Q5_K" if _use_more_bits(layer, layers) else new
            return "Q6_K" if _use_more_bits(layer, layers) else new
        if ft in ("IQ4_NL", "IQ4_XS") and layer < layers // 8 and not self.imatrix:
            return "Q5_K"
        if ft == "Q5_K_M" and _use_more_bits(layer, layers):
            return "Q6_K"
        if ft == "Q4_K_S" and not self.falcon and layer < layers // 8:
            return "Q5_K"
        if ft in ("Q4_0", "Q5_0") and self.imatrix and layer < layers // 8:
            return "Q4_1" if ft == "Q4_0" else "Q5_1"
        return new


def _row_bytes(ggml_name: str, cols: int) -> int | None:
    kind = ggml_type(ggml_name)
    return None if cols % kind.block_size else cols // kind.block_size * kind.block_bytes


def _fit_row(chosen: str, cols: int) -> str:
    """tensor_type_fallback: the type for rows that are not whole blocks of the chosen type."""
    if _row_bytes(chosen, cols) is not None:
        return chosen
    fallback = _FALLBACK.get(chosen, chosen)
    return fallback if _row_bytes(fallback, cols) is not None else "F16"
