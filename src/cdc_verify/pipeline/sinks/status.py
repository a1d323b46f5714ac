"""What the status page shows of this process that has no durable source: the mismatch
groups since the worker started, and the servers it found had lost its data (totals and
rates come from the durable counters)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from cdc_verify.core.outcome import Outcome
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.pipeline.sinks.groups import MismatchGroups

MAX_GROUPS = 1_000
MAX_LOSSES = 10


class StatusBoard(Sink):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.started_at = clock()
        self.groups = MismatchGroups(max_groups=MAX_GROUPS)
        # Servers found to have lost the worker's data, the latest last:
        # {"role", "server", "at", "what"} (pipeline/redis/data_loss.py).
        self.servers_lost_data: deque[dict[str, str]] = deque(maxlen=MAX_LOSSES)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        self.groups.add(outcomes)
