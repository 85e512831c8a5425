"""What a checkpoint someone else quantized lost against its original: tensor by tensor, exactly.

:func:`compare` reads the candidate the way the engine that loads it would dequantize it and measures each tensor
against the original's, as a :class:`~floatfmt.report.QuantReport` with one column:

* GGUF files of every type gguf-py dequantizes (``Q4_K``, ``IQ4_XS``, ``Q8_0`` ...). Names are matched through
  gguf-py's own name map (the one ``convert_hf_to_gguf.py`` uses) for the file's architecture, and for
  ``llama`` files the rotary permutation the converter applies to ``q_proj`` and ``k_proj`` is applied to the
  original before comparing.
* safetensors with FP8 weights and their scales: DeepSeek's ``weight_scale_inv`` (one float32 per 128 × 128 tile,
  partial tiles unpadded: ``weight * scale``) and vLLM / llm-compressor's ``weight_scale`` (per tensor or per
  output channel). The scale tensors count in the candidate's bytes.
* layers stored as packed parts (:mod:`floatfmt.packed_layers`): GPTQ and AWQ int4 (``qweight``, ``qzeros``,
  ``scales``, ``g_idx``), compressed-tensors ``pack-quantized`` (``weight_packed``, ``weight_scale``,
  ``weight_zero_point``, ``weight_shape``) and gpt-oss's MXFP4 experts (``*_blocks``, ``*_scales``), each
  dequantized as its engine's kernel does and compared with the ``weight`` it stands for.
* anything else :func:`floatfmt.open_weights` reads, tensor for tensor by name (a BF16 or FP16 copy, say).

A tensor of the original with no counterpart gets a row marked ``missing`` and one of the candidate alone a row
marked ``extra``: nothing is dropped without a word; a layout that cannot be read gets a ``missing`` row that says
why, and the comparison goes on. GGUF's merged 3-D expert tensors are sliced: each expert of the original is
compared with its slice, and counted a share of the merged tensor's bytes.

Example:
    >>> import numpy as np, tempfile, pathlib, floatfmt
    >>> from floatfmt.io import save_safetensors
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> w = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    >>> _ = save_safetensors(folder / "original.safetensors", {"mlp.weight": w})
    >>> q = floatfmt.quantize(w, "fp8_e4m3_block128")
    >>> codes = q.codes[:256, :256].view(floatfmt.get_format("e4m3").ml_dtype)
    >>> _ = save_safetensors(folder / "fp8.safetensors", {"mlp.weight": codes, "mlp.weight_scale_inv": q.scales})
    >>> report = floatfmt.compare(folder / "original.safetensors", folder / "fp8.safetensors")
    >>> row = report.rows[0]
    >>> row.applied, row.bytes, round(row.sqnr_db, 2) == round(floatfmt.error_stats(w, q.dequantize()).sqnr_db, 2)
    ('F8_E4M3 × weight_scale_inv', 65552, True)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from floatfmt.io import ArrayWeights, Weights, open_weights
from floatfmt.io._weights import TensorInfo
from floatfmt.packed_layers import find_packed_layers
from floatfmt.quant.metrics import error_stats
from floatfmt.report import QuantReport, ReportRow, summarize

__all__ = ["compare"]

MISSING, EXTRA = "missing", "extra"
"""What ``ReportRow.applied`` says of a tensor the candidate lacks, and of one only the candidate has."""

Source = str | os.PathLike[str] | Weights | Mapping[str, Any]


def compare(original: Source, candidate: Source, *, name: str | None = None) -> QuantReport:
    """Measure each tensor of ``candidate`` (a quantized checkpoint) against the same tensor of ``original``.

    Args:
        original: the checkpoint it was made from (a path :func:`floatfmt.open_weights` accepts, ``Weights``, or
            a mapping of name to array).
        candidate: the quantized checkpoint: a GGUF file, an FP8 safetensors checkpoint, or any readable one.
        name: the report's column (default: the candidate's file name).

    Raises:
        ValueError: for unreadable files, or a GGUF candidate whose architecture gguf-py does not know.
    """
    started = time.perf_counter()
    reference, opened_reference = _open(original)
    stored, opened_candidate = _open(candidate)
    try:
        column = name or Path(stored.path).name
        view = _Dequantized(stored)
        match = _gguf_names(reference, stored) if stored.kind == "gguf" else _same_names
        rows: list[ReportRow] = []
        seen: set[str] = set()
        for tensor, info in reference.tensors.items():
            counterpart, transform, expert = match(tensor, info)
            if counterpart is None or counterpart not in view.tensors:
                rows.append(_placeholder(info, column, MISSING, "no counterpart in the candidate"))
                continue
            seen.add(counterpart)
            rows.append(_measure(reference, view, tensor, counterpart, transform, expert, column))
        for counterpart, info in view.tensors.items():
            if counterpart not in seen:
                rows.append(_placeholder(info, column, EXTRA, "only in the candidate"))
        compared = [row for row in rows if row.applied not in (MISSING, EXTRA)]
        summary = [summarize(column, compared)]
        source = f"{reference.path} vs {stored.path}"
        return QuantReport(source, (column,), rows, summary, seconds=time.perf_counter() - started)
    finally:
        if opened_reference:
            reference.close()
        if opened_candidate:
            stored.close()


def _open(source: Source) -> tuple[Weights, bool]:
    if isinstance(source, Weights):
        return source, False
    if isinstance(source, Mapping):
        return ArrayWeights(source), False
    return open_weights(source), True


# --- reading the candidate as its engine dequantizes it -------------------------------------------------------

_SCALE_SUFFIXES = ("_scale_inv", "_scale")


class _Dequantized:
    """The candidate's weights in float32, scales applied and folded into their weight's row (GGUF files are
    dequantized by their reader already; GPTQ and AWQ packs become the ``weight`` they stand for)."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self._last: tuple[str, np.ndarray] | None = None
        self.packs = find_packed_layers(weights)
        names = set(weights.tensors)
        self.scale_of: dict[str, str] = {}
        for tensor in names:
            for suffix in _SCALE_SUFFIXES:
                if tensor.endswith(suffix) and tensor[: -len(suffix)] in names:
                    self.scale_of[tensor[: -len(suffix)]] = tensor
        packed = {part for pack in self.packs.values() for part in pack.parts}
        self.tensors: dict[str, TensorInfo] = {
            tensor: info
            for tensor, info in weights.tensors.items()
            if tensor not in self.scale_of.values() and tensor not in packed
        }
        for name, pack in self.packs.items():
            nbytes = sum(weights.tensors[part].nbytes for part in pack.parts)
            self.tensors[name] = TensorInfo(name, pack.shape, pack.kind, nbytes, weights.path)

    def applied(self, tensor: str) -> str:
        if tensor in self.packs:
            return self.packs[tensor].kind
        dtype = self.weights.tensors[tensor].dtype
        scale = self.scale_of.get(tensor)
        return f"{dtype} × {scale.rsplit('.', 1)[-1]}" if scale else dtype

    def nbytes(self, tensor: str) -> int:
        if tensor in self.packs:
            return self.tensors[tensor].nbytes
        scale = self.scale_of.get(tensor)
        return self.weights.tensors[tensor].nbytes + (self.weights.tensors[scale].nbytes if scale else 0)

    def read(self, tensor: str) -> np.ndarray:
        """The tensor in float32 (the last one read is kept: a merged expert tensor serves all its experts)."""
        if self._last is not None and self._last[0] == tensor:
            return self._last[1]
        values = self._read(tensor)
        self._last = (tensor, values)
        return values

    def _read(self, tensor: str) -> np.ndarray:
        if tensor in self.packs:
            return self.packs[tensor].dequantize()
        values = np.asarray(self.weights[tensor], dtype=np.float32)
        scale_name = self.scale_of.get(tensor)
        if scale_name is None:
            return values
        scale = np.asarray(self.weights[scale_name], dtype=np.float32)
        if scale_name.endswith("_scale_inv") and values.ndim == 2 and scale.ndim == 2:
            tile = _tile_size(values.shape, scale.shape)
            if tile is None:
                raise ValueError(
                    f"{scale_name} of shape {scale.shape} fits no square tiling of {tensor}'s {values.shape}"
                )
            rows, cols = values.shape
            tiles = np.repeat(np.repeat(scale, tile, axis=0), tile, axis=1)[:rows, :cols]
            return values * tiles  # DeepSeek-V3 inference/kernel.py weight_dequant: x * s per tile
        if scale.size == 1:
            return values * scale.reshape(())
        return values * scale.reshape(values.shape[0], *([1] * (values.ndim - 1)))  # per output channel


def _tile_size(shape: tuple[int, ...], scales: tuple[int, ...]) -> int | None:
    """The square tile whose count of started tiles gives the scale grid (DeepSeek's 128 first; partial tiles at
    the edges have a scale of their own and no padding)."""
    for tile in (128, 64, 256, 32, 512, 16):
        if -(-shape[0] // tile) == scales[0] and -(-shape[1] // tile) == scales[1]:
            return tile
    return None


# --- matching names ---------------------------------------------------------------------------------------------

Transform = Callable[[np.ndarray], np.ndarray] | None
Match = tuple[str | None, Transform, int | None]
"""The candidate's tensor, what to do to the original first, and the expert it is within a merged 3-D tensor."""
Matcher = Callable[[str, TensorInfo], Match]

_EXPERT = re.compile(r"\.experts\.(\d+)\.")


def _same_names(tensor: str, info: TensorInfo) -> Match:
    return tensor, None, None


def _gguf_names(reference: Weights, candidate: Weights) -> Matcher:
    """Hugging Face names to the GGUF file's, through gguf-py's map for the file's architecture."""
    import gguf

    metadata = getattr(candidate, "metadata", {})
    arch = metadata.get("general.architecture", "")
    by_name = {value: key for key, value in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in by_name:
        raise ValueError(f"{candidate.path}: gguf-py knows no architecture {arch!r}; cannot map its tensor names")
    blocks = int(metadata.get(f"{arch}.block_count", 0) or 0)
    names = gguf.get_tensor_name_map(by_name[arch], max(blocks, 1))
    heads = int(metadata.get(f"{arch}.attention.head_count", 0) or 0)
    kv_heads = int(metadata.get(f"{arch}.attention.head_count_kv", heads) or heads)

    def match(tensor: str, info: TensorInfo) -> Match:
        expert = None
        found = _EXPERT.search(tensor)
        if found:  # the converter merges a layer's experts into one 3-D tensor: this one is a slice of it
            expert = int(found[1])
            tensor = _EXPERT.sub(".experts.", tensor, count=1)
        mapped = names.get_name(tensor, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            return None, None, None
        if not mapped.endswith((".weight", ".bias")):
            mapped += ".weight"
        if arch == "llama" and heads and mapped.endswith(("attn_q.weight", "attn_k.weight")):
            groups = heads if mapped.endswith("attn_q.weight") else kv_heads
            return mapped, lambda w, n=groups: _rotary_permute(w, n), expert
        return mapped, None, expert

    return match


def _rotary_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's ``LlamaModel.permute``: each head's rows from halves to interleaved pairs."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


# --- rows ---------------------------------------------------------------------------------------------------------


def _measure(
    reference: Weights,
    view: _Dequantized,
    tensor: str,
    counterpart: str,
    transform: Transform,
    expert: int | None,
    column: str,
) -> ReportRow:
    info = reference.tensors[tensor]
    original = np.asarray(reference[tensor], dtype=np.float32)
    if transform is not None:
        original = transform(original)
    try:
        approx = view.read(counterpart)
    except ValueError as error:  # a layout not supported yet: the row says so and the comparison goes on
        return _placeholder(info, column, MISSING, str(error))
    nbytes = view.nbytes(counterpart)
    if expert is not None:
        if approx.ndim != 3 or expert >= approx.shape[0]:
            return _placeholder(info, column, MISSING, f"{counterpart} holds no expert {expert}")
        nbytes //= approx.shape[0]
        approx = approx[expert]
    if approx.size != original.size:
        return _placeholder(info, column, MISSING, f"the candidate's {counterpart} has shape {approx.shape}")
    stats = error_stats(original, approx.reshape(original.shape))
    note = "" if counterpart == tensor else f"as {counterpart}" + ("" if expert is None else f"[{expert}]")
    return ReportRow.from_stats(info, column, view.applied(counterpart), nbytes, stats, note=note)


def _placeholder(info: TensorInfo, column: str, applied: str, note: str) -> ReportRow:
    nan = float("nan")
    return ReportRow(
        tensor=info.name, shape=info.shape, dtype=info.dtype, params=info.size, scheme=column, applied=applied,
        bytes=0, bits_per_weight=0.0, rmse=nan, rel_rmse=nan, sqnr_db=nan, max_abs=nan, cosine=nan, saturated=0,
        flushed=0, nan=0, note=note,
    )  # fmt: skip
