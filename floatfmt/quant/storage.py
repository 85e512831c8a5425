"""The one resolver of storage names: a scheme, a format, a GGML type, or a llama.cpp file type.

Whatever a user writes where storage is asked for (``quantize``, a report's columns, ``footprint(weights=...)``,
a KV cache, ``roofline``), :func:`resolve` turns it into one object: a :class:`~floatfmt.quant.scheme.Scheme`
(one way of storing every matrix; plain formats become casts, GGML types their block schemes) or a
:class:`~floatfmt.quant.filetypes.FileType` (llama-quantize's per-tensor choices). The order of lookup:

1. a ``Scheme`` or a format object passes through (a format as a plain cast);
2. a registered scheme name (``mxfp4``, ``q4_0``; any case);
3. a llama.cpp file type (``Q4_K_M``; any case, except that a name which is also a block type is the file
   type only in capitals: ``Q6_K`` is the file type, ``q6_k`` every matrix in Q6_K);
4. a GGML type (``Q4_K``, ``IQ4_XS``, ``F16``; any case): its block scheme (``F32``/``F16``/``BF16`` as casts);
5. a format name (``e4m3``, ``bf16``, ``float8_e4m3fn``): a plain cast.

Example:
    >>> from floatfmt.quant.storage import resolve
    >>> resolve("mxfp4").name, resolve("e4m3").name, resolve("Q4_K").name, resolve("Q4_K_M").name
    ('mxfp4', 'float8_e4m3fn', 'q4_k', 'Q4_K_M')
    >>> resolve("q4_k").storage_bytes((4096, 4096)), resolve("bf16").storage_bytes((4096, 4096))
    (9437184, 33554432)
"""

from __future__ import annotations

import difflib
import functools

from floatfmt.formats import Format, aliases, formats, get_format
from floatfmt.quant.filetypes import FILE_TYPES, FileType, file_type
from floatfmt.quant.rules.gguf import GGML_TYPES, ggml_type
from floatfmt.quant.scheme import Scheme
from floatfmt.quant.schemes import find_scheme, schemes

__all__ = ["Storage", "UnknownStorageError", "cache_bytes", "ggml_scheme", "resolve", "resolve_scheme"]

Storage = Scheme | FileType

_CAST_TYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64"}
"""GGML types that are plain formats."""


class UnknownStorageError(ValueError):
    """A name that is no scheme, file type, GGML type or format; the message lists close matches."""


def resolve(storage: Scheme | Format | str) -> Storage:
    """The scheme or file type a storage name means (see the module's lookup order).

    Raises:
        UnknownStorageError: (a ``ValueError``) for a name that is none of them, listing close matches.
    """
    if isinstance(storage, Scheme):
        return storage
    if not isinstance(storage, str):
        return _cast(get_format(storage).name)
    text = storage.strip()
    registered = find_scheme(text)
    if registered is not None and not (text.isupper() and file_type(text) is not None):
        return registered
    found = file_type(text)
    if found is not None:
        return found
    if text.lower() in GGML_TYPES:
        return ggml_scheme(text)
    try:
        fmt = get_format(text)
    except ValueError:
        raise UnknownStorageError(_unknown(text)) from None
    return _cast(fmt.name)


def resolve_scheme(storage: Scheme | Format | str) -> Scheme:
    """Like :func:`resolve`, for where one scheme must serve every tensor: a name that is both a file type and a
    block type (``Q6_K``) means the block type here.

    Raises:
        UnknownStorageError: for an unknown name.
        ValueError: for a llama.cpp file type, whose tensors differ (a report or a footprint takes it).
    """
    found = resolve(storage)
    if isinstance(found, FileType) and isinstance(storage, str) and storage.strip().lower() in GGML_TYPES:
        return ggml_scheme(storage)
    if isinstance(found, FileType):
        raise ValueError(
            f"{found.name} is a llama.cpp file type, a different GGML type per tensor: give it to quant_report or "
            f"footprint, or quantize one tensor with a block type such as {found.base.lower()!r}"
        )
    return found


def ggml_scheme(name: str) -> Scheme:
    """The scheme of a GGML type given by its GGML name in any case (``Q6_K`` here is the block type)."""
    kind = ggml_type(name)
    if kind.name in _CAST_TYPES:
        return _cast(_CAST_TYPES[kind.name])
    for name in (kind.name, f"gguf_{kind.name}"):  # GGUF's MXFP4 is gguf_mxfp4: mxfp4 is OCP's
        registered = find_scheme(name)
        if registered is not None and registered.scale_rule == "gguf":
            return registered
    return _ggml_layout_scheme(kind.name)


@functools.cache
def _ggml_layout_scheme(name: str) -> Scheme:
    return Scheme(name, name, (1, ggml_type(name).block_size), "float16", "gguf", reference="llama.cpp ggml")


@functools.cache
def _cast(format_name: str) -> Scheme:
    registered = find_scheme(format_name)
    if registered is not None and registered.scale_rule == "cast":
        return registered
    return Scheme(format_name, format_name, scale_rule="cast", reference="a plain cast")


def cache_bytes(elements: int, storage: Scheme | Format | str) -> float:
    """Bytes of ``elements`` cached values in a format (``bf16``, ``fp8``, ...) or a block scheme (``q8_0``,
    ``q4_0``: blocks along each head, as llama.cpp stores its cache), whole blocks assumed.

    Raises:
        ValueError: for a file type or a scheme whose blocks span rows (a cache has no such tiles).
    """
    scheme = resolve_scheme(storage)
    block_rows, block_cols = scheme.block
    if block_rows > 1:
        raise ValueError(f"{scheme.name} has {block_rows}-row tiles: a KV cache is stored row by row")
    if block_cols == 0:
        # a cast, or a per-tensor scale (a few bytes per layer): only the elements count
        element = scheme.formats.element
        assert element is not None
        return elements * element.bits / 8
    return elements * scheme.storage_bytes((1, block_cols)) / block_cols


def _unknown(text: str) -> str:
    names = [*schemes(), *FILE_TYPES, *(n.upper() for n in GGML_TYPES), *formats(), *aliases()]
    close = difflib.get_close_matches(text, names, n=3) or difflib.get_close_matches(text.lower(), names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown scheme {text!r}.{hint} floatfmt.schemes() lists the schemes; llama.cpp file types "
        f"({', '.join(FILE_TYPES)}), GGML types (Q4_K, IQ4_XS, ...) and formats (floatfmt.formats()) work too."
    )
