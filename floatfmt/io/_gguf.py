"""``.gguf`` files through the PyPI ``gguf`` package (an optional extra): storage types from the header,
tensors dequantized to float32 on access."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from floatfmt.io._weights import TensorInfo, Weights, weights_error

__all__ = ["GgufFile"]


def _gguf_package() -> Any:
    try:
        import gguf
    except ImportError:
        raise ImportError("reading .gguf files needs the gguf package: pip install 'floatfmt[gguf]'") from None
    return gguf


_PLAIN = {"I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "F64": np.float64}
"""GGML types that hold plain values (returned as themselves, not dequantized to float32)."""


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
            reader = gguf.GGUFReader(self.path, "r")
        except (ValueError, KeyError, IndexError, OverflowError, TypeError, EOFError, OSError) as error:
            raise weights_error(self.path, f"not a readable GGUF file ({type(error).__name__}: {error})") from None
        self._reader = reader
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
        self._by_name = {tensor.name: tensor for tensor in reader.tensors}
        _check_placement(self.path, reader)

    def _load(self, name: str) -> np.ndarray:
        return self._rows_of(name, slice(None)).reshape(self.tensors[name].shape)

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        info = self._info(name)
        return self._rows_of(name, slice(start, stop)).reshape(-1, info.cols)

    def _rows_of(self, name: str, rows: slice) -> np.ndarray:
        tensor = self._by_name[name]
        info = self.tensors[name]
        plain = _PLAIN.get(tensor.tensor_type.name)  # integers and float64 are stored as themselves
        if info.size == 0:
            return np.zeros((len(range(info.rows)[rows]), info.cols), dtype=plain or np.float32)
        try:
            data = tensor.data.reshape(info.rows, -1)[rows]  # one GGUF row of blocks per row of the 2-D view
            if plain is not None:
                return np.asarray(data, dtype=plain)
            values: np.ndarray = _gguf_package().quants.dequantize(data, tensor.tensor_type)
        except (ValueError, NotImplementedError, IndexError, TypeError) as error:  # sizes the header got wrong
            problem = f"tensor {name!r} cannot be read ({type(error).__name__}: {error})"
            raise weights_error(self.path, problem) from None
        return values.astype(np.float32, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]
