"""Vectorized encode / decode / round: the fast core.

Every path computes exactly what ``floatfmt._reference`` computes, element by
element; the tests check this on every code of every format of <= 16 bits and
on every rounding boundary. The paths differ only in how often they touch
each byte:

* float32-exact input (float32, float16, bfloat16) into a format of <= 8 bits
  (and integers up to 8 bits): one lookup in a table indexed by the top 16 (or
  17) bits of the float32 and a sticky bit for the rest. The format's guard
  bit always lies in those top bits, so the table is exact for every
  deterministic rounding mode; it is built once per (format, rounding,
  overflow) by the generic path below.
* stochastic rounding into those formats: noise added to the float32 bits,
  then the same kind of table, truncating (see ``_stochastic_table_kernel``).
* float32 into a format with float32's exponent (bfloat16, tf32): integer
  operations on the bits; for bfloat16 round-to-nearest, ml_dtypes' own cast,
  and for float16 round-to-nearest numpy's, both bit-identical to the reference.
* decoding codes of <= 8 bits: two codes at a time, from a table of value pairs.
* float64 input into those formats (and float16), deterministic roundings:
  rounded to odd into float32 first, which keeps every rounding decision
  (see ``_narrows_to_odd``), then float32's path.
* everything else (stochastic float64 input, integer wrap-around, custom
  formats): the generic path, float64 arithmetic that is exact because
  scaling by a power of two and taking the floor never round.

Large arrays are processed in chunks that fit in L2 cache, spread over threads
(numpy releases the GIL inside its loops); temporaries never grow with the input.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import struct
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from floatfmt import _kernels
from floatfmt._options import (
    EncodeError,
    NanPolicy,
    OverflowPolicy,
    RoundingMode,
    check_options,
    check_seed,
    random_bits_array,
)
from floatfmt._parallel import CHUNK_ELEMENTS, map_chunks, per_thread_chunk, scratch
from floatfmt.formats import FloatFormat, Format, IntFormat, formats, get_format, is_registered

__all__ = [
    "as_array",
    "ENCODE_PATHS",
    "EncodeError",
    "as_codes",
    "code_dtype",
    "decode",
    "encode",
    "encode_path",
    "is_float32_exact",
    "round",
]

_FLOAT64 = get_format("float64")
_FLOAT32 = get_format("float32")
_FLOAT16 = get_format("float16")
_BFLOAT16 = get_format("bfloat16")


def is_float32_exact(dtype: np.dtype[Any]) -> bool:
    """Whether every value of ``dtype`` is a float32: float16, and bfloat16 and every ml_dtypes float of the
    installed release (an array of theirs exists only once ml_dtypes is imported)."""
    if dtype == np.float16:
        return True
    return "ml_dtypes" in sys.modules and dtype in _ml_float32_exact()


@functools.cache
def _ml_float32_exact() -> tuple[np.dtype[Any], ...]:
    return tuple(
        fmt.ml_dtype
        for fmt in map(get_format, formats())
        if isinstance(fmt, FloatFormat) and fmt.bits <= 16 and fmt.ml_dtype is not None
    )


def code_dtype(fmt: Format | str) -> np.dtype[Any]:
    """The smallest unsigned integer dtype that holds a code of ``fmt``.

    Example:
        >>> import floatfmt
        >>> floatfmt.code_dtype("e4m3"), floatfmt.code_dtype("tf32")
        (dtype('uint8'), dtype('uint32'))
    """
    bits = get_format(fmt).bits
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise AssertionError("formats are at most 64 bits wide")


# --- public functions -------------------------------------------------------------------


SMALL_CALL = 4096
"""Values up to which a call runs in one piece on the calling thread (the pool's bookkeeping costs more)."""


def encode(
    x: Any,
    fmt: Format | str,
    *,
    rounding: RoundingMode = "nearest_even",
    overflow: OverflowPolicy = "ieee",
    nan: NanPolicy = "error",
    seed: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Encode real values as codes of ``fmt``.

    Args:
        x: array-like of floats (float16, bfloat16, float32, float64, and the
            ml_dtypes formats) or integers; any shape, or a scalar.
        fmt: a format or its name (see ``floatfmt.formats()``).
        rounding: ``nearest_even`` (default), ``nearest_away``, ``toward_zero``,
            ``up`` (toward +inf), ``down`` (toward -inf), ``odd`` (to the
            neighbour with an odd last bit, unless exact), or ``stochastic``
            (away from zero with probability equal to the fraction of the gap,
            reproducible from ``seed`` whatever the chunking).
        overflow: ``ieee`` (default; what ml_dtypes does: infinity where the
            format has one, else NaN where it has one, else saturate; directed
            roundings saturate toward zero as IEEE 754 says), ``saturate``
            (clamp to the largest finite value, infinities too), ``error``
            (raise ``EncodeError`` saying how many values overflowed), or, for
            integer formats only, ``wrap`` (two's-complement wrap-around, as
            numpy's and ml_dtypes' integer-to-integer casts do, and ml_dtypes'
            float casts did before 0.7.0; see ``floatfmt.compat``).
        nan: what a NaN becomes in a format without NaN: ``error`` (default)
            raises ``EncodeError``; ``ml_dtypes`` gives what ml_dtypes gives
            (a zero of the opposite sign for floats, 0 for integers).
        seed: the seed of stochastic rounding (a fresh one if ``None``).
        out: an array of ``x``'s shape and dtype ``code_dtype(fmt)`` (C-contiguous, writable) to write the codes
            into, so that a loop over many tensors reuses one buffer (fresh pages cost about a nanosecond a value).

    Returns:
        An array of ``x``'s shape and dtype ``code_dtype(fmt)`` (``out`` itself when given).

    Raises:
        EncodeError: (a ``ValueError``) for values the policies reject.

    Example:
        >>> import floatfmt
        >>> int(floatfmt.encode(22.0, "e4m3"))
        91
        >>> floatfmt.encode([1.0, 1.0625, 1.1875], "e4m3").tolist()   # ties to even
        [56, 56, 58]
        >>> floatfmt.encode([1.0625], "e4m3", rounding="nearest_away").tolist()
        [57]
    """
    values = _from_python_float(x) if type(x) is float else _as_real_array(x)
    plan = _encode_plan(fmt, values.dtype, rounding, overflow, nan)
    if seed is not None:
        check_seed(seed)
    if rounding == "stochastic" and seed is None:
        seed = int(np.random.SeedSequence().generate_state(2, np.uint64)[0])
    given = out is not None
    out = (
        np.empty(values.shape, plan.code_dtype)
        if out is None
        else _output(out, values.shape, plan.code_dtype, "encode")
    )
    source, target = (values, out) if values.ndim == 1 else (values.reshape(-1), out.reshape(-1))
    fmt, kernel, narrow = plan.fmt, plan.kernel, plan.narrows_to_odd

    def encode_chunk(start: int, stop: int) -> tuple[int, int]:
        chunk = source[start:stop]
        if narrow:  # into this thread's buffer: the chunk's codes are written before the next chunk narrows
            narrowed = scratch(_NARROWED, stop - start, np.float32)
            _kernels.float32_rounded_to_odd(chunk, narrowed)
            chunk = narrowed
        elif chunk.dtype != np.float64 and chunk.dtype != np.float32:
            chunk = chunk.astype(np.float32)
        random = random_bits_array(seed, start, stop - start) if rounding == "stochastic" else None  # type: ignore[arg-type]
        rejected = _count_rejected(chunk, fmt, nan) if plan.checks_input else 0
        overflowed = kernel(chunk, target[start:stop], random)
        return rejected, overflowed

    if source.size <= SMALL_CALL:  # a notebook's loop of small calls: no chunking, no thread pool
        if not source.size:
            rejected = overflowed = 0
        elif plan.warns_nothing:
            rejected, overflowed = encode_chunk(0, source.size)
        else:
            with np.errstate(invalid="ignore", over="ignore"):  # the policies decide, as inside map_chunks
                rejected, overflowed = encode_chunk(0, source.size)
    else:
        chunk = per_thread_chunk(source.size) if plan.whole_array else CHUNK_ELEMENTS
        results = map_chunks(encode_chunk, source.size, chunk)
        rejected, overflowed = map(sum, zip(*results, strict=True)) if results else (0, 0)
    if rejected:
        raise EncodeError(_rejected_message(fmt, rejected, values.size))
    if overflowed and overflow == "error":
        raise EncodeError(
            f"{overflowed} of {values.size} values overflow {fmt.name} (largest finite value {fmt.max}); "
            "use overflow='saturate' to clamp them or overflow='ieee' for infinity/NaN"
        )
    return out if values.ndim or given else out[()]


@dataclasses.dataclass(frozen=True)
class _EncodePlan:
    """What ``encode`` decides once per format, input dtype and options: everything but the data."""

    fmt: Format
    code_dtype: np.dtype[Any]
    kernel: EncodeKernel
    narrows_to_odd: bool  # float64 input rounded to odd into float32 first (_kernels.float32_rounded_to_odd)
    checks_input: bool  # the format lacks NaN: NaN, and negatives or zero where it lacks those, are counted first
    whole_array: bool  # a platform cast or a table lookup (no temporaries but the input check): a few pieces per thread
    warns_nothing: bool  # a table lookup, or a cast that silences its own warnings: no errstate needed around it


_plans: dict[tuple[Any, ...], _EncodePlan] = {}


def _encode_plan(fmt: Any, dtype: np.dtype[Any], rounding: str, overflow: str, nan: str) -> _EncodePlan:
    """The plan for these arguments, from a dictionary keyed by them as given (a notebook's loop of small calls
    pays one lookup, not the name's normalization and the path's choice); options are checked when it is built."""
    key: tuple[Any, ...] = (fmt, dtype, rounding, overflow, nan)
    try:
        return _plans[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable fmt: get_format below says what it expected
        key = ()
    resolved = get_format(fmt)
    check_options(isinstance(resolved, IntFormat), rounding, overflow, nan, None)
    narrow = dtype == np.float64 and _narrows_to_odd(resolved, rounding, overflow)
    source = np.dtype(np.float32) if narrow else dtype
    kernel = _encode_kernel(resolved, source, rounding, overflow, nan)
    cast = isinstance(kernel, _CastKernel) or kernel in (_encode_half, _encode_bfloat16)
    lookup = isinstance(kernel, _TableKernel)  # deterministic: the stochastic one draws its bits per chunk
    plan = _EncodePlan(
        fmt=resolved,
        code_dtype=code_dtype(resolved),
        kernel=kernel,
        narrows_to_odd=narrow,
        checks_input=not resolved.has_nan,
        whole_array=not narrow and ((cast and dtype in (np.float32, np.float64)) or (lookup and dtype == np.float32)),
        warns_nothing=(isinstance(kernel, _TableKernel) or kernel in (_encode_half, _encode_bfloat16))
        and dtype != np.float64,
    )
    if key and (not isinstance(fmt, str) or is_registered(fmt)) and len(_plans) < 4096:
        _plans[key] = plan
    return plan


def _narrows_to_odd(fmt: Format, rounding: str, overflow: str) -> bool:
    """Whether float64 input into ``fmt`` may be rounded to odd into float32 first and then take float32's path.

    Rounding to odd (truncate, then set the last bit if anything was dropped) to a precision at least two bits
    finer than the target's keeps every rounding decision: whether the value is exact, below, at or above a
    midpoint, and its sign. float32's 24 significand bits, and its subnormals down to 2**-149, are that much
    finer than any format of at most 21 mantissa bits whose smallest subnormal is at least 2**-147. Values beyond
    float32's range become its largest finite value with the last bit set, which rounds to the same code in every
    mode; but where the format's top binade reaches 2**128 (bfloat16, tf32, e8m0) it does not always *overflow*
    where the value does (rounded toward zero, 1e39 overflows bfloat16 and float32's largest value does not), so
    those formats keep the generic path under ``overflow="error"``. Not for stochastic rounding (its
    probabilities use every dropped bit) nor integer wrap-around.
    """
    if rounding == "stochastic" or overflow == "wrap":
        return False
    if isinstance(fmt, FloatFormat) and (
        fmt.mantissa_bits > 21
        or fmt.smallest_subnormal < 2.0**-147
        or (fmt.max >= 2.0**127 and overflow == "error")
        or fmt.max > float(np.finfo(np.float32).max)
    ):
        return False
    path = encode_path(fmt, np.float32, rounding, overflow)
    return path in ("table", "float32_bits") or (path == "cast" and fmt == _BFLOAT16)


_FLOAT32_STRUCT = struct.Struct("f")


def _from_python_float(x: float) -> np.ndarray:
    """A Python float as a 0-d array: float32 where it is a float32 value (1.5, 0.25, inf), whose paths are the
    fastest, else float64; the codes are the same either way."""
    try:
        exact = _FLOAT32_STRUCT.unpack(_FLOAT32_STRUCT.pack(x))[0] == x
    except OverflowError:
        exact = False
    return np.array(x, np.float32 if exact else np.float64)


_NARROWED = 8
"""The ``floatfmt._parallel.scratch`` slot of a float64 chunk rounded to odd into float32."""


def _output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype, call: str) -> np.ndarray:
    """``out`` checked for the result it is to hold, or a fresh array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{call}'s out= must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{call}'s out= must have shape {shape} and dtype {dtype}; it has {out.shape} and {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{call}'s out= must be C-contiguous and writable (np.ascontiguousarray gives one)")
    return out


def decode(codes: Any, fmt: Format | str, *, dtype: Any = None, out: np.ndarray | None = None) -> np.ndarray:
    """Decode codes of ``fmt`` to real values.

    Args:
        codes: array-like of non-negative integers below ``2**fmt.bits``.
        fmt: a format or its name.
        dtype: ``numpy.float32`` (default, or ``out``'s dtype) or ``numpy.float64``. Values that
            do not fit the dtype are rounded to nearest-even.
        out: a C-contiguous, writable float32 or float64 array of the codes' shape to write the values into.

    Example:
        >>> import floatfmt
        >>> floatfmt.decode([0x5B, 0x7F, 0x80], "e4m3").tolist()
        [22.0, nan, -0.0]
    """
    out_dtype = np.dtype(dtype if dtype is not None else (out.dtype if isinstance(out, np.ndarray) else np.float32))
    if out_dtype != np.float32 and out_dtype != np.float64:
        raise ValueError(f"decode dtype must be float32 or float64, got {out_dtype}")
    fmt, every_code_valid, kernel, chunked, warns_nothing = _decode_plan(fmt, out_dtype)
    if type(codes) is np.ndarray and codes.dtype == every_code_valid:
        code_array = codes  # every value of this dtype is a code: nothing to check
    else:
        code_array = as_codes(codes, fmt)
    given = out is not None
    out = np.empty(code_array.shape, out_dtype) if out is None else _output(out, code_array.shape, out_dtype, "decode")
    source, target = code_array.reshape(-1), out.reshape(-1)
    if source.size <= SMALL_CALL:
        if warns_nothing:
            kernel(source, target)
        elif source.size:
            with np.errstate(invalid="ignore", over="ignore"):
                kernel(source, target)
    else:
        map_chunks(
            lambda start, stop: kernel(source[start:stop], target[start:stop]),
            source.size,
            CHUNK_ELEMENTS if chunked else per_thread_chunk(source.size),
        )
    return out if code_array.ndim or given else out[()]


def round(
    x: Any,
    fmt: Format | str,
    *,
    rounding: RoundingMode = "nearest_even",
    overflow: OverflowPolicy = "ieee",
    nan: NanPolicy = "error",
    seed: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Round ``x`` to the values of ``fmt`` (quantize-dequantize), keeping ``x``'s float dtype.

    Takes the options of ``encode``. Integer and Python-float input comes back as float64. ``out``, an array of
    the result's shape and dtype, receives the values instead of a fresh array.

    Example:
        >>> import floatfmt
        >>> floatfmt.round([0.3, 100.0, 1000.0], "e4m3", overflow="saturate").tolist()
        [0.3125, 96.0, 448.0]
    """
    values = _as_real_array(x)
    codes = encode(values, fmt, rounding=rounding, overflow=overflow, nan=nan, seed=seed)
    if values.dtype == np.float64 or values.dtype == np.float32:
        return decode(codes, fmt, dtype=values.dtype, out=out)
    result = decode(codes, fmt, dtype=np.float32).astype(values.dtype, copy=False)
    if out is None:
        return result
    target = _output(out, result.shape, result.dtype, "round")
    np.copyto(target, result)
    return target


# --- input checking ------------------------------------------------------------------------


_TORCH_BITS = {
    "torch.bfloat16": ("int16", "bfloat16"),
    "torch.float8_e4m3fn": ("uint8", "float8_e4m3fn"),
    "torch.float8_e5m2": ("uint8", "float8_e5m2"),
    "torch.float8_e4m3fnuz": ("uint8", "float8_e4m3fnuz"),
    "torch.float8_e5m2fnuz": ("uint8", "float8_e5m2fnuz"),
}
"""torch dtypes numpy has no type for: the integer type torch can view their bits as, and ml_dtypes' type."""


def as_array(x: Any) -> np.ndarray:
    """What every entry point of the package reads its input with: ``np.asarray(x)``; a CPU torch tensor of any
    dtype (bfloat16 and float8 included) as a view of its memory; any other array that speaks DLPack (JAX, CuPy,
    ...) through ``np.from_dlpack`` without a copy when it is in host memory, else through ``__array__``."""
    if type(x) is np.ndarray:
        return x
    array = _from_torch(x)
    if array is None and hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        array = _from_dlpack(x)
    return array if array is not None else np.asarray(x)


_DLPACK_HOST_DEVICES = (1, 3)  # kDLCPU, kDLCUDAHost (pinned host memory)
_DLPACK_DEVICE_NAMES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI", 10: "ROCm", 14: "oneAPI"}


def _from_dlpack(x: Any) -> np.ndarray | None:
    """A DLPack array in host memory as a numpy view of it, or ``None`` when numpy cannot take its dtype
    (bfloat16, float8: ``np.asarray`` then reads it through ``__array__``, as JAX's arrays allow)."""
    device = int(x.__dlpack_device__()[0])
    if device not in _DLPACK_HOST_DEVICES:
        where = _DLPACK_DEVICE_NAMES.get(device, f"DLPack device type {device}")
        raise TypeError(
            f"a {type(x).__name__} on {where} cannot be read in place: copy it to the host first "
            "(jax.device_get(x), x.get() for CuPy, x.cpu() for torch)"
        )
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        return None


def _from_torch(x: Any) -> np.ndarray | None:
    """A CPU torch tensor as a numpy array sharing its memory (its bits viewed as ml_dtypes' type where numpy has
    none: bfloat16, float8), or ``None`` if ``x`` is no torch tensor."""
    if not type(x).__module__.startswith("torch") or not hasattr(x, "detach"):
        return None
    if x.device.type != "cpu":
        raise TypeError(f"a torch tensor on {x.device} cannot be read in place: move it with .cpu() first")
    tensor = x.detach()
    bits = _TORCH_BITS.get(str(tensor.dtype))
    if bits is None:
        return np.asarray(tensor.numpy())
    import torch

    dtype = get_format(bits[1]).ml_dtype
    assert dtype is not None  # every release floatfmt supports has these
    return np.asarray(tensor.view(getattr(torch, bits[0])).numpy()).view(dtype)


_FLOAT32_AND_64 = (np.dtype(np.float32), np.dtype(np.float64))


def _as_real_array(x: Any) -> np.ndarray:
    array = as_array(x)
    dtype = array.dtype
    if dtype in _FLOAT32_AND_64 or is_float32_exact(dtype):
        return array
    if dtype.kind in "iu":
        as_float = array.astype(np.float64)
        if dtype.itemsize >= 8 and array.size and not np.array_equal(as_float.astype(dtype), array):
            raise ValueError("integers above 2**53 lose precision as float64; pass them as floats if that is intended")
        return as_float
    if dtype.kind == "b":
        raise TypeError("boolean input cannot be encoded; convert it to a float array first")
    if dtype.kind == "f" and not dtype.isnative:  # big-endian data from a file: the same values, swapped exactly
        return _as_real_array(array.astype(dtype.newbyteorder("=")))
    if dtype.kind == "f":
        raise TypeError(f"{dtype} input is not supported; convert it to float64 first (which may round)")
    raise TypeError(f"expected real numbers, got an array of dtype {dtype}")


def as_codes(codes: Any, fmt: Format) -> np.ndarray:
    """``codes`` as an array of ``code_dtype(fmt)``, refusing non-integers and codes outside the format's width."""
    array = as_array(codes)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "O":  # Python integers too large for any numpy integer type (or not integers)
            _check_python_codes(array, fmt)
            array = array.astype(np.int64)
        elif array.size == 0:
            array = array.astype(code_dtype(fmt))
        else:
            raise TypeError(f"codes must be integers, got dtype {array.dtype}")
    fits = array.dtype.kind == "u" and array.dtype.itemsize * 8 <= fmt.bits
    if array.size and not fits:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= 2**fmt.bits:
            bad = np.count_nonzero((array < 0) | (array >= 2**fmt.bits))
            raise ValueError(
                f"{bad} codes are outside [0, {2**fmt.bits - 1}], the range of {fmt.bits}-bit {fmt.name} codes "
                f"(e.g. {low if low < 0 else high})"
            )
    target = code_dtype(fmt)
    return array if array.dtype == target else array.astype(target)


def _check_python_codes(array: np.ndarray, fmt: Format) -> None:
    for code in array.flat:
        if isinstance(code, bool) or not isinstance(code, (int, np.integer)):
            raise TypeError(f"codes must be integers, got {type(code).__name__} {code!r:.40}")
        if not 0 <= code < 2**fmt.bits:
            shown = (
                str(code) if abs(int(code)).bit_length() <= 128 else f"(a {abs(int(code)).bit_length()}-bit integer)"
            )
            raise ValueError(
                f"code {shown} is outside [0, {2**fmt.bits - 1}], the range of {fmt.bits}-bit {fmt.name} codes"
            )


def _count_rejected(chunk: np.ndarray, fmt: Format, nan: str) -> int:
    """Values the format cannot take at all: NaN without a NaN code, negatives or zero without one."""
    rejected = 0
    if not fmt.has_nan:
        if nan == "error":
            rejected += int(np.count_nonzero(np.isnan(chunk)))
        if isinstance(fmt, FloatFormat) and not fmt.signed:
            rejected += int(np.count_nonzero(chunk < 0))
        if isinstance(fmt, FloatFormat) and not fmt.zero:
            rejected += int(np.count_nonzero(chunk == 0))
    return rejected


def _rejected_message(fmt: Format, count: int, total: int) -> str:
    what = "NaN"
    if isinstance(fmt, FloatFormat) and not fmt.signed:
        what += " or negative"
    if isinstance(fmt, FloatFormat) and not fmt.zero:
        what += " or zero"
    return (
        f"{count} of {total} values are {what}, which {fmt.name} cannot represent; "
        "pass nan='ml_dtypes' to convert NaN the way ml_dtypes does, or clean the input first"
    )


# --- choosing an encode path ----------------------------------------------------------------------

EncodeKernel = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], int]
"""``kernel(values, codes_out, random_bits) -> number of values that overflowed``.

The count must be right when ``overflow='error'``; other policies never read it."""


ENCODE_PATHS = ("cast", "table", "stochastic_table", "float32_bits", "generic")
"""The implementations ``encode`` chooses from (see the module's docstring)."""


def encode_path(
    fmt: Format | str, dtype: Any = np.float32, rounding: str = "nearest_even", overflow: str = "ieee"
) -> str:
    """Which implementation encodes ``dtype`` input into ``fmt`` under these options: one of :data:`ENCODE_PATHS`.

    The one place the choice is made; ``encode`` builds the kernel it names. The tests pin the path of every
    format, rounding, overflow policy and input dtype, so that a change cannot silently fall back to the
    generic path.

    Example:
        >>> from floatfmt.codec import encode_path
        >>> encode_path("e4m3"), encode_path("bf16"), encode_path("bf16", rounding="up"), encode_path("e4m3", "float64")
        ('table', 'cast', 'float32_bits', 'table')
        >>> encode_path("e4m3", "float64", rounding="stochastic"), encode_path("bf16", "float64", overflow="error")
        ('generic', 'generic')
    """
    fmt = get_format(fmt)
    float32_exact = np.dtype(dtype) != np.float64
    if not float32_exact and _narrows_to_odd(fmt, rounding, overflow):
        return encode_path(fmt, np.float32, rounding, overflow)
    if isinstance(fmt, IntFormat):
        table = float32_exact and _table_key_bits(fmt) and rounding != "stochastic" and overflow != "wrap"
        return "table" if table else "generic"
    if _platform_cast(fmt, float32_exact, rounding, overflow) is not None:
        return "cast"
    if float32_exact:
        if _table_key_bits(fmt):
            return "stochastic_table" if rounding == "stochastic" else "table"
        if fmt.layout[2:] == _FLOAT32.layout[2:] and fmt.mantissa_bits < 23:
            return "float32_bits"
        if _narrower_ieee(fmt):
            return "float32_bits"
    return "generic"


def _narrower_ieee(fmt: FloatFormat) -> bool:
    """An IEEE-style format (infinity, NaNs, subnormals) whose every binade is one of float32's, with fewer
    exponent and mantissa bits (float16): float32's bits round into it with integer operations."""
    return (
        fmt.signed and fmt.infinity and fmt.nan == "ieee" and fmt.subnormals and fmt.zero
        and 1 <= fmt.mantissa_bits < 23 and fmt.exponent_bits < 8
        and fmt.bias <= 127 and 2**fmt.exponent_bits - 2 - fmt.bias <= 127
    )  # fmt: skip


@functools.lru_cache(maxsize=512)
def _encode_kernel(fmt: Format, source: np.dtype[Any], rounding: str, overflow: str, nan: str) -> EncodeKernel:
    """The kernel for these options, built once (kernels keep no state between calls: a table, a cast dtype)."""
    path = encode_path(fmt, source, rounding, overflow)
    if isinstance(fmt, IntFormat):
        if path == "table":
            return _TableKernel(fmt, rounding, overflow)
        return functools.partial(_encode_int_generic, fmt=fmt, rounding=rounding, overflow=overflow, nan=nan)
    if path == "cast" and fmt == _FLOAT16 and source != np.float64:
        return _encode_half  # numpy's cast, or the processor's own conversion (F16C) in the compiled loops
    if path == "cast" and fmt == _BFLOAT16 and source != np.float64:
        return _encode_bfloat16  # ml_dtypes' cast, or one compiled pass of integer rounding
    if path == "cast":
        dtype, nan_is_canonical = _platform_cast(fmt, source != np.float64, rounding, overflow)  # type: ignore[misc]
        return _CastKernel(fmt, dtype, nan_is_canonical)
    if path == "stochastic_table":
        return _stochastic_table_kernel(fmt, overflow, nan)
    if path == "table":
        return _TableKernel(fmt, rounding, overflow)
    if path == "float32_bits" and fmt.exponent_bits < 8:
        return functools.partial(_encode_float32_narrower, fmt=fmt, rounding=rounding, overflow=overflow)
    if path == "float32_bits":
        return functools.partial(_encode_float32_exponent, fmt=fmt, rounding=rounding, overflow=overflow)
    return functools.partial(_encode_float_generic, fmt=fmt, rounding=rounding, overflow=overflow, nan=nan)


def _platform_cast(fmt: FloatFormat, float32_exact: bool, rounding: str, overflow: str) -> tuple[Any, bool] | None:
    """The numpy / ml_dtypes cast that gives the reference's bits here, if there is one: (its dtype, whether it
    makes NaN canonical already).

    Widening casts are exact whatever the rounding mode. numpy rounds float64 to
    float32 and float16 directly and correctly; ml_dtypes before 0.7 rounds float64 to
    bfloat16 through float32, so only float32-exact input may use its cast.
    """
    widening = fmt == _FLOAT64 or (fmt == _FLOAT32 and float32_exact)
    if widening and overflow != "saturate":
        return fmt.ml_dtype, False
    if rounding != "nearest_even" or overflow != "ieee":
        return None
    if fmt in (_FLOAT32, _FLOAT16):
        return fmt.ml_dtype, False  # numpy keeps NaN payloads
    if fmt == _BFLOAT16 and float32_exact:
        return fmt.ml_dtype, True
    return None


def _table_key_bits(fmt: Format) -> int | None:
    """How many top bits of a float32, with a sticky bit for the rest, decide every rounding; None if too many.

    The top K bits hold K - 9 mantissa bits. A float format needs its guard bit
    among them (m + 1 <= K - 9) and its smallest gap above float32's
    subnormal resolution; an integer format needs the bit worth 1/2 of its
    largest value. K is 16 (a 2**17-entry table) where that suffices, else 17.
    """
    if isinstance(fmt, IntFormat):
        needed = builtins.max(fmt.max, -fmt.min).bit_length() + 9  # mantissa bits down to the 1/2 bit, plus 9
    elif fmt.bits <= 8 and fmt.smallest_subnormal >= 2.0 ** (-149 + 17):
        needed = fmt.mantissa_bits + 10
    else:
        return None
    return builtins.max(needed, 16) if needed <= 17 else None


# --- the table path -----------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _encode_table(fmt: Format, rounding: str, overflow: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The codes of all (top K bits, sticky) keys, and which keys overflow (for ``overflow='error'``).

    NaN gets ml_dtypes' code in formats without NaN: under ``nan='error'`` it is
    counted and rejected before any lookup. For ``rounding='stochastic'`` the
    table truncates (random bits of all ones never round away) but keeps
    stochastic rounding's overflow rule; ``_stochastic_table_kernel`` adds the
    noise before the lookup.
    """
    key_bits = _table_key_bits(fmt)
    assert key_bits is not None
    keys = np.arange(2 ** (key_bits + 1), dtype=np.uint32)
    representatives = (((keys >> 1) << (32 - key_bits)) | (keys & 1)).view(np.float32)
    codes = np.empty(keys.size, dtype=code_dtype(fmt))
    flags = np.zeros(keys.size, dtype=np.bool_) if overflow == "error" else None
    never_away = np.full(keys.size, 0xFFFFFFFF, dtype=np.uint32) if rounding == "stochastic" else None
    options = dict(rounding=rounding, overflow=overflow, nan="ml_dtypes", overflow_flags=flags)
    with np.errstate(invalid="ignore", over="ignore"):
        if isinstance(fmt, IntFormat):
            _encode_int_generic(representatives, codes, never_away, fmt=fmt, **options)  # type: ignore[arg-type]
        else:
            _encode_float_generic(representatives, codes, never_away, fmt=fmt, **options)  # type: ignore[arg-type]
    for array in (codes, flags):
        if array is not None:
            array.flags.writeable = False
    return codes, flags


class _TableKernel:
    """A lookup of each float32's table key: integer operations only."""

    def __init__(self, fmt: Format, rounding: str, overflow: str) -> None:
        self.table, self.overflow_flags = _encode_table(fmt, rounding, overflow)
        self.dropped = 31 - _key_bits(fmt)
        self.steps: _kernels.Steps | None = None  # for small calls, built by the first
        self.nearest = None
        if self.overflow_flags is None:
            self.nearest = _nearest_parameters(fmt, rounding, self.table, self.dropped)

    def __call__(self, values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
        bits = values.view(np.uint32)
        if values.size <= _kernels.STEPS_AT_MOST:
            if self.steps is None:
                self.steps = _kernels.key_steps(self.table, self.dropped, self.overflow_flags)
            return _kernels.steps_encode(bits, self.steps, out)
        if self.nearest is not None:
            m, normal, magic, offset, max_code, above, nans, sign = self.nearest
            return _kernels.nearest_encode(
                bits, self.dropped, self.table, m, normal, magic, offset, max_code, above, nans, sign, out
            )
        return _kernels.table_encode(bits, self.dropped, self.table, out, self.overflow_flags)


def _nearest_parameters(fmt: Format, rounding: str, table: np.ndarray, dropped: int) -> tuple[Any, ...] | None:
    """The parameters of :func:`floatfmt._kernels.nearest_encode` for this format's nearest-even table, or None
    where that arithmetic does not apply: a signed float format of 8 bits or fewer with a mantissa and subnormals,
    an exponent range inside float32's, and a -0 (not the ``uz`` formats, where -0 is NaN's code). The codes for
    overflow and NaN are read from the table itself (overflow's positive: the loop adds the sign bit)."""
    if rounding != "nearest_even" or not isinstance(fmt, FloatFormat) or fmt.bits > 8:
        return None
    if not (fmt.signed and fmt.subnormals and fmt.zero) or fmt.nan == "negative_zero":
        return None
    if not 1 <= fmt.mantissa_bits or fmt.exponent_bits >= 8:  # e5m0 and the like: no subnormal to add up to
        return None

    def code_of(value: float) -> int:
        code = np.empty(1, dtype=table.dtype)
        _kernels.table_encode(np.array([value], dtype=np.float32).view(np.uint32), dropped, table, code, None)
        return int(code[0])

    m = fmt.mantissa_bits
    min_normal = int(np.array(fmt.smallest_normal, dtype=np.float32).view(np.uint32))
    magic = np.float32(fmt.smallest_subnormal * 2.0**23)  # its float32 gap is the smallest subnormal
    offset = (127 - fmt.bias) << m
    above = code_of(float(np.finfo(np.float32).max))
    nan_codes = (code_of(float("nan")), code_of(-float("nan")))
    return (m, min_normal, magic, offset, fmt.max_code, above, nan_codes, fmt.bits - 1)


def _key_bits(fmt: Format) -> int:
    key_bits = _table_key_bits(fmt)
    assert key_bits is not None, f"{fmt.name} has no table path"
    return key_bits


def _stochastic_table_kernel(fmt: FloatFormat, overflow: str, nan: str) -> EncodeKernel:
    """Stochastic rounding as noise plus truncation, exact in the format's normal range.

    There the gap between neighbours is ``2**(23 - m)`` float32 ulps, so adding
    ``~r >> (9 + m)`` ulps and truncating rounds away exactly when the
    fraction exceeds ``r / 2**32``; a carry into the next binade still
    truncates to the upper neighbour. Elements outside that range (the
    format's subnormals, the top float32 binade, infinities, NaN) are rare and
    go to the generic path.
    """
    table, overflow_flags = _encode_table(fmt, "stochastic", overflow)
    dropped = 31 - _key_bits(fmt)
    noise_shift = 9 + fmt.mantissa_bits
    regular_from = builtins.max(2.0 ** (fmt.minexp + (0 if fmt.subnormals else 1)), 2.0**-126)
    low_bits = int(np.array(regular_from, dtype=np.float32).view(np.uint32))
    # Beyond the format's range every result is an overflow, so noise does no harm, unless it turns bits into NaN.
    high_bits = 0x7F800000 - (1 << (23 - fmt.mantissa_bits))
    generic = functools.partial(_encode_float_generic, fmt=fmt, rounding="stochastic", overflow=overflow, nan=nan)

    def kernel(values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
        assert random is not None
        overflowed, where = _kernels.stochastic_table_encode(
            values.view(np.uint32), random, noise_shift, dropped, table, out, overflow_flags, low_bits, high_bits
        )
        if where.size:
            codes = np.empty(where.size, dtype=out.dtype)
            overflowed += generic(values[where], codes, random[where])
            out[where] = codes
        return overflowed

    return kernel


# --- casts the platform already does right ------------------------------------------------------------


def _encode_half(values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
    """float32 to float16, nearest-even, NaN canonical: :func:`floatfmt._kernels.half_encode`."""
    return _kernels.half_encode(values, out)


def _encode_bfloat16(values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
    """float32 to bfloat16, nearest-even, NaN canonical: :func:`floatfmt._kernels.bfloat16_encode`."""
    return _kernels.bfloat16_encode(values, out)


class _CastKernel:
    """numpy / ml_dtypes round-to-nearest-even casts, with NaN made canonical (quiet, sign kept)."""

    def __init__(self, fmt: FloatFormat, dtype: Any, nan_is_canonical: bool) -> None:
        self.dtype = dtype
        self.nan_is_canonical = nan_is_canonical
        self.quiet_nan = np.array([fmt.nan_code(False), fmt.nan_code(True)], dtype=code_dtype(fmt))

    def __call__(self, values: np.ndarray, out: np.ndarray, random: np.ndarray | None) -> int:
        out.view(self.dtype)[...] = values
        if not self.nan_is_canonical and np.isnan(values.max(initial=-np.inf)):  # max propagates NaN, no temporary
            nan_mask = np.isnan(values)
            out[nan_mask] = self.quiet_nan[np.signbit(values[nan_mask]).astype(np.intp)]
        return 0


# --- formats with float32's exponent: bfloat16, tf32 ---------------------------------------------------


def _encode_float32_exponent(
    values: np.ndarray, out: np.ndarray, random: np.ndarray | None, *, fmt: FloatFormat, rounding: str, overflow: str
) -> int:
    """Round float32 bits to fewer mantissa bits; the exponent field carries over unchanged."""
    dropped = 23 - fmt.mantissa_bits
    bits = values.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    negative = bits >= np.uint32(0x80000000)
    low = magnitude & np.uint32((1 << dropped) - 1)
    truncated = magnitude >> np.uint32(dropped)
    if rounding == "stochastic":
        assert random is not None
        away = low > (random >> np.uint32(32 - dropped))
    else:
        half = np.uint32(1 << (dropped - 1))
        lower_is_even = (truncated & np.uint32(1)) == 0
        away = _round_away(rounding, low > half, low == half, low != 0, lower_is_even, negative)
    code = truncated + away.astype(np.uint32)  # a carry out of the mantissa lands on infinity's code
    infinite_input = magnitude == np.uint32(0x7F800000)
    overflowed = (code > np.uint32(fmt.max_code)) & ~infinite_input & (magnitude < np.uint32(0x7F800000))
    if overflow == "ieee":
        to_max = np.logical_and(overflowed, np.logical_not(_overflows_to_infinity(rounding, negative)))
    else:
        to_max = overflowed | infinite_input if overflow == "saturate" else overflowed
    code[to_max] = fmt.max_code
    code[magnitude > np.uint32(0x7F800000)] = fmt.nan_code(False)  # type: ignore[call-overload]
    code |= negative.astype(np.uint32) << np.uint32(fmt.bits - 1)
    out[...] = code
    return int(np.count_nonzero(overflowed))


def _encode_float32_narrower(
    values: np.ndarray, out: np.ndarray, random: np.ndarray | None, *, fmt: FloatFormat, rounding: str, overflow: str
) -> int:
    """Round float32 bits into an IEEE-style format with fewer exponent bits (see :func:`_narrower_ieee` and
    :func:`floatfmt._kernels.narrower_encode`)."""
    return _kernels.narrower_encode(
        values.view(np.uint32), fmt.mantissa_bits, fmt.exponent_bits, fmt.bias,
        _kernels.ROUNDING_CODES[rounding], _kernels.OVERFLOW_CODES[overflow],
        random if random is not None else _NO_RANDOM, out,
    )  # fmt: skip


_NO_RANDOM = np.zeros(0, dtype=np.uint32)
"""The random bits a deterministic rounding passes (none are read)."""


def _round_away(
    rounding: str,
    above_half: np.ndarray,
    at_half: np.ndarray,
    inexact: np.ndarray,
    lower_is_even: np.ndarray,
    negative: np.ndarray,
) -> np.ndarray:
    """Whether each magnitude rounds away from zero (the vector twin of ``_reference.round_away``)."""
    if rounding == "stochastic" or rounding not in _kernels.ROUNDING_CODES:
        raise AssertionError(f"{rounding} is handled by its caller")
    code = _kernels.ROUNDING_CODES[rounding]
    return _kernels.round_away(code, above_half, at_half, inexact, lower_is_even, negative)


# --- the generic path: exact float64 arithmetic -----------------------------------------------------


def _split_and_round(
    scaled: np.ndarray, negative: np.ndarray, rounding: str, random: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Whole quanta in each non-negative ``scaled`` magnitude, and whether it rounds away from zero.

    Exact in float64: ``scaled`` is below 2**53, so its floor and fraction are exact.
    """
    steps = np.floor(scaled)
    fraction = scaled - steps
    if rounding == "stochastic":
        assert random is not None
        return steps, fraction > random * 2.0**-32  # uint32 to float64 and a power-of-two scaling: exact
    lower_is_even = np.fmod(steps, 2.0) == 0
    return steps, _round_away(rounding, fraction > 0.5, fraction == 0.5, fraction > 0, lower_is_even, negative)


def _encode_float_generic(
    values: np.ndarray,
    out: np.ndarray,
    random: np.ndarray | None,
    *,
    fmt: FloatFormat,
    rounding: str,
    overflow: str,
    nan: str,
    overflow_flags: np.ndarray | None = None,
) -> int:
    """Encode any float values into any FloatFormat, mirroring ``_reference._encode_float`` step by step."""
    x = values.astype(np.float64, copy=False)
    m = fmt.mantissa_bits
    negative = np.signbit(x)
    finite = np.isfinite(x)
    magnitude = np.where(finite, np.abs(x), 0.0)
    # The grid around each magnitude: quantum 2**(exponent - m) in its binade (or the lowest one).
    _, frexp_exponent = np.frexp(magnitude)
    exponent = np.maximum(frexp_exponent.astype(np.int64) - 1, fmt.lowest_binade_exponent)
    scaled = np.ldexp(magnitude, (m - exponent).astype(np.int32))  # exact: a power-of-two scaling...
    # ...unless it falls below float64's smallest subnormal (a float64 subnormal input, a format whose smallest
    # step exceeds 1): the fraction is then some positive amount below one float64 step, and every rounding
    # mode decides such fractions alike, so the smallest positive float64 stands for it
    scaled[(scaled == 0) & (magnitude > 0)] = np.finfo(np.float64).smallest_subnormal
    steps, away = _split_and_round(scaled, negative, rounding, random)
    magnitude_code = ((exponent + fmt.bias) << m) + steps.astype(np.int64) + away - (1 << m)

    smallest = fmt.smallest_subnormal
    if not fmt.subnormals:  # below the smallest value lie only zero (if any) and the gap to it
        gap = magnitude < smallest
        if fmt.zero:
            if rounding == "stochastic":
                assert random is not None
                gap_away = np.ldexp(magnitude, 32) > random.astype(np.float64) * smallest
            else:
                twice = 2 * magnitude
                even = np.ones_like(gap)  # the lower neighbour, zero, counts as even
                gap_away = _round_away(rounding, twice > smallest, twice == smallest, magnitude > 0, even, negative)
            magnitude_code = np.where(gap, gap_away.astype(np.int64), magnitude_code)
        else:
            magnitude_code = np.where(gap, 0, magnitude_code)
    magnitude_code[magnitude == 0] = 0
    is_nan, infinite = np.isnan(x), np.isinf(x)
    magnitude_code[infinite] = fmt.max_code  # saturated unless a policy below says otherwise
    # Values the format cannot hold at all become NaN (the reference checks them first).
    unrepresentable = is_nan.copy()
    if not fmt.signed:
        unrepresentable |= negative & (x != 0)
    if not fmt.zero:
        unrepresentable |= x == 0
    overflowed = ~unrepresentable & (finite & (magnitude_code > fmt.max_code) | infinite & (not fmt.infinity))
    if overflow_flags is not None:
        overflow_flags[...] = overflowed
    # uint64 so that float64's sign bit fits
    sign = np.where(negative & fmt.signed, np.uint64(fmt.sign_mask), np.uint64(0))
    if fmt.zero and not fmt.has_negative_zero:
        sign[magnitude_code == 0] = 0
    code = sign | np.minimum(magnitude_code, fmt.max_code).astype(np.uint64)
    nan_codes = _nan_codes(fmt, negative, nan)
    if fmt.infinity and overflow != "saturate":
        code[infinite] = (sign | fmt.infinity_code)[infinite]  # type: ignore[operator]
    if overflow == "ieee":
        to_special = np.logical_and(overflowed, _overflows_to_infinity(rounding, negative)) | (overflowed & infinite)
        _put_special(code, to_special, fmt, sign, nan_codes)
    code[unrepresentable] = nan_codes[unrepresentable]
    out[...] = code
    return int(np.count_nonzero(overflowed))


def _overflows_to_infinity(rounding: str, negative: np.ndarray) -> np.ndarray | bool:
    return _kernels.overflows_to_infinity(_kernels.ROUNDING_CODES[rounding], negative)


def _nan_codes(fmt: FloatFormat, negative: np.ndarray, nan: str) -> np.ndarray:
    """The code each element gets if it is NaN (or unrepresentable)."""
    if fmt.has_nan:
        positive_nan, negative_nan = fmt.nan_code(False) or 0, fmt.nan_code(True) or 0
    else:  # only reached with nan="ml_dtypes": a zero of the opposite sign
        positive_nan, negative_nan = fmt.sign_mask, 0
    return np.asarray(np.where(negative, np.uint64(negative_nan), np.uint64(positive_nan)))


def _put_special(
    code: np.ndarray, where: np.ndarray, fmt: FloatFormat, sign: np.ndarray, nan_codes: np.ndarray
) -> None:
    """Overflow to infinity, else NaN, else the largest value: the ``ieee`` policy."""
    if fmt.infinity:
        code[where] = (sign | fmt.infinity_code)[where]  # type: ignore[operator]
    elif fmt.has_nan:
        code[where] = nan_codes[where]
    else:
        code[where] = (sign | fmt.max_code)[where]


def _encode_int_generic(
    values: np.ndarray,
    out: np.ndarray,
    random: np.ndarray | None,
    *,
    fmt: IntFormat,
    rounding: str,
    overflow: str,
    nan: str,
    overflow_flags: np.ndarray | None = None,
) -> int:
    """Round to integers, then saturate, wrap or flag; mirrors ``_reference._encode_int``."""
    x = values.astype(np.float64, copy=False)
    negative = x < 0
    # Every float64 of 2**62 or more is a multiple of 2**bits: clamping there keeps wrap-around exact.
    magnitude = np.minimum(np.abs(x), 2.0**62)
    if np.isnan(magnitude.max(initial=0.0)):  # one reduction; NaN propagates through max
        magnitude[np.isnan(magnitude)] = 0  # NaN errors were counted before; this is nan="ml_dtypes"
    steps, away = _split_and_round(magnitude, negative, rounding, random)
    steps += away
    result = np.copysign(steps, x, out=steps)  # a negative zero becomes the integer 0
    overflowed_count = 0
    if overflow == "error" or overflow_flags is not None:
        overflowed = (result > fmt.max) | (result < fmt.min)
        overflowed_count = int(np.count_nonzero(overflowed))
        if overflow_flags is not None:
            overflow_flags[...] = overflowed
    if overflow == "wrap":
        if np.isinf(x).any():
            raise EncodeError(f"infinity cannot wrap around in {fmt.name}; use overflow='saturate'")
    else:
        np.clip(result, fmt.min, fmt.max, out=result)
    np.bitwise_and(result.astype(np.int64), (1 << fmt.bits) - 1, out=out, casting="unsafe")  # two's complement
    return overflowed_count


# --- decoding ---------------------------------------------------------------------------------------

DecodeKernel = Callable[[np.ndarray, np.ndarray], None]

_decode_plans: dict[tuple[Any, ...], tuple[Format, np.dtype[Any] | None, DecodeKernel, bool, bool]] = {}


def _decode_plan(fmt: Any, dtype: np.dtype[Any]) -> tuple[Format, np.dtype[Any] | None, DecodeKernel, bool, bool]:
    """The format, the code dtype whose every value is a code (None if there is none), the kernel, whether it
    wants chunks and whether it warns of nothing; from a dictionary keyed by the arguments as given, like
    ``_encode_plan``."""
    key: tuple[Any, ...] = (fmt, dtype)
    try:
        return _decode_plans[key]
    except KeyError:
        pass
    except TypeError:
        key = ()
    resolved = get_format(fmt)
    codes = code_dtype(resolved)
    plan = (resolved, codes if codes.itemsize * 8 == resolved.bits else None, *_decode_kernel(resolved, dtype))
    if key and (not isinstance(fmt, str) or is_registered(fmt)) and len(_decode_plans) < 4096:
        _decode_plans[key] = plan
    return plan


def _decode_kernel(fmt: Format, dtype: np.dtype[Any]) -> tuple[DecodeKernel, bool, bool]:
    """The kernel for ``fmt``, whether it wants chunks (platform casts run over the whole array), and whether it
    warns of nothing (lookups and exact widenings: no ``errstate`` needed around a small call)."""
    if fmt == _FLOAT16 and dtype == np.float32:
        return _kernels.half_decode, False, True  # no temporaries either way: one piece per thread
    if fmt == _BFLOAT16 and dtype == np.float32:
        return _kernels.bfloat16_decode, False, True
    if isinstance(fmt, FloatFormat) and fmt.bits >= 16 and fmt.ml_dtype is not None:
        native = fmt.ml_dtype  # float64, float32, float16, bfloat16: the platform's exact casts
        return (lambda codes, out: _assign(out, codes.view(native))), False, False  # float64 may overflow float32
    if isinstance(fmt, FloatFormat) and fmt.layout[2:] == _FLOAT32.layout[2:]:
        shift = np.uint32(23 - fmt.mantissa_bits)  # tf32 and kin: the code is the top of a float32
        return (lambda codes, out: _assign(out, (codes.astype(np.uint32) << shift).view(np.float32))), True, True
    if fmt.bits <= 8:
        table = _decode_table(fmt, dtype)
        pairs = _pair_table(fmt, dtype)  # for numpy's loops: two codes per lookup
        return (lambda codes, out: _kernels.gather(table, codes, out, pairs)), True, True
    if fmt.bits <= 16:
        table = _decode_table(fmt, dtype)
        return (lambda codes, out: _kernels.gather(table, codes, out, None)), True, True
    return (lambda codes, out: _assign(out, _decode_generic(codes, fmt))), True, False  # type: ignore[arg-type]


def _assign(out: np.ndarray, values: np.ndarray) -> None:
    out[...] = values


@functools.lru_cache(maxsize=64)
def _pair_table(fmt: Format, dtype: np.dtype[Any]) -> np.ndarray:
    """Entry ``i`` holds the values of the byte codes ``i & 0xFF`` and ``i >> 8`` (little-endian pairs)."""
    table = _decode_table(fmt, dtype)
    index = np.arange(2**16)
    pairs = np.stack([table[(index & 0xFF) % table.size], table[(index >> 8) % table.size]], axis=1)
    if sys.byteorder == "big":
        pairs = pairs[:, ::-1]
    pairs = np.ascontiguousarray(pairs)
    if dtype.itemsize == 4:
        pairs = pairs.view(np.uint64).reshape(-1)  # one 8-byte move per pair
    pairs.flags.writeable = False
    return pairs


@functools.lru_cache(maxsize=64)
def _decode_table(fmt: Format, dtype: np.dtype[Any]) -> np.ndarray:
    codes = np.arange(2**fmt.bits, dtype=np.uint64)
    if isinstance(fmt, IntFormat):
        values = codes.astype(np.float64)
        if fmt.signed:
            values[codes >= 2 ** (fmt.bits - 1)] -= 2.0**fmt.bits
    else:
        values = _decode_generic(codes, fmt)
    table = values.astype(dtype)
    table.flags.writeable = False
    return table


def _decode_generic(codes: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Exact float64 values of any codes of a float format (mirrors ``_reference.decode``)."""
    codes = codes.astype(np.uint64)
    m = fmt.mantissa_bits
    magnitude = codes & np.uint64(fmt.magnitude_mask)
    negative = (codes & np.uint64(fmt.sign_mask)) != 0
    exponent_field = (magnitude >> np.uint64(m)).astype(np.int64)
    mantissa_field = (magnitude & np.uint64((1 << m) - 1)).astype(np.float64)
    subnormal = (exponent_field == 0) & fmt.subnormals
    significand = np.where(subnormal, mantissa_field, mantissa_field + 2.0**m)
    exponent = np.where(subnormal, 1, exponent_field) - fmt.bias - m
    with np.errstate(over="ignore"):  # only the infinity and NaN codes overflow, and are replaced below
        values = np.ldexp(significand, exponent.astype(np.int32))
    if fmt.zero:
        values[magnitude == 0] = 0.0
    if fmt.infinity:
        values[magnitude == np.uint64(fmt.max_code + 1)] = np.inf
    is_nan = magnitude > np.uint64(fmt.max_code + int(fmt.infinity))
    if fmt.nan == "negative_zero":
        is_nan = negative & (magnitude == 0)
    values[is_nan] = np.nan
    return np.where(negative, -np.abs(values), np.abs(values))
