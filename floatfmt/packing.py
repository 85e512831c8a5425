"""Sub-byte packing: codes narrower than a byte stored densely.

Codes are written into one little-endian bit stream, least significant bit
first: code ``i`` occupies bits ``[w*i, w*(i+1))`` of the stream. For 4-bit
codes that puts element 0 in the low nibble of byte 0, element 1 in its high
nibble, the layout of PyTorch's ``float4_e2m1fn_x2`` and of NVIDIA's NVFP4
checkpoints; 2-bit codes go four to a byte from the low bits up, and 6-bit codes
four to three bytes. A trailing partial byte is padded with zero bits.

Example:
    >>> import numpy as np, floatfmt
    >>> codes = floatfmt.encode([1.0, -6.0, 0.5], "e2m1")
    >>> packed = floatfmt.pack(codes, "e2m1")
    >>> [hex(b) for b in packed]
    ['0xf2', '0x1']
    >>> floatfmt.unpack(packed, "e2m1", 3).tolist() == codes.tolist()
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from floatfmt.codec import as_codes
from floatfmt.formats import Format, get_format

__all__ = ["pack", "unpack", "packed_nbytes"]


def packed_nbytes(count: int, fmt: Format | str) -> int:
    """Bytes that ``count`` packed codes of ``fmt`` occupy: ``ceil(count * bits / 8)``."""
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    return math.ceil(count * _width(get_format(fmt)) / 8)


def pack(codes: Any, fmt: Format | str) -> np.ndarray:
    """Pack codes of a format narrower than 8 bits into bytes (flattened in C order).

    Raises:
        ValueError: if a code does not fit the format's width.
    """
    fmt = get_format(fmt)
    width = _width(fmt)
    flat = as_codes(codes, fmt).reshape(-1)
    if width == 8:
        return flat.astype(np.uint8)
    per_group, group_bytes = _group(width)
    padded = np.zeros(-(-flat.size // per_group) * per_group, dtype=np.uint64)
    padded[: flat.size] = flat
    shifts = np.arange(per_group, dtype=np.uint64) * np.uint64(width)
    words = np.bitwise_or.reduce(padded.reshape(-1, per_group) << shifts, axis=1)
    stream = words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :group_bytes].reshape(-1)
    return stream[: packed_nbytes(flat.size, fmt)].copy()


def unpack(data: Any, fmt: Format | str, count: int) -> np.ndarray:
    """Unpack ``count`` codes of ``fmt`` from bytes written by ``pack``.

    Raises:
        ValueError: if ``data`` does not hold exactly ``packed_nbytes(count, fmt)`` bytes.
    """
    fmt = get_format(fmt)
    width = _width(fmt)
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    if raw.dtype != np.uint8:
        raise TypeError(f"packed data must be bytes or a uint8 array, got dtype {raw.dtype}")
    raw = raw.reshape(-1)
    needed = packed_nbytes(count, fmt)
    if raw.size != needed:
        raise ValueError(
            f"{count} packed {width}-bit codes of {fmt.name} take {needed} bytes, but {raw.size} were given"
        )
    if width == 8:
        return raw.copy()
    per_group, group_bytes = _group(width)
    groups = -(-count // per_group)
    padded = np.zeros((groups, 8), dtype=np.uint8)
    flat_bytes = np.zeros(groups * group_bytes, dtype=np.uint8)
    flat_bytes[: raw.size] = raw
    padded[:, :group_bytes] = flat_bytes.reshape(groups, group_bytes)
    words = padded.view("<u8").reshape(-1, 1).astype(np.uint64)
    shifts = np.arange(per_group, dtype=np.uint64) * np.uint64(width)
    codes = (words >> shifts) & np.uint64((1 << width) - 1)
    return codes.reshape(-1)[:count].astype(np.uint8)


def _width(fmt: Format) -> int:
    if fmt.bits > 8:
        raise ValueError(f"{fmt.name} codes are {fmt.bits} bits wide; packing is for formats of at most 8 bits")
    return fmt.bits


def _group(width: int) -> tuple[int, int]:
    """Codes per group and bytes per group: the smallest whole number of bytes holding whole codes."""
    bits = math.lcm(width, 8)
    return bits // width, bits // 8
