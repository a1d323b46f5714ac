"""The long-lived single-process worker: Redis streams in, durable verdicts out.

Lifecycle of one session (a connection to Redis):
  take the group's lock -> create groups -> claim dead consumers' entries ->
  rebuild join state from our pending entries -> read, verify, commit, repeat.
A session ends on stop, on a lost connection or a lost lock; after the latter
two the worker backs off and starts a fresh session, rebuilding its state from
Redis, which is the only state that counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from redis import exceptions as redis_errors

from cdc_verify.pipeline.core.decoder import Consumer
from cdc_verify.pipeline.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind
from cdc_verify.pipeline.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.redis.alerts import AlertStore
from cdc_verify.pipeline.redis.commit import RetentionPruner, VerdictCommitter
from cdc_verify.pipeline.redis.connection import connect, redact
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.pipeline.redis.lock import LockLost, WorkerLock, lock_token
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.sinks.jsonl import JsonlVerdictWriter
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.settings import Settings
from cdc_verify.schemas.verdicts import Side, Verdict

log = logging.getLogger(__name__)

# Errors after which Redis is reconnected and the state rebuilt from it.
REDIS_DOWN = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    OSError,
)
HOUSEKEEPING_S = 5.0  # consumer lag, open-alert gauges, retention pruning


# Decisions the live worker keeps in memory; older ones are looked up in Redis.
# It must cover a commit in flight and the grace window; a minute does, cheaply.
DECIDED_IN_MEMORY_MS = 60_000


def verifier_config(settings: Settings, durable_decisions: bool = False) -> VerifierConfig:
    return VerifierConfig(
        grace_ms=settings.grace_ms,
        decided_retention_ms=round(settings.decided_retention * 1000),
        decided_in_memory_ms=(
            max(2 * settings.grace_ms, DECIDED_IN_MEMORY_MS) if durable_decisions else None
        ),
        ignored_paths=tuple(settings.ignore_paths),
        float_tolerance=settings.float_tolerance,
    )


# Verdicts an operator acts on are logged at INFO; the rest, which can run at
# thousands a second, only at DEBUG.
NOTABLE = frozenset({Verdict.MISSING_IN_SISTER, Verdict.MISSING_IN_PRODUCTION, Verdict.UNDECODABLE})


def log_outcomes(outcomes: Sequence[Outcome]) -> None:
    """One line per durable outcome about an event, with the event id as a field."""
    debug = log.isEnabledFor(logging.DEBUG)
    if not (debug or log.isEnabledFor(logging.INFO)):
        return
    for o in outcomes:
        record = o.record
        if record is None:
            if o.kind is OutcomeKind.LATE:
                entry = o.settles[0]
                log.info(
                    "late arrival of %s on %s, %d ms after its twin", entry.event_id,
                    entry.side.value, o.late_by_ms,
                    extra={"event_id": entry.event_id, "verdict": "late",
                           "side": entry.side.value, "entry_id": entry.entry_id},
                )  # fmt: skip
            continue
        if record.verdict in NOTABLE or (debug and record.verdict is not Verdict.MATCH):
            log.log(
                logging.INFO if record.verdict in NOTABLE else logging.DEBUG,
                "%s %s%s", record.verdict.value, record.event_id or "(no event_id)",
                f": {record.error}" if record.error else "",
                extra={"event_id": record.event_id, "verdict": record.verdict.value,
                       "side": record.side.value if record.side else None,
                       "entry_id": record.entry_id},
            )  # fmt: skip


class Backoff:
    """Exponential reconnect delay with jitter: 0.1 s doubling to 5 s."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first, self._cap, self._next = first, cap, first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay * random.uniform(0.8, 1.2)


class StreamWorker:
    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        *,
        redis_url: str | None = None,
        metrics: VerifierMetrics | None = None,
        on_outcomes: Callable[[Sequence[Outcome]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.keys = WorkerKeys.from_settings(settings)
        self.metrics = metrics or VerifierMetrics()
        self.status = StatusBoard()
        self.verifier = Verifier(consumer, verifier_config(settings, durable_decisions=True))
        self._url = redis_url or settings.redis_url
        if not self._url:
            raise ValueError("the worker needs a Redis URL")
        self._on_outcomes = on_outcomes
        self._jsonl = JsonlVerdictWriter(settings.jsonl) if settings.jsonl else None
        self._lock_token = lock_token(settings.consumer_name)
        # One commit may be in flight while the next batch is read and verified,
        # so Redis (running the commit) and Python (verifying) work in parallel.
        self._inflight: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once state is rebuilt and live reading began
        self.lag: dict[Side, float] = {}  # consumer lag per side, seconds, as last measured
        self.heartbeat = time.monotonic()  # last sign of life of the run loop (liveness)
        self.running = False

    def pending_joins(self) -> dict[Side, int]:
        return {side: self.verifier.waiting_count(side) for side in (PRODUCTION, SISTER)}

    def stop(self) -> None:
        """Finish the batch in hand, commit it, release the lock and return from run()."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = Backoff()
        self.running = True
        log.info("worker %s starting on %s", self.settings.consumer_name, redact(self._url))
        try:
            while not self._stopping.is_set():
                self.heartbeat = time.monotonic()
                try:
                    await self._session(backoff)
                except redis_errors.AuthenticationError:
                    raise  # wrong credentials do not heal by retrying
                except REDIS_DOWN as exc:
                    self._set_ready(False)
                    if self._stopping.is_set():
                        break  # asked to stop, e.g. with an embedded Redis stopping beside us
                    self.metrics.redis_reconnects.inc()
                    delay = backoff.next()
                    log.warning("Redis unavailable (%s); reconnecting in %.1fs", exc, delay)
                    await self._sleep(delay)
                except LockLost as exc:
                    self._set_ready(False)
                    log.error("%s; rebuilding state", exc)
                except redis_errors.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # A stream or group vanished (Redis restarted without persistence?).
                    self._set_ready(False)
                    log.warning("consumer group gone (%s); recreating it", exc)
                    await self._sleep(backoff.next())
        finally:
            self.running = False
            if self._jsonl:
                self._jsonl.close()
        log.info("worker stopped")

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    def _set_ready(self, ready: bool) -> None:
        if ready:
            self.ready.set()
        else:
            self.ready.clear()
        self.metrics.ready.set(1 if ready else 0)

    async def _sleep(self, seconds: float) -> None:
        self.heartbeat = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _session(self, backoff: Backoff) -> None:
        s = self.settings
        client = connect(s, self._url)
        lock = WorkerLock(client, self.keys.lock, self._lock_token, round(s.lock_ttl * 1000))
        try:
            if not await lock.acquire(self._stopping, on_wait=self._beat):
                return
            streams = StreamPair(client, self.keys, s.consumer_name)
            committer = VerdictCommitter(
                client, self.keys, round(s.decided_retention * 1000), s.verdict_stream_maxlen,
                round(s.verdict_retention * 1000),
            )  # fmt: skip
            pruner = RetentionPruner(
                client, self.keys, round(s.alert_retention * 1000),
                round(s.verdict_retention * 1000),
            )  # fmt: skip
            alerts = AlertStore(client, self.keys)
            horizon = await streams.ensure_groups(s.start_id, s.grace_ms)
            claimed = await streams.claim_orphans()
            if claimed:
                log.info("claimed %d entries left pending by dead consumers", claimed)
            # Join state lives in Redis (un-acked entries); rebuild it from there.
            self.verifier.reset(horizon)
            rebuilt = 0
            async for batch in streams.read_pending(s.batch_size):
                rebuilt += len(batch)
                await self._process(streams, alerts, committer, batch)
                await lock.keep()
                self.heartbeat = time.monotonic()
            if rebuilt:
                log.info("rebuilt join state from %d pending entries", rebuilt)
            backoff.reset()
            self._set_ready(True)
            next_housekeeping = 0.0
            # Read-ahead: the next XREADGROUP is under way while this batch is verified.
            reading = asyncio.create_task(streams.read_new(s.batch_size, s.block_ms))
            try:
                while not self._stopping.is_set():
                    read = await reading
                    reading = asyncio.create_task(streams.read_new(s.batch_size, s.block_ms))
                    for side in read.caught_up:
                        # Entry ids are Redis time: nothing older than server_ms can still come.
                        self.verifier.advance(side, read.server_ms - 1)
                    await self._process(streams, alerts, committer, read.entries)
                    await lock.keep()
                    self.heartbeat = now = time.monotonic()
                    if now >= next_housekeeping:
                        await self._housekeeping(streams, alerts, pruner)
                        next_housekeeping = now + HOUSEKEEPING_S
            finally:
                # What it read stays pending in Redis and is rebuilt on the next start.
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading
            await self._settle_commit()
            await lock.release()
        finally:
            self._set_ready(False)
            task, self._inflight = self._inflight, None
            if task is not None:
                # Let it finish: if Redis ran it, its outcomes are durable and the
                # metrics, JSONL and callbacks must still see them. A dead connection
                # makes it fail fast, and then Redis never saw it.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=s.redis_socket_timeout)
            await client.aclose()

    async def _housekeeping(
        self, streams: StreamPair, alerts: AlertStore, pruner: RetentionPruner
    ) -> None:
        self.lag = await streams.lag_seconds()
        for side, lag in self.lag.items():
            self.metrics.consumer_lag.labels(side=side.value).set(lag)
        alerts_dropped, verdicts_dropped = await pruner.prune()
        if alerts_dropped or verdicts_dropped:
            log.info(
                "retention: dropped %d alerts and %d verdict records",
                alerts_dropped, verdicts_dropped,
            )  # fmt: skip
        count, oldest_age = await alerts.open_summary()
        self.metrics.open_alerts.set(count)
        self.metrics.oldest_open_alert_age.set(oldest_age or 0.0)

    async def _process(
        self,
        streams: StreamPair,
        alerts: AlertStore,
        committer: VerdictCommitter,
        entries: list[StreamEntry],
    ) -> None:
        verifier = self.verifier
        outcomes: list[Outcome] = []
        if entries:
            needed = verifier.lookup_needed(entries)
            prior = await committer.lookup(needed) if needed else None
            outcomes = verifier.ingest(entries, prior)
            await self._compare_late(streams, alerts, outcomes)
            produced = sum(1 for e in entries if e.side is PRODUCTION)
            self.metrics.read(PRODUCTION.value, produced)
            self.metrics.read(SISTER.value, len(entries) - produced)
        outcomes += verifier.expire()
        if outcomes:
            await self._settle_commit()
            self._inflight = asyncio.create_task(self._commit(committer, outcomes))
        for side in (PRODUCTION, SISTER):
            self.metrics.pending_joins.labels(side=side.value).set(verifier.waiting_count(side))

    async def _compare_late(
        self, streams: StreamPair, alerts: AlertStore, outcomes: list[Outcome]
    ) -> None:
        """Late arrivals whose twin the core no longer holds: fetch it back from its stream."""
        late = {
            o.event_id: o
            for o in outcomes
            if o.kind is OutcomeKind.LATE and o.late_record is None and o.event_id
        }
        if not late:
            return
        twins = await streams.fetch(await alerts.gap_entries(list(late)))
        for event_id, twin in twins.items():
            if twin.side is not late[event_id].settles[0].side:
                self.verifier.compare_late(late[event_id], twin)

    async def _settle_commit(self) -> None:
        """Wait for the commit in flight; its errors surface here."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _commit(self, committer: VerdictCommitter, outcomes: list[Outcome]) -> None:
        # A retried commit (after a lost reply) returns only what it newly wrote.
        outcomes = await committer.commit(outcomes)
        self.metrics.outcomes(outcomes)
        self.status.add(outcomes)
        log_outcomes(outcomes)
        if self._jsonl:
            self._jsonl.write(outcomes)
            self._jsonl.flush()
        if self._on_outcomes:
            self._on_outcomes(outcomes)
