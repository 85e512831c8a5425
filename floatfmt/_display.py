"""Small display helpers shared by the layers: byte counts for people, floats for JSON."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

__all__ = ["aligned_bytes", "format_bytes", "html_card", "json_float"]

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def _scaled(count: float, base: int, units: list[str]) -> str:
    step = 0
    while abs(count) >= base and step < len(units) - 1:
        count /= base
        step += 1
    return f"{count:.0f} B" if step == 0 else f"{count:.2f} {units[step]}"


def format_bytes(count: int, binary: bool = True) -> str:
    """``count`` bytes in decimal and binary units, both so GB and GiB are never confused (``binary=False``
    for a rate, where only the decimal one is shown).

    Example:
        >>> format_bytes(90_856_960)
        '90.86 MB (86.65 MiB)'
        >>> format_bytes(512), format_bytes(90_856_960, binary=False)
        ('512 B', '90.86 MB')
    """
    decimal = _scaled(count, 1000, _DECIMAL)
    if abs(count) < 1000 or not binary:
        return decimal
    return f"{decimal} ({_scaled(count, 1024, _BINARY)})"


def _parts(count: float, base: int, units: list[str]) -> tuple[str, str]:
    step = 0
    while abs(count) >= base and step < len(units) - 1:
        count /= base
        step += 1
    return (f"{count:.0f}", units[0]) if step == 0 else (f"{count:.2f}", units[step])


def aligned_bytes(count: int) -> str:
    """:func:`format_bytes` for a column: numbers right-aligned on their decimal point, one unit per column, so
    that a table of sizes scans.

    Example:
        >>> print(aligned_bytes(1_050_673_152)); print(aligned_bytes(532_480))
            1.05 GB   (1002.00 MiB)
          532.48 kB    (520.00 KiB)
    """
    number, unit = _parts(count, 1000, _DECIMAL)
    binary, binary_unit = _parts(count, 1024, _BINARY)
    return f"{number:>8} {unit:<2}  {f'({binary} {binary_unit})':>14}"


def json_float(value: float) -> float | None:
    """A float as JSON holds numbers: infinities and NaN, which JSON has no numbers for, become ``null`` (the
    object beside says what they were: a ``kind``, an ``exact`` flag, a ``..._text``)."""
    return value if math.isfinite(value) else None


def html_card(title: str, rows: Sequence[tuple[str, str]], note: str = "") -> str:
    """A notebook view of one result: a caption saying what it is, the few figures that matter as a two-column
    table, and an optional note (each string escaped).

    Example:
        >>> html_card("A <model>", [("parameters", "8,030,261,248")]).count("<tr>")
        1
    """
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    tail = f"<p>{html.escape(note)}</p>" if note else ""
    return f"<table><caption>{html.escape(title)}</caption><tbody>{body}</tbody></table>{tail}"
