"""Plots, with matplotlib imported only when one is drawn (``pip install 'floatfmt[plot]'``).

Example:
    >>> import numpy as np, floatfmt, floatfmt.plot
    >>> w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    >>> report = floatfmt.quant_report({"w": w}, "mxfp8_e4m3,mxfp4", progress=False)
    >>> ax = report.plot()                                   # SQNR per tensor, one line per scheme
    >>> ax = floatfmt.plot.value_histogram(w, "e2m1")        # the values against the E2M1 grid
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from floatfmt.bits import table
from floatfmt.formats import Format, get_format

if TYPE_CHECKING:
    from floatfmt.report import QuantReport

__all__ = ["plot_report", "value_histogram"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'floatfmt[plot]'") from None
    return plt


def plot_report(report: QuantReport, ax: Any = None, *, annotate: int = 3) -> Any:
    """SQNR (dB) of every quantized tensor in checkpoint order, one line per scheme; returns the axes.

    The x axis names the tensors (every one when there are at most 40; for a model of many layers, one tick per
    layer); the ``annotate`` worst points of each scheme are labelled with their tensor, and the title is the
    checkpoint's name, not its whole path. Tensors kept at their stored precision leave gaps; exact ones
    (infinite SQNR) are not drawn.
    """
    plt = _pyplot()
    names = list(report.tensors)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(16.0, max(6.0, len(names) * 0.12)), 4.5))
    order = {name: i for i, name in enumerate(names)}
    for scheme in report.schemes:
        points = [
            (order[r.tensor], r.sqnr_db, r.tensor)
            for r in report.rows
            if r.scheme == scheme and r.applied != "stored" and math.isfinite(r.sqnr_db)
        ]
        if not points:
            continue
        x, y, _ = zip(*points, strict=True)
        (line,) = ax.plot(x, y, marker=".", linewidth=0.8, label=scheme)
        for position, sqnr, name in sorted(points, key=lambda point: point[1])[:annotate]:
            ax.annotate(_short(name), (position, sqnr), xytext=(3, -10), textcoords="offset points",
                        fontsize="x-small", color=line.get_color())  # fmt: skip
    ticks, tick_labels = _ticks(names)
    ax.set_xticks(ticks)
    ax.set_xticklabels(tick_labels, rotation=90, fontsize="x-small")
    ax.set_xlabel("tensor" if len(ticks) == len(names) else "layer (tensors in checkpoint order)")
    ax.set_ylabel("SQNR (dB), higher is better")
    title = report.source.rstrip("/").split("/")[-1] or report.source
    ax.set_title(f"Quantization error per tensor: {title}", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    ax.figure.tight_layout()
    return ax


def _short(name: str) -> str:
    """A tensor name without the parts every tensor shares (``model.``, ``.weight``)."""
    return name.removeprefix("model.").removesuffix(".weight")


def _ticks(names: list[str]) -> tuple[list[int], list[str]]:
    """Tick positions and labels: every tensor when there are at most 40, else the first tensor of each layer
    (the name up to its first number: ``layers.3``, ``encoder.layer.3``) and of each part outside the layers."""
    if len(names) <= 40:
        return list(range(len(names))), [_short(name) for name in names]
    ticks, labels, previous = [], [], None
    for position, name in enumerate(names):
        parts = name.split(".")
        numbered = next((i for i, part in enumerate(parts[:-1]) if part.isdigit()), None)  # layers.N, layer.N
        group = ".".join(parts[: numbered + 1]) if numbered is not None else parts[0]
        if group != previous:
            ticks.append(position)
            labels.append(_short(group))
            previous = group
    step = max(1, len(ticks) // 60)  # at most about 60 labels
    return ticks[::step], labels[::step]


def value_histogram(
    values: Any, fmt: Format | str, *, scale: float | None = None, bins: int = 200, ax: Any = None
) -> Any:
    """A histogram of ``|values| / scale`` on a log axis, with the format's representable magnitudes marked.

    ``scale`` defaults to ``max |values| / fmt.max``, the per-tensor amax scale, so the largest value lands on
    the format's largest; values below the smallest subnormal are counted in the leftmost bin. Returns the axes.
    """
    plt = _pyplot()
    fmt = get_format(fmt)
    magnitudes = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    if scale is None:
        top = float(magnitudes.max(initial=0.0))
        scale = top / float(fmt.max) if top else 1.0
    representable = table(fmt).values
    grid = np.unique(np.abs(representable[np.isfinite(representable)]))
    grid = grid[grid > 0]
    scaled = magnitudes / scale
    low = float(grid[0]) / 4 if grid.size else 1e-8
    scaled = np.maximum(scaled[scaled > 0], low)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    edges = np.geomspace(low, max(float(scaled.max(initial=low)), float(grid[-1])) * 1.1, bins)
    ax.hist(scaled, bins=edges, color="tab:blue", alpha=0.7, label="|values| / scale")
    ax.set_xscale("log")
    for value in grid:
        ax.axvline(value, color="tab:red", linewidth=0.5, alpha=0.5)
    ax.axvline(grid[-1], color="tab:red", linewidth=0.5, alpha=0.5, label=f"{fmt.name} magnitudes")
    ax.set_xlabel(f"magnitude in units of the scale ({scale:.3g})")
    ax.set_ylabel("count")
    ax.legend(fontsize="small")
    return ax
