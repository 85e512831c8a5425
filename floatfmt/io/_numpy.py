"""``.npy`` files (memory-mapped) and ``.npz`` archives (each member read on access), headers checked up front."""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from floatfmt.io._weights import TensorInfo, Weights, WeightsError, weights_error

__all__ = ["NpyFile", "NpzFile"]


def _read_npy_header(stream: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an ``.npy`` header; refuses object arrays (they would need pickle)."""
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, OverflowError, TypeError, tokenize.TokenError) as error:
        # numpy parses the header's dict with Python's own tokenizer: a mangled one fails in several ways
        raise weights_error(where, f"not a valid .npy header ({type(error).__name__}: {error})") from None
    if dtype.hasobject:
        raise weights_error(where, "holds Python objects, which would need pickle; floatfmt reads numeric arrays only")
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise weights_error(where, f"holds {dtype} values; floatfmt reads arrays of numbers (bool, int, uint, float)")
    if not all(isinstance(n, int) and 0 <= n < 2**63 for n in shape):
        raise weights_error(where, f"has shape {shape}; dimensions must be integers from 0 to 2**63 - 1")
    return tuple(int(n) for n in shape), bool(fortran_order), dtype


class NpyFile(Weights):
    """One ``.npy`` array, as a mapping with a single tensor named after the file."""

    kind = "npy"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        with open(self.path, "rb") as file:
            self._shape, self._fortran, self._dtype = _read_npy_header(file, self.path)
            self._offset = file.tell()
            size = os.fstat(file.fileno()).st_size
        nbytes = math.prod(self._shape) * self._dtype.itemsize
        if self._offset + nbytes > size:
            raise weights_error(
                self.path, f"the header promises {nbytes:,} data bytes but the file has {size - self._offset:,}"
            )
        name = os.path.splitext(os.path.basename(self.path))[0]
        self.tensors = {name: TensorInfo(name, self._shape, str(self._dtype), nbytes, self.path)}
        self.metadata = {}

    def _load(self, name: str) -> np.ndarray:
        if math.prod(self._shape) == 0:
            return np.empty(self._shape, self._dtype)
        return np.memmap(self.path, self._dtype, "r", self._offset, self._shape, "F" if self._fortran else "C")


class NpzFile(Weights):
    """An ``.npz`` archive: member headers are read on opening, each member's data when it is asked for."""

    kind = "npz"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.tensors, self.metadata = {}, {}
        self._members: dict[str, zipfile.ZipInfo] = {}
        try:
            with zipfile.ZipFile(self.path) as archive:
                for member in archive.infolist():
                    if member.is_dir():
                        continue
                    name = member.filename.removesuffix(".npy")
                    where = f"{self.path}[{member.filename}]"
                    if not name:
                        raise weights_error(where, "a member without a name cannot be a tensor")
                    if name in self._members:
                        earlier = self._members[name].filename
                        raise weights_error(
                            self.path, f"members {earlier!r} and {member.filename!r} are both tensor {name!r}; "
                            "numpy would keep one silently: rename one"
                        )  # fmt: skip
                    with archive.open(member) as stream:
                        shape, _, dtype = _read_npy_header(stream, where)
                        header_bytes = stream.tell()
                    nbytes = math.prod(shape) * dtype.itemsize
                    if header_bytes + nbytes != member.file_size:
                        raise weights_error(
                            where,
                            f"the header promises {nbytes:,} data bytes but the member holds "
                            f"{member.file_size - header_bytes:,}",
                        )
                    self.tensors[name] = TensorInfo(name, shape, str(dtype), nbytes, self.path)
                    self._members[name] = member
        except WeightsError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error, OSError,
                RuntimeError, ValueError, IndexError) as error:  # fmt: skip
            # RuntimeError: an encrypted member; zlib.error and OSError: a damaged compressed stream
            raise weights_error(self.path, f"not a readable .npz archive ({type(error).__name__}: {error})") from None

    def _load(self, name: str) -> np.ndarray:
        where = f"{self.path}[{self._members[name].filename}]"
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self._members[name]) as stream:
                array: np.ndarray = npy_format.read_array(stream, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, RuntimeError, IndexError) as error:
            if isinstance(error, WeightsError):
                raise
            raise weights_error(where, f"cannot be read ({type(error).__name__}: {error})") from None
        array.flags.writeable = False
        return array
