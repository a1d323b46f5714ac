"""The decisions the core remembers, by event_id, for a window of first-seen time.

At 10k events/s a minute of them is 600k entries, so how they are held matters twice:

- Memory: each is a packed int (`Decision.packed`) in a plain dict, not an object.
- Pauses: CPython stops tracking a dict that holds only strings and ints, so the
  garbage collector never walks it. An OrderedDict is always walked: 600k decisions
  cost 30 ms per full collection, a dozen times in 20 s, and the verdicts waited.

Their age order is kept apart, in buckets of event_ids closed every BUCKET inserts
(tuples of strings: untracked too), each with the newest first-seen time it holds.
A bucket goes once that time leaves the window, so a decision is kept at least for
the window and at most a bucket longer.
"""

from __future__ import annotations

from collections import deque

from cdc_verify.core.outcome import Decision

BUCKET = 4096


class RecentDecisions:
    def __init__(self) -> None:
        self._packed: dict[str, int] = {}
        self._closed: deque[tuple[int, tuple[str, ...]]] = deque()  # oldest first
        self._open: list[str] = []
        self._open_newest_ms = -1

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._packed

    def get(self, event_id: str) -> Decision | None:
        packed = self._packed.get(event_id)
        return None if packed is None else Decision.unpacked(packed)

    def remember(self, event_id: str, decision: Decision) -> None:
        """A new decision, or a later one about the same event (its first-seen time kept)."""
        packed = self._packed
        if event_id not in packed:
            self._place(event_id, decision.first_seen_ms)
        packed[event_id] = decision.packed()

    def remember_if_new(self, event_id: str, decision: Decision) -> None:
        """A decision looked up elsewhere: what the core knows already wins."""
        if event_id not in self._packed:
            self._place(event_id, decision.first_seen_ms)
            self._packed[event_id] = decision.packed()

    def forget_older_than(self, horizon_ms: int) -> None:
        """Drops the buckets whose every decision was first seen before `horizon_ms`."""
        closed, packed = self._closed, self._packed
        if self._open and self._open_newest_ms < horizon_ms:
            self._close()
        limit = horizon_ms * 32  # a packed decision is first_seen_ms * 32 + less than 32
        while closed and closed[0][0] < horizon_ms:
            for event_id in closed.popleft()[1]:
                value = packed.get(event_id)
                if value is not None and value < limit:
                    del packed[event_id]

    def _place(self, event_id: str, first_seen_ms: int) -> None:
        self._open.append(event_id)
        if first_seen_ms > self._open_newest_ms:
            self._open_newest_ms = first_seen_ms
        if len(self._open) >= BUCKET:
            self._close()

    def _close(self) -> None:
        self._closed.append((self._open_newest_ms, tuple(self._open)))
        self._open = []
        self._open_newest_ms = -1
