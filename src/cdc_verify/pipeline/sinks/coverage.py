"""Counts each production event's shape with what became of it (coverage/tally.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cdc_verify.coverage.tally import CoverageTally, ShapeCounts
from cdc_verify.pipeline.core.entry import PRODUCTION
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.core.shape import ShapeRules
from cdc_verify.pipeline.sinks.base import Sink, replace_file
from cdc_verify.schemas.verdicts import Verdict

MATCH = ShapeCounts(production=1, match=1)
MISMATCH = ShapeCounts(production=1, mismatch=1)
UNVERIFIED = ShapeCounts(production=1, unverified=1)


class CoverageSink(Sink):
    """Counts the outcomes of a verifier that takes shapes (VerifierConfig.shapes)."""

    def __init__(self, rules: ShapeRules) -> None:
        self.tally = CoverageTally(rules)
        self.parts: list[dict[str, object]] = []  # as last written

    def add(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            counts = counts_of(outcome)
            if counts is not None:
                self.tally.add(outcome.entity_op[0], outcome.shape, counts)

    def write(self, path: Path) -> None:
        """coverage.json: every shape, by entity, the most frequent first; every part."""
        rows = self.tally.rows()
        self.parts = self.tally.parts(rows)  # report.html lists them too
        document = {"shapes": [row.as_json() for row in rows], "parts": self.parts}
        replace_file(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def counts_of(outcome: Outcome) -> ShapeCounts | None:
    """What the outcome says of its production event; None when it has none (no primary
    outcome, or missing in production). `cdc-verify cases` counts by the same rule."""
    if outcome.kind is OutcomeKind.OUT_OF_SCOPE:
        return UNVERIFIED
    record = outcome.record
    if outcome.kind is not OutcomeKind.PRIMARY or record is None:
        return None
    if not any(e.side is PRODUCTION for e in outcome.settles):
        return None  # missing in production: production never sent it
    if record.verdict is Verdict.MATCH:
        return MATCH
    if record.verdict in (Verdict.MISMATCH, Verdict.RACE):
        return MISMATCH
    return UNVERIFIED
