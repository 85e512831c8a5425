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


class GgufFile(Weights):
    """A GGUF file. ``tensors[name].dtype`` is the GGML storage type (``"Q4_K"``, ``"F16"``, ...); arrays are
    dequantized to float32 in numpy's axis order (GGUF lists dimensions fastest first)."""

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
        for tensor in reader.tensors:
            shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
            self.tensors[tensor.name] = TensorInfo(
                tensor.name, shape, tensor.tensor_type.name, int(tensor.n_bytes), self.path
            )
        self._by_name = {tensor.name: tensor for tensor in reader.tensors}
        self.metadata = {}
        for key, field in reader.fields.items():
            if len(field.types) == 1 and not key.startswith("GGUF."):  # scalars and strings; arrays are vocabularies
                self.metadata[key] = str(field.contents())

    def _load(self, name: str) -> np.ndarray:
        return self._rows_of(name, slice(None)).reshape(self.tensors[name].shape)

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        info = self._info(name)
        return self._rows_of(name, slice(start, stop)).reshape(-1, info.cols)

    def _rows_of(self, name: str, rows: slice) -> np.ndarray:
        tensor = self._by_name[name]
        info = self.tensors[name]
        data = tensor.data.reshape(info.rows, -1)[rows]  # one GGUF row of blocks per row of the 2-D view
        values: np.ndarray = _gguf_package().quants.dequantize(data, tensor.tensor_type)
        return values.astype(np.float32, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]
