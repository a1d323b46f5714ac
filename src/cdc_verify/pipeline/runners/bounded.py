"""Verifies a bounded input (what the streams hold now, or captured files) to the end.

Both sides are merged on entry-id time, so the grace window means the same as
for the live worker; at the end every event still waiting is a gap.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from cdc_verify.config.settings import Settings
from cdc_verify.core.decoder import LegacyDecoder
from cdc_verify.core.entry import StreamEntry, entry_sort_key
from cdc_verify.core.shape import MAX_SHAPES, ShapeRules
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.reports.files import REPORT_FILES
from cdc_verify.pipeline.sinks.base import Sink, Sinks
from cdc_verify.pipeline.sinks.coverage import CoverageSink
from cdc_verify.pipeline.sinks.groups import MismatchGroups
from cdc_verify.pipeline.sinks.html import Provenance, render_html
from cdc_verify.pipeline.sinks.jsonl import JsonlVerdictWriter
from cdc_verify.pipeline.sinks.markdown import render_markdown
from cdc_verify.pipeline.sinks.summary import SummaryCounter
from cdc_verify.pipeline.sinks.timeline import VerdictTimeline
from cdc_verify.schemas.models import Summary

BATCH = 2000


def merged(
    production: Iterable[StreamEntry], sister: Iterable[StreamEntry]
) -> Iterator[StreamEntry]:
    return heapq.merge(production, sister, key=entry_sort_key)


def verify_bounded(
    verifier: Verifier,
    production: Iterable[StreamEntry],
    sister: Iterable[StreamEntry],
    sink: Sink,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    entries = merged(production, sister)
    while batch := list(islice(entries, BATCH)):
        outcomes = verifier.ingest(batch)
        outcomes += verifier.expire()
        if outcomes:
            sink.add(outcomes)
        if on_progress:
            on_progress(len(batch))
    final = verifier.flush()
    if final:
        sink.add(final)


class ReportSinks(Sinks):
    """What a bounded run writes into DIR: verdicts.jsonl while it runs, then
    summary.json, groups.json, summary.md and report.html at the end."""

    FILES = REPORT_FILES

    def __init__(
        self,
        out_dir: Path,
        decoder: LegacyDecoder,
        ignore_paths: Iterable[str] = (),
        shape_rules: ShapeRules | None = None,
        provenance: Provenance = (),
        max_shapes: int = MAX_SHAPES,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        verdicts = out_dir / "verdicts.jsonl"
        verdicts.unlink(missing_ok=True)
        (out_dir / "coverage.json").unlink(missing_ok=True)  # not a stale one of another run
        self.out_dir = out_dir
        self.counter = SummaryCounter(ignore_paths)
        self.groups = MismatchGroups()
        self.timeline = VerdictTimeline()
        self.coverage = CoverageSink(shape_rules, max_shapes) if shape_rules is not None else None
        self._decoder = decoder
        self._provenance = provenance
        sinks = [JsonlVerdictWriter(verdicts), self.counter, self.groups, self.timeline]
        super().__init__([*sinks, self.coverage] if self.coverage else sinks)

    def write_reports(self) -> Summary:
        out = self.out_dir
        if self.coverage is not None:
            self.coverage.write(out / "coverage.json")
            self.counter.summary.coverage = self.coverage.tally.totals()
        self.counter.write(out / "summary.json")
        ordered = self.groups.sorted()
        (out / "groups.json").write_text(
            json.dumps([g.as_json() for g in ordered], indent=2, ensure_ascii=False, default=str)
            + "\n",
            encoding="utf-8",
        )
        summary = self.counter.summary
        (out / "summary.md").write_text(render_markdown(summary, ordered), "utf-8")
        coverage = self.coverage.report if self.coverage is not None else None
        html = render_html(
            summary, ordered, self.timeline, self._decoder,
            coverage=coverage, provenance=self._provenance,
        )  # fmt: skip
        (out / "report.html").write_text(html, "utf-8")
        return summary


def settings_provenance(settings: Settings) -> list[tuple[str, str]]:
    """The settings a bounded run's verdicts depend on, as report.html lists them."""
    scope = settings.scope
    if scope.startswith("sample:"):
        scope += f" (by {settings.scope_key})"
    rows = [
        ("grace", f"{settings.grace:g} s"),
        ("scope", scope),
        ("consumers", ", ".join(settings.consumer)),
    ]
    if settings.ignore_paths:
        rows.append(("ignored paths", ", ".join(settings.ignore_paths)))
    if settings.float_tolerance:
        rows.append(("float tolerance", f"{settings.float_tolerance:g}"))
    return rows


def verify_to_reports(
    verifier: Verifier,
    production: Iterable[StreamEntry],
    sister: Iterable[StreamEntry],
    out_dir: Path,
    on_progress: Callable[[int], None] | None = None,
    provenance: Provenance = (),
) -> Summary:
    """Verify a bounded input into DIR (ReportSinks.FILES); `provenance` says where it came
    from and with which settings (report.html shows it)."""
    sinks = ReportSinks(
        out_dir, verifier.decoder, verifier.config.ignored_paths, verifier.shape_rules,
        provenance, verifier.config.max_shapes,
    )  # fmt: skip
    with sinks:
        verify_bounded(verifier, production, sister, sinks, on_progress)
    return sinks.write_reports()
