"""Quantization schemes as data, and the named schemes of real deployments.

A tensor is viewed as 2-D: its last axis is a row (the input features of a
``[out, in]`` weight), all leading axes are flattened into rows. A scheme's
``block`` is ``(rows, cols)`` of the region that shares one scale, where 0
means "the whole axis": ``(0, 0)`` is per tensor, ``(1, 0)`` per output
channel, ``(1, 32)`` groups of 32 along a row, ``(128, 128)`` square tiles.

Example:
    >>> import floatfmt
    >>> scheme = floatfmt.get_scheme("mxfp4")
    >>> scheme.element, scheme.block, scheme.scale_format, scheme.scale_rule
    ('float4_e2m1fn', (1, 32), 'float8_e8m0fnu', 'mx')
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from floatfmt import _reference
from floatfmt._options import ROUNDINGS, Rounding
from floatfmt.formats import get_format
from floatfmt.quant.gguf import BLOCK as GGUF_BLOCK
from floatfmt.quant.gguf import GGUF_TYPES

__all__ = ["DYNAMIC_CODEBOOK", "NF4_CODEBOOK", "Scheme", "SCALE_RULES", "schemes", "get_scheme", "register_scheme"]

SCALE_RULES = {
    "amax": "scale = block amax / element max; elements = x / scale",
    "amax_reciprocal": "scale = max(block amax, 1e-4) / element max; elements = x * (1 / scale) (DeepGEMM)",
    "pow2_ceil_reciprocal": "as amax_reciprocal with the scale rounded up to a power of two (DeepGEMM ue8m0)",
    "mx": "E8M0 scale 2**(floor(log2 block amax) - element emax); elements saturate (OCP MX v1.0)",
    "nvfp4": "fp32 tensor scale amax / (6 * 448); E4M3 block scales of block amax / 6 over it (ModelOpt)",
    "minmax": "asymmetric: scale = (max - min) / (2**bits - 1) with 0 inside the range; integer zero point (GPTQ)",
    "symmetric_int": "scale = block amax / integer max; elements = round(x / scale)",
    "gguf": "the GGUF block type's own rule, byte for byte as gguf-py",
    "codebook": "scale = block absmax; elements = nearest codebook entry of x * (1 / absmax), ties down (bitsandbytes)",
    "cast": "no scale: a plain cast to the element format",
}


@dataclass(frozen=True)
class Scheme:
    """How a tensor is quantized: element format, block shape, scales, and the rules that make them.

    Args:
        name: a short name.
        element: the element format (any ``floatfmt.get_format`` name) or a GGUF type.
        block: ``(rows, cols)`` sharing one scale; 0 means the whole axis.
        scale_format: the format scales are stored in.
        scale_rule: one of ``SCALE_RULES``.
        rounding: how elements round (``encode``'s modes).
        zero_point: the format of a stored zero point, if the scheme is asymmetric.
        tensor_scale: the format of a second-level per-tensor scale, if any.
        codebook: for ``scale_rule="codebook"``, the value of each element code, ascending.
        scale_group: if positive, the block scales are themselves quantized as bitsandbytes' double
            quantization does: minus their float32 mean (stored), in groups of this many, each group's scales
            divided by its largest magnitude (stored in float32) and coded with ``scale_codebook``.
        scale_codebook: the 256 ascending values of the scale codes (bitsandbytes' dynamic map).
        reference: the public implementation the scheme follows.
    """

    name: str
    element: str
    block: tuple[int, int] = (0, 0)
    scale_format: str = "float32"
    scale_rule: str = "amax"
    rounding: Rounding = "nearest_even"
    zero_point: str | None = None
    tensor_scale: str | None = None
    codebook: tuple[float, ...] | None = None
    scale_group: int = 0
    scale_codebook: tuple[float, ...] | None = None
    reference: str = ""

    def __post_init__(self) -> None:
        if self.scale_rule not in SCALE_RULES:
            raise ValueError(f"unknown scale_rule {self.scale_rule!r}; choose one of {', '.join(SCALE_RULES)}")
        if len(self.block) != 2 or any(not isinstance(b, int) or b < 0 for b in self.block):
            raise ValueError(f"block must be two non-negative integers (0 = whole axis), got {self.block!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(ROUNDINGS)}")
        if self.scale_rule != "gguf":
            get_format(self.element)
            get_format(self.scale_format)
        if self.scale_group and (self.scale_codebook is None or len(self.scale_codebook) != 256):
            raise ValueError("scale_group needs a scale_codebook of 256 ascending values (8-bit scale codes)")

    def replace(self, **changes: Any) -> Scheme:
        """A copy with some fields changed, e.g. ``rounding="nearest_away"``."""
        return dataclasses.replace(self, **changes)

    @property
    def tiles(self) -> bool:
        """Whether blocks span several rows (DeepSeek's 128 × 128): such checkpoints keep the weight's own shape,
        with one scale per started tile, so the padding of a partial tile is not stored."""
        return self.block[0] > 1

    def storage_bytes(self, shape: tuple[int, ...]) -> int:
        """The bytes a tensor of ``shape`` takes in this scheme, from its shape alone.

        This is what ``quantize(w, scheme).nbytes`` gives for such a tensor:
        element codes of the padded blocks (of the tensor itself for ``tiles``),
        packed; one scale (and zero point) per block, packed; and the per-tensor scale.

        Example:
            >>> import floatfmt
            >>> floatfmt.get_scheme("nvfp4").storage_bytes((4096, 4096))  # 4-bit codes, 1 byte per 16, fp32
            9437188

        Raises:
            ValueError: for a GGUF type and rows that are not whole 32-weight blocks.
        """
        rows, cols = (math.prod(shape[:-1]), shape[-1]) if shape else (1, 1)
        if self.scale_rule == "gguf":
            if cols % GGUF_BLOCK:
                raise ValueError(f"{self.name} needs rows of whole 32-weight blocks, but rows have {cols} weights")
            return rows * cols // GGUF_BLOCK * GGUF_TYPES[self.element].block_bytes
        element_bits = get_format(self.element).bits
        if self.scale_rule == "cast":
            return math.ceil(rows * cols * element_bits / 8)
        block_rows, block_cols = self.block[0] or max(rows, 1), self.block[1] or max(cols, 1)
        row_blocks, col_blocks = -(-rows // block_rows), -(-cols // block_cols)
        blocks = row_blocks * col_blocks
        stored = rows * cols if self.tiles else blocks * block_rows * block_cols
        total = math.ceil(stored * element_bits / 8)
        if self.scale_group:  # 8-bit scale codes, a float32 per group of them, and the float32 mean
            total += blocks + 4 * -(-blocks // self.scale_group) + 4
        else:
            total += math.ceil(blocks * get_format(self.scale_format).bits / 8)
        if self.zero_point is not None:
            total += math.ceil(blocks * get_format(self.zero_point).bits / 8)
        if self.tensor_scale is not None:
            total += get_format(self.tensor_scale).bits // 8
        return total


_SCHEMES: dict[str, Scheme] = {}


def register_scheme(scheme: Scheme) -> Scheme:
    """Add a scheme to the registry under its name.

    Raises:
        ValueError: if the name is taken.
    """
    if scheme.name in _SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is already registered")
    _SCHEMES[scheme.name] = scheme
    return scheme


def schemes() -> list[str]:
    """Every registered scheme name.

    Example:
        >>> import floatfmt
        >>> "nvfp4" in floatfmt.schemes() and "q4_0" in floatfmt.schemes()
        True
    """
    return list(_SCHEMES)


def get_scheme(scheme: Scheme | str) -> Scheme:
    """A registered scheme by name, or a ``Scheme`` passed through.

    Raises:
        ValueError: for an unknown name, listing close matches.
    """
    if isinstance(scheme, Scheme):
        return scheme
    found = _SCHEMES.get(scheme.strip().lower())
    if found is None:
        close = difflib.get_close_matches(scheme, list(_SCHEMES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown scheme {scheme!r}.{hint} floatfmt.schemes() lists them all.")
    return found


# bitsandbytes get_4bit_type("nf4"): float32 quantiles of N(0, 1), normalized to [-1, 1]
NF4_CODEBOOK = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip


def _dynamic_codebook() -> tuple[float, ...]:
    """bitsandbytes ``create_dynamic_map(signed=True)``, bit for bit: for ``i`` in 0..6, the float32 midpoints of
    ``torch.linspace(0.1, 1, 2**i + 1)`` scaled by ``float32(10**(i - 6))``, both signs, then 0 and 1, sorted.

    torch's float32 ``linspace`` computes ``start + k·step`` (from the end for the upper half) with one
    rounding, as a fused multiply-add: the exact reference encoder stands in for the FMA.
    """
    float32 = get_format("float32")

    def rounded(value: Fraction) -> float:
        return float(_reference.decode(_reference.encode(value, float32), float32))

    values = [0.0, 1.0]
    for i in range(7):
        steps = 2**i + 1
        start, end = np.float32(0.1), np.float32(1.0)
        step = np.float32((end - start) / np.float32(steps - 1))
        points = np.array(
            [
                rounded(Fraction(float(start)) + Fraction(float(step)) * k)
                if k < steps // 2
                else rounded(Fraction(float(end)) - Fraction(float(step)) * (steps - 1 - k))
                for k in range(steps)
            ],
            dtype=np.float32,
        )
        means = (points[:-1] + points[1:]) / np.float32(2)
        scaled = np.float32(10.0 ** (i - 6)) * means
        values += [float(v) for v in scaled] + [-float(v) for v in scaled]
    return tuple(sorted(values))


DYNAMIC_CODEBOOK = _dynamic_codebook()
"""bitsandbytes' signed 8-bit dynamic map, the codes of double-quantized NF4 scales."""

_MX = "microsoft/microxcaling mx/mx_ops.py (_shared_exponents, _quantize_mx)"
_DEEPGEMM = "deepseek-ai/DeepGEMM per_block_cast_to_fp8; DeepSeek-V3 inference/kernel.py weight_dequant"
_GGUF = "PyPI gguf, gguf/quants.py"
_GPTQ = "IST-DASLab/gptq quant.py Quantizer (scales fp16, 4-bit zero points as GPTQ/AWQ checkpoints store them)"

for _scheme in [
    Scheme("bf16", "bfloat16", scale_rule="cast", reference="a plain cast"),
    Scheme("fp16", "float16", scale_rule="cast", reference="a plain cast"),
    Scheme("fp8_e4m3", "float8_e4m3fn", (0, 0), reference="per-tensor amax scaling (vLLM scaled_fp8_quant)"),
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
        reference="NVIDIA TensorRT-Model-Optimizer NVFP4QTensor",
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
    Scheme("int4_g128_sym", "int4", (1, 128), "float16", "symmetric_int", reference="amax / 7 in groups of 128"),
    *(
        Scheme(name, name, (1, 32), "float16", "gguf", reference=_GGUF)
        for name in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
    ),
]:
    register_scheme(_scheme)
