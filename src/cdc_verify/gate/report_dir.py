"""Measuring a bounded run: the counts in the summary.json of a backfill or replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdc_verify.gate.criteria import (
    Answer,
    CannotMeasure,
    Criteria,
    Endpoint,
    Measurement,
    cannot_measure,
    judge,
)
from cdc_verify.pipeline.reports.folder import UnreadableReport, read_summary
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import OUT_OF_SCOPE, TOMBSTONE, Verdict


def report_source(directory: Path) -> dict[str, Any]:
    return {"kind": "report", "dir": str(directory)}


def judge_report(directory: Path, criteria: Criteria, scope: Endpoint) -> Answer:
    """Go / no-go on the run in `directory` (`cdc-verify gate --report`); a report that
    cannot be read is a `cannot_decide` answer."""
    source = report_source(directory)
    try:
        measured = measure_report(directory, scope)
    except CannotMeasure as exc:
        return cannot_measure(str(exc), criteria, source, scope)
    return judge(measured, criteria, source, scope)


def measure_report(directory: Path, scope: Endpoint) -> Measurement:
    """Name -> count (the eight verdicts, out_of_scope and tombstone) of the run in `directory`."""
    try:
        summary, raw = read_summary(directory)
    except UnreadableReport as exc:
        raise CannotMeasure(str(exc)) from None
    coverage = _coverage(summary, scope)
    if scope.entity is None and scope.op is None:
        counts = {v.value: summary.verdicts.get(v, 0) for v in Verdict}
        return Measurement(
            {**counts, OUT_OF_SCOPE: summary.out_of_scope, TOMBSTONE: summary.tombstones},
            coverage=coverage,
        )
    if "by_entity_op" not in raw and summary.events:
        raise CannotMeasure(
            f"{directory / 'summary.json'} has no by_entity_op breakdown (written by an older "
            "cdc-verify): "
            "--entity and --op need one; gate the whole report, or run the backfill again"
        )
    counts = dict.fromkeys([*(v.value for v in Verdict), OUT_OF_SCOPE, TOMBSTONE], 0)
    for key, row in summary.by_entity_op.items():
        entity, _, op = key.partition("/")
        if scope.entity in (None, entity) and scope.op in (None, op):
            for name, count in row.items():
                counts[name] = counts.get(name, 0) + count
    return Measurement(counts, tuple(sorted(summary.by_entity_op)), coverage)


def _coverage(summary: Summary, scope: Endpoint) -> float | None:
    """The run's shape coverage ratio; None without shapes."""
    return None if summary.coverage is None else summary.coverage.ratio_of(scope.entity)
