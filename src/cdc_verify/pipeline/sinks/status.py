"""What the status page shows of this worker: totals, the recent rate, mismatch groups.

Kept in memory since the worker started (Redis holds the durable record); the
page says so.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.pipeline.sinks.groups import MismatchGroups

BUCKET_S = 10
BUCKETS = 60  # ten minutes of 10-second buckets
MAX_GROUPS = 1_000


class StatusBoard(Sink):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started_at = clock()
        self.totals: Counter[str] = Counter()
        self.late_arrivals = 0
        self.groups = MismatchGroups(max_groups=MAX_GROUPS)
        # (bucket start in s, verdict counts in it), oldest first
        self._buckets: deque[tuple[int, Counter[str]]] = deque(maxlen=BUCKETS)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        bucket = self._bucket()
        for outcome in outcomes:
            if outcome.kind is OutcomeKind.LATE:
                self.late_arrivals += 1
            elif outcome.record is not None:
                verdict = outcome.record.verdict.value
                self.totals[verdict] += 1
                bucket[verdict] += 1
        self.groups.add(outcomes)

    def _bucket(self) -> Counter[str]:
        start = int(self._clock()) // BUCKET_S * BUCKET_S
        if not self._buckets or self._buckets[-1][0] != start:
            self._buckets.append((start, Counter()))
        return self._buckets[-1][1]

    def rate(self, minutes: int = 10) -> list[dict[str, Any]]:
        """Verdicts per second in each 10 s bucket of the last minutes, empty ones included."""
        now = int(self._clock()) // BUCKET_S * BUCKET_S
        counts = dict(self._buckets)
        first = max(now - minutes * 60 + BUCKET_S, int(self.started_at) // BUCKET_S * BUCKET_S)
        return [
            {
                "at": start,
                "per_second": {v: n / BUCKET_S for v, n in counts.get(start, Counter()).items()},
            }
            for start in range(first, now + 1, BUCKET_S)
        ]
