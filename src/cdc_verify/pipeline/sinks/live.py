"""The sinks every long-lived engine (single or Faust) drives, built in one place."""

from __future__ import annotations

from pathlib import Path

from cdc_verify.pipeline.sinks.base import CallbackSink, OutcomeCallback, Sink, Sinks
from cdc_verify.pipeline.sinks.jsonl import JsonlVerdictWriter
from cdc_verify.pipeline.sinks.log import LogSink


def live_sinks(
    *first: Sink, jsonl: Path | None = None, on_outcomes: OutcomeCallback | None = None
) -> Sinks:
    """The sinks of a long-lived engine (single or Faust): the given ones (metrics,
    status board), the log, the optional JSONL copy and the caller's callback."""
    sinks: list[Sink] = [*first, LogSink()]
    if jsonl is not None:
        sinks.append(JsonlVerdictWriter(jsonl, flush_each=True))
    if on_outcomes is not None:
        sinks.append(CallbackSink(on_outcomes))
    return Sinks(sinks)
