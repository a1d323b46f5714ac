"""The step both live engines take with each run of entries read: look up the decisions
the core needs from the state server, verify, and count what was read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision, Outcome
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics

# event_id -> the entry-id ms of an entry of it (where its decision is looked for)
Lookup = Callable[[Mapping[str, int]], Awaitable[Mapping[str, Decision]]]


class Ingests(Protocol):
    """The single worker's `Verifier` or one of Faust's `PartitionJoin`s."""

    def lookup_needed(self, entries: list[StreamEntry]) -> dict[str, int]: ...

    def ingest(
        self, entries: list[StreamEntry], prior: Mapping[str, Decision] | None
    ) -> list[Outcome]: ...


async def verify_entries(
    join: Ingests,
    entries: list[StreamEntry],
    lookup: Lookup,
    metrics: VerifierMetrics,
    *,
    slice_size: int | None = None,
    busy: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    after_slice: Callable[[], None] | None = None,
) -> list[Outcome]:
    """The outcomes of `entries`, in stream order. Decisions older than the core keeps
    are looked up once for the whole run. With `slice_size`, the event loop runs between
    slices (a read under way takes its next round trip meanwhile); each slice is verified
    inside `busy()` and followed by `after_slice()`."""
    needed = join.lookup_needed(entries)
    prior = await lookup(needed) if needed else None
    outcomes: list[Outcome] = []
    step = slice_size or len(entries) or 1
    for start in range(0, len(entries), step):
        if start:
            await asyncio.sleep(0)
        with busy():
            outcomes += join.ingest(entries[start : start + step], prior)
        if after_slice is not None:
            after_slice()
    produced = sum(1 for e in entries if e.side is PRODUCTION)
    metrics.read(PRODUCTION.value, produced)
    metrics.read(SISTER.value, len(entries) - produced)
    return outcomes
