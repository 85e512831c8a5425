"""Read weights lazily: safetensors (one file or a sharded checkpoint), npz, npy and gguf.

Example:
    >>> import numpy as np, floatfmt, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, up=np.ones((4, 8), np.float32), norm=np.ones(8, np.float16))
    >>> weights = floatfmt.open_weights(path)
    >>> weights.tensors["up"].shape, weights.tensors["up"].dtype
    ((4, 8), 'float32')
    >>> weights.bytes_by_dtype(), weights.num_params
    ({'float32': 128, 'float16': 16}, 40)
"""

from __future__ import annotations

import os
from pathlib import Path

from floatfmt.io._gguf import GgufFile
from floatfmt.io._numpy import NpyFile, NpzFile
from floatfmt.io._safetensors import (
    SAFETENSORS_DTYPES,
    SafetensorsFile,
    ShardedWeights,
    open_safetensors_directory,
    parse_header,
    save_safetensors,
)
from floatfmt.io._weights import ArrayWeights, TensorInfo, Weights, WeightsError

__all__ = [
    "SAFETENSORS_DTYPES",
    "ArrayWeights",
    "GgufFile",
    "NpyFile",
    "NpzFile",
    "SafetensorsFile",
    "ShardedWeights",
    "TensorInfo",
    "Weights",
    "WeightsError",
    "open_weights",
    "parse_header",
    "save_safetensors",
]

_READERS = {".safetensors": SafetensorsFile, ".npz": NpzFile, ".npy": NpyFile, ".gguf": GgufFile}


def open_weights(path: str | os.PathLike[str], *, trust_symlinks: bool | None = None) -> Weights:
    """Open a checkpoint as a read-only mapping of tensor name to numpy array, reading headers only.

    ``path`` is a ``.safetensors`` file, a checkpoint directory (its
    ``model.safetensors.index.json`` if present, else every ``.safetensors``
    in it), an index file, or an ``.npz``, ``.npy`` or ``.gguf`` file.
    Tensors are read into memory they own (dequantized, for gguf) when
    indexed, never left mapped onto the file, and a file that changed since
    it was opened is refused; ``weights.tensors`` gives names, shapes, dtypes
    and byte sizes without touching tensor data.

    The shards of a checkpoint directory must lie inside it once symbolic links are resolved (a downloaded
    checkpoint cannot make floatfmt read files elsewhere), except where a Hugging Face cache snapshot links
    them to its repository's ``blobs``. ``trust_symlinks=True`` (or the environment variable
    ``FLOATFMT_TRUST_SYMLINKS=1``) follows links anywhere, for checkpoints you linked together yourself.

    Raises:
        FileNotFoundError: if nothing is at ``path``.
        WeightsError: (a ``ValueError``) for a malformed file, naming the file and the problem.
    """
    if trust_symlinks is None:
        trust_symlinks = os.environ.get("FLOATFMT_TRUST_SYMLINKS", "") not in ("", "0")
    where = Path(path)
    if not where.exists():
        raise FileNotFoundError(f"no checkpoint at {where}")
    if where.is_dir():
        return open_safetensors_directory(where, trust_symlinks=trust_symlinks)
    if where.name.endswith(".safetensors.index.json"):
        return open_safetensors_directory(where.parent, index=where, trust_symlinks=trust_symlinks)
    reader = _READERS.get(where.suffix.lower())
    if reader is None:
        raise WeightsError(f"{where}: unknown weights file type; expected {', '.join(_READERS)}, or a directory")
    return reader(where)
