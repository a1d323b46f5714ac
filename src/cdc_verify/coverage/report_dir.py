"""`cdc-verify coverage --report DIR`: the coverage a backfill or replay wrote, read back
and shown (docs/coverage.md)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cdc_verify.coverage.tally import STATUSES
from cdc_verify.schemas.models import Coverage, Summary


class CoverageUnavailable(Exception):
    """The directory holds no coverage to show; the message says why."""


@dataclass(frozen=True)
class CoverageReport:
    totals: Coverage
    shapes: list[dict[str, Any]]
    parts: list[dict[str, Any]]

    def only(self, entity: str | None, status: str | None) -> CoverageReport:
        def keep(row: dict[str, Any]) -> bool:
            return entity in (None, row["entity"]) and status in (None, row["status"])

        return CoverageReport(
            self.totals, [r for r in self.shapes if keep(r)], [r for r in self.parts if keep(r)]
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "coverage": self.totals.model_dump(mode="json"),
            "shapes": self.shapes,
            "parts": self.parts,
        }


def read_report(directory: Path) -> CoverageReport:
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CoverageUnavailable(f"report directory {directory} {what}")
    try:
        summary = Summary.model_validate_json((directory / "summary.json").read_bytes())
        document = json.loads((directory / "coverage.json").read_text(encoding="utf-8"))
        shapes, parts = document["shapes"], document["parts"]
    except FileNotFoundError as exc:
        name = Path(str(exc.filename)).name
        hint = (
            "is it the --out of a backfill or replay?"
            if name == "summary.json"
            else "the run had coverage = false, or was made by an older cdc-verify"
        )
        raise CoverageUnavailable(f"{directory} holds no {name}: {hint}") from None
    except OSError as exc:
        raise CoverageUnavailable(f"cannot read {directory}: {exc.strerror or exc}") from None
    except (ValueError, ValidationError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CoverageUnavailable(f"{directory}: not a coverage report ({first})") from None
    if summary.coverage is None:
        raise CoverageUnavailable(f"{directory}/summary.json has no coverage figures")
    return CoverageReport(summary.coverage, shapes, parts)


def print_report(report: CoverageReport, limit: int) -> None:
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
    ordered = sorted(report.parts, key=lambda r: (STATUSES.index(r["status"]), -r["production"]))
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


_COUNTS = ("production", "match", "mismatch", "unverified")


def _cells(row: dict[str, Any], name: str) -> list[str]:
    return [row["entity"], row[name], row["status"], *(f"{row[c]:,}" for c in _COUNTS)]
