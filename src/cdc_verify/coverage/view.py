"""How `cdc-verify coverage` prints a coverage report (docs/coverage.md)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from cdc_verify.core.coverage import (
    COUNT_COLUMNS,
    CoverageReport,
    combination_gaps,
    look_first,
)
from cdc_verify.escaping import terminal_text


def print_report(report: CoverageReport, limit: int, source: str | None = None) -> None:
    """`source`: a last line saying where the counts come from."""
    console = Console(width=None if sys.stdout.isatty() else 200)
    t = report.totals
    ratio = "-" if t.ratio is None else f"{t.ratio:.1%}"
    console.print(
        f"{t.shapes:,} shapes of production event: {t.verified:,} verified, "
        f"{t.mismatched:,} mismatched, {t.never_verified:,} never verified "
        f"(coverage {ratio})"
    )
    if t.overflow_events:
        console.print(f"{t.overflow_events:,} events of shapes past the cap were not counted")
    if t.undecodable_events:
        console.print(f"{t.undecodable_events:,} production events had no shape (undecodable)")
    # The parts that need looking at first: never verified, then mismatched.
    parts = sorted(report.parts, key=look_first)
    console.print(_table("parts", "part", [(row, row["part"]) for row in parts], fold=True))
    shown = report.shapes if limit <= 0 else report.shapes[:limit]
    title = "shapes, the most frequent first"
    console.print(_table(title, "shape", [(row, row["shape"]) for row in shown]))
    _more(console, len(report.shapes), len(shown))
    gaps = combination_gaps(report.pairs)
    if gaps:
        listed = gaps if limit <= 0 else gaps[:limit]
        title = "combinations never matched, although each part matched in other shapes"
        console.print(
            _table(title, "parts", [(row, " with ".join(row["parts"])) for row in listed])
        )
        _more(console, len(gaps), len(listed))
    if source:
        console.print(terminal_text(source))


def _table(
    title: str, what: str, rows: list[tuple[dict[str, Any], str]], fold: bool = False
) -> Table:
    """Rows of parts, shapes or pairs (each with its text) with their status and counts."""
    table = Table(title=title, show_edge=False)
    for column in ("entity", what, "status", *COUNT_COLUMNS):
        right = column in COUNT_COLUMNS
        table.add_column(column, justify="right" if right else "left",
                         overflow="fold" if fold else "ellipsis")  # fmt: skip
    for row, text in rows:
        # Entities, paths and enum-like values are stream data: no markup, controls visible.
        table.add_row(
            terminal_text(row["entity"]), terminal_text(text), row["status"],
            *(f"{row[c]:,}" for c in COUNT_COLUMNS),
        )  # fmt: skip
    return table


def _more(console: Console, rows: int, shown: int) -> None:
    if shown < rows:
        console.print(f"... and {rows - shown:,} more (--limit 0 lists all)")
