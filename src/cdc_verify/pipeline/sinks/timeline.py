"""Verdict counts over event time, for the report's chart."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from cdc_verify.core.outcome import Outcome
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.verdicts import Verdict

SECOND = 1000


class VerdictTimeline(Sink):
    """Records per verdict per second of event time (the first settled entry's)."""

    def __init__(self) -> None:
        self._seconds: defaultdict[int, Counter[Verdict]] = defaultdict(Counter)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.record is not None and outcome.settles:
                second = min(e.arrival_ms for e in outcome.settles) // SECOND
                self._seconds[second][outcome.record.verdict] += 1

    def span_ms(self) -> tuple[int, int] | None:
        """The first and last second of event time with a record, in ms; None if none."""
        if not self._seconds:
            return None
        return min(self._seconds) * SECOND, max(self._seconds) * SECOND

    def buckets(self, at_most: int = 120) -> tuple[int, list[tuple[int, Counter[Verdict]]]]:
        """The bucket size in ms, and (start ms, counts) of the buckets with records, of at
        most `at_most` equal buckets spanning the data. The size is the buckets' own: two
        buckets with records need not be next to each other."""
        if not self._seconds:
            return SECOND, []
        first, last = min(self._seconds), max(self._seconds)
        width = max(1, -(-(last - first + 1) // at_most))  # seconds per bucket, rounded up
        merged: defaultdict[int, Counter[Verdict]] = defaultdict(Counter)
        for second, counts in self._seconds.items():
            merged[first + (second - first) // width * width].update(counts)
        return width * SECOND, [(start * SECOND, merged[start]) for start in sorted(merged)]
