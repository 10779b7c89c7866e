"""Plain-text tables for the terminal: every column has a unit and a format, missing values say why in a note.

A :class:`Column` names a row key, a header that carries the unit (``knee RMSE rad``), and a format: a format spec
(``.3f``, ``,.0f``) or a function of the value. ``None`` prints as ``–``; the caller adds a note saying why (e.g.
Floquet needs ≥ 30 strides). Counts of events print with their denominator (:func:`count_of`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = "–"


@dataclass(frozen=True)
class Column:
    """One column: row key, header (with unit), and a format spec or a formatting function."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = ""


def fmt(value: Any, spec: str | Callable[[Any], str] = "") -> str:
    """One cell: ``None`` → ``–``, booleans as yes/no, numbers by ``spec`` (default: 3 significant digits)."""
    if value is None:
        return MISSING
    if callable(spec):
        return spec(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if spec:
            return format(value, spec)
        if isinstance(value, int):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def count_of(n: int | None, total: int | None, pct: bool = True) -> str | None:
    """``"n/total (p %)"``: an event count with its denominator (None when unknown). The percentage reads 0 or 100
    only when exact: one late step in 12,000 is "(<0.1 %)", not a "(0.0 %)" that reads as none."""
    if n is None or total is None:
        return None
    if not pct or total == 0:
        return f"{n}/{total}"
    p = f"{100.0 * n / total:.1f}"
    if p == "0.0" and n > 0:
        p = "<0.1"
    elif p == "100.0" and n < total:
        p = ">99.9"
    return f"{n}/{total} ({p} %)"


def percent_floor(n: int, total: int) -> str:
    """``n / total`` in percent to 0.01, rounded down: "100.00 %" only when every one of them counts (59,998 of
    60,000 is "99.99 %", not a "100.00 %" that reads as all)."""
    return f"{math.floor(10000 * n / total) / 100:.2f} %"


def sparsity_by_layer(layers: dict[str, list[float]]) -> str:
    """``layer 1 Δx 49 % Δh 98 % · layer 2 Δx 69 % Δh 97 %`` from ``{"dx": [...], "dh": [...]}`` (fractions of zero
    delta entries per layer, as ``train.json``'s ``val_sparsity_layers``)."""
    pairs = zip(layers["dx"], layers["dh"], strict=True)
    return " · ".join(f"layer {i + 1} Δx {100 * x:.0f} % Δh {100 * h:.0f} %" for i, (x, h) in enumerate(pairs))


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column | tuple[str, str]], notes: Sequence[str] = ()
) -> str:
    """Render ``rows`` with ``columns`` (right-aligned), then the ``notes`` (one per line, starting with ``*``)."""
    cols = [c if isinstance(c, Column) else Column(*c) for c in columns]
    cells = [[c.header for c in cols]] + [[fmt(r.get(c.key), c.fmt) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"  * {n}" for n in notes]
    return "\n".join(lines)
