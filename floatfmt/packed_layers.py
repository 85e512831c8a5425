"""Layers that quantizers publish as several packed tensors, found by name and dequantized as their kernels do.

Each kind stands for one ``weight`` of the original model:

* GPTQ (AutoGPTQ / GPTQModel): ``qweight`` packs ``32 / bits`` inputs per int32 down its columns, ``qzeros``
  the zero points across, stored minus one in the v1 checkpoint format; ``g_idx`` maps inputs to groups
  (act-order). ``(q - zero) * scale``.
* AWQ (AutoAWQ's GEMM packing): ``qweight`` and ``qzeros`` pack outputs in the order 0 2 4 6 1 3 5 7 of each
  int32, lowest nibble first. ``(q - zero) * scale``.
* compressed-tensors ``pack-quantized`` (llm-compressor's W4A16, W8A16 ...): ``weight_packed`` packs each row
  densely (element ``i`` at bit ``i * bits``, values offset by ``2**(bits-1)``), ``weight_zero_point`` the
  same down the output dimension, ``weight_shape`` the original shape. ``(q - zero) * scale`` in the scale's
  dtype, as ``compressed_tensors``' ``_dequantize`` computes it (0.20.1).
* gpt-oss's MXFP4 experts: ``<name>_blocks`` (uint8, ``(experts, out, in / 32, 16)``, two FP4 E2M1 codes per byte,
  the low nibble first) and ``<name>_scales`` (E8M0 exponents, bias 127): transformers'
  ``convert_moe_packed_tensors`` gives ``lut[code] * 2**(scale - 127)`` in BF16, transposed to the model's
  ``(experts, in, out)``.

Example:
    >>> import numpy as np
    >>> from floatfmt.io import ArrayWeights
    >>> blocks = np.full((1, 2, 1, 16), 0x21, np.uint8)  # codes 1 (0.5) and 2 (1.0), alternating
    >>> scales = np.full((1, 2, 1), 128, np.uint8)  # 2 ** (128 - 127)
    >>> parts = {"experts.down_proj_blocks": blocks, "experts.down_proj_scales": scales}
    >>> layer = find_packed_layers(ArrayWeights(parts))["experts.down_proj"]
    >>> layer.kind, layer.shape, layer.dequantize()[0, :4, 0].tolist()
    ('MXFP4 (gpt-oss)', (1, 32, 2), [1.0, 2.0, 1.0, 2.0])
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from floatfmt.io import Weights

__all__ = ["PackedLayer", "find_packed_layers"]


@dataclass(frozen=True)
class PackedLayer:
    """One weight stored as packed parts: what it is, the parts, and how its engine turns them into values."""

    name: str  # the weight it stands for, as the original names it
    kind: str  # "GPTQ int4", "AWQ int4", "compressed-tensors int4", "MXFP4 (gpt-oss)"
    shape: tuple[int, ...]  # the weight's shape in the original
    parts: tuple[str, ...]  # the candidate's tensors that store it
    read: Callable[[], np.ndarray] = field(repr=False, compare=False)

    def dequantize(self) -> np.ndarray:
        """The values the engine computes from the parts, in float32."""
        return self.read()


def find_packed_layers(weights: Weights) -> dict[str, PackedLayer]:
    """Every packed layer of a checkpoint, keyed by the weight it stands for; the method, bits, group size and
    checkpoint format from the ``quantization_config`` beside it where the shapes alone do not say."""
    config = _quantization_config(weights)
    found: dict[str, PackedLayer] = {}
    for finder in (_gptq_awq, _compressed_tensors, _gpt_oss_mxfp4):
        for layer in finder(weights, config):
            found.setdefault(layer.name, layer)
    return found


def _quantization_config(weights: Weights) -> dict[str, Any]:
    folder = Path(weights.path) if Path(weights.path).is_dir() else Path(weights.path).parent
    for candidate in (folder / "config.json", folder / "quantize_config.json"):
        try:
            loaded = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(loaded, dict):
            inner = loaded.get("quantization_config", loaded)
            return inner if isinstance(inner, dict) else {}
    return {}


# --- GPTQ and AWQ ---------------------------------------------------------------------------------------------

_AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def _gptq_awq(weights: Weights, config: dict[str, Any]) -> list[PackedLayer]:
    layers = []
    for tensor, info in weights.tensors.items():
        if not tensor.endswith(".qweight") or len(info.shape) != 2:
            continue
        prefix = tensor[: -len(".qweight")]
        if f"{prefix}.qzeros" not in weights.tensors or f"{prefix}.scales" not in weights.tensors:
            continue
        method = str(config.get("quant_method", "gptq" if f"{prefix}.g_idx" in weights.tensors else "awq")).lower()
        bits = int(config.get("bits", config.get("w_bit", 4)))
        scales = weights.tensors[f"{prefix}.scales"].shape
        awq = method == "awq"
        shape = (info.shape[1] * 32 // bits, info.shape[0]) if awq else (info.shape[1], info.shape[0] * 32 // bits)
        group = int(config.get("group_size", config.get("q_group_size", 0)) or 0)
        if group <= 0:
            group = -(-shape[1] // scales[0]) if scales and scales[0] else shape[1]
        v1 = not awq and str(config.get("checkpoint_format", "gptq")).lower() != "gptq_v2"
        parts = tuple(f"{prefix}.{part}" for part in ("qweight", "qzeros", "scales", "g_idx"))
        reader = _read_awq if awq else _read_gptq
        layers.append(
            PackedLayer(
                f"{prefix}.weight",
                f"{'AWQ' if awq else 'GPTQ'} int{bits}",
                shape,
                tuple(part for part in parts if part in weights.tensors),
                partial(reader, weights, prefix, shape, bits, group, v1),
            )
        )
    return layers


def _read_gptq(weights: Weights, prefix: str, shape: tuple[int, int], bits: int, group: int, v1: bool) -> np.ndarray:
    out, inputs = shape
    codes = _unpack_int32(np.asarray(weights[f"{prefix}.qweight"]).view(np.uint32), bits, axis=0)[:inputs]
    zeros = _unpack_int32(np.asarray(weights[f"{prefix}.qzeros"]).view(np.uint32), bits, axis=1)[:, :out]
    g_idx = f"{prefix}.g_idx"
    groups = np.asarray(weights[g_idx]).astype(np.intp) if g_idx in weights.tensors else np.arange(inputs) // group
    scales = np.asarray(weights[f"{prefix}.scales"], dtype=np.float32)
    zero = zeros[groups].astype(np.float32) + (1 if v1 else 0)  # v1 stores zero - 1
    return ((codes.astype(np.float32) - zero) * scales[groups]).T


def _read_awq(weights: Weights, prefix: str, shape: tuple[int, int], bits: int, group: int, v1: bool) -> np.ndarray:
    out, inputs = shape
    codes = _unpack_int32(np.asarray(weights[f"{prefix}.qweight"]).view(np.uint32), bits, 1, _AWQ_ORDER)[:, :out]
    zeros = _unpack_int32(np.asarray(weights[f"{prefix}.qzeros"]).view(np.uint32), bits, 1, _AWQ_ORDER)[:, :out]
    groups = np.arange(inputs) // group
    scales = np.asarray(weights[f"{prefix}.scales"], dtype=np.float32)
    return ((codes.astype(np.float32) - zeros[groups].astype(np.float32)) * scales[groups]).T


def _unpack_int32(packed: np.ndarray, bits: int, axis: int, order: tuple[int, ...] | None = None) -> np.ndarray:
    """The ``32 / bits`` fields of each uint32 along ``axis``, lowest first (``order``: the position each field
    takes among its int32's outputs)."""
    per = 32 // bits
    fields = np.stack([(packed >> np.uint32(bits * k)) & np.uint32((1 << bits) - 1) for k in range(per)], axis=-1)
    if order is not None:
        fields = fields[..., np.argsort(order)]  # field k holds output order[k]
    if axis == 0:
        return np.moveaxis(fields, -1, 1).reshape(packed.shape[0] * per, packed.shape[1])
    return fields.reshape(packed.shape[0], packed.shape[1] * per)


# --- compressed-tensors pack-quantized ----------------------------------------------------------------------------


def _compressed_tensors(weights: Weights, config: dict[str, Any]) -> list[PackedLayer]:
    configured = _configured_bits(config)
    layers = []
    for tensor, info in weights.tensors.items():
        if not tensor.endswith(".weight_packed") or len(info.shape) != 2:
            continue
        prefix = tensor[: -len(".weight_packed")]
        if f"{prefix}.weight_scale" not in weights.tensors or f"{prefix}.weight_shape" not in weights.tensors:
            continue
        parts = tuple(
            f"{prefix}.{part}" for part in ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape")
        )
        parts = tuple(part for part in parts if part in weights.tensors)
        shape = tuple(int(n) for n in np.asarray(weights[f"{prefix}.weight_shape"]).reshape(-1))
        bits = configured or _dense_bits(shape[-1], info.shape[1]) if len(shape) == 2 else None
        if len(shape) != 2 or shape[0] != info.shape[0] or bits is None:
            problem = f"{prefix}.weight_shape {shape} does not fit {tensor} of shape {info.shape}"
            layers.append(PackedLayer(f"{prefix}.weight", "compressed-tensors", shape, parts, _refuse(problem)))
            continue
        reader = partial(_read_compressed, weights, prefix, shape, bits)
        layers.append(PackedLayer(f"{prefix}.weight", f"compressed-tensors int{bits}", shape, parts, reader))
    return layers


def _refuse(problem: str) -> Callable[[], np.ndarray]:
    """A reader for a layer whose parts do not fit together: the comparison's row says why."""

    def read() -> np.ndarray:
        raise ValueError(problem)

    return read


def _configured_bits(config: dict[str, Any]) -> int | None:
    """The weights' bits of a compressed-tensors config with one group (several groups: from each shape)."""
    groups = config.get("config_groups") if config.get("quant_method") == "compressed-tensors" else None
    if not isinstance(groups, dict):
        return None
    bits = {
        group["weights"].get("num_bits")
        for group in groups.values()
        if isinstance(group, dict) and isinstance(group.get("weights"), dict)
    }
    return int(bits.pop()) if len(bits) == 1 and isinstance(next(iter(bits)), int) else None


def _dense_bits(elements: int, words: int) -> int | None:
    """The bits per value (1 to 8) with which ``elements`` values fill ``words`` int32 words."""
    return next((bits for bits in range(1, 9) if -(-elements * bits // 32) == words), None)


def _unpack_dense(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """compressed-tensors' ``unpack_from_int32`` along the last axis: element ``i`` of a row at bit ``i * bits``
    of the row's little-endian words, minus the offset ``2**(bits - 1)``."""
    words = np.ascontiguousarray(packed).astype("<u4")
    stream = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")[:, : count * bits]
    fields = stream.reshape(packed.shape[0], count, bits)
    values = (fields.astype(np.int32) << np.arange(bits, dtype=np.int32)).sum(axis=-1, dtype=np.int32)
    return values - (1 << (bits - 1))


def _read_compressed(weights: Weights, prefix: str, shape: tuple[int, ...], bits: int) -> np.ndarray:
    rows, cols = shape
    codes = _unpack_dense(np.asarray(weights[f"{prefix}.weight_packed"]), bits, cols)
    stored_scale = np.asarray(weights[f"{prefix}.weight_scale"])
    scale = stored_scale.astype(np.float32)
    if scale.size == 1:  # per tensor
        scale = scale.reshape(1, 1)
    scale = scale.reshape(rows if scale.size > 1 else 1, -1)
    group = -(-cols // scale.shape[1])
    columns = np.arange(cols) // group
    values = codes.astype(np.float32)
    zero_name = f"{prefix}.weight_zero_point"
    if zero_name in weights.tensors:  # packed down the output dimension, one column per group
        zeros = _unpack_dense(np.asarray(weights[zero_name]).T, bits, rows).T
        values -= zeros.reshape(rows, -1)[:, columns].astype(np.float32)
    product = values * scale[:, columns]  # exact in float32: (q - zero) has at most 9 bits, the scale 8 or 11
    if stored_scale.dtype in (ml_dtypes.bfloat16, np.float16):  # torch multiplies in the scale's dtype
        return product.astype(stored_scale.dtype).astype(np.float32)
    return product


# --- gpt-oss MXFP4 ------------------------------------------------------------------------------------------------

_E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)


def _gpt_oss_mxfp4(weights: Weights, config: dict[str, Any]) -> list[PackedLayer]:
    layers = []
    for tensor, info in weights.tensors.items():
        byte_blocks = info.dtype in ("U8", "uint8") and len(info.shape) >= 4 and info.shape[-1] == 16
        if not tensor.endswith("_blocks") or not byte_blocks:
            continue
        base = tensor[: -len("_blocks")]
        scales = weights.tensors.get(f"{base}_scales")
        if scales is None or tuple(scales.shape) != tuple(info.shape[:-1]):
            continue
        *lead, out, groups, _ = info.shape
        shape = (*lead, groups * 32, out)  # convert_moe_packed_tensors transposes to the model's (.., in, out)
        layers.append(
            PackedLayer(
                base,
                "MXFP4 (gpt-oss)",
                shape,
                (tensor, f"{base}_scales"),
                partial(_read_mxfp4, weights, base),
            )
        )
    return layers


def _read_mxfp4(weights: Weights, base: str) -> np.ndarray:
    blocks = np.asarray(weights[f"{base}_blocks"])
    exponents = np.asarray(weights[f"{base}_scales"]).astype(np.int32) - 127
    codes = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
    values = np.ldexp(_E2M1[codes], exponents[..., None])  # exact in float32; BF16 keeps it but at the extremes
    values = values.astype(ml_dtypes.bfloat16).astype(np.float32)
    flat = values.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32)  # (.., out, in)
    return np.swapaxes(flat, -1, -2)
