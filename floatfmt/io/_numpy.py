"""``.npy`` files and ``.npz`` archives: headers checked up front, data read on access in row blocks (stored
members at their offset in the archive, compressed ones by one forward-moving stream per thread)."""

from __future__ import annotations

import math
import os
import struct
import threading
import tokenize
import zipfile
import zlib
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

from floatfmt.io._weights import FileStamp, TensorInfo, Weights, WeightsError, read_exactly, reopen, weights_error

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


def _empty(shape: tuple[int, ...], dtype: np.dtype, fortran: bool) -> np.ndarray:
    return np.empty(shape, dtype, order="F" if fortran else "C")


def _flat_bytes(array: np.ndarray) -> memoryview:
    """The bytes of a C- or Fortran-contiguous array, in memory order (the order an ``.npy`` file stores)."""
    return array.reshape(-1, order="A").view(np.uint8).data


class _ArrayFile(Weights):
    """What ``.npy`` files and ``.npz`` members share: a header's shape, order and dtype, and the data read into
    owned memory from ``_fill(name, begin, buffer)`` (bytes from ``begin`` of the tensor's data)."""

    _layout: dict[str, tuple[tuple[int, ...], bool, np.dtype]]

    def _fill(self, name: str, begin: int, buffer: memoryview) -> None:
        raise NotImplementedError

    def _load(self, name: str) -> np.ndarray:
        shape, fortran, dtype = self._layout[name]
        array = _empty(shape, dtype, fortran)
        self._fill(name, 0, _flat_bytes(array))
        array.flags.writeable = False
        return array

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        info = self._info(name)
        shape, fortran, dtype = self._layout[name]
        start, stop, _ = slice(start, stop).indices(info.rows)
        if fortran and len(shape) > 1:  # rows are not contiguous in the file: read the whole (rare; numpy saves C)
            return np.array(self[name].reshape(info.rows, info.cols)[start:stop])
        rows = np.empty((max(stop - start, 0), info.cols), dtype)
        self._fill(name, start * info.cols * dtype.itemsize, _flat_bytes(rows))
        return rows


class NpyFile(_ArrayFile):
    """One ``.npy`` array, as a mapping with a single tensor named after the file."""

    kind = "npy"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        with open(self.path, "rb") as file:
            shape, fortran, dtype = _read_npy_header(file, self.path)
            self._offset = file.tell()
            self._stamp = FileStamp.of(os.fstat(file.fileno()))
        nbytes = math.prod(shape) * dtype.itemsize
        if self._offset + nbytes > self._stamp.size:
            raise weights_error(
                self.path,
                f"the header promises {nbytes:,} data bytes but the file has {self._stamp.size - self._offset:,}",
            )
        name = os.path.splitext(os.path.basename(self.path))[0]
        self._layout = {name: (shape, fortran, dtype)}
        self.tensors = {name: TensorInfo(name, shape, str(dtype), nbytes, self.path)}
        self.metadata = {}

    def _fill(self, name: str, begin: int, buffer: memoryview) -> None:
        read_exactly(self.path, self._stamp, self._offset + begin, buffer, "the array")


_LOCAL_HEADER = struct.Struct("<4s22xHH")
"""A zip local file header's signature and, after 22 bytes, the lengths of the name and extra field."""

_READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
"""What numpy's savez and savez_compressed write, and what is read here; bzip2 and lzma members are refused (their
decompressors in zipfile take no output limit, so a small member could inflate without bound)."""

_SKIP_BYTES = 1 << 20

_cursors = threading.local()
"""Each thread's open stream into one compressed member, moving forward: row blocks read in order cost one
decompression of the member in all."""


class _Cursor:
    def __init__(self, key: tuple[str, str], raw: IO[bytes], archive: zipfile.ZipFile, stream: IO[bytes]) -> None:
        self.key, self.raw, self.archive, self.stream, self.position = key, raw, archive, stream, 0

    def read(self, position: int, buffer: memoryview, where: str) -> None:
        """Fill ``buffer`` from decompressed byte ``position``, at or ahead of this cursor."""
        while self.position < position:
            skipped = len(self.stream.read(min(_SKIP_BYTES, position - self.position)))
            if not skipped:
                raise weights_error(where, "ended early: the archive is damaged")
            self.position += skipped
        done = 0
        while done < len(buffer):
            count = self.stream.readinto(buffer[done:])  # type: ignore[attr-defined]
            if not count:
                raise weights_error(where, "ended early: the archive is damaged")
            done += count
        self.position += done

    def close(self) -> None:
        self.stream.close()
        self.archive.close()
        self.raw.close()  # a ZipFile given an open file leaves it open


class NpzFile(_ArrayFile):
    """An ``.npz`` archive: member headers are read on opening, each member's data when it is asked for."""

    kind = "npz"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.tensors, self.metadata = {}, {}
        self._layout = {}
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._data_at: dict[str, int] = {}  # where each member's array data starts: in the archive if stored,
        try:  # in the member's decompressed bytes otherwise
            with open(self.path, "rb") as raw:
                self._stamp = FileStamp.of(os.fstat(raw.fileno()))
            with zipfile.ZipFile(self.path) as archive:
                for member in archive.infolist():
                    if not member.is_dir():
                        self._add_member(archive, member)
        except WeightsError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error, OSError,
                RuntimeError, ValueError, IndexError, struct.error) as error:  # fmt: skip
            # RuntimeError: an encrypted member; zlib.error and OSError: a damaged compressed stream
            raise weights_error(self.path, f"not a readable .npz archive ({type(error).__name__}: {error})") from None

    def _add_member(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
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
        if member.compress_type not in _READABLE_COMPRESSION:
            raise weights_error(
                where, f"is compressed with method {member.compress_type}; numpy writes stored or deflated members, "
                "the only ones read here: save it again with numpy.savez or numpy.savez_compressed"
            )  # fmt: skip
        with archive.open(member) as stream:
            shape, fortran, dtype = _read_npy_header(stream, where)
            header_bytes = stream.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if header_bytes + nbytes != member.file_size:
            raise weights_error(
                where,
                f"the header promises {nbytes:,} data bytes but the member holds {member.file_size - header_bytes:,}",
            )
        self._data_at[name] = header_bytes
        if member.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as raw:
                raw.seek(member.header_offset)
                signature, name_length, extra_length = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
            if signature != b"PK\x03\x04":
                raise weights_error(where, "its local header is not where the archive's directory says")
            self._data_at[name] += member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
            if self._data_at[name] + nbytes > self._stamp.size:
                raise weights_error(where, "its data runs past the end of the archive: truncated")
        self.tensors[name] = TensorInfo(name, shape, str(dtype), nbytes, self.path)
        self._layout[name] = (shape, fortran, dtype)
        self._members[name] = member

    def _fill(self, name: str, begin: int, buffer: memoryview) -> None:
        member = self._members[name]
        where = f"member {member.filename!r}"
        if member.compress_type == zipfile.ZIP_STORED:
            read_exactly(self.path, self._stamp, self._data_at[name] + begin, buffer, where)
            return
        try:
            self._inflate(name, self._data_at[name] + begin, buffer)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error, RuntimeError, ValueError) as error:
            if isinstance(error, WeightsError):
                raise
            raise weights_error(
                f"{self.path}[{member.filename}]", f"cannot be read ({type(error).__name__}: {error})"
            ) from None

    def _inflate(self, name: str, position: int, buffer: memoryview) -> None:
        """Decompressed bytes ``position:position + len(buffer)`` of a member, from this thread's cursor (moved
        forward, or opened anew when the bytes lie behind it). zipfile stops at the member's declared size and
        checks its CRC there, so a member cannot inflate beyond what the archive's directory declares."""
        member = self._members[name]
        key = (self.path, name)
        cursor: _Cursor | None = getattr(_cursors, "cursor", None)
        if cursor is not None and (cursor.key != key or cursor.position > position):
            cursor.close()
            cursor = None
        if cursor is None:
            raw = reopen(self.path, self._stamp, f"member {member.filename!r}")
            archive = zipfile.ZipFile(raw)
            cursor = _Cursor(key, raw, archive, archive.open(member))
        _cursors.cursor = cursor
        try:
            cursor.read(position, buffer, where=f"{self.path}[{member.filename}]")
        except BaseException:
            cursor.close()  # where a failed read left the stream is unknown: the next read starts afresh
            _cursors.cursor = None
            raise
        if cursor.position >= member.file_size:  # the last bytes: close now rather than when the thread next reads
            cursor.close()
            _cursors.cursor = None
