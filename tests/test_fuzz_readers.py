"""Mutated small files for every reader: opening and reading them gives the arrays or a ``WeightsError`` naming the
file, never another exception, a hang or a crash (the fault campaign's findings, kept fixed). Each case is read in
the fuzz worker's child process (``tests/fuzz_worker.py``), under its 5-second watchdog and 1 GiB heap limit."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers import FUZZ
from hypothesis import example, given
from hypothesis import strategies as st

import floatfmt
from floatfmt.io import save_safetensors

mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),  # (position, new byte)
    st.one_of(st.none(), st.integers(0, 10**6)),  # truncate at
)


def _mutated(original: bytes, mutation: tuple[list[tuple[int, int]], int | None]) -> bytes:
    data = bytearray(original)
    changes, cut = mutation
    for position, value in changes:
        if data:
            data[position % len(data)] = value
    if cut is not None and data:
        data = data[: cut % (len(data) + 1)]
    return bytes(data)


def _npy_bytes(tmp_path) -> bytes:
    np.save(tmp_path / "seed.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    return (tmp_path / "seed.npy").read_bytes()


def _npz_bytes(tmp_path, compressed: bool) -> bytes:
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.float16)}
    (np.savez_compressed if compressed else np.savez)(tmp_path / "seed.npz", **arrays)
    return (tmp_path / "seed.npz").read_bytes()


def _gguf_bytes(tmp_path) -> bytes:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "seed.gguf"), "llama")
    writer.add_block_count(1)
    w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    writer.add_tensor("q", gguf.quants.quantize(w, q8), raw_dtype=q8)
    writer.add_tensor("f", w)
    writer.add_tensor("i", np.arange(6, dtype=np.int32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return (tmp_path / "seed.gguf").read_bytes()


def _safetensors_bytes(tmp_path) -> bytes:
    save_safetensors(tmp_path / "seed.safetensors", {"w": np.ones((3, 4), np.float32), "n": np.ones(4, np.float16)})
    return (tmp_path / "seed.safetensors").read_bytes()


@FUZZ
@given(mutation=mutations)
@example(mutation=([(8, ord("("))], None))  # a header dict Python's tokenizer cannot finish
@example(mutation=([(60, ord("-"))], None))  # a negative dimension
def test_mutated_npy_files(fuzz_worker, tmp_path, mutation):
    path = tmp_path / "case.npy"
    path.write_bytes(_mutated(_npy_bytes(tmp_path), mutation))
    fuzz_worker.check("read", str(path))


@FUZZ
@given(mutation=mutations, compressed=st.booleans())
@example(mutation=([(70, 0)], None), compressed=True)
@example(mutation=([(6, 1)], None), compressed=False)  # the "encrypted" flag
def test_mutated_npz_archives(fuzz_worker, tmp_path, mutation, compressed):
    path = tmp_path / "case.npz"
    path.write_bytes(_mutated(_npz_bytes(tmp_path, compressed), mutation))
    fuzz_worker.check("read", str(path))


@FUZZ
@given(mutation=mutations)
def test_mutated_gguf_files(fuzz_worker, tmp_path, mutation):
    path = tmp_path / "case.gguf"
    path.write_bytes(_mutated(_gguf_bytes(tmp_path), mutation))
    fuzz_worker.check("read", str(path))


@FUZZ
@given(mutation=mutations)
def test_mutated_safetensors_files(fuzz_worker, tmp_path, mutation):
    path = tmp_path / "case.safetensors"
    path.write_bytes(_mutated(_safetensors_bytes(tmp_path), mutation))
    fuzz_worker.check("read", str(path))


@FUZZ
@given(index=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=12))  # fmt: skip
def test_arbitrary_index_json(fuzz_worker, tmp_path, index):
    folder = tmp_path / "checkpoint"
    folder.mkdir(exist_ok=True)
    save_safetensors(folder / "model-1.safetensors", {"w": np.ones(4, np.float32)})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    fuzz_worker.check("read", str(folder))


def test_the_report_reads_only_what_mutations_leave(tmp_path):
    """A report over a readable mutated file measures it; an unreadable one raises a WeightsError: no crash."""
    path = tmp_path / "case.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("w.npy", "w") as stream:
        np.lib.format.write_array(stream, np.ones((4, 64), np.float32))
    report = floatfmt.quant_report(path, "mxfp4", progress=False)
    assert report.rows[0].params == 256
