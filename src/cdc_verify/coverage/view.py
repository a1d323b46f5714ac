"""How `cdc-verify coverage` prints a coverage report (docs/coverage.md)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from cdc_verify.coverage.report import CoverageReport
from cdc_verify.coverage.tally import combination_gaps, look_first


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
    parts = Table(title="parts", show_edge=False)
    for column in ("entity", "part", "status", "production", "match", "mismatch", "unverified"):
        parts.add_column(column, justify="right" if column in _COUNTS else "left", overflow="fold")
    # The parts that need looking at first: never verified, then mismatched.
    ordered = sorted(report.parts, key=look_first)
    for row in ordered:
        parts.add_row(*_cells(row, "part"))
    console.print(parts)
    shapes = Table(title="shapes, the most frequent first", show_edge=False)
    for column in ("entity", "shape", "status", "production", "match", "mismatch", "unverified"):
        shapes.add_column(column, justify="right" if column in _COUNTS else "left")
    shown = report.shapes if limit <= 0 else report.shapes[:limit]
    for row in shown:
        shapes.add_row(*_cells(row, "shape"))
    console.print(shapes)
    if len(shown) < len(report.shapes):
        console.print(f"... and {len(report.shapes) - len(shown):,} more (--limit 0 lists all)")
    gaps = combination_gaps(report.pairs)
    if gaps:
        title = "combinations never matched, although each part matched in other shapes"
        pairs = Table(title=title, show_edge=False)
        for column in ("entity", "parts", "status", *_COUNTS):
            pairs.add_column(column, justify="right" if column in _COUNTS else "left")
        listed = gaps if limit <= 0 else gaps[:limit]
        for row in listed:
            pairs.add_row(
                row["entity"], " with ".join(row["parts"]), row["status"],
                *(f"{row[c]:,}" for c in _COUNTS),
            )  # fmt: skip
        console.print(pairs)
        if len(listed) < len(gaps):
            console.print(f"... and {len(gaps) - len(listed):,} more (--limit 0 lists all)")
    if source:
        console.print(source, highlight=False)


_COUNTS = ("production", "match", "mismatch", "unverified")


def _cells(row: dict[str, Any], name: str) -> list[str]:
    return [row["entity"], row[name], row["status"], *(f"{row[c]:,}" for c in _COUNTS)]
