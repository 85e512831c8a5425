"""Quantization schemes: reference agreement, scale rules from the spec text, storage bytes, error bounds."""

from __future__ import annotations

import hashlib
import math
import re

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import floatfmt
from floatfmt.quant.rules._blocks import block_shape
from floatfmt.quant.rules.bitsandbytes import DYNAMIC_CODEBOOK, NF4_CODEBOOK, codebook_tables, dynamic_map_search
from floatfmt.quant.tensor import needs_tensor_amax, row_block

pytestmark = pytest.mark.usefixtures("each_kernel_backend")  # numpy's loops and numba's

GGUF = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


def awkward_matrix(rows: int = 64, cols: int = 256, seed: int = 0) -> np.ndarray:
    """Gaussian rows of very different scales, plus blocks that are zero, constant, tiny, huge or one-signed."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * rng.uniform(1e-3, 10, (rows, 1))).astype(np.float32)
    w[0, :32] = 0
    w[1, :32] = 5.0
    w[2, :32] = -3.0
    w[3, :32] = rng.uniform(0, 1, 32)
    w[4, :32] = 1e-30
    w[5, :32] = rng.standard_normal(32) * 3e3
    w[6, :32] = np.linspace(-8, 7, 32)
    return w


@pytest.mark.parametrize("name", GGUF)
def test_gguf_types_are_byte_identical_to_gguf_py(name):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize as gguf_dequantize
    from gguf.quants import quantize as gguf_quantize

    qtype = getattr(gguf.GGMLQuantizationType, name.upper())
    for seed in range(3):
        w = awkward_matrix(seed=seed)
        q = floatfmt.quantize(w, name)
        expected = gguf_quantize(w, qtype)
        assert q.to_bytes() == expected.tobytes()
        np.testing.assert_array_equal(q.dequantize(), gguf_dequantize(expected, qtype))


@pytest.mark.parametrize("name", ["q4_0", "q5_0"])
def test_gguf_strongest_value_is_the_first_on_ties_as_in_gguf_py(name):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import quantize as gguf_quantize

    w = np.zeros((4, 32), dtype=np.float32)
    w[0, 5], w[0, 10] = -3.0, 3.0  # -3 first: d > 0
    w[1, 5], w[1, 10] = 3.0, -3.0  # +3 first: d < 0
    w[2, :] = np.linspace(-1, 1, 32, dtype=np.float32)
    w[3, ::2], w[3, 1::2] = 0.5, -0.5
    expected = gguf_quantize(w, getattr(gguf.GGMLQuantizationType, name.upper()))
    assert floatfmt.quantize(w, name).to_bytes() == expected.tobytes()
    scales = floatfmt.quantize(w, name).scales.reshape(-1)
    assert scales[0] > 0 > scales[1]


@pytest.mark.parametrize("name", GGUF)
def test_gguf_blocks_with_zeros_of_both_signs_match_ggml(name):
    """Zeros of either sign as a block's extreme store what ggml's C loops store: the first one where it compares
    them (the minimum of q4_1/q5_1), and for a block of zeros in q4_0/q5_0 the scale -0 (its loop keeps the initial
    +0 and divides it by -8). gguf-py agrees except on the latter, where it takes the first zero's sign."""
    from ggml_reference import quantize as ggml_quantize

    gguf = pytest.importorskip("gguf")
    from gguf.quants import quantize as gguf_quantize

    w = np.abs(np.random.default_rng(3).standard_normal((4, 32))).astype(np.float32)
    w[0, 3], w[0, 9] = 0.0, -0.0
    w[1, 3], w[1, 9] = -0.0, 0.0
    w[2, :], w[2, 5] = 0.0, -0.0
    w[3, :], w[3, 5] = -0.0, 0.0
    qtype = getattr(gguf.GGMLQuantizationType, name.upper())
    for signed in (w, -w):
        ours = floatfmt.quantize(signed, name).to_bytes()
        assert ours == ggml_quantize(name, signed)
        assert ours[:36] == gguf_quantize(signed[:2], qtype).tobytes()[:36]  # blocks that are not all zeros


@pytest.mark.parametrize("name", GGUF)
def test_gguf_blocks_too_small_for_a_float32_reciprocal_get_zero_codes(name):
    """gguf-py casts infinity or NaN to integers there (platform-dependent bytes); the values are 0 either way."""
    w = np.zeros((2, 32), dtype=np.float32)
    w[0, :3] = [1e-38, -3e-39, 1e-45]  # 1 / d overflows float32
    w[1, :] = 1.0
    q = floatfmt.quantize(w, name)
    zero_code = {"q8_0": 0, "q4_0": 8, "q5_0": 16, "q4_1": 0, "q5_1": 0}[name]
    assert (q.codes.reshape(2, 32)[0] == zero_code).all()
    np.testing.assert_array_equal(q.dequantize()[0], 0.0)
    np.testing.assert_allclose(q.dequantize()[1], 1.0, rtol=1e-3)  # the other block is untouched


def test_gguf_scales_beyond_float16_are_an_error():
    with pytest.raises(ValueError, match="exceed float16's range"):
        floatfmt.quantize(np.full((1, 32), 1e7, dtype=np.float32), "q8_0")


def test_gguf_needs_whole_blocks():
    with pytest.raises(ValueError, match="whole 32-weight blocks, but rows have 40"):
        floatfmt.quantize(np.ones((2, 40), dtype=np.float32), "q4_0")


@pytest.mark.parametrize("name", floatfmt.schemes())
@pytest.mark.parametrize("shape", [(130, 256), (3, 5, 64), (1, 32), (0, 64)])
def test_nbytes_is_the_serialized_size(name, shape):
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    try:
        floatfmt.get_scheme(name).storage_bytes(shape)
    except ValueError as error:  # a GGML type whose blocks do not divide the rows: quantize says the same
        with pytest.raises(ValueError, match=re.escape(str(error))):
            floatfmt.quantize(w, name)
        return
    q = floatfmt.quantize(w, name)
    assert q.nbytes == len(q.to_bytes()) == q.scheme.storage_bytes(shape)
    assert q.dequantize().shape == shape
    if w.size:
        assert q.bits_per_weight == pytest.approx(8 * q.nbytes / w.size)


@pytest.mark.parametrize("name", [n for n in floatfmt.schemes() if floatfmt.get_scheme(n).scale_rule != "gguf"])
def test_blocks_that_do_not_divide_are_zero_padded(name):
    w = np.random.default_rng(2).standard_normal((131, 257)).astype(np.float32)
    q = floatfmt.quantize(w, name)
    scheme = floatfmt.get_scheme(name)
    block_rows, block_cols = block_shape(scheme, 131, 257)
    if scheme.scale_rule == "codebook":  # bitsandbytes blocks the flattened tensor: one partial block at its end
        assert q.codes.shape == (1, -(-131 * 257 // block_cols) * block_cols)
    elif scheme.scale_rule != "cast":
        assert q.codes.shape == (-(-131 // block_rows) * block_rows, -(-257 // block_cols) * block_cols)
    assert floatfmt.error_stats(w, q.dequantize()).nan == 0


def mx_block(values) -> np.ndarray:
    block = np.zeros((1, 32), dtype=np.float32)
    block[0, : len(values)] = values
    return block


@pytest.mark.parametrize(
    "name, amax, exponent",
    [
        # OCP MX v1.0 §6.3: X = 2**(floor(log2(amax)) - emax_elem); emax is 2 for FP4, 8 for FP8 E4M3, 0 for INT8
        ("mxfp4", 4.0, 0),  # max exactly at a power of two
        ("mxfp4", np.nextafter(np.float32(4.0), np.float32(0)), -1),  # just below it
        ("mxfp8_e4m3", 448.0, 0),
        ("mxfp8_e5m2", 1.0, -15),
        ("mxfp6_e2m3", 7.5, 0),
        ("mxint8", 1.0, 0),
        ("mxfp4", 2.0**-140, -127),  # the scale saturates at E8M0's smallest, 2**-127
    ],
)
def test_mx_shared_exponent_from_the_spec(name, amax, exponent):
    q = floatfmt.quantize(mx_block([amax, -amax / 3]), name)
    assert q.scales[0, 0] == 2.0**exponent


def test_mx_saturation_zero_blocks_and_nan():
    # amax 7.5 in FP4: scale 2**(2-2) = 1, and 7.5 saturates to 6 (elements saturate, the scale does not grow)
    q = floatfmt.quantize(mx_block([7.5, 1.0]), "mxfp4")
    assert q.scales[0, 0] == 1.0 and q.dequantize()[0, :2].tolist() == [6.0, 1.0]
    zero = floatfmt.quantize(np.zeros((1, 32), dtype=np.float32), "mxfp4")
    assert zero.scales[0, 0] == 2.0**-127 and not zero.dequantize().any()
    with_nan = floatfmt.quantize(mx_block([1.0, np.nan]), "mxfp8_e4m3")
    assert np.isnan(with_nan.scales[0, 0]) and np.isnan(with_nan.dequantize()).all()
    with_inf = floatfmt.quantize(mx_block([1.0, np.inf]), "mxfp4")
    assert np.isnan(with_inf.scales[0, 0])
    assert with_nan.to_bytes()[0] == 0xFF  # E8M0's NaN


def test_mx_rounding_defaults_to_even_and_offers_ties_away():
    block = mx_block([4.0, 2.5])  # scale 1; 2.5 is a tie between the FP4 values 2 and 3
    assert floatfmt.quantize(block, "mxfp4").dequantize()[0, 1] == 2.0
    assert floatfmt.quantize(block, "mxfp4", rounding="nearest_away").dequantize()[0, 1] == 3.0


def test_deepseek_block128_scales():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((256, 384)).astype(np.float32)
    w[:128, :128] = 0  # all-zero tile: DeepGEMM clamps amax to 1e-4
    q = floatfmt.quantize(w, "fp8_e4m3_block128")
    tiles = np.abs(w).reshape(2, 128, 3, 128).max(axis=(1, 3))
    np.testing.assert_array_equal(q.scales, np.maximum(tiles, np.float32(1e-4)) / np.float32(448))
    pow2 = floatfmt.quantize(w, "fp8_e4m3_block128_ue8m0").scales
    assert np.all(np.exp2(np.round(np.log2(pow2))) == pow2) and np.all(pow2 >= q.scales) and np.all(pow2 < 2 * q.scales)


def test_nvfp4_two_level_scales():
    w = np.random.default_rng(4).standard_normal((64, 128)).astype(np.float32)
    q = floatfmt.quantize(w, "nvfp4")
    assert q.tensor_scale == pytest.approx(float(np.abs(w).max()) / (6 * 448), rel=1e-6)
    e4m3 = floatfmt.round(q.scales, "e4m3")
    np.testing.assert_array_equal(e4m3, q.scales)  # block scales are E4M3 values
    assert q.bits_per_weight == pytest.approx(4.5, abs=0.01)
    # ModelOpt's arithmetic: one division by 6 * scale_2, cast to E4M3; an all-zero block stores 1.0
    scale_2 = np.float32(q.tensor_scale)
    block_amax = np.abs(w).reshape(64, 8, 16).max(axis=2)
    np.testing.assert_array_equal(q.scales, floatfmt.round(block_amax / (np.float32(6) * scale_2), "e4m3"))
    w[0, :16] = 0
    assert floatfmt.quantize(w, "nvfp4").scales[0, 0] == 1.0


def test_int4_g128_is_gptq_minmax():
    w = np.random.default_rng(5).standard_normal((4, 256)).astype(np.float32)
    q = floatfmt.quantize(w, "int4_g128")
    groups = w.reshape(4, 2, 128)
    low, high = np.minimum(groups.min(axis=2), 0), np.maximum(groups.max(axis=2), 0)
    np.testing.assert_array_equal(q.scales, ((high - low) / 15).astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(q.zero_points, np.rint(-low / ((high - low) / np.float32(15))))
    assert q.codes.max() <= 15 and q.bits_per_weight == pytest.approx(4 + 16 / 128 + 4 / 128)


@pytest.mark.parametrize(
    "name", [n for n in floatfmt.schemes() if floatfmt.get_scheme(n).scale_rule not in ("mx", "cast")]
)
def test_nan_is_rejected_where_the_reference_has_no_rule(name):
    w = np.ones((2, 128), dtype=np.float32)
    w[1, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        floatfmt.quantize(w, name)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_threaded_search_for_non_finite_values_finds_one_anywhere(bad):
    from floatfmt.quant.tensor import may_be_nonfinite

    rng = np.random.default_rng(7)
    w = rng.standard_normal((700, 1024)).astype(np.float32)  # many row runs, on the threads
    assert not may_be_nonfinite(w) and not may_be_nonfinite(w[:0]) and not may_be_nonfinite(w[0])
    for row, col in [(0, 0), (699, 1023), tuple(rng.integers([700, 1024]))]:
        spoiled = w.copy()
        spoiled[row, col] = bad
        assert may_be_nonfinite(spoiled) and may_be_nonfinite(spoiled.reshape(-1))
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            floatfmt.quantize(spoiled, "q4_0")
    wide = np.array([[3e38, -3e38]], dtype=np.float32)  # max - min overflows: a false alarm the count clears
    assert may_be_nonfinite(wide) and floatfmt.quantize(wide, "int8").codes.shape == (1, 2)
    from floatfmt.quant import approximate

    np.testing.assert_array_equal(approximate(w, "nvfp4", check_finite=False), approximate(w, "nvfp4"))


def test_scheme_registry_and_options():
    with pytest.raises(ValueError, match=r"unknown scheme 'mxfp5'.*'mxfp4'"):
        floatfmt.get_scheme("mxfp5")
    with pytest.raises(ValueError, match="unknown scale_rule"):
        floatfmt.Scheme("x", "e4m3", scale_rule="magic")
    with pytest.raises(ValueError, match="unknown rounding"):
        floatfmt.quantize(np.ones((1, 32)), "mxfp4", rounding="sideways")
    with pytest.raises(ValueError, match="already registered"):
        floatfmt.register_scheme(floatfmt.get_scheme("nvfp4"))
    custom = floatfmt.Scheme("e3m2_g64_bf16", "e3m2", (1, 64), "bfloat16", "amax")
    q = floatfmt.quantize(np.random.default_rng(6).standard_normal((8, 128)), custom)
    assert q.bits_per_weight == pytest.approx(6 + 16 / 64)
    assert "e3m2_g64_bf16" in repr(q)


def element_step(scheme: floatfmt.Scheme) -> float:
    """The largest error one element can carry, in units of its block scale.

    The widest gap between neighbouring element values; for MX also the clipping
    gap, since an MX block's largest value scales into [2**emax, 2**(emax+1))
    and saturates at the element maximum (E4M3: up to 512 -> 448, two gaps).
    """
    element = floatfmt.get_format(scheme.element)
    if isinstance(element, floatfmt.IntFormat):
        return 1 / 64 if scheme.scale_rule == "mx" else 1.0
    gap = 2.0 ** (element.maxexp - 1 - element.mantissa_bits)
    return max(gap, 2.0**element.maxexp - element.max) if scheme.scale_rule == "mx" else gap


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(
    # magnitudes whose scales are normal numbers in every scale format (see the test of scale underflow below)
    w=hnp.arrays(
        np.float32,
        (4, 256),
        elements=st.one_of(st.just(0.0), st.floats(2.0**-10, 1e4, width=32), st.floats(-1e4, -(2.0**-10), width=32)),
    ),
    # (not nf4_dq: its scales are themselves approximations; test_nf4_dq_storage_and_error bounds them; not AWQ,
    # whose clamped zero point saturates one-signed groups, as AutoAWQ does: test_awq_grid_is_the_blocks_own_range)
    name=st.sampled_from(
        [
            n
            for n in floatfmt.schemes()
            if floatfmt.get_scheme(n).scale_rule not in ("cast", "gguf", "minmax_awq")
            and not floatfmt.get_scheme(n).scale_group
        ]
    ),
)
def test_error_is_within_one_element_step_of_the_block_scale(w, name):
    scheme = floatfmt.get_scheme(name)
    q = floatfmt.quantize(w, scheme)
    block_rows, block_cols = block_shape(scheme, 4, 256)
    if scheme.scale_rule == "codebook":  # bitsandbytes' blocks run over the flattened tensor
        scale = np.repeat(q.scales.reshape(-1), scheme.block[1])[: w.size].reshape(w.shape)
    else:
        scale = np.repeat(np.repeat(q.scales, block_rows, axis=0), block_cols, axis=1)[:4, :256]
    scale = scale * (q.tensor_scale or 1.0)
    error = np.abs(q.dequantize().astype(np.float64) - w)
    # a scale that underflows its storage format (NVFP4's E4M3 block scales far below the tensor's amax) flushes
    bound = np.where(scale == 0, np.abs(w), scale * element_step(scheme) * (1 + 1e-3))
    assert np.all(error <= bound + 1e-30)


def test_scales_underflow_as_their_storage_format_does():
    # GPTQ stores fp16 scales: a group of weights near 1e-7 gets a scale below fp16's smallest subnormal,
    # so it is stored as 0 and the whole group dequantizes to 0 -- what such a checkpoint really holds.
    w = np.full((1, 128), 6e-8, dtype=np.float32)
    q = floatfmt.quantize(w, "int4_g128")
    assert q.scales[0, 0] == 0 and not q.dequantize().any()
    assert floatfmt.error_stats(w, q.dequantize()).flushed == 128


def test_error_stats_against_float64_formulas():
    rng = np.random.default_rng(7)
    r = rng.standard_normal(100_000).astype(np.float32)
    a = r + rng.standard_normal(r.size).astype(np.float32) * 0.01
    a[:10] = 0.0
    stats = floatfmt.error_stats(r, a)
    r64, a64 = r.astype(np.float64), a.astype(np.float64)
    err = a64 - r64
    assert stats.mse == pytest.approx(np.mean(err**2), rel=1e-12)
    assert stats.rel_rmse == pytest.approx(np.linalg.norm(err) / np.linalg.norm(r64), rel=1e-12)
    assert stats.sqnr_db == pytest.approx(10 * math.log10(np.sum(r64**2) / np.sum(err**2)), rel=1e-12)
    assert stats.cosine == pytest.approx(np.dot(r64, a64) / np.linalg.norm(r64) / np.linalg.norm(a64), rel=1e-12)
    assert stats.max_abs == pytest.approx(np.max(np.abs(err)))
    assert stats.flushed == 10 and stats.nan == 0 and stats.count == r.size
    assert set(stats.as_dict()) >= {"mse", "rmse", "rel_rmse", "sqnr_db", "max_abs", "cosine", "nan"}
    assert "sqnr=" in str(stats)


def test_error_stats_accumulates_in_float64():
    # 2**25 equal errors: a float32 running sum would stall at 2**24
    n = 2**25
    r = np.zeros(n, dtype=np.float32)
    stats = floatfmt.error_stats(r, np.ones(n, dtype=np.float32))
    assert stats.mse == 1.0 and stats.count == n


def test_error_stats_counts_nan_saturation_and_shape_errors():
    stats = floatfmt.error_stats(np.array([1.0, 500.0, np.nan, 2.0]), np.array([1.0, 448.0, 1.0, np.nan]))
    assert stats.nan == 2 and stats.saturated == 1
    with pytest.raises(ValueError, match="shape"):
        floatfmt.error_stats(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, np.float64])
@pytest.mark.parametrize("name", ["mxfp4", "fp8_e4m3_block128", "q4_0"])
def test_checkpoint_dtypes_quantize_as_their_float32_values(dtype, name):
    w = np.random.default_rng(9).standard_normal((8, 64)).astype(dtype)
    assert floatfmt.quantize(w, name).to_bytes() == floatfmt.quantize(w.astype(np.float32), name).to_bytes()


def test_empty_integer_and_nd_inputs():
    assert floatfmt.quantize(np.zeros((0, 64), dtype=np.float32), "mxfp4").nbytes == 0
    q = floatfmt.quantize(np.arange(64, dtype=np.int32).reshape(2, 32), "int8")
    assert q.dequantize()[1, 31] == pytest.approx(63, rel=1e-2)
    three_d = np.random.default_rng(8).standard_normal((2, 3, 64)).astype(np.float32)
    assert floatfmt.quantize(three_d, "nvfp4").dequantize().shape == (2, 3, 64)
    with pytest.raises(TypeError, match="real-valued"):
        floatfmt.quantize(np.array(["a"]), "int8")


def test_nf4_codebook_rule_from_bitsandbytes():
    # Checked once against bitsandbytes 0.50.2's quantize_4bit on CPU (torch 2.13): codebook, ties going down,
    # zero blocks and every code agree. bitsandbytes needs torch, so the test suite re-derives the rules.
    book = np.array(NF4_CODEBOOK, dtype=np.float32)
    block = np.zeros((1, 64), dtype=np.float32)
    block[0, :16] = book  # every codebook value (absmax 1) maps to its own code
    midpoint = np.float32((float(book[7]) + float(book[8])) / 2)
    block[0, 16] = midpoint  # exactly on a midpoint: the kernel tests x > midpoint, so it goes down
    block[0, 17] = np.nextafter(midpoint, np.float32(1))
    q = floatfmt.quantize(block, "nf4")
    assert q.codes[0, :16].tolist() == list(range(16))
    assert q.codes[0, 16:18].tolist() == [7, 8]
    np.testing.assert_array_equal(q.dequantize()[0, :16], book)
    zero_block = floatfmt.quantize(np.zeros((2, 64), dtype=np.float32), "nf4").codes
    assert set(np.unique(zero_block).tolist()) == {7}  # bitsandbytes codes an all-zero block as 0.0
    assert q.bits_per_weight == pytest.approx(4 + 32 / 64)


def test_nf4_fast_table_equals_the_midpoint_search():
    base, threshold = codebook_tables(NF4_CODEBOOK)
    book = np.asarray(NF4_CODEBOOK)
    midpoints = ((book[1:] + book[:-1]) / 2).astype(np.float32)
    rng = np.random.default_rng(9)
    x = np.concatenate(
        [
            rng.uniform(-1, 1, 200_000).astype(np.float32),
            midpoints,
            np.nextafter(midpoints, np.float32(2)),
            np.nextafter(midpoints, np.float32(-2)),
            np.array([0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30], dtype=np.float32),
        ]
    )
    key = x.view(np.uint32) >> np.uint32(16)
    np.testing.assert_array_equal(base[key] + (x > threshold[key]), np.searchsorted(midpoints, x, side="left"))


@pytest.mark.parametrize("name", floatfmt.schemes())
def test_row_blocks_quantize_exactly_as_inside_the_whole_tensor(name):
    """What the report relies on to stream a tensor: cut at multiples of row_block, pass tensor_amax."""
    scheme = floatfmt.get_scheme(name)
    cols = 100 if scheme.scale_rule == "codebook" else 256  # bitsandbytes' blocks of 64 cross rows of 100
    step = row_block(scheme, cols)
    if scheme.scale_group:  # nf4_dq: the scales' mean and groups of 256 scales span the tensor
        assert step is None
        return
    assert step is not None, "every other named scheme can be streamed"
    w = awkward_matrix(rows=300, cols=cols)
    whole = floatfmt.quantize(w, scheme)
    amax = float(np.abs(w).max()) if needs_tensor_amax(scheme) else None
    cut = max(step, 128 // step * step)
    parts = [floatfmt.quantize(w[start : start + cut], scheme, tensor_amax=amax) for start in range(0, 300, cut)]
    assert np.array_equal(np.concatenate([p.dequantize() for p in parts]), whole.dequantize(), equal_nan=True)


def test_tensor_amax_is_refused_where_no_scale_uses_it():
    with pytest.raises(ValueError, match="no per-tensor scale"):
        floatfmt.quantize(np.ones((4, 32), np.float32), "mxfp4", tensor_amax=1.0)
    assert row_block(floatfmt.Scheme("cols", "int8", (0, 32), scale_rule="symmetric_int"), 64) is None
    minmax = floatfmt.Scheme("tensor_minmax", "uint4", (0, 0), "float16", "minmax", zero_point="uint4")
    assert row_block(minmax, 64) is None
    assert row_block(floatfmt.get_scheme("nf4"), 100) == 16  # 16 rows of 100 hold 25 whole blocks of 64


def dquantize_kernel(book: list[float], x: float) -> int:
    """bitsandbytes csrc/kernels.cu ``dQuantize<0>``, transcribed line by line (float32 arithmetic)."""
    f32 = np.float32
    x = f32(x)
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f32(-1.0), f32(1.0)
    val = f32(book[pivot])
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = f32(book[pivot])
        i >>= 1
    if upper_pivot == 255:
        upper = f32(book[upper_pivot])
    if lower_pivot == 0:
        lower = f32(book[lower_pivot])
    if x > val:
        return upper_pivot if x > (upper + val) * f32(0.5) else pivot
    return lower_pivot if x < (lower + val) * f32(0.5) else pivot


def test_dynamic_map_is_bitsandbytes_create_dynamic_map():
    book = np.array(DYNAMIC_CODEBOOK, dtype=np.float32)
    # the SHA-256 of bitsandbytes 0.50.2 create_dynamic_map().numpy().tobytes(), computed beside it
    assert hashlib.sha256(book.tobytes()).hexdigest() == (
        "e732639a65f497b4ad684bb166a4467708255edd5207757de8b8f0c7e1fda89c"
    )
    assert book.size == 256 and np.all(np.diff(book) > 0) and book[0] == np.float32(-0.99296875) and book[-1] == 1


def test_double_quantized_scale_codes_follow_the_kernel_search():
    book = list(DYNAMIC_CODEBOOK)
    array = np.array(book, dtype=np.float32)
    rng = np.random.default_rng(11)
    midpoints = (array[1:] + array[:-1]) * np.float32(0.5)
    x = np.concatenate(
        [rng.uniform(-1, 1, 3000), array, midpoints, np.nextafter(midpoints, 2), [-1, 1, 0, -0.0, np.nan]]
    ).astype(np.float32)
    ours = dynamic_map_search(x, array)
    assert ours.tolist() == [dquantize_kernel(book, v) for v in x]
    finite = np.isfinite(x)
    nearest = np.abs(x[finite, None].astype(np.float64) - array[None, :]).min(axis=1)
    assert np.allclose(np.abs(x[finite] - array[ours[finite]]), nearest, atol=1e-7)  # nearest, up to ties


def test_nf4_dq_storage_and_error():
    w = (np.random.default_rng(12).standard_normal((96, 1024)) * 0.02).astype(np.float32)
    plain, double = floatfmt.quantize(w, "nf4"), floatfmt.quantize(w, "nf4_dq")
    assert np.array_equal(plain.codes, double.codes)  # elements are coded with the exact scales
    blocks = w.size // 64
    assert double.nbytes == w.size // 2 + blocks + 4 * -(-blocks // 256) + 4 == len(double.to_bytes())
    assert double.bits_per_weight == pytest.approx(4 + 8 / 64 + 32 / (64 * 256) + 32 / w.size)
    data = double.to_bytes()
    offset = np.frombuffer(data[:4], np.float32)[0]
    assert offset == np.float32(plain.scales.astype(np.float64).mean())
    group_max = np.frombuffer(data[4 : 4 + 4 * 6], np.float32)
    step = np.max(np.diff(np.array(DYNAMIC_CODEBOOK)))  # the map's widest gap
    error = np.abs(double.scales - plain.scales).reshape(-1)
    assert np.all(error <= np.repeat(group_max, 256) * step / 2 * (1 + 1e-6) + 1e-9)
    stats = floatfmt.error_stats(w, double.dequantize())
    assert abs(stats.sqnr_db - floatfmt.error_stats(w, plain.dequantize()).sqnr_db) < 0.1


def test_deepseek_tiles_store_the_weight_unpadded_with_a_scale_per_started_tile():
    """DeepSeek's checkpoint keeps kv_a_proj_with_mqa at 576 x 7168 (FP8) with 5 x 56 float32 scale_inv."""
    w = np.random.default_rng(4).standard_normal((576, 7168)).astype(np.float32)
    q = floatfmt.quantize(w, "fp8_e4m3_block128")
    assert q.scales.shape == (5, 56)
    assert q.nbytes == len(q.to_bytes()) == 576 * 7168 + 5 * 56 * 4
    assert floatfmt.get_scheme("fp8_e4m3_block128").storage_bytes((576, 7168)) == q.nbytes
    assert floatfmt.get_scheme("fp8_e4m3_block128").storage_bytes((100, 200)) == 100 * 200 + 1 * 2 * 4
    # blocks along a row are stored padded, as microxcaling pads them
    assert floatfmt.get_scheme("mxfp4").storage_bytes((3, 40)) == 3 * 64 // 2 + 3 * 2


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8_e4m3", "mxint8"])
def test_mx_exponent_is_exact_just_below_every_power_of_two(name):
    element = floatfmt.get_format(floatfmt.get_scheme(name).element)
    emax = 0 if isinstance(element, floatfmt.IntFormat) else element.maxexp - 1
    powers = np.arange(-120, 120)
    below = np.nextafter(np.ldexp(np.float32(1), powers).astype(np.float32), np.float32(0))
    blocks = np.zeros((below.size, 32), np.float32)
    blocks[:, 0] = below
    scales = floatfmt.quantize(blocks, name).scales[:, 0]
    np.testing.assert_array_equal(scales, np.ldexp(np.float32(1), np.maximum(powers - 1 - emax, -127)))


def test_mxint8_elements_clamp_to_127():
    # scale 1 (amax 1.999); -1.999 * 64 = -127.94 rounds to -128, which microxcaling clamps to -127
    q = floatfmt.quantize(mx_block([1.0, -1.999, 1.999]), "mxint8")
    assert q.codes[0, :3].view(np.int8).tolist() == [64, -127, 127]
    assert q.dequantize()[0, 1] == -127 / 64


def test_int4_g128_sym_is_gptqs_symmetric_grid():
    # GPTQ's Quantizer(sym=True): xmax = max(|min|, max), scale = 2 xmax / 15, zero point 8, codes 0..15
    w = np.random.default_rng(5).standard_normal((4, 256)).astype(np.float32)
    w[1, :128] = 0  # an all-zero group: GPTQ widens it to [-1, 1]
    q = floatfmt.quantize(w, "int4_g128_sym")
    amax = np.abs(w.reshape(4, 2, 128)).max(axis=2)
    scale = np.where(amax == 0, np.float32(2 / 15), 2 * amax / np.float32(15)).astype(np.float32)
    np.testing.assert_array_equal(q.scales, scale.astype(np.float16).astype(np.float32))
    assert set(q.zero_points.reshape(-1).tolist()) == {8}
    codes = np.clip(np.rint(w.reshape(4, 2, 128) / scale[:, :, None]) + 8, 0, 15).reshape(4, 256)
    np.testing.assert_array_equal(q.codes, codes)
    assert q.bits_per_weight == pytest.approx(4 + 16 / 128 + 4 / 128)  # GPTQ checkpoints store the zeros too
    assert floatfmt.quantize(w, "int4_g128_amax7").bits_per_weight == pytest.approx(4 + 16 / 128)


def test_fp8_per_channel_scales():
    w = np.random.default_rng(6).standard_normal((8, 64)).astype(np.float32)
    q = floatfmt.quantize(w, "fp8_e4m3_channel")
    np.testing.assert_array_equal(q.scales[:, 0], floatfmt.round(np.abs(w).max(axis=1) / np.float32(448), "bf16"))
    assert q.scales.shape == (8, 1)


def _e2m1_rne(x: np.ndarray) -> np.ndarray:
    """E2M1 magnitudes by nearest-even search over the 8 values, saturating at 6 (both NVFP4 tools do this)."""
    grid = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)
    a = np.minimum(np.abs(x), np.float32(6))
    index = np.abs(a[..., None] - grid).argmin(axis=-1)
    tie = np.isclose(np.abs(a[..., None] - grid), np.abs(a - grid[index])[..., None], rtol=0, atol=0).sum(-1) > 1
    index = np.where(tie & (index % 2 == 1), index + 1, index)  # ties to the even code
    return grid[index]


@pytest.mark.parametrize("name", ["nvfp4", "nvfp4_torchao"])
def test_nvfp4_follows_its_tool(name):
    """ModelOpt 0.47 and torchao 0.18's arithmetic, re-derived (benchmarks/check_references.py runs the tools)."""
    w = awkward_matrix(rows=32, cols=256, seed=3)
    w[9, :16] *= 1e-7  # a block scale below E4M3's range: clamped to 2**-9 (ModelOpt) or 2**-6 (torchao)
    w[10, :16] = -0.0
    w[10, 0] = 1.0
    q = floatfmt.quantize(w, name)
    f32 = np.float32
    s2 = f32(np.abs(w).max()) / (f32(6) * f32(448))
    assert np.float32(q.tensor_scale) == s2
    amax = np.abs(w).reshape(32, 16, 16).max(axis=2)
    if name == "nvfp4":
        raw = amax / (f32(6) * s2)
        raw[raw == 0] = 1
        floor = f32(2.0**-9)
    else:
        raw = (amax / f32(6)) / s2
        floor = f32(2.0**-6)
    scales = floatfmt.round(np.clip(raw, floor, f32(448)), "e4m3")
    np.testing.assert_array_equal(q.scales, scales)
    assert q.scales[9, 0] == floor
    per = np.repeat(scales, 16, axis=1)
    scaled = w / (per * s2) if name == "nvfp4" else w * np.repeat((f32(1) / s2) / scales, 16, axis=1)
    magnitudes = _e2m1_rne(scaled)
    values = q.scheme.rule.element_values(q.codes, q.scheme)
    np.testing.assert_array_equal(np.abs(values), magnitudes)
    negative_zero = (q.codes == 8).sum(where=(scaled == 0))
    assert (negative_zero == 0) if name == "nvfp4" else negative_zero > 0  # -0.0: +0 in ModelOpt, -0 in torchao
    np.testing.assert_array_equal(q.dequantize(), values * np.repeat(scales * s2, 16, axis=1))


def test_nf4_blocks_the_flattened_tensor_as_bitsandbytes():
    """quantize_4bit blocks A.flatten() (bitsandbytes 0.50.2, checked on its CPU path by check_references.py)."""
    w = awkward_matrix(rows=37, cols=100, seed=4)
    q = floatfmt.quantize(w, "nf4")
    flat = np.zeros(-(-w.size // 64) * 64, dtype=np.float32)
    flat[: w.size] = w.reshape(-1)
    absmax = np.abs(flat.reshape(-1, 64)).max(axis=1)
    np.testing.assert_array_equal(q.scales.reshape(-1), absmax)
    assert q.nbytes == w.size // 2 + 4 * absmax.size == len(q.to_bytes())  # 58 blocks, the last one partial
    book = np.asarray(floatfmt.get_scheme("nf4").codebook, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = flat.reshape(-1, 64) * (np.float32(1) / absmax)[:, None]
    expected = book[np.abs(normalized[..., None] - book).argmin(axis=-1)] * absmax[:, None]
    expected[absmax == 0] = 0
    np.testing.assert_allclose(q.dequantize().reshape(-1), expected.reshape(-1)[: w.size], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("bits", "name"), [(4, "w4a16"), (8, "w8a16")])
def test_w4a16_w8a16_equal_compressed_tensors(bits, name):
    """compressed-tensors' own calculate_qparams / quantize / dequantize on the same groups of 128."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=bits, type="int", strategy="group", group_size=128, symmetric=True)
    for seed in range(3):
        w = awkward_matrix(rows=64, cols=256, seed=seed)
        x = torch.from_numpy(w.copy())
        groups = x.reshape(64, 2, 128)
        scale, zero = calculate_qparams(groups.amin(dim=2), groups.amax(dim=2), args)
        codes = quantize(x, scale, zero, args)
        # float32 weights: float32 scales, every code and value identical
        ours = floatfmt.quantize(w, floatfmt.get_scheme(name).replace(scale_format="float32"))
        np.testing.assert_array_equal(ours.scales, scale.numpy())
        np.testing.assert_array_equal(ours.scheme.rule.element_values(ours.codes, ours.scheme), codes.numpy())
        np.testing.assert_array_equal(ours.dequantize(), dequantize(codes, scale, zero, args).numpy())
        # bfloat16 weights, as checkpoints are: the same bf16 scales (the codes may differ by a step where
        # compressed-tensors' bf16 division rounds the quotient across a half; docs/quantization.md)
        xb = x.to(torch.bfloat16)
        bf16_scale, _ = calculate_qparams(xb.reshape(64, 2, 128).amin(dim=2), xb.reshape(64, 2, 128).amax(dim=2), args)
        stored = floatfmt.quantize(xb.float().numpy(), name)
        np.testing.assert_array_equal(stored.scales, bf16_scale.float().numpy())


def test_awq_grid_is_the_blocks_own_range():
    """AutoAWQ's pseudo_quantize_tensor: [min, max] of the group (0 need not be inside), range floored at 1e-5,
    zero point clamped to 0..15; GPTQ's grid (int4_g128) widens a one-signed group to hold 0."""
    w = np.zeros((3, 128), np.float32)
    w[0] = np.linspace(1.0, 2.0, 128)  # one-signed: the zero point -15 is clamped to 0, the grid is [0, max - min]
    w[1] = 0.5  # constant: range floored at 1e-5
    w[2] = np.linspace(-3, 1, 128)
    awq, gptq = floatfmt.quantize(w, "awq_int4_g128"), floatfmt.quantize(w, "int4_g128")
    f32 = np.float32
    scale = np.maximum(w.max(axis=1) - w.min(axis=1), f32(1e-5)) / f32(15)
    zero = np.clip(-np.rint(w.min(axis=1) / scale), 0, 15)
    np.testing.assert_array_equal(awq.scales[:, 0], floatfmt.round(scale, "fp16"))
    np.testing.assert_array_equal(awq.zero_points[:, 0], zero)
    codes = np.clip(np.rint(w / scale[:, None]) + zero[:, None], 0, 15)
    np.testing.assert_array_equal(awq.codes, codes)
    # so every value of the one-signed group saturates at 15 steps (AutoAWQ does the same), where GPTQ's grid holds it
    np.testing.assert_array_equal(awq.dequantize()[0], floatfmt.round(scale[0], "fp16") * np.float32(15))
    assert floatfmt.error_stats(w[:1], gptq.dequantize()[:1]).sqnr_db > 30
    assert (
        floatfmt.error_stats(w[2:], awq.dequantize()[2:]).sqnr_db
        > floatfmt.error_stats(w[2:], gptq.dequantize()[2:]).sqnr_db - 1
    )


def test_fp8_e4m3_channel_equals_compressed_tensors():
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True)
    for seed in range(3):
        w = awkward_matrix(rows=64, cols=256, seed=seed)
        w[11] = 0  # an all-zero channel: compressed-tensors' scale becomes the epsilon of the scale's dtype
        x = torch.from_numpy(w.copy())
        scale, zero = calculate_qparams(x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True), args)
        codes = quantize(x, scale, zero, args)
        ours = floatfmt.quantize(w, floatfmt.get_scheme("fp8_e4m3_channel").replace(scale_format="float32"))
        np.testing.assert_array_equal(ours.scales, scale.numpy())
        np.testing.assert_array_equal(ours.scheme.rule.element_values(ours.codes, ours.scheme), codes.numpy())
        np.testing.assert_array_equal(ours.dequantize(), dequantize(codes, scale, zero, args).numpy())


def test_fp8_e4m3_per_tensor_is_vllm_scaled_fp8_quant():
    """vLLM's scaled_fp8_quant_kernel: scale = amax / 448, x * (1.0f / scale), clamped, cast (torch's CPU cast)."""
    torch = pytest.importorskip("torch")
    for seed in range(3):
        w = awkward_matrix(rows=64, cols=256, seed=seed)
        x = torch.from_numpy(w.copy())
        scale = x.abs().max() / 448.0
        codes = (x * (1.0 / scale)).clamp(-448, 448).to(torch.float8_e4m3fn)
        q = floatfmt.quantize(w, "fp8_e4m3")
        assert np.float32(q.scales.reshape(-1)[0]) == scale.item()
        np.testing.assert_array_equal(q.codes, codes.view(torch.uint8).numpy())


@pytest.mark.parametrize("name", sorted(floatfmt.schemes()))
def test_approximate_is_quantize_then_dequantize_bit_for_bit(name):
    """The report measures ``approximate``: for every scheme, on awkward matrices with float32 subnormals, ties and
    values at the elements' range, the same bits as the codes' path (the fused pass where a rule has one)."""
    from floatfmt.quant import approximate

    scheme = floatfmt.get_scheme(name)
    for seed in range(2):
        w = awkward_matrix(rows=130, cols=256, seed=seed)
        w[7, :64] = np.float32(2.0**-130) * np.arange(64)
        w[8, :64] = np.linspace(-1, 1, 64, dtype=np.float32) * 448
        w[9, :64] = np.linspace(-6.5, 6.5, 64, dtype=np.float32)
        try:
            expected = floatfmt.quantize(w, scheme).dequantize()
        except ValueError:  # rows GGUF cannot block: approximate says the same
            with pytest.raises(ValueError):
                approximate(w, scheme)
            continue
        got = approximate(w, scheme)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_approximate_takes_the_codes_path_for_blocks_that_are_not_finite():
    """MX gives a block holding NaN or infinity a NaN scale; the fused pass hands such tensors to the codes."""
    from floatfmt.quant import approximate

    w = awkward_matrix()
    w[3, 5], w[10, 40] = np.nan, -np.inf
    expected = floatfmt.quantize(w, "mxfp4").dequantize()
    np.testing.assert_array_equal(approximate(w, "mxfp4"), expected)  # NaN where expected has NaN


@pytest.mark.parametrize("name", ["fp8_e4m3_block128", "mxfp4", "nvfp4", "nvfp4_torchao", "w4a16", "fp8_e4m3"])
def test_the_fused_pass_makes_no_codes(name, monkeypatch):
    from floatfmt.quant import approximate
    from floatfmt.quant.rules._blocks import BlockRule

    def no_codes(*args, **kwargs):
        raise AssertionError("the fused pass encoded the elements")

    monkeypatch.setattr(BlockRule, "_encode_blocks", no_codes)
    w = awkward_matrix()
    assert approximate(w, name).shape == w.shape


@pytest.mark.parametrize("name", ["mxfp4", "q4_0", "nf4"])
def test_approximate_writes_into_out_and_refuses_one_that_does_not_fit(name):
    from floatfmt.quant import approximate

    w = awkward_matrix()
    out = np.full(w.shape, np.nan, dtype=np.float32)
    assert approximate(w, name, out=out) is out
    np.testing.assert_array_equal(out, floatfmt.quantize(w, name).dequantize())
    for wrong in (np.empty((w.shape[0], w.shape[1] + 1), np.float32), np.empty(w.shape, np.float64),
                  np.empty(w.shape[::-1], np.float32).T):  # fmt: skip
        with pytest.raises(ValueError, match="out must be"):
            approximate(w, name, out=wrong)
