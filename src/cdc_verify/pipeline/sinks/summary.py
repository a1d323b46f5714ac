"""Counts verdict records into summary.json: per verdict, per entity/op, out of scope,
and what each --ignore-path suppressed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.sinks.base import Sink, replace_file
from cdc_verify.schemas.models import Summary


class SummaryCounter(Sink):
    def __init__(self, ignore_paths: Iterable[str] = ()) -> None:
        self.summary = Summary.empty(tuple(ignore_paths))

    def add(self, outcomes: Iterable[Outcome]) -> None:
        summary = self.summary
        for outcome in outcomes:
            record = outcome.record
            if record is not None:
                summary.add(record.verdict, "/".join(outcome.entity_op))
                if record.ignored:
                    for path, count in record.ignored.items():
                        summary.ignored[path] = summary.ignored.get(path, 0) + count
            elif outcome.kind is OutcomeKind.OUT_OF_SCOPE:
                summary.add_out_of_scope("/".join(outcome.entity_op))
            elif outcome.kind is OutcomeKind.TOMBSTONE:
                summary.add_tombstone("/".join(outcome.entity_op))

    def write(self, path: Path) -> None:
        replace_file(path, self.summary.to_json())
