"""Error metrics between a reference tensor and its approximation, accumulated in float64.

Example:
    >>> import numpy as np, floatfmt
    >>> w = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    >>> stats = floatfmt.error_stats(w, floatfmt.round(w, "e4m3"))
    >>> round(stats.sqnr_db, 1), stats.nan
    (31.4, 0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from floatfmt._display import html_card
from floatfmt._parallel import CHUNK_ELEMENTS, map_chunks
from floatfmt.codec import as_array
from floatfmt.quant import _kernels

__all__ = ["ErrorAccumulator", "ErrorStats", "error_stats"]


@dataclass(frozen=True, repr=False)
class ErrorStats:
    """How far ``approx`` is from ``reference``.

    ``rel_rmse`` is the relative Frobenius error ``||a - r|| / ||r||``;
    ``sqnr_db`` is ``10 log10(||r||² / ||a - r||²)``. ``saturated`` counts
    finite reference values whose approximation sits at the largest magnitude
    the approximation reaches while the reference lies beyond it; ``flushed``
    counts non-zero reference values that became zero. Metrics are over the
    elements where both are finite; ``nan`` counts the rest.
    """

    count: int
    mse: float
    rmse: float
    rel_rmse: float
    sqnr_db: float
    max_abs: float
    cosine: float
    nan: int
    saturated: int
    flushed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        return (
            f"<ErrorStats of {self.count:,} values: SQNR {self.sqnr_db:.2f} dB, rel RMSE {self.rel_rmse:.4g}, "
            f"max |error| {self.max_abs:.4g}>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("values", f"{self.count:,}"),
            ("SQNR", f"{self.sqnr_db:.2f} dB"),
            ("relative RMSE", f"{self.rel_rmse:.4g}"),
            ("RMSE", f"{self.rmse:.4g}"),
            ("max |error|", f"{self.max_abs:.4g}"),
            ("cosine", f"{self.cosine:.6f}"),
            ("saturated / flushed to zero / NaN", f"{self.saturated:,} / {self.flushed:,} / {self.nan:,}"),
        ]
        return html_card("Quantization error", rows)

    def __str__(self) -> str:
        return (
            f"ErrorStats(n={self.count:,}: rmse={self.rmse:.4g}, rel_rmse={self.rel_rmse:.4g}, "
            f"sqnr={self.sqnr_db:.2f} dB, max_abs={self.max_abs:.4g}, cosine={self.cosine:.6f}, "
            f"nan={self.nan}, saturated={self.saturated}, flushed={self.flushed})"
        )


def error_stats(reference: Any, approx: Any) -> ErrorStats:
    """Compare ``approx`` with ``reference`` (same shape), streaming in float64 chunks.

    Raises:
        ValueError: if the shapes differ.
    """
    ref = as_array(reference)
    app = as_array(approx)
    if ref.shape != app.shape:
        raise ValueError(f"reference has shape {ref.shape} but approx has {app.shape}")
    sums = ErrorAccumulator()
    sums.add(ref, app)
    return sums.stats()


class ErrorAccumulator:
    """Sums from which :class:`ErrorStats` follow, added piece by piece: a tensor streamed in blocks of rows
    gives the same statistics as the whole tensor at once (``saturated`` is judged per piece, against the
    largest magnitude the piece's approximation reaches)."""

    def __init__(self) -> None:
        self.sums = np.zeros(5)  # err², ref², app², ref·app, count
        self.max_abs = 0.0
        self.nan = self.saturated = self.flushed = 0

    def add(self, reference: np.ndarray, approx: np.ndarray) -> None:
        ref, app = reference.reshape(-1), approx.reshape(-1)

        def sums(start: int, stop: int) -> tuple[np.ndarray, int, float, int, float, int, int]:
            return _kernels.error_sums(ref[start:stop], app[start:stop])

        pieces = map_chunks(sums, ref.size, CHUNK_ELEMENTS)
        top = max((piece[4] for piece in pieces), default=0.0)  # what saturated values sit at
        for products, count, max_abs, nan, piece_top, at_top, flushed in pieces:
            self.sums += [*products, count]  # in chunk order: the sums do not depend on the thread count
            self.max_abs = max(self.max_abs, max_abs)
            self.nan += nan
            self.saturated += at_top if top and piece_top == top else 0
            self.flushed += flushed

    def merge(self, other: ErrorAccumulator) -> None:
        """Add the sums of another accumulator (of the pieces that follow this one's)."""
        self.sums += other.sums
        self.max_abs = max(self.max_abs, other.max_abs)
        self.nan += other.nan
        self.saturated += other.saturated
        self.flushed += other.flushed

    def stats(self) -> ErrorStats:
        err2, ref2, app2, cross, count = (float(x) for x in self.sums)
        mse = err2 / count if count else 0.0
        return ErrorStats(
            count=int(count),
            mse=mse,
            rmse=math.sqrt(mse),
            rel_rmse=math.sqrt(err2 / ref2) if ref2 else (0.0 if err2 == 0 else math.inf),
            sqnr_db=math.inf if not err2 else (10 * math.log10(ref2 / err2) if ref2 else -math.inf),
            max_abs=self.max_abs,
            cosine=cross / math.sqrt(ref2 * app2) if ref2 and app2 else (1.0 if ref2 == app2 else 0.0),
            nan=self.nan,
            saturated=self.saturated,
            flushed=self.flushed,
        )
