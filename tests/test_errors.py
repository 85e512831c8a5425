"""Bad input gets a clear error: unknown options, wrong types, codes out of range."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import floatfmt


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rounding="banker"), "unknown rounding 'banker'; choose one of nearest_even"),
        (dict(overflow="clip"), "unknown overflow 'clip'"),
        (dict(overflow="wrap"), "integer formats only"),
        (dict(nan="zero"), "unknown nan policy"),
        (dict(rounding="stochastic", seed=-1), "seed must be an integer"),
        (dict(rounding="stochastic", seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        floatfmt.encode([1.0], "e4m3", **kwargs)


@pytest.mark.parametrize(
    "values, error, message",
    [
        (["a", "b"], TypeError, "expected real numbers"),
        ([True, False], TypeError, "boolean input"),
        ([1 + 2j], TypeError, "expected real numbers"),
        (np.array([1.0], dtype=np.longdouble), TypeError, "convert it to float64"),
        (np.array([2**60 + 1], dtype=np.int64), ValueError, "above 2\\*\\*53"),
    ],
)
def test_bad_inputs(values, error, message):
    if isinstance(values, np.ndarray) and values.dtype == np.longdouble and np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(error, match=message):
        floatfmt.encode(values, "e4m3")


@pytest.mark.parametrize("fmt", ["e4m3", "bf16", "fp16", "e2m1", "int8"])
@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_big_endian_floats_encode_as_their_values(fmt, dtype):
    # arrays read from big-endian files: the same values, so the same codes (byte order is no rounding)
    values = np.random.default_rng(3).standard_normal(257) * 4
    swapped = values.astype(dtype)
    assert np.array_equal(floatfmt.encode(swapped, fmt), floatfmt.encode(swapped.astype(dtype[1:]), fmt))


def test_integer_input_is_accepted_exactly():
    assert floatfmt.encode(np.array([1, 2, 3], dtype=np.int16), "e4m3").tolist() == [56, 64, 68]


@pytest.mark.parametrize(
    "codes, fmt, message",
    [
        ([256], "e4m3", "outside \\[0, 255\\]"),
        ([16, 3], "e2m1", "1 codes are outside \\[0, 15\\]"),
        ([-1], "bf16", "outside"),
        ([1.5], "e4m3", "codes must be integers"),
        (2**64, "e4m3", "code 18446744073709551616 is outside \\[0, 255\\]"),  # beyond every numpy integer
        ([3, 2**70], "bf16", "code 1180591620717411303424 is outside"),
        ([3, 2**5000], "bf16", "a 5001-bit integer"),
        ([2.5, 2**70], "bf16", "codes must be integers, got float 2.5"),
        ([True], "e4m3", "codes must be integers"),
    ],
)
def test_bad_codes(codes, fmt, message):
    with pytest.raises((ValueError, TypeError), match=message):
        floatfmt.decode(codes, fmt)


def test_decode_dtype_is_checked():
    with pytest.raises(ValueError, match="float32 or float64"):
        floatfmt.decode([1], "e4m3", dtype=np.int32)


def test_shapes_scalars_and_empty_arrays():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8
    assert floatfmt.encode(x, "e4m3").shape == (2, 3, 4)
    assert floatfmt.encode(x.T, "e4m3").shape == (4, 3, 2)  # non-contiguous input
    np.testing.assert_array_equal(floatfmt.encode(x.T, "e4m3"), floatfmt.encode(x, "e4m3").T)
    assert floatfmt.encode(np.float32(1.0), "e4m3").shape == ()
    assert floatfmt.encode(np.array([], dtype=np.float32), "e4m3").shape == (0,)
    assert floatfmt.decode(np.array([], dtype=np.uint8), "e4m3").shape == (0,)
    assert floatfmt.decode([], "e4m3").shape == (0,)
    assert floatfmt.round(np.float16(0.3), "e2m1", overflow="saturate").dtype == np.float16
    assert floatfmt.round(0.3, "e2m1").dtype == np.float64


def test_code_dtypes_are_the_smallest_that_fit():
    widths = {name: floatfmt.code_dtype(name).itemsize for name in ["e2m1", "e4m3", "bf16", "tf32", "float64"]}
    assert widths == {"e2m1": 1, "e4m3": 1, "bf16": 2, "tf32": 4, "float64": 8}


@pytest.mark.parametrize("fmt", ["e4m3", "bf16", "e2m1", "int8"])
def test_out_buffers_receive_the_same_results_and_are_checked(fmt):
    values = np.random.default_rng(7).standard_normal((3, 257)).astype(np.float32) * 3
    codes = floatfmt.encode(values, fmt, overflow="saturate")
    buffer = np.empty_like(codes)
    assert floatfmt.encode(values, fmt, overflow="saturate", out=buffer) is buffer and np.array_equal(buffer, codes)
    decoded = floatfmt.decode(codes, fmt)
    into = np.empty((3, 257), np.float32)
    assert floatfmt.decode(codes, fmt, out=into) is into and np.array_equal(into, decoded, equal_nan=True)
    wide = np.empty((3, 257), np.float64)  # dtype follows the buffer when not given
    assert floatfmt.decode(codes, fmt, out=wide) is wide and np.array_equal(
        wide, floatfmt.decode(codes, fmt, dtype=np.float64), equal_nan=True
    )
    rounded = np.empty_like(values)
    assert floatfmt.round(values, fmt, overflow="saturate", out=rounded) is rounded
    assert np.array_equal(rounded, floatfmt.round(values, fmt, overflow="saturate"), equal_nan=True)
    with pytest.raises(ValueError, match="must have shape \\(3, 257\\) and dtype"):
        floatfmt.encode(values, fmt, out=np.empty((3, 256), codes.dtype))
    with pytest.raises(ValueError, match="decode dtype must be float32 or float64"):
        floatfmt.decode(codes, fmt, out=np.empty((3, 257), np.float16))
    with pytest.raises(ValueError, match="C-contiguous and writable"):
        floatfmt.encode(values, fmt, out=np.empty((257, 3), codes.dtype).T)
    with pytest.raises(TypeError, match="must be a numpy array"):
        floatfmt.encode(values, fmt, out=[0] * 771)


def test_torch_tensors_of_every_dtype_are_read_in_place():
    torch = pytest.importorskip("torch")
    from floatfmt.codec import as_array

    base = torch.randn(64, 128)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        tensor = base.to(dtype)
        as_numpy = tensor.float().numpy()  # the same values, through torch's own cast
        view = as_array(tensor)
        assert view.shape == (64, 128) and np.array_equal(view.astype(np.float32), as_numpy)
        assert view.__array_interface__["data"][0] == tensor.data_ptr()  # no copy: a view of the tensor's memory
        assert np.array_equal(floatfmt.encode(tensor, "e4m3"), floatfmt.encode(as_numpy, "e4m3"))
        assert np.array_equal(floatfmt.round(tensor, "e2m1").astype(np.float32), floatfmt.round(as_numpy, "e2m1"))
    w = base.to(torch.bfloat16)
    quantized = floatfmt.quantize(w, "mxfp4")
    assert np.array_equal(quantized.dequantize(), floatfmt.quantize(w.float().numpy(), "mxfp4").dequantize())
    assert floatfmt.error_stats(w, torch.from_numpy(quantized.dequantize())).count == w.numel()
    codes = torch.from_numpy(floatfmt.encode(base.numpy(), "e4m3"))
    assert np.array_equal(floatfmt.decode(codes, "e4m3"), floatfmt.decode(codes.numpy(), "e4m3"), equal_nan=True)


class _DLPackOnly:
    """An array library's array as floatfmt meets it: DLPack, and ``__array__`` for dtypes DLPack lacks."""

    def __init__(self, array: np.ndarray, device: int = 1) -> None:
        self.array, self.device = array, device

    def __dlpack__(self, **options):
        return self.array.__dlpack__(**options)

    def __dlpack_device__(self):
        return (self.device, 0)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)


def test_dlpack_arrays_in_host_memory_are_read_without_a_copy():
    from floatfmt.codec import as_array

    values = (np.random.default_rng(0).standard_normal((8, 64)) * 10).astype(np.float32)
    view = as_array(_DLPackOnly(values))
    assert view.__array_interface__["data"][0] == values.__array_interface__["data"][0]  # the same memory
    assert np.array_equal(floatfmt.encode(_DLPackOnly(values), "e4m3"), floatfmt.encode(values, "e4m3"))
    codes = floatfmt.encode(values, "e4m3")
    assert np.array_equal(floatfmt.decode(_DLPackOnly(codes), "e4m3"), floatfmt.decode(codes, "e4m3"), equal_nan=True)
    brain = values.astype(ml_dtypes.bfloat16)  # no DLPack dtype in numpy: read through __array__ instead
    assert np.array_equal(floatfmt.encode(_DLPackOnly(brain), "e4m3"), floatfmt.encode(brain, "e4m3"))


def test_dlpack_arrays_on_a_gpu_are_refused_with_what_to_do():
    with pytest.raises(TypeError, match="on CUDA cannot be read in place: copy it to the host first"):
        floatfmt.encode(_DLPackOnly(np.ones(4, np.float32), device=2), "e4m3")
