"""Value sets that probe every rounding boundary of a format, and the reference applied to arrays."""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import floatfmt
from floatfmt import _reference
from floatfmt._options import EncodeError, random_bits

FLOAT32_SUBNORMAL_POWERS = np.ldexp(1.0, np.arange(-149, -126)).astype(np.float32)


def representable_values(fmt: floatfmt.FloatFormat) -> np.ndarray:
    """Every distinct finite value of a format of <= 16 bits, sorted, as float64."""
    codes = np.arange(2**fmt.bits, dtype=floatfmt.code_dtype(fmt))
    values = floatfmt.decode(codes, fmt, dtype=np.float64)
    return np.unique(values[np.isfinite(values)])


def boundary_values(fmt: floatfmt.FloatFormat) -> np.ndarray:
    """float32 inputs on and around every rounding boundary of ``fmt``.

    Every representable value, every midpoint between neighbours, each of those
    plus and minus one float32 ulp, every float32 subnormal power of two, signed
    zeros, infinities, NaN and values beyond the largest finite value.
    """
    values = representable_values(fmt)
    midpoints = (values[1:] + values[:-1]) / 2
    beyond = np.array([fmt.max * 1.5, fmt.max * 2, 2.0**127, float(np.finfo(np.float32).max)])
    beyond = beyond[beyond <= np.finfo(np.float32).max]
    core = np.concatenate([values, midpoints, beyond, -beyond]).astype(np.float32)
    core = core[np.isfinite(core)]
    with np.errstate(over="ignore"):  # float32's largest value steps up to infinity, which we want too
        up, down = np.nextafter(core, np.float32(np.inf)), np.nextafter(core, np.float32(-np.inf))
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], dtype=np.float32)
    subnormals = np.concatenate([FLOAT32_SUBNORMAL_POWERS, -FLOAT32_SUBNORMAL_POWERS, 1.5 * FLOAT32_SUBNORMAL_POWERS])
    return np.concatenate([core, up, down, subnormals, specials]).astype(np.float32)


def representable_inputs(values: np.ndarray, fmt: floatfmt.Format) -> np.ndarray:
    """Drop the inputs a format rejects outright under the default NaN policy."""
    keep = np.ones(values.shape, dtype=bool)
    if not fmt.has_nan:
        keep &= ~np.isnan(values)
        if isinstance(fmt, floatfmt.FloatFormat) and not fmt.signed:
            keep &= ~(values < 0)
        if isinstance(fmt, floatfmt.FloatFormat) and not fmt.zero:
            keep &= values != 0
    return values[keep]


def reference_encode(values: np.ndarray, fmt: floatfmt.Format, seed: int = 0, **options: str) -> np.ndarray:
    """``_reference.encode`` element by element; -1 where the reference raises."""
    codes = np.empty(values.size, dtype=np.int64)
    for index, value in enumerate(values.reshape(-1).tolist()):
        random = random_bits(seed, index) if options.get("rounding") == "stochastic" else None
        try:
            codes[index] = _reference.encode(value, fmt, random=random, **options)
        except EncodeError:
            codes[index] = -1
    return codes.reshape(values.shape)


def reference_decode(codes: np.ndarray, fmt: floatfmt.Format) -> np.ndarray:
    """``_reference.decode`` element by element, as float64 (exact for formats that fit float64)."""
    return np.array([float(_reference.decode(int(code), fmt)) for code in codes.reshape(-1)]).reshape(codes.shape)


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, equal signs of zero, NaN where the other has NaN."""
    return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b)))


def float_formats(max_bits: int = 16) -> list[floatfmt.FloatFormat]:
    found = [floatfmt.get_format(name) for name in floatfmt.formats()]
    return [fmt for fmt in found if isinstance(fmt, floatfmt.FloatFormat) and fmt.bits <= max_bits]


def int_formats() -> list[floatfmt.IntFormat]:
    found = [floatfmt.get_format(name) for name in floatfmt.formats()]
    return [fmt for fmt in found if isinstance(fmt, floatfmt.IntFormat)]


def ulp_above(value: float) -> float:
    return math.nextafter(value, math.inf) - value


def is_e8m0_tie(values: np.ndarray) -> np.ndarray:
    """Which values, as float32, lie halfway between two powers of two (1.5 × 2**k, normal float32s)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32) & np.uint32(0x7FFFFFFF)
    return ((bits & np.uint32(0x7FFFFF)) == np.uint32(0x400000)) & (bits >= np.uint32(0x800000))


@contextlib.contextmanager
def occupied_port(port: int) -> Iterator[None]:
    """Hold ``port`` on every interface for the duration (if another process holds it already, so much the better)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("0.0.0.0", port))
        listener.listen()
    except OSError:
        pass  # taken already
    try:
        yield
    finally:
        listener.close()


def slow_if_wide(fmt: floatfmt.Format) -> Any:
    """A test parameter, marked ``slow`` for 16-bit formats (their exhaustive checks take seconds each)."""
    return pytest.param(fmt, marks=pytest.mark.slow) if fmt.bits > 8 else fmt


FUZZ = settings(
    max_examples=int(os.environ.get("FLOATFMT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=os.environ.get("FLOATFMT_FUZZ_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""The fuzz suites' settings: derandomized in CI (the same cases every run, so CI cannot fail by chance; the
findings are explicit examples); ``FLOATFMT_FUZZ_EXAMPLES=5000`` runs a longer, random campaign by hand."""
