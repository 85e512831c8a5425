"""How much accuracy a checkpoint loses in each quantization scheme, tensor by tensor, in bounded memory.

``quant_report`` streams a checkpoint: one tensor at a time, and each tensor in
blocks of rows cut at the schemes' block boundaries (per-tensor scales are
computed from a first pass over the tensor's largest magnitude), so every block
quantizes exactly as it would inside the whole tensor. Peak memory is a few
times ``chunk_elements`` float32 values per thread and worker, whatever the checkpoint's
size; only ``nf4_dq`` (whose scales are centred on their mean over the tensor)
and custom schemes with blocks spanning every row need a whole tensor at once.

Example:
    >>> import numpy as np, floatfmt
    >>> rng = np.random.default_rng(0)
    >>> weights = {"layers.0.mlp.weight": rng.standard_normal((256, 512)).astype(np.float32),
    ...            "layers.0.norm.weight": np.ones(512, np.float32)}
    >>> report = floatfmt.quant_report(weights, ["mxfp8_e4m3", "mxfp4"], progress=False)
    >>> [(s.scheme, s.bytes, round(s.sqnr_db, 1)) for s in report.summary]
    [('mxfp8_e4m3', 137216, 30.6), ('mxfp4', 71680, 18.8)]
"""

from __future__ import annotations

import csv
import fnmatch
import html
import importlib.util
import io
import json
import math
import os
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from floatfmt._display import format_bytes, json_float
from floatfmt._parallel import map_chunks, scratch
from floatfmt._rowlog import RowLog, TensorFailed
from floatfmt.io import ArrayWeights, TensorInfo, Weights, open_weights
from floatfmt.memory.footprint import component_of
from floatfmt.quant.filetypes import FileType
from floatfmt.quant.metrics import ErrorAccumulator, ErrorStats
from floatfmt.quant.scheme import Scheme
from floatfmt.quant.storage import ggml_scheme, resolve, resolve_scheme
from floatfmt.quant.tensor import approximate, may_be_nonfinite, needs_tensor_amax, row_block

__all__ = ["STORED", "QuantReport", "ReportError", "ReportRow", "SchemeSummary", "quant_report"]

STORED = "stored"
"""What a tensor kept at its stored precision is marked with in ``ReportRow.applied``."""

STEPS = 8
"""A tensor is measured in at least this many blocks of rows where it has them, for the threads to share."""

CHUNK_ELEMENTS = 1 << 20
"""Elements per block of rows read and quantized at a time (4 MB as float32); the package's threads each take
blocks of their own."""

JOB_BYTES = 256 << 20
"""Stored bytes of tensors per job handed to an executor."""
JOB_TENSORS = 4
"""Tensors per job at most: a job's rows reach ``output`` together, so an interrupted report loses little."""


@dataclass(frozen=True)
class ReportRow:
    """One tensor under one scheme of the report.

    ``scheme`` is the report's column; ``applied`` is what this tensor really
    gets under it: the scheme, an override, or ``"stored"`` (kept as it is
    stored, not measured). ``measured`` is the fraction of the tensor's rows the
    error was measured on; below 1, ``sqnr_db_stderr`` is the standard error of
    ``sqnr_db`` from that sampling and the counts are over the measured rows.
    """

    tensor: str
    shape: tuple[int, ...]
    dtype: str
    params: int
    scheme: str
    applied: str
    bytes: int
    bits_per_weight: float
    rmse: float
    rel_rmse: float
    sqnr_db: float
    max_abs: float
    cosine: float
    saturated: int
    flushed: int
    nan: int
    measured: float = 1.0
    sqnr_db_stderr: float = 0.0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["shape"] = list(self.shape)
        return row

    @classmethod
    def from_stats(
        cls, info: TensorInfo, scheme: str, applied: str, nbytes: int, stats: ErrorStats, **extra: Any
    ) -> ReportRow:
        """The row of a tensor stored in ``nbytes`` under ``applied``, whose error is ``stats`` (``extra``:
        ``measured``, ``sqnr_db_stderr``, ``note``)."""
        return cls(
            tensor=info.name,
            shape=info.shape,
            dtype=info.dtype,
            params=info.size,
            scheme=scheme,
            applied=applied,
            bytes=nbytes,
            bits_per_weight=8 * nbytes / info.size if info.size else 0.0,
            rmse=stats.rmse,
            rel_rmse=stats.rel_rmse,
            sqnr_db=stats.sqnr_db,
            max_abs=stats.max_abs,
            cosine=stats.cosine,
            saturated=stats.saturated,
            flushed=stats.flushed,
            nan=stats.nan,
            **extra,
        )


@dataclass(frozen=True)
class SchemeSummary:
    """One scheme over the whole checkpoint.

    ``bytes`` and ``bits_per_weight`` count every tensor, kept ones at their
    stored size. ``rel_rmse`` is the root of the parameter-weighted mean of the
    quantized tensors' squared relative errors, and ``sqnr_db`` the same in
    decibels (``-20 log10 rel_rmse``); ``worst`` lists the tensors with the
    lowest SQNR.
    """

    scheme: str
    params: int
    bytes: int
    bits_per_weight: float
    quantized_params: int
    rel_rmse: float
    sqnr_db: float
    sqnr_db_stderr: float
    worst: tuple[tuple[str, float], ...]

    @property
    def gb(self) -> float:
        return self.bytes / 1e9

    @property
    def gib(self) -> float:
        return self.bytes / 2**30

    def as_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["worst"] = [[name, json_float(sqnr)] for name, sqnr in self.worst]
        summary.update(gb=self.gb, gib=self.gib)
        return summary


@dataclass(frozen=True, repr=False)
class QuantReport:
    """The rows (one per tensor and scheme) and the per-scheme summary of :func:`quant_report`."""

    source: str
    schemes: tuple[str, ...]
    rows: list[ReportRow]
    summary: list[SchemeSummary]
    sample: float | None = None
    seed: int = 0
    seconds: float = field(default=0.0, compare=False)

    def row(self, tensor: str, scheme: str) -> ReportRow:
        """The row of one tensor under one scheme."""
        for row in self.rows:
            if row.tensor == tensor and row.scheme == scheme:
                return row
        raise KeyError(f"no row for tensor {tensor!r} under scheme {scheme!r}")

    @property
    def tensors(self) -> list[str]:
        return list(dict.fromkeys(row.tensor for row in self.rows))

    # --- output ------------------------------------------------------------------------------

    def to_pandas(self, summary: bool = False) -> Any:
        """The rows (or, with ``summary=True``, the per-scheme summary, its worst tensors as one readable string
        per scheme: ``"name (12.3 dB); ..."``) as a pandas DataFrame."""
        import pandas as pd

        if summary:
            records = []
            for s in self.summary:
                record = s.as_dict()
                record["worst"] = "; ".join(
                    f"{name} ({sqnr:.2f} dB)" if math.isfinite(sqnr) else f"{name} (exact)" for name, sqnr in s.worst
                )
                records.append(record)
            return pd.DataFrame(records)
        return pd.DataFrame([row.as_dict() for row in self.rows])

    def to_json(self, indent: int | None = 2) -> str:
        """Everything as JSON; the infinite SQNR of an exact tensor is ``null``, with ``"exact": true``."""

        def finite(record: dict[str, Any]) -> dict[str, Any]:  # exact tensors' infinite SQNR: null, and a flag
            numbers = {key: json_float(v) if isinstance(v, float) else v for key, v in record.items()}
            return {**numbers, "exact": record.get("sqnr_db") == math.inf}

        rows = [finite(row.as_dict()) for row in self.rows]
        summary = [finite(s.as_dict()) for s in self.summary]
        document = {"source": self.source, "schemes": list(self.schemes), "sample": self.sample, "seed": self.seed}
        return json.dumps({**document, "summary": summary, "rows": rows}, indent=indent)

    def to_csv(self) -> str:
        """The rows as CSV."""
        out = io.StringIO()
        names = list(ReportRow.__dataclass_fields__)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for row in self.rows:
            writer.writerow("x".join(map(str, row.shape)) if n == "shape" else getattr(row, n) for n in names)
        return out.getvalue()

    def _summary_table(self) -> tuple[list[str], list[list[str]]]:
        sampled = self.sample is not None
        header = ["scheme", "size", "bits/weight", "SQNR dB" + (" ± se" if sampled else ""), "rel RMSE", "worst"]
        body = []
        for s in self.summary:
            sqnr = _db(s.sqnr_db) + (f" ± {s.sqnr_db_stderr:.2f}" if sampled else "")
            worst = f"{s.worst[0][0]} ({_db(s.worst[0][1])})" if s.worst else "-"
            body.append([s.scheme, format_bytes(s.bytes), f"{s.bits_per_weight:.3f}", sqnr, f"{s.rel_rmse:.4g}", worst])
        return header, body

    def _tensor_table(self) -> tuple[list[str], list[list[str]]]:
        header = ["tensor", "shape", "dtype", *(f"{name} SQNR dB" for name in self.schemes)]
        cells: dict[str, list[str]] = {}
        for row in self.rows:
            line = cells.setdefault(row.tensor, [row.tensor, "×".join(map(str, row.shape)), row.dtype])
            line.append(
                STORED
                if row.applied == STORED
                else _db(row.sqnr_db) + ("" if row.applied == row.scheme else f" ({row.applied})")
            )
        return header, list(cells.values())

    def _title(self) -> str:
        first = self.schemes[0] if self.schemes else None
        params = sum(r.params for r in self.rows if r.scheme == first)
        sampled = f", error measured on {self.sample:.0%} of rows" if self.sample is not None else ""
        return f"Quantization report for {self.source}: {len(self.tensors)} tensors, {params:,} parameters{sampled}"

    def to_markdown(self, tensors: bool = True) -> str:
        """The summary, then (with ``tensors``) each tensor's SQNR under each scheme, as Markdown tables."""
        parts = [f"**{self._title()}**", "", _markdown(*self._summary_table())]
        if tensors:
            parts += ["", _markdown(*self._tensor_table())]
        return "\n".join(parts) + "\n"

    def __str__(self) -> str:
        return f"{self._title()}\n\n{_text(*self._summary_table())}\n"

    def __repr__(self) -> str:
        return f"<QuantReport {self.source}: {len(self.tensors)} tensors × {len(self.schemes)} schemes>"

    def to_text(self, tensors: bool = True) -> str:
        """Plain-text tables for a terminal: the summary, then each tensor's SQNR under each scheme."""
        return str(self) + (f"\n{_text(*self._tensor_table())}\n" if tensors else "")

    def _repr_html_(self) -> str:
        def table(header: list[str], body: list[list[str]]) -> str:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in body)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

        tensors = table(*self._tensor_table())
        return (
            f"<div><p><b>{html.escape(self._title())}</b></p>{table(*self._summary_table())}"
            f"<details><summary>{len(self.tensors)} tensors</summary>{tensors}</details></div>"
        )

    def plot(self, ax: Any = None) -> Any:
        """SQNR of every quantized tensor, in checkpoint order, one line per scheme (needs matplotlib)."""
        from floatfmt.plot import plot_report

        return plot_report(self, ax=ax)


def _db(value: float) -> str:
    return "exact" if value == math.inf else f"{value:.2f}"


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body])


def _text(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *body]]
    return "\n".join(line.rstrip() for line in lines)


# --- choosing what each tensor gets ------------------------------------------------------------


Patterns = str | Sequence[str] | None


def _patterns(patterns: Patterns) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns or [])


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _applied(
    info: Any,
    column: Scheme | Mapping[str, Scheme | None],
    include: list[str],
    exclude: list[str],
    overrides: list[tuple[str, Scheme | None]],
    min_ndim: int,
) -> Scheme | None:
    """The scheme a tensor gets in one column of the report, or None to keep it as stored. A file-type column
    is the type llama.cpp gives each tensor (``None`` where it keeps the tensor in float32)."""
    if not info.floating:
        return None
    for pattern, override in overrides:
        if fnmatch.fnmatchcase(info.name, pattern):
            return override
    if isinstance(column, Mapping):
        return column.get(info.name)
    if len(info.shape) < min_ndim or _matches(info.name, exclude):
        return None
    if include and not _matches(info.name, include):
        return None
    return column


@dataclass(frozen=True)
class _CheckpointTensor:
    """A checkpoint tensor as llama.cpp's file-type rules see it."""

    name: str
    shape: tuple[int, ...]
    layer: int | None
    component: str

    @property
    def part(self) -> str:
        return self.component


class CheckpointModel:
    """What llama.cpp's file-type rules need to know of a model, read from its tensor names (and the
    ``config.json`` beside the checkpoint, when there is one): layers, experts, tied embeddings."""

    def __init__(self, weights: Weights) -> None:
        config: dict[str, Any] = {}
        where = Path(weights.path)
        candidate = (where if where.is_dir() else where.parent) / "config.json"
        if candidate.is_file():
            try:
                loaded = json.loads(candidate.read_text(encoding="utf-8"))
                config = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                config = {}
        layer_of = {  # model.layers.N (Llama and most), encoder.layer.N (BERT), transformer.h.N (GPT-2)
            name: int(found[1]) if (found := re.search(r"\.(?:layers|layer|h|blocks)\.(\d+)\.", name)) else None
            for name in weights.tensors
        }
        layers = [layer for layer in layer_of.values() if layer is not None]
        self.num_layers = int(config.get("num_hidden_layers") or (max(layers) + 1 if layers else 0))
        experts: dict[int, set[int]] = {}
        for name in weights.tensors:
            found = re.search(r"\.layers\.(\d+)\..*experts\.(\d+)\.", name)
            if found:
                experts.setdefault(int(found[1]), set()).add(int(found[2]))
        self.num_experts = max((len(e) for e in experts.values()), default=0)
        self.first_dense_layers = min(experts, default=0)
        self.shared_experts = int(any("shared_expert" in name for name in weights.tensors))
        self.tie_embeddings = "lm_head.weight" not in weights.tensors
        self.architecture = str(config.get("model_type", "llama"))
        self.config: dict[str, Any] = {
            key: config[key] for key in ("torch_dtype", "num_attention_heads", "num_key_value_heads") if key in config
        }
        if "torch_dtype" not in self.config:  # no config.json: the matrices' own storage says what the converter keeps
            stored = [info.dtype for info in weights.tensors.values() if len(info.shape) >= 2]
            common = max(set(stored), key=stored.count) if stored else "BF16"
            self.config["torch_dtype"] = {"BF16": "bfloat16", "F16": "float16"}.get(common, "float32")
        self._tensors = [
            _CheckpointTensor(
                info.name, info.shape, layer_of[info.name], component_of(info.name, self.num_layers or None)
            )
            for info in weights.tensors.values()
        ]

    def tensors(self) -> list[_CheckpointTensor]:
        return self._tensors


def _file_type_column(model: CheckpointModel, file_type: FileType) -> dict[str, Scheme | None]:
    """The scheme of every tensor of a checkpoint in a llama.cpp file type: its GGML type, or ``None`` for the
    tensors llama.cpp keeps in float32 (vectors, norms, the router); F16/BF16 matrices as casts."""
    types = file_type.types(model)
    return {name: None if kind == "F32" else ggml_scheme(kind) for name, kind in types.items()}


# --- measuring one tensor ----------------------------------------------------------------------


@dataclass
class _Measured:
    stats: ErrorStats
    measured: float
    sqnr_db_stderr: float


def _measure_tensor(
    weights: Weights, name: str, schemes: list[Scheme], sample: float | None, seed: int, chunk_elements: int
) -> dict[Scheme, _Measured]:
    """Quantize one tensor with each scheme, block of rows by block of rows, and accumulate the errors."""
    info = weights.tensors[name]
    if info.size == 0:  # nothing to measure, whatever its dimensions claim (work follows elements, not shapes)
        return {s: _Measured(ErrorAccumulator().stats(), 1.0, 0.0) for s in schemes}
    rows, cols = info.rows, info.cols
    steps = [row_block(s, cols) for s in schemes]
    unit = (rows or 1) if None in steps or rows == 0 else math.lcm(*(s for s in steps if s is not None))
    units = -(-rows // unit) if rows else 0
    chunk_units = max(1, chunk_elements // max(unit * cols, 1))

    chosen = np.arange(units)
    if sample is not None and units > 1:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        count = min(units, max(2, math.ceil(sample * units)))
        chosen = np.sort(rng.choice(units, count, replace=False))

    def read_units(unit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of these units, float32, and where each unit starts among them."""
        pieces: list[np.ndarray] = []
        starts: list[int] = []
        position = 0
        for run in np.split(unit_ids, np.flatnonzero(np.diff(unit_ids) != 1) + 1):
            start, stop = int(run[0]) * unit, min(int(run[-1] + 1) * unit, rows)
            pieces.append(weights.read_rows(name, start, stop))
            starts.extend(range(position, position + stop - start, unit))
            position += stop - start
        block = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return _as_float32(block, _REUSED_BLOCK), np.asarray(starts, dtype=np.intp)

    tensor_amax = None
    if any(needs_tensor_amax(s) for s in schemes) and rows:
        # the per-tensor scales' largest magnitude: of the whole tensor, or with ``sample`` of the sampled row
        # blocks alone, so that a 5% sample reads 5% of the bytes (the scale is then an estimate too)
        scanned = chosen if sample is not None else np.arange(units)
        tensor_amax = 0.0
        for first in range(0, len(scanned), chunk_units):
            block, _ = read_units(scanned[first : first + chunk_units])
            tensor_amax = max(tensor_amax, float(np.max(np.abs(block), initial=0.0)))

    def measure_step(first: int, stop: int) -> list[tuple[ErrorAccumulator, np.ndarray | None]]:
        """One block of row units, every scheme: their error sums (and per-unit sums when sampling)."""
        block, starts = read_units(chosen[first:stop])
        _tick(info.nbytes * (stop - first) // max(units, 1))
        energy = np.add.reduceat(np.einsum("ij,ij->i", block, block, dtype=np.float64), starts) if sample else None
        measured = []
        check_finite = may_be_nonfinite(block)  # once for every scheme: where it may, each scheme's own rule decides
        for scheme in schemes:
            scheme_amax = tensor_amax if needs_tensor_amax(scheme) else None
            target = _reused(_REUSED_APPROX, block.shape)
            approx = approximate(block, scheme, tensor_amax=scheme_amax, out=target, check_finite=check_finite)
            step_sums = ErrorAccumulator()
            step_sums.add(block, approx)
            units_sums = None
            if energy is not None:
                error = approx - block
                squares = np.einsum("ij,ij->i", error, error, dtype=np.float64)
                units_sums = np.stack([np.add.reduceat(squares, starts), energy])
            measured.append((step_sums, units_sums))
        return measured

    # the blocks of rows run on the package's threads (each one's loops then run serially inside it); their sums
    # are merged in block order, so the result does not depend on the number of threads
    sums = {s: ErrorAccumulator() for s in schemes}
    per_unit: dict[Scheme, list[np.ndarray]] = {s: [] for s in schemes}
    # at least STEPS blocks where the tensor has the rows (so that threads share a tensor), a count that does not
    # depend on the machine: the sums' grouping, and so their last bits, are the same on every one
    step_units = max(1, min(chunk_units, -(-len(chosen) // STEPS)))
    for step in map_chunks(measure_step, len(chosen), step_units, item_elements=unit * max(cols, 1)):
        for scheme, (step_sums, units_sums) in zip(schemes, step, strict=True):
            sums[scheme].merge(step_sums)
            if units_sums is not None:
                per_unit[scheme].append(units_sums)
    measured = len(chosen) / units if units else 1.0
    results = {}
    for scheme in schemes:
        stats = sums[scheme].stats()
        stderr = 0.0
        if sample is not None and per_unit[scheme]:
            stderr = _sqnr_stderr(np.concatenate(per_unit[scheme], axis=1), units)
        results[scheme] = _Measured(stats, measured, stderr)
    return results


_REUSED_BLOCK, _REUSED_APPROX = 16, 17
"""The per-thread buffers (``floatfmt._parallel.scratch`` slots) a block of rows and its approximation reuse: on
this kind of machine a fresh page costs about a microsecond, more than the work on the values it holds."""

_REUSE_AT_MOST = 1 << 22
"""Blocks larger than this (a tensor measured whole) get fresh arrays, so that no thread keeps a huge buffer."""


def _reused(slot: int, shape: tuple[int, ...]) -> np.ndarray | None:
    size = math.prod(shape)
    return scratch(slot, size, np.float32).reshape(shape) if size <= _REUSE_AT_MOST else None


def _as_float32(block: np.ndarray, slot: int) -> np.ndarray:
    """The values as float32 (a float32 block itself): BF16 by shifting its bits into place, exact and faster
    than its cast; into this thread's buffer ``slot`` where the block is not too large."""
    if block.dtype == np.float32:
        return block
    out = _reused(slot, block.shape)
    if block.dtype == ml_dtypes.bfloat16:
        wide = out.view(np.uint32) if out is not None else None
        return np.left_shift(block.view(np.uint16), 16, out=wide, dtype=np.uint32).view(np.float32)
    if out is None:
        return block.astype(np.float32)
    out[...] = block
    return out


def _sqnr_stderr(unit_sums: np.ndarray, population: int) -> float:
    """Standard error of ``10 log10(Σ ref² / Σ err²)`` from per-unit sums of a simple random sample of units:
    the ratio estimator's variance with the finite-population correction, carried to decibels."""
    errors, energies = unit_sums
    n = errors.size
    if n < 2 or errors.sum() == 0 or energies.sum() == 0:
        return 0.0
    ratio = errors.sum() / energies.sum()
    residual = errors - ratio * energies
    variance = (1 - n / population) * residual.var(ddof=1) / (n * energies.mean() ** 2)
    return float(10 / math.log(10) * math.sqrt(max(variance, 0.0)) / ratio)


def _rows_for_tensor(
    weights: Weights,
    name: str,
    applied: tuple[Scheme | None, ...],
    columns: tuple[str, ...],
    sample: float | None,
    seed: int,
    chunk_elements: int,
) -> list[ReportRow]:
    info = weights.tensors[name]
    notes: dict[Scheme, str] = {}
    storage: dict[Scheme, int] = {}
    for chosen in dict.fromkeys(s for s in applied if s is not None):
        try:
            storage[chosen] = chosen.storage_bytes(info.shape)
        except ValueError as error:
            notes[chosen] = f"kept as stored: {error}"
    measured = _measure_tensor(weights, name, list(storage), sample, seed, chunk_elements) if storage else {}
    exact = _Measured(ErrorStats(info.size, 0.0, 0.0, 0.0, math.inf, 0.0, 1.0, 0, 0, 0), 1.0, 0.0)
    rows = []
    for column, scheme in zip(columns, applied, strict=True):
        if scheme is None or scheme not in storage:
            applied_name, size, result = STORED, info.nbytes, exact
        else:
            applied_name, size, result = scheme.name, storage[scheme], measured[scheme]
        rows.append(
            ReportRow.from_stats(
                info,
                column,
                applied_name,
                size,
                result.stats,
                measured=result.measured,
                sqnr_db_stderr=result.sqnr_db_stderr,
                note=notes.get(scheme, "") if scheme is not None else "",
            )
        )
    return rows


def _run_job(
    weights: Weights,
    tasks: list[tuple[str, tuple[Scheme | None, ...]]],
    columns: tuple[str, ...],
    sample: float | None,
    seed: int,
    chunk_elements: int,
) -> list[list[ReportRow]]:
    """One unit of work for an executor: some tensors of one shard. Module-level, so processes can run it.

    Raises:
        TensorFailed: naming the tensor that failed, with the rows of the tensors done before it.
    """
    done: list[list[ReportRow]] = []
    for name, applied in tasks:
        try:
            done.append(_rows_for_tensor(weights, name, applied, columns, sample, seed, chunk_elements))
        except Exception as error:
            raise TensorFailed(name, f"{type(error).__name__}: {error}", done) from error
    return done


def _row_from_dict(row: Mapping[str, Any]) -> ReportRow:
    """A row as :meth:`ReportRow.as_dict` wrote it (JSON keeps every float exactly)."""
    return ReportRow(**{**row, "shape": tuple(row["shape"])})


class ReportError(RuntimeError):
    """A tensor of the report could not be measured: ``path``, ``tensor``, and the ``rows`` finished before it
    (also in the report's ``output`` file, when it has one: ``resume=True`` goes on from there)."""

    def __init__(self, path: str, tensor: str, message: str, rows: list[ReportRow]) -> None:
        super().__init__(f"{path}: tensor {tensor!r}: {message} ({len(rows)} rows finished before it are kept)")
        self.path, self.tensor, self.rows = path, tensor, rows


# --- the report ----------------------------------------------------------------------------------


def quant_report(
    source: str | os.PathLike[str] | Weights | Mapping[str, Any],
    schemes: str | Iterable[str | Scheme],
    *,
    include: Patterns = None,
    exclude: Patterns = None,
    overrides: Mapping[str, str | Scheme | None] | None = None,
    min_ndim: int = 2,
    sample: float | None = None,
    seed: int = 0,
    executor: Executor | None = None,
    progress: bool | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    output: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> QuantReport:
    """Quantize every tensor of a checkpoint with each scheme and measure what is lost.

    Args:
        source: a path :func:`floatfmt.open_weights` accepts, opened ``Weights``, or a mapping of name to array.
        schemes: scheme names (a list, or one string separated by commas) or ``Scheme`` objects: the columns.
        include: glob patterns (``fnmatch``, e.g. ``"*.mlp.*"``); when given, only matching tensors are quantized.
        exclude: glob patterns of tensors to keep at their stored precision.
        overrides: glob pattern to the scheme a matching tensor gets in every column (the first match wins),
            or ``"stored"``/``None`` to keep it: ``{"*embed*": "bf16", "*.gate.weight": "bf16"}``.
        min_ndim: tensors with fewer axes are kept (norms, biases); 2 quantizes the matrices.
        sample: measure the error on this fraction of each tensor's row blocks, chosen at random
            (reproducibly, from ``seed`` and the tensor's name), and give its standard error. Bytes stay exact.
        seed: the sampling seed.
        executor: a ``concurrent.futures.Executor`` (a process pool, dask's ``Client.get_executor()``) to spread
            the work over; the report is identical to the serial one.
        progress: a progress display, refreshed as blocks of rows are measured: tqdm's bar when tqdm is
            installed (a widget in a notebook), else a line on stderr; by default on a terminal and in a notebook.
        chunk_elements: elements per block of rows held in memory at a time.
        output: a file that receives each tensor's rows as soon as they are measured (JSON lines, flushed), so
            that an interrupted report loses nothing it finished.
        resume: with ``output``, skip the tensors the file already holds (from a report with the same source,
            columns and options) and add the rest; the result equals an uninterrupted run's, bit for bit.

    Raises:
        ValueError: for an unknown scheme, the same scheme twice, ``sample`` outside (0, 1], ``resume``
            without ``output``, or an ``output`` file that holds another report's rows.
        ReportError: when a tensor cannot be measured: it names the file and the tensor and keeps the rows done.
    """
    columns = _columns(schemes)
    if sample is not None and not 0 < sample <= 1:
        raise ValueError(f"sample is the fraction of rows to measure, in (0, 1]; got {sample}")
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be positive, got {chunk_elements}")
    if resume and output is None:
        raise ValueError("resume=True needs output=PATH: the file whose finished rows the report goes on from")
    opened_here = not isinstance(source, Weights | Mapping)
    if isinstance(source, Weights):
        weights = source
    elif isinstance(source, Mapping):
        weights = ArrayWeights(source)
    else:
        weights = open_weights(source)
    try:
        options = (include, exclude, overrides, min_ndim, sample, seed, executor, progress, chunk_elements)
        log = None
        if output is not None:
            header = {
                "source": str(weights.path),
                "columns": [column.name for column in columns],
                "include": _patterns(include),
                "exclude": _patterns(exclude),
                "overrides": {pattern: str(getattr(v, "name", v)) for pattern, v in (overrides or {}).items()},
                "min_ndim": min_ndim,
                "sample": sample,
                "seed": seed,
            }
            log = RowLog(output, header, resume=resume)
        try:
            return _report(weights, columns, *options, log)
        finally:
            if log is not None:
                log.close()
    finally:
        if opened_here:
            weights.close()


def _report(
    weights: Weights,
    columns: list[Scheme | FileType],
    include: Patterns,
    exclude: Patterns,
    overrides: Mapping[str, str | Scheme | None] | None,
    min_ndim: int,
    sample: float | None,
    seed: int,
    executor: Executor | None,
    progress: bool | None,
    chunk_elements: int,
    log: RowLog | None = None,
) -> QuantReport:
    override_list = [(pattern, _override(value)) for pattern, value in (overrides or {}).items()]
    include_list, exclude_list = _patterns(include), _patterns(exclude)
    names = list(weights.tensors)
    model = CheckpointModel(weights) if any(isinstance(c, FileType) for c in columns) else None
    resolved: list[Scheme | Mapping[str, Scheme | None]] = []
    for column in columns:
        if isinstance(column, FileType):
            assert model is not None  # made above for every file-type column, once for all of them
            resolved.append(_file_type_column(model, column))
        else:
            resolved.append(column)
    plan = {
        name: tuple(
            _applied(weights.tensors[name], column, include_list, exclude_list, override_list, min_ndim)
            for column in resolved
        )
        for name in names
    }
    names_of_columns = tuple(column.name for column in columns)
    jobs = []
    for part, part_names in weights.partition(names):
        batch: list[tuple[str, tuple[Scheme | None, ...]]] = []
        batch_bytes = 0
        for name in part_names:
            batch.append((name, plan[name]))
            batch_bytes += weights.tensors[name].nbytes
            if batch_bytes >= JOB_BYTES or len(batch) >= JOB_TENSORS:
                jobs.append((part.restricted_to([n for n, _ in batch]), batch))
                batch, batch_bytes = [], 0
        if batch:
            jobs.append((part.restricted_to([n for n, _ in batch]), batch))

    order = [name for _, batch in jobs for name, _ in batch]  # the rows' order, whatever finishes first
    finished: dict[str, list[ReportRow]] = {}
    if log is not None:
        finished = {name: [_row_from_dict(row) for row in rows] for name, rows in log.done.items() if name in plan}
        jobs = [(part, todo) for part, batch in jobs if (todo := [t for t in batch if t[0] not in finished])]

    def keep(batch: list[tuple[str, Any]], results: list[list[ReportRow]]) -> None:
        for (name, _), rows_of_tensor in zip(batch, results, strict=False):
            finished[name] = rows_of_tensor
            if log is not None:
                log.add(name, [row.as_dict() for row in rows_of_tensor])
        meter.advance(len(results), sum(weights.tensors[n].nbytes for n, _ in batch[: len(results)]))

    started = time.perf_counter()
    shown = (sys.stderr.isatty() or _in_notebook()) if progress is None else progress
    meter = _Progress(len(names), weights.nbytes, shown)
    meter.advance(len(finished), sum(weights.tensors[n].nbytes for n in finished))
    arguments = (names_of_columns, sample, seed, chunk_elements)
    global _ticker
    try:
        if executor is None:
            _ticker = meter.tick  # blocks of rows measured here move the display between finished tensors
            for part, batch in jobs:
                keep(batch, _run_job(part, batch, *arguments))
        else:
            futures = {executor.submit(_run_job, part, batch, *arguments): batch for part, batch in jobs}
            try:
                for future in as_completed(futures):
                    keep(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except TensorFailed as failed:
        failing = next(batch for _, batch in jobs if any(name == failed.tensor for name, _ in batch))
        keep(failing, failed.done)  # the tensors of its job that finished before it
        done_rows = [row for name in order if name in finished for row in finished[name]]
        raise ReportError(str(weights.path), failed.tensor, failed.message, done_rows) from failed
    finally:
        _ticker = None
        meter.close()
    rows = [row for name in order for row in finished[name]]
    summary = [summarize(column, [r for r in rows if r.scheme == column]) for column in names_of_columns]
    return QuantReport(
        weights.path, names_of_columns, rows, summary, sample, seed, seconds=time.perf_counter() - started
    )


def _columns(schemes: str | Iterable[str | Scheme]) -> list[Scheme | FileType]:
    items = [s.strip() for s in schemes.split(",") if s.strip()] if isinstance(schemes, str) else list(schemes)
    columns = [resolve(item) for item in items]
    if not columns:
        raise ValueError("name at least one scheme; floatfmt.schemes() lists them")
    names = [column.name for column in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"a scheme appears twice among {names}; each column needs its own name")
    return columns


def _override(value: str | Scheme | None) -> Scheme | None:
    return None if value is None or value == STORED else resolve_scheme(value)


def summarize(scheme: str, rows: list[ReportRow]) -> SchemeSummary:
    params = sum(r.params for r in rows)
    total = sum(r.bytes for r in rows)
    quantized = [r for r in rows if r.applied != STORED and r.params]
    weight = sum(r.params for r in quantized)
    squared = sum(r.params * r.rel_rmse**2 for r in quantized) / weight if weight else 0.0
    # the variance of each tensor's squared relative error, back from its SQNR's standard error
    variance = sum((r.params / weight * r.rel_rmse**2 * math.log(10) / 10 * r.sqnr_db_stderr) ** 2 for r in quantized)
    sqnr = -10 * math.log10(squared) if squared else math.inf
    stderr = 10 / math.log(10) * math.sqrt(variance) / squared if squared else 0.0
    worst = sorted(quantized, key=lambda r: r.sqnr_db)[:3]
    return SchemeSummary(
        scheme=scheme,
        params=params,
        bytes=total,
        bits_per_weight=8 * total / params if params else 0.0,
        quantized_params=weight,
        rel_rmse=math.sqrt(squared),
        sqnr_db=sqnr,
        sqnr_db_stderr=stderr,
        worst=tuple((r.tensor, r.sqnr_db) for r in worst),
    )


PROGRESS_INTERVAL = 0.5
"""Seconds between two refreshes of the progress display (it refreshes at least this often while work goes on)."""

_ticker: Callable[[int], None] | None = None
"""The running report's progress, told of each block of rows measured in this process (None in a worker
process, whose progress arrives with its finished tensors)."""


def _tick(nbytes: int) -> None:
    ticker = _ticker
    if ticker is not None:
        ticker(nbytes)


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


class _Progress:
    """The report's progress: tqdm's bar (its ``auto`` front end: a widget in a notebook) when tqdm is installed,
    else ``tensors 12/104 · 48.2 MB/s · ETA 0:03`` on stderr, rewritten in place; refreshed as blocks of rows are
    measured (at most every :data:`PROGRESS_INTERVAL` seconds), and silent when disabled."""

    def __init__(
        self, tensors: int, total_bytes: int, enabled: bool, write: Callable[[str], Any] | None = None
    ) -> None:
        self.tensors, self.total_bytes, self.enabled = tensors, total_bytes, enabled
        self.write = write or sys.stderr.write
        self.done = self.done_bytes = self.partial = 0
        self.started = self.shown = time.perf_counter()
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled and write is None and importlib.util.find_spec("tqdm") is not None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_bytes, unit="B", unit_scale=True, desc=f"tensors 0/{tensors}", leave=True,
                mininterval=PROGRESS_INTERVAL, miniters=1,  # the refreshes are already throttled here
            )  # fmt: skip

    def tick(self, nbytes: int) -> None:
        """Bytes of the tensors under way, measured since the last finished tensor (from the package's threads)."""
        with self._lock:
            self.partial += nbytes
            if time.perf_counter() - self.shown >= PROGRESS_INTERVAL:
                self._show()

    def advance(self, tensors: int, nbytes: int) -> None:
        with self._lock:
            self.done += tensors
            self.done_bytes += nbytes
            self.partial = 0
            self._show()

    def _show(self) -> None:
        self.shown = time.perf_counter()
        if not self.enabled:
            return
        reached = min(self.done_bytes + self.partial, self.total_bytes)
        if self._bar is not None:
            self._bar.set_description(f"tensors {self.done}/{self.tensors}", refresh=False)
            self._bar.update(reached - self._bar.n)
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = reached / elapsed
        remaining = (self.total_bytes - reached) / rate if rate else 0.0
        minutes, seconds = divmod(int(remaining), 60)
        self.write(
            f"\rtensors {self.done}/{self.tensors} · {format_bytes(int(rate), binary=False)}/s · "
            f"ETA {minutes}:{seconds:02d} "
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done:
            self.write("\n")
