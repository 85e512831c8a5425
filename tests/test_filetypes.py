"""llama-quantize's file types: the per-tensor GGML types of llama-quant.cpp, checked three ways.

1. Sizes: the tensor bytes of each file type equal the published GGUF files of widely used models (which add a
   few MB of tokenizer and metadata), for every K-quant and i-quant file type floatfmt knows.
2. Categories: floatfmt reads llama.cpp's tensor categories from Hugging Face names; gguf-py's own name map
   (the converter's) gives the GGUF names, and llama-quant.cpp's substring rules on those names must agree.
3. Rules: the branches that sizes alone cannot tell apart (MoE, grouped-query attention, imatrix, fallbacks).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pytest

from floatfmt.memory import ModelSpec, load_model
from floatfmt.quant.filetypes import CONVERTER_KEEPS_MTP, FILE_TYPES, _category, file_type, tensor_types
from floatfmt.quant.storage import ggml_scheme, resolve


def _tensor_bytes(model: ModelSpec, types: dict[str, str]) -> int:
    return sum(ggml_scheme(types[t.name]).storage_bytes(t.shape) for t in model.tensors() if t.name in types)


# Published GGUF sizes in GB (bartowski's llama.cpp quantizations; IQ4 files made with an imatrix).
PUBLISHED = [
    ("llama-3.1-8b", "Q2_K", 3.18),
    ("llama-3.1-8b", "Q3_K_S", 3.66),
    ("llama-3.1-8b", "Q3_K_M", 4.02),
    ("llama-3.1-8b", "Q3_K_L", 4.32),
    ("llama-3.1-8b", "Q4_K_S", 4.69),
    ("llama-3.1-8b", "Q4_K_M", 4.92),
    ("llama-3.1-8b", "Q5_K_S", 5.60),
    ("llama-3.1-8b", "Q5_K_M", 5.73),
    ("llama-3.1-8b", "Q6_K", 6.60),
    ("llama-3.1-8b", "Q8_0", 8.54),
    ("llama-3.1-8b", "IQ4_XS", 4.45),
    ("llama-3.1-8b", "IQ4_NL", 4.68),
    ("qwen2.5-7b", "Q3_K_M", 3.81),
    ("qwen2.5-7b", "IQ4_XS", 4.22),
    ("qwen2.5-7b", "Q5_K_M", 5.44),
    ("qwen2.5-7b", "Q6_K", 6.25),
    ("qwen2.5-7b", "Q8_0", 8.10),
    ("llama-3.1-70b", "Q3_K_M", 34.27),
    ("llama-3.1-70b", "IQ4_XS", 37.90),
    ("llama-3.1-70b", "Q5_K_M", 49.95),
    ("llama-3.1-70b", "Q6_K", 57.89),
    ("llama-3.1-70b", "Q8_0", 74.98),
]


@pytest.mark.parametrize(("model_name", "preset", "published_gb"), PUBLISHED)
def test_file_type_sizes_equal_published_ggufs(model_name, preset, published_gb):
    model = load_model(model_name)
    types = tensor_types(model, preset, imatrix=preset.startswith("IQ"))
    data = _tensor_bytes(model, types) / 1e9
    assert published_gb - 0.02 < data <= published_gb + 0.005  # the file adds 5-15 MB of metadata


def _llama_cpp_category(gguf_name: str) -> str:
    """tensor_get_category of llama-quant.cpp, on a GGUF tensor name."""
    if gguf_name == "output.weight":
        return "output"
    if gguf_name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for needle, category in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_kv_b"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if needle in gguf_name:
            return category
    return "other"


@pytest.mark.parametrize(
    ("preset_name", "arch"),
    [("llama-3.1-8b", "LLAMA"), ("qwen2.5-7b", "QWEN2"), ("mixtral-8x7b", "LLAMA"), ("deepseek-v3", "DEEPSEEK2"),
     ("gpt-oss-20b", "GPT_OSS"), ("glm-4.5-air", "GLM4_MOE")],
)  # fmt: skip
def test_categories_agree_with_gguf_names(preset_name, arch):
    gguf = pytest.importorskip("gguf")
    model = load_model(preset_name)
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch), model.num_layers + model.mtp_layers + 1)
    checked = 0
    skipped = ("router", "norm") if model.architecture in CONVERTER_KEEPS_MTP else ("router", "mtp", "norm")
    for tensor in model.tensors():
        if len(tensor.shape) < 2 or tensor.component in skipped or tensor.part == "router":
            continue
        if tensor.name.endswith("bias"):
            continue
        merged = re.sub(r"\.experts\.\d+\.", ".experts.", tensor.name)  # the converter merges the experts
        gguf_name = names.get_name(merged, try_suffixes=(".weight", ".bias"))
        if gguf_name is None and merged.endswith("gate_up_proj"):
            gguf_name = names.get_name(merged.replace("gate_up_proj", "up_proj"))  # split in two, gate and up
        assert gguf_name is not None, tensor.name
        gguf_name = gguf_name if gguf_name.endswith(".weight") else gguf_name + ".weight"
        assert _category(tensor) == _llama_cpp_category(gguf_name), (tensor.name, gguf_name)
        checked += 1
    assert checked > 10


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    layer: int | None = None
    component: str = "attention"

    @property
    def part(self) -> str:
        return self.component


@dataclass
class _Bert:
    """MiniLM's tensors (6 layers of 384), as a checkpoint without lm_head: tied embeddings to llama.cpp."""

    architecture: str = "bert"
    num_layers: int = 6
    num_experts: int = 0
    first_dense_layers: int = 0
    shared_experts: int = 0
    tie_embeddings: bool = True
    config: dict = field(default_factory=lambda: {"torch_dtype": "float32"})

    def tensors(self):
        yield _Tensor("embeddings.word_embeddings.weight", (30522, 384), None, "embedding")
        yield _Tensor("embeddings.position_embeddings.weight", (512, 384), None, "embedding")
        yield _Tensor("embeddings.token_type_embeddings.weight", (2, 384), None, "embedding")
        for i in range(self.num_layers):
            for part in (
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
            ):
                yield _Tensor(f"encoder.layer.{i}.{part}.weight", (384, 384), i)
            yield _Tensor(f"encoder.layer.{i}.intermediate.dense.weight", (1536, 384), i, "mlp")
            yield _Tensor(f"encoder.layer.{i}.output.dense.weight", (384, 1536), i, "mlp")
            yield _Tensor(f"encoder.layer.{i}.output.LayerNorm.weight", (384,), i, "norm")


def test_mtp_layers_are_in_the_gguf_only_where_the_converter_keeps_them():
    """convert_hf_to_gguf.py drops DeepSeek-V3/R1's MTP layer and keeps GLM-4.5's (blk.92, counted in n_layer = 93
    and in the attn_v count); llama-quantize gives its nextn eh_proj, embedding and head the base type."""
    r1 = load_model("deepseek-r1")
    assert not any(name.startswith("model.layers.61.") for name in tensor_types(r1, "Q4_K_M"))
    glm = load_model("glm-4.5")
    types = tensor_types(glm, "Q4_K_M")
    for part in ("eh_proj", "embed_tokens", "shared_head.head"):
        assert types[f"model.layers.92.{part}.weight"] == "Q4_K"
    assert types["model.embed_tokens.weight"] == "Q4_K" and types["lm_head.weight"] == "Q6_K"
    assert types["model.layers.92.enorm.weight"] == "F32" and types["model.layers.92.mlp.gate.weight"] == "F32"
    # use_more_bits over 93 layers (93 // 8 = 11; 7 * 93 // 8 = 81) for the FFN down projections of each layer
    more = [i for i in range(93) if i < 11 or i >= 81 or (i - 11) % 3 == 2]
    down = ["model.layers.{}.mlp.down_proj.weight"] * 3 + ["model.layers.{}.mlp.experts.0.down_proj.weight"] * 90
    downs = {i for i in range(93) if types[down[i].format(i)] == "Q6_K"}
    assert downs == set(more)
    # attn_v by its running index among 93 value projections
    values = {i for i in range(93) if types[f"model.layers.{i}.self_attn.v_proj.weight"] == "Q6_K"}
    assert values == set(more)
    # the footprint follows the file: R1's MTP module is not there, GLM's is, in its GGUF types
    from floatfmt.memory import footprint

    labels = {line.label for line in footprint(r1, weights="Q4_K_M", context=0).lines}
    assert not any("mtp" in label for label in labels)
    mtp = footprint(glm, weights="Q4_K_M", context=0).line("weights: mtp")
    expected = sum(ggml_scheme(types[t.name]).storage_bytes(t.shape) for t in glm.tensors() if t.component == "mtp")
    assert mtp.bytes + footprint(glm, weights="Q4_K_M", context=0).line("scales: mtp").bytes == expected


def test_bert_categories_and_kept_tensors():
    gguf = pytest.importorskip("gguf")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, 6)
    model = _Bert()
    for tensor in model.tensors():
        if len(tensor.shape) == 2 and "position" not in tensor.name and "token_type" not in tensor.name:
            gguf_name = names.get_name(tensor.name, try_suffixes=(".weight",))
            assert _category(tensor) == _llama_cpp_category(gguf_name), tensor.name
    types = tensor_types(model, "Q4_K_M")
    # no output tensor: the token embeddings get the output's type, Q8_0 since 384 is not a multiple of 256
    assert types["embeddings.word_embeddings.weight"] == "Q8_0"
    assert types["embeddings.position_embeddings.weight"] == "F16"  # not quantized (BERT's position_embd)
    assert types["embeddings.token_type_embeddings.weight"] == "F16"
    assert types["encoder.layer.0.attention.self.query.weight"] == "Q5_0"  # rows of 384: Q4_K falls back
    # ffn_down, rows of 1536 = 6 super-blocks: use_more_bits(i, 6) holds for layers 2 and 5
    downs = [types[f"encoder.layer.{i}.output.dense.weight"] for i in range(6)]
    assert downs == ["Q4_K", "Q4_K", "Q6_K", "Q4_K", "Q4_K", "Q6_K"]
    assert types["encoder.layer.0.output.LayerNorm.weight"] == "F32"


def _small(**config) -> ModelSpec:
    base = {"model_type": "llama", "vocab_size": 1024, "hidden_size": 512, "num_hidden_layers": 16,
            "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 1024}  # fmt: skip
    return ModelSpec.from_config({**base, **config})


def test_grouped_query_rules():
    gqa4 = tensor_types(_small(), "Q2_K")  # 8 heads / 2 kv heads: n_gqa = 4
    mha = tensor_types(_small(num_key_value_heads=8), "Q2_K")
    v = "model.layers.3.self_attn.v_proj.weight"
    assert (gqa4[v], mha[v]) == ("Q4_K", "Q3_K")
    assert gqa4["model.layers.3.mlp.down_proj.weight"] == "Q3_K"
    assert gqa4["model.layers.3.self_attn.o_proj.weight"] == "Q3_K"
    assert gqa4["model.layers.3.self_attn.q_proj.weight"] == "Q2_K"
    iq4 = tensor_types(_small(), "IQ4_XS")
    assert iq4[v] == "Q5_K" and tensor_types(_small(num_key_value_heads=8), "IQ4_XS")[v] == "IQ4_XS"


def test_imatrix_rules():
    down = [f"model.layers.{i}.mlp.down_proj.weight" for i in range(16)]
    plain, weighted = tensor_types(_small(), "IQ4_NL"), tensor_types(_small(), "IQ4_NL", imatrix=True)
    assert [plain[d] for d in down[:3]] == ["Q5_K", "Q5_K", "IQ4_NL"]  # the first 16/8 layers, without imatrix
    assert {weighted[d] for d in down} == {"IQ4_NL"}
    q4 = tensor_types(_small(), "Q4_0", imatrix=True)
    assert [q4[d] for d in down[:3]] == ["Q4_1", "Q4_1", "Q4_0"]
    assert {tensor_types(_small(), "Q4_0")[d] for d in down} == {"Q4_0"}


def test_q3_k_m_layers_and_value_count():
    types = tensor_types(_small(), "Q3_K_M")
    down = [types[f"model.layers.{i}.mlp.down_proj.weight"] for i in range(16)]
    assert down == ["Q5_K"] + ["Q4_K"] * 15  # i < n/16
    values = [types[f"model.layers.{i}.self_attn.v_proj.weight"] for i in range(16)]
    assert values == ["Q5_K", "Q5_K"] + ["Q4_K"] * 14
    assert types["model.layers.0.self_attn.o_proj.weight"] == "Q4_K"
    assert types["lm_head.weight"] == "Q6_K" and types["model.embed_tokens.weight"] == "Q3_K"


def test_eight_expert_and_mxfp4_moe_rules():
    model = load_model("mixtral-8x7b")
    types = tensor_types(model, "Q4_K_M")
    layer = "model.layers.7."
    assert types[layer + "self_attn.v_proj.weight"] == "Q8_0"
    assert types[layer + "self_attn.k_proj.weight"] == "Q8_0"
    assert types[layer + "self_attn.o_proj.weight"] == "Q5_K"
    assert types[layer + "block_sparse_moe.gate.weight"] == "F32"
    # every expert of a layer shares the layer's choice (llama.cpp reads the layer from the merged tensor's name)
    downs = {types[f"{layer}block_sparse_moe.experts.{e}.w2.weight"] for e in range(8)}
    assert len(downs) == 1
    moe = tensor_types(model, "MXFP4_MOE")
    assert moe[layer + "block_sparse_moe.experts.3.w1.weight"] == "MXFP4"
    assert moe[layer + "self_attn.q_proj.weight"] == "Q8_0" and moe["lm_head.weight"] == "Q8_0"
    assert Counter(moe.values())["MXFP4"] == 32 * 8 * 3


def test_tied_embeddings_get_the_output_type():
    tied = tensor_types(_small(tie_word_embeddings=True), "Q4_K_M")
    untied = tensor_types(_small(), "Q4_K_M")
    assert tied["model.embed_tokens.weight"] == "Q6_K" and "lm_head.weight" not in tied
    assert untied["model.embed_tokens.weight"] == "Q4_K"
    assert tensor_types(_small(), "TQ2_0")["model.embed_tokens.weight"] == "Q4_K"


def test_names_and_cases():
    assert set(FILE_TYPES) >= {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M",
                               "Q6_K", "Q8_0", "IQ4_NL", "IQ4_XS"}  # fmt: skip
    assert file_type("q4_k_m").name == "Q4_K_M" and file_type("q3_k_l").name == "Q3_K_L"
    for both in ("Q6_K", "Q8_0", "IQ4_XS", "Q4_0"):  # a file type in capitals, a block type in lower case
        assert file_type(both) is not None and file_type(both.lower()) is None
        assert resolve(both).name == both and resolve(both.lower()).name == both.lower()
    with pytest.raises(ValueError, match=r"unknown llama\.cpp file type"):
        tensor_types(_small(), "Q2_K_S")
