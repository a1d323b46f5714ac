"""Counts each production event's shape with what became of it (core/coverage.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cdc_verify.core.coverage import CoverageReport, CoverageTally, ShapeCounts
from cdc_verify.core.outcome import EventCoverage, Outcome, coverage_status
from cdc_verify.core.shape import MAX_SHAPES, ShapeRules
from cdc_verify.pipeline.sinks.base import Sink, replace_file

_COUNTS = {status: ShapeCounts.one(status) for status in EventCoverage}


class CoverageSink(Sink):
    """Counts the outcomes of a verifier that takes shapes (VerifierConfig.shapes)."""

    def __init__(self, rules: ShapeRules, max_shapes: int = MAX_SHAPES) -> None:
        self.tally = CoverageTally(rules, max_shapes)
        self.report: CoverageReport | None = None  # as last written

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            counts = counts_of(outcome)
            if counts is not None:
                self.tally.add(outcome.entity_op[0], outcome.shape, counts)

    def write(self, path: Path) -> None:
        """coverage.json: every shape, by entity, the most frequent first; every part; the
        pairs of parts."""
        self.report = report = CoverageReport.of_tally(self.tally)  # report.html shows it
        document = {"shapes": report.shapes, "parts": report.parts, "pairs": report.pairs}
        replace_file(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def counts_of(outcome: Outcome) -> ShapeCounts | None:
    """What the outcome says of its production event (core.outcome.coverage_status);
    None when it has none."""
    status = coverage_status(outcome)
    return None if status is None else _COUNTS[status]
