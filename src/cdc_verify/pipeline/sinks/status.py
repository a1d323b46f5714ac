"""What the status page shows of this process that has no durable source: the mismatch
groups since the worker started (totals and rates come from the durable counters)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from cdc_verify.pipeline.core.outcome import Outcome
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.pipeline.sinks.groups import MismatchGroups

MAX_GROUPS = 1_000


class StatusBoard(Sink):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.started_at = clock()
        self.groups = MismatchGroups(max_groups=MAX_GROUPS)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        self.groups.add(outcomes)
