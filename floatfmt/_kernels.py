"""The codec's innermost loops: each has one meaning and two implementations.

numpy needs several passes over a chunk for what is one loop in a compiled
language (a table key is a shift, a mask and an OR before the lookup; a hash
is seven operations). When numba is installed (``pip install "floatfmt[fast]"``)
each loop here is compiled once (cached on disk) into a single pass by
``floatfmt._compiled``; otherwise the numpy version below runs. Both give the
same bits: the test suite runs the codec's exactness tests under each.

The environment variable ``FLOATFMT_KERNELS`` chooses: ``auto`` (default: numba
if it imports), ``numpy``, or ``numba`` (an error if numba is missing). numba
is imported by the first call on at least ``COMPILED_MIN_SIZE`` elements, never
by ``import floatfmt``.
"""

from __future__ import annotations

import os
import threading
import warnings
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "backend",
    "set_backend",
    "table_encode",
    "stochastic_table_encode",
    "random_bits",
    "gather",
    "row_max",
    "row_min",
    "row_absmax",
    "row_strongest",
    "gguf_blocks",
    "codebook_encode",
    "scratch",
]

BACKENDS = ("auto", "numpy", "numba")

COMPILED_MIN_SIZE = 1 << 14
"""Calls on fewer elements run numpy's loops: they take microseconds either way, and a script that encodes a
few values never pays for importing numba (about half a second)."""

_lock = threading.Lock()
_choice: str | None = None
_compiled: ModuleType | None = None
_thread_state = threading.local()


def set_backend(name: str) -> str:
    """Choose ``auto``, ``numpy`` or ``numba`` for this process; returns the backend now in use.

    Raises:
        ValueError: for another name.
        ImportError: for ``numba`` when numba is missing, saying how to install it.
    """
    global _choice, _compiled
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    with _lock:
        _choice, _compiled = name, None
    return backend()


def backend() -> str:
    """``"numba"`` or ``"numpy"``: which implementation runs the loops of large calls (imports numba if needed)."""
    return "numba" if _load() is not None else "numpy"


def _load() -> ModuleType | None:
    """The compiled loops if the chosen backend has them; imported on first use."""
    global _choice, _compiled
    if _choice is None:
        _choice = os.environ.get("FLOATFMT_KERNELS", "auto").strip().lower() or "auto"
        if _choice not in BACKENDS:
            raise ValueError(f"FLOATFMT_KERNELS={_choice!r} is not one of {', '.join(BACKENDS)}")
    if _choice == "numpy" or _compiled is not None:
        return _compiled
    with _lock:
        if _compiled is None and _choice != "numpy":
            try:
                from floatfmt import _compiled as compiled
            except (ImportError, RuntimeError) as error:  # RuntimeError: numba found nowhere to cache
                if _choice == "numba":
                    raise ImportError(
                        f'FLOATFMT_KERNELS=numba needs numba: pip install "floatfmt[fast]" ({error})'
                    ) from error
                if not isinstance(error, ImportError):
                    warnings.warn(f"floatfmt runs numpy's loops: numba failed ({error})", RuntimeWarning, stacklevel=3)
                _choice = "numpy"
            else:
                _compiled = compiled
    return _compiled


def _fast(size: int) -> ModuleType | None:
    return _load() if size >= COMPILED_MIN_SIZE else None


def table_encode(bits: np.ndarray, dropped: int, table: np.ndarray, out: np.ndarray, flags: np.ndarray | None) -> int:
    """``out = table[key]`` with ``key = (bits >> dropped) | (low dropped bits != 0)``, for uint32 ``bits``.

    The key's last bit is thus a sticky bit: the first dropped bit or any below
    it. Returns how many keys ``flags`` marks (0 without flags).
    """
    compiled = _fast(bits.size)
    if compiled is not None:
        if flags is None:
            compiled.table_encode(bits, dropped, table, out)
            return 0
        return int(compiled.table_encode_flagged(bits, dropped, table, flags, out))
    key = _numpy_key(bits, dropped)
    np.take(table, key, out=out)
    return int(np.count_nonzero(flags.take(key))) if flags is not None else 0


def stochastic_table_encode(
    bits: np.ndarray,
    random: np.ndarray,
    noise_shift: int,
    dropped: int,
    table: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray | None,
    regular: tuple[int, int],
) -> tuple[int, np.ndarray]:
    """``table_encode`` of ``bits + (~random >> noise_shift)`` (wrapping at 2**32).

    Returns the number of flagged keys among the regular elements (those whose
    magnitude bits lie in ``[regular[0], regular[1])``) and the positions of the
    irregular ones, which the caller encodes another way.
    """
    low, high = regular
    compiled = _fast(bits.size)
    if compiled is not None:
        no_flags = np.zeros(1, dtype=np.bool_) if flags is None else flags
        flagged, where = compiled.stochastic_table_encode(
            bits, random, noise_shift, dropped, table, out, no_flags, flags is not None, low, high
        )
        return int(flagged), where
    perturbed = np.invert(random, out=scratch(3, bits.size, np.uint32))
    perturbed >>= np.uint32(noise_shift)
    perturbed += bits
    key = _numpy_key(perturbed, dropped)
    np.take(table, key, out=out)
    magnitude = np.bitwise_and(bits, np.uint32(0x7FFFFFFF), out=perturbed)
    irregular = (magnitude < np.uint32(low)) | (magnitude >= np.uint32(high))
    flagged = int(np.count_nonzero(flags.take(key) & ~irregular)) if flags is not None else 0
    return flagged, np.flatnonzero(irregular)


def random_bits(key: int, first: int, out: np.ndarray) -> None:
    """``out[i] = fmix32((first + i) mod 2**32 ^ key)``, MurmurHash3's 32-bit finalizer, as uint32."""
    compiled = _fast(out.size)
    if compiled is not None:
        compiled.random_bits(key, first, out)
        return
    h = out  # in place; a run never crosses a multiple of 2**32 (the caller's contract)
    h[...] = np.arange(first, first + out.size, dtype=np.uint32)
    h ^= np.uint32(key)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)


def gather(table: np.ndarray, codes: np.ndarray, out: np.ndarray, pairs: np.ndarray | None = None) -> None:
    """``out = table[codes]`` for unsigned codes below ``table.size``.

    ``pairs`` (byte codes only: entry ``i`` holds the values of the bytes of
    the little-endian uint16 ``i``) lets numpy look up two codes at once.
    """
    compiled = _fast(codes.size)
    if compiled is not None:
        compiled.gather(table, np.ascontiguousarray(codes), out)
        return
    if pairs is None:
        np.take(table, codes, out=out)
        return
    codes = np.ascontiguousarray(codes)  # a strided chunk is copied: the pairs are adjacent bytes
    even = codes.size - codes.size % 2
    pair_out = out[:even].view(pairs.dtype) if pairs.ndim == 1 else out[:even].reshape(-1, 2)
    np.take(pairs, codes[:even].view(np.uint16), axis=0, out=pair_out)
    if even < codes.size:
        out[even:] = table[codes[even:]]


# Reductions over short rows (blocks of 16 to 128 weights). numpy reduces a short contiguous last axis slowly
# (about 3 ns per element for rows of 32); halving the row with elementwise operations on adjacent pairs
# touches each element about twice and runs at memory speed. NaN propagates, as through np.maximum.


def row_max(rows: np.ndarray) -> np.ndarray:
    """``rows.max(axis=-1, keepdims=True)``; of zeros of both signs, the first (as gguf-py's ``np.max`` gives)."""
    return _reduce_rows("row_max", rows, lambda r: _first_zero(r, _halve(r, np.maximum)))


def row_min(rows: np.ndarray) -> np.ndarray:
    """``rows.min(axis=-1, keepdims=True)``; of zeros of both signs, the first."""
    return _reduce_rows("row_min", rows, lambda r: _first_zero(r, _halve(r, np.minimum)))


def row_absmax(rows: np.ndarray) -> np.ndarray:
    """``abs(rows).max(axis=-1, keepdims=True)``."""
    return _reduce_rows("row_absmax", rows, lambda r: _halve(np.abs(r), np.maximum))


def row_strongest(rows: np.ndarray) -> np.ndarray:
    """The signed value of largest magnitude in each row, the first one on ties (as ``argmax`` picks).

    In numpy it is the row's maximum or its minimum; only rows holding both +v
    and -v as their extremes need the position of the first, and are looked up
    one by one.
    """

    def by_halving(rows: np.ndarray) -> np.ndarray:
        high, low = _halve(rows, np.maximum), _halve(rows, np.minimum)
        strongest = np.where(high >= -low, high, low)
        tied = np.flatnonzero((high == -low) & (high != 0))
        if tied.size:
            first = np.abs(rows[tied]).argmax(axis=-1)[:, None]
            strongest[tied] = np.take_along_axis(rows[tied], first, axis=-1)
        return strongest

    return _reduce_rows("row_strongest", rows, by_halving)


def _first_zero(rows: np.ndarray, extreme: np.ndarray) -> np.ndarray:
    """Where a 2-D row's extreme is zero, the row's first zero: halving's pairing decides the sign otherwise."""
    zero = np.flatnonzero(extreme[:, 0] == 0)
    if zero.size:
        candidates = rows[zero]
        extreme[zero, 0] = candidates[np.arange(zero.size), (candidates == 0).argmax(axis=-1)]
    return extreme


def _halve(rows: np.ndarray, pick: np.ufunc) -> np.ndarray:
    while rows.shape[-1] > 1 and rows.shape[-1] % 2 == 0:
        rows = pick(rows[..., 0::2], rows[..., 1::2])
    return rows if rows.shape[-1] == 1 else pick.reduce(rows, axis=-1, keepdims=True)


def _reduce_rows(name: str, rows: np.ndarray, numpy_version: Any) -> np.ndarray:
    """Reduce the last axis of ``rows`` (seen as 2-D) with the compiled ``name`` or with ``numpy_version``."""
    shape = (*rows.shape[:-1], 1)
    compiled = _fast(rows.size)
    if compiled is None or rows.shape[-1] == 0:
        return np.asarray(numpy_version(rows.reshape(-1, rows.shape[-1]))).reshape(shape)
    flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
    out = np.empty(flat.shape[0], dtype=rows.dtype)
    getattr(compiled, name)(flat, out)
    return out.reshape(shape)


def gguf_blocks(
    blocks: np.ndarray, bits: int, asymmetric: bool, codes: np.ndarray, data: np.ndarray, column: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """GGUF's legacy block quantizers' arithmetic (gguf-py's ``quants.py``), float32 throughout.

    For finite float32 ``(n, 32)`` ``blocks``, fills ``codes`` (uint8, same
    shape) and the element bytes of each block, ``data[:, column:]`` (the
    fifth bits of 5-bit codes as a little-endian uint32, then nibbles, low
    nibble element ``j``, high nibble ``j + 16``; or the int8 codes), and
    returns the float32 scales ``d`` and, if ``asymmetric``, minimums, each ``(n, 1)``:

    * 8 bits: ``d = amax / 127``, codes ``round_half_away(x / d)`` as int8 bytes;
    * 4 and 5 bits, symmetric: ``d = strongest / -half`` (the signed value of
      largest magnitude, the first on ties; ``half = 2**(bits - 1)``), codes
      ``trunc(x / d + half + 0.5)``;
    * asymmetric: ``d = (max - min) / (2**bits - 1)``, codes ``trunc((x - min) / d + 0.5)``.

    ``x / d`` is ``x * (1 / d)`` with the reciprocal rounded to float32, as in
    gguf-py; it is 0 where ``d`` is 0 or its reciprocal overflows (there gguf-py
    would cast infinity or NaN to integers), so such blocks get the zero codes.
    Codes of 4 and 5 bits are capped at ``2**bits - 1``.
    """
    n = blocks.shape[0]
    compiled = _fast(blocks.size)
    if compiled is not None:
        d, minimums = np.empty((n, 1), np.float32), np.empty((n, 1), np.float32)
        compiled.gguf_blocks(
            np.ascontiguousarray(blocks), bits, asymmetric, codes, d.reshape(-1), minimums.reshape(-1), data, column
        )
        return d, (minimums if asymmetric else None)
    x = blocks
    low: np.ndarray | None = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if bits == 8:
            d = row_absmax(x) / np.float32(127)
        elif asymmetric:
            low = row_min(x)
            d = (row_max(x) - low) / np.float32(2**bits - 1)
        else:
            d = row_strongest(x) / np.float32(-(2 ** (bits - 1)))
        inverse = np.float32(1) / d
    inverse[(d == 0) | np.isinf(inverse)] = 0
    if bits == 8:
        scaled = x * inverse
        magnitude = np.abs(scaled)
        rounded = np.floor(magnitude)
        rounded += (magnitude - rounded) >= np.float32(0.5)  # half away from zero, like roundf
        codes[...] = np.copysign(rounded, scaled).astype(np.int8).view(np.uint8)
        data[:, column:] = codes
        return d, None
    if low is not None:
        q = np.trunc((x - low) * inverse + np.float32(0.5))
    else:
        q = np.trunc(x * inverse + np.float32(2 ** (bits - 1) + 0.5))
    # q >= 0 always (x / d lies in [-half, half] or (x - min) / d in [0, 2**bits - 1]), so only the top clips
    np.minimum(q, np.float32(2**bits - 1), out=q)
    codes[...] = q
    if bits == 5:
        data[:, column : column + 4] = np.packbits(codes >> np.uint8(4), axis=1, bitorder="little")
        column += 4
    data[:, column:] = (codes[:, :16] & np.uint8(0x0F)) | (codes[:, 16:] << np.uint8(4))
    return d, low


def codebook_encode(values: np.ndarray, base: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Codes of float32 ``values`` from per-key tables: ``base[k] + (x > threshold[k])``, ``k`` the top 16 bits.

    ``base`` (uint8) and ``threshold`` (float32) have 2**16 entries; a NaN compares false.
    """
    compiled = _fast(values.size)
    if compiled is not None:
        flat = np.ascontiguousarray(values).reshape(-1)
        out = np.empty(flat.size, dtype=np.uint8)
        compiled.codebook_encode(flat.view(np.uint32), flat, base, threshold, out)
        return out.reshape(values.shape)
    key = values.view(np.uint32) >> np.uint32(16)
    return np.asarray(base.take(key) + (values > threshold.take(key)), dtype=np.uint8)


def scratch(slot: int, size: int, dtype: Any) -> np.ndarray:
    """A per-thread buffer, reused across chunks so that numpy's passes allocate nothing."""
    buffers: dict[tuple[int, np.dtype[Any]], np.ndarray] = _thread_state.__dict__.setdefault("buffers", {})
    key = (slot, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(max(size, 1 << 16), dtype=dtype)
    return buffer[:size]


def _numpy_key(bits: np.ndarray, dropped: int) -> Any:
    """The table key in three passes; the first dropped bit lands on the sticky position, the rest is OR-ed in."""
    key = np.right_shift(bits, np.uint32(dropped), out=scratch(1, bits.size, np.uint32))
    low = np.bitwise_and(bits, np.uint32((1 << dropped) - 1), out=scratch(2, bits.size, np.uint32))
    np.minimum(low, np.uint32(1), out=low)
    key |= low
    return key
