"""Servers that lost their data under a running worker (docs/guarantees.md, "A server
that lost its data").

A server restarted without persistence (or flushed) comes back empty: its stream and
the verifier's consumer group, or the state keys, are gone. Recreating them silently
would hide that the entries written there and not yet verified went with them, and the
false gaps that follow. So the worker remembers what it had in earlier sessions, and at
the start of each session looks again before anything is recreated:

- the state server: the start horizon key is gone;
- a stream read through the group: the group is gone;
- a read-only production stream: the stream is gone, or its newest id is below one the
  worker read (Redis never hands out a smaller id again unless the stream was recreated).

A loss is logged at ERROR naming the server, counted in
`cdc_verify_server_data_lost_total{role}`, listed on the status page, and the gaps whose
missing entry may have been on that server are marked in their alerts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from cdc_verify.config.servers import ROLE_OF_SIDE, Role
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.redis.group_stream import GroupStream
from cdc_verify.pipeline.redis.stream_reads import as_text
from cdc_verify.pipeline.redis.streams import SideReader, StreamPair
from cdc_verify.pipeline.redis.topology import Topology
from cdc_verify.schemas.verdicts import GAP_VERDICTS, OTHER_SIDE, Side
from cdc_verify.timestamps import iso_ms

KEPT = 100  # losses remembered for marking and the status page


@dataclass(frozen=True, slots=True)
class DataLoss:
    role: Role
    server: str  # redacted URL
    what: str  # what was found gone
    side: Side | None  # the stream whose unverified entries went with it; None: the state
    since_ms: int  # entry-id time from which that stream's entries may be lost
    found_ms: int  # epoch ms (this machine's clock) it was found

    def covers(self, arrival_ms: int, grace_ms: int) -> bool:
        """Whether the partner of an entry at `arrival_ms` (within the grace window of
        it) may have been on the server between `since_ms` and the loss being found."""
        return arrival_ms + grace_ms >= self.since_ms and arrival_ms - grace_ms <= self.found_ms

    def as_json(self) -> dict[str, str]:
        """The alert's `server_lost_data`."""
        return {"role": self.role.value, "server": self.server, "at": iso_ms(self.found_ms)}


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class LossWatch:
    """What this process had on each server; what of it a new session finds gone."""

    def __init__(self) -> None:
        self.horizon: int | None = None  # the start horizon this run has had
        self._horizon_lost = False  # reported, and not stored again yet
        self._groups: set[Side] = set()  # sides whose group this run has had
        self._newest: dict[Side, str] = {}  # read-only sides: the newest entry id read
        self.found: deque[DataLoss] = deque(maxlen=KEPT)

    def saw(self, side: Side, entry_id: str) -> None:
        """The newest entry id read of a side (called for read-only production)."""
        self._newest[side] = entry_id

    def remember(self, horizon: int, streams: StreamPair) -> None:
        """What a session established: the horizon and each side's group."""
        self.horizon, self._horizon_lost = horizon, False
        self._groups = {reader.side for reader in streams.groups()}

    async def check(
        self, topology: Topology, streams: StreamPair, verifier: Verifier
    ) -> list[DataLoss]:
        """What the servers lost since the last session; each loss is reported once.

        `verifier` still holds the last session's state: where each side was read to."""
        lost: list[DataLoss] = []
        keys = topology.keys
        if (
            self.horizon is not None
            and not self._horizon_lost
            and await topology.state.get(keys.horizon) is None
        ):
            self._horizon_lost = True  # until a session stores it again
            what = f"the worker's state (its start horizon {keys.horizon!r})"
            lost.append(self._loss(topology, Role.STATE, what, None, 0))
        for side, reader in streams.readers.items():
            gone = await self._gone(side, reader, keys.group)
            if gone is not None:
                since = verifier.unsettled_since_ms(side)
                lost.append(self._loss(topology, ROLE_OF_SIDE[side], gone, side, since))
                self._groups.discard(side)
                self._newest.pop(side, None)
        self.found.extend(lost)
        return lost

    async def _gone(self, side: Side, reader: SideReader, group: str) -> str | None:
        if isinstance(reader, GroupStream):
            if side in self._groups and not await reader.group_exists():
                return f"the consumer group {group!r} of {reader.key!r}"
            return None
        newest = self._newest.get(side)
        if newest is None:
            return None
        if await reader.kind() != "stream":
            return f"the stream {reader.key!r}"
        last = as_text((await reader.client.xinfo_stream(reader.key))["last-generated-id"])
        if _id_key(last) < _id_key(newest):
            return f"the entries of {reader.key!r} up to {newest} (its newest is now {last})"
        return None

    def _loss(
        self, topology: Topology, role: Role, what: str, side: Side | None, since_ms: int
    ) -> DataLoss:
        server = topology.servers[role].redacted_url()
        return DataLoss(role, server, what, side, since_ms, int(time.time() * 1000))

    def mark(self, outcomes: Iterable[Outcome], grace_ms: int) -> None:
        """Marks the gaps whose missing entry may have been lost with a server."""
        if not self.found:
            return
        for outcome in outcomes:
            record = outcome.record
            if outcome.kind is not OutcomeKind.PRIMARY or record is None:
                continue
            if record.verdict not in GAP_VERDICTS:
                continue
            present = outcome.settles[0]
            missing = OTHER_SIDE[present.side]
            for loss in reversed(self.found):
                if loss.side is missing and loss.covers(present.arrival_ms, grace_ms):
                    outcome.server_lost_data = loss.as_json()
                    break
