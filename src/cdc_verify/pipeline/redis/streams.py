"""The production and sister streams as one verifier reads them, each on its own server.

Each side is read by a `GroupStream` (the verifier's consumer group: the default) or,
for production with `--production-read-only`, by a `ReadOnlyStream`. The start
horizon and, for a read-only side, the read positions live on the state server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import cast

from redis.typing import KeyT, StreamIdT

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import ROLE_OF_SIDE, RedisServer
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry, entry_id_ms
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.position import ReadPosition
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, server_time_ms
from cdc_verify.pipeline.redis.group_stream import Fence, GroupStream, read_together
from cdc_verify.pipeline.redis.read_budget import DEFAULT_READ_MAX_BYTES, ReadBudget
from cdc_verify.pipeline.redis.readonly_stream import ReadOnlyStream
from cdc_verify.pipeline.redis.stream_reads import RawEntries, SideRead, as_text
from cdc_verify.pipeline.redis.topology import Topology
from cdc_verify.schemas.verdicts import Side
from cdc_verify.timestamps import iso_ms

__all__ = ["Fence", "ReadResult", "StreamPair", "StreamsMissing"]

SideReader = GroupStream | ReadOnlyStream


class StreamsMissing(RuntimeError):
    """Stream keys that hold no stream: absent (a typo? the writer not started?) or another type."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.kinds = kinds
        super().__init__(", ".join(_describe(key, kind) for key, kind in kinds.items()))


def _describe(key: str, kind: str) -> str:
    return f"{key!r} does not exist" if kind == "none" else f"{key!r} is a {kind}, not a stream"


@dataclass(slots=True)
class ReadResult:
    entries: list[StreamEntry]
    # Sides that had nothing new, and how far that makes their streams read.
    caught_up: dict[Side, ReadPosition]
    # Per side, the id of the last entry this read gave (sides that gave some).
    last_ids: dict[Side, str]


class StreamPair:
    def __init__(
        self,
        readers: dict[Side, SideReader],
        state: AsyncClient,
        keys: WorkerKeys,
        consumer_name: str,
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        servers: Mapping[Side, RedisServer] | None = None,
    ) -> None:
        self.readers = readers
        self._state = state
        self._keys = keys
        self._me = consumer_name
        self._servers = servers or {}  # each side's server, for messages
        # Set by ensure_groups: why --start-id was not used (the group had started).
        self.start_ignored: str | None = None
        # Bounds the entries of one read by bytes as well as by count.
        self.budget = ReadBudget(read_max_bytes, streams=len(readers))
        # When the last read_new began (time.monotonic), if no stream had a backlog then.
        self._caught_up_at: float | None = None

    @classmethod
    def from_topology(
        cls,
        topology: Topology,
        consumer_name: str,
        token: str | None = None,
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        envelopes: Mapping[Side, Envelope | None] | None = None,
    ) -> StreamPair:
        """Readers for the servers of `topology`; with a lock token, group reads are fenced
        by the lock beside their stream (the single worker). `envelopes`: each side's
        (none given: cdc-verify)."""
        envelopes = envelopes or {}
        keys = topology.keys
        readers: dict[Side, SideReader] = {}
        servers: dict[Side, RedisServer] = {}
        for side, key in ((PRODUCTION, keys.production), (SISTER, keys.sister)):
            role = ROLE_OF_SIDE[side]
            servers[side] = topology.servers[role]
            client = topology.clients[role]
            if side is PRODUCTION and topology.production_read_only:
                readers[side] = ReadOnlyStream(
                    side, client, key, topology.state, keys.positions, keys.production_waiting,
                    envelopes.get(side),
                )  # fmt: skip
            else:
                fence = Fence(keys.fence_lock(key), token) if token else None
                readers[side] = GroupStream(
                    side, client, key, keys.group, consumer_name, fence, envelopes.get(side)
                )
        return cls(readers, topology.state, keys, consumer_name, read_max_bytes, servers)

    @classmethod
    def on_one_server(
        cls,
        client: AsyncClient,
        keys: WorkerKeys,
        consumer_name: str,
        fence: Fence | None = None,
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        envelopes: Mapping[Side, Envelope | None] | None = None,
    ) -> StreamPair:
        """Both streams and the state on one server, both read through the group."""
        envelopes = envelopes or {}
        readers: dict[Side, SideReader] = {
            side: GroupStream(
                side, client, key, keys.group, consumer_name, fence, envelopes.get(side)
            )
            for side, key in ((PRODUCTION, keys.production), (SISTER, keys.sister))
        }
        return cls(readers, client, keys, consumer_name, read_max_bytes)

    def groups(self) -> list[GroupStream]:
        return [r for r in self.readers.values() if isinstance(r, GroupStream)]

    async def ensure_groups(
        self,
        start_id: str,
        grace_ms: int,
        create_streams: bool = True,
        *,
        started_at: float | None = None,
        horizon_known: int | None = None,
    ) -> int:
        """Create the consumer groups where absent; return the start horizon (ms).

        A stream key that holds no stream raises StreamsMissing, unless it is absent
        and `create_streams` allows creating it (never on a read-only side).

        A new deployment starting at `$` or at an entry id starts its groups
        `grace_ms` earlier, so the twin of an event written just after the start
        is still read. `$` is the moment `started_at` (a `time.monotonic()` reading;
        None: now) on the streams' clocks: a worker that waited for its streams still
        verifies what was written to them before it saw them. The horizon is stored
        before the groups are created, so a crash in between resumes with the same one.
        `horizon_known`: the horizon this process had, kept when the state server lost it.

        When `start_id` was not used (the groups or the horizon were there),
        `start_ignored` says why, naming each group's position.
        """
        kinds = {r.key: await r.kind() for r in self.readers.values()}
        missing = {k: kind for k, kind in kinds.items() if kind != "stream"}
        creatable = {r.key for r in self.groups()} if create_streams else set()
        if any(kind != "none" or key not in creatable for key, kind in missing.items()):
            raise StreamsMissing(missing)
        exists = {r.side: await r.group_exists() for r in self.groups()}
        stored = await self._state.get(self._keys.horizon)
        self.start_ignored = None
        if stored is not None:
            horizon = int(stored)
        elif horizon_known is not None:  # the state server lost it: this run's stands
            horizon = horizon_known
            await self._state.set(self._keys.horizon, horizon)
        elif any(exists.values()):
            horizon = 0  # groups from before horizons existed: verify all they deliver
        else:
            horizon = await self._start_ms(start_id, started_at)
            await self._state.set(self._keys.horizon, horizon)
        started_before = stored is not None or any(exists.values())
        if start_id != "$" and horizon_known is None and started_before:
            self.start_ignored = await self._resumed_from(start_id, horizon, exists)
        first_id = "0" if horizon == 0 else f"{max(horizon - grace_ms, 0)}-0"
        for reader in self.readers.values():
            if isinstance(reader, ReadOnlyStream):
                await reader.start(first_id)
            elif not exists[reader.side]:
                await reader.create_group(first_id)
        return horizon

    async def _start_ms(self, start_id: str, started_at: float | None) -> int:
        if start_id != "$":
            return entry_id_ms(start_id)  # "0" gives 0: everything
        # Entry ids come from the streams' servers: the start on the earlier of their
        # clocks, so no entry written after it falls before it (a skew below the grace
        # window costs no partner: the groups start that much earlier).
        elapsed_ms = 0 if started_at is None else round((time.monotonic() - started_at) * 1000)
        clocks = [await server_time_ms(r.client, r.key) for r in self.readers.values()]
        return min(clocks) - max(elapsed_ms, 0)

    async def _resumed_from(self, start_id: str, horizon: int, exists: dict[Side, bool]) -> str:
        """Why `start_id` was not used: where each side resumes instead."""
        where = []
        for side, reader in self.readers.items():
            server = self._servers.get(side)
            on = f" on the {side.value} server {server.redacted_url()}" if server else ""
            if isinstance(reader, ReadOnlyStream):
                position = await self._state.hget(self._keys.positions, side.value)
                resumes = f"read position {as_text(position)}" if position else "no read position"
                where.append(f"{reader.key!r}{on}: {resumes} on the state server")
            elif exists[side]:
                delivered = await reader.delivered_id()
                where.append(
                    f"consumer group {self._keys.group!r} of {reader.key!r}{on} exists, "
                    f"last delivered entry {delivered}"
                )
        horizon_text = f"{horizon} ({iso_ms(horizon)})" if horizon else "0 (everything)"
        return (
            f"--start-id {start_id} is ignored: this group started before "
            f"({'; '.join(where) or 'its start horizon is stored'}; start horizon "
            f"{horizon_text}), and resumes where it stands. To verify from --start-id "
            f"{start_id}, stop its workers and run with a new --group name (each group "
            f"keeps its own state)"
        )

    async def groups_present(self) -> dict[Side, bool]:
        """Whether each side can be read: its group exists (a read-only side: its stream)."""
        present = {}
        for side, reader in self.readers.items():
            if isinstance(reader, GroupStream):
                present[side] = await reader.group_exists()
            else:
                present[side] = await reader.kind() == "stream"
        return present

    async def size_reads(self) -> None:
        """Sizes a session's first reads by the newest entry of each stream."""
        newest: list[StreamEntry] = []
        for reader in self.readers.values():
            reply = cast(RawEntries, await reader.client.xrevrange(reader.key, "+", "-", count=1))
            newest += [
                StreamEntry.from_redis(reader.side, eid, f, reader.envelope)
                for eid, f in reply or []
            ]
        self.budget.seed(newest)

    async def claim_orphans(self) -> int:
        return sum([await r.claim_orphans() for r in self.groups()])

    async def read_pending(self, count: int) -> AsyncIterator[list[StreamEntry]]:
        """What each side held when this worker's last session ended, in batches."""
        for reader in self.readers.values():
            async for batch in reader.read_pending(count, self.budget):
                yield batch

    async def read_new(self, count: int, block_ms: int, linger_ms: int = 0) -> ReadResult:
        """New entries of both sides; waits up to `block_ms` when neither has any.

        After a read in which no stream gave a full batch (each is caught up), the next
        begins no sooner than `linger_ms` after that one began: entries that come as a
        live stream's do are read in fewer, larger batches, and each batch's round trips,
        lookup and commit are shared by more of them, for up to `linger_ms` of latency.
        A stream with a backlog (a full batch) is read again at once.
        """
        if linger_ms and self._caught_up_at is not None:
            wait = self._caught_up_at + linger_ms / 1000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        began = time.monotonic()
        production, sister = self.readers[PRODUCTION], self.readers[SISTER]
        count = self.budget.count(count)
        if (
            isinstance(production, GroupStream)
            and isinstance(sister, GroupStream)
            and production.can_share_reads_with(sister)
        ):
            # Both streams on one plain server (the default): one round trip for both.
            reads = await read_together([production, sister], count)
        else:
            reads = list(await asyncio.gather(*(r.read(count) for r in self.readers.values())))
        by_side: dict[Side, SideRead] = dict(zip(self.readers, reads, strict=True))
        entries = [e for read in reads for e in read.entries]
        backlog = any(len(read.entries) >= count for read in reads)
        self._caught_up_at = None if backlog else began
        self.budget.saw(entries)
        if not entries:
            await self._wait(by_side, block_ms)
        return ReadResult(
            entries,
            {s: r.caught_up for s, r in by_side.items() if r.caught_up is not None},
            {s: r.entries[-1].entry_id for s, r in by_side.items() if r.entries},
        )

    async def _wait(self, reads: dict[Side, SideRead], block_ms: int) -> None:
        """Waits for a new entry on either side with XREAD BLOCK, which changes nothing in
        Redis: waiting needs no lock, and the next read takes the entry (fenced)."""
        by_client: dict[object, tuple[AsyncClient, dict[KeyT, StreamIdT]]] = {}
        for side, read in reads.items():
            reader = self.readers[side]
            # One XREAD for both streams of a plain server; a Cluster takes one per key.
            group = (id(reader.client), reader.key if is_cluster(reader.client) else "")
            _, streams = by_client.setdefault(group, (reader.client, {}))
            streams[reader.key] = read.after
        if len(by_client) == 1:  # one server: no task to cancel unstarted at a session's end
            [(client, keys)] = by_client.values()
            await client.xread(keys, count=1, block=block_ms)
            return
        waits = [client.xread(keys, count=1, block=block_ms) for client, keys in by_client.values()]
        await asyncio.gather(*waits)

    async def fetch(self, wanted: dict[str, tuple[Side, str]]) -> dict[str, StreamEntry]:
        """Entries by id (event_id -> (side, entry id)); those trimmed away are left out."""
        found: dict[str, StreamEntry] = {}
        for side, reader in self.readers.items():
            ids = {entry_id: event_id for event_id, (s, entry_id) in wanted.items() if s is side}
            for entry_id, entry in (await reader.fetch(list(ids))).items():
                found[ids[entry_id]] = entry
        return found

    async def lag_seconds(self) -> dict[Side, float]:
        """How far (in entry-id time) reading is behind each stream's head."""
        lags = {}
        for side, reader in self.readers.items():
            lag = await reader.lag_seconds()
            if lag is not None:
                lags[side] = lag
        return lags

    # -- several consumers sharing the group (the Faust engine's forwarders) ----------

    async def heartbeat(self, ttl_ms: int) -> None:
        """Says this consumer is alive for `ttl_ms`."""
        async with self._state.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.alive_prefix + self._me, 1, px=ttl_ms)
            pipe.srem(self._keys.retired, self._me)  # back after a stall: not retired
            await pipe.execute()

    async def dead_consumers(self) -> set[str]:
        """Other consumers of the group whose heartbeat expired and are not yet retired.

        They stay in the group (XGROUP DELCONSUMER would drop entries that a
        consumer only seemed dead for read meanwhile); `retire` marks them done.
        """
        names: set[str] = set()
        for reader in self.groups():
            names |= await reader.consumers()
        names.discard(self._me)
        names -= {as_text(n) for n in await self._state.smembers(self._keys.retired)}
        if not names:
            return set()
        ordered = sorted(names)
        alive = await self._state.mget([self._keys.alive_prefix + n for n in ordered])
        return {name for name, beat in zip(ordered, alive, strict=True) if beat is None}

    async def retire(self, consumers: set[str]) -> None:
        if consumers:
            await self._state.sadd(self._keys.retired, *consumers)

    async def claim_from(self, consumers: set[str]) -> int:
        """Moves the pending entries of these consumers to us (then `read_pending`)."""
        return sum([await r.claim_from(name) for r in self.groups() for name in consumers])

    async def delivered_ms(self) -> dict[Side, int]:
        """Per side, the time of the group's last delivered entry: XREADGROUP > only
        delivers entries after it, so nobody reads an entry older than this again."""
        delivered = {}
        for reader in self.groups():
            last = await reader.delivered_id()
            delivered[reader.side] = entry_id_ms(last) if last else 0
        return delivered
