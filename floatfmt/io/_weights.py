"""The read-only, lazy mapping every weights reader returns, and the facts known from headers alone."""

from __future__ import annotations

import difflib
import io
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from floatfmt._display import format_bytes, html_card

__all__ = ["ArrayWeights", "FileStamp", "TensorInfo", "Weights", "WeightsError", "read_exactly", "reopen"]


class WeightsError(ValueError):
    """A weights file that cannot be read as what it claims to be; the message names the file and the problem."""


_NOT_FLOATING = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "C64"}
"""Storage names (safetensors, GGUF) of integer, boolean and complex tensors."""


@dataclass(frozen=True)
class TensorInfo:
    """What a file's header says about one tensor, known without reading its data.

    ``dtype`` is the storage type as the file names it (``"BF16"``, ``"F8_E4M3"``
    in safetensors, ``"Q4_K"`` in GGUF, a numpy name in ``.npy``/``.npz``);
    ``nbytes`` is what the tensor takes in the file.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    file: str

    @property
    def size(self) -> int:
        """The number of elements (parameters)."""
        return math.prod(self.shape)

    @property
    def floating(self) -> bool:
        """Whether the values are real floating point numbers: the tensors quantization applies to."""
        if self.dtype in _NOT_FLOATING:
            return False
        return not self.dtype.startswith(("int", "uint", "bool", "complex", "void", "str", "bytes", "datetime"))

    @property
    def rows(self) -> int:
        """Rows of the 2-D view quantization uses: all leading axes flattened."""
        return math.prod(self.shape[:-1]) if self.shape else 1

    @property
    def cols(self) -> int:
        return self.shape[-1] if self.shape else 1


class Weights(Mapping[str, np.ndarray]):
    """A read-only mapping of tensor name to numpy array, reading each tensor only when asked.

    ``tensors`` holds every tensor's :class:`TensorInfo` straight from the
    headers, so sizes and dtypes cost no data reads. Arrays are read into
    memory the array owns when asked for (never left mapped onto the file: a
    file truncated under a live map kills the process with SIGBUS), and a file
    that changed since it was opened is refused with :class:`WeightsError`.
    """

    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    kind: str = "weights"

    def _load(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the tensor's 2-D view (leading axes flattened), as a fresh array.

        Readers override this to read just those bytes, so streaming a large
        tensor in row blocks keeps memory bounded.
        """
        info = self._info(name)
        return np.array(self[name].reshape(info.rows, info.cols)[start:stop])

    def __getitem__(self, name: str) -> np.ndarray:
        self._info(name)
        return self._load(name)

    def partition(self, names: list[str]) -> list[tuple[Weights, list[str]]]:
        """``names`` grouped by the smallest piece of this checkpoint that holds them (a shard, or the whole),
        so work sent to other processes carries one shard's header, not the checkpoint's."""
        return [(self, names)] if names else []

    def restricted_to(self, names: list[str]) -> Weights:
        """What a job that reads only ``names`` needs sent to another process: this object by default (a file's
        reader pickles as its header), only those arrays for arrays held in memory."""
        return self

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def _info(self, name: str) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None:
            close = difflib.get_close_matches(str(name), list(self.tensors), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"{self.path} has no tensor {name!r}{hint}")
        return info

    @property
    def num_params(self) -> int:
        """Elements over every tensor."""
        return sum(info.size for info in self.tensors.values())

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data over every tensor, as stored."""
        return sum(info.nbytes for info in self.tensors.values())

    def bytes_by_dtype(self) -> dict[str, int]:
        """Stored bytes per storage dtype, largest first."""
        totals: dict[str, int] = {}
        for info in self.tensors.values():
            totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def close(self) -> None:
        """Release open files and maps; arrays already handed out stay valid."""

    def __enter__(self) -> Weights:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _repr_html_(self) -> str:
        rows = [
            ("tensors", f"{len(self):,}"),
            ("values", f"{self.num_params:,}"),
            ("stored", format_bytes(self.nbytes)),
        ]
        rows += [(f"  {dtype}", format_bytes(size)) for dtype, size in self.bytes_by_dtype().items()]
        return html_card(f"{self.kind}: {self.path}", rows)

    def __repr__(self) -> str:
        by_dtype = ", ".join(f"{dtype} {format_bytes(size)}" for dtype, size in self.bytes_by_dtype().items())
        return (
            f"<{self.kind} {self.path}: {len(self)} tensors, {self.num_params:,} parameters, "
            f"{format_bytes(self.nbytes)}{': ' + by_dtype if by_dtype else ''}>"
        )


class ArrayWeights(Weights):
    """Arrays already in memory (any mapping of name to array) seen as :class:`Weights`."""

    kind = "arrays"

    def __init__(self, arrays: Mapping[str, Any], path: str = "<arrays>") -> None:
        self.path = path
        self._arrays = {str(name): np.asarray(array) for name, array in arrays.items()}
        self.tensors = {
            name: TensorInfo(name, tuple(int(n) for n in a.shape), str(a.dtype), int(a.nbytes), path)
            for name, a in self._arrays.items()
        }
        self.metadata = {}

    def _load(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def restricted_to(self, names: list[str]) -> Weights:
        return ArrayWeights({name: self._arrays[name] for name in names}, self.path)


@dataclass(frozen=True)
class FileStamp:
    """What identifies one version of a file: size, modification time and inode, taken when it is opened."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileStamp:
        return cls(status.st_size, status.st_mtime_ns, status.st_ino)


def reopen(path: str, stamp: FileStamp, what: str) -> io.BufferedReader:
    """The file opened again for reading ``what``, refused unless it is the version that was opened first."""
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        raise weights_error(path, f"was removed or renamed since it was opened, before {what} was read") from None
    except OSError as error:
        raise weights_error(path, f"cannot be opened again to read {what} ({error.strerror})") from None
    if FileStamp.of(os.fstat(file.fileno())) != stamp:
        file.close()
        raise weights_error(
            path, f"changed since it was opened (its size, time or inode differ), before {what} was read: open it again"
        )
    return file


def read_exactly(path: str, stamp: FileStamp, offset: int, buffer: memoryview, what: str) -> None:
    """Fill ``buffer`` with the file's bytes from ``offset``, refusing a file that is not the version opened.

    Reads go into memory the caller owns, never through a map, so a shard
    truncated, replaced or deleted while a run goes on gives a
    :class:`WeightsError` naming the file and ``what`` was being read.
    """
    with reopen(path, stamp, what) as file:
        file.seek(offset)
        done, total = 0, len(buffer)
        while done < total:
            count = file.readinto(buffer[done:])
            if not count:
                raise weights_error(path, f"the file ended inside {what}; it changed since it was opened")
            done += count


def weights_error(path: str, problem: str) -> WeightsError:
    """An error that names the file first, as every reader's errors do."""
    return WeightsError(f"{path}: {problem}")
