"""Counts verdict records into summary.json."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdc_verify.pipeline.core.outcome import Outcome
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.models import Summary


class SummaryCounter(Sink):
    def __init__(self) -> None:
        self.summary = Summary.empty()

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.record is not None:
                self.summary.add(outcome.record.verdict)

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.summary.to_json(), encoding="utf-8")
        tmp.replace(path)
