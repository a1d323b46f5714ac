"""Verifies a bounded input (what the streams hold now, or captured files) to the end.

Both sides are merged on entry-id time, so the grace window means the same as
for the live worker; at the end every event still waiting is a gap.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from cdc_verify.pipeline.core.entry import StreamEntry, entry_sort_key
from cdc_verify.pipeline.core.outcome import Outcome
from cdc_verify.pipeline.core.verifier import Verifier

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
