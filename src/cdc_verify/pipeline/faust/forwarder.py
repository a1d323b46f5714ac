"""Moves stream entries from Redis to Kafka: the ingest half of a Faust worker.

Every Faust worker runs one forwarder, a consumer in the Redis consumer group, so
the workers share both streams. An entry is acked in Redis only once Kafka has
acknowledged it; a forwarder killed in between leaves it pending, and a live
forwarder claims and re-sends it (the join treats a re-sent entry as the same
entry). Each round's entries go to their partitions as one message per partition;
now and then the forwarder's watermarks ride on them, sent to every partition;
a claimed-from forwarder is retired once its entries are re-sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.position import ReadPosition
from cdc_verify.pipeline.faust.messages import Retire, encode_batches, encode_retire, partition_of
from cdc_verify.pipeline.redis.read_budget import DEFAULT_READ_MAX_BYTES
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.schemas.verdicts import STREAM_SIDES, Side

log = logging.getLogger(__name__)

# send(key, value, partition) -> awaitable that resolves once Kafka has the message
Send = Callable[[bytes, bytes, int], Awaitable[Awaitable[object]]]
WATERMARK_EVERY_S = 0.1
CLAIM_EVERY_S = 2.0


class RedisForwarder:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: WorkerKeys,
        name: str,
        send: Send,
        partitions: int,
        *,
        batch_size: int,
        block_ms: int,
        linger_ms: int = 0,
        dead_after_ms: int,
        read_max_bytes: int = DEFAULT_READ_MAX_BYTES,
        envelopes: Mapping[Side, Envelope | None] | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._keys = keys
        # Entries go to Kafka with their canonical fields: the joins need no envelope.
        self._streams = StreamPair.on_one_server(
            client, keys, name, read_max_bytes=read_max_bytes, envelopes=envelopes
        )
        self._send = send
        self._partitions = partitions
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._linger_ms = linger_ms
        self._dead_after_ms = dead_after_ms
        self._marks: dict[Side, int] = {}
        self._marks_sent = 0.0
        self._beat_at = 0.0

    async def start(self, start_id: str, grace_ms: int) -> int:
        """Creates the groups, re-sends what this name left pending, then joins every
        partition's watermarks. Returns the horizon."""
        horizon = await self._streams.ensure_groups(start_id, grace_ms)
        await self._streams.size_reads()
        # Entries left pending by this name's previous life go first: the partitions
        # still hold that life's marks, which are below them.
        await self._resend_pending()
        # Join before the first read: from now on a partition waits for our marks too.
        # Every entry we read later comes after the group's delivery point, so a mark
        # just below it promises nothing we could break.
        for side, ms in (await self._streams.delivered_ms()).items():
            self._raise_mark(side, ReadPosition.at_entry(ms))
        await self._forward((), with_marks=True)
        return horizon

    async def round(self) -> None:
        """One read, send (with the watermarks now and then) and ack."""
        if time.monotonic() - self._beat_at >= self._dead_after_ms / 3000:
            await self._streams.heartbeat(self._dead_after_ms)
            self._beat_at = time.monotonic()
        read = await self._streams.read_new(self._batch_size, self._block_ms, self._linger_ms)
        for side in STREAM_SIDES:
            position = read.caught_up.get(side)
            if position is None:
                arrivals = [e.arrival_ms for e in read.entries if e.side is side]
                if not arrivals:
                    continue
                # Later reads (ours or another forwarder's) only get later entries, though
                # entries of this same millisecond may still go to another forwarder.
                position = ReadPosition.at_entry(max(arrivals))
            self._raise_mark(side, position)
        # The marks cover this round's entries, which travel ahead of them.
        due = time.monotonic() - self._marks_sent >= WATERMARK_EVERY_S
        await self._forward(read.entries, with_marks=due)

    async def resend_pending(self) -> None:
        """After a lost connection: a read Redis served but whose reply never came left
        its entries pending to us, and a read of new entries (`>`) never returns them.
        Sent before our marks move past them."""
        await self._resend_pending()

    async def claim_dead(self) -> set[str]:
        """Re-sends the entries of forwarders gone quiet, then retires them everywhere."""
        dead = await self._streams.dead_consumers()
        if not dead:
            return dead
        claimed = await self._streams.claim_from(dead)
        await self._resend_pending()
        retire = encode_retire(Retire(tuple(sorted(dead))))
        await asyncio.gather(*[await self._send(b"", retire, p) for p in range(self._partitions)])
        await self._streams.retire(dead)
        log.warning(
            "forwarder(s) %s silent for %.0fs: re-sent their %d pending entries and retired them",
            ", ".join(sorted(dead)), self._dead_after_ms / 1000, claimed,
        )  # fmt: skip
        return dead

    def _raise_mark(self, side: Side, position: ReadPosition) -> None:
        # A mark is a promise already made to every partition: it never moves back.
        self._marks[side] = max(position.before_ms, self._marks.get(side, -1))

    async def _resend_pending(self) -> None:
        async for batch in self._streams.read_pending(self._batch_size):
            await self._forward(batch, with_marks=False)

    async def _forward(self, entries: Sequence[StreamEntry], *, with_marks: bool) -> None:
        by_partition: dict[int, list[StreamEntry]] = {}
        for entry in entries:
            by_partition.setdefault(partition_of(entry, self._partitions), []).append(entry)
        marks = self._marks if with_marks else None
        sender = self.name.encode()
        sent = []
        for partition in range(self._partitions) if with_marks else by_partition:
            for value in encode_batches(self.name, by_partition.get(partition, ()), marks):
                sent.append(await self._send(sender, value, partition))
        await asyncio.gather(*sent)  # Kafka has them all: now they may leave Redis' pending list
        if with_marks:
            self._marks_sent = time.monotonic()
        if not entries:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for side, key in ((PRODUCTION, self._keys.production), (SISTER, self._keys.sister)):
                ids = [e.entry_id for e in entries if e.side is side]
                if ids:
                    pipe.xack(key, self._keys.group, *ids)
            await pipe.execute()
