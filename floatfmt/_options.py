"""The codec's options, checked in one place, and the random bits of stochastic rounding.

Stochastic rounding rounds a magnitude away from zero when its fraction of
the way to the next representable value exceeds ``r / 2**32``, where ``r`` is a
32-bit number derived from the seed and the element's flat index alone. So a
result never depends on chunking or threading.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "RoundingMode",
    "OverflowPolicy",
    "NanPolicy",
    "ROUNDINGS",
    "OVERFLOWS",
    "NAN_POLICIES",
    "EncodeError",
    "check_options",
    "check_seed",
    "random_bits",
    "random_bits_array",
]

RoundingMode = Literal["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic"]
OverflowPolicy = Literal["ieee", "saturate", "error", "wrap"]
NanPolicy = Literal["error", "ml_dtypes"]
ROUNDINGS: tuple[str, ...] = ("nearest_even", "nearest_away", "toward_zero", "up", "down", "odd", "stochastic")
OVERFLOWS: tuple[str, ...] = ("ieee", "saturate", "error", "wrap")
NAN_POLICIES: tuple[str, ...] = ("error", "ml_dtypes")


class EncodeError(ValueError):
    """A value cannot be encoded under the chosen policy (overflow, NaN, negative into unsigned)."""


def check_options(is_int_format: bool, rounding: str, overflow: str, nan: str, seed: object) -> None:
    """Raise ``ValueError`` naming the valid choices for any unknown option."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
    if overflow not in OVERFLOWS:
        raise ValueError(f"unknown overflow {overflow!r}; choose one of {', '.join(OVERFLOWS)}")
    if overflow == "wrap" and not is_int_format:
        raise ValueError("overflow='wrap' applies to integer formats only")
    if nan not in NAN_POLICIES:
        raise ValueError(f"unknown nan policy {nan!r}; choose one of {', '.join(NAN_POLICIES)}")
    if seed is not None:
        check_seed(seed)


def check_seed(seed: object) -> None:
    """Raise ``ValueError`` unless ``seed`` is an integer in [0, 2**64)."""
    if not (isinstance(seed, numbers.Integral) and 0 <= int(seed) < 2**64):  # numpy integers are Integral too
        raise ValueError(f"seed must be an integer in [0, 2**64) or None, got {seed!r}")


_MASK64 = 2**64 - 1
_GOLDEN64 = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _key32(seed: int, high_index: int) -> int:
    return _mix64((seed + high_index * _GOLDEN64) & _MASK64) & 0xFFFFFFFF


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def random_bits(seed: int, index: int) -> int:
    """The 32 random bits of element ``index`` (scalar definition)."""
    return _fmix32((index & 0xFFFFFFFF) ^ _key32(seed, index >> 32))


def random_bits_array(seed: int, start: int, count: int) -> np.ndarray:
    """``random_bits(seed, i)`` for ``i`` in ``range(start, start + count)``, vectorized, as uint32."""
    import numpy as np  # here, not above: the options and the scalar bits serve `explain`, which needs no numpy

    from floatfmt import _kernels

    out = np.empty(count, dtype=np.uint32)
    done = 0
    while done < count:
        index = start + done
        # A run never crosses a multiple of 2**32, so its key is one scalar.
        run = min(count - done, 2**32 - (index & 0xFFFFFFFF))
        _kernels.random_bits(_key32(seed, index >> 32), index & 0xFFFFFFFF, out[done : done + run])
        done += run
    return out
