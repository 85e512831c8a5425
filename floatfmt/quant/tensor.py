"""Quantize a tensor with a scheme: check the input, look the scheme's rule up, and let it work.

Example:
    >>> import numpy as np, floatfmt
    >>> w = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    >>> q = floatfmt.quantize(w, "mxfp4")
    >>> q.nbytes, q.bits_per_weight
    (69632, 4.25)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from floatfmt._parallel import CHUNK_ELEMENTS, map_chunks
from floatfmt.codec import as_array, is_float32_exact
from floatfmt.quant.quantized import QuantizedTensor
from floatfmt.quant.scheme import Scheme, rows_cols
from floatfmt.quant.storage import resolve_scheme

__all__ = ["QuantizedTensor", "approximate", "may_be_nonfinite", "needs_tensor_amax", "quantize", "row_block"]


def quantize(
    w: Any, scheme: Scheme | str, *, tensor_amax: float | None = None, importance: Any = None, **options: Any
) -> QuantizedTensor:
    """Quantize ``w`` with a scheme (a name from ``floatfmt.schemes()``, a GGML type, a format, or a ``Scheme``).

    Keyword options replace fields of the scheme, e.g. ``rounding="nearest_away"``.
    ``tensor_amax`` is the largest magnitude of the whole tensor when ``w`` is a
    block of its rows: per-tensor scales (``block=(0, 0)``, NVFP4's fp32 scale)
    then come from it, so the rows quantize exactly as inside the whole tensor.
    Input is converted to float32 first, as every reference computes in float32.
    Blocks run along the last axis; leading axes are rows. Columns (and, for
    tiles, rows) that do not fill a block are padded with zeros, as the MX
    reference and DeepGEMM do; GGUF types need whole blocks, as gguf-py does.
    ``importance`` is one non-negative weight per column (per input feature), as ``llama-quantize --imatrix``
    uses it: the K-quants then follow ``quantize_<type>``'s importance-weighted searches.

    Raises:
        ValueError: for NaN or infinity where the scheme's reference has no rule
            for them (every scheme but the MX ones and the plain casts), a
            row length GGUF cannot block, or a ``tensor_amax`` the scheme has no use for.
        TypeError: for an array that is not real-valued.
    """
    chosen, matrix, shape, weights = _prepared(w, scheme, tensor_amax, importance, options)
    return chosen.rule.quantize(matrix, chosen, shape=shape, tensor_amax=tensor_amax, importance=weights)


def approximate(
    w: Any,
    scheme: Scheme | str,
    *,
    tensor_amax: float | None = None,
    out: np.ndarray | None = None,
    check_finite: bool = True,
    **options: Any,
) -> np.ndarray:
    """``quantize(w, scheme).dequantize()``, bit for bit, without keeping the codes: what a tensor stored in the
    scheme stands for (fake quantization). Block rules whose elements round to nearest-even do it in one pass.
    ``out``, a C-contiguous float32 array of ``w``'s shape, receives the values (a loop over tensors can then
    reuse one buffer: fresh pages cost about a nanosecond a value). ``check_finite=False`` skips the search for NaN
    and infinity (two reads of the tensor), for a caller that has checked already, as SciPy's option of that name
    does: a non-finite value is then undefined behaviour.

    Example:
        >>> import numpy as np, floatfmt
        >>> from floatfmt.quant import approximate
        >>> w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
        >>> np.array_equal(approximate(w, "nvfp4"), floatfmt.quantize(w, "nvfp4").dequantize())
        True

    Raises:
        ValueError, TypeError: as :func:`quantize`, and for an ``out`` of another shape or dtype.
    """
    chosen, matrix, shape, _ = _prepared(w, scheme, tensor_amax, None, options, check_finite)
    target = None
    if out is not None:
        if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous float32 array of shape {shape}")
        target = out.reshape(matrix.shape)
    values = chosen.rule.approximate(matrix, chosen, shape=shape, tensor_amax=tensor_amax, out=target)
    return out if out is not None else values.reshape(shape)


def _prepared(
    w: Any,
    scheme: Scheme | str,
    tensor_amax: float | None,
    importance: Any,
    options: dict[str, Any],
    check_finite: bool = True,
) -> tuple[Scheme, np.ndarray, tuple[int, ...], np.ndarray | None]:
    """The scheme, the input as a float32 ``rows × cols`` matrix, its shape and the importance vector, checked."""
    chosen = resolve_scheme(scheme)
    if options:
        chosen = chosen.replace(**options)
    array = as_array(w)
    if array.dtype.kind not in "fiu" and not is_float32_exact(array.dtype):
        raise TypeError(f"expected a real-valued tensor, got dtype {array.dtype}")
    values = array.astype(np.float32, copy=False)  # the references all compute in float32
    shape = tuple(int(n) for n in array.shape)
    matrix = values.reshape(rows_cols(shape))
    rule = chosen.rule
    if check_finite and not rule.handles_nonfinite and matrix.size and may_be_nonfinite(matrix):
        bad = int(np.count_nonzero(~np.isfinite(matrix)))
        if bad:
            raise ValueError(
                f"the tensor has {bad} NaN or infinite values; {chosen.name}'s reference has no rule for them "
                "(MX schemes give such blocks a NaN scale): clean the tensor first"
            )
    if tensor_amax is not None and not rule.uses_tensor_amax(chosen):
        raise ValueError(f"{chosen.name} has no per-tensor scale for tensor_amax to set")
    weights = None
    if importance is not None:
        if not rule.uses_importance(chosen):
            raise ValueError(f"{chosen.name} takes no importance vector; the K-quants (q2_k ... q6_k) do")
        weights = np.asarray(importance, dtype=np.float32).reshape(-1)
        columns = rows_cols(shape)[1]
        if weights.size != columns or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                f"importance needs {columns} finite, non-negative weights (one per column), got {weights.size} values"
            )
    return chosen, matrix, shape, weights


def may_be_nonfinite(matrix: np.ndarray) -> bool:
    """False when every value is finite: ``max - min`` of each cache-sized run of rows, on the threads (NaN and
    infinity carry through both, with no temporary the size of the tensor). True may also be a finite range too
    wide for float32, which the caller's count then clears."""
    if matrix.size == 0:
        return False
    matrix = matrix.reshape(matrix.shape[0] if matrix.ndim > 1 else 1, -1)
    rows, cols = matrix.shape

    def work(start: int, stop: int) -> bool:
        part = matrix[start:stop]
        return not np.isfinite(part.max() - part.min())

    return any(map_chunks(work, rows, max(1, CHUNK_ELEMENTS // max(cols, 1)), item_elements=cols))


def needs_tensor_amax(scheme: Scheme) -> bool:
    """Whether the scheme's scales depend on the whole tensor's largest magnitude (and on nothing else global).

    Such a tensor can be quantized in blocks of rows given ``tensor_amax``; per-tensor
    min/max (asymmetric) schemes and column-spanning blocks cannot.
    """
    return scheme.rule.uses_tensor_amax(scheme)


def row_block(scheme: Scheme, cols: int) -> int | None:
    """Rows a quantization block spans in a matrix of ``cols`` columns, so a tensor can be cut into independent
    blocks of that many rows (given ``tensor_amax`` where :func:`needs_tensor_amax`); ``None`` when it needs the
    whole tensor at once."""
    return scheme.rule.row_block(scheme, cols)
