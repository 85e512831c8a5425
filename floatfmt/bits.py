"""What a bit pattern means: explain, bits, fields, table, info.

Example:
    >>> import floatfmt
    >>> print(floatfmt.explain("0 1011 011", "e4m3"))
    float8_e4m3fn code 0x5B = 0 1011 011
      sign 0, exponent 1011 (11), mantissa 011 (3), bias 7: normal
      (-1)^0 × 2^(11−7) × (1 + 3/8) = 22

One code or one value is explained exactly, on Python ints and Fractions (``_reference``), and this module loads
without numpy: ``floatfmt explain`` answers in a few tens of milliseconds, a tenth of numpy's import. Only the
functions over many codes (``bits``, ``fields``, ``table``) import numpy and the codec, when first called.
"""

from __future__ import annotations

import dataclasses
import html
import math
import numbers
import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from floatfmt import _reference
from floatfmt._display import json_float
from floatfmt._options import check_options, random_bits
from floatfmt.formats import FloatFormat, Format, IntFormat, floor_log2, formats, get_format

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Decoded",
    "RoundingDetail",
    "Fields",
    "ValueTable",
    "FormatSummary",
    "explain",
    "bits",
    "fields",
    "table",
    "info",
]

KINDS = ("zero", "subnormal", "normal", "inf", "nan", "integer")


@dataclass(frozen=True)
class RoundingDetail:
    """How a real value became a code: its neighbours, the choice, and the error."""

    value: Fraction | float | Decimal  # Decimal: a decimal string far outside the format, never made exact
    lower: Fraction | None
    upper: Fraction | None
    mode: str
    direction: str  # "exact", "up", "down" (toward +inf / -inf), or the special outcome
    tie: bool
    position: Fraction | None  # where the value lies between its neighbours, in units of their gap (ulps)
    abs_error: float
    rel_error: float
    overflow: bool
    underflow: bool
    stored: float | None = None  # the value the code holds
    bounds: tuple[float, float] | None = None  # the format's most negative and largest finite values

    def __str__(self) -> str:
        lines = [f"  rounding {_number(self.value)} ({self.mode}):", f"    {self._where()}"]
        if self.direction != "exact" and not self._special_input():
            lines.append(f"    went {self.direction}; error {self.abs_error:.6g} (relative {self.rel_error:.3g})")
        if self.underflow:
            lines.append("    underflow: below the smallest normal value, and inexact")
        return "\n".join(lines)

    def _special_input(self) -> bool:
        return isinstance(self.value, float) and not math.isfinite(self.value)

    def _where(self) -> str:
        """Where the value lies and what became of it, naming only values of the format."""
        stored = self.stored
        if self._special_input():
            what = "NaN" if math.isnan(float(self.value)) else ("-infinity" if float(self.value) < 0 else "infinity")
            if stored is None or math.isnan(stored):
                has = "the format's NaN" if what == "NaN" else "NaN: the format has no infinities"
                return f"{what} is stored as {has}"
            if math.isinf(stored):
                return f"{what} is stored as {'-' if stored < 0 else ''}infinity"
            rule = "NaN has no code here" if what == "NaN" else f"{what} saturates"
            return f"{rule}: stored as {_number(stored)}"
        if self.direction == "exact":
            return f"exact: {_number(self.value)} is a value of the format, stored as it is"
        low, high = self.bounds or (-math.inf, math.inf)
        positive = self.value > 0
        limit = high if positive else low
        side = "largest" if positive else "most negative"
        if self.overflow or (stored is not None and not math.isfinite(stored) and self.direction.startswith("to")):
            if stored is None or math.isnan(stored):
                outcome = "overflows to NaN (the format has no infinity)"
            elif math.isinf(stored):
                outcome = "overflows to infinity"
            else:
                outcome = f"saturates to {_number(stored)}"
            return f"beyond the {side} finite value {_number(limit)}: {outcome}"
        if (self.upper is not None and float(self.upper) > high) or (
            self.lower is not None and float(self.lower) < low
        ):
            position = f", {float(self.position):.3g} of a step" if self.position is not None else ""
            return f"beyond the {side} finite value {_number(limit)}{position}: rounds back to {_number(stored)}"
        if self.upper is None:  # far below the format's range: its digits were not needed
            return f"below the smallest magnitude of the format: stored as {_number(stored)}"
        if self.lower is None:  # below the smallest value of a format without zero
            return f"below the smallest value {_number(self.upper)}: stored as it"
        position = (
            f", {float(self.position):.6g} of the step above {_number(self.lower)}" if self.position is not None else ""
        )
        return f"between {_number(self.lower)} and {_number(self.upper)}{position}{'; a tie' if self.tie else ''}"


@dataclass(frozen=True)
class Decoded:
    """One code of a format, taken apart: raw fields, kind, value and the formula that gives it."""

    format: Format
    code: int
    bits: str
    sign: int
    exponent: int
    mantissa: int
    kind: str
    value: float
    exact: Fraction | None
    rounding: RoundingDetail | None = field(default=None)
    reading: str = ""
    """How a string was read, where it could have been read two ways (``"1000"`` in int4: bits or a number)."""

    @property
    def hex(self) -> str:
        """The code in hexadecimal, zero-padded to the format's width (``0x5B``)."""
        return _hex_code(self.code, self.format)

    @property
    def formula(self) -> str:
        """The value's formula with the numbers filled in."""
        return _formula(self)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        result: dict[str, Any] = {
            "format": self.format.name,
            "code": self.code,
            "hex": self.hex,
            "bits": self.bits,
            "sign": self.sign,
            "exponent": self.exponent,
            "mantissa": self.mantissa,
            "kind": self.kind,
            "value": json_float(self.value),
            "exact": None if self.exact is None else str(self.exact),
            "formula": self.formula,
        }
        if self.reading:
            result["reading"] = self.reading
        if self.rounding is not None:
            r = self.rounding
            result["rounding"] = {
                "value": json_float(_approximate_float(r.value)),
                "value_text": _number(r.value),  # the input exactly, also where it is no JSON number
                "mode": r.mode,
                "lower": None if r.lower is None else json_float(_approximate_float(r.lower)),
                "upper": None if r.upper is None else json_float(_approximate_float(r.upper)),
                "direction": r.direction,
                "tie": r.tie,
                "ulps_above_lower": None if r.position is None else float(r.position),
                "abs_error": json_float(r.abs_error),
                "rel_error": json_float(r.rel_error),
                "overflow": r.overflow,
                "underflow": r.underflow,
            }
        return result

    def __str__(self) -> str:
        fmt = self.format
        head = f"{fmt.name} code {self.hex} = {self.bits}"
        if isinstance(fmt, FloatFormat):
            e_bits, m_bits = _field_strings(self)
            parts = [f"sign {self.sign}"] if fmt.signed else ["no sign bit"]
            parts.append(f"exponent {e_bits} ({self.exponent})")
            if fmt.mantissa_bits:
                parts.append(f"mantissa {m_bits} ({self.mantissa})")
            parts.append(f"bias {fmt.bias}")
            detail = f"  {', '.join(parts)}: {self.kind}"
        else:
            detail = f"  {'two' + chr(39) + 's complement' if fmt.signed else 'unsigned'} {fmt.bits}-bit integer"
        lines = [head, detail, f"  {self.formula}"]
        if self.reading:
            lines.insert(0, f"({self.reading})")
        if self.rounding is not None:
            lines.append(str(self.rounding))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        fmt = self.format
        colours = {"s": "#f4c7c3", "e": "#c6dafc", "m": "#c8e6c9"}
        roles = _bit_roles(fmt)
        raw = format(self.code, f"0{fmt.bits}b")
        cells = "".join(
            f'<td style="background:{colours[role]};border:1px solid #888;padding:2px 6px;'
            f'font-family:monospace">{bit}</td>'
            for bit, role in zip(raw, roles, strict=True)
        )
        legend = " ".join(
            f'<span style="background:{colours[k]};padding:0 4px">{name}</span>'
            for k, name in (("s", "sign"), ("e", "exponent"), ("m", "mantissa"))
            if k in roles
        )
        rounding = f"<pre>{html.escape(str(self.rounding))}</pre>" if self.rounding is not None else ""
        return (
            f"<div><b>{html.escape(fmt.name)}</b> code {self.hex} ({html.escape(self.kind)})"
            f'<table style="border-collapse:collapse;margin:4px 0"><tr>{cells}</tr></table>'
            f"<div>{legend}</div><div style='font-family:monospace'>{html.escape(self.formula)}</div>{rounding}</div>"
        )


def explain(
    spec: str | int | float | Fraction | Decimal | np.generic,
    fmt: Format | str,
    *,
    rounding: str = "nearest_even",
    overflow: str = "ieee",
    nan: str = "error",
    seed: int = 0,
) -> Decoded:
    """Take a code apart, or explain how a real value is stored.

    ``spec`` is a bit string (``"0 1011 011"``, ``"0_1011_011"``, ``"01011011"``,
    ``"0b01011011"``, ``"0x5B"``), an integer code, or a real value (a float, a
    ``Fraction``, or a decimal string such as ``"22.5"``). Spaces or underscores
    in a plain bit string mark fields and must match the format's; after a
    ``0b`` or ``0x`` prefix they only separate digits, as in Python literals. For a real value the
    result also explains the rounding, under the same options as ``encode``.

    Raises:
        ValueError: for a malformed bit string, a code out of range, or field
            groups that do not match the format (naming the formats they match).

    Example:
        >>> import floatfmt
        >>> d = floatfmt.explain(0x5B, "e4m3")
        >>> d.kind, d.value, d.exact, d.exponent, d.mantissa
        ('normal', 22.0, Fraction(22, 1), 11, 3)
        >>> floatfmt.explain(0.3, "e4m3").rounding.direction
        'up'
    """
    fmt = get_format(fmt)
    check_options(isinstance(fmt, IntFormat), rounding, overflow, nan, seed)
    if isinstance(spec, str):
        parsed = _parse_spec(spec, fmt)
        reading = _reading(spec, parsed, fmt)
        if isinstance(parsed, int):
            return dataclasses.replace(_decoded(parsed, fmt), reading=reading)
        decoded = _explain_value(parsed, fmt, rounding, overflow, nan, seed)
        return dataclasses.replace(decoded, reading=reading)
    if isinstance(spec, bool) or getattr(getattr(spec, "dtype", None), "kind", None) == "b":  # numpy's bool_ too
        raise TypeError("a boolean is neither a code nor a value")
    if isinstance(spec, numbers.Integral):  # numpy's integer scalars are registered as Integral
        code = int(spec)
        if not 0 <= code < 2**fmt.bits:
            raise ValueError(f"code {code} is outside [0, {2**fmt.bits - 1}], the {fmt.bits}-bit codes of {fmt.name}")
        return _decoded(code, fmt)
    if isinstance(spec, (numbers.Real, Decimal)):  # floats, numpy's float scalars, Fractions
        value = spec if isinstance(spec, (Fraction, Decimal)) else float(spec)
        return _explain_value(value, fmt, rounding, overflow, nan, seed)
    raise TypeError(f"expected a bit string, an integer code or a real value, got {type(spec).__name__}")


def bits(value: Any, fmt: Format | str, **options: Any) -> str:
    """The code of ``value`` as a bit string with fields separated by spaces.

    Example:
        >>> import floatfmt
        >>> floatfmt.bits(22.0, "e4m3"), floatfmt.bits(-0.5, "e2m1"), floatfmt.bits(1.0, "bf16")
        ('0 1011 011', '1 00 1', '0 01111111 0000000')
    """
    import numpy as np

    from floatfmt.codec import encode

    fmt = get_format(fmt)
    return _bit_string(int(encode(np.asarray([value]), fmt, **options)[0]), fmt)


# --- arrays and tables -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fields:
    """Field values of many codes at once (arrays of the codes' shape)."""

    sign: np.ndarray
    exponent: np.ndarray
    mantissa: np.ndarray
    kind: np.ndarray  # strings from KINDS


def fields(codes: Any, fmt: Format | str) -> Fields:
    """Sign, exponent field, mantissa field and kind of every code, vectorized.

    Example:
        >>> import floatfmt
        >>> f = floatfmt.fields([0x5B, 0x01, 0x7F, 0x80], "e4m3")
        >>> f.exponent.tolist(), f.mantissa.tolist(), f.kind.tolist()
        ([11, 0, 15, 0], [3, 1, 7, 0], ['normal', 'subnormal', 'nan', 'zero'])
    """
    import numpy as np

    from floatfmt.codec import as_codes

    fmt = get_format(fmt)
    code_array = as_codes(codes, fmt).astype(np.uint64)
    if isinstance(fmt, IntFormat):
        sign = (code_array >> np.uint64(fmt.bits - 1)) & np.uint64(fmt.signed)
        zeros = np.zeros_like(code_array)
        kind = np.where(code_array == 0, "zero", "integer")
        return Fields(sign, zeros, code_array, kind.astype("<U9"))
    m = fmt.mantissa_bits
    magnitude = code_array & np.uint64(fmt.magnitude_mask)
    sign = code_array >> np.uint64(fmt.exponent_bits + m) if fmt.signed else np.zeros_like(code_array)
    exponent = magnitude >> np.uint64(m)
    mantissa = magnitude & np.uint64((1 << m) - 1)
    kind_index = np.full(code_array.shape, KINDS.index("normal"), dtype=np.int8)
    if fmt.subnormals:
        kind_index[exponent == 0] = KINDS.index("subnormal")
    if fmt.zero:
        kind_index[magnitude == 0] = KINDS.index("zero")
    kind_index[magnitude > np.uint64(fmt.max_code)] = KINDS.index("nan")
    if fmt.infinity:
        kind_index[magnitude == np.uint64(fmt.max_code + 1)] = KINDS.index("inf")
    if fmt.nan == "negative_zero":
        kind_index[(sign == 1) & (magnitude == 0)] = KINDS.index("nan")
    return Fields(sign, exponent, mantissa, np.array(KINDS, dtype="<U9")[kind_index])


class ValueTable:
    """Every code of a format of <= 16 bits with its bits, kind and value."""

    def __init__(self, fmt: Format) -> None:
        import numpy as np

        from floatfmt.codec import code_dtype, decode

        self.format = fmt
        self.codes = np.arange(2**fmt.bits, dtype=code_dtype(fmt))
        self.values = decode(self.codes, fmt, dtype=np.float64)
        self.kinds = fields(self.codes, fmt).kind

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"code": int(c), "bits": _bit_string(int(c), self.format), "kind": str(k), "value": json_float(float(v))}
            for c, k, v in zip(self.codes, self.kinds, self.values, strict=True)
        ]

    def _lines(self, codes: np.ndarray) -> list[str]:
        width = len(_bit_string(0, self.format))
        header = f"{'code':>{len(_hex_code(0, self.format))}}  {'bits':{width}}  {'kind':9}  value"
        rows = [
            (_hex_code(int(c), self.format), _bit_string(int(c), self.format), self.kinds[c], float(self.values[c]))
            for c in codes
        ]
        return [header] + [f"{code}  {bits:{width}}  {kind:9}  {value!r}" for code, bits, kind, value in rows]

    def __str__(self) -> str:
        return "\n".join(self._lines(self.codes))

    def __repr__(self) -> str:
        if self.codes.size <= 40:
            return str(self)
        lines = self._lines(self.codes[:16])
        return "\n".join([*lines, f"... ({self.codes.size - 32} more codes)", *self._lines(self.codes[-16:])[1:]])

    def __len__(self) -> int:
        return int(self.codes.size)

    def to_markdown(self) -> str:
        lines = ["| code | bits | kind | value |", "|---:|---|---|---:|"]
        for c in self.codes:
            code, bits = _hex_code(int(c), self.format), _bit_string(int(c), self.format)
            lines.append(f"| {code} | `{bits}` | {self.kinds[c]} | {float(self.values[c])!r} |")
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        import pandas as pd  # optional dependency, imported only here

        return pd.DataFrame(self.rows())

    def _repr_html_(self) -> str:
        shown = self.codes if self.codes.size <= 256 else self.codes[list(range(64)) + list(range(-64, 0))]
        body = "".join(
            f"<tr><td>{_hex_code(int(c), self.format)}</td><td><code>{_bit_string(int(c), self.format)}</code></td>"
            f"<td>{self.kinds[c]}</td><td>{float(self.values[c])!r}</td></tr>"
            for c in shown
        )
        note = "" if shown.size == self.codes.size else f"<p>{self.codes.size - shown.size} codes not shown</p>"
        return (
            f"<table><caption>{html.escape(self.format.name)}</caption>"
            f"<tr><th>code</th><th>bits</th><th>kind</th><th>value</th></tr>{body}</table>{note}"
        )


def table(fmt: Format | str) -> ValueTable:
    """Every code of a format of at most 16 bits, printable as text, Markdown, pandas or HTML.

    Example:
        >>> import floatfmt
        >>> print(floatfmt.table("e2m1"))  # doctest: +ELLIPSIS
        code  bits    kind       value
        0x0  0 00 0  zero       0.0
        0x1  0 00 1  subnormal  0.5
        0x2  0 01 0  normal     1.0
        ...
        0xF  1 11 1  normal     -6.0
    """
    fmt = get_format(fmt)
    if fmt.bits > 16:
        raise ValueError(f"{fmt.name} has 2**{fmt.bits} codes; tables are for formats of at most 16 bits")
    return ValueTable(fmt)


@dataclass(frozen=True)
class FormatSummary:
    """A summary of a format: layout, range, precision and special values."""

    format: Format
    facts: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    """The same facts as structured values for JSON: counts and bit widths as numbers, a special value as its
    bit pattern (``None`` where the format has none)."""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.format.name, **(self.data or self.facts)}

    def __str__(self) -> str:
        width = max(len(key) for key in self.facts)
        return "\n".join([self.format.name] + [f"  {key:{width}}  {value}" for key, value in self.facts.items()])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in self.facts.items()
        )
        return f"<table><caption>{html.escape(self.format.name)}</caption>{rows}</table>"


def info(fmt: Format | str) -> FormatSummary:
    """What a format can hold, and how its special values are encoded.

    Example:
        >>> import floatfmt
        >>> print(floatfmt.info("e4m3"))
        float8_e4m3fn
          fields              1 sign, 4 exponent, 3 mantissa (8 bits)
          bias                7
          max                 448.0
          smallest_normal     0.015625
          smallest_subnormal  0.001953125
          eps                 0.125
          binades             17.8
          infinity            none
          nan                 S 1111 111 (2 codes)
          negative_zero       1 0000 000
          finite_codes        254
          finite_values       253
    """
    fmt = get_format(fmt)
    if isinstance(fmt, IntFormat):
        facts: dict[str, Any] = {
            "fields": f"{fmt.bits}-bit {'two' + chr(39) + 's complement' if fmt.signed else 'unsigned'} integer",
            "min": fmt.min,
            "max": fmt.max,
            "finite_values": 2**fmt.bits,
        }
        data = {"kind": "integer", "bits": fmt.bits, "signed": fmt.signed, "min": fmt.min, "max": fmt.max,
                "finite_values": 2**fmt.bits}  # fmt: skip
        return FormatSummary(fmt, facts, data)
    sign_codes = 2 if fmt.signed else 1
    finite_codes = sign_codes * (fmt.max_code + 1) - (1 if fmt.nan == "negative_zero" else 0)
    nan_codes = sign_codes * fmt.top_nan_count + (1 if fmt.nan == "negative_zero" else 0)
    field_names = (["1 sign"] if fmt.signed else []) + [f"{fmt.exponent_bits} exponent"]
    field_names.append(f"{fmt.mantissa_bits} mantissa")
    facts = {
        "fields": f"{', '.join(field_names)} ({fmt.bits} bits)",
        "bias": fmt.bias,
        "max": fmt.max,
        "smallest_normal": fmt.smallest_normal,
        "smallest_subnormal": fmt.smallest_subnormal,
        "eps": fmt.eps,
        "binades": round(math.log2(fmt.max) - math.log2(fmt.smallest_subnormal), 1),
        "infinity": _pattern(fmt, fmt.max_code + 1) if fmt.infinity else "none",
        "nan": _nan_pattern(fmt) + f" ({nan_codes} code{'s' if nan_codes > 1 else ''})" if fmt.has_nan else "none",
        "negative_zero": _bit_string(fmt.sign_mask, fmt) if fmt.has_negative_zero else "none",
        "finite_codes": finite_codes,
        "finite_values": finite_codes - (1 if fmt.has_negative_zero else 0),
    }
    data = {
        "kind": "float",
        "bits": fmt.bits,
        "sign_bits": 1 if fmt.signed else 0,
        "exponent_bits": fmt.exponent_bits,
        "mantissa_bits": fmt.mantissa_bits,
        **{key: facts[key] for key in ("bias", "max", "smallest_normal", "smallest_subnormal", "eps", "binades")},
        "infinity": {"pattern": _pattern(fmt, fmt.max_code + 1)} if fmt.infinity else None,
        "nan": {"pattern": _nan_pattern(fmt), "codes": nan_codes} if fmt.has_nan else None,
        "negative_zero": {"pattern": _bit_string(fmt.sign_mask, fmt)} if fmt.has_negative_zero else None,
        "finite_codes": finite_codes,
        "finite_values": facts["finite_values"],
    }
    return FormatSummary(fmt, facts, data)


# --- parsing -------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def _parse_spec(spec: str, fmt: Format) -> int | float | Decimal:
    """A bit string's code, or the value of a decimal string."""
    text = spec.strip()
    if not text:
        raise ValueError("empty bit string: give bits like '0 1011 011', '0b01011011' or '0x5B'")
    lower = text.lower()
    if lower.startswith("0x"):
        digits = lower[2:].replace("_", "")
        bad = [c for c in digits if c not in "0123456789abcdef"]
        if not digits or bad:
            raise ValueError(f"{_shown(spec)} is not a hex code: {'no digits' if not digits else f'stray {bad[0]!r}'}")
        code = int(digits, 16)
        if code >= 2**fmt.bits:
            raise ValueError(
                f"{_shown(spec)} is a {code.bit_length()}-bit code, outside the {fmt.bits}-bit codes of {fmt.name}"
            )
        return code
    prefixed = lower.startswith("0b")
    body = text[2:] if prefixed else text
    if not prefixed and _reads_as_number(body, fmt):
        return Decimal(body)
    if prefixed or set(body) <= set("01 _"):
        # After 0b, separators are digit separators as in Python literals; otherwise they mark fields.
        return _parse_bits(body, spec, fmt, check_fields=not prefixed)
    if _NUMBER.fullmatch(text):
        special = lower.lstrip("+-") in ("inf", "infinity", "nan")
        return float(text) if special else Decimal(text)  # exact; made a Fraction once known to be in range
    stray = next(c for c in body if c not in "01 _")
    raise ValueError(
        f"{_shown(spec)} is neither a bit string nor a number: stray {stray!r} at position {body.index(stray) + 1}"
    )


def _reads_as_number(body: str, fmt: Format) -> bool:
    """Whether a plain string of binary digits is a number rather than bits: the rule is the width. Digits without
    spaces, underscores or a ``0b`` prefix are bits when there are exactly as many as the format's codes have
    (``01011011`` in e4m3, ``1000`` in int4), or when they start with ``0`` (no one writes a number so); any other
    such string (``1``, ``10``, ``110``) is the number it spells."""
    return set(body) <= set("01") and len(body) != fmt.bits and not body.startswith("0")


def _reading(spec: str, parsed: int | float | Decimal, fmt: Format) -> str:
    """What ``explain`` says about how it read a string that could be read two ways (empty when it could not)."""
    body = spec.strip()
    if not body or set(body) - set("01") or (isinstance(parsed, int) and body.startswith("0")):
        return ""  # not binary digits, or bits no number is written as
    if isinstance(parsed, int):
        return f"read as the bits {body}: {len(body)} binary digits, {fmt.name}'s width; write {body}.0 for the number"
    return f"read as the number {body}: {fmt.name}'s codes have {fmt.bits} bits; write 0b{body} for bits"


def _shown(spec: str) -> str:
    """The user's input as an error message quotes it: whole if short, its ends if long."""
    return repr(spec) if len(spec) <= 60 else f"{spec[:24]!r}...{spec[-24:]!r} ({len(spec):,} characters)"


def _parse_bits(body: str, spec: str, fmt: Format, check_fields: bool) -> int:
    groups = [group for group in re.split(r"[ _]+", body.strip(" _")) if group]
    for group in groups:
        for char in group:
            if char not in "01":
                raise ValueError(f"{_shown(spec)}: stray {char!r} in a bit string (only 0, 1, spaces and _ allowed)")
    total = sum(len(group) for group in groups)
    if total == 0:
        raise ValueError("empty bit string: give bits like '0 1011 011', '0b01011011' or '0x5B'")
    if check_fields and len(groups) > 1 and isinstance(fmt, FloatFormat):
        widths = [len(group) for group in groups]
        expected = _field_widths(fmt)
        if widths != expected:
            matching = [
                name
                for name in formats()
                if isinstance(f := get_format(name), FloatFormat) and _field_widths(f) == widths
            ]
            also = f"; formats with {_slashes(widths)}: {', '.join(matching)}" if matching else ""
            raise ValueError(
                f"the groups of {_shown(spec)} are {_slashes(widths)} bits, but {fmt.name} has {_slashes(expected)} "
                f"(sign/exponent/mantissa){also}"
            )
    if total != fmt.bits:
        plain = set(body) <= set("01") and not body.startswith("0")
        example = f": {body}.0" if len(body) <= 60 else ""
        hint = f"; to explain the number, write it with a decimal point{example}" if plain else ""
        raise ValueError(f"{_shown(spec)} has {total:,} bits, but {fmt.name} codes have {fmt.bits}{hint}")
    return int("".join(groups), 2)


def _slashes(widths: list[int]) -> str:
    return "/".join(str(w) for w in widths)


def _field_widths(fmt: FloatFormat) -> list[int]:
    widths = ([1] if fmt.signed else []) + [fmt.exponent_bits]
    return widths + ([fmt.mantissa_bits] if fmt.mantissa_bits else [])


# --- building Decoded ---------------------------------------------------------------------------


def _decoded(code: int, fmt: Format, rounding: RoundingDetail | None = None) -> Decoded:
    value = _reference.decode(code, fmt)
    if rounding is not None:
        rounding = dataclasses.replace(
            rounding, stored=_approximate_float(value), bounds=(float(fmt.min), float(fmt.max))
        )
    exact = value if isinstance(value, Fraction) else (Fraction(0) if value == 0 else None)
    sign, exponent, mantissa, kind = _code_fields(code, fmt)
    return Decoded(
        format=fmt,
        code=code,
        bits=_bit_string(code, fmt),
        sign=sign,
        exponent=exponent,
        mantissa=mantissa,
        kind=kind,
        value=float(value),
        exact=exact,
        rounding=rounding,
    )


def _code_fields(code: int, fmt: Format) -> tuple[int, int, int, str]:
    """Sign, exponent field, mantissa field and kind of one code: ``fields`` for a single code, on Python ints."""
    if isinstance(fmt, IntFormat):
        return (code >> (fmt.bits - 1)) & int(fmt.signed), 0, code, "zero" if code == 0 else "integer"
    magnitude = code & fmt.magnitude_mask
    sign = code >> (fmt.exponent_bits + fmt.mantissa_bits) if fmt.signed else 0
    exponent, mantissa = magnitude >> fmt.mantissa_bits, magnitude & ((1 << fmt.mantissa_bits) - 1)
    if magnitude > fmt.max_code:
        kind = "inf" if fmt.infinity and magnitude == fmt.max_code + 1 else "nan"
    elif magnitude == 0 and sign and fmt.nan == "negative_zero":
        kind = "nan"
    elif magnitude == 0 and fmt.zero:
        kind = "zero"
    else:
        kind = "subnormal" if exponent == 0 and fmt.subnormals else "normal"
    return sign, exponent, mantissa, kind


_FAR_BINADES = 41
"""How far outside a format's range (in powers of two) a value must lie to be explained from its magnitude alone.
Beyond it every rounding mode decides alike whatever the digits (stochastic rounding draws 32 bits), so a decimal
like ``1e999999`` is never turned into an exact fraction of a million digits."""


def _range_binades(fmt: Format) -> tuple[int, int]:
    """The binade exponents of a format's smallest positive and largest magnitudes."""
    if isinstance(fmt, IntFormat):
        return 0, fmt.bits
    top = floor_log2(fmt.magnitude_value(fmt.max_code))
    return floor_log2(fmt.magnitude_value(fmt.smallest_code)), top


def _log2_bounds(value: float | Fraction | Decimal) -> tuple[float, float]:
    """Bounds on ``log2(|value|)`` of a nonzero finite value, from its size alone (no exact arithmetic)."""
    if isinstance(value, Decimal):
        tens = value.adjusted()  # |value| is in [10**tens, 10**(tens + 1))
        return tens * math.log2(10), (tens + 1) * math.log2(10)
    if isinstance(value, Fraction):
        binades = value.numerator.bit_length() - value.denominator.bit_length()
        return binades - 1, binades + 1
    return math.log2(abs(value)), math.log2(abs(value))


def _far_outside(value: float | Fraction | Decimal, fmt: Format) -> str | None:
    """``"above"`` or ``"below"`` for a value so far beyond the format's range that its digits cannot matter."""
    if value == 0:
        return None
    low, high = _log2_bounds(value)
    bottom, top = _range_binades(fmt)
    if low >= top + 4:
        return "above"
    if high <= bottom - _FAR_BINADES:
        return "below"
    return None


def _approximate_float(value: float | Fraction | Decimal) -> float:
    """The nearest float, infinite or zero when it lies beyond float64 (never ``OverflowError``)."""
    if isinstance(value, (float, Decimal)):
        return float(value)
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def _explain_far(
    value: float | Fraction | Decimal,
    side: str,
    fmt: Format,
    rounding: str,
    overflow: str,
    nan: str,
    random: int | None,
) -> Decoded:
    """A value beyond the format's range by more than ``_FAR_BINADES``: coded as a stand-in on the same side (a
    small power of two every mode rounds the same way), its error from the value's magnitude."""
    negative = value < 0
    bottom, top = _range_binades(fmt)
    stand_in = Fraction(2) ** (top + 4 if side == "above" else bottom - _FAR_BINADES - 1)
    code = _reference.encode(-stand_in if negative else stand_in, fmt, rounding, overflow, nan, random)
    result = _reference.decode(code, fmt)
    approximate = _approximate_float(value)
    if isinstance(result, float) and not math.isfinite(result):
        direction = "to NaN" if math.isnan(result) else "to infinity"
        abs_error = rel_error = math.inf
    else:
        stored = float(result)  # finite: at most the format's largest value, or its smallest, or zero
        toward_zero = side == "above" or stored == 0
        direction = "down" if toward_zero != negative else "up"
        abs_error = abs(approximate - stored) if math.isfinite(approximate) else math.inf
        if side == "above":  # |error| / |value| = 1 - |stored| / |value|, within a float of 1
            rel_error = 1.0 - abs(stored / approximate) if math.isfinite(approximate) else 1.0
        else:  # zero loses all of it; the smallest value is larger than the value by a huge factor
            rel_error = 1.0 if stored == 0 else (abs_error / abs(approximate) if approximate else math.inf)
    detail = RoundingDetail(
        value, None, None, rounding, direction, False, None, abs_error, rel_error,
        side == "above" and isinstance(fmt, FloatFormat), side == "below" and isinstance(fmt, FloatFormat),
    )  # fmt: skip
    return _decoded(code, fmt, detail)


def _explain_value(
    value: float | Fraction | Decimal, fmt: Format, rounding: str, overflow: str, nan: str, seed: int
) -> Decoded:
    random = random_bits(seed, 0) if rounding == "stochastic" else None
    if isinstance(value, Decimal) and (value.is_zero() or not value.is_finite()):
        value = float(value)  # exact, and keeps the sign of "-0"
    side = _far_outside(value, fmt) if not isinstance(value, float) or math.isfinite(value) else None
    if side is not None:
        return _explain_far(value, side, fmt, rounding, overflow, nan, random)
    if isinstance(value, Decimal):
        value = Fraction(*value.as_integer_ratio())
    code = _reference.encode(value, fmt, rounding, overflow, nan, random)
    result = _reference.decode(code, fmt)
    finite_input = isinstance(value, Fraction) or math.isfinite(value)
    if not finite_input:
        info_ = RoundingDetail(
            value, None, None, rounding, "exact" if value == result else "special", False, None, 0.0, 0.0, False, False
        )
        return _decoded(code, fmt, info_)
    exact_value = Fraction(value)
    negative = exact_value < 0 or (isinstance(value, float) and math.copysign(1.0, value) < 0)
    magnitude = abs(exact_value)
    lower_mag: Fraction | None
    if isinstance(fmt, IntFormat):
        lower_mag = Fraction(math.floor(magnitude))
        upper_mag, lower_is_even = lower_mag + 1, lower_mag.numerator % 2 == 0
    else:
        lower_mag, upper_mag, lower_is_even = _reference.neighbours(magnitude, fmt)
    position = (magnitude - lower_mag) / (upper_mag - lower_mag) if lower_mag is not None else None
    # Overflow is judged on the grid extended past the largest value, before any policy applies.
    away = position is None or _reference.round_away(position, lower_is_even, negative, rounding, random)
    grid_result = upper_mag if away else lower_mag
    overflow_happened = isinstance(fmt, FloatFormat) and grid_result is not None and grid_result > Fraction(fmt.max)
    lower, upper = (
        (lower_mag, upper_mag)
        if not negative
        else (
            -upper_mag if upper_mag is not None else None,
            -lower_mag if lower_mag is not None else None,
        )
    )
    if negative and position is not None:
        position = 1 - position if position else Fraction(0)
    finite_result = isinstance(result, Fraction) or (isinstance(result, float) and math.isfinite(result))
    if finite_result:
        result_value = Fraction(result)
        error = result_value - exact_value
        direction = "exact" if error == 0 else ("up" if error > 0 else "down")
        abs_error = abs(_approximate_float(error))
        rel_error = abs(_approximate_float(error / magnitude)) if magnitude else 0.0
    else:
        direction = "to NaN" if math.isnan(result) else "to infinity"
        abs_error = rel_error = math.inf
    tie = position == Fraction(1, 2)
    underflow = (
        isinstance(fmt, FloatFormat)
        and magnitude != 0
        and magnitude < Fraction(fmt.smallest_normal)
        and direction != "exact"
    )
    info_ = RoundingDetail(
        exact_value,
        lower,
        upper,
        rounding,
        direction,
        tie,
        position,
        abs_error,
        rel_error,
        bool(overflow_happened),
        bool(underflow),
    )
    return _decoded(code, fmt, info_)


# --- text -----------------------------------------------------------------------------------------


def _bit_roles(fmt: Format) -> list[str]:
    if isinstance(fmt, IntFormat):
        return ["s" if fmt.signed else "m"] + ["m"] * (fmt.bits - 1)
    return (["s"] if fmt.signed else []) + ["e"] * fmt.exponent_bits + ["m"] * fmt.mantissa_bits


def _bit_string(code: int, fmt: Format) -> str:
    raw = format(code, f"0{fmt.bits}b")
    if isinstance(fmt, IntFormat):
        return raw
    widths = _field_widths(fmt)
    pieces, start = [], 0
    for width in widths:
        pieces.append(raw[start : start + width])
        start += width
    return " ".join(pieces)


def _field_strings(d: Decoded) -> tuple[str, str]:
    fmt = d.format
    assert isinstance(fmt, FloatFormat)
    e = format(d.exponent, f"0{fmt.exponent_bits}b")
    m = format(d.mantissa, f"0{fmt.mantissa_bits}b") if fmt.mantissa_bits else ""
    return e, m


def _hex_code(code: int, fmt: Format) -> str:
    return f"0x{code:0{max(1, (fmt.bits + 3) // 4)}X}"


def _pattern(fmt: FloatFormat, magnitude_code: int) -> str:
    return "S " + _bit_string(magnitude_code, fmt).split(" ", 1)[1] if fmt.signed else _bit_string(magnitude_code, fmt)


def _nan_pattern(fmt: FloatFormat) -> str:
    if fmt.nan == "negative_zero":
        return _bit_string(fmt.sign_mask, fmt)
    if fmt.nan == "max_code":
        return _pattern(fmt, fmt.magnitude_mask)
    top = "1" * fmt.exponent_bits
    return ("S " if fmt.signed else "") + f"{top} (mantissa ≠ 0)"


def _formula(d: Decoded) -> str:
    fmt = d.format
    if isinstance(fmt, IntFormat):
        return f"{d.bits} = {int(d.value)}"
    sign = f"(-1)^{d.sign} × " if fmt.signed else ""
    m = fmt.mantissa_bits
    if d.kind == "nan":
        if fmt.nan == "negative_zero":
            return "NaN: in this format the code that would be -0 is the only NaN"
        if fmt.nan == "max_code":
            return "NaN: the all-ones magnitude is the only NaN (no infinities in this format)"
        return "NaN: exponent all ones and a non-zero mantissa"
    if d.kind == "inf":
        return f"{'-' if d.sign else '+'}infinity: exponent all ones, mantissa zero"
    if d.kind == "zero":
        return f"{sign}0 = {'-0' if d.sign else '0'}"
    if d.kind == "subnormal":
        return f"{sign}2^(1−{fmt.bias}) × (0 + {d.mantissa}/{2**m}) = {_number(d.exact)}"
    significand = f" × (1 + {d.mantissa}/{2**m})" if m else ""
    return f"{sign}2^({d.exponent}−{fmt.bias}){significand} = {_number(d.exact)}"


def _number(value: Fraction | float | Decimal | None) -> str:
    """An exact value as a short exact decimal where one exists, else a float repr."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, Decimal):
        return (
            str(value)
            if len(value.as_tuple().digits) <= 40
            else f"{value:.17g} ({len(value.as_tuple().digits):,} digits)"
        )
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > 1024:  # beyond what a float shows
        return f"≈{_approximate_float(value)!r}"
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if Fraction(as_float) == value and len(repr(as_float)) <= 24:
        return repr(as_float)
    return f"{as_float!r} (exactly {value})" if len(str(value)) <= 60 else f"≈{as_float!r}"
