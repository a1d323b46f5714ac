"""A coverage report: the figures, every shape and every part, from a report directory or
the state server (docs/coverage.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc_verify.coverage.tally import CoverageTally
from cdc_verify.schemas.models import Coverage


class CoverageUnavailable(Exception):
    """There is no coverage to show; the message says why."""


@dataclass(frozen=True)
class CoverageReport:
    totals: Coverage
    shapes: list[dict[str, Any]]
    parts: list[dict[str, Any]]
    pairs: list[dict[str, Any]]  # CoverageTally.pairs(); empty in an older coverage.json

    def only(self, entity: str | None, status: str | None) -> CoverageReport:
        def keep(row: dict[str, Any]) -> bool:
            return entity in (None, row["entity"]) and status in (None, row["status"])

        return CoverageReport(
            self.totals,
            [r for r in self.shapes if keep(r)],
            [r for r in self.parts if keep(r)],
            [r for r in self.pairs if keep(r)],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "coverage": self.totals.model_dump(mode="json"),
            "shapes": self.shapes,
            "parts": self.parts,
            "pairs": self.pairs,
        }

    @classmethod
    def of_tally(cls, tally: CoverageTally, pairs: bool = True) -> CoverageReport:
        """`pairs`: work out the pairs of parts too (tens of milliseconds for a rich
        model: the status page does without them)."""
        rows = tally.rows()
        parts = tally.parts(rows)
        shapes = [r.as_json() for r in rows]
        return cls(tally.totals(), shapes, parts, tally.pairs(rows, parts) if pairs else [])
