"""Model specs: exact parameter counts of real models, KV cache per token, footprints against hand arithmetic."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest

import floatfmt.cli
from floatfmt.io import save_safetensors
from floatfmt.memory import (
    COMPONENTS,
    ModelSpec,
    UnsupportedModelError,
    cache_bytes,
    fit,
    footprint,
    gpu_hour_cost,
    load_model,
    presets,
    roofline,
)

# Parameter counts published for each model: the safetensors index's total_size / 2 for BF16 checkpoints
# (Llama 3.1, Qwen2.5, Mixtral, the distills), the model card otherwise (DeepSeek-V3: 671B main + MTP;
# gpt-oss: 116.83B / 20.91B).
OFFICIAL_PARAMS = {
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.1-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-32b": 32_763_876_352,
    "qwen2.5-72b": 72_706_203_648,
    "mixtral-8x7b": 46_702_792_704,
    "deepseek-r1-distill-qwen-1.5b": 1_777_088_000,
    "deepseek-r1-distill-qwen-7b": 7_615_616_512,
    "deepseek-r1-distill-qwen-14b": 14_770_033_664,
    "deepseek-r1-distill-qwen-32b": 32_763_876_352,
    "deepseek-r1-distill-llama-8b": 8_030_261_248,
    "deepseek-r1-distill-llama-70b": 70_553_706_496,
    # Gemma 2 (float32 checkpoints: the index's total_size / 4), Gemma 3 with its SigLIP vision tower and projector
    # (the BF16 index's total_size / 2), Mistral 7B v0.1
    "gemma-2-9b": 9_241_705_984,
    "gemma-2-27b": 27_227_128_320,
    "gemma-3-4b": 4_300_079_472,
    "gemma-3-27b": 27_432_406_640,
    "mistral-7b-v0.1": 7_241_732_096,
    # the families deployers run today, each against its BF16 index's total_size / 2 (the MoE ones also against
    # their cards' active counts, below), and the DeepSeek-V3 architecture's other checkpoints (model cards)
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824,
    "llama-3.3-70b": 70_553_706_496,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-1.5b": 1_543_714_304,
    "qwen2.5-3b": 3_085_938_688,
    "qwen3-8b": 8_190_735_360,
    "qwen3-30b-a3b": 30_532_122_624,
    "qwen3-235b-a22b": 235_093_634_560,
    "mistral-nemo-12b": 12_247_782_400,
    "mistral-small-24b": 23_572_403_200,
    "phi-4": 14_659_507_200,
    "deepseek-v3.1": 684_489_845_504,
    "kimi-k2": 1_026_408_232_448,
}

# Active parameters per token as the model cards give them (rounded there): "3.3B activated", "22B activated",
# "32B activated parameters"
ACTIVE_PARAMS_ROUNDED = {"qwen3-30b-a3b": 3.3e9, "qwen3-235b-a22b": 22e9, "kimi-k2": 32e9}


@pytest.mark.parametrize("name", list(ACTIVE_PARAMS_ROUNDED))
def test_active_parameters_round_to_the_model_cards(name):
    active = load_model(name).active_params
    assert abs(active - ACTIVE_PARAMS_ROUNDED[name]) < 0.05 * ACTIVE_PARAMS_ROUNDED[name], f"{active:,}"


def test_phi_stores_fused_projections():
    names = {t.name: t.shape for t in load_model("phi-4").tensors()}
    assert names["model.layers.0.self_attn.qkv_proj.weight"] == (5120 + 2 * 10 * 128, 5120)
    assert names["model.layers.39.mlp.gate_up_proj.weight"] == (2 * 17920, 5120)
    assert "model.layers.0.self_attn.q_proj.weight" not in names


@pytest.mark.parametrize("name", list(OFFICIAL_PARAMS))
def test_parameter_counts_equal_the_official_checkpoints(name):
    model = load_model(name)
    assert model.num_params == OFFICIAL_PARAMS[name]
    assert sum(model.params_by_component().values()) == model.num_params
    assert set(model.params_by_component()) == set(COMPONENTS)


def test_every_listed_model_has_a_preset():
    listed = {
        "deepseek-v3", "deepseek-r1", "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b",
        "deepseek-r1-distill-qwen-14b", "deepseek-r1-distill-qwen-32b", "deepseek-r1-distill-llama-8b",
        "deepseek-r1-distill-llama-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-7b",
        "qwen2.5-32b", "qwen2.5-72b", "mixtral-8x7b", "gpt-oss-20b", "gpt-oss-120b",
    }  # fmt: skip
    assert listed <= set(presets())


@pytest.mark.slow
def test_deepseek_v3_mla_moe_and_mtp():
    model = load_model("deepseek-v3")
    counts = model.params_by_component()
    assert model.num_params - counts["mtp"] == 671_026_419_200  # "671B total parameters"
    assert model.num_params == 684_489_845_504  # with the 14B multi-token-prediction module: "685B"
    assert model.active_params == 37_552_297_472  # "37B activated for each token"
    # one routed expert: gate, up and down projections of 7168 x 2048
    assert counts["experts"] == 58 * 256 * 3 * 7168 * 2048
    names = {t.name for t in model.tensors()}
    assert "model.layers.0.mlp.gate_proj.weight" in names and "model.layers.3.mlp.experts.255.down_proj.weight" in names
    assert "model.layers.61.shared_head.head.weight" in names and "model.layers.61.eh_proj.weight" in names
    assert load_model("deepseek-r1").params_by_component() == counts


@pytest.mark.slow
def test_deepseek_r1_fp8_checkpoint_byte_for_byte():
    """The published DeepSeek-R1 (163 shards): 91,991 tensors holding 684,531,386,000 values in 688,574,839,360
    bytes, as a listing of its safetensors headers gives them (FP8 128 x 128 tiles with float32 scale_inv;
    embeddings, heads, eh_proj, norms and routers in BF16; the router correction bias in float32)."""
    model = load_model("deepseek-r1")
    keep = {"*embed_tokens*": "stored", "lm_head*": "stored", "*shared_head.head*": "stored", "*eh_proj*": "stored"}
    assert footprint(model, weights="fp8_e4m3_block128", context=0, overrides=keep).total == 688_574_839_360
    fp8 = [
        t
        for t in model.tensors()
        if len(t.shape) == 2 and t.part != "router" and not any(fnmatch.fnmatch(t.name, k) for k in keep)
    ]
    scale_values = sum(-(-t.shape[0] // 128) * -(-t.shape[1] // 128) for t in fp8)
    assert len(list(model.tensors())) + len(fp8) == 91_991
    assert model.num_params + scale_values == 684_531_386_000


@pytest.mark.parametrize(
    ("name", "total_size", "tensors"),
    [("gpt-oss-20b", 13_761_264_768, 459), ("gpt-oss-120b", 65_248_815_744, None)],
)
def test_gpt_oss_mxfp4_checkpoints_byte_for_byte(name, total_size, tensors):
    """openai/gpt-oss: experts in MXFP4 (stored as _blocks and _scales), everything else BF16; the index's
    total_size (and the 20b's 459 tensors)."""
    model = load_model(name)
    experts = {"*mlp.experts.gate_up_proj": "mxfp4", "*mlp.experts.down_proj": "mxfp4"}
    assert footprint(model, weights="bf16", context=0, overrides=experts).total == total_size
    if tensors is not None:
        packed = [t for t in model.tensors() if any(fnmatch.fnmatch(t.name, k) for k in experts)]
        assert len(list(model.tensors())) + len(packed) == tensors  # each packed tensor is _blocks + _scales


def test_gpt_oss_and_mixtral_active_parameters():
    for name, total, active_without_embedding in [
        ("gpt-oss-120b", 116_829_156_672, 5.13e9),
        ("gpt-oss-20b", 20_914_757_184, 3.61e9),
    ]:
        model = load_model(name)
        assert model.num_params == total
        # OpenAI's "active parameters" leave out the embedding table (a lookup, not a matmul)
        active = model.active_params - model.params_by_component()["embedding"]
        assert round(active / 1e7) == round(active_without_embedding / 1e7)
    assert load_model("mixtral-8x7b").active_params == 12_879_925_248  # "12.9B active"


KV_BYTES_PER_TOKEN_BF16 = {
    "llama-3.1-8b": 32 * 2 * 8 * 128 * 2,  # 128 KiB
    "llama-3.1-70b": 80 * 2 * 8 * 128 * 2,
    "llama-3.1-405b": 126 * 2 * 8 * 128 * 2,
    "qwen2.5-7b": 28 * 2 * 4 * 128 * 2,
    "qwen2.5-72b": 80 * 2 * 8 * 128 * 2,
    "mixtral-8x7b": 32 * 2 * 8 * 128 * 2,
    "deepseek-r1-distill-qwen-1.5b": 28 * 2 * 2 * 128 * 2,
    "deepseek-v3": 61 * (512 + 64) * 2,  # MLA: the latent and the shared rope key, not 128 heads
    "gpt-oss-120b": 36 * 2 * 8 * 64 * 2,
    "gpt-oss-20b": 24 * 2 * 8 * 64 * 2,
    "qwen2.5-32b": 64 * 2 * 8 * 128 * 2,
    "deepseek-r1": 61 * (512 + 64) * 2,
    "deepseek-r1-distill-qwen-7b": 28 * 2 * 4 * 128 * 2,
    "deepseek-r1-distill-qwen-14b": 48 * 2 * 8 * 128 * 2,
    "deepseek-r1-distill-qwen-32b": 64 * 2 * 8 * 128 * 2,
    "deepseek-r1-distill-llama-8b": 32 * 2 * 8 * 128 * 2,
    "deepseek-r1-distill-llama-70b": 80 * 2 * 8 * 128 * 2,
    "gemma-2-9b": 42 * 2 * 8 * 256 * 2,  # every layer, before its window applies
    "gemma-2-27b": 46 * 2 * 16 * 128 * 2,
    "gemma-3-4b": 34 * 2 * 4 * 256 * 2,
    "gemma-3-27b": 62 * 2 * 16 * 128 * 2,
    "mistral-7b-v0.1": 32 * 2 * 8 * 128 * 2,
    "llama-3.2-1b": 16 * 2 * 8 * 64 * 2,
    "llama-3.2-3b": 28 * 2 * 8 * 128 * 2,
    "llama-3.3-70b": 80 * 2 * 8 * 128 * 2,
    "qwen2.5-0.5b": 24 * 2 * 2 * 64 * 2,
    "qwen2.5-1.5b": 28 * 2 * 2 * 128 * 2,
    "qwen2.5-3b": 36 * 2 * 2 * 128 * 2,
    "qwen3-8b": 36 * 2 * 8 * 128 * 2,
    "qwen3-30b-a3b": 48 * 2 * 4 * 128 * 2,
    "qwen3-235b-a22b": 94 * 2 * 4 * 128 * 2,
    "mistral-nemo-12b": 40 * 2 * 8 * 128 * 2,
    "mistral-small-24b": 40 * 2 * 8 * 128 * 2,
    "phi-4": 40 * 2 * 10 * 128 * 2,
    "deepseek-v3.1": 61 * (512 + 64) * 2,
    "kimi-k2": 61 * (512 + 64) * 2,
    "qwen3-next-80b-a3b": 12 * 2 * 2 * 256 * 2,  # the 12 gated-attention layers; the other 36 keep a state
    "deepseek-v3.2-exp": 61 * (512 + 64) * 2,  # the latent; the indexer's keys are a line of their own
    "glm-4.5": 92 * 2 * 8 * 128 * 2,  # the MTP layer's cache is the draft's, not counted for the main model
    "glm-4.5-air": 46 * 2 * 8 * 128 * 2,
}


def test_every_preset_has_its_kv_figure():
    assert set(KV_BYTES_PER_TOKEN_BF16) == set(presets())


@pytest.mark.parametrize("name", list(KV_BYTES_PER_TOKEN_BF16))
def test_kv_bytes_per_token(name):
    model = load_model(name)
    assert model.kv_bytes_per_token("bf16") == KV_BYTES_PER_TOKEN_BF16[name]
    assert model.kv_bytes_per_token("fp8") == KV_BYTES_PER_TOKEN_BF16[name] / 2
    assert model.kv_bytes_per_token("q8_0") == KV_BYTES_PER_TOKEN_BF16[name] / 2 * 34 / 32
    assert model.kv_bytes_per_token("q4_0") == KV_BYTES_PER_TOKEN_BF16[name] / 2 * 18 / 32


def test_sliding_window_layers_hold_only_their_window():
    model = load_model("gpt-oss-120b")  # alternating: 18 sliding layers of 128 tokens, 18 full
    per_layer = 2 * 8 * 64
    context = 131_072
    fp = footprint(model, weights="mxfp4", kv_cache="bf16", context=context, batch=2)
    expected = 2 * 2 * per_layer * (18 * context + 18 * 128)
    assert fp.line("KV cache").bytes == expected
    assert "18 of 36 layers hold a 128-token window" in fp.line("KV cache").formula


def test_footprint_against_hand_arithmetic():
    model = load_model("llama-3.1-8b")
    fp = footprint(model, weights="fp8_e4m3_block128", kv_cache="fp8", context=32_768, batch=4)
    # every matrix: one byte per weight, plus a float32 per 128 x 128 tile; norms stay BF16
    matrices = [t for t in model.tensors() if len(t.shape) == 2]
    tiles = sum(math.ceil(t.shape[0] / 128) * math.ceil(t.shape[1] / 128) for t in matrices)
    norms = sum(t.size for t in model.tensors() if len(t.shape) == 1)
    weights = sum(line.bytes for line in fp.lines if not line.label.startswith("KV"))
    assert weights == sum(t.size for t in matrices) + 4 * tiles + 2 * norms
    assert fp.line("scales: attention").bytes == 4 * sum(
        math.ceil(t.shape[0] / 128) * math.ceil(t.shape[1] / 128) for t in matrices if t.component == "attention"
    )
    assert fp.line("KV cache").bytes == 4 * 32_768 * 32 * 2 * 8 * 128
    assert fp.total == weights + fp.line("KV cache").bytes
    text = str(fp)
    assert "GB " in text and "GiB)" in text and "4 × 32,768 tokens × 32 layers" in text
    assert fp.as_dict()["total"] == fp.total and "<table>" in fp._repr_html_()
    assert list(fp.to_pandas()["bytes"]) == [line.bytes for line in fp.lines]


@pytest.mark.slow
def test_overrides_keep_deepseek_embeddings_and_head_in_bf16():
    model = load_model("deepseek-v3")
    keep = {"*embed_tokens*": "stored", "lm_head*": "stored", "*shared_head.head*": "stored"}
    fp = footprint(model, weights="nvfp4", context=0, overrides=keep)
    assert fp.line("weights: embedding").bytes == 2 * 129_280 * 7168
    assert fp.line("weights: head").bytes == 2 * 129_280 * 7168
    quantized = footprint(model, weights="nvfp4", context=0)
    assert quantized.line("weights: embedding").bytes == 129_280 * 7168 // 2
    # routers stay in the model's dtype; NVFP4 scales: one E4M3 byte per 16 weights and an fp32 per tensor
    assert fp.line("weights: router").bytes == 2 * 58 * 256 * 7168 + 4 * 58 * 256  # the correction bias is fp32
    experts = [t for t in model.tensors() if t.component == "experts"]
    assert fp.line("scales: experts").bytes == sum(t.size // 16 + 4 for t in experts)


def test_gguf_and_format_storage():
    assert cache_bytes(64, "q4_0") == 36 and cache_bytes(64, "bf16") == 128 and cache_bytes(64, "e2m1") == 32
    model = load_model("qwen2.5-7b")
    fp = footprint(model, weights="q4_0", context=0)
    matrices = sum(t.size for t in model.tensors() if len(t.shape) == 2)
    assert fp.line("weights: attention").bytes + fp.line("scales: attention").bytes == sum(
        t.size // 32 * 18 for t in model.tensors() if t.component == "attention" and len(t.shape) == 2
    ) + 2 * sum(t.size for t in model.tensors() if t.component == "attention" and len(t.shape) == 1)
    assert sum(line.bytes for line in fp.lines) == matrices // 32 * 18 + 2 * (model.num_params - matrices)


TINY_QWEN3 = {
    "model_type": "qwen3",
    "vocab_size": 1000,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "intermediate_size": 96,
    "tie_word_embeddings": True,
}


def test_configs_from_files_and_directories(tmp_path):
    config = TINY_QWEN3
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = load_model(tmp_path)
    assert load_model(tmp_path / "config.json") == model
    names = {t.name for t in model.tensors()}
    assert "model.layers.1.self_attn.q_norm.weight" in names and "lm_head.weight" not in names
    # the spec's tensors are what a checkpoint of this model holds, name for name and shape for shape
    rng = np.random.default_rng(0)
    save_safetensors(
        tmp_path / "model.safetensors",
        {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in model.tensors()},
    )
    from floatfmt import open_weights

    header = {name: info.shape for name, info in open_weights(tmp_path).tensors.items()}
    assert header == {t.name: t.shape for t in model.tensors()}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "mamba"}, "model_type 'mamba' is not supported; supported: .*deepseek_v3"),
        ({"model_type": "llama", "hidden_size": 64}, "a llama config needs 'num_attention_heads'"),
        (
            {"model_type": "qwen2", "vocab_size": -1, "hidden_size": 64, "num_attention_heads": 4},
            "'vocab_size' must be a non-negative integer, got -1",
        ),
    ],
)
def test_bad_configs(config, message):
    with pytest.raises(UnsupportedModelError, match=message):
        ModelSpec.from_config(config)


def test_unknown_names_and_files(tmp_path):
    with pytest.raises(UnsupportedModelError, match=r"Did you mean 'llama-3\.1-8b'"):
        load_model("llama-3.1-8")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UnsupportedModelError, match="not a valid JSON config"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="non-negative"):
        footprint(load_model("llama-3.1-8b"), context=-1)
    with pytest.raises(ValueError, match="unknown"):
        footprint(load_model("llama-3.1-8b"), weights="fp7")


def test_training_states_and_zero_stages():
    model = load_model("llama-3.1-70b")
    params = model.num_params
    plain = footprint(model, weights="bf16", training="adam", context=0)
    assert plain.total == 16 * params  # 2 weights + 2 gradients + 12 fp32 master, m, v (ZeRO paper)
    for stage, per_gpu in [
        (0, 16 * params),
        (1, 4 * params + math.ceil(12 * params / 8)),
        (2, 2 * params + math.ceil(2 * params / 8) + math.ceil(12 * params / 8)),
    ]:
        fp = footprint(model, weights="bf16", training="adam", zero=stage, dp=8, context=0)
        assert fp.per_gpu == per_gpu and fp.gpus == 8
    stage3 = footprint(model, weights="bf16", training="adam", zero=3, dp=8, context=0)
    assert abs(stage3.per_gpu - 16 * params / 8) <= 16  # each line rounds up on its own
    with pytest.raises(ValueError, match="unknown optimizer"):
        footprint(model, training="lion")
    with pytest.raises(ValueError, match="zero one of 0-3"):
        footprint(model, training="adam", zero=4)


@pytest.mark.slow
def test_tensor_and_pipeline_parallel_kv_sharding():
    llama = load_model("llama-3.1-8b")  # 8 KV heads
    whole = footprint(llama, context=8192).line("KV cache").bytes
    assert footprint(llama, context=8192, tp=4).line("KV cache").per_gpu == whole // 4
    assert footprint(llama, context=8192, tp=16).line("KV cache").per_gpu == whole // 8  # a head per rank at least
    assert footprint(llama, context=8192, pp=4).line("KV cache").per_gpu == whole // 4
    deepseek = load_model("deepseek-v3")  # MLA: the latent is replicated across tensor-parallel ranks
    kv = footprint(deepseek, context=8192, tp=8).line("KV cache")
    assert kv.per_gpu == kv.bytes
    fp = footprint(deepseek, weights="fp8_e4m3_block128", context=8192, tp=8)
    assert fp.per_gpu == sum(math.ceil(x.bytes / 8) for x in fp.lines if not x.label.startswith("KV")) + kv.bytes
    assert "per GPU" in str(fp) and fp.as_dict()["per_gpu"] == fp.per_gpu


def test_checkpoint_footprint_from_headers(tmp_path):
    """A DeepSeek-style FP8 checkpoint: exact bytes by component and dtype, block scales itemised, MTP by layer."""
    import ml_dtypes

    from floatfmt.memory import checkpoint_footprint, component_of

    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 1}))
    fp8 = ml_dtypes.float8_e4m3fn
    save_safetensors(
        tmp_path / "model.safetensors",
        {
            "model.embed_tokens.weight": np.zeros((64, 32), ml_dtypes.bfloat16),
            "model.layers.0.self_attn.q_proj.weight": np.zeros((256, 32), fp8),
            "model.layers.0.self_attn.q_proj.weight_scale_inv": np.zeros((2, 1), np.float32),
            "model.layers.0.mlp.experts.0.up_proj.weight": np.zeros((128, 32), fp8),
            "model.layers.0.mlp.experts.0.up_proj.weight_scale_inv": np.zeros((1, 1), np.float32),
            "model.layers.0.mlp.gate.weight": np.zeros((4, 32), ml_dtypes.bfloat16),
            "model.layers.0.input_layernorm.weight": np.zeros(32, ml_dtypes.bfloat16),
            "model.layers.1.eh_proj.weight": np.zeros((32, 64), fp8),
            "lm_head.weight": np.zeros((64, 32), ml_dtypes.bfloat16),
        },
    )
    fp = checkpoint_footprint(tmp_path)
    assert {line.label: line.bytes for line in fp.lines} == {
        "weights: embedding (BF16)": 4096,
        "weights: attention (F8_E4M3)": 8192,
        "scales: attention (F32)": 8,
        "weights: router (BF16)": 256,
        "weights: experts (F8_E4M3)": 4096,
        "scales: experts (F32)": 4,
        "weights: norm (BF16)": 64,
        "weights: head (BF16)": 4096,
        "weights: mtp (F8_E4M3)": 2048,
    }
    from floatfmt import open_weights

    assert fp.total == open_weights(tmp_path).nbytes
    assert component_of("model.layers.3.mlp.shared_experts.down_proj.weight") == "shared_experts"
    assert component_of("model.layers.9.self_attn.kv_a_layernorm.weight") == "norm"


def test_gpu_catalog():
    from floatfmt.memory import get_gpu, gpus

    required = {"A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "B200", "L40S", "L4", "RTX-3090",
                "RTX-4090", "RTX-4090D", "RTX-5090", "MI300X", "Ascend-910B"}  # fmt: skip
    assert required <= set(gpus())
    h100 = get_gpu("h100 sxm")
    assert h100.memory_bytes == 80 * 2**30 and "85.90 GB (80.00 GiB)" in str(h100)  # "80GB" means 80 GiB
    assert h100.tflops(8) == 1979 and h100.tflops(4) == 1979 and h100.tflops(16) == 989  # no FP4 on Hopper
    assert get_gpu("B200").tflops(4) == 9000
    for name in gpus():
        gpu = get_gpu(name)
        assert gpu.bandwidth_gbs > 0 and gpu.bf16_tflops > 0 and gpu.source
        assert gpu.fp8_tflops is None or gpu.fp8_tflops >= gpu.bf16_tflops
    with pytest.raises(ValueError, match="Did you mean 'H100-SXM'"):
        get_gpu("H100-SMX")


@pytest.mark.slow
def test_fit_picks_the_fewest_gpus_tensor_parallel_first():
    from floatfmt.memory import fit

    keep = {"*embed_tokens*": "stored", "lm_head*": "stored", "*shared_head.head*": "stored", "*eh_proj*": "stored"}
    r1 = load_model("deepseek-r1")
    options = {"weights": "fp8_e4m3_block128", "context": 131_072, "overrides": keep}
    on_h100 = fit(r1, "H100-SXM", **options)
    assert (on_h100.gpus, on_h100.tp, on_h100.pp) == (16, 8, 2)  # 694 GB does not fit 8 x 72 GiB usable
    on_h200 = fit(r1, "H200", **options)
    assert (on_h200.gpus, on_h200.tp, on_h200.pp) == (8, 8, 1)
    assert on_h200.usable_bytes == int(141 * 2**30 * 0.9)
    assert on_h200.headroom_bytes == on_h200.usable_bytes - on_h200.footprint.per_gpu
    per_token = 61 * 576 * 2  # the MLA latent, replicated on every tensor-parallel rank
    assert on_h200.kv_tokens == on_h200.headroom_bytes // per_token
    small = fit(load_model("deepseek-r1-distill-qwen-32b"), "RTX-4090", weights="q4_0", kv_cache="fp8", context=32_768)
    assert small.gpus == 1 and small.kv_tokens > 0
    with pytest.raises(ValueError, match="does not fit"):
        fit(r1, "L4", max_gpus=16, **options)
    with pytest.raises(ValueError, match="memory_utilization"):
        fit(r1, "H200", memory_utilization=1.5, **options)
    with pytest.raises(ValueError, match="gpus_per_node"):
        fit(r1, "H200", gpus_per_node=0, **options)


def test_roofline_bounds():
    from floatfmt.memory import roofline

    model = load_model("llama-3.1-8b")
    bound = roofline(model, "H100-SXM", weights="bf16", context=4096)
    matmul = 2 * model.num_params * 4096
    attention = 2 * 32 * 32 * 128 * 4096 * 4096
    assert bound.prefill_flops == matmul + attention
    assert bound.prefill_seconds == pytest.approx((matmul + attention) / 989e12)
    step = 16_060_522_496 + 4096 * 131_072  # every BF16 weight and the 4K-token cache
    assert bound.decode_bytes_per_step == step
    assert bound.decode_tokens_per_second == pytest.approx(3350e9 / step)
    fp8 = roofline(model, "H100-SXM", weights="fp8_e4m3_block128", context=4096, gpus=2)
    assert fp8.prefill_seconds == pytest.approx((matmul + attention) / (2 * 1979e12))
    moe = roofline(load_model("mixtral-8x7b"), "H100-SXM", context=1)
    assert moe.decode_bytes_per_step < 0.3 * 2 * 46_702_792_704  # a token reads 2 of 8 experts
    assert "Bounds, not predictions" in str(bound)
    with pytest.raises(ValueError, match="gpus must be at least 1"):
        roofline(model, "H100-SXM", gpus=0)


def test_ggml_block_sizes_match_gguf_py():
    gguf = pytest.importorskip("gguf")
    from floatfmt.quant.rules.gguf import GGML_TYPES

    for name, kind in GGML_TYPES.items():
        qtype = gguf.GGMLQuantizationType[name.upper()]
        assert gguf.GGML_QUANT_SIZES[qtype] == (kind.block_size, kind.block_bytes) and qtype.value == kind.type_id


@pytest.mark.parametrize(
    ("name", "published_gb", "counts"),
    [
        # file sizes of widely used Q4_K_M GGUFs (tensor data plus a few MB of tokenizer and metadata)
        ("llama-3.1-8b", 4.92, {"Q4_K": 193, "Q6_K": 33, "F32": 65}),
        ("llama-3.1-70b", 42.52, {"Q4_K": 441, "Q6_K": 81, "Q5_K": 40, "F32": 161}),
        ("qwen2.5-7b", 4.68, {"Q4_K": 169, "Q6_K": 29, "F32": 141}),
    ],
)
def test_q4_k_m_follows_llama_cpp(name, published_gb, counts):
    from collections import Counter

    from floatfmt.quant.filetypes import tensor_types
    from floatfmt.quant.storage import ggml_scheme

    model = load_model(name)
    types = tensor_types(model, "Q4_K_M")
    assert Counter(types.values()) == counts
    data = sum(ggml_scheme(types[t.name]).storage_bytes(t.shape) for t in model.tensors())
    assert published_gb - 0.02 < data / 1e9 <= published_gb
    assert footprint(model, weights="q4_k_m", context=0).total == data
    layers = model.num_layers
    bumped = [i for i in range(layers) if types[f"model.layers.{i}.mlp.down_proj.weight"] == "Q6_K"]
    expected = [i for i in range(layers) if i < layers // 8 or i >= 7 * layers // 8 or (i - layers // 8) % 3 == 2]
    assert bumped == expected  # llama.cpp's use_more_bits


def test_k_quant_fallbacks_and_unknown_presets():
    from floatfmt.quant.filetypes import tensor_types

    odd = ModelSpec.from_config(
        {"model_type": "llama", "vocab_size": 1000, "hidden_size": 96, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 200}
    )  # fmt: skip
    types = tensor_types(odd, "Q4_K_M")
    assert types["model.layers.1.self_attn.q_proj.weight"] == "Q5_0"  # rows of 96: no 256-value super-blocks
    assert types["model.layers.1.mlp.down_proj.weight"] == "F16"  # rows of 200: not even 32-value blocks
    assert types["lm_head.weight"] == "Q8_0"
    with pytest.raises(ValueError, match=r"unknown llama\.cpp file type"):
        tensor_types(odd, "Q3_K_XL")


def test_lora_and_qlora():
    model = load_model("llama-3.1-8b")
    rank = 16
    matrices = [t for t in model.tensors() if len(t.shape) == 2 and t.component in ("attention", "mlp")]
    adapters = sum(rank * (t.shape[0] + t.shape[1]) for t in matrices)
    assert adapters == 41_943_040  # the figure PEFT prints for rank 16 on all linear layers of Llama 3.1 8B
    keep = {"*embed_tokens*": "stored", "lm_head*": "stored"}  # bitsandbytes leaves them in BF16
    qlora = footprint(model, weights="nf4", overrides=keep, training="adam", lora_rank=rank, context=2048)
    assert qlora.line("LoRA adapters").bytes == 2 * adapters
    assert qlora.line("gradients").bytes == 2 * adapters and qlora.line("optimizer states").bytes == 12 * adapters
    assert not any(line.label.startswith("KV") for line in qlora.lines)  # a training step keeps no KV cache
    nf4_matrices = sum(t.size // 2 + t.size // 64 * 4 for t in matrices)
    base = sum(line.bytes for line in qlora.lines if line.label.startswith(("weights", "scales")))
    assert base == nf4_matrices + 2 * (model.num_params - sum(t.size for t in matrices))
    with pytest.raises(ValueError, match="lora_rank"):
        footprint(model, training="adam", lora_rank=-1)


def test_activation_estimates_show_their_formula():
    model = load_model("llama-3.1-8b")
    h, q, kv, inner = 4096, 4096, 1024, 14336
    per_layer = 8 * h + 4 * q + 4 * kv + 6 * inner
    tokens = 4096
    logits = 4 * tokens * 128_256
    none = footprint(model, training="adam", activations=True, context=tokens).line("activations")
    assert none.estimate and none.bytes == tokens * per_layer * 32 + logits
    assert "Korthikanti" in none.formula and "8h + 4q + 4kv + 6·MLP" in none.formula
    selective = footprint(model, training="adam", activations=True, context=tokens, recompute="selective")
    assert selective.line("activations").bytes == none.bytes  # FlashAttention already keeps no scores
    full = footprint(model, training="adam", activations=True, context=tokens, recompute="full").line("activations")
    assert full.bytes == tokens * 2 * h * 32 + tokens * per_layer + logits
    inference = footprint(model, activations=True, context=tokens, batch=2).line("activations")
    assert inference.bytes == 2 * tokens * 2 * (2 * h + 3 * inner) + 4 * 2 * 128_256
    assert "(estimate)" in str(footprint(model, activations=True))
    with pytest.raises(ValueError, match="recompute"):
        footprint(model, training="adam", activations=True, recompute="some")


def test_engine_reservations_are_labelled_estimates():
    model = load_model("llama-3.1-8b")
    cuda = footprint(model, engine="cuda", tp=2).line("runtime")
    assert cuda.estimate and cuda.per_gpu == 512 * 2**20 and cuda.bytes == 2 * 512 * 2**20
    llama_cpp = footprint(model, weights="Q4_K_M", engine="llama.cpp").line("runtime")
    assert llama_cpp.bytes == 512 * 2**20 + 512 * 4 * (128_256 + 2 * 4096 + 3 * 14_336)
    assert "compute buffer" in llama_cpp.formula
    assert not any(line.label.startswith("runtime") for line in footprint(model).lines)
    with pytest.raises(ValueError, match="unknown engine"):
        footprint(model, engine="tgi")


def test_mixture_of_experts_k_quants_match_published_files():
    """Mixtral 8x22B quantized with llama.cpp b2636 (merged expert tensors): Q4_K_M 85.58, Q4_K_S 80.47, Q5_K_M
    99.96 GB as listed with the files."""
    mixtral = ModelSpec.from_config(
        {
            "model_type": "mixtral",
            "vocab_size": 32000,
            "hidden_size": 6144,
            "intermediate_size": 16384,
            "num_hidden_layers": 56,
            "num_attention_heads": 48,
            "num_key_value_heads": 8,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "tie_word_embeddings": False,
        }
    )
    for preset, published_gb in (("Q4_K_M", 85.58), ("Q4_K_S", 80.47), ("Q5_K_M", 99.96)):
        assert abs(footprint(mixtral, weights=preset, context=0).total / 1e9 - published_gb) < 0.02


def test_ollama_reservation_is_its_own_estimate():
    """457 MiB kept free per GPU plus Ollama's graph size (fs/ggml/ggml.go GraphSize, llm/memory.go)."""
    llama = load_model("llama-3.1-8b")  # h 4096, 32 heads, vocab 128256
    runtime = footprint(llama, weights="Q4_K_M", context=8192, engine="ollama").line("runtime")
    b, c = 512, 8192
    assert runtime.estimate
    assert runtime.bytes == 457 * 2**20 + max(4 * b * (1 + 4 * 4096 + c * (1 + 32)), 4 * b * (4096 + 128_256))
    # the vocabulary graph wins at a short context, whose micro-batch is the whole context
    short = footprint(llama, weights="Q4_K_M", context=256, engine="ollama").line("runtime")
    assert short.bytes == 457 * 2**20 + 4 * 256 * (4096 + 128_256)
    # parallel sequences multiply the cached tokens, not the micro-batch
    parallel = footprint(llama, weights="Q4_K_M", context=8192, batch=4, engine="ollama").line("runtime")
    assert parallel.bytes == 457 * 2**20 + 4 * b * (1 + 4 * 4096 + 4 * c * (1 + 32))
    qwen2 = load_model("qwen2.5-7b")  # h 3584, 28 heads, vocab 152064
    assert footprint(qwen2, context=c, engine="ollama").line("runtime").bytes == 457 * 2**20 + 4 * b * (
        1 + 2 * 3584 + c + c * 28
    )
    gpt_oss = load_model("gpt-oss-20b")  # flash attention: Ollama's rough figure
    assert footprint(gpt_oss, context=c, engine="ollama").line("runtime").bytes == (457 + 4 + 8 + 110) * 2**20
    # an architecture without a formula: (heads / KV heads) x Ollama's KV estimate / 6
    qwen3 = ModelSpec.from_config(TINY_QWEN3)  # 2 layers of 2 KV heads of 32
    for cache, per_element in (("f16", 2), ("q8_0", 1), ("q4_0", 0.5)):
        kv = int(c * 2 * 32 * 2 * 2 * per_element)
        graph = footprint(qwen3, context=c, kv_cache=cache, engine="ollama").line("runtime").bytes - 457 * 2**20
        assert graph == 2 * kv // 6


@pytest.mark.parametrize(
    ("config", "params"),
    [
        # LLaMA 65B (multi-head attention)
        ({"model_type": "llama", "vocab_size": 32000, "hidden_size": 8192, "num_hidden_layers": 80,
          "num_attention_heads": 64, "intermediate_size": 22016}, 65_285_660_672),
    ],
)  # fmt: skip
def test_config_only_models(config, params):
    assert ModelSpec.from_config(config).num_params == params


def test_gemma3_sliding_window_pattern():
    config = {"model_type": "gemma3_text", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 12,
              "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 128,
              "sliding_window": 512, "sliding_window_pattern": 6}  # fmt: skip
    model = ModelSpec.from_config({"model_type": "gemma3", "text_config": config})
    assert model.layer_types.count("full_attention") == 2 and model.qk_norm
    per_layer = 2 * 1 * 16
    assert model.kv_elements_per_token(8192) == per_layer * (2 * 8192 + 10 * 512) // 8192


# --- sliding windows, as transformers' config classes and each engine decide --------------------------------------


def transformers_layer_types(model_type: str, layers: int, config: dict) -> list[str]:
    """The layer types transformers' config classes give when a config has no ``layer_types`` (Gemma2Config,
    Gemma3TextConfig, GptOssConfig, MistralConfig, Qwen2Config), written out rule by rule."""
    if model_type in ("gemma2", "gpt_oss"):
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)]
    if model_type in ("gemma3", "gemma3_text"):
        period = config.get("sliding_window_pattern", 6)
        return ["sliding_attention" if (i + 1) % period else "full_attention" for i in range(layers)]
    if model_type == "mistral":
        return ["sliding_attention"] * layers
    if model_type == "qwen2":
        on = config.get("use_sliding_window", False)
        first = config.get("max_window_layers", 28)
        return ["sliding_attention" if on and i >= first else "full_attention" for i in range(layers)]
    return ["full_attention"] * layers


def kv_cache_by_layer_types(model: ModelSpec, kinds: list[str], window: int, context: int) -> int:
    """Cached values of one sequence, layer by layer: a full layer holds the context, a windowed one the window."""
    per_layer = 2 * model.num_kv_heads * model.head_dim
    return sum(per_layer * (min(context, window) if kind == "sliding_attention" else context) for kind in kinds)


@pytest.mark.parametrize("name", ["gemma-2-9b", "gemma-2-27b", "gemma-3-4b", "gemma-3-27b", "mistral-7b-v0.1"])
@pytest.mark.parametrize("context", [1000, 8192, 131_072])
def test_sliding_windows_follow_transformers_defaults(name, context):
    # the published Gemma 2 configs have sliding_window but no layer_types, Gemma 3's no sliding_window_pattern:
    # transformers fills them in, and so must floatfmt; vLLM and SGLang keep the window (the default engine)
    model = load_model(name)
    text = model.config
    kinds = transformers_layer_types(text["model_type"], model.num_layers, dict(text))
    assert list(model.layer_types) == kinds
    expected = kv_cache_by_layer_types(model, kinds, model.sliding_window, context)
    assert footprint(model, context=context, kv_cache="bf16").line("KV cache").bytes == 2 * expected


def test_llama_cpp_keeps_mistrals_whole_context_and_gemmas_window_plus_a_micro_batch():
    mistral, gemma = load_model("mistral-7b-v0.1"), load_model("gemma-2-9b")
    context = 32_768
    full = footprint(mistral, context=context, engine="llama.cpp").line("KV cache")
    assert full.bytes == 2 * 2 * 8 * 128 * 32 * context and "keeps full attention on every layer" in full.formula
    vllm = footprint(mistral, context=context).line("KV cache")
    assert vllm.bytes == 2 * 2 * 8 * 128 * 32 * 4096 and "32 of 32 layers hold a 4096-token window" in vllm.formula
    # llama.cpp's SWA cache: min(context, pad(window + n_ubatch, 256)) cells (llama-kv-cache-iswa.cpp)
    cells = -(-(4096 + 512) // 256) * 256
    kinds = transformers_layer_types("gemma2", 42, {})
    swa = footprint(gemma, context=context, engine="llama.cpp").line("KV cache")
    assert swa.bytes == 2 * kv_cache_by_layer_types(gemma, kinds, cells, context) and "4608 cells" in swa.formula
    short = footprint(gemma, context=2048, engine="ollama").line("KV cache")  # a context inside the window
    assert short.bytes == 2 * kv_cache_by_layer_types(gemma, kinds, 2048, 2048)


def test_qwen2_sliding_window_only_when_switched_on():
    base = {"model_type": "qwen2", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 8,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "sliding_window": 256,
            "max_window_layers": 5}  # fmt: skip
    assert not ModelSpec.from_config(base).sliding_layers  # use_sliding_window defaults to false, as published
    on = ModelSpec.from_config({**base, "use_sliding_window": True})
    assert list(on.layer_types) == transformers_layer_types("qwen2", 8, {**base, "use_sliding_window": True})


def test_gemma3_multimodal_config_fills_transformers_defaults_and_counts_the_vision_tower():
    model = load_model("gemma-3-4b")  # the published config: a partial text_config and a vision_config
    counts = model.params_by_component()
    # SigLIP: patch embedding (1152 × 3 × 14 × 14 + bias), 4096 positions, 27 layers, post-norm; no pooling head
    layer = 2 * 1152 + 4 * (1152 * 1152 + 1152) + 2 * 1152 + (4304 * 1152 + 4304) + (1152 * 4304 + 1152)
    assert counts["vision"] == 1152 * 3 * 14 * 14 + 1152 + 4096 * 1152 + 27 * layer + 2 * 1152
    assert counts["projector"] == 1152 * 2560 + 1152
    assert model.num_params - counts["vision"] - counts["projector"] == model.active_params  # per token: text only
    names = {t.name for t in model.tensors()}
    assert "language_model.model.layers.33.mlp.down_proj.weight" in names
    assert "vision_tower.vision_model.encoder.layers.26.mlp.fc2.bias" in names
    assert "multi_modal_projector.mm_input_projection_weight" in names
    # quantized storage leaves the image encoder as shipped (llama.cpp puts it in a separate mmproj file)
    q4 = footprint(model, weights="Q4_K_M", context=0)
    assert q4.line("weights: vision").bytes == 2 * counts["vision"]
    assert "scales: vision" not in [line.label for line in q4.lines]


# --- the storage a checkpoint ships in is the default -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "published_bytes"),
    [
        ("deepseek-r1", 688_574_839_360),  # FP8 128 × 128 tiles: the published shards, not 1.37 TB of BF16
        ("gpt-oss-20b", 13_761_264_768),  # MXFP4 experts: the index's total_size
        ("gpt-oss-120b", 65_248_815_744),
        ("llama-3.1-8b", 2 * 8_030_261_248),  # BF16
        ("gemma-2-9b", 4 * 9_241_705_984),  # float32, as Google publishes it
    ],
)
def test_the_default_storage_is_the_checkpoints_own(name, published_bytes):
    model = load_model(name)
    assert footprint(model, context=0).total == published_bytes
    assert footprint(model, context=0, weights="bf16").total != published_bytes or name == "llama-3.1-8b"


def test_the_command_line_prints_the_published_size_without_overrides(capsys):
    assert floatfmt.cli.main(["memory", "deepseek-r1", "--context", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"688\.57 GB +\(641\.29 GiB\)", out) and "its checkpoint's storage: FP8" in out


# --- every option reaches the fit and the roofline ---------------------------------------------------------------

FIT_OPTIONS = [
    {"weights": "Q4_K_M"},
    {"weights": "nvfp4", "kv_cache": "fp8"},
    {"context": 65_536, "batch": 4},
    {"overrides": {"*embed_tokens*": "stored"}},
    {"training": "adam", "zero": 3, "dp": 8},
    {"training": "adam", "lora_rank": 16},
    {"activations": True, "recompute": "selective", "training": "adam"},
    {"engine": "llama.cpp"},
    {"engine": "ollama", "context": 8192},
    {"tp": 2},
    {"pp": 2},
]


@pytest.mark.parametrize("options", FIT_OPTIONS, ids=lambda options: ",".join(options))
def test_the_fit_places_the_footprint_it_is_given(options):
    model = load_model("llama-3.1-70b")
    placed = fit(model, "H100-SXM", **options)
    layout = {"tp": placed.tp, "pp": placed.pp}
    alone = footprint(model, **{**options, **layout})
    assert placed.footprint.per_gpu == alone.per_gpu and placed.footprint.lines == alone.lines
    for fixed in ("tp", "pp"):
        if fixed in options:
            assert getattr(placed, fixed) == options[fixed]


CLI_OPTIONS = [
    (["--weights", "Q4_K_M"], {"weights": "Q4_K_M"}),
    (["--kv-cache", "fp8"], {"kv_cache": "fp8"}),
    (["--context", "65536", "--batch", "4"], {"context": 65536, "batch": 4}),
    (["--override", "*embed_tokens*=stored"], {"overrides": {"*embed_tokens*": "stored"}}),
    (["--train", "adam", "--zero", "3", "--dp", "8"], {"training": "adam", "zero": 3, "dp": 8}),
    (["--train", "adam", "--lora-rank", "16"], {"training": "adam", "lora_rank": 16}),
    (["--train", "adam", "--activations", "--recompute", "full"],
     {"training": "adam", "activations": True, "recompute": "full"}),
    (["--engine", "llama.cpp"], {"engine": "llama.cpp"}),
    (["--tp", "4"], {"tp": 4}),
    (["--pp", "2"], {"pp": 2}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "options"), CLI_OPTIONS, ids=lambda item: " ".join(item) if isinstance(item, list) else ""
)
def test_every_cli_option_reaches_the_footprint_the_fit_and_the_roofline(capsys, argv, options):
    assert floatfmt.cli.main(["memory", "llama-3.1-70b", "--gpu", "H100-SXM", "--json", *argv]) == 0
    shown = json.loads(capsys.readouterr().out)
    model = load_model("llama-3.1-70b")
    placed = fit(model, "H100-SXM", **options)
    assert shown["fit"] == placed.as_dict()
    assert shown["footprint"] == footprint(model, **options).as_dict()  # the layout given, else one GPU
    assert shown["fit"]["bytes_per_gpu"] == footprint(model, **{**options, "tp": placed.tp, "pp": placed.pp}).per_gpu
    if "training" in options:
        assert "roofline" not in shown
    else:
        inference = {k: v for k, v in options.items() if k not in ("tp", "pp")}
        assert shown["roofline"] == roofline(model, "H100-SXM", gpus=placed.gpus, **inference).as_dict()
    assert shown["parameters"] == model.num_params and shown["active_parameters"] == model.active_params


def test_pipeline_parallel_activations_follow_the_1f1b_schedule():
    # the first of pp stages keeps pp micro-batches of its L/pp layers in flight: per GPU, the whole model's
    # activations of one micro-batch, split by tensor parallelism alone (Korthikanti et al. 2022, section 4.2)
    model = load_model("llama-3.1-70b")
    whole = footprint(model, training="adam", activations=True, context=4096).line("activations")
    staged = footprint(model, training="adam", activations=True, context=4096, tp=2, pp=4).line("activations")
    assert staged.bytes == whole.bytes and staged.per_gpu == math.ceil(whole.bytes / 2)
    assert "first of 4 stages holds 4 micro-batches of its 20 layers" in staged.formula
    prefill = footprint(model, activations=True, context=4096, pp=4).line("activations")
    assert prefill.per_gpu is None and "each of 4 stages peaks at one layer" in prefill.formula


def test_memory_of_a_checkpoint_directory_or_gguf_comes_from_its_headers(tmp_path, capsys):
    config = {"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128}  # fmt: skip
    model = ModelSpec.from_config(config)
    tensors = {t.name: np.zeros(t.shape, np.float16) for t in model.tensors()}
    save_safetensors(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert floatfmt.cli.main(["memory", str(tmp_path), "--context", "1024", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    header_bytes = sum(a.nbytes for a in tensors.values())
    kv = footprint(model, context=1024).line("KV cache").bytes
    assert shown["total"] == header_bytes + kv  # the stored bytes exactly, and the cache the config implies
    assert floatfmt.cli.main(["memory", str(tmp_path / "model.safetensors"), "--context", "1024"]) == 0
    assert f"{model.num_params:,} stored values" in capsys.readouterr().out
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((256, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (tmp_path / "config.json").unlink()
    assert floatfmt.cli.main(["memory", str(tmp_path / "m.gguf")]) == 0
    out = capsys.readouterr().out
    assert "16,384 stored values" in out and "no config.json beside it: weights only" in out
    assert "weights: embedding (F32)" in out  # GGUF names have their components too
    assert floatfmt.cli.main(["memory", str(tmp_path / "m.gguf"), "--weights", "q4_k"]) == 2
    assert "counted as it is stored" in capsys.readouterr().err


def test_cost_per_million_tokens_is_the_price_over_the_decode_bound(capsys):
    model = load_model("llama-3.1-70b")
    options = {"weights": "fp8_e4m3_block128", "context": 8192, "batch": 16}
    bound = roofline(model, "H100-SXM", gpus=2, price_per_gpu_hour=2.5, **options)
    tokens_per_hour = bound.decode_tokens_per_second * 3600
    assert bound.cost_per_million_tokens == pytest.approx(2 * 2.5 / tokens_per_hour * 1e6, rel=1e-12)
    assert (
        "(your price)" in str(bound) and roofline(model, "H100-SXM", gpus=2, **options).cost_per_million_tokens is None
    )
    owned = gpu_hour_cost(30_000, years=3, watts=700, energy_price_per_kwh=0.2, utilization=0.5)
    assert owned == pytest.approx((30_000 / (3 * 8766) + 0.7 * 0.2) / 0.5)
    argv = ["memory", "llama-3.1-70b", "--weights", "fp8_e4m3_block128", "--gpu", "H100-SXM", "--json"]
    assert (
        floatfmt.cli.main([*argv, "--purchase", "30000", "--years", "3", "--watts", "700", "--kwh-price", "0.2"]) == 0
    )
    shown = json.loads(capsys.readouterr().out)["roofline"]
    assert shown["price_per_gpu_hour"] == pytest.approx(
        gpu_hour_cost(30_000, years=3, watts=700, energy_price_per_kwh=0.2)
    )
    for bad in (["--price-per-gpu-hour", "2", "--purchase", "1"], ["--price-per-gpu-hour", "-1"]):
        assert floatfmt.cli.main([*argv, *bad]) == 2
    assert floatfmt.cli.main(["memory", "llama-3.1-8b", "--price-per-gpu-hour", "2"]) == 2
    assert "a cost needs --gpu" in capsys.readouterr().err
    with pytest.raises(ValueError, match="utilization"):
        gpu_hour_cost(1000, years=1, utilization=0)


# --- layouts beyond TP in a node and PP across nodes ----------------------------------------------------------


def test_expert_parallel_with_data_parallel_attention_splits_only_the_routed_experts():
    model = load_model("deepseek-r1")
    one = footprint(model, context=32768, batch=8)
    ep = footprint(model, context=32768, batch=8, ep=16)
    assert ep.gpus == 16 and ep.total == one.total  # the same bytes, spread differently
    for line in ep.lines:
        if line.label.startswith(("weights: experts", "scales: experts")):
            assert line.per_gpu == math.ceil(line.bytes / 16)
        else:  # attention, dense and shared layers replicated on every GPU, each replica its own KV cache
            assert line.per_gpu is None, line.label
    grouped = footprint(model, context=32768, batch=8, ep=16, tp=2)  # attention TP2 inside 8 replicas
    assert grouped.line("weights: attention").per_gpu == math.ceil(one.line("weights: attention").bytes / 2)
    with pytest.raises(ValueError, match="no routed experts"):
        footprint(load_model("llama-3.1-8b"), ep=2)
    with pytest.raises(ValueError, match="cannot group ep=6 GPUs by tp=4"):
        footprint(model, ep=6, tp=4)


def test_fit_tries_every_layout_and_says_why_the_others_do_not_fit():
    model = load_model("deepseek-r1")
    options = {"context": 32768, "batch": 8}
    placed = fit(model, "H100-SXM", **options)
    names = [check.layout.name for check in placed.checks]
    assert "EP16 with data-parallel attention" in names and "TP16 across 2 nodes" in names and "TP8" in names
    assert [c.layout.gpus for c in placed.checks] == sorted(c.layout.gpus for c in placed.checks)
    for check in placed.checks:  # each verdict is the footprint's own per-GPU bytes against the usable memory
        layout = check.layout
        per_gpu = footprint(model, tp=layout.tp, pp=layout.pp, ep=layout.ep, **options).per_gpu
        assert check.bytes_per_gpu == per_gpu and check.fits == (per_gpu <= placed.usable_bytes)
        assert check.fits or "over the" in check.reason
    first = next(check for check in placed.checks if check.fits)
    assert (placed.tp, placed.pp, placed.ep) == (first.layout.tp, first.layout.pp, first.layout.ep)
    assert all(not check.fits for check in placed.checks if check.layout.gpus < placed.gpus)
    expert_parallel = fit(model, "H200", ep=8, **options)  # a fixed degree: only layouts with it
    assert expert_parallel.ep == 8 and all(check.layout.ep == 8 for check in expert_parallel.checks)
    assert "EP8 with data-parallel attention" in str(expert_parallel) and expert_parallel.kv_tokens > 0
    with pytest.raises(ValueError, match="closest: "):
        fit(model, "RTX-4090", max_gpus=8)


def test_vllm_gives_its_kv_cache_what_is_left_of_its_share_in_blocks():
    # vLLM (v1 gpu_worker.determine_available_memory): KV = total × gpu_memory_utilization − weights − the
    # profile run's activation peak − non-torch memory since start-up, in 16-token blocks
    model = load_model("llama-3.1-8b")
    placed = fit(model, "H100-SXM", context=8192, engine="vllm")
    lines = placed.footprint.lines
    weights = sum(line.bytes for line in lines if line.label.startswith(("weights", "scales")))
    peak = placed.footprint.line("runtime (vllm").bytes
    per_token = 32 * 2 * 8 * 128 * 2
    requested = int(80 * 2**30 * 0.9)
    assert placed.engine_kv_tokens == (requested - weights - peak) // (16 * per_token) * 16
    assert "vLLM would allocate" in str(placed) and "gpu_memory_utilization's share" in lines[-1].formula
    assert fit(model, "H100-SXM", context=8192).engine_kv_tokens is None  # other engines: no such claim


def test_qwen3_next_keeps_a_state_not_a_cache_in_its_linear_layers():
    model = load_model("qwen3-next-80b-a3b")
    # transformers' Qwen3NextConfig: layer i is full attention when (i + 1) % full_attention_interval == 0
    assert [i for i, kind in enumerate(model.layer_types) if kind == "full_attention"] == list(range(3, 48, 4))
    shapes = {t.name: t.shape for t in model.tensors()}
    keys, values = 16 * 128, 32 * 128  # the gated delta net's key and value widths
    assert shapes["model.layers.0.linear_attn.in_proj_qkvz.weight"] == (2 * keys + 2 * values, 2048)
    assert shapes["model.layers.0.linear_attn.conv1d.weight"] == (2 * keys + values, 1, 4)
    assert shapes["model.layers.3.self_attn.q_proj.weight"] == (2 * 16 * 256, 2048)  # the output gate
    assert "model.layers.3.linear_attn.out_proj.weight" not in shapes
    # the model card: 80B in all, 3B active without the embedding and the head (rounded there)
    counts = model.params_by_component()
    assert round(model.num_params / 1e9) == 80
    assert round((model.active_params - counts["embedding"] - counts["head"]) / 1e9) == 3
    short, long = (footprint(model, context=c, batch=2) for c in (1024, 262_144))
    state = 36 * ((2 * keys + values) * 3 + 32 * 128 * 128)  # convolution window + recurrent state per layer
    assert short.line("linear-attention state").bytes == long.line("linear-attention state").bytes == 2 * 2 * state
    assert long.line("KV cache").bytes == 2 * 262_144 * 12 * 2 * 2 * 256 * 2


@pytest.mark.parametrize("name", ["deepseek-r1", "glm-4.5-air", "mixtral-8x7b", "qwen3-30b-a3b", "llama-3.1-8b"])
def test_folded_expert_groups_price_exactly_what_the_tensors_do(name):
    """The fast path (each layer's routed experts priced once per projection) against the tensors one by one: an
    override with a digit in it turns the folding off, and one that matches nothing changes no byte."""
    from floatfmt.quant.filetypes import _Single, group_types, tensor_types

    model = load_model(name)
    tensors = {t.name: t for t in model.tensors()}
    members = [(member, group) for group in model.tensor_groups() for member in group.names()]
    assert sorted(member for member, _ in members) == sorted(tensors)
    assert any(group.count > 1 for group in model.tensor_groups()) == (model.num_experts > 0)
    for member, group in members:
        assert replace(tensors[member], name=group.first.name) == group.first
    for weights in (None, "nvfp4", "Q4_K_M", "Q3_K_M", "MXFP4_MOE"):
        folded = footprint(model, weights=weights, context=0)
        one_by_one = footprint(model, weights=weights, context=0, overrides={"no.such.tensor.9": "bf16"})
        assert [(line.label, line.bytes) for line in folded.lines] == [
            (line.label, line.bytes) for line in one_by_one.lines
        ], weights
    flat = group_types(model, "Q4_K_M", groups=[_Single(t) for t in model.tensors()])
    assert tensor_types(model, "Q4_K_M") == {group.first.name: kind for group, kind in flat}


def test_glm4_moe_is_deepseeks_moe_under_grouped_query_attention():
    """GLM-4.5 and -Air as their checkpoints store them (transformers' Glm4Moe, llama.cpp's converter): q/k/v
    biases, o_proj unbiased, per-head q/k norms where ``use_qk_norm``, three (Air: one) dense layers, 160 (128)
    routed experts of 1536 (1408) and one shared, the float32 router correction bias, and an appended MTP layer
    that carries its own copies of the embedding and the head."""
    glm, air = load_model("glm-4.5"), load_model("glm-4.5-air")
    shapes = {t.name: t.shape for t in glm.tensors()}
    attention = "model.layers.0.self_attn."
    assert shapes[attention + "q_proj.bias"] == (96 * 128,) and shapes[attention + "k_proj.bias"] == (8 * 128,)
    assert shapes[attention + "q_norm.weight"] == (128,) and attention + "o_proj.bias" not in shapes
    assert shapes["model.layers.2.mlp.gate_proj.weight"] == (12288, 5120)
    assert shapes["model.layers.3.mlp.experts.159.down_proj.weight"] == (5120, 1536)
    assert shapes["model.layers.3.mlp.shared_experts.up_proj.weight"] == (1536, 5120)
    router_bias = next(t for t in glm.tensors() if t.name == "model.layers.91.mlp.gate.e_score_correction_bias")
    assert router_bias.shape == (160,) and router_bias.dtype == "float32"
    mtp = {t.name for t in glm.tensors() if t.component == "mtp"}
    assert {"model.layers.92.eh_proj.weight", "model.layers.92.embed_tokens.weight"} <= mtp
    assert "model.layers.92.mlp.experts.0.gate_proj.weight" in mtp and not any("layers.93." in n for n in shapes)
    assert "model.layers.0.self_attn.q_norm.weight" not in {t.name for t in air.tensors()}

    # by hand: embedding + head, attention, dense and MoE layers, norms; then the MTP layer
    def layer_attention(h, qk_norm):
        q, kv = 96 * 128, 8 * 128
        return (q + 2 * kv) * h + q + 2 * kv + q * h + (2 * 128 if qk_norm else 0) + 2 * h

    def moe(h, experts, inner):
        return experts * 3 * h * inner + 3 * h * inner + experts * h + experts

    for model, h, layers, dense, experts, inner, mlp, qk in [
        (glm, 5120, 92, 3, 160, 1536, 12288, True),
        (air, 4096, 46, 1, 128, 1408, 10944, False),
    ]:
        main = 2 * 151552 * h + h + layers * layer_attention(h, qk)
        main += dense * 3 * h * mlp + (layers - dense) * moe(h, experts, inner)
        extra = layer_attention(h, qk) + moe(h, experts, inner) + 2 * 151552 * h + 2 * h * h + 3 * h
        counts = model.params_by_component()
        assert model.num_params - counts["mtp"] == main and counts["mtp"] == extra
    # the cards: "355B total / 32B active" and "106B / 12B" (active without the embedding and the head, rounded)
    # against 352.8 B and 106.9 B here; with the MTP layer 358.3 B and 110.5 B, Hugging Face's listed sizes
    for model, card_total, card_active in [(glm, 355e9, 32), (air, 106e9, 12)]:
        counts = model.params_by_component()
        assert round((model.active_params - counts["embedding"] - counts["head"]) / 1e9) == card_active
        assert abs(model.num_params - counts["mtp"] - card_total) < 0.01 * card_total
    assert round(glm.num_params / 1e9) == 358 and round(air.num_params / 1e9) == 110
    # Hugging Face's listing of zai-org/GLM-4.5 (from the safetensors headers): 358.34B parameters, 667.5 GiB
    assert round(glm.num_params / 1e7) == 35_834
    checkpoint = footprint(glm, context=0)
    assert round(checkpoint.total / 2**30, 1) == 667.5
    fp = footprint(glm, context=131_072)
    assert fp.line("KV cache").bytes == 131_072 * 92 * 2 * 8 * 128 * 2  # the MTP layer caches nothing here


def test_deepseek_v32_adds_the_indexer_and_its_key_cache():
    v3, v32 = load_model("deepseek-v3"), load_model("deepseek-v3.2-exp")
    shapes = {t.name: t.shape for t in v32.tensors()}
    prefix = "model.layers.0.self_attn.indexer."
    assert shapes[prefix + "wq_b.weight"] == (64 * 128, 1536) and shapes[prefix + "wk.weight"] == (128, 7168)
    assert shapes[prefix + "weights_proj.weight"] == (64, 7168) and shapes[prefix + "k_norm.bias"] == (128,)
    per_layer = 64 * 128 * 1536 + 128 * 7168 + 2 * 128 + 64 * 7168
    assert v32.num_params == v3.num_params + 62 * per_layer  # every layer, the MTP layer included
    assert round(v32.num_params / 1e9) == 685  # the card's "685B"
    fp = footprint(v32, context=131_072)
    assert fp.line("indexer key cache").bytes == 131_072 * 61 * (128 + 4)  # FP8 keys and a float32 scale per 128
    assert fp.line("KV cache").bytes == footprint(v3, context=131_072).line("KV cache").bytes
    as_shipped = {line.label: line.bytes for line in footprint(v32, context=0).lines}
    assert as_shipped["weights: attention"] < footprint(v32, context=0, weights="bf16").line("weights: attention").bytes


def test_every_result_object_has_a_short_repr_and_a_notebook_view():
    import floatfmt
    from floatfmt.memory import get_gpu

    model = load_model("deepseek-r1")
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    quantized = floatfmt.quantize(w, "nvfp4")
    objects = [
        model, fit(model, "H200", context=8192), roofline(model, "H200", gpus=8, price_per_gpu_hour=3.0),
        get_gpu("H100"), floatfmt.get_scheme("mxfp4"), quantized, floatfmt.error_stats(w, quantized.dequantize()),
        footprint(model, context=0),
    ]  # fmt: skip
    for shown in objects:
        text = repr(shown)
        assert len(text) < 220 and text.count("\n") <= 1, text  # one or two lines, not a dataclass dump
        view = shown._repr_html_()
        assert view.startswith("<table") and "<caption>" in view and "</table>" in view
    assert "684,489,845,504" in repr(model) and "H200" in repr(objects[1]) and "20." in repr(objects[6])
