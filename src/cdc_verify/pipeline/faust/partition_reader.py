"""Reads a stretch of one partition straight from Kafka, outside Faust's consumer.

Around a rebalance Faust's consumer can hand an agent a partition's messages with
a stretch left out (faust-streaming issues #216, #221: a prefetched message from
before the rebalance, then the fetch position jumps). The join must see every
message of its partition in order, so it tracks the next offset it expects and
reads any skipped stretch here before it goes on.

A mode service: its Kafka consumer, made on first use, is stopped with it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from mode import Service

log = logging.getLogger(__name__)

Record = tuple[int, bytes]  # (offset, value) of one Kafka message
RETRY_S = 1.0


class PartitionReader(Service):
    def __init__(self, bootstrap_servers: str, topic: str, max_message_bytes: int) -> None:
        super().__init__()
        self._topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._max_message_bytes = max_message_bytes
        self._consumer: AIOKafkaConsumer | None = None  # made on first use, in the loop
        self._lock = asyncio.Lock()

    async def in_order(
        self, partition: int, expected: int | None, messages: list[Record]
    ) -> list[Record]:
        """The messages from offset `expected` on, in order and with none left out.

        `expected` is the next offset the join applies (None: it has applied nothing
        and starts at the partition's first offset). Messages before it were applied
        already (the group's committed offset lags the join's state, or Faust
        delivered them again); a jump past it is a stretch Faust skipped, read here.
        """
        if expected is None:
            expected = await self.earliest(partition)
        ordered: list[Record] = []
        for offset, value in messages:
            if offset < expected:
                continue
            if offset > expected:
                skipped = await self.read(partition, expected, offset)
                log.warning(
                    "partition %d: the Kafka consumer skipped offsets %d..%d; read %d "
                    "messages directly", partition, expected, offset - 1, len(skipped),
                )  # fmt: skip
                ordered.extend(skipped)
            ordered.append((offset, value))
            expected = offset + 1
        return ordered

    async def earliest(self, partition: int) -> int:
        """The first offset still in the partition (where a join with no state starts)."""
        async with self._lock:
            tp = await self._ready(partition)
            return (await self._kafka.beginning_offsets([tp]))[tp]

    async def read(self, partition: int, start: int, end: int) -> list[Record]:
        """Every message with start <= offset < end, in order; retries until Kafka answers.

        Messages already deleted by retention cannot be had: they are logged as lost
        and the stretch starts at the first offset left.
        """
        while True:
            try:
                async with self._lock:
                    return await self._read(await self._ready(partition), start, end)
            except OffsetOutOfRangeError:
                first = await self.earliest(partition)
                log.error(
                    "partition %d: offsets %d..%d were deleted by the topic's retention before "
                    "this worker applied them; their entries get no verdict from this engine",
                    partition, start, min(first, end) - 1,
                )  # fmt: skip
                start = first
            except KafkaError as exc:
                log.warning("partition %d: reading offsets %d..%d failed (%s); retrying",
                            partition, start, end - 1, exc)  # fmt: skip
                await asyncio.sleep(RETRY_S)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def _kafka(self) -> AIOKafkaConsumer:
        assert self._consumer is not None
        return self._consumer

    async def _ready(self, partition: int) -> TopicPartition:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                group_id=None,  # manual assignment: no group, no commits
                enable_auto_commit=False,
                auto_offset_reset="none",  # a stretch deleted by retention must be reported
                max_partition_fetch_bytes=self._max_message_bytes,
                fetch_max_bytes=self._max_message_bytes,
            )
            await consumer.start()
            self._consumer = consumer
        tp = TopicPartition(self._topic, partition)
        self._consumer.assign([tp])
        return tp

    async def _read(self, tp: TopicPartition, start: int, end: int) -> list[Record]:
        messages: list[Record] = []
        if start >= end:
            return messages
        self._kafka.seek(tp, start)
        while True:
            batch = await self._kafka.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, ()):
                if record.offset >= end:
                    return messages
                if record.value is not None:
                    messages.append((record.offset, record.value))
            if await self._kafka.position(tp) >= end:
                return messages
