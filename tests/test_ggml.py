"""llama.cpp's block types against ggml's own C quantizers (built from the llama-cpp-python sdist), byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from ggml_reference import dequantize, quantize
from test_quant import awkward_matrix

import floatfmt
from floatfmt.quant.storage import ggml_scheme

pytestmark = pytest.mark.usefixtures("each_kernel_backend")  # numpy's loops and numba's, each against the C

REFERENCE_TYPES = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0", "mxfp4",
                   "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]  # fmt: skip


def hostile(rows: int, cols: int, seed: int) -> np.ndarray:
    """Rows of very different scales, and super-blocks that are zero, constant, one-signed, tiny or huge."""
    w = awkward_matrix(rows, cols, seed)
    w[7, :256] = 0.0
    w[8, :256] = 0.25
    w[9, :256] = -np.abs(w[9, :256])
    w[10, :256] = 1e-20 * w[10, :256]
    w[11, :256] = np.float32(1e-4) * np.sign(w[11, :256])
    w[12, :256] = np.linspace(-1, 1, 256, dtype=np.float32)  # ties of every kind
    w[13, :] = np.round(w[13, :] * 4) / 4
    return w


@pytest.mark.parametrize("name", REFERENCE_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_types_are_byte_identical_to_ggml(name, seed):
    w = hostile(48, 768, seed)
    q = floatfmt.quantize(w, ggml_scheme(name))
    expected = quantize(name, w)
    assert q.to_bytes() == expected
    np.testing.assert_array_equal(q.dequantize().reshape(-1), dequantize(name, expected, w.size))
    assert q.nbytes == len(expected) == q.scheme.storage_bytes(w.shape)


@pytest.mark.parametrize("name", REFERENCE_TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_values_a_type_stands_for_are_ggmls(name, seed):
    """``approximate`` (one fused pass for Q4_K and Q5_K, the bytes and back for the others) against ggml's
    dequantize of ggml's own bytes, bit for bit: what the report measures is what llama.cpp would compute with."""
    from floatfmt.quant import approximate

    w = hostile(64, 1024, seed)  # enough super-blocks for the compiled loops
    expected = dequantize(name, quantize(name, w), w.size).reshape(w.shape)
    np.testing.assert_array_equal(approximate(w, ggml_scheme(name)).view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("name", ["q4_k", "q6_k", "mxfp4"])
def test_large_values_and_many_blocks(name):
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((96, 1024)) * rng.uniform(1e-3, 30, (96, 1))).astype(np.float32)
    assert floatfmt.quantize(w, ggml_scheme(name)).to_bytes() == quantize(name, w)


def test_gguf_mxfp4_is_not_ocp_mxfp4():
    w = hostile(16, 256, 3)
    ggml, ocp = floatfmt.quantize(w, "gguf_mxfp4"), floatfmt.quantize(w, "mxfp4")
    assert ggml.nbytes == ocp.nbytes  # 17 bytes per 32 values either way, laid out differently
    assert ggml.to_bytes() != ocp.to_bytes()
    assert floatfmt.quant.resolve("MXFP4").name == "mxfp4" and ggml_scheme("MXFP4").name == "gguf_mxfp4"


def test_rows_that_are_not_whole_super_blocks_are_refused():
    with pytest.raises(ValueError, match="whole 256-weight blocks, but rows have 96"):
        floatfmt.quantize(np.ones((2, 96), np.float32), "q4_k")
    with pytest.raises(ValueError, match="does not quantize into IQ2_XXS"):
        floatfmt.quantize(np.ones((2, 256), np.float32), ggml_scheme("iq2_xxs"))


@pytest.mark.parametrize("name", ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"])
@pytest.mark.parametrize("seed", [0, 1])
def test_importance_weighted_k_quants_are_byte_identical_to_ggml(name, seed):
    w = hostile(32, 768, seed)
    importance = np.random.default_rng(seed).uniform(0, 3, 768).astype(np.float32) ** 2
    importance[:40] = 0  # columns llama.cpp's imatrix never saw
    q = floatfmt.quantize(w, name, importance=importance)
    assert q.to_bytes() == quantize(name, w, importance)
    assert q.to_bytes() != floatfmt.quantize(w, name).to_bytes()  # the importance changes the choices


def test_importance_is_checked():
    w = np.ones((2, 256), np.float32)
    with pytest.raises(ValueError, match="one per column"):
        floatfmt.quantize(w, "q4_k", importance=np.ones(128))
    with pytest.raises(ValueError, match="takes no importance"):
        floatfmt.quantize(w, "mxfp4", importance=np.ones(256))


def llama_checkpoint(folder, layers: int = 3, hidden: int = 256, inter: int = 512, vocab: int = 1024):
    """A llama-shaped safetensors checkpoint with its config.json."""
    import json

    from floatfmt.io import save_safetensors

    rng = np.random.default_rng(0)
    config = {"model_type": "llama", "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": inter,
              "torch_dtype": "float32"}  # fmt: skip
    model = floatfmt.memory.ModelSpec.from_config(config)
    tensors = {t.name: (rng.standard_normal(t.shape) * 0.02).astype(np.float32) for t in model.tensors()}
    save_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(json.dumps(config))
    return model


def test_a_report_in_a_llama_cpp_file_type_gives_each_tensor_its_type(tmp_path):
    from floatfmt.quant.filetypes import tensor_types

    model = llama_checkpoint(tmp_path)
    report = floatfmt.quant_report(tmp_path, ["Q4_K_M", "q4_k"], progress=False)
    expected = tensor_types(model, "Q4_K_M")
    for name, kind in expected.items():
        row = report.row(name, "Q4_K_M")
        assert row.applied == ("stored" if kind == "F32" else ggml_scheme(kind).name), name
        if row.applied != "stored":
            w = floatfmt.open_weights(tmp_path / "model.safetensors")[name]
            q = floatfmt.quantize(w, ggml_scheme(kind))
            measured = floatfmt.error_stats(w, q.dequantize()).sqnr_db
            assert row.bytes == q.nbytes and row.sqnr_db == pytest.approx(measured)
    assert {row.applied for row in report.rows if row.scheme == "Q4_K_M"} >= {"q4_k", "q6_k", "stored"}
    assert all(row.applied in ("q4_k", "stored") for row in report.rows if row.scheme == "q4_k")


def _same_values(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Bit for bit, except that any NaN matches any NaN (payloads are the processor's choice)."""
    nan = np.isnan(theirs)
    np.testing.assert_array_equal(np.isnan(ours), nan)
    np.testing.assert_array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))


@pytest.mark.parametrize("name", REFERENCE_TYPES)
def test_any_block_bytes_dequantize_as_ggml_does(name):
    """Random bytes (scales that are subnormal, infinite or NaN, every code and scale code) through floatfmt's
    dequantizer and through ggml's ``dequantize_row_<type>``."""
    from floatfmt.quant.rules.gguf import dequantize_bytes, ggml_type

    kind = ggml_type(name)
    data = np.random.default_rng(len(name)).integers(0, 256, (96, kind.block_bytes), dtype=np.uint8)
    ours = dequantize_bytes(name, data)
    assert ours.shape == (96, kind.block_size) and ours.dtype == np.float32
    _same_values(ours.reshape(-1), dequantize(name, data.tobytes(), data.shape[0] * kind.block_size))


def test_a_gguf_file_of_every_type_reads_as_gguf_py_dequantizes_it(tmp_path):
    """The reader's own dequantizers against gguf-py's, on a file holding each type floatfmt writes."""
    gguf = pytest.importorskip("gguf")
    from floatfmt.io import open_weights

    w = hostile(32, 512, 3)
    writer = gguf.GGUFWriter(str(tmp_path / "all.gguf"), "llama")
    stored = {}
    for name in REFERENCE_TYPES:
        qtype = gguf.GGMLQuantizationType[name.upper()]
        data = np.frombuffer(quantize(name, w), dtype=np.uint8).reshape(w.shape[0], -1)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        stored[name] = (data, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    weights = open_weights(tmp_path / "all.gguf")
    for name, (data, qtype) in stored.items():
        if name == "q8_k":  # gguf-py does not dequantize Q8_K (floatfmt reads it as ggml does)
            expected = dequantize(name, data.tobytes(), w.size).reshape(w.shape)
        else:
            expected = gguf.quants.dequantize(data, qtype)
        _same_values(weights[name], expected)
        _same_values(weights.read_rows(name, 5, 9), expected[5:9])
