"""numba twins of ``floatfmt._kernels``: the same signatures and meanings, each one pass without temporaries.

Imported by ``floatfmt._backend`` only when numba's loops are in use. The functions release the GIL, so the
codec's threads run them side by side. All arithmetic is on int64 with values below 2**48: nothing overflows.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather", "random_bits", "stochastic_table_encode", "table_encode"]

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
_M32 = 0xFFFFFFFF


@_jit
def _key(bits: int, dropped: int) -> int:
    return (bits >> dropped) | min(bits & ((1 << dropped) - 1), 1)


@_jit
def table_encode(bits, dropped, table, out, flags):  # type: ignore[no-untyped-def]
    flagged = 0
    for i in range(bits.size):
        key = _key(np.int64(bits[i]), dropped)
        out[i] = table[key]
        if flags is not None:
            flagged += flags[key]
    return flagged


@_jit
def stochastic_table_encode(bits, random, noise_shift, dropped, table, out, flags, regular_low, regular_high):  # type: ignore[no-untyped-def]
    irregular = np.empty(bits.size, dtype=np.intp)
    count = 0
    flagged = 0
    for i in range(bits.size):
        b = np.int64(bits[i])
        key = _key((b + ((_M32 - np.int64(random[i])) >> noise_shift)) & _M32, dropped)
        out[i] = table[key]
        magnitude = b & 0x7FFFFFFF
        if magnitude < regular_low or magnitude >= regular_high:
            irregular[count] = i
            count += 1
        elif flags is not None:
            flagged += flags[key]
    return flagged, irregular[:count]


@_jit
def _times_mod32(h: int, factor: int) -> int:
    """``h * factor mod 2**32`` for 32-bit operands, in two products below 2**48."""
    return (h * (factor & 0xFFFF) + (((h * (factor >> 16)) & 0xFFFF) << 16)) & _M32


@_jit
def random_bits(key, first, out):  # type: ignore[no-untyped-def]
    for i in range(out.size):
        h = ((first + i) & _M32) ^ key
        h ^= h >> 16
        h = _times_mod32(h, 0x85EBCA6B)
        h ^= h >> 13
        h = _times_mod32(h, 0xC2B2AE35)
        out[i] = h ^ (h >> 16)


@_jit
def gather(table, codes, out, pairs):  # type: ignore[no-untyped-def]
    for i in range(codes.size):
        out[i] = table[codes[i]]
