"""The named schemes of real deployments, and the registry of scheme names.

Example:
    >>> import floatfmt
    >>> "nvfp4" in floatfmt.schemes() and "q4_0" in floatfmt.schemes()
    True
    >>> floatfmt.get_scheme("nf4").reference.split(",")[0]
    'bitsandbytes functional.py get_4bit_type'
"""

from __future__ import annotations

import difflib

from floatfmt.quant.rules.bitsandbytes import DYNAMIC_CODEBOOK, NF4_CODEBOOK
from floatfmt.quant.scheme import Scheme

__all__ = ["find_scheme", "get_scheme", "register_scheme", "schemes"]

_SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme) -> Scheme:
    """Add a scheme to the registry under its name.

    Raises:
        ValueError: if the name is taken.
    """
    key = scheme.name.strip().lower()
    if key in _SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is already registered")
    _SCHEMES[key] = scheme
    return scheme


def schemes() -> list[str]:
    """Every registered scheme name.

    Example:
        >>> import floatfmt
        >>> "nvfp4" in floatfmt.schemes() and "q4_0" in floatfmt.schemes()
        True
    """
    return [scheme.name for scheme in _SCHEMES.values()]


def get_scheme(scheme: Scheme | str) -> Scheme:
    """A registered scheme by name, or a ``Scheme`` passed through.

    Raises:
        ValueError: for an unknown name, listing close matches.
    """
    if isinstance(scheme, Scheme):
        return scheme
    found = find_scheme(scheme)
    if found is None:
        close = difflib.get_close_matches(scheme, list(_SCHEMES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown scheme {scheme!r}.{hint} floatfmt.schemes() lists them all.")
    return found


def find_scheme(name: str) -> Scheme | None:
    """The registered scheme of that name (in any case), or ``None``."""
    return _SCHEMES.get(name.strip().lower()) if isinstance(name, str) else None


_MX = "microsoft/microxcaling mx/mx_ops.py (_shared_exponents, _quantize_mx)"
_DEEPGEMM = "deepseek-ai/DeepGEMM per_block_cast_to_fp8; DeepSeek-V3 inference/kernel.py weight_dequant"
_GGUF = "PyPI gguf, gguf/quants.py"
_GGML = "llama.cpp ggml/src/ggml-quants.c quantize_<type> (llama-cpp-python 0.3.36's vendored copy)"
_GPTQ = "IST-DASLab/gptq quant.py Quantizer (scales fp16, 4-bit zero points as GPTQ/AWQ checkpoints store them)"

for _scheme in [
    Scheme("bf16", "bfloat16", scale_rule="cast", reference="a plain cast"),
    Scheme("fp16", "float16", scale_rule="cast", reference="a plain cast"),
    Scheme(
        "fp8_e4m3",
        "float8_e4m3fn",
        (0, 0),
        scale_rule="amax_times_reciprocal",
        reference="vLLM csrc quantization fp8 common.cu scaled_fp8_quant_kernel (scale = amax / 448, x * (1 / scale))",
    ),
    Scheme("fp8_e5m2", "float8_e5m2", (0, 0), reference="per-tensor amax scaling"),
    Scheme("fp8_e4m3_block128", "float8_e4m3fn", (128, 128), scale_rule="amax_reciprocal", reference=_DEEPGEMM),
    Scheme(
        "fp8_e4m3_block128_ue8m0",
        "float8_e4m3fn",
        (128, 128),
        scale_format="float8_e8m0fnu",
        scale_rule="pow2_ceil_reciprocal",
        reference=_DEEPGEMM,
    ),
    Scheme("mxfp8_e4m3", "float8_e4m3fn", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme("mxfp8_e5m2", "float8_e5m2", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme("mxfp6_e2m3", "float6_e2m3fn", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme("mxfp6_e3m2", "float6_e3m2fn", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme("mxfp4", "float4_e2m1fn", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme("mxint8", "int8", (1, 32), "float8_e8m0fnu", "mx", reference=_MX),
    Scheme(
        "nvfp4",
        "float4_e2m1fn",
        (1, 16),
        "float8_e4m3fn",
        "nvfp4",
        tensor_scale="float32",
        reference="nvidia-modelopt 0.47.0 modelopt/torch/quantization/qtensor/nvfp4_tensor.py NVFP4QTensor",
    ),
    Scheme(
        "nvfp4_torchao",
        "float4_e2m1fn",
        (1, 16),
        "float8_e4m3fn",
        "nvfp4_torchao",
        tensor_scale="float32",
        reference="torchao 0.18.0 torchao/prototype/mx_formats/nvfp4_tensor.py nvfp4_quantize (per_tensor_scale)",
    ),
    Scheme(
        "nf4",
        "uint4",
        (1, 64),
        "float32",
        "codebook",
        codebook=NF4_CODEBOOK,
        reference="bitsandbytes functional.py get_4bit_type, csrc/kernels.cu dQuantizeNF4 (blocksize 64)",
    ),
    Scheme(
        "nf4_dq",
        "uint4",
        (1, 64),
        "uint8",
        "codebook",
        codebook=NF4_CODEBOOK,
        scale_group=256,
        scale_codebook=DYNAMIC_CODEBOOK,
        reference="bitsandbytes functional.py quantize_4bit(compress_statistics=True): absmax minus its mean, "
        "quantize_blockwise(blocksize=256) with create_dynamic_map(), csrc/kernels.cu dQuantize",
    ),
    Scheme("int8", "int8", (1, 0), "float32", "symmetric_int", reference="symmetric per-channel int8 (SmoothQuant)"),
    Scheme("int8_tensor", "int8", (0, 0), "float32", "symmetric_int", reference="symmetric per-tensor int8"),
    Scheme("int4_g128", "uint4", (1, 128), "float16", "minmax", zero_point="uint4", reference=_GPTQ),
    Scheme(
        "int4_g128_sym",
        "uint4",
        (1, 128),
        "float16",
        "minmax_symmetric",
        zero_point="uint4",
        reference=_GPTQ.replace("Quantizer", "Quantizer(sym=True)"),
    ),
    Scheme("int4_g128_amax7", "int4", (1, 128), "float16", "symmetric_int", reference="amax / 7 in groups of 128"),
    Scheme(
        "awq_int4_g128",
        "uint4",
        (1, 128),
        "float16",
        "minmax_awq",
        zero_point="uint4",
        reference="AutoAWQ awq/quantize/quantizer.py pseudo_quantize_tensor (w_bit=4, q_group_size=128, zero_point)",
    ),
    Scheme(
        "w4a16",
        "int4",
        (1, 128),
        "bfloat16",
        "compressed_tensors",
        reference="compressed-tensors 0.20.1 W4A16 preset: calculate_qparams (symmetric, group 128), pack-quantized",
    ),
    Scheme(
        "w8a16",
        "int8",
        (1, 128),
        "bfloat16",
        "compressed_tensors",
        reference="compressed-tensors 0.20.1 W8A16 preset: calculate_qparams (symmetric, group 128)",
    ),
    Scheme(
        "fp8_e4m3_channel",
        "float8_e4m3fn",
        (1, 0),
        "bfloat16",
        "compressed_tensors",
        reference="compressed-tensors 0.20.1 FP8 channel strategy (llm-compressor FP8_DYNAMIC: weight_scale [out, 1])",
    ),
    *(
        Scheme(name, name, (1, 32), "float16", "gguf", reference=_GGUF)
        for name in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
    ),
    *(
        Scheme(name, name, (1, 256), "float16", "gguf", reference=_GGML)
        for name in ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq4_xs", "tq1_0", "tq2_0")
    ),
    Scheme("iq4_nl", "iq4_nl", (1, 32), "float16", "gguf", reference=_GGML),
    Scheme("gguf_mxfp4", "mxfp4", (1, 32), "float8_e8m0fnu", "gguf", reference=_GGML + " (quantize_row_mxfp4_ref)"),
]:
    register_scheme(_scheme)
