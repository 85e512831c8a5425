"""What a quantized tensor stores, known from its shape alone: the one size formula of the package.

A :class:`Layout` lists the arrays a tensor is stored as (:class:`Part`: element codes, block scales, zero
points, a tensor scale, GGUF's block bytes ...) in the order ``QuantizedTensor.to_bytes()`` writes them, each
with its storage format and its number of items. ``Scheme.storage_bytes``, ``QuantizedTensor.nbytes``, the
bytes ``to_bytes()`` writes, the memory layer's footprints and the report's sizes all read this one layout.

Example:
    >>> import floatfmt
    >>> layout = floatfmt.get_scheme("mxfp4").layout((4096, 4096))
    >>> [(part.name, part.format.name, part.count, part.nbytes) for part in layout.parts]
    [('scales', 'float8_e8m0fnu', 524288, 524288), ('codes', 'float4_e2m1fn', 16777216, 8388608)]
    >>> layout.nbytes, layout.element_bytes, layout.overhead_bytes
    (8912896, 8388608, 524288)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from floatfmt.codec import code_dtype, encode
from floatfmt.formats import Format
from floatfmt.packing import pack

__all__ = ["Layout", "Part", "serialize"]


@dataclass(frozen=True)
class Part:
    """One stored array: ``count`` items in ``format``, packed below a byte, little-endian above.

    ``holds`` says what the quantized tensor keeps for it: ``"codes"`` (integers, written as they are) or
    ``"values"`` (reals, encoded into ``format`` on writing; they are already representable there).
    """

    name: str
    format: Format
    count: int
    holds: Literal["codes", "values"] = "codes"

    @property
    def nbytes(self) -> int:
        return math.ceil(self.count * self.format.bits / 8)


@dataclass(frozen=True)
class Layout:
    """The stored arrays of one tensor, in ``to_bytes()`` order.

    ``values`` is the number of weights and ``element_bits`` the width of each weight's own code; what the parts
    hold beyond ``element_bytes`` (scales, zero points, padding of partial blocks) is ``overhead_bytes``.
    """

    values: int
    element_bits: float
    parts: tuple[Part, ...]

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for part in self.parts)

    @property
    def element_bytes(self) -> int:
        return math.ceil(self.values * self.element_bits / 8)

    @property
    def overhead_bytes(self) -> int:
        return self.nbytes - self.element_bytes

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"no part {name!r}; parts: {', '.join(p.name for p in self.parts)}")


def serialize(array: np.ndarray, part: Part) -> bytes:
    """The bytes of one part: values encoded into the part's format, codes as they are; packed below a byte."""
    if array.size != part.count:
        raise AssertionError(f"part {part.name!r} holds {array.size} items, its layout says {part.count}")
    fmt = part.format
    codes = encode(array.astype(np.float32), fmt, nan="ml_dtypes") if part.holds == "values" else array
    if fmt.bits < 8:
        return pack(codes, fmt).tobytes()
    return np.asarray(codes).astype(code_dtype(fmt).newbyteorder("<")).tobytes()
