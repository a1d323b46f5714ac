"""The verifier as a Faust app: forwarders feed a Kafka topic, a join agent per partition.

Topics (named after the consumer group):
  <group>-entries     batches of stream entries, partitioned by event_id, with the
                      forwarders' watermarks (messages.py)
  <group>-verdicts    verdict records keyed by event_id, in their join's partition (at
                      least once: a replay after a rebalance may repeat one; Redis
                      holds them exactly once)
  <app>-<group>-join-state-changelog   the join state table (waiting entries, marks,
                      the next offset each join applies)

Verdicts, decisions and alerts go to Redis through the same atomic commit as the
single-process worker, so `cdc-verify alerts`, the API and the verdict stream read
the same keys whichever engine wrote them. Entries were acked in Redis by their
forwarder, so the commit settles them by marker keys instead of XACK; a replayed
entry finds its marker and writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import Awaitable, Iterable, Sequence, Set
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP
from mode import ServiceT
from mode.types.signals import BaseSignalT
from prometheus_client import start_http_server

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.core.decoder import Consumer
from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.outcome import Outcome, record_to_json
from cdc_verify.core.shape import ShapeRules
from cdc_verify.pipeline.faust.join import PartitionJoin, partition_prefix
from cdc_verify.pipeline.faust.messages import Batch, Retire, decode
from cdc_verify.pipeline.faust.partition_reader import PartitionReader, Record
from cdc_verify.pipeline.faust.record_batches import send_in_batches
from cdc_verify.pipeline.faust.services import ForwarderService, RedisService
from cdc_verify.pipeline.faust.topics import ensure_topics
from cdc_verify.pipeline.runners.verify_step import verify_entries
from cdc_verify.pipeline.runners.wiring import verifier_config
from cdc_verify.pipeline.sinks.base import OutcomeCallback
from cdc_verify.pipeline.sinks.live import live_sinks
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.schemas.verdicts import STREAM_SIDES

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 0.25
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # entries may carry payloads of several MB


def kafka_url(url: str) -> str:
    return url if "://" in url else f"kafka://{url}"


def bootstrap_servers(url: str) -> str:
    return url.split("://", 1)[-1]


class VerifierWorker(faust.Worker):
    """A Faust worker that runs the engine's services around its app.

    mode starts a service's dependencies in order and stops them in reverse, and
    faust.Worker puts the services it is given before the app. `after` come after
    it: started once the app runs, stopped before the app stops.
    """

    def __init__(
        self, app: faust.App, *before: ServiceT, after: Sequence[ServiceT], **kwargs: Any
    ) -> None:
        super().__init__(app, *before, **kwargs)
        self.after = list(after)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        return [*super().on_init_dependencies(), *self.after]

    async def stop(self) -> None:
        # Stopping ends with the Kafka consumer committing its offsets, which can wait on
        # a rebalance for good when two workers stop at once. Every verdict is in Redis
        # by then and an offset not committed is only read again (the joins' commits are
        # idempotent), so a stop that takes too long ends the process: with the status
        # the worker would have ended with, 1 after a crash (a failed commit), else 0.
        watchdog = threading.Timer(STOP_TIMEOUT_S, self._end_a_stuck_stop)
        watchdog.daemon = True
        watchdog.start()
        await super().stop()

    def _end_a_stuck_stop(self) -> None:
        status = 1 if self.crash_reason is not None else 0
        log.warning(
            "stopping took over %.0f s (Kafka offsets not committed: they are read again); "
            "exiting now with status %d", STOP_TIMEOUT_S, status,
        )  # fmt: skip
        logging.shutdown()
        os._exit(status)


STOP_TIMEOUT_S = 30.0


class FaustVerifier:
    """Builds one worker's app and services; `worker()` runs them."""

    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        kafka: str,
        *,
        redis_url: str | None = None,
        partitions: int = 8,
        metrics: VerifierMetrics | None = None,
        on_outcomes: OutcomeCallback | None = None,
    ) -> None:
        self.settings = settings
        self.keys = WorkerKeys.from_settings(settings)
        self.metrics = metrics or VerifierMetrics(ignore_paths=settings.ignore_paths)
        self.partitions = partitions
        self._consumer = consumer
        self._redis_url = redis_url or settings.redis_url
        if not self._redis_url:
            raise ValueError("the Faust engine needs a Redis URL")
        # Told about each outcome once Redis holds it, as in the single worker.
        self.sinks = live_sinks(self.metrics, jsonl=settings.jsonl, on_outcomes=on_outcomes)
        # Several forwarders feed each partition: only watermarks say how far a side is read.
        self._config = replace(
            verifier_config(settings, durable_decisions=True, shapes=True),
            ordered_sides=False,
        )
        # One set of shape rules for every join of this worker, and its commits.
        self._shape_rules = ShapeRules() if self._config.shapes else None
        self._joins: dict[int, PartitionJoin] = {}
        self._lock = asyncio.Lock()
        self._kafka = kafka

        group = settings.group
        self.app = faust.App(
            f"cdc-verify-{group}",
            broker=kafka_url(kafka),
            store="memory://",
            topic_partitions=partitions,
            topic_replication_factor=1,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
            producer_max_request_size=MAX_MESSAGE_BYTES,
            consumer_max_fetch_size=MAX_MESSAGE_BYTES,
            broker_commit_interval=1.0,
            # A killed worker's partitions move on after this (Kafka's default is 45 s).
            broker_session_timeout=10.0,
            broker_heartbeat_interval=2.0,
            table_standby_replicas=0,
            worker_redirect_stdouts=False,
            # The state lives in Kafka (memory store + changelog); Faust still wants a
            # directory, which must not land in whatever directory the worker started in.
            datadir=Path(tempfile.gettempdir()) / f"cdc-verify-faust-{settings.consumer_name}",
        )
        raw: dict[str, Any] = {
            "key_type": bytes, "value_type": bytes,
            "key_serializer": "raw", "value_serializer": "raw",
            "partitions": partitions, "internal": True,
            "config": {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        }  # fmt: skip
        self.entries = self.app.topic(f"{group}-entries", **raw)
        self.verdicts = self.app.topic(f"{group}-verdicts", **raw)
        self.table = self.app.Table(
            f"{group}-join-state",
            key_type=bytes,  # bytes: the table's changelog is read back raw, not as JSON
            value_type=bytes,
            partitions=partitions,
            default=None,
            extra_topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        )
        self.app.agent(self.entries, name=f"{group}-join")(self._join_agent)
        self.app.timer(EXPIRE_EVERY_S)(self._expire_timer)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_rebalance_complete.connect(self._on_rebalanced)

        # The app's joins commit through `redis` and read skipped stretches through
        # `reader`; the forwarder sends through the app's producer (see VerifierWorker).
        self.redis = RedisService(
            settings, self._redis_url, self.metrics, self.sinks,
            stopping=lambda: self.app.should_stop, shape_rules=self._shape_rules,
        )  # fmt: skip
        self.reader = PartitionReader(
            bootstrap_servers(kafka), self.entries.get_topic_name(), MAX_MESSAGE_BYTES
        )
        self.forwarder = ForwarderService(
            self.redis, self.keys, self._send, partitions, self.metrics
        )

    def worker(self, **options: Any) -> VerifierWorker:
        """The worker process's lifecycle; `options` go to faust.Worker."""
        return VerifierWorker(self.app, self.redis, self.reader, after=[self.forwarder], **options)

    # -- the join agent ------------------------------------------------------------

    async def _join_agent(self, stream: Any) -> None:
        name = self.entries.get_topic_name()
        async for events in stream.take_events(self.settings.batch_size, within=0.05):
            by_partition: dict[int, list[Record]] = {}
            for event in events:
                message = event.message
                by_partition.setdefault(message.partition, []).append((message.offset, event.value))
            async with self._lock:
                # Events fetched before a rebalance took their partition away belong to
                # its new owner, which reads them again: a join here would see only part
                # of that partition's watermarks and could call a gap too early.
                assigned = {tp.partition for tp in self.app.consumer.assignment()
                            if tp.topic == name}  # fmt: skip
                for partition, messages in by_partition.items():
                    if partition in assigned:
                        join = self._join_for(partition)
                        fresh = await self.reader.in_order(partition, join.next_offset, messages)
                        await self._process(join, fresh)

    async def _process(self, join: PartitionJoin, messages: list[Record]) -> None:
        if not messages:
            return
        outcomes: list[Outcome] = []
        entries: list[StreamEntry] = []

        async def ingest() -> None:
            if entries:
                outcomes.extend(
                    await verify_entries(join, entries, self.redis.lookup, self.metrics)
                )
                entries.clear()

        for _, value in messages:
            try:
                message = decode(value)
            except ValueError as exc:
                log.error("skipping a message on %s the forwarders did not write: %s",
                          self.entries.get_topic_name(), exc)  # fmt: skip
                continue
            if isinstance(message, Batch):
                entries.extend(message.entries)
                if message.marks:
                    await ingest()  # a mark covers the entries before it, and only those
                    for mark in message.marks:
                        join.watermark(mark)
            elif isinstance(message, Retire):
                await ingest()
                join.retire(message)
        await ingest()
        join.applied(messages[-1][0])
        outcomes.extend(join.expire())
        await self._settle(join, outcomes)

    async def _expire_timer(self) -> None:
        async with self._lock:
            for join in list(self._joins.values()):
                outcomes = join.expire()
                if outcomes:
                    await self._settle(join, outcomes)
            for side in STREAM_SIDES:
                waiting = sum(j.waiting_count(side) for j in self._joins.values())
                self.metrics.pending_joins.labels(side=side.value).set(waiting)

    async def _settle(self, join: PartitionJoin, outcomes: list[Outcome]) -> None:
        """Redis first (exactly once), then the verdict topic, then the state table."""
        if outcomes:
            fresh = await self.redis.commit(outcomes)  # and told to the sinks
            # Co-partitioned with the entries: an event's verdict lands in its join's partition.
            records = [
                ((o.event_id or "").encode(), record_to_json(o.record).encode())
                for o in fresh
                if o.record is not None
            ]
            producer = self._kafka_producer()
            topic = self.verdicts.get_topic_name()
            await asyncio.gather(*await send_in_batches(producer, topic, join.partition, records))
        # The changelog must hold this state before the offsets of the events that made
        # it can be committed, so it is sent and awaited here rather than buffered
        # (Faust flushes buffered table writes only best-effort before a commit).
        changes = join.changes()
        for key, value in changes.items():
            if value is None:
                self.table.data.pop(key, None)
            else:
                self.table.data[key] = value
        if changes:
            changelog = self.table.changelog_topic.get_topic_name()
            sent = await send_in_batches(
                self._kafka_producer(), changelog, join.partition, changes.items()
            )
            await asyncio.gather(*sent)

    def _join_for(self, partition: int) -> PartitionJoin:
        join = self._joins.get(partition)
        if join is None:
            join = self._joins[partition] = PartitionJoin(
                partition, self._consumer, self._config, self._shape_rules
            )
            prefix = partition_prefix(partition)
            items = [(k, v) for k, v in list(self.table.data.items()) if k.startswith(prefix)]
            join.restore(items, self.redis.horizon)
            if items:
                log.info("partition %d: restored %d join-state keys", partition, len(items))
        return join

    async def _on_revoked(
        self,
        app: Any,
        revoked: Set[TP] = frozenset(),
        /,
        *_: Any,
        signal: BaseSignalT[Any],
        **__: Any,
    ) -> None:
        name = self.entries.get_topic_name()
        async with self._lock:
            for tp in revoked:
                if tp.topic == name:
                    self._joins.pop(tp.partition, None)

    async def _on_rebalanced(
        self, app: Any, /, *_: Any, signal: BaseSignalT[Any], **__: Any
    ) -> None:
        # Faust awaits this before it starts our tasks: restore in the background.
        self.app.add_future(self._restore_assigned())

    async def _restore_assigned(self) -> None:
        # Partitions with waiting events but no new messages must still expire them.
        name = self.entries.get_topic_name()
        async with self._lock:
            for tp in self.app.consumer.assignment():
                if tp.topic == name:
                    self._join_for(tp.partition)

    async def ensure_topics(self) -> None:
        """Call before the worker starts: see topics.py."""
        await ensure_topics(
            bootstrap_servers(self._kafka),
            [self.entries.get_topic_name(), self.verdicts.get_topic_name()],
            self.partitions,
            {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        )

    def _send(self, key: bytes, value: bytes, partition: int) -> Awaitable[Any]:
        return self._produce(self.entries.get_topic_name(), key, value, partition)

    def _kafka_producer(self) -> Any:
        """The AIOKafkaProducer under Faust's producer (record batches need it)."""
        # faust-streaming's aiokafka Producer keeps it there; it raises NotReady before start.
        return cast(Any, self.app.producer)._ensure_producer()

    async def _produce(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None = None
    ) -> Awaitable[Any]:
        """Queues raw bytes on the producer; the result resolves once Kafka has them.

        Straight to the producer: every value here is bytes already, and Faust's
        topic.send costs about as much again per message for what we do not use.
        """
        return await self.app.producer.send(
            topic, key=key, value=value, partition=partition, timestamp=None, headers=None
        )


def run_faust_worker(settings: Settings, consumer: Consumer) -> None:
    """Runs one Faust worker until SIGTERM/SIGINT (Faust's worker owns the signals)."""
    assert settings.kafka_url
    verifier = FaustVerifier(
        settings, consumer, settings.kafka_url, partitions=settings.kafka_partitions
    )
    if settings.http_port:
        start_http_server(settings.http_port, settings.http_host, verifier.metrics.registry)
        log.info("metrics on http://%s:%d/metrics", settings.http_host, settings.http_port)
    asyncio.run(verifier.ensure_topics())
    worker = verifier.worker(loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
