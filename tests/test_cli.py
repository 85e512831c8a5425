"""The command line, through main(argv) and as an installed command."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from floatfmt.cli import main
from floatfmt.io import save_safetensors


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_explain(capsys):
    status, out, err = run(capsys, "explain", "0 1011 011", "e4m3")
    assert status == 0 and "(-1)^0 × 2^(11−7) × (1 + 3/8) = 22" in out and err == ""
    status, out, _ = run(capsys, "explain", "0.3", "e4m3", "--rounding", "toward_zero", "--json")
    data = json.loads(out)
    assert status == 0 and data["code"] == 0x29 and data["rounding"]["direction"] == "down"


def test_encode_and_decode(capsys):
    status, out, _ = run(capsys, "encode", "e4m3", "22", "-1.5", "1000", "--overflow", "saturate", "--json")
    rows = json.loads(out)
    assert status == 0 and [r["code"] for r in rows] == [0x5B, 0xBC, 0x7E] and rows[2]["stored"] == 448.0
    status, out, _ = run(capsys, "decode", "e4m3", "0x5B", "91", "0b01011011", "0 1011 011", "--json")
    assert status == 0 and {r["value"] for r in json.loads(out)} == {22.0}
    status, out, _ = run(capsys, "decode", "e4m3", "127")
    assert status == 0 and "nan" in out


def test_formats_info_table(capsys):
    status, out, _ = run(capsys, "formats")
    assert status == 0 and "float8_e4m3fn" in out and "e4m3, e4m3fn, fp8" in out
    status, out, _ = run(capsys, "info", "e2m1", "--json")
    assert status == 0 and json.loads(out)["max"] == 6.0
    status, out, _ = run(capsys, "table", "e2m1", "--json")
    assert status == 0 and len(json.loads(out)) == 16


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "0 101 1011", "e4m3"], "groups"),
        (["encode", "e2m1", "nan"], "NaN"),
        (["encode", "e4m3", "abc"], "not a number"),
        (["decode", "nosuch", "1"], "unknown format"),
        (["decode", "e4m3", "300"], "outside"),
        (["decode", "e4m3", "2.5"], "a value, not a code"),
        (["encode", "e4m3", "1e6", "--overflow", "error"], "overflow"),
        (["table", "fp32"], "at most 16 bits"),
    ],
)
def test_errors_exit_2_with_a_message_and_no_traceback(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert (
        status == 2 and out == "" and message in err and "Traceback" not in err and err.startswith("floatfmt: error:")
    )


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["encode", "e4m3", "1", "--rounding", "sideways"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_installed_entry_points():
    for command in (["floatfmt"], [sys.executable, "-m", "floatfmt"]):
        done = subprocess.run([*command, "explain", "0x5B", "e4m3"], capture_output=True, text=True)
        assert done.returncode == 0 and "= 22" in done.stdout
    failed = subprocess.run([sys.executable, "-m", "floatfmt", "info", "nope"], capture_output=True, text=True)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr


@pytest.fixture
def small_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"mlp.weight": rng.standard_normal((64, 128)).astype(np.float32), "norm.weight": np.ones(128, np.float32)}
    save_safetensors(tmp_path / "model.safetensors", tensors)
    return str(tmp_path / "model.safetensors")


def test_report(capsys, small_checkpoint):
    status, out, err = run(capsys, "report", small_checkpoint, "--schemes", "mxfp4,nvfp4", "--quiet")
    assert status == 0 and err == ""
    assert out.startswith("Quantization report for") and "mlp.weight" in out and "nvfp4 SQNR dB" in out
    status, out, _ = run(capsys, "report", small_checkpoint, "--schemes", "mxfp4", "--format", "json", "--quiet")
    document = json.loads(out)
    assert document["summary"][0]["bytes"] == 64 * 128 // 2 + 64 * 4 + 128 * 4
    assert json.loads(run(capsys, "report", small_checkpoint, "--json", "--quiet")[1])["schemes"] == [
        "fp8_e4m3_block128",
        "mxfp4",
        "nvfp4",
        "int4_g128",
    ]
    status, out, _ = run(
        capsys, "report", small_checkpoint, "--format", "csv", "--override", "*norm*=bf16", "--workers", "2"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and len(rows) == 8 and {r["applied"] for r in rows if r["tensor"] == "norm.weight"} == {"bf16"}
    status, out, _ = run(
        capsys, "report", small_checkpoint, "--format", "markdown", "--summary-only", "--sample", "0.5"
    )
    assert status == 0 and out.startswith("**Quantization report") and "mlp.weight |" not in out and "± " in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--override", "bf16"], "PATTERN=SCHEME"),
        (["--schemes", "mxfp5"], "unknown scheme"),
        (["--sample", "2"], "fraction"),
        (["--workers", "0"], "at least 1"),
    ],
)
def test_report_errors(capsys, small_checkpoint, extra, message):
    status, out, err = run(capsys, "report", small_checkpoint, *extra)
    assert status == 2 and message in err and out == ""
    status, _, err = run(capsys, "report", small_checkpoint + ".missing")
    assert status == 2 and "no checkpoint at" in err


def test_memory(capsys):
    status, out, err = run(capsys, "memory", "llama-3.1-8b", "--context", "8192")
    assert status == 0 and err == "" and "8,030,261,248 parameters" in out and "KV cache (bf16)" in out
    status, out, _ = run(capsys, "memory", "llama-3.1-70b", "--train", "adam", "--zero", "3", "--dp", "8", "--json")
    data = json.loads(out)["footprint"]
    assert status == 0 and data["gpus"] == 8 and data["total"] == 16 * 70_553_706_496  # training keeps no KV cache
    status, out, _ = run(capsys, "memory", "deepseek-v3", "--weights", "nvfp4", "--override", "*embed_tokens*=stored")
    assert status == 0 and "scales: experts" in out
    status, out, _ = run(
        capsys, "memory", "llama-3.1-70b", "--weights", "fp8_e4m3_block128", "--context", "32768", "--gpu", "H100-SXM"
    )
    assert status == 0 and "2 × H100-SXM (TP2)" in out and "Bounds, not predictions" in out
    status, _, err = run(capsys, "memory", "llama-3.1-8b", "--gpu", "H101")
    assert status == 2 and "unknown GPU" in err
    qlora = ["--weights", "nf4", "--train", "adam", "--lora-rank", "16", "--activations", "--recompute", "full"]
    status, out, _ = run(capsys, "memory", "llama-3.1-8b", *qlora)
    assert status == 0 and "LoRA adapters" in out and "(estimate)" in out
    status, _, err = run(capsys, "memory", "gpt-5")
    assert status == 2 and "neither a preset" in err
    status, _, err = run(capsys, "memory", "llama-3.1-8b", "--train", "lion")
    assert status == 2 and "unknown optimizer" in err


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="finds leftover workers through /proc")
def test_sigterm_stops_the_workers_keeps_the_rows_and_exits_143(tmp_path):
    rng = np.random.default_rng(0)
    # jobs of 4 tensors: two quick ones, then one of four large tensors that is surely running at the signal
    shapes = [(64, 1024)] * 8 + [(1024, 1024)] * 4
    tensors = {
        f"layers.{i:02d}.mlp.weight": rng.standard_normal(shape).astype(np.float32) for i, shape in enumerate(shapes)
    }
    checkpoint = tmp_path / "sigterm-model.safetensors"
    save_safetensors(checkpoint, tensors)
    rows = tmp_path / "rows.jsonl"
    command = [sys.executable, "-m", "floatfmt", "report", str(checkpoint), "--schemes", "iq4_xs,q3_k,q4_k",
               "--workers", "2", "--output", str(rows), "--quiet"]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (rows.exists() and len(rows.read_text().splitlines()) >= 2):
        time.sleep(0.05)  # the header and a first finished tensor
    assert child.poll() is None, "the report ended before the signal: the test checkpoint is too small"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143
    assert err.decode().strip().splitlines()[-1].startswith("floatfmt: interrupted; every finished tensor's rows")
    time.sleep(0.5)
    assert _processes_mentioning(str(checkpoint)) == []  # no orphaned workers
    kept = rows.read_text().splitlines()
    assert 2 <= len(kept) <= 12 and all(json.loads(line) for line in kept)
    finished = subprocess.run([*command, "--resume", "--format", "json"], capture_output=True, timeout=300)
    assert finished.returncode == 0
    assert len(json.loads(finished.stdout)["rows"]) == 12 * 3


def test_names_as_people_type_them(capsys):
    from floatfmt.memory import get_gpu

    for typed, meant in [("4090", "RTX-4090"), ("rtx4090", "RTX-4090"), ("RTX 4090", "RTX-4090"),
                         ("H100", "H100-SXM"), ("h100 pcie", "H100-PCIe"), ("a100", "A100-80GB"),
                         ("4090d", "RTX-4090D"), ("mi300", "MI300X")]:  # fmt: skip
        assert get_gpu(typed).name == meant, typed
    assert get_gpu("custom:24").memory_bytes == 24 * 2**30
    with pytest.raises(ValueError, match="custom:GIB"):
        get_gpu("custom:lots")
    status, out, _ = run(capsys, "memory", "meta-llama/Llama-3.1-8B", "--weights", "q4_k_m", "--gpu", "4090",
                         "--context", "32K")  # fmt: skip
    assert status == 0 and "1 × RTX-4090" in out and "32,768 tokens" in out and "Q4_K_M" in out
    status, out, _ = run(capsys, "memory", "llama-3.1-8b", "--gpu", "custom:24", "--context", "8k")
    assert status == 0 and "custom 24 GiB" in out and "prefill" not in out  # no figures, so no time bound
    with pytest.raises(SystemExit) as stopped:  # a usage error: argparse's status and message
        main(["memory", "llama-3.1-8b", "--context", "12x"])
    assert stopped.value.code == 2 and "not a token count" in capsys.readouterr().err


def test_listing_commands(capsys):
    for command, expected in [("schemes", "Q4_K_M"), ("presets", "deepseek-r1"), ("gpus", "H100-SXM")]:
        status, out, _ = run(capsys, command)
        assert status == 0 and expected in out
    status, out, _ = run(capsys, "gpus", "--json")
    assert status == 0 and {"name": "H200"}.items() <= next(g for g in json.loads(out) if g["name"] == "H200").items()


@pytest.mark.parametrize("argv", [["table", "bf16"], ["formats"], ["memory", "llama-3.1-8b", "--json"]])
def test_a_closed_pipe_ends_quietly(argv):
    # `floatfmt table bf16 | head -1`: no BrokenPipeError traceback, and the conventional status 141
    writer = subprocess.Popen([sys.executable, "-m", "floatfmt", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None
    writer.stdout.readline()
    writer.stdout.close()  # the reader goes away after one line
    _, err = writer.communicate(timeout=120)
    assert writer.returncode in (0, 141) and b"Traceback" not in err, err.decode()


def test_every_help_shows_examples_that_run(capsys):
    import shlex

    from floatfmt.cli import EXAMPLES

    for command, examples in EXAMPLES.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert "examples:" in shown and "floatfmt formats" in shown, command  # and where the lists are
        if command in ("report", "compare"):  # their examples name files of yours
            continue
        for example in examples:
            status = main([command, *shlex.split(example)])
            assert status == 0, (command, example, capsys.readouterr().err)
            capsys.readouterr()


def test_the_context_default_is_said_and_llama_cpp_takes_no_vllm_share(capsys):
    status, out, _ = run(capsys, "memory", "llama-3.1-8b")
    assert status == 0 and "context 4,096 tokens per sequence, floatfmt's default" in out
    status, out, _ = run(capsys, "memory", "llama-3.1-8b", "--context", "8k")
    assert status == 0 and "floatfmt's default" not in out
    from floatfmt.memory import fit, get_gpu, load_model

    model = load_model("llama-3.1-8b")
    card = get_gpu("4090").memory_bytes
    assert fit(model, "4090", engine="llama.cpp").usable_bytes == card  # its reservation is in the footprint
    assert fit(model, "4090", engine="ollama").usable_bytes == card
    assert fit(model, "4090").usable_bytes == int(card * 0.9)  # vLLM's gpu_memory_utilization default
    status, out, _ = run(capsys, "memory", "llama-3.1-8b", "--gpu", "4090", "--memory-utilization", "0.5", "--json")
    assert status == 0 and json.loads(out)["fit"]["usable_bytes_per_gpu"] == int(card * 0.5)


def test_expert_parallel_layout_from_the_command_line(capsys):
    status, out, _ = run(capsys, "memory", "deepseek-r1", "--ep", "8", "--gpu", "H200", "--context", "32k", "--json")
    shown = json.loads(out)
    assert status == 0 and shown["fit"]["ep"] == 8 and shown["fit"]["layout"] == "EP8 with data-parallel attention"
    from floatfmt.memory import footprint, load_model

    expected = footprint(load_model("deepseek-r1"), ep=8, context=32768).per_gpu
    assert shown["fit"]["bytes_per_gpu"] == expected == shown["footprint"]["per_gpu"]
    status, _, err = run(capsys, "memory", "llama-3.1-8b", "--ep", "2")
    assert status == 2 and "no routed experts" in err


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i:02d}.mlp.weight": rng.standard_normal((1024, 1024)).astype(np.float32) for i in range(24)}
    checkpoint = tmp_path / "model.safetensors"
    save_safetensors(checkpoint, tensors)
    child = subprocess.Popen(
        [sys.executable, "-m", "floatfmt", "report", str(checkpoint), "--schemes", "q3_k,iq4_xs", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(3.0)  # imported and measuring
    assert child.poll() is None, "the report ended before the signal: the test checkpoint is too small"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    text = err.decode()
    assert (
        child.returncode == 130 and "Traceback" not in text and text.strip().splitlines() == ["floatfmt: interrupted"]
    )


def test_sizes_print_in_aligned_columns(capsys):
    status, out, _ = run(capsys, "memory", "llama-3.1-8b", "--weights", "Q4_K_M", "--context", "8k")
    sized = [line for line in out.splitlines() if line.startswith("  ") and (" MB " in line or " GB " in line)]
    assert len(sized) >= 8 and status == 0
    units = {line.index("B ", line.index(".")) for line in sized}  # the decimal unit's column, one for all lines
    closing = {line.index("iB)") for line in sized}  # and the binary one's
    assert len(units) == 1 and len(closing) == 1, "\n".join(sized)
    counts = [line for line in out.splitlines()[1:6]]
    assert all(re.fullmatch(r"  \w+ +[\d,]+", line) for line in counts)  # one component per line
