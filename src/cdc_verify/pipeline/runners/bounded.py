"""Verifies a bounded input (what the streams hold now, or captured files) to the end.

Both sides are merged on entry-id time, so the grace window means the same as
for the live worker; at the end every event still waiting is a gap.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

from cdc_verify.pipeline.core.entry import StreamEntry, entry_sort_key
from cdc_verify.pipeline.core.outcome import Outcome
from cdc_verify.pipeline.core.verifier import Verifier
from cdc_verify.pipeline.sinks.groups import MismatchGroups
from cdc_verify.pipeline.sinks.html import render_html
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
    on_outcomes: Callable[[Sequence[Outcome]], None],
    on_progress: Callable[[int], None] | None = None,
) -> None:
    entries = merged(production, sister)
    while batch := list(islice(entries, BATCH)):
        outcomes = verifier.ingest(batch)
        outcomes += verifier.expire()
        if outcomes:
            on_outcomes(outcomes)
        if on_progress:
            on_progress(len(batch))
    final = verifier.flush()
    if final:
        on_outcomes(final)


def verify_to_reports(
    verifier: Verifier,
    production: Iterable[StreamEntry],
    sister: Iterable[StreamEntry],
    out_dir: Path,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Verify a bounded input into DIR: verdicts.jsonl, summary.json, groups.json,
    summary.md and report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    verdicts_path = out_dir / "verdicts.jsonl"
    verdicts_path.unlink(missing_ok=True)
    counter = SummaryCounter()
    groups = MismatchGroups()
    timeline = VerdictTimeline()
    with JsonlVerdictWriter(verdicts_path) as jsonl:

        def emit(outcomes: Sequence[Outcome]) -> None:
            jsonl.write(outcomes)
            counter.add(outcomes)
            groups.add(outcomes)
            timeline.add(outcomes)

        verify_bounded(verifier, production, sister, emit, on_progress)
    counter.write(out_dir / "summary.json")
    ordered = groups.sorted()
    (out_dir / "groups.json").write_text(
        json.dumps([g.as_json() for g in ordered], indent=2, ensure_ascii=False, default=str)
        + "\n",
        encoding="utf-8",
    )
    (out_dir / "summary.md").write_text(render_markdown(counter.summary, ordered), "utf-8")
    html = render_html(counter.summary, ordered, timeline, verifier.decoder)
    (out_dir / "report.html").write_text(html, "utf-8")
    return counter.summary
