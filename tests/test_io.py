"""Weights readers: round trips for every dtype, the official safetensors package as a second opinion,
every malformed input, and a fuzzed header parser."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import tracemalloc

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refusals import raw_safetensors

import floatfmt
from floatfmt.io import SAFETENSORS_DTYPES, WeightsError, open_weights, parse_header, save_safetensors

RNG = np.random.default_rng(20261122)


def sample(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Random values of any safetensors dtype, as random codes for the narrow float types."""
    if dtype.kind == "V" or (dtype.itemsize == 1 and dtype.kind not in "iub"):  # ml_dtypes: random bit patterns
        bits = 8 if dtype.itemsize == 1 else 16
        codes = RNG.integers(0, 2**bits, shape, dtype=np.uint8 if bits == 8 else np.uint16)
        if dtype.name.startswith(("float4", "float6")):
            codes &= (1 << int(dtype.name[5])) - 1
        return codes.view(dtype)
    if dtype.kind == "b":
        return RNG.integers(0, 2, shape).astype(bool)
    if dtype.kind == "c":
        return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return RNG.standard_normal(shape).astype(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# --- safetensors round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype_name", list(SAFETENSORS_DTYPES))
def test_every_safetensors_dtype_round_trips(tmp_path, dtype_name):
    dtype, bits = SAFETENSORS_DTYPES[dtype_name]
    tensors = {"matrix": sample(dtype, (6, 8)), "scalar": sample(dtype, ()), "empty": sample(dtype, (0, 4))}
    path = tmp_path / "t.safetensors"
    if bits < 8:
        with pytest.raises(ValueError, match="do not fill whole bytes"):
            save_safetensors(path, tensors)
        tensors["scalar"] = sample(dtype, (4,))
    size = save_safetensors(path, tensors, {"format": "np"})
    weights = open_weights(path)
    assert path.stat().st_size == size
    assert weights.metadata == {"format": "np"}
    for name, array in tensors.items():
        assert weights.tensors[name].dtype == dtype_name
        assert weights.tensors[name].nbytes == array.size * bits // 8
        assert same_bits(weights[name], array)
        assert not weights[name].flags.writeable
    assert weights.nbytes == sum(array.size * bits // 8 for array in tensors.values())


def test_official_safetensors_writer_and_reader_agree(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    tensors = {f"t{i}": sample(np.dtype(d), (3, i + 1)) for i, d in enumerate(["f4", "f2", "f8", "i8", "u1", "i2"])}
    theirs = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(tensors, str(theirs), metadata={"source": "safetensors"})
    weights = open_weights(theirs)
    assert weights.metadata == {"source": "safetensors"}
    assert all(same_bits(weights[name], array) for name, array in tensors.items())
    ours = tmp_path / "ours.safetensors"
    save_safetensors(ours, tensors)
    with safe_open(str(ours), framework="numpy") as reader:
        assert all(same_bits(reader.get_tensor(name), array) for name, array in tensors.items())


def test_header_facts_need_no_data_and_rows_are_read_alone(tmp_path):
    # an 8 GiB tensor in a sparse file: opening, sizing and reading rows of it must not read or allocate 8 GiB
    path = tmp_path / "huge.safetensors"
    header = json.dumps({"w": {"dtype": "BF16", "shape": [65536, 65536], "data_offsets": [0, 2 * 65536**2]}}).encode()
    with open(path, "wb") as file:
        file.write(len(header).to_bytes(8, "little") + header)
        file.truncate(8 + len(header) + 2 * 65536**2)
    weights = open_weights(path)
    assert weights.bytes_by_dtype() == {"BF16": 2 * 65536**2}
    assert weights.num_params == 65536**2
    rows = weights.read_rows("w", 100, 102)
    assert rows.dtype == ml_dtypes.bfloat16 and rows.shape == (2, 65536) and not rows.any()


def test_read_rows_matches_slicing_and_weights_pickle(tmp_path):
    tensors = {
        "experts": sample(np.dtype(np.float32), (4, 6, 32)),
        "fp4": sample(np.dtype(ml_dtypes.float4_e2m1fn), (5, 6)),
    }
    path = tmp_path / "t.safetensors"
    save_safetensors(path, tensors)
    weights = open_weights(path)
    assert same_bits(weights.read_rows("experts", 5, 13), tensors["experts"].reshape(24, 32)[5:13])
    assert same_bits(weights.read_rows("fp4", 1, 3), tensors["fp4"][1:3])
    assert weights.read_rows("experts", 30, 40).shape == (0, 32)
    clone = pickle.loads(pickle.dumps(weights))
    assert same_bits(clone["experts"], tensors["experts"])
    with pytest.raises(KeyError, match="did you mean 'experts'"):
        weights["expert"]
    weights.close()
    assert same_bits(weights["fp4"], tensors["fp4"])  # reopens on demand


# --- malformed safetensors -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 64))
def test_fuzzed_header_bytes_raise_only_weights_errors(header, data_size):
    try:
        tensors, _ = parse_header(header, data_size)
    except WeightsError:
        return
    assert sum(info.nbytes for info in tensors.values()) == data_size


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False) | st.sampled_from(["F32", "U8", "F4"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]), inner)
    ),
    max_leaves=8,
)
entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "U8", "BF16", "F4", "F6_E2M3", "X"]),
        "shape": st.lists(st.integers(-1, 5), max_size=3),
        "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2),
    }
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=3), entries | json_values, max_size=4), st.integers(0, 40))
def test_fuzzed_structured_headers_are_consistent_or_rejected(header, data_size):
    """Whatever parses covers the data exactly, each tensor's bytes matching its shape and dtype."""
    try:
        tensors, _ = parse_header(json.dumps(header).encode(), data_size)
    except WeightsError:
        return
    position = 0
    for name, info in tensors.items():
        _, bits = SAFETENSORS_DTYPES[info.dtype]
        assert info.nbytes * 8 == info.size * bits
        assert header[name]["data_offsets"] == [position, position + info.nbytes]
        position += info.nbytes
    assert position == data_size


# --- sharded checkpoints -------------------------------------------------------------------------


def sharded(tmp_path, count: int = 3) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors = {f"layers.{i}.w": sample(np.dtype(ml_dtypes.bfloat16), (8, 16)) for i in range(2 * count)}
    weight_map = {}
    for shard in range(count):
        file = f"model-{shard + 1:05d}-of-{count:05d}.safetensors"
        names = [f"layers.{2 * shard}.w", f"layers.{2 * shard + 1}.w"]
        save_safetensors(tmp_path / file, {name: tensors[name] for name in names})
        weight_map.update(dict.fromkeys(names, file))
    return tensors, weight_map


def write_index(tmp_path, weight_map, name: str = "model.safetensors.index.json") -> None:
    (tmp_path / name).write_text(json.dumps({"metadata": {"total_size": 1536}, "weight_map": weight_map}))


def test_sharded_checkpoint_through_its_index(tmp_path):
    tensors, weight_map = sharded(tmp_path)
    write_index(tmp_path, weight_map)
    for path in (tmp_path, tmp_path / "model.safetensors.index.json"):
        weights = open_weights(path)
        assert list(weights) == list(weight_map)
        assert all(same_bits(weights[name], array) for name, array in tensors.items())
        assert weights.nbytes == int(weights.metadata["total_size"]) == 1536
        assert "in 3 files" in repr(weights)
        assert same_bits(pickle.loads(pickle.dumps(weights)).read_rows("layers.5.w", 2, 4), tensors["layers.5.w"][2:4])


def test_a_directory_without_index_merges_its_files(tmp_path):
    tensors, _ = sharded(tmp_path, 2)
    assert sorted(open_weights(tmp_path)) == sorted(tensors)
    save_safetensors(tmp_path / "extra.safetensors", {"layers.0.w": tensors["layers.0.w"]})
    with pytest.raises(WeightsError, match=r"'layers.0.w' is in both"):
        open_weights(tmp_path)


def test_a_path_that_does_not_exist_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_weights(tmp_path / "nothing.safetensors")


# --- npy, npz ------------------------------------------------------------------------------------


def test_npy_and_npz_round_trip_lazily(tmp_path):
    a, b = sample(np.dtype(np.float16), (5, 7)), np.asfortranarray(sample(np.dtype(np.float64), (3, 4)))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert same_bits(open_weights(tmp_path / "a.npy")["a"], a)
    fortran = open_weights(tmp_path / "b.npy")
    assert np.array_equal(fortran["b"], b) and np.array_equal(fortran.read_rows("b", 1, 3), b[1:3])
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "w.npz", a=a, b=b, empty=np.zeros((0, 3)))
        weights = open_weights(tmp_path / "w.npz")
        assert weights.tensors["a"].nbytes == a.nbytes and weights.tensors["a"].dtype == "float16"
        assert same_bits(weights["a"], a) and np.array_equal(weights["b"], b) and weights["empty"].shape == (0, 3)


# --- gguf ----------------------------------------------------------------------------------------


def write_gguf(path, tensors: dict[str, tuple[np.ndarray, str]]) -> None:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    for name, (array, kind) in tensors.items():
        qtype = gguf.GGMLQuantizationType[kind]
        if kind in ("F32", "F16"):
            writer.add_tensor(name, array.astype(np.float32 if kind == "F32" else np.float16))
        else:
            data = gguf.quants.quantize(array, qtype)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_reports_storage_types_and_dequantizes(tmp_path):
    gguf = pytest.importorskip("gguf")
    w = RNG.standard_normal((6, 64)).astype(np.float32)
    write_gguf(tmp_path / "m.gguf", {"q": (w, "Q4_0"), "k": (w, "Q8_0"), "f": (w, "F16"), "n": (w[0], "F32")})
    weights = open_weights(tmp_path / "m.gguf")
    assert {name: info.dtype for name, info in weights.tensors.items()} == {
        "q": "Q4_0",
        "k": "Q8_0",
        "f": "F16",
        "n": "F32",
    }
    assert weights.tensors["q"].shape == (6, 64) and weights.tensors["q"].nbytes == 6 * 2 * 18
    expected = gguf.quants.dequantize(
        gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0), gguf.GGMLQuantizationType.Q4_0
    )
    assert np.array_equal(weights["q"], expected)
    assert np.array_equal(weights.read_rows("q", 2, 5), expected[2:5])
    assert np.array_equal(weights["n"], w[0])
    assert weights.metadata["general.architecture"] == "llama"
    assert np.array_equal(pickle.loads(pickle.dumps(weights))["k"], weights["k"])
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + bytes(20))
    with pytest.raises(WeightsError, match=r"bad.gguf"):
        open_weights(tmp_path / "bad.gguf")


def test_top_level_names():
    assert floatfmt.open_weights is open_weights and issubclass(floatfmt.WeightsError, ValueError)


@pytest.mark.parametrize("dtype_name", ["F4", "F6_E2M3", "F6_E3M2"])
def test_sub_byte_rows_are_read_alone_and_equal_the_whole_tensors_rows(tmp_path, dtype_name):
    dtype = {"F4": ml_dtypes.float4_e2m1fn, "F6_E2M3": ml_dtypes.float6_e2m3fn, "F6_E3M2": ml_dtypes.float6_e3m2fn}
    rng = np.random.default_rng(0)
    for shape in [(8, 5), (12, 3), (7, 4), (16, 100)]:  # rows that start inside a byte, and on one
        values = rng.standard_normal(shape).astype(dtype[dtype_name])
        floatfmt.io.save_safetensors(tmp_path / "t.safetensors", {"x": values})
        weights = floatfmt.open_weights(tmp_path / "t.safetensors")
        assert weights.tensors["x"].dtype == dtype_name
        whole = np.asarray(weights["x"]).reshape(shape)
        for start in range(shape[0] + 1):
            for stop in range(start, shape[0] + 1):
                rows = weights.read_rows("x", start, stop)
                assert rows.view(np.uint8).tobytes() == whole[start:stop].view(np.uint8).tobytes()
        weights.close()


# --- findings of the fault campaign (issue 15) ---------------------------------------------------------------


def test_a_zero_element_tensor_with_a_vast_dimension_costs_nothing(tmp_path):
    """``[2**40, 0]`` is a valid empty tensor: the report's work follows its (zero) elements, not its rows."""
    entry = {"dtype": "BF16", "shape": [2**40, 0], "data_offsets": [0, 0]}
    path = raw_safetensors(tmp_path / "empty.safetensors", {"w": entry})
    report = floatfmt.quant_report(path, "mxfp4,nvfp4", progress=False)
    expected = [(0, floatfmt.get_scheme(s).storage_bytes((2**40, 0)), s) for s in ("mxfp4", "nvfp4")]
    assert [(row.params, row.bytes, row.applied) for row in report.rows] == expected


def test_shards_that_link_out_of_the_checkpoint_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.safetensors"
    save_safetensors(secret, {"secret": np.ones(4, np.float32)})
    # a folder without index whose file links out
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x.safetensors").symlink_to(secret)
    with pytest.raises(WeightsError, match=r"links to .*outside the checkpoint directory.*trust_symlinks=True"):
        open_weights(plain)
    assert list(open_weights(plain, trust_symlinks=True).tensors) == ["secret"]
    # an index whose shard links out, and one whose shard sits in a subdirectory that links out
    for name, shard in (("linked", "model-1.safetensors"), ("subdir", "sub/model-1.safetensors")):
        folder = tmp_path / name
        folder.mkdir()
        if name == "linked":
            (folder / shard).symlink_to(secret)
        else:
            (folder / "sub").symlink_to(outside)
            (outside / "model-1.safetensors").symlink_to(secret)
        write_index(folder, {"secret": shard})
        with pytest.raises(WeightsError, match="outside the checkpoint directory"):
            open_weights(folder)
    # links inside the checkpoint are fine
    inner = tmp_path / "inner"
    inner.mkdir()
    save_safetensors(inner / "real.safetensors", {"w": np.ones(4, np.float32)})
    write_index(inner, {"w": "alias.safetensors"})
    (inner / "alias.safetensors").symlink_to(inner / "real.safetensors")
    (inner / "real.safetensors").rename(inner / "real.bin")
    (inner / "alias.safetensors").unlink()
    (inner / "alias.safetensors").symlink_to("real.bin")
    assert list(open_weights(inner).tensors) == ["w"]


def test_a_hugging_face_cache_snapshot_still_opens(tmp_path, monkeypatch):
    """The hub cache keeps files in ``blobs/`` and links ``snapshots/<rev>/<file>`` to them."""
    monkeypatch.delenv("FLOATFMT_TRUST_SYMLINKS", raising=False)
    repository = tmp_path / "hub" / "models--org--tiny"
    blobs, snapshot = repository / "blobs", repository / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    tensors, weight_map = sharded(blobs)
    for file in set(weight_map.values()):
        (blobs / file).rename(blobs / f"sha-{file}")
        (snapshot / file).symlink_to(f"../../blobs/sha-{file}")
    (blobs / "sha-index").write_text(json.dumps({"weight_map": weight_map}))
    (snapshot / "model.safetensors.index.json").symlink_to("../../blobs/sha-index")
    weights = open_weights(snapshot)
    assert sorted(weights.tensors) == sorted(tensors)
    assert same_bits(np.asarray(weights["layers.0.w"]), tensors["layers.0.w"])


def test_gguf_integer_and_float64_tensors_are_read_as_themselves(tmp_path):
    gguf = pytest.importorskip("gguf")
    arrays = {name: (np.arange(-6, 6).reshape(3, 4) * 7).astype(dtype)
              for name, dtype in (("i8", np.int8), ("i16", np.int16), ("i32", np.int32), ("i64", np.int64),
                                  ("f64", np.float64))}  # fmt: skip
    writer = gguf.GGUFWriter(str(tmp_path / "ints.gguf"), "llama")
    for name, array in arrays.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    weights = open_weights(tmp_path / "ints.gguf")
    for name, array in arrays.items():
        assert weights.tensors[name].dtype == name.upper()
        assert same_bits(np.asarray(weights[name]), array)
        assert same_bits(weights.read_rows(name, 1, 3), array[1:3])


# --- files that change under a run ------------------------------------------------------------------


def one_tensor_files(tmp_path) -> dict[str, tuple[str, np.ndarray]]:
    """The same 256×64 float32 tensor in every container floatfmt reads, each file with its tensor's name."""
    w = RNG.standard_normal((256, 64)).astype(np.float32)
    save_safetensors(tmp_path / "t.safetensors", {"w": w})
    np.save(tmp_path / "w.npy", w)
    np.savez(tmp_path / "stored.npz", w=w)
    np.savez_compressed(tmp_path / "deflated.npz", w=w)
    files = {kind: (str(tmp_path / kind), w) for kind in ("t.safetensors", "w.npy", "stored.npz", "deflated.npz")}
    if importlib.util.find_spec("gguf"):
        write_gguf(tmp_path / "t.gguf", {"w": (w, "F32")})
        files["t.gguf"] = (str(tmp_path / "t.gguf"), w)
    return files


def test_arrays_handed_out_survive_their_file_being_truncated(tmp_path):
    # a memory map would die with SIGBUS here (taking the whole process): arrays are owned, and the reader refuses
    # a file that is no longer the one it opened
    for kind, (path, w) in one_tensor_files(tmp_path).items():
        weights = open_weights(path)
        name = next(iter(weights))
        array = weights[name]
        with open(path, "r+b") as file:
            file.truncate(os.path.getsize(path) // 2)
        assert np.array_equal(array, w), kind  # still readable, and still the values
        with pytest.raises(WeightsError, match=r"changed|ended|damaged"):
            weights.read_rows(name, 0, 256)
        with pytest.raises(WeightsError, match=r"changed|ended|damaged"):
            weights[name]


def test_a_shard_deleted_during_a_run_is_a_weights_error(tmp_path):
    for path, _ in one_tensor_files(tmp_path).values():
        weights = open_weights(path)
        os.remove(path)
        with pytest.raises(WeightsError, match="removed or renamed"):
            weights[next(iter(weights))]
    (tmp_path / "sharded").mkdir()
    for shard in (1, 2):
        save_safetensors(tmp_path / f"sharded/{shard}.safetensors", {f"layer{shard}": np.ones((64, 64), np.float32)})
    checkpoint = open_weights(tmp_path / "sharded")
    os.remove(tmp_path / "sharded/2.safetensors")
    with pytest.raises(
        floatfmt.ReportError, match=r"2\.safetensors: was removed or renamed .* tensor 'layer2'"
    ) as failed:
        floatfmt.quant_report(checkpoint, "q8_0")
    assert [row.tensor for row in failed.value.rows] == ["layer1"]  # the rows done before it are kept


def test_npz_rows_are_read_without_the_whole_member(tmp_path):
    # a 64 MiB member, stored and deflated: a few rows cost a few rows of memory, and rows read forward in order
    # equal the array
    w = RNG.standard_normal((4096, 4096)).astype(np.float32)
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, w=w)
        weights = open_weights(path)
        tracemalloc.start()
        rows = weights.read_rows("w", 4000, 4002)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.array_equal(rows, w[4000:4002]) and peak < 4 << 20, (save.__name__, peak)
        pieces = [weights.read_rows("w", start, start + 1000) for start in range(0, 4096, 1000)]
        assert np.array_equal(np.concatenate(pieces), w)
        assert np.array_equal(weights.read_rows("w", 5, 7), w[5:7])  # behind the cursor: read afresh
