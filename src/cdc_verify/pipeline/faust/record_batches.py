"""Many messages to one partition as Kafka record batches, not one `send` each.

A join writes a verdict record per event and a changelog entry per waiting event.
aiokafka's per-message `send` (metadata wait, partitioning, a future per message)
cost about as much as verifying the event; a `BatchBuilder` appends a message for a
fraction of that and `send_batch` queues the whole batch. Messages of one partition
keep their order: batches are queued in the order they are sent, behind anything
queued before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any


async def send_in_batches(
    producer: Any, topic: str, partition: int, messages: Iterable[tuple[bytes, bytes | None]]
) -> list[Awaitable[Any]]:
    """Queues `messages` (key, value; value None: a tombstone) on `producer`, an
    AIOKafkaProducer; returns what resolves once Kafka has them."""
    sent: list[Awaitable[Any]] = []
    batch = producer.create_batch()
    for key, value in messages:
        if batch.append(key=key, value=value, timestamp=None) is not None:
            continue
        # Full (a failed append closes it): send it and start another.
        if batch.record_count():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        batch = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is not None:
            continue
        # Larger than a batch may be (max_batch_size): the per-message path takes it.
        sent.append(await producer.send(topic, value, key=key, partition=partition))
        batch = producer.create_batch()
    if batch.record_count():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent
