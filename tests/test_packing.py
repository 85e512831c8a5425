"""Sub-byte packing round-trips and layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import floatfmt

NARROW = ["e2m1", "int4", "uint4", "e2m3", "e3m2", "int2", "uint2", "e4m3"]


@given(fmt=st.sampled_from(NARROW), data=st.data())
def test_pack_unpack_round_trip(fmt, data):
    bits = floatfmt.get_format(fmt).bits
    codes = np.array(data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=70)), dtype=np.uint8)
    packed = floatfmt.pack(codes, fmt)
    assert packed.dtype == np.uint8 and packed.size == floatfmt.packed_nbytes(codes.size, fmt)
    np.testing.assert_array_equal(floatfmt.unpack(packed, fmt, codes.size), codes)
    np.testing.assert_array_equal(floatfmt.unpack(packed.tobytes(), fmt, codes.size), codes)


def test_layouts_are_lsb_first():
    assert floatfmt.pack([0x2, 0xF], "e2m1").tolist() == [0xF2]  # element 0 in the low nibble (torch float4_e2m1fn_x2)
    assert floatfmt.pack([1, 2, 3, 0], "int2").tolist() == [0b00_11_10_01]
    assert floatfmt.pack([1, 2, 3, 4], "e2m3").tolist() == [0x81, 0x30, 0x10]  # 1 | 2<<6 | 3<<12 | 4<<18
    assert floatfmt.pack([0x7], "e2m1").tolist() == [0x07]  # odd count: zero padding


def test_bad_packing_inputs():
    with pytest.raises(ValueError, match="outside \\[0, 15\\]"):
        floatfmt.pack([16], "e2m1")
    with pytest.raises(ValueError, match="3 packed 4-bit codes of float4_e2m1fn take 2 bytes, but 3 were given"):
        floatfmt.unpack(bytes(3), "e2m1", 3)
    with pytest.raises(ValueError, match="count must be non-negative"):
        floatfmt.unpack(b"", "e2m1", -1)
    with pytest.raises(ValueError, match="at most 8 bits"):
        floatfmt.pack([1], "bf16")
    with pytest.raises(TypeError, match="uint8"):
        floatfmt.unpack(np.zeros(2, dtype=np.int32), "e2m1", 4)
