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


def plot_report(report: QuantReport, ax: Any = None) -> Any:
    """SQNR (dB) of every quantized tensor in checkpoint order, one line per scheme; returns the axes.

    Tensors kept at their stored precision leave gaps; exact ones (infinite SQNR) are not drawn.
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, len(report.tensors) * 0.08), 4))
    order = {name: i for i, name in enumerate(report.tensors)}
    for scheme in report.schemes:
        points = [
            (order[r.tensor], r.sqnr_db)
            for r in report.rows
            if r.scheme == scheme and r.applied != "stored" and math.isfinite(r.sqnr_db)
        ]
        if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, marker=".", linewidth=0.8, label=scheme)
    ax.set_xlabel("tensor (checkpoint order)")
    ax.set_ylabel("SQNR (dB), higher is better")
    ax.set_title(f"Quantization error per tensor: {report.source}", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return ax


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
