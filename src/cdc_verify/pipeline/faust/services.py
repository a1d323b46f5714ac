"""The Faust engine's own mode services: Redis for the joins, and the forwarder.

A worker process runs them beside the Faust app (app.py, `VerifierWorker`), which
starts its dependencies in order and stops them in reverse:

  RedisService      before the app: the joins commit through it from their first
                    message on; after the app: it closes the sinks and the client
                    once the last join is done
  ForwarderService  after the app: it sends through the app's producer, so it starts
                    once the producer runs and stops before the producer does

Redis errors: a lost connection (REDIS_DOWN) is waited out with backoff; any other
error (WRONGTYPE, an ACL refusal, a bug) is logged at CRITICAL and crashes the
worker, which exits with a non-zero status instead of retrying what cannot succeed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from mode import Service

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.outcome import Decision, Outcome
from cdc_verify.core.shape import ShapeRules
from cdc_verify.pipeline.faust.forwarder import CLAIM_EVERY_S, RedisForwarder, Send
from cdc_verify.pipeline.redis.commit import VerdictCommitter
from cdc_verify.pipeline.redis.connection import connect, redact
from cdc_verify.pipeline.redis.errors import REDIS_DOWN, heals_by_waiting
from cdc_verify.pipeline.redis.settle_mode import SettleMode
from cdc_verify.pipeline.redis.shapes import load_wide
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.runners.backoff import Backoff, wait_for_redis
from cdc_verify.pipeline.runners.failure import WorkerFailed
from cdc_verify.pipeline.runners.state_writers import verdict_committer
from cdc_verify.pipeline.runners.wiring import side_envelopes
from cdc_verify.pipeline.sinks.base import Sinks
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
ROUND_GRACE_S = 10.0  # how long a stopping forwarder may take to finish its round


class RedisService(Service):
    """The Redis client the joins and the forwarder share, and the joins' way out:
    the atomic commit, then the sinks (metrics, log, JSONL copy, callback).

    on_start connects and learns the horizon (creating the consumer groups where
    absent); on_stop closes the sinks and the client.
    """

    def __init__(
        self,
        settings: Settings,
        url: str,
        metrics: VerifierMetrics,
        sinks: Sinks,
        *,
        stopping: Callable[[], bool],
        shape_rules: ShapeRules | None = None,
    ) -> None:
        """`shape_rules`: the joins' rules, when they take shapes (coverage)."""
        super().__init__()
        self.settings = settings
        self._shape_rules = shape_rules
        self.sinks = sinks
        self.horizon = 0
        self._url = url
        self._metrics = metrics
        # True once the worker stops the joins: a call that cannot reach Redis then
        # gives up (the next owner of the partition replays it) rather than holding
        # the shutdown.
        self._stopping = stopping
        self._client: aioredis.Redis | None = None
        self._committer: VerdictCommitter | None = None

    @property
    def client(self) -> aioredis.Redis:
        assert self._client is not None, "RedisService not started"
        return self._client

    async def on_start(self) -> None:
        s = self.settings
        # One server for both streams and the state (the CLI refuses other topologies).
        self._client = connect(s.model_copy(update={"redis_url": self._url}).server(Role.STATE))
        # Forwarders acked each entry once Kafka had it: markers guard the commit.
        keys = WorkerKeys.from_settings(s)
        self._committer = verdict_committer(
            self._client, s, keys=keys, settle=(SettleMode.MARK, SettleMode.MARK),
            shapes=self._shape_rules,
        )  # fmt: skip
        streams = StreamPair.on_one_server(self._client, keys, s.consumer_name)
        try:
            self.horizon = await self.call(
                "creating the consumer groups",
                lambda: streams.ensure_groups(s.start_id, s.grace_ms),
            )
        except REDIS_DOWN:
            if self.should_stop:
                return  # stopped while waiting for Redis: mode starts nothing after us
            raise
        if self._shape_rules is not None:  # the paths other workers found wide
            rules = self._shape_rules
            await self.call("reading the wide paths", lambda: load_wide(self.client, keys, rules))
        log.info("Redis %s: consumer group %s ready", redact(self._url), s.group)

    async def on_stop(self) -> None:
        # The worker stops us after the app: no join commits or tells a sink any more.
        self.sinks.close()
        if self._client is not None:
            await self._client.aclose()

    async def lookup(self, events: Mapping[str, int]) -> dict[str, Decision]:
        """Decisions Redis remembers for these event_ids (each with an entry's ms)."""
        committer = self._committer
        assert committer is not None
        return await self.call("a decision lookup", lambda: committer.lookup(events))

    async def commit(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Makes the outcomes durable, then tells the sinks of those this call wrote.

        A commit retried after a lost connection writes nothing twice (commit.py).
        """
        committer = self._committer
        assert committer is not None
        fresh = await self.call(
            f"a commit of {len(outcomes)} outcomes", lambda: committer.commit(outcomes)
        )
        self.sinks.add(fresh)
        return fresh

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, waiting out a lost connection; any other error stops the worker."""
        backoff = Backoff()
        while True:
            try:
                return await call()
            except Exception as exc:
                if not heals_by_waiting(exc):
                    raise await fail(self, what, exc) from exc
                if self._stopping() or self.should_stop:
                    raise
                reconnects = self._metrics.redis_reconnects
                await wait_for_redis(exc, backoff, reconnects, self.sleep, log, what=what)


class ForwarderService(Service):
    """Moves stream entries from Redis to the entries topic (forwarder.py).

    on_start joins the consumer group and every partition's watermarks; a task runs
    the rounds (and now and then takes over silent forwarders) with backoff while
    Redis is away, and re-sends its own pending entries once Redis is back; on_stop
    lets the round in hand finish while the producer can still send. What it read
    and did not send stays pending in Redis for the other workers.
    """

    def __init__(
        self,
        redis: RedisService,
        keys: WorkerKeys,
        send: Send,
        partitions: int,
        metrics: VerifierMetrics,
    ) -> None:
        super().__init__()
        self._redis = redis
        self._keys = keys
        self._send = send
        self._partitions = partitions
        self._metrics = metrics
        self._forwarder: RedisForwarder | None = None
        self._idle = asyncio.Event()  # no round running (set until the loop starts)
        self._idle.set()

    @property
    def forwarder(self) -> RedisForwarder:
        assert self._forwarder is not None, "ForwarderService not started"
        return self._forwarder

    async def on_start(self) -> None:
        s = self._redis.settings
        self._forwarder = RedisForwarder(
            self._redis.client, self._keys, s.consumer_name, self._send,
            self._partitions, batch_size=s.batch_size, block_ms=s.block_ms,
            linger_ms=s.read_linger_ms,
            dead_after_ms=round(s.lock_ttl * 1000), read_max_bytes=int(s.read_max_bytes),
            envelopes=side_envelopes(s),
        )  # fmt: skip
        backoff = Backoff()
        while not self.should_stop:
            try:
                await self._forwarder.start(s.start_id, s.grace_ms)
            except Exception as exc:
                if not heals_by_waiting(exc):
                    raise await fail(self, "starting the forwarder", exc) from exc
                await self._wait_for_redis(exc, backoff)
            else:
                log.info("forwarder %s started", s.consumer_name)
                return

    @Service.task
    async def _forward(self) -> None:
        self._idle.clear()
        backoff = Backoff()
        next_claim = 0.0
        lost = False
        try:
            while not self.should_stop:
                try:
                    if lost:
                        await self.forwarder.resend_pending()
                        lost = False
                    await self.forwarder.round()
                    if time.monotonic() >= next_claim:
                        await self.forwarder.claim_dead()
                        next_claim = time.monotonic() + CLAIM_EVERY_S
                    backoff.reset()
                except Exception as exc:
                    if not heals_by_waiting(exc):
                        await fail(self, "forwarding", exc)
                        return
                    lost = True
                    await self._wait_for_redis(exc, backoff)
        finally:
            self._idle.set()

    async def on_stop(self) -> None:
        # should_stop is set: the loop ends after this round. mode cancels it after us.
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=ROUND_GRACE_S)
        except TimeoutError:
            log.warning(
                "forwarder round still running after %.0fs; stopping it (its entries stay "
                "pending in Redis for the other workers)", ROUND_GRACE_S,
            )  # fmt: skip

    async def _wait_for_redis(self, exc: Exception, backoff: Backoff) -> None:
        await wait_for_redis(exc, backoff, self._metrics.redis_reconnects, self.sleep, log)


async def fail(service: Service, what: str, exc: BaseException) -> WorkerFailed:
    """Logs `exc` at CRITICAL and crashes the worker (mode marks the whole service
    tree crashed; the worker stops it and exits non-zero). Returns the error to raise."""
    if isinstance(exc, WorkerFailed):
        return exc  # told already
    log.critical("%s failed: %s: %s; the worker stops", what, type(exc).__name__, exc,
                 exc_info=exc)  # fmt: skip
    failure = WorkerFailed(f"{what} failed: {exc}")
    await service.crash(failure)
    return failure
