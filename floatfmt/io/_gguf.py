"""``.gguf`` files through the PyPI ``gguf`` package (an optional extra): storage types from the header,
tensors dequantized to float32 on access."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from floatfmt.io._weights import FileStamp, TensorInfo, Weights, read_exactly, weights_error

__all__ = ["GgufFile"]


def _gguf_package() -> Any:
    try:
        import gguf
    except ImportError:
        raise ImportError("reading .gguf files needs the gguf package: pip install 'floatfmt[gguf]'") from None
    return gguf


_PLAIN = {"I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "F64": np.float64}
"""GGML types that hold plain values (returned as themselves, not dequantized to float32)."""


@dataclass(frozen=True)
class _Placement:
    """Where a tensor's data lies in the file and how it is stored (the header's facts, kept after the reader
    and its memory map are gone)."""

    offset: int
    nbytes: int
    ggml_type: Any


def _check_placement(path: str, reader: Any) -> None:
    """Each tensor's data aligned as the file says and no two overlapping (gguf-py accepts both silently)."""
    alignment = int(getattr(reader, "alignment", 32) or 32)
    spans = sorted((int(t.data_offset), int(t.data_offset) + int(t.n_bytes), t.name) for t in reader.tensors)
    end, previous = 0, ""
    for begin, stop, name in spans:
        if begin % alignment:
            raise weights_error(
                path, f"tensor {name!r} starts at byte {begin}, not a multiple of alignment {alignment}"
            )
        if begin < end:
            raise weights_error(path, f"tensors {previous!r} and {name!r} overlap (bytes {begin} to {end})")
        end, previous = stop, name


class GgufFile(Weights):
    """A GGUF file. ``tensors[name].dtype`` is the GGML storage type (``"Q4_K"``, ``"F16"``, ...); arrays are
    dequantized to float32 in numpy's axis order (GGUF lists dimensions fastest first), except the integer and
    F64 tensors, which come as themselves."""

    kind = "gguf"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        gguf = _gguf_package()
        try:
            self._stamp = FileStamp.of(os.stat(self.path))
            reader = gguf.GGUFReader(self.path, "r")
        except (ValueError, KeyError, IndexError, OverflowError, TypeError, EOFError, OSError) as error:
            raise weights_error(self.path, f"not a readable GGUF file ({type(error).__name__}: {error})") from None
        self.tensors = {}
        self.metadata = {}
        try:
            for tensor in reader.tensors:
                shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
                self.tensors[tensor.name] = TensorInfo(
                    tensor.name, shape, tensor.tensor_type.name, int(tensor.n_bytes), self.path
                )
            for key, field in reader.fields.items():
                if len(field.types) == 1 and not key.startswith("GGUF."):  # scalars and strings (arrays: vocabularies)
                    self.metadata[key] = str(field.contents())
        except (ValueError, KeyError, IndexError, TypeError) as error:  # text that is not UTF-8, a type it lacks
            raise weights_error(self.path, f"not a readable GGUF file ({type(error).__name__}: {error})") from None
        _check_placement(self.path, reader)
        self._placement = {
            tensor.name: _Placement(int(tensor.data_offset), int(tensor.n_bytes), tensor.tensor_type)
            for tensor in reader.tensors
        }
        # gguf-py maps the whole file; drop its map so that no array of ours can be cut off by a truncated file
        # (SIGBUS): the data is read into owned memory on access
        del reader

    def _load(self, name: str) -> np.ndarray:
        return self._rows_of(name, 0, self.tensors[name].rows).reshape(self.tensors[name].shape)

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        info = self._info(name)
        start, stop, _ = slice(start, stop).indices(info.rows)
        return self._rows_of(name, start, max(start, stop)).reshape(-1, info.cols)

    def _rows_of(self, name: str, start: int, stop: int) -> np.ndarray:
        placement = self._placement[name]
        info = self.tensors[name]
        plain = _PLAIN.get(placement.ggml_type.name)  # integers and float64 are stored as themselves
        if info.size == 0:
            return np.zeros((stop - start, info.cols), dtype=plain or np.float32)
        row_bytes = placement.nbytes // info.rows  # one GGUF row of blocks per row of the 2-D view
        data = np.empty((stop - start, row_bytes), np.uint8)
        read_exactly(self.path, self._stamp, placement.offset + start * row_bytes, data.data, f"tensor {name!r}")
        if plain is not None:
            return data.view(plain)
        try:
            values = _dequantize(data, placement.ggml_type)
        except (ValueError, NotImplementedError, IndexError, TypeError) as error:  # sizes the header got wrong
            problem = f"tensor {name!r} cannot be read ({type(error).__name__}: {error})"
            raise weights_error(self.path, problem) from None
        return values.astype(np.float32, copy=False)


BLOCK_DEQUANTIZERS: dict[str, tuple[int, int, Callable[[np.ndarray], np.ndarray]]] = {}
"""GGML type name (lowercase) to (values per block, bytes per block, dequantizer of block bytes ``(blocks, bytes)``
into float32 ``(blocks, values)``): ggml's values, registered by ``floatfmt.quant`` (the layer above) for the
types it has; gguf-py dequantizes the rest."""


def _dequantize(data: np.ndarray, ggml_type: Any) -> np.ndarray:
    """Rows of GGML blocks as float32."""
    registered = BLOCK_DEQUANTIZERS.get(ggml_type.name.lower())
    if registered is not None:
        block_size, block_bytes, dequantize = registered
        blocks_per_row, rest = divmod(data.shape[1], block_bytes)
        if rest:
            raise ValueError(f"a row of {data.shape[1]} bytes is not whole {ggml_type.name} blocks")
        values = dequantize(data.reshape(-1, block_bytes))
        return values.reshape(data.shape[0], blocks_per_row * block_size)
    result: np.ndarray = _gguf_package().quants.dequantize(data, ggml_type)
    return result
