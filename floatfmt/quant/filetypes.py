"""llama-quantize's file types (Q4_K_M, ...): the GGML type each tensor gets, by name, layer index and shape.

The rules follow ``llama_tensor_get_type`` in llama.cpp ``src/llama-quant.cpp`` for the file types listed in
:data:`FILE_TYPES`: the output (and tied embeddings) in Q6_K, the value projections and FFN down projections of
the first and last eighth of the layers (and every third in between) one step up, Mixtral-style 8-expert models'
attention in Q8_0 / Q5_K, and the fallbacks for rows that are not whole 256-value super-blocks. Tensors llama.cpp
does not quantize keep the converter's type: F32 for vectors, norms and the MoE router (``ffn_gate_inp``), as
``convert_hf_to_gguf.py`` writes them.

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

from floatfmt.quant.rules.gguf import ggml_type

__all__ = ["FILE_TYPES", "FileType", "file_type", "tensor_types"]


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


FILE_TYPES = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K", "Q4_K_S": "Q4_K", "Q6_K": "Q6_K"}
"""llama.cpp's K-quant file types (``llama-quantize`` presets) and the type most of their tensors get."""

_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q3_K": "Q4_0", "Q2_K": "Q4_0"}


@dataclass(frozen=True)
class FileType:
    """A llama-quantize file type: most tensors in ``base``, some in others (see :func:`tensor_types`)."""

    name: str
    base: str

    def types(self, model: ModelLike) -> dict[str, str]:
        """The GGML type of every tensor of ``model`` (MTP layers are left out, as llama.cpp leaves them)."""
        return tensor_types(model, self.name)

    def __str__(self) -> str:
        return self.name


def file_type(name: str) -> FileType | None:
    """The file type a name means, or ``None`` (lower case names that are also block types are block types)."""
    upper = name.strip().upper()
    if upper not in FILE_TYPES:
        return None
    if name.strip() != upper and upper.lower() in _BLOCK_TYPE_NAMES:
        return None
    return FileType(upper, FILE_TYPES[upper])


_BLOCK_TYPE_NAMES = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k"}


def _row_bytes(ggml_name: str, cols: int) -> int | None:
    kind = ggml_type(ggml_name)
    return None if cols % kind.block_size else cols // kind.block_size * kind.block_bytes


def _category(tensor: TensorLike) -> str:
    name = tensor.name
    if name.endswith("embed_tokens.weight"):
        return "token_embd"
    if name == "lm_head.weight":
        return "output"
    for part, category in (
        (".kv_b_proj.", "attn_v"),  # GGUF attn_kv_b: counted with the value projections
        (".v_proj.", "attn_v"),
        (".k_proj.", "attn_k"),
        (".q_proj.", "attn_q"),
        (".o_proj.", "attn_output"),
        ("down_proj", "ffn_down"),
        (".w2.", "ffn_down"),
    ):
        if part in name:
            return category
    return "other"


def _quantizable(tensor: TensorLike) -> bool:
    return len(tensor.shape) >= 2 and tensor.part != "router" and tensor.name.endswith(("weight", "proj"))


def tensor_types(model: ModelLike, name: str) -> dict[str, str]:
    """The GGML type of every tensor of ``model`` in a llama.cpp file type (MTP layers are left out).

    Raises:
        ValueError: for a file type not in :data:`FILE_TYPES`.
    """
    preset = name.upper()
    if preset not in FILE_TYPES:
        raise ValueError(f"unknown llama.cpp file type {name!r}; choose one of {', '.join(FILE_TYPES)}")
    base = FILE_TYPES[preset]
    tensors = [t for t in model.tensors() if t.component != "mtp"]
    experts = model.num_experts
    value_tensors = [t for t in tensors if _quantizable(t) and _category(t) == "attn_v"]
    down_layers = _ffn_down_count(model)

    def more_bits(index: int, count: int) -> bool:
        return index < count // 8 or index >= 7 * count // 8 or (index - count // 8) % 3 == 2

    types: dict[str, str] = {}
    value_index = 0
    down_index = 0
    stored = "BF16" if str(model.config.get("torch_dtype", "bfloat16")) == "bfloat16" else "F16"
    for tensor in tensors:
        if not _quantizable(tensor):
            # convert_hf_to_gguf.py writes vectors, norms and the MoE router (ffn_gate_inp) in F32
            types[tensor.name] = "F32" if len(tensor.shape) < 2 or tensor.part == "router" else stored
            continue
        category = _category(tensor)
        chosen = base
        if category == "output" or (category == "token_embd" and model.tie_embeddings):
            chosen = "Q8_0" if tensor.shape[-1] % 256 else ("Q6_K" if base != "Q8_0" else "Q8_0")
        elif category == "attn_v":
            if preset in ("Q4_K_M", "Q5_K_M") and more_bits(value_index, len(value_tensors)):
                chosen = "Q6_K"
            elif preset == "Q4_K_S" and value_index < 4:
                chosen = "Q5_K"
            if model.architecture == "llama" and model.num_layers == 80 and chosen in ("Q3_K", "Q4_K"):
                chosen = "Q5_K"  # llama.cpp's 70B rule: attn_v is 8x smaller than attn_q there
            if experts == 8:
                chosen = "Q8_0"
            value_index += 1
        elif category == "attn_k" and experts == 8:
            chosen = "Q8_0"
        elif category == "attn_output" and experts == 8 and preset in ("Q4_K_M", "Q4_K_S"):
            chosen = "Q5_K"
        elif category == "ffn_down":
            # MoE models: the layer comes from the name (GGUF merges a layer's experts into one tensor)
            layer = tensor.layer if experts > 1 and tensor.layer is not None else down_index
            if preset in ("Q4_K_M", "Q5_K_M") and more_bits(layer, down_layers):
                chosen = "Q6_K"
            elif preset == "Q4_K_S" and layer < down_layers // 8:
                chosen = "Q5_K"
            down_index += 1
        types[tensor.name] = _fit_row(chosen, tensor.shape[-1])
    return types


def _ffn_down_count(model: ModelLike) -> int:
    """FFN down tensors in the GGUF file: one per dense layer, and per MoE layer the merged experts plus the
    shared expert."""
    if not model.num_experts:
        return model.num_layers
    dense = min(model.first_dense_layers, model.num_layers)
    return dense + (model.num_layers - dense) * (2 if model.shared_experts else 1)


def _fit_row(chosen: str, cols: int) -> str:
    """llama.cpp's fallback for rows that are not whole blocks of the chosen type."""
    if _row_bytes(chosen, cols) is not None:
        return chosen
    fallback = _FALLBACK.get(chosen, "F16")
    return fallback if _row_bytes(fallback, cols) is not None else "F16"
