"""The production stream read with read commands only (`--production-read-only`).

Production's Redis belongs to another team, whose ACL user for the verifier may only
read: no consumer group, so no pending list to hold the join state. Its place is
taken by two keys on the state server, written by the same atomic commit as the
verdicts they settle (a `Checkpoint` given to the commit, commit.lua):

  <base>:positions            hash, side -> the last entry id read and committed
  <base>:waiting:production   sorted set of the entries still waiting for a partner
                              (ids, scored by their time)

Every production entry up to the committed position is either settled or in the
waiting set. A restarted worker fetches the waiting entries back with XRANGE and
reads on after the position: what a crash costs is re-reading what came after the
last commit (the worker commits its position at least every second).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from redis.typing import KeyT, StreamIdT

from cdc_verify.core.entry import StreamEntry, read_entries
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.position import ReadPosition
from cdc_verify.pipeline.redis.connection import (
    AsyncClient,
    is_cluster,
    server_time_ms,
    time_ms,
)
from cdc_verify.pipeline.redis.read_budget import ReadBudget
from cdc_verify.pipeline.redis.stream_reads import (
    SideRead,
    UnparsedReads,
    as_text,
    fetch_entries,
    lag_after,
    stream_entries,
)
from cdc_verify.schemas.verdicts import Side

MAX_SEQ = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where reading a read-only production stream stands, saved with the verdicts."""

    position: str  # the last production entry id read
    waiting: Sequence[StreamEntry]  # production entries read since the last checkpoint
    # that wait for their partner now


class ReadOnlyProgress:
    """What a worker has read of a read-only production stream and not yet saved: a
    `Checkpoint` is due with every commit and at least every `every_s` seconds (what a
    crash re-reads)."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self.read_through: str | None = None  # the last production entry id read
        self._saved: str | None = None
        self._saved_at = 0.0
        self._unsaved: list[StreamEntry] = []

    def restart(self) -> None:
        """A new session saves only what it reads itself: a read position of the last
        session may be past what it committed."""
        self._unsaved.clear()
        self.read_through = self._saved = None

    def read(self, entries: Iterable[StreamEntry]) -> None:
        self._unsaved.extend(e for e in entries if e.side is Side.PRODUCTION)

    def checkpoint(
        self, committing: bool, is_waiting: Callable[[StreamEntry], bool]
    ) -> Checkpoint | None:
        """The checkpoint to commit now, if one is due; `is_waiting` tells the entries
        that still wait for their partner."""
        if self.read_through is None:
            return None
        due = time.monotonic() - self._saved_at >= self._every_s
        if not (committing or (due and (self._unsaved or self.read_through != self._saved))):
            return None
        waiting = [e for e in self._unsaved if is_waiting(e)]
        self._unsaved.clear()
        self._saved = self.read_through
        self._saved_at = time.monotonic()
        return Checkpoint(self.read_through, waiting)


def just_before(entry_id: str) -> str:
    """The greatest id below `entry_id`: XREAD after it returns `entry_id` itself."""
    ms, _, seq = entry_id.partition("-")
    if seq and int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-{MAX_SEQ}" if int(ms) > 0 else "0-0"


class ReadOnlyStream:
    def __init__(
        self,
        side: Side,
        client: AsyncClient,
        key: str,
        state: AsyncClient,
        positions_key: str,
        waiting_key: str,
        envelope: Envelope | None = None,
    ) -> None:
        self.side, self.client, self.key = side, client, key
        self.envelope = envelope  # how this stream's entries are read (None: cdc-verify)
        self._state, self._positions, self.waiting_key = state, positions_key, waiting_key
        self.position = "0-0"  # last id read (in memory; the committed one is on state)
        # A plain server's reads take their replies unparsed (a Cluster's pipelines differ).
        self._unparsed = None if is_cluster(client) else UnparsedReads(client)

    async def kind(self) -> str:
        return as_text(await self.client.type(self.key))

    async def start(self, first_id: str) -> None:
        """Resume after the committed position, or read from `first_id` on."""
        stored = await self._state.hget(self._positions, self.side.value)
        self.position = as_text(stored) if stored else just_before(first_id)

    async def read_pending(
        self, count: int, budget: ReadBudget
    ) -> AsyncIterator[list[StreamEntry]]:
        """The entries that were waiting at the last commit, fetched back by id."""
        # All ids first: the commits of the batches rebuilt meanwhile shrink the set.
        ids = [as_text(cast(bytes, i)) for i in await self._state.zrange(self.waiting_key, 0, -1)]
        start = 0
        while start < len(ids):
            chunk = ids[start : start + budget.count(count)]
            start += len(chunk)
            found = await fetch_entries(self.client, self.side, self.key, chunk, self.envelope)
            # An entry trimmed away meanwhile comes back empty: a malformed record, not silence.
            batch = [found.get(i) or StreamEntry.from_redis(self.side, i, None) for i in chunk]
            budget.saw(batch)
            yield batch

    async def read(self, count: int) -> SideRead:
        # Redis' clock before the read: if the read finds nothing new, every entry of an
        # earlier millisecond was there to be found (a bound that errs on the safe side).
        streams: dict[KeyT, StreamIdT] = {self.key: self.position}
        if self._unparsed is None:
            server_ms = await server_time_ms(self.client, self.key)
            reply = await self.client.xread(streams, count=count)
        else:  # one round trip, the reply as Redis sends it
            async with self.client.pipeline(transaction=False) as pipe:
                self._unparsed.on(pipe)
                pipe.time()
                pipe.xread(streams, count=count)
                clock, reply = await pipe.execute()
            server_ms = time_ms(clock)
        entries = read_entries(self.side, stream_entries(reply), self.envelope)
        if entries:
            self.position = entries[-1].entry_id
            return SideRead(entries, None, self.position)
        return SideRead([], ReadPosition.caught_up(server_ms), self.position)

    async def fetch(self, entry_ids: list[str]) -> dict[str, StreamEntry]:
        return await fetch_entries(self.client, self.side, self.key, entry_ids, self.envelope)

    async def lag_seconds(self) -> float | None:
        return await lag_after(self.client, self.key, self.position)
