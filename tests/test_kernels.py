"""Every loop's numpy and numba twins: one signature, the same bits on hostile inputs; the backend choice."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import floatfmt
from floatfmt import _backend, _kernels
from floatfmt.quant import _kernels as quant_kernels
from floatfmt.quant.rules import kquants
from floatfmt.quant.rules.bitsandbytes import codebook_tables

pytest.importorskip("numba")

TWINS = [
    getattr(module, name)
    for module in (_kernels, quant_kernels)
    for name in module.__all__
    if hasattr(getattr(module, name), "compiled")
] + [value for value in vars(kquants).values() if hasattr(value, "compiled")]  # the K-quant searches and passes

RNG = np.random.default_rng(7)
HOSTILE_BITS = np.concatenate(
    [
        RNG.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32),
        np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x7F7FFFFF, 0x7F800000, 0x7FC00000, 0xFFFFFFFF], np.uint32),
    ]
)


def run_both(call):
    """``call()`` with numpy's loops, then with numba's (for inputs of every size)."""
    results = {}
    smallest = _backend.COMPILED_MIN_SIZE
    _backend.COMPILED_MIN_SIZE = 0
    try:
        for name in ("numpy", "numba"):
            with floatfmt.using_backend(name):
                results[name] = call()
    finally:
        _backend.COMPILED_MIN_SIZE = smallest
    return results["numpy"], results["numba"]


@pytest.mark.parametrize("twin", TWINS, ids=lambda twin: twin.__name__)
def test_twins_share_one_signature(twin):
    compiled = twin.compiled()
    assert compiled is not None, f"{twin.compiled_module} has no {twin.__name__}"
    numpy_parameters = list(inspect.signature(twin.numpy).parameters)
    assert list(inspect.signature(compiled.py_func).parameters) == numpy_parameters


def test_every_loop_has_a_twin():
    names = {twin.__name__ for twin in TWINS}
    assert names == {"table_encode", "stochastic_table_encode", "random_bits", "gather", "rows_max", "rows_min",
                     "rows_absmax", "rows_strongest", "gguf_blocks", "codebook_encode", "error_sums", "block_roundtrip",
                     "make_qkx2_quants", "make_qx_quants", "make_qp_quants", "make_q3_quants", "_iq4_blocks",
                     "requantize", "q8_k_codes", "_ternary", "mxfp4_codes", "_pack_trits",
                     "q45_k_roundtrip", "narrower_encode", "half_encode", "half_decode", "bfloat16_encode",
                     "bfloat16_decode", "lookup_scale", "offset_scale", "offset_scale_shift",
                     "float32_rounded_to_odd", "nearest_encode"}  # fmt: skip


def test_float16_loops_agree_with_numpy_on_every_code_and_every_rounding_boundary():
    """float16 both ways: the processor's conversions (F16C, where it has them) and the integer loops that stand in
    where it does not, against numpy's casts: every code decoded, NaN payloads kept; encoded, float32 values
    around every float16 tie and its neighbours, subnormals, overflow, infinities and NaNs (made canonical)."""
    from floatfmt import _kernels_numba

    codes = np.arange(2**16, dtype=np.uint16)
    expected = np.empty(codes.size, np.float32)
    _kernels.half_decode.numpy(codes, expected)
    for loop in (_kernels_numba.half_decode, _kernels_numba._half_decode_bits):
        got = np.empty(codes.size, np.float32)
        loop(codes, got)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    halves = codes[(codes & 0x7C00) != 0x7C00].view(np.float16).astype(np.float64)
    halves = np.unique(np.abs(halves))
    ties = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)
    values = np.concatenate([
        ties, np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(np.inf)), -ties,
        HOSTILE_BITS.view(np.float32), np.float32([65504, 65519.996, 65520, 7e4, np.inf, -np.inf, 2**-25, 2**-26]),
    ])  # fmt: skip
    reference = np.empty(values.size, np.uint16)
    with np.errstate(all="ignore"):
        _kernels.half_encode.numpy(values, reference)
    for loop in (_kernels_numba.half_encode, _kernels_numba._half_encode_bits):
        got = np.empty(values.size, np.uint16)
        loop(values, got)
        np.testing.assert_array_equal(got, reference)


def test_bfloat16_loops_agree_with_ml_dtypes_on_every_code_and_every_tie():
    codes = np.arange(2**16, dtype=np.uint16)
    expected, got = np.empty(codes.size, np.float32), np.empty(codes.size, np.float32)
    _kernels.bfloat16_decode.numpy(codes, expected)
    _kernels.bfloat16_decode.compiled()(codes, got)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    tops = codes.astype(np.uint32) << 16
    bits = np.concatenate([tops | 0x8000, tops | 0x7FFF, tops | 0x8001, tops, HOSTILE_BITS])  # ties, neighbours
    values = bits.view(np.float32)
    reference, ours = np.empty(values.size, np.uint16), np.empty(values.size, np.uint16)
    _kernels.bfloat16_encode.numpy(values, reference)
    _kernels.bfloat16_encode.compiled()(values, ours)
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("rounding", list(_kernels.ROUNDING_CODES))
@pytest.mark.parametrize("overflow", list(_kernels.OVERFLOW_CODES))
@pytest.mark.parametrize(("exponent_bits", "mantissa_bits", "bias"), [(5, 10, 15), (6, 9, 31), (4, 11, 3), (7, 1, 63)])
def test_narrower_encode_agrees_and_is_the_reference(rounding, overflow, exponent_bits, mantissa_bits, bias):
    """float32 bits into IEEE-style formats narrower than float32 (float16 and made-up ones), every rounding and
    overflow policy: the numba loop against numpy's, and both against the reference's exact arithmetic."""
    from floatfmt import FloatFormat
    from floatfmt._reference import encode as reference_encode

    fmt = FloatFormat("probe", exponent_bits, mantissa_bits, bias)
    bits = HOSTILE_BITS
    values = bits.view(np.float32)

    random = RNG.integers(0, 2**32, bits.size, dtype=np.uint64).astype(np.uint32)
    random[::7] = 0  # the bits that round every inexact value away, however small

    def call():
        out = np.empty(bits.size, np.uint16)
        count = _kernels.narrower_encode(bits, mantissa_bits, exponent_bits, bias, _kernels.ROUNDING_CODES[rounding],
                                         _kernels.OVERFLOW_CODES[overflow], random, out)  # fmt: skip
        return out, count

    (ours, count), (theirs, their_count) = run_both(call)
    np.testing.assert_array_equal(ours, theirs)
    assert count == their_count
    policy = "ieee" if overflow == "error" else overflow  # the reference raises; the loops count and saturate
    with np.errstate(all="ignore"):
        finite = np.isfinite(values)
    expected = np.array([
        reference_encode(float(v), fmt, rounding=rounding, overflow=policy, random=int(r))
        for v, r in zip(values[:3000], random[:3000], strict=True)
    ])  # fmt: skip
    sample = ours[:3000].astype(np.int64)
    if overflow == "error":  # saturated where the reference would raise
        too_big = np.array([abs(float(v)) > fmt.max for v in values[:3000]]) & finite[:3000]
        sample, expected = sample[~too_big], expected[~too_big]
    np.testing.assert_array_equal(sample, expected)


@pytest.mark.parametrize("dropped", [14, 15])
@pytest.mark.parametrize("flagged", [False, True])
def test_table_encode_agrees(dropped, flagged):
    table = RNG.integers(0, 2**16, 2 ** (33 - dropped), dtype=np.uint64).astype(np.uint16)
    flags = RNG.random(table.size) < 0.3 if flagged else None

    def call():
        out = np.empty(HOSTILE_BITS.size, np.uint16)
        count = _kernels.table_encode(HOSTILE_BITS, dropped, table, out, flags)
        return out, count

    (numpy_out, numpy_count), (numba_out, numba_count) = run_both(call)
    np.testing.assert_array_equal(numba_out, numpy_out)
    assert numba_count == numpy_count
    assert (numpy_count > 0) == flagged


def test_float32_rounded_to_odd_agrees_and_rounds_to_odd():
    f32 = np.finfo(np.float32)
    edges = np.array([0.0, f32.max, f32.smallest_subnormal, f32.smallest_normal, 1.0, 3.0, 2.0**-150, 2.0**128],
                     dtype=np.float64)  # fmt: skip
    near = np.concatenate([np.nextafter(edges, np.inf), np.nextafter(edges, 0), edges, (edges + edges * 2**-24)])
    specials = np.array([np.inf, np.nan, 1e300, 5e-324], np.float64)
    payloads = np.array([0x7FF0000000000001, 0x7FF8000020000000, 0x7FF4000000000001], np.uint64).view(np.float64)
    values = np.concatenate([RNG.integers(0, 2**64, 50_000, dtype=np.uint64).view(np.float64),
                             RNG.standard_normal(20_000) * 100, near, specials, payloads])  # fmt: skip
    values = np.concatenate([values, -values])

    def call():
        out = np.empty(values.size, np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # as the codec calls it: the policies judge overflow
            _kernels.float32_rounded_to_odd(values, out)
        return out

    numpy_out, numba_out = run_both(call)
    np.testing.assert_array_equal(numba_out.view(np.uint32), numpy_out.view(np.uint32))
    result = numpy_out.astype(np.float64)
    finite = np.isfinite(values)
    inexact = finite & (result != values)
    assert np.all(numpy_out.view(np.uint32)[inexact] & 1)  # every inexact result odd...
    beyond = inexact & (np.abs(values) > f32.max)
    assert np.all(np.abs(result[beyond]) == f32.max)  # truncated to the largest finite value, which is odd
    inside = inexact & ~beyond
    with np.errstate(over="ignore"):  # the gap above float32's largest value: infinity, which is loose but true
        ulp = np.spacing(np.abs(numpy_out[inside])).astype(np.float64)
    low, high = result[inside] - ulp, result[inside] + ulp  # exact in float64
    assert np.all((low < values[inside]) & (values[inside] < high))  # ...and a neighbour of the value
    assert np.array_equal(np.isnan(numpy_out), np.isnan(values)) and np.all(
        result[finite & ~inexact] == values[finite & ~inexact]
    )
    assert np.array_equal(np.signbit(numpy_out), np.signbit(values))


@pytest.mark.parametrize("flagged", [False, True])
def test_stochastic_table_encode_agrees_and_wraps_at_2_to_32(flagged):
    table = RNG.integers(0, 256, 2**17, dtype=np.uint64).astype(np.uint8)
    flags = RNG.random(table.size) < 0.3 if flagged else None
    random = RNG.integers(0, 2**32, HOSTILE_BITS.size, dtype=np.uint64).astype(np.uint32)
    random[-1] = 0  # ~0 >> shift added to 0xFFFFFFFF wraps around

    def call():
        out = np.empty(HOSTILE_BITS.size, np.uint8)
        count, where = _kernels.stochastic_table_encode(
            HOSTILE_BITS, random, 12, 15, table, out, flags, 0x00800000, 0x7F7F0000
        )
        return out, count, where

    (numpy_out, numpy_count, numpy_where), (numba_out, numba_count, numba_where) = run_both(call)
    np.testing.assert_array_equal(numba_out, numpy_out)
    np.testing.assert_array_equal(numba_where, numpy_where)
    assert numba_count == numpy_count
    assert numpy_where.size > 0


@pytest.mark.parametrize("key, first", [(0, 0), (0xDEADBEEF, 2**32 - 40_000), (0xFFFFFFFF, 123)])
def test_random_bits_agree(key, first):
    def call():
        out = np.empty(40_000, np.uint32)
        _kernels.random_bits(key, first, out)
        return out

    numpy_bits, numba_bits = run_both(call)
    np.testing.assert_array_equal(numba_bits, numpy_bits)


@pytest.mark.parametrize("code_dtype, size", [(np.uint8, 256), (np.uint16, 2**16)])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64])
def test_gather_agrees(code_dtype, size, value_dtype):
    table = RNG.standard_normal(size).astype(value_dtype)
    codes = RNG.integers(0, size, 10_001, dtype=np.uint64).astype(code_dtype)  # odd: numpy's pair path has a tail
    pairs = _pairs_of(table) if code_dtype == np.uint8 else None

    def call():
        out = np.empty(codes.size, value_dtype)
        _kernels.gather(table, codes[::-1], out, pairs)  # strided codes
        return out

    numpy_values, numba_values = run_both(call)
    np.testing.assert_array_equal(numba_values, numpy_values)
    np.testing.assert_array_equal(numpy_values, table[codes[::-1]])


def _pairs_of(table):
    """The values of both bytes of each uint16, laid out as the codec's numpy decoder wants them."""
    index = np.arange(2**16)
    pairs = np.stack([table[index & 0xFF], table[index >> 8]], axis=1)
    pairs = np.ascontiguousarray(pairs[:, ::-1] if sys.byteorder == "big" else pairs)
    return pairs.view(np.uint64).reshape(-1) if table.dtype == np.float32 else pairs


@pytest.mark.parametrize("name", ["row_max", "row_min", "row_absmax", "row_strongest"])
@pytest.mark.parametrize("width", [16, 32, 48])
def test_row_reductions_agree_and_propagate_nan(name, width):
    rows = RNG.standard_normal((3, 50, width)).astype(np.float32)
    rows[0, 0, 7] = np.nan
    rows[0, 1, 0] = np.nan
    rows[1, 2, :] = 0.0
    rows[1, 3, 3], rows[1, 3, 9] = -9.0, 9.0  # a tie between signs: the first wins
    rows[1, 4, 3], rows[1, 4, 9] = 9.0, -9.0
    reduce = getattr(quant_kernels, name)
    numpy_result, numba_result = run_both(lambda: reduce(rows))
    assert numpy_result.shape == numba_result.shape == (3, 50, 1)
    np.testing.assert_array_equal(numba_result, numpy_result)
    assert np.isnan(numba_result[0, :2]).all()
    if name == "row_strongest":
        assert numba_result[1, 3, 0] == -9.0 and numba_result[1, 4, 0] == 9.0
    expected = {"row_max": np.max, "row_min": np.min}.get(name)
    if expected is not None:
        np.testing.assert_array_equal(numba_result, expected(rows, axis=-1, keepdims=True))


@pytest.mark.slow
def test_small_calls_never_import_numba():
    code = (
        "import sys, numpy as np, floatfmt; from floatfmt import _backend; "
        "floatfmt.encode(np.ones({n}, np.float32), 'e4m3'); "
        "(c := _backend._compiler) is None or c.join(); "  # under auto numba loads in the background
        "print('numba' in sys.modules)"
    )
    env = dict(os.environ, FLOATFMT_KERNELS="auto")
    for size, imported in ((10, "False"), (_backend.COMPILED_MIN_SIZE, "True")):
        result = subprocess.run([sys.executable, "-c", code.format(n=size)], env=env, capture_output=True, text=True)
        assert result.stdout.strip() == imported, result.stderr


@pytest.mark.slow
def test_an_unknown_backend_in_the_environment_is_refused_clearly():
    code = "import numpy as np, floatfmt; floatfmt.encode(np.ones(1 << 15, np.float32), 'e4m3')"
    env = dict(os.environ, FLOATFMT_KERNELS="cuda")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "FLOATFMT_KERNELS='cuda' is not one of auto, numpy, numba" in result.stderr


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="choose one of auto, numpy, numba"):
        floatfmt.set_backend("cython")


@pytest.mark.slow
def test_environment_chooses_and_a_missing_numba_is_explained():
    code = "import floatfmt; print(floatfmt.backend())"
    env = dict(os.environ, FLOATFMT_KERNELS="numpy")
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "numpy"
    )
    hide_numba = "import sys; sys.modules['numba'] = None; " + code
    env["FLOATFMT_KERNELS"] = "auto"
    result = subprocess.run([sys.executable, "-c", hide_numba], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "numpy"
    env["FLOATFMT_KERNELS"] = "numba"
    result = subprocess.run([sys.executable, "-c", hide_numba], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and 'pip install "floatfmt[fast]"' in result.stderr


@pytest.mark.parametrize("name", ["row_max", "row_min"])
def test_zeros_of_both_signs_reduce_to_the_first_one(name):
    rows = np.array([[0.0, -0.0, 1.0, 2.0], [-0.0, 0.0, 1.0, 2.0], [1.0, 2.0, -0.0, 0.0], [0.0] * 3 + [-0.0]])
    rows = rows.astype(np.float32)
    if name == "row_max":
        rows = -rows[:, ::-1].copy()  # the same ties, mirrored
    numpy_result, numba_result = run_both(lambda: getattr(quant_kernels, name)(rows))
    first_zero = [row[list(row).index(0.0)] for row in rows]
    for result in (numpy_result, numba_result):
        np.testing.assert_array_equal(np.signbit(result[:, 0]), np.signbit(first_zero))


def test_codebook_encode_agrees_on_midpoints_and_nan():
    book = floatfmt.get_scheme("nf4").codebook
    base, threshold = codebook_tables(book)
    midpoints = ((np.asarray(book[1:], np.float64) + np.asarray(book[:-1], np.float64)) / 2).astype(np.float32)
    values = np.concatenate(
        [
            RNG.uniform(-1, 1, (40, 64)).astype(np.float32).reshape(-1),
            midpoints,
            np.nextafter(midpoints, np.float32(2)),
            np.array([np.nan, -1.0, 1.0, 0.0, -0.0], np.float32),
        ]
    )

    def call():
        out = np.empty(values.size, np.uint8)
        quant_kernels.codebook_encode(values, base, threshold, out)
        return out

    numpy_codes, numba_codes = run_both(call)
    np.testing.assert_array_equal(numba_codes, numpy_codes)
    nearest_below = np.searchsorted(midpoints, values, side="left")  # on a midpoint: the lower entry
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(numpy_codes[finite], nearest_below[finite])


def _codes(x: np.ndarray) -> np.ndarray:
    """Fallback codes for the sub-blocks whose scale is 0."""
    return (np.arange(x.size, dtype=np.int32) % 7).reshape(-1, 2, 16)


def _awkward_rows(rows: int, width: int, seed: int) -> np.ndarray:
    """Sub-blocks as the K-quant searches meet them: scales far apart, zero, constant, one-signed, tiny, huge."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, width)) * rng.uniform(1e-6, 1e3, (rows, 1))).astype(np.float32)
    x[0], x[1], x[2], x[3] = 0, -2.5, 3.0, np.linspace(0, 1, width)
    x[4] = 1e-30
    x[5, ::2] = 7e4
    x[6] = np.round(x[6] * 4) / 4  # values on rounding ties
    x[7, 0] = -0.0
    return x


@pytest.mark.parametrize("width", [16, 13])
def test_the_scale_search_agrees_for_every_sub_block_width_and_a_partial_block_of_lanes(width):
    """q2_k's sub-blocks of 16, and a width the compiled loop's unrolled chunks do not divide; 300 rows fill the
    lanes of the last block only in part."""
    search = kquants.make_qkx2_quants
    x = _awkward_rows(300, width, 5)
    w = np.abs(np.random.default_rng(5).standard_normal(x.shape)).astype(np.float32)
    for args in [(x, w, 15, -1.0, 0.1, 20), (x, np.abs(x), 3, -0.5, 0.1, 15, True)]:
        for a, b in zip(search.numpy(*args), search.compiled()(*args), strict=True):
            np.testing.assert_array_equal(a.view(np.uint32) if a.dtype == np.float32 else a,
                                          b.view(np.uint32) if b.dtype == np.float32 else b)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("make_qkx2_quants", lambda x, w: (x, w, 15, -1.0, 0.1, 20)),
        ("make_qkx2_quants", lambda x, w: (x, np.abs(x), 3, -0.5, 0.1, 15, True)),
        ("make_qx_quants", lambda x, w: (x[:, :16].copy(), 4, None)),
        ("make_qx_quants", lambda x, w: (x[:, :16].copy(), 32, w[:, :16].copy())),
        ("make_qp_quants", lambda x, w: (np.abs(x[:, :16]), 63, w[:, :16].copy())),
        ("make_q3_quants", lambda x, w: (x[:, :16].copy(), 4)),
        ("_iq4_blocks", lambda x, w: (x, w, 7)),
        ("_iq4_blocks", lambda x, w: (x, x * x, 0)),
        ("requantize", lambda x, w: (x.reshape(-1, 2, 16), w[:, :2] * 1e-3, None, -32, 31, 32, _codes(x))),
        ("requantize", lambda x, w: (x.reshape(-1, 2, 16), w[:, :2] * 1e-2, w[:, 2:4], 0, 15, 0, _codes(x))),
        ("q8_k_codes", lambda x, w: (x,)),
        ("_pack_trits", lambda x, w: ((np.abs(x[:, :15]) * 7).astype(np.int32).reshape(-1, 5, 3) % 3, 5, 3)),
        ("_pack_trits", lambda x, w: ((np.abs(x[:, :16]) * 7).astype(np.int32).reshape(-1, 4, 4) % 3, 4, 4)),
        ("_ternary", lambda x, w: (x,)),
        ("mxfp4_codes", lambda x, w: (x, np.ldexp(np.float32(1), np.arange(x.shape[0]) % 40 - 30).astype(np.float32))),
    ],
)
def test_k_quant_searches_agree_bit_for_bit(name, arguments):
    search = getattr(kquants, name)
    for seed in range(3):
        x = _awkward_rows(512, 32, seed)
        w = np.abs(np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)
        w[8] = 0  # rows whose weights are all zero: zero determinants
        args = arguments(x, w)
        if name == "requantize":
            args[1][::5] = 0  # sub-blocks without a scale keep their fallback codes
        ours, theirs = search.numpy(*args), search.compiled()(*args)
        if not isinstance(ours, tuple):
            ours, theirs = (ours,), (theirs,)
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.view(np.uint32) if a.dtype == np.float32 else a,
                                          b.view(np.uint32) if b.dtype == np.float32 else b)  # fmt: skip


@pytest.mark.parametrize(("nmax", "rmin", "nstep"), [(15, -1.0, 20), (31, -0.5, 15)])
def test_q45_k_roundtrip_agrees_bit_for_bit_and_with_the_bytes(nmax, rmin, nstep):
    """The fused Q4_K / Q5_K round trip (no block bytes) against its numpy twin and against dequantizing the
    quantized bytes, on awkward super-blocks (ties, zeros, constant, tiny, huge, scales far apart)."""
    name = "q4_k" if nmax == 15 else "q5_k"
    for seed in range(3):
        x = _awkward_rows(512, 32, seed).reshape(-1, 256)
        x[9] = 6e4  # a super-block whose fp16 scale is just representable
        x[10, :64] = np.float32(2.0**-130) * np.arange(64)  # subnormals: the search's scale overflows, codes stray
        ours, theirs = np.empty_like(x), np.empty_like(x)
        assert kquants.q45_k_roundtrip.numpy(x, nmax, rmin, 0.1, nstep, ours)
        assert kquants.q45_k_roundtrip.compiled()(x, nmax, rmin, 0.1, nstep, theirs)
        np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))
        stored = kquants.DEQUANTIZERS[name](kquants.QUANTIZERS[name][2](x, None))
        np.testing.assert_array_equal(ours.view(np.uint32), stored.view(np.uint32))


def test_q45_k_roundtrip_reports_a_scale_beyond_float16():
    x = np.full((2, 256), 1e9, dtype=np.float32)
    x[:, ::3] = -1e9
    assert not kquants.q45_k_roundtrip.compiled()(x, 15, -1.0, 0.1, 20, np.empty_like(x))
    with pytest.raises(ValueError, match="float16"):
        kquants.q45_k_roundtrip.numpy(x, 15, -1.0, 0.1, 20, np.empty_like(x))
    with pytest.raises(ValueError, match="float16"):
        floatfmt.quant.approximate(np.tile(x, (64, 1)), "q4_k")  # the fused path hands over to the one that says so


def test_half_rounds_as_numpy_does_on_every_float16_tie():
    from floatfmt.quant.rules._kquants_numba import _half

    halves = np.arange(0, 0x7BFF, dtype=np.uint16).view(np.float16).astype(np.float64)
    ties = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)
    values = np.concatenate([
        ties, np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(np.inf)),
        np.random.default_rng(0).random(100_000).astype(np.float32) * np.float32(7e4),
        np.float32([0, 2**-25, 2**-24, 65504, 65519.996, 65520, 1e30]),
    ])  # fmt: skip
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).astype(np.float32)
    got = np.array([_half(v) for v in values], dtype=np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("size", [0, 1, 7, 8, 127, 128, 129, 1000, 65536, 65541])
def test_error_sums_agree_bit_for_bit_in_numpy_and_numba(size):
    rng = np.random.default_rng(size)
    reference = (rng.standard_normal(size) * rng.choice([1e-30, 1.0, 1e30], size)).astype(np.float32)
    approx = floatfmt.round(reference, "e4m3", overflow="saturate")
    if size > 20:
        reference[3], approx[5], approx[7], reference[11] = np.nan, np.inf, -np.inf, -0.0
        approx[::9] = 0  # flushed
    for scale in (1.0, 0.0):  # an approximation of zeros has no top and nothing at it
        scaled = approx.copy()
        scaled[np.isfinite(scaled)] *= np.float32(scale)
        ours, theirs = (
            quant_kernels.error_sums.numpy(reference, scaled),
            quant_kernels.error_sums.compiled()(reference, scaled),
        )
        np.testing.assert_array_equal(ours[0].view(np.uint64), theirs[0].view(np.uint64))
        assert ours[1:] == tuple(theirs[1:])
        assert scale == 0 or ours[4] == float(np.max(np.abs(approx[np.isfinite(approx)]), initial=0.0))


@pytest.mark.parametrize("element", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float6_e3m2fn", "int4", "int8"])
@pytest.mark.parametrize("divide", [False, True])
def test_block_roundtrip_agrees_on_ties_subnormals_zeros_and_overflow(element, divide):
    from floatfmt.quant.rules._blocks import element_rounding

    scheme = floatfmt.Scheme("probe", element, (1, 32), "float32", "amax")
    rounding = element_rounding(scheme)
    assert rounding is not None
    rng = np.random.default_rng(len(element))
    rows = 48
    padded = (rng.standard_normal((rows, 64)) * rng.choice([1e-40, 1e-6, 1.0, 1e3], (rows, 1))).astype(np.float32)
    padded[0, :32] = np.arange(32, dtype=np.float32) * np.float32(0.25) - 4  # ties between grid points
    padded[1, :32] = -0.0
    by = rng.uniform(0.01, 10, (rows, 2)).astype(np.float32)
    by[2, 0] = 0  # a zero divisor (or factor): every element 0
    dequant = rng.uniform(0.5, 2, (rows, 2)).astype(np.float32)
    args = (padded, by, divide, 1, 32, rounding.integer, rounding.shift, rounding.smallest_normal, rounding.magic,
            rounding.largest, rounding.smallest, rounding.positive_zero, dequant, np.float32(0.75))  # fmt: skip
    ours, theirs = np.empty_like(padded), np.empty_like(padded)
    roundtrip = quant_kernels.block_roundtrip
    assert roundtrip.numpy(*args, ours) == roundtrip.compiled()(*args, theirs) == 0
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    padded[5, 7] = np.inf  # not finite once scaled: both say so, and the caller takes the codes' path
    assert roundtrip.numpy(*args, ours) == roundtrip.compiled()(*args, theirs) == 1


BACKGROUND_COMPILE = """
import os, numpy as np, floatfmt
from floatfmt import _backend, _kernels
x = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32) * 100
def wait():  # for the compiling thread, if one is running (it ends once it has nothing left to do)
    thread = _backend._compiler
    thread is None or thread.join(300)
with floatfmt.using_backend("numpy"):
    expected = floatfmt.encode(x, "e4m3")
assert floatfmt.encode(x, "e4m3").tobytes() == expected.tobytes()  # numpy's loop while numba loads in the background
twin, out = _kernels.half_encode, np.empty(x.size, np.uint16)
twin(x, out)
if {fork}:  # a child forked while the parent compiles gives the same bits and never waits on numba's locks
    pid = os.fork()
    if pid == 0:
        same = floatfmt.encode(x, "e4m3").tobytes() == expected.tobytes()
        twin(x, out)
        if _backend._frozen:  # forked while the parent compiled: numpy's loops only, nothing scheduled
            same = same and _backend._compiler is None
        else:  # forked before the parent's thread began: the child compiles itself
            wait()
            same = same and _backend._compiled_function(twin.compiled_module, "half_encode", (x, out)) is not None
        os._exit(0 if same else 3)
    assert os.waitpid(pid, 0)[1] == 0
wait()
assert _backend._compiled_function(twin.compiled_module, "half_encode", (x, out)) is not None
assert floatfmt.encode(x, "e4m3").tobytes() == expected.tobytes()  # the compiled loop now: the same bits
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True])
def test_auto_compiles_in_the_background_and_runs_numpy_meanwhile(fork):
    pytest.importorskip("numba")
    env = dict(os.environ, FLOATFMT_KERNELS="auto")
    code = BACKGROUND_COMPILE.format(fork=fork)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.stdout.strip() == "ok", result.stderr


READY_AFTER_NUMBA = """
import numpy as np, floatfmt
from floatfmt import _backend, _kernels
x = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32)
twin, out = _kernels.half_encode, np.empty(x.size, np.uint16)
with floatfmt.using_backend("numba"):
    twin(x, out)
ready = _backend._compiled_function(twin.compiled_module, "half_encode", (x, out)) is twin.compiled()
print(ready and _backend._compiler is None)  # nothing was left to compile in the background
"""


@pytest.mark.slow
def test_a_loop_compiled_under_numba_is_ready_for_auto_at_once():
    """A warm-up under ``using_backend("numba")`` leaves the loops it compiled to the ``auto`` calls after it."""
    pytest.importorskip("numba")
    env = dict(os.environ, FLOATFMT_KERNELS="auto")
    result = subprocess.run([sys.executable, "-c", READY_AFTER_NUMBA], env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.stdout.strip() == "True", result.stderr


FORK_WHILE_COMPILING = """
import os, numpy as np, floatfmt
from floatfmt import _backend
x = np.random.default_rng(0).standard_normal(1 << 18).astype(np.float32) * 100
with floatfmt.using_backend("numpy"):
    expected = floatfmt.encode(x, "e4m3").tobytes()
with _backend._compiling:  # as the compiling thread holds it
    pid = os.fork()
    if pid == 0:
        same = floatfmt.encode(x, "e4m3").tobytes() == expected
        os._exit(0 if same and _backend._frozen and _backend._compiler is None else 3)
assert os.waitpid(pid, 0)[1] == 0
print("ok")
"""


@pytest.mark.slow
def test_a_child_forked_mid_compile_keeps_to_numpy_and_never_waits():
    env = dict(os.environ, FLOATFMT_KERNELS="auto")
    result = subprocess.run(
        [sys.executable, "-c", FORK_WHILE_COMPILING], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.stdout.strip() == "ok", result.stderr


def _hostile_block_scales(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Block scales and shifts ``(3, 700)`` over many magnitudes, with infinities, NaN and -0.0 among them."""
    scales = (rng.standard_normal((3, 700)) * rng.choice([1e-30, 1.0, 1e30], (3, 700))).astype(np.float32)
    shifts = (rng.standard_normal((3, 700)) * 1e3).astype(np.float32)
    scales[0, :3], shifts[1, :3] = [np.inf, np.nan, -0.0], [np.inf, -np.inf, np.nan]
    return scales, shifts


def test_table_times_scale_loops_agree_bit_for_bit():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (3, 700, 32)).astype(np.uint8)
    table = (rng.standard_normal(256) * 8).astype(np.float32)
    scales, _ = _hostile_block_scales(rng)
    loop = quant_kernels.lookup_scale
    ours, theirs = np.empty(codes.shape, np.float32), np.empty(codes.shape, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        assert loop.numpy(codes, table, scales, ours) and loop.compiled()(codes, table, scales, theirs)
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    short = table[:100]  # a code beyond the table, in the last block only: both refuse
    inside = codes % 100
    inside[-1, -1, -1] = 100
    assert not loop.numpy(inside, short, scales, ours) and not loop.compiled()(inside, short, scales, ours)
    assert loop.numpy(codes % 100, short, scales, ours) and loop.compiled()(codes % 100, short, scales, theirs)
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("offset", [0, 8, 16])
@pytest.mark.parametrize("shift", [False, True])
def test_offset_times_scale_loops_equal_the_table_they_stand_for(shift, offset):
    """Both twins of ``offset_scale``/``offset_scale_shift`` against ``lookup_scale`` with the table
    ``int8(byte) - offset``, on every byte and hostile scales: the same bits."""
    rng = np.random.default_rng(offset + shift)
    codes = rng.integers(0, 256, (3, 700, 32)).astype(np.uint8)
    codes[0, 0, :] = [0, 1, 7, 8, 15, 16, 31, 127, 128, 129, 255, *range(21)]
    scales, shifts = _hostile_block_scales(rng)
    table = (np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int32) - offset).astype(np.float32)
    expected = np.empty(codes.shape, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        assert quant_kernels.lookup_scale.numpy(codes, table, scales, expected)
        if shift:
            expected += shifts[:, :, None]
        loop = quant_kernels.offset_scale_shift if shift else quant_kernels.offset_scale
        extra = (shifts,) if shift else ()
        for run in (loop.numpy, loop.compiled()):
            ours = np.full(codes.shape, np.nan, np.float32)
            run(codes, offset, scales, *extra, ours)
            np.testing.assert_array_equal(ours.view(np.uint32), expected.view(np.uint32))


TABLE_FORMATS = [name for name in floatfmt.formats() if floatfmt.get_format(name).bits <= 8]


@pytest.mark.parametrize("name", TABLE_FORMATS)
def test_the_small_calls_steps_equal_the_table_for_every_float32(name):
    """Both lookups are constant between the points checked here, so agreeing on them is agreeing on all 2**32
    inputs: the key, ``bits >> dropped`` with the sticky bit OR-ed in, takes one value at the first bits of each
    bucket of ``2**dropped`` and another on the rest of it (or one on all of it), and the steps begin only
    where a key does. Each format with and without overflow flags; e4m3 in every deterministic mode (the steps
    are built the same way whatever the table holds)."""
    from floatfmt import codec

    modes = [("nearest_even", "ieee"), ("toward_zero", "error")]
    if name == "float8_e4m3fn":
        roundings = ["nearest_even", "nearest_away", "toward_zero", "up", "down", "odd"]
        modes = [(r, o) for r in roundings for o in ["ieee", "saturate", "error"]]
    for rounding, overflow in modes:
        kernel = codec._encode_plan(name, np.dtype(np.float32), rounding, overflow, "ml_dtypes").kernel
        assert isinstance(kernel, codec._TableKernel)
        _check_steps(kernel)


def _check_steps(kernel) -> None:
    dropped = kernel.dropped
    buckets = np.arange(1 << (32 - dropped), dtype=np.uint64) << np.uint64(dropped)
    last = buckets + np.uint64((1 << dropped) - 1)
    points = np.unique(np.concatenate([buckets, np.minimum(buckets + 1, last), last]).astype(np.uint32))
    steps = _kernels.key_steps(kernel.table, dropped, kernel.overflow_flags)
    ours, theirs = np.empty(points.size, kernel.table.dtype), np.empty(points.size, kernel.table.dtype)
    flagged = _kernels.steps_encode(points, steps, ours)
    assert flagged == _kernels.table_encode.numpy(points, dropped, kernel.table, theirs, kernel.overflow_flags)
    np.testing.assert_array_equal(ours, theirs)
    if kernel.overflow_flags is not None:  # each value's flag, not only their count
        step = steps[0].searchsorted(points, side="right")
        np.testing.assert_array_equal(steps[2][step], kernel.overflow_flags[_kernels._key(points, dropped)])


def test_map_chunks_gives_every_piece_once_in_order_however_the_threads_take_them():
    import threading
    import time

    from floatfmt._parallel import map_chunks

    seen: list[tuple[int, int, str]] = []

    def work(start: int, stop: int) -> tuple[int, int]:
        time.sleep(0.002 if start % 3 else 0.0)  # uneven pieces: the threads take different numbers of them
        seen.append((start, stop, threading.current_thread().name))
        return start, stop

    results = map_chunks(work, 1000, 7, item_elements=1 << 12)
    assert results == [(s, min(s + 7, 1000)) for s in range(0, 1000, 7)]
    assert sorted(piece[:2] for piece in seen) == results  # each piece exactly once
    assert all(name.startswith("floatfmt") for *_, name in seen)  # on the pool's threads


def test_map_chunks_stops_taking_pieces_after_a_failure_and_raises_it():
    from floatfmt._parallel import map_chunks

    done: list[int] = []

    def work(start: int, stop: int) -> None:
        if start == 70:
            raise ValueError("piece 10 is bad")
        done.append(start)

    with pytest.raises(ValueError, match="piece 10 is bad"):
        map_chunks(work, 7000, 7, item_elements=1 << 12)
    assert len(done) < 999  # the other threads stopped instead of finishing the thousand pieces


def test_map_chunks_inside_a_piece_runs_serially():
    import threading

    from floatfmt._parallel import map_chunks

    def inner(start: int, stop: int) -> str:
        return threading.current_thread().name

    def outer(start: int, stop: int) -> set[str]:
        return set(map_chunks(inner, 64, 1, item_elements=1 << 20)) | {threading.current_thread().name}

    for names in map_chunks(outer, 8, 1, item_elements=1 << 20):
        assert len(names) == 1  # the nested pieces ran on the thread that ran the outer one


WAIT_FOR_LOOPS = """
import numpy as np, floatfmt
from floatfmt import _backend
x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
floatfmt.encode(x, "e4m3")  # under auto: numpy's loop, the compiled one asked for
assert _backend.wait_for_loops(600) and not _backend._compiler and _backend._requests.empty()
assert any(key[1] == "table_encode" for key in _backend._ready)
print("ok")
"""


@pytest.mark.slow
def test_wait_for_loops_returns_once_the_loops_asked_for_are_ready():
    pytest.importorskip("numba")
    env = dict(os.environ, FLOATFMT_KERNELS="auto")
    command = [sys.executable, "-c", WAIT_FOR_LOOPS]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.stdout.strip() == "ok", result.stderr


NEAREST_FORMATS = ["float8_e4m3fn", "float8_e4m3", "float8_e5m2", "float8_e3m4", "float6_e2m3fn", "float6_e3m2fn",
                   "float4_e2m1fn"]  # fmt: skip


def test_the_nearest_even_arithmetic_covers_the_small_signed_formats_and_nothing_else():
    from floatfmt import codec

    covered = []
    for name in floatfmt.formats():
        fmt = floatfmt.get_format(name)
        if isinstance(fmt, floatfmt.FloatFormat) and fmt.bits <= 8:
            kernel = codec._TableKernel(fmt, "nearest_even", "saturate")
            if kernel.nearest is not None:
                covered.append(fmt.name)
            assert codec._TableKernel(fmt, "toward_zero", "saturate").nearest is None
            assert codec._TableKernel(fmt, "nearest_even", "error").nearest is None  # it counts overflows
    assert sorted(covered) == sorted(NEAREST_FORMATS)


CUSTOM_NEAREST = ["e3m3", "e2m5", "e5m1", "e4m2", "e6m1", "e2m2", "e3m1", "e2m4", "e4m1"]


def test_custom_formats_take_the_arithmetic_unless_they_have_no_mantissa():
    from floatfmt import codec

    for name in CUSTOM_NEAREST:
        assert codec._TableKernel(floatfmt.get_format(name), "nearest_even", "ieee").nearest is not None
    for name in ("e5m0", "e3m0"):
        assert codec._TableKernel(floatfmt.get_format(name), "nearest_even", "ieee").nearest is None


@pytest.mark.parametrize("overflow", ["ieee", "saturate"])
@pytest.mark.parametrize("name", NEAREST_FORMATS + CUSTOM_NEAREST)
def test_nearest_encode_agrees_with_the_table_on_every_key(name, overflow):
    """The arithmetic twin against the table on both float32s that make each key (the lowest key bit as the first
    dropped bit, and as the sticky bit), their negatives, and random bits: the codes of every bucket of floats."""
    from floatfmt import codec

    pytest.importorskip("numba")
    kernel = codec._TableKernel(floatfmt.get_format(name), "nearest_even", overflow)
    assert kernel.nearest is not None
    keys = np.arange(kernel.table.size, dtype=np.uint64)
    first = (keys << np.uint64(kernel.dropped)).astype(np.uint32)
    sticky = (((keys >> np.uint64(1)) << np.uint64(kernel.dropped + 1)) | np.uint64(1)).astype(np.uint32)
    sticky = sticky[(keys & np.uint64(1)) == 1]
    random = np.random.default_rng(len(name)).integers(0, 2**32, 1 << 16, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([first, sticky, random])
    ours, theirs = np.empty(bits.size, np.uint8), np.empty(bits.size, np.uint8)
    loop = _kernels.nearest_encode
    assert loop.numpy(bits, kernel.dropped, kernel.table, *kernel.nearest, ours) == 0
    assert loop.compiled()(bits, kernel.dropped, kernel.table, *kernel.nearest, theirs) == 0
    wrong = np.flatnonzero(ours != theirs)
    shown = zip(bits[wrong[:5]], ours[wrong[:5]], theirs[wrong[:5]], strict=True)
    assert not wrong.size, [(hex(int(b)), int(table), int(arithmetic)) for b, table, arithmetic in shown]
