"""Where floatfmt and ml_dtypes' casts differ, release by release, checked against the ml_dtypes installed.

floatfmt's ``overflow="ieee"`` default gives ml_dtypes' ``astype`` bit for bit on every code and every rounding
boundary of every format both have. A few behaviours differ on purpose, and some of ml_dtypes' own changed
between its releases (0.7.0 rounds float64 once and stopped wrapping out-of-range integers). Each is a
:class:`Difference`: what floatfmt does, what ml_dtypes does, the ml_dtypes releases that do it, the floatfmt
option that gives ml_dtypes' result where there is one, and a probe that asks the installed ml_dtypes.

Example:
    >>> from floatfmt import compat
    >>> [d.key for d in compat.ml_dtypes_differences("0.6.0")]
    ['float64_through_float32', 'e8m0_subnormals_round_up', 'nan_to_zero', 'int_truncation', 'int_wraparound']
    >>> [d.key for d in compat.ml_dtypes_differences("0.7.0")]
    ['nan_to_zero', 'int_truncation', 'int_out_of_range_zero']
    >>> compat.installed_matches_documented()       # the installed ml_dtypes does what the table says
    True
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "DIFFERENCES",
    "RELEASES",
    "Difference",
    "differences_table",
    "installed_matches_documented",
    "ml_dtypes_differences",
    "probe_installed",
]

RELEASES = ("0.5.0", "0.5.4", "0.6.0", "0.7.0")
"""The ml_dtypes releases each difference was checked on, oldest first (the columns of the table): the oldest
that ``ml_dtypes>=0.5`` admits, the last of each series, and the newest."""

Version = tuple[int, ...]


def _version(text: str) -> Version:
    """``"0.7.0"`` → ``(0, 7, 0)``; a suffix (``rc1``, ``.dev0``) is ignored."""
    numbers = re.findall(r"\d+", text.split("+")[0].split("rc")[0].split("dev")[0])
    if not numbers:
        raise ValueError(f"{text!r} is not a version number like '0.7.0'")
    return tuple(int(n) for n in numbers[:3])


@dataclass(frozen=True)
class Difference:
    """One behaviour in which ml_dtypes' cast differs from floatfmt's default.

    ``since`` and ``until`` bound the ml_dtypes releases that behave so (``until`` is the first release that no
    longer does; ``None`` means open-ended). ``option`` is how floatfmt gives ml_dtypes' result, or ``""``.
    """

    key: str
    title: str
    floatfmt: str
    ml_dtypes: str
    option: str
    since: str | None = None
    until: str | None = None
    probe: Callable[[], bool] = field(default=lambda: False, repr=False, compare=False)

    def applies_to(self, version: str) -> bool:
        """Whether ml_dtypes ``version`` behaves this way."""
        v = _version(version)
        return (self.since is None or v >= _version(self.since)) and (self.until is None or v < _version(self.until))

    @property
    def releases(self) -> str:
        """The releases in words: ``"all"``, ``"before 0.7.0"``, ``"0.7.0 and later"``."""
        if self.since is None and self.until is None:
            return "all"
        if self.since is None:
            return f"before {self.until}"
        if self.until is None:
            return f"{self.since} and later"
        return f"{self.since} to before {self.until}"


def _cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    """ml_dtypes' cast with its warnings silenced: 0.7 warns on the very casts these probes make."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return values.astype(dtype)


def _rounds_float64_through_float32() -> bool:
    # Just above the bfloat16 tie 1 + 2**-8: rounded once it goes up; through float32 it lands on the tie first.
    x = np.array([1 + 2.0**-8 + 2.0**-30])
    return float(_cast(x, ml_dtypes.bfloat16)[0]) == 1.0


def _rounds_e8m0_ties_to_even_codes() -> bool:
    # 3 lies halfway between 2 (code 128) and 4 (code 129): "even" is the larger significand, 1 × 2**2.
    return int(_cast(np.array([3.0], dtype=np.float32), ml_dtypes.float8_e8m0fnu).view(np.uint8)[0]) == 128


def _rounds_e8m0_subnormals_up() -> bool:
    # 1.25 * 2**-127 is nearer 2**-127 (code 0) than 2**-126 (code 1).
    tiny = np.array([1.25 * 2.0**-127], dtype=np.float32)
    return int(_cast(tiny, ml_dtypes.float8_e8m0fnu).view(np.uint8)[0]) == 1


def _turns_nan_into_zero() -> bool:
    nan = np.array([np.nan, np.nan], dtype=np.float32)
    fp4 = _cast(nan[:1], ml_dtypes.float4_e2m1fn).view(np.uint8)[0]  # 8 is -0
    return bool(fp4 == 8 and int(_cast(nan[1:], ml_dtypes.int4).astype(np.int8)[0]) == 0)


def _truncates_integers() -> bool:
    return int(_cast(np.array([6.75], dtype=np.float32), ml_dtypes.int4).astype(np.int8)[0]) == 6


def _wraps_integers() -> bool:
    return int(_cast(np.array([9.0], dtype=np.float32), ml_dtypes.int4).astype(np.int8)[0]) == -7


def _zeroes_out_of_range_integers() -> bool:
    return int(_cast(np.array([9.0], dtype=np.float32), ml_dtypes.int4).astype(np.int8)[0]) == 0


DIFFERENCES = (
    Difference(
        "float64_through_float32",
        "float64 input",
        "rounded once, straight to the format",
        "rounded to float32 first, then again to the format: a value just above a tie can land on it",
        "encode(x.astype(np.float32), fmt)",
        until="0.7.0",
        probe=_rounds_float64_through_float32,
    ),
    Difference(
        "e8m0_ties_to_even_code",
        "ties into float8_e8m0fnu",
        "to the larger power of two (every significand is 1: the tie goes away from zero)",
        "to the neighbour whose code is even: 3 becomes 2, 1.5 becomes 2",
        "",
        until="0.5.1",
        probe=_rounds_e8m0_ties_to_even_codes,
    ),
    Difference(
        "e8m0_subnormals_round_up",
        "float32 subnormals into float8_e8m0fnu",
        "rounded to nearest like every other value",
        "those between 2**-127 and 2**-126 rounded up to 2**-126, even where 2**-127 is nearer",
        "",
        until="0.7.0",
        probe=_rounds_e8m0_subnormals_up,
    ),
    Difference(
        "nan_to_zero",
        "NaN into a format without NaN (FP6, FP4, integers)",
        "EncodeError",
        "a zero of the opposite sign (FP6, FP4) or 0 (integers)",
        'nan="ml_dtypes"',
        probe=_turns_nan_into_zero,
    ),
    Difference(
        "int_truncation",
        "floats into integers, in range",
        "rounded with the chosen mode (nearest, ties to even)",
        "truncated toward zero",
        'rounding="toward_zero"',
        probe=_truncates_integers,
    ),
    Difference(
        "int_wraparound",
        "floats into integers, out of range",
        "saturated to the integer range",
        "truncated, then wrapped around (two's complement)",
        'rounding="toward_zero", overflow="wrap"',
        until="0.7.0",
        probe=_wraps_integers,
    ),
    Difference(
        "int_out_of_range_zero",
        "floats into integers, out of range",
        "saturated to the integer range",
        "0, with a RuntimeWarning 'invalid value encountered in cast'",
        "",
        since="0.7.0",
        probe=_zeroes_out_of_range_integers,
    ),
)
"""Every known difference, in the order the docs list them."""


def ml_dtypes_differences(version: str | None = None) -> list[Difference]:
    """The differences that hold for ml_dtypes ``version`` (the installed one by default).

    Raises:
        ValueError: for a version that is not a version number.
    """
    return [d for d in DIFFERENCES if d.applies_to(version or ml_dtypes.__version__)]


def probe_installed() -> dict[str, bool]:
    """Ask the installed ml_dtypes: for each difference, whether it behaves that way."""
    return {d.key: d.probe() for d in DIFFERENCES}


def installed_matches_documented() -> bool:
    """Whether the installed ml_dtypes behaves exactly as :data:`DIFFERENCES` say its release does."""
    documented = {d.key for d in ml_dtypes_differences()}
    return {key for key, shown in probe_installed().items() if shown} == documented


def differences_table() -> str:
    """The differences as a Markdown table, one column per ml_dtypes release series in :data:`RELEASES`."""
    header = ["input", "floatfmt", "ml_dtypes", *RELEASES, "ml_dtypes' result in floatfmt"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in DIFFERENCES:
        marks = ["yes" if d.applies_to(release) else "no" for release in RELEASES]
        option = f"`{d.option}`" if d.option else "none"
        lines.append("| " + " | ".join([d.title, d.floatfmt, d.ml_dtypes, *marks, option]) + " |")
    return "\n".join(lines)
