"""safetensors files and sharded safetensors checkpoints: header parsed and checked up front, data read on access.

The format (huggingface/safetensors): 8 bytes of little-endian header length
``N``, ``N`` bytes of UTF-8 JSON mapping each tensor name to ``dtype``,
``shape`` and ``data_offsets`` (``[begin, end)`` into the data that follows),
plus an optional ``__metadata__`` of strings. The data must be covered by the
tensors exactly: no overlaps, no holes. Sub-byte dtypes (``F4``, ``F6_*``) are
packed LSB-first, element 0 in the low bits, as PyTorch's ``float4_e2m1fn_x2``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from floatfmt.io._weights import FileStamp, TensorInfo, Weights, WeightsError, read_exactly, weights_error
from floatfmt.packing import pack, unpack

__all__ = [
    "SAFETENSORS_DTYPES",
    "SafetensorsFile",
    "ShardedWeights",
    "open_safetensors_directory",
    "parse_header",
    "save_safetensors",
]

MAX_HEADER_BYTES = 100_000_000
"""safetensors' own limit on the JSON header; a larger length field is a corrupt file, not a big model."""

SAFETENSORS_DTYPES: dict[str, tuple[np.dtype, int]] = {
    name: (np.dtype(dtype).newbyteorder("<"), bits)
    for name, dtype, bits in [
        ("BOOL", np.bool_, 8),
        ("U8", np.uint8, 8),
        ("I8", np.int8, 8),
        ("U16", np.uint16, 16),
        ("I16", np.int16, 16),
        ("U32", np.uint32, 32),
        ("I32", np.int32, 32),
        ("U64", np.uint64, 64),
        ("I64", np.int64, 64),
        ("F16", np.float16, 16),
        ("BF16", ml_dtypes.bfloat16, 16),
        ("F32", np.float32, 32),
        ("F64", np.float64, 64),
        ("C64", np.complex64, 64),
        ("F8_E4M3", ml_dtypes.float8_e4m3fn, 8),
        ("F8_E5M2", ml_dtypes.float8_e5m2, 8),
        ("F8_E4M3FNUZ", ml_dtypes.float8_e4m3fnuz, 8),
        ("F8_E5M2FNUZ", ml_dtypes.float8_e5m2fnuz, 8),
        ("F8_E8M0", ml_dtypes.float8_e8m0fnu, 8),
        ("F6_E2M3", ml_dtypes.float6_e2m3fn, 6),
        ("F6_E3M2", ml_dtypes.float6_e3m2fn, 6),
        ("F4", ml_dtypes.float4_e2m1fn, 4),
    ]
}
"""Each safetensors dtype: the numpy (or ml_dtypes) dtype of its values, and its width in bits in the file."""

_SUB_BYTE_FORMATS = {"F6_E2M3": "float6_e2m3fn", "F6_E3M2": "float6_e3m2fn", "F4": "float4_e2m1fn"}


def _refusing_duplicates(error: Callable[[str], Exception]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json.loads`` ``object_pairs_hook`` that raises ``error(key)`` for the first key (in sorted order) an
    object names twice, where plain JSON would keep the last value silently."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise error(sorted({key for key in keys if keys.count(key) > 1})[0])
        return dict(pairs)

    return no_duplicates


def parse_header(header: bytes, data_size: int, path: str = "<header>") -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Check a safetensors JSON header against ``data_size`` bytes of data; return its tensors and metadata.

    ``TensorInfo.file`` is ``path``; tensors come in data order. Every
    problem raises :class:`WeightsError` naming ``path`` and what is wrong.
    """

    def fail(problem: str) -> WeightsError:
        return weights_error(path, problem)

    no_duplicates = _refusing_duplicates(lambda key: fail(f"the header names {key!r} twice; a tensor must appear once"))
    try:
        parsed = json.loads(header.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as error:
        raise fail(f"the header is not UTF-8 text (byte {error.start}); this is not a safetensors file") from None
    except json.JSONDecodeError as error:
        raise fail(f"the header is not valid JSON ({error.msg} at character {error.pos})") from None
    except RecursionError:
        raise fail("the header JSON nests too deeply to be a safetensors header") from None
    except WeightsError:  # a name twice
        raise
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise fail(
            f"the header holds an integer of more than {_MAX_DIGITS:,} digits, which no tensor can have"
        ) from None
    if not isinstance(parsed, dict):
        raise fail(f"the header must be a JSON object of tensors, not a {type(parsed).__name__}")
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("__metadata__ must be an object of string values")

    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in parsed.items():
        info, begin = _check_entry(name, entry, path, fail)
        tensors[name] = info
        spans.append((begin, begin + info.nbytes, name))
    spans.sort()
    covered = 0
    previous = ""
    for begin, end, name in spans:
        if begin < covered:
            raise fail(f"tensors {previous!r} and {name!r} overlap (data bytes {begin} to {covered})")
        if begin > covered:
            raise fail(
                f"data bytes {covered} to {begin} belong to no tensor (before {name!r}); safetensors forbids holes"
            )
        if end > data_size:
            raise fail(
                f"tensor {name!r} ends at data byte {end:,} but the file holds only {data_size:,} data bytes: "
                "the file is truncated or its offsets are wrong"
            )
        covered, previous = end, name
    if covered < data_size:
        raise fail(f"the last {data_size - covered:,} data bytes belong to no tensor; safetensors forbids holes")
    ordered = {name: tensors[name] for _, _, name in spans}
    return ordered, dict(metadata)


def _check_entry(name: str, entry: Any, path: str, fail: Any) -> tuple[TensorInfo, int]:
    if not isinstance(entry, dict):
        raise fail(f"tensor {name!r} must be an object with dtype, shape and data_offsets")
    missing = [key for key in ("dtype", "shape", "data_offsets") if key not in entry]
    if missing:
        raise fail(f"tensor {name!r} has no {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        raise fail(f"tensor {name!r} has unknown dtype {dtype!r}; known: {', '.join(SAFETENSORS_DTYPES)}")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise fail(f"tensor {name!r} has shape {shape!r}; expected a list of non-negative integers")
    if any(n >= _LARGEST_DIMENSION for n in shape):
        raise fail(f"tensor {name!r} has shape {shape!r}: a dimension of 2**63 or more, which no array can have")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)):
        raise fail(f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end] with 0 <= begin")
    begin, end = offsets
    if end < begin:
        raise fail(f"tensor {name!r} has data_offsets [{begin}, {end}] that end before they begin")
    numpy_dtype, bits = SAFETENSORS_DTYPES[dtype]
    total_bits = math.prod(shape) * bits
    if total_bits % 8:
        raise fail(f"tensor {name!r}: {math.prod(shape)} {dtype} values are not a whole number of bytes")
    if total_bits // 8 != end - begin:
        raise fail(
            f"tensor {name!r}: shape {shape} of {dtype} needs {total_bits // 8:,} bytes "
            f"but data_offsets give {end - begin:,}"
        )
    if bits >= 8 and begin % numpy_dtype.itemsize:
        raise fail(
            f"tensor {name!r} starts at data byte {begin}, not a multiple of its {numpy_dtype.itemsize}-byte {dtype}"
        )
    return TensorInfo(name, tuple(shape), dtype, end - begin, path), begin


_MAX_DIGITS = 4300
"""Python's limit on the digits of an integer read from text (``sys.get_int_max_str_digits``'s default)."""

_LARGEST_DIMENSION = 2**63
"""numpy's dimensions are signed 64-bit: a zero-element tensor can still not claim a dimension this large."""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SafetensorsFile(Weights):
    """One ``.safetensors`` file: the header is read and checked on opening, tensors are read on access."""

    kind = "safetensors"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        with open(self.path, "rb") as file:
            self._stamp = FileStamp.of(os.fstat(file.fileno()))
            self._file_size = self._stamp.size
            if self._file_size < 8:
                raise weights_error(self.path, f"{self._file_size} bytes is too short for a safetensors header length")
            header_length = int.from_bytes(file.read(8), "little")
            if header_length > self._file_size - 8:
                raise weights_error(
                    self.path,
                    f"the header length field says {header_length:,} bytes but the file has only "
                    f"{self._file_size - 8:,} after it: truncated, or not a safetensors file",
                )
            if header_length > MAX_HEADER_BYTES:
                raise weights_error(self.path, f"a {header_length:,}-byte header is beyond safetensors' 100 MB limit")
            header = file.read(header_length)
        self._data_start = 8 + header_length
        self.tensors, self.metadata = parse_header(header, self._file_size - self._data_start, self.path)
        self._begins = {}
        position = 0
        for name, info in self.tensors.items():  # in data order, contiguous: parse_header checked it
            self._begins[name] = position
            position += info.nbytes

    def _read(self, name: str, begin: int, out: np.ndarray) -> np.ndarray:
        """``out`` (C-contiguous) filled with the tensor's bytes from byte ``begin`` of its data."""
        offset = self._data_start + self._begins[name] + begin
        read_exactly(self.path, self._stamp, offset, out.reshape(-1).view(np.uint8).data, f"tensor {name!r}")
        return out

    def _load(self, name: str) -> np.ndarray:
        info = self.tensors[name]
        dtype, bits = SAFETENSORS_DTYPES[info.dtype]
        if bits < 8:
            values = self._read_packed_rows(name, 0, info.rows).reshape(info.shape)
        else:
            values = self._read(name, 0, np.empty(info.shape, dtype))
        values.flags.writeable = False
        return values

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        info = self._info(name)
        dtype, bits = SAFETENSORS_DTYPES[info.dtype]
        start, stop, _ = slice(start, stop).indices(info.rows)
        if bits < 8:
            return self._read_packed_rows(name, start, stop)
        rows = np.empty((max(stop - start, 0), info.cols), dtype)
        return self._read(name, start * info.cols * dtype.itemsize, rows)

    def _read_packed_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows of a sub-byte tensor: only the bytes that hold them, unpacked (from the last element boundary that
        falls on a byte boundary: every 2 values for 4 bits, every 4 for 6)."""
        info = self.tensors[name]
        dtype, bits = SAFETENSORS_DTYPES[info.dtype]
        first, last = start * info.cols, max(stop, start) * info.cols
        period = 8 // math.gcd(8, bits)
        aligned = first // period * period
        begin, end = aligned * bits // 8, -(-last * bits // 8)
        packed = self._read(name, begin, np.empty(end - begin, np.uint8))
        codes = unpack(packed, _SUB_BYTE_FORMATS[info.dtype], last - aligned)[first - aligned :]
        return np.array(codes.view(dtype).reshape(-1, info.cols))


class ShardedWeights(Weights):
    """Several weights files seen as one mapping: a sharded checkpoint."""

    kind = "sharded safetensors"

    def __init__(self, path: str, parts: list[Weights], owner: dict[str, Weights], metadata: dict[str, str]) -> None:
        self.path = path
        self.parts = parts
        self._owner = owner
        self.tensors = {name: part.tensors[name] for name, part in owner.items()}
        self.metadata = metadata

    def _load(self, name: str) -> np.ndarray:
        return self._owner[name][name]

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        self._info(name)
        return self._owner[name].read_rows(name, start, stop)

    def partition(self, names: list[str]) -> list[tuple[Weights, list[str]]]:
        groups: dict[int, tuple[Weights, list[str]]] = {}
        for name in names:
            part = self._owner[name]
            groups.setdefault(id(part), (part, []))[1].append(name)
        return list(groups.values())

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def __repr__(self) -> str:
        return super().__repr__().replace(" tensors,", f" tensors in {len(self.parts)} files,", 1)


def _inside(shard: Path, directory: Path, where: str, trust_symlinks: bool) -> Path:
    """``shard`` if, its links resolved, it lies inside ``directory`` (or inside the ``blobs`` of the Hugging Face
    cache repository whose snapshot ``directory`` is); else a ``WeightsError`` naming both."""
    if trust_symlinks:
        return shard
    root = Path(os.path.realpath(directory))
    target = Path(os.path.realpath(shard))
    allowed = [root]
    snapshot = Path(os.path.abspath(directory))
    for ancestor in (snapshot, *snapshot.parents):  # .../models--org--name/snapshots/<revision>[/sub]
        if ancestor.parent.name == "snapshots" and ancestor.parent.parent.name.startswith(_HF_REPOSITORIES):
            allowed.append(Path(os.path.realpath(ancestor.parent.parent / "blobs")))
            break
    if any(target == place or place in target.parents for place in allowed):
        return shard
    raise weights_error(
        where, f"shard {shard.name!r} links to {target}, outside the checkpoint directory {root}; floatfmt does not "
        "follow links out of a checkpoint: pass trust_symlinks=True (or set FLOATFMT_TRUST_SYMLINKS=1) if you "
        "linked it yourself"
    )  # fmt: skip


_HF_REPOSITORIES = ("models--", "datasets--", "spaces--")
"""How the Hugging Face cache names a repository's folder (``<cache>/models--org--name/snapshots/<rev>``)."""


def open_safetensors_directory(directory: Path, index: Path | None = None, *, trust_symlinks: bool = False) -> Weights:
    """A checkpoint directory: its ``*.safetensors.index.json`` if it has one, else every ``.safetensors`` in it."""
    discovered = index is None
    if index is None:
        indexes = sorted(directory.glob("*.safetensors.index.json"))
        if len(indexes) > 1:
            preferred = directory / "model.safetensors.index.json"
            if preferred not in indexes:
                names = ", ".join(p.name for p in indexes)
                raise weights_error(str(directory), f"several indexes ({names}); open one of them directly")
            indexes = [preferred]
        index = indexes[0] if indexes else None
    if index is None:
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise weights_error(str(directory), "no .safetensors files and no model.safetensors.index.json here")
        files = [_inside(file, directory, str(directory), trust_symlinks) for file in files]
        if len(files) == 1:
            return SafetensorsFile(files[0])
        parts: list[Weights] = [SafetensorsFile(f) for f in files]
        owner: dict[str, Weights] = {}
        for part in parts:
            for name in part.tensors:
                if name in owner:
                    raise weights_error(
                        str(directory), f"tensor {name!r} is in both {owner[name].path} and {part.path}"
                    )
                owner[name] = part
        return ShardedWeights(str(directory), parts, owner, {})
    if discovered:  # an index named by the caller is theirs to trust; one found in the directory is checked
        _inside(index, directory, str(directory), trust_symlinks)
    return _open_index(index, trust_symlinks)


def _open_index(index: Path, trust_symlinks: bool = False) -> Weights:
    where = str(index)

    no_duplicates = _refusing_duplicates(
        lambda key: weights_error(where, f"the index names {key!r} twice; which shard holds it is ambiguous")
    )
    if not index.is_file():
        kind = "a directory" if index.is_dir() else "not a regular file"
        raise weights_error(where, f"the index is {kind}; give the checkpoint directory or its index file")
    try:
        parsed = json.loads(index.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise weights_error(where, f"not a valid JSON index ({error})") from None
    except RecursionError:
        raise weights_error(where, "the index JSON nests too deeply to be a checkpoint index") from None
    except WeightsError:
        raise
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise weights_error(where, f"holds an integer of more than {_MAX_DIGITS:,} digits; no index does") from None
    except OSError as error:
        raise weights_error(where, f"cannot be read as an index ({error.strerror})") from None
    weight_map = parsed.get("weight_map") if isinstance(parsed, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise weights_error(where, "the index needs a weight_map object of tensor name to shard file name")
    if not weight_map:
        beside = sorted(p.name for p in index.parent.glob("*.safetensors"))
        if beside:
            raise weights_error(
                where, f"the index's weight_map is empty, but {len(beside)} shards are beside it (e.g. {beside[0]!r}): "
                "the index is damaged; remove it to open the shards themselves, or regenerate it"
            )  # fmt: skip
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    parts: list[Weights] = []
    owner: dict[str, Weights] = {}
    for shard, names in by_shard.items():
        if not shard or "\x00" in shard:
            raise weights_error(where, f"the index names a shard {shard!r} for {names[0]!r}: not a file name")
        shard_path = index.parent / shard
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise weights_error(where, f"shard {shard!r} is outside the checkpoint directory")
        _inside(shard_path, index.parent, where, trust_symlinks)
        if not shard_path.is_file():
            what = "is missing"
            if shard_path.is_dir():
                what = "is a directory"
            elif shard_path.exists():
                what = "is not a regular file (a device, FIFO or socket)"
            tensors = f"{len(names)} tensor{'s' if len(names) > 1 else ''} (e.g. {names[0]!r})"
            raise weights_error(where, f"shard {shard!r}, named for {tensors}, {what}")
        part = SafetensorsFile(shard_path)
        absent = [name for name in names if name not in part.tensors]
        if absent:
            raise weights_error(where, f"the index puts {absent[0]!r} in {shard!r}, whose header has no such tensor")
        unlisted = [name for name in part.tensors if weight_map.get(name) != shard]
        if unlisted:
            raise weights_error(where, f"{shard!r} holds {unlisted[0]!r}, which the index does not place there")
        parts.append(part)
        owner.update(dict.fromkeys(names, part))
    metadata = parsed.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise weights_error(where, "the index's metadata must be an object")
    return ShardedWeights(str(index.parent), parts, owner, {key: str(value) for key, value in metadata.items()})


def save_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str] | None = None
) -> int:
    """Write arrays as a safetensors file the way the reference writer lays it out; returns the file size.

    Tensors are ordered by element width (widest first) then name, so every
    tensor is aligned; the header is padded with spaces to a multiple of 8.
    Arrays of ml_dtypes' bfloat16 and FP8/FP6/FP4 types are stored as BF16 /
    F8_* / F6_* / F4 (sub-byte ones packed LSB-first).

    Raises:
        TypeError: for an array dtype safetensors has no name for.
        ValueError: for sub-byte values that do not fill whole bytes (safetensors cannot store them).
    """
    by_dtype = {dtype: name for name, (dtype, _) in SAFETENSORS_DTYPES.items()}
    arrays = {name: np.asarray(value) for name, value in tensors.items()}
    entries: list[tuple[int, str, str, np.ndarray]] = []
    for name, array in arrays.items():
        dtype_name = by_dtype.get(array.dtype.newbyteorder("<"))
        if dtype_name is None:
            raise TypeError(f"tensor {name!r}: safetensors has no dtype for {array.dtype}")
        entries.append((-SAFETENSORS_DTYPES[dtype_name][1], name, dtype_name, array))
    entries.sort(key=lambda entry: entry[:2])
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs: list[bytes | np.ndarray] = []
    offset = 0
    for _, name, dtype_name, array in entries:
        if dtype_name in _SUB_BYTE_FORMATS:
            if array.size * SAFETENSORS_DTYPES[dtype_name][1] % 8:
                raise ValueError(f"tensor {name!r}: {array.size} {dtype_name} values do not fill whole bytes")
            blob: bytes | np.ndarray = pack(array.view(np.uint8), _SUB_BYTE_FORMATS[dtype_name])
        else:
            blob = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
        size = len(blob)
        header[name] = {"dtype": dtype_name, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        blobs.append(blob)
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as file:
        file.write(len(text).to_bytes(8, "little"))
        file.write(text)
        for blob in blobs:
            file.write(blob if isinstance(blob, bytes) else blob.data)
    return 8 + len(text) + offset
