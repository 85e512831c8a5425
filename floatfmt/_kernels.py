"""The codec's innermost loops, in numpy; their numba twins are in ``floatfmt._kernels_numba``.

Each loop has one signature and one meaning, documented here; :func:`floatfmt._backend.twin` sends large calls
to the numba version of the same name when numba's loops are in use. numpy needs several passes over a chunk
for what is one loop in a compiled language (a table key is a shift, a mask and an OR before the lookup; a hash
is seven operations), which is what the compiled versions save.
"""

from __future__ import annotations

import numpy as np

from floatfmt._backend import twin
from floatfmt._parallel import scratch

__all__ = ["gather", "random_bits", "stochastic_table_encode", "table_encode"]

_NUMBA = "floatfmt._kernels_numba"


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def table_encode(bits: np.ndarray, dropped: int, table: np.ndarray, out: np.ndarray, flags: np.ndarray | None) -> int:
    """``out = table[key]`` with ``key = (bits >> dropped) | (low dropped bits != 0)``, for uint32 ``bits``.

    The key's last bit is thus a sticky bit: the first dropped bit or any below it. Returns how many keys
    ``flags`` (a boolean per key) marks, 0 without flags.
    """
    key = _key(bits, dropped)
    np.take(table, key, out=out)
    return int(np.count_nonzero(flags.take(key))) if flags is not None else 0


@twin(_NUMBA, size=lambda bits, *rest: bits.size)
def stochastic_table_encode(
    bits: np.ndarray,
    random: np.ndarray,
    noise_shift: int,
    dropped: int,
    table: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray | None,
    regular_low: int,
    regular_high: int,
) -> tuple[int, np.ndarray]:
    """``table_encode`` of ``bits + (~random >> noise_shift)`` (wrapping at 2**32).

    Returns the number of flagged keys among the regular elements (those whose magnitude bits lie in
    ``[regular_low, regular_high)``) and the positions of the irregular ones, which the caller encodes another way.
    """
    perturbed = np.invert(random, out=scratch(3, bits.size, np.uint32))
    perturbed >>= np.uint32(noise_shift)
    perturbed += bits
    key = _key(perturbed, dropped)
    np.take(table, key, out=out)
    magnitude = np.bitwise_and(bits, np.uint32(0x7FFFFFFF), out=perturbed)
    irregular = (magnitude < np.uint32(regular_low)) | (magnitude >= np.uint32(regular_high))
    flagged = int(np.count_nonzero(flags.take(key) & ~irregular)) if flags is not None else 0
    return flagged, np.flatnonzero(irregular)


@twin(_NUMBA, size=lambda key, first, out: out.size)
def random_bits(key: int, first: int, out: np.ndarray) -> None:
    """``out[i] = fmix32((first + i) mod 2**32 ^ key)``, MurmurHash3's 32-bit finalizer, as uint32.

    The run ``first .. first + out.size`` never crosses a multiple of 2**32 (the caller's contract).
    """
    h = out
    h[...] = np.arange(first, first + out.size, dtype=np.uint32)
    h ^= np.uint32(key)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)


@twin(_NUMBA, size=lambda table, codes, *rest: codes.size)
def gather(table: np.ndarray, codes: np.ndarray, out: np.ndarray, pairs: np.ndarray | None) -> None:
    """``out = table[codes]`` for unsigned codes below ``table.size``.

    ``pairs`` is a hint for numpy's loops (byte codes only: entry ``i`` holds the values of the bytes of the
    little-endian uint16 ``i``), which then look up two codes at once; the compiled loop, one pass already,
    ignores it.
    """
    if pairs is None:
        np.take(table, codes, out=out)
        return
    codes = np.ascontiguousarray(codes)  # a strided chunk is copied: the pairs are adjacent bytes
    even = codes.size - codes.size % 2
    pair_out = out[:even].view(pairs.dtype) if pairs.ndim == 1 else out[:even].reshape(-1, 2)
    np.take(pairs, codes[:even].view(np.uint16), axis=0, out=pair_out)
    if even < codes.size:
        out[even:] = table[codes[even:]]


def _key(bits: np.ndarray, dropped: int) -> np.ndarray:
    """The table key in three passes; the first dropped bit lands on the sticky position, the rest is OR-ed in."""
    key = np.right_shift(bits, np.uint32(dropped), out=scratch(1, bits.size, np.uint32))
    low = np.bitwise_and(bits, np.uint32((1 << dropped) - 1), out=scratch(2, bits.size, np.uint32))
    np.minimum(low, np.uint32(1), out=low)
    key |= low
    return key
