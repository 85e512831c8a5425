"""Reductions over short rows (blocks of 16 to 128 weights), done by pairwise halving.

numpy reduces a short contiguous last axis slowly (about 3 ns per element for
rows of 32); halving the row with elementwise operations on adjacent pairs
touches each element about twice and runs at memory speed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["row_max", "row_min", "row_strongest"]


def _halve(rows: np.ndarray, pick: np.ufunc) -> np.ndarray:
    while rows.shape[-1] > 1 and rows.shape[-1] % 2 == 0:
        rows = pick(rows[..., 0::2], rows[..., 1::2])
    return rows if rows.shape[-1] == 1 else pick.reduce(rows, axis=-1, keepdims=True)


def row_max(rows: np.ndarray) -> np.ndarray:
    """``rows.max(axis=-1, keepdims=True)``."""
    return _halve(rows, np.maximum)


def row_min(rows: np.ndarray) -> np.ndarray:
    """``rows.min(axis=-1, keepdims=True)``."""
    return _halve(rows, np.minimum)


def row_strongest(rows: np.ndarray) -> np.ndarray:
    """The signed value of largest magnitude in each row, the first one on ties (as ``argmax`` picks).

    It is the row's maximum or its minimum; only rows holding both +v and -v as
    their extremes need the position of the first, and are looked up one by one.
    """
    high, low = row_max(rows), row_min(rows)
    strongest = np.where(high >= -low, high, low)
    tied = np.flatnonzero((high == -low) & (high != 0))
    if tied.size:
        first = np.abs(rows[tied]).argmax(axis=-1)[:, None]
        strongest[tied] = np.take_along_axis(rows[tied], first, axis=-1)
    return strongest
