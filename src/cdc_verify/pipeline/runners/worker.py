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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import exceptions as redis_errors

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import ROLE_OF_SIDE, Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.decoder import Consumer
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.core.shape import ShapeRules
from cdc_verify.core.verifier import Verifier
from cdc_verify.native import HOT_PATH
from cdc_verify.pipeline.redis.acl import check_acl, probe_key, refusal, server_uses
from cdc_verify.pipeline.redis.alerts import AlertStore
from cdc_verify.pipeline.redis.clock import ClockSkew
from cdc_verify.pipeline.redis.commit import VerdictCommitter
from cdc_verify.pipeline.redis.connection import connect
from cdc_verify.pipeline.redis.data_loss import DataLoss, LossWatch
from cdc_verify.pipeline.redis.errors import (
    REDIS_DOWN,
    AclRefused,
    LockLost,
    ServerRefused,
    heals_by_waiting,
)
from cdc_verify.pipeline.redis.group_stream import GroupStream
from cdc_verify.pipeline.redis.lock import LockKeeper, WorkerLock, lock_token
from cdc_verify.pipeline.redis.readonly_stream import Checkpoint, ReadOnlyProgress, ReadOnlyStream
from cdc_verify.pipeline.redis.retention import RetentionPruner
from cdc_verify.pipeline.redis.settle_mode import SettleMode
from cdc_verify.pipeline.redis.shapes import load_wide
from cdc_verify.pipeline.redis.streams import StreamPair, StreamsMissing
from cdc_verify.pipeline.redis.topology import Topology
from cdc_verify.pipeline.runners.backoff import Backoff, wait_for_redis
from cdc_verify.pipeline.runners.collector import fewer_collections
from cdc_verify.pipeline.runners.failure import WorkerFailed
from cdc_verify.pipeline.runners.spill import SpillDirectory
from cdc_verify.pipeline.runners.state_writers import retention_pruner, verdict_committer
from cdc_verify.pipeline.runners.verify_step import verify_entries
from cdc_verify.pipeline.runners.wiring import side_envelopes, verifier_config
from cdc_verify.pipeline.sinks.base import OutcomeCallback
from cdc_verify.pipeline.sinks.live import live_sinks
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import STREAM_SIDES, Side

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 5.0  # consumer lag, open-alert gauges, retention pruning
# The run loop beats at least every few seconds (reads block for block_ms, backoff and
# lock waits tick, verifying beats every INGEST_SLICE entries): a loop that has not for
# this long is wedged, /healthz fails and the lock keeper lets its lock go.
LIVENESS_S = 60.0
STREAMS_POLL_S = 1.0  # how often a worker waiting for its streams looks again
CHECKPOINT_S = 1.0  # read-only production: the longest a read position goes unsaved
CLOCK_SAMPLE_S = 1.0  # how often the two streams' clocks are compared
# Entries verified between two yields to the event loop: the read-ahead's round trips
# (a fenced read takes three) must not wait for a whole batch each.
INGEST_SLICE = 200


class CommitFailed(WorkerFailed):
    """A commit failed for a reason reconnecting cannot cure: the worker stops."""


class StreamWorker:
    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        *,
        redis_url: str | None = None,
        metrics: VerifierMetrics | None = None,
        on_outcomes: OutcomeCallback | None = None,
    ) -> None:
        if redis_url:  # the one-server URL (e.g. an embedded Redis) the roles default to
            settings = settings.model_copy(update={"redis_url": redis_url})
        self.settings = settings
        self.keys = WorkerKeys.from_settings(settings)
        self.metrics = metrics or VerifierMetrics(ignore_paths=settings.ignore_paths)
        self.status = StatusBoard()
        # Big waiting entries past --waiting-max-bytes; closed (removed) when run() ends.
        self.spill = SpillDirectory(settings.spill_dir)
        self.verifier = Verifier(
            consumer,
            verifier_config(settings, durable_decisions=True, shapes=True),
            self.spill,
        )
        self.verifier.slow_after_s = settings.lock_ttl  # said at WARNING (_report_slow)
        self.envelopes = side_envelopes(settings)  # a user's own is imported once, here
        self.servers = {role: settings.server(role) for role in Role}
        unset = [role.value for role, server in self.servers.items() if not server.url]
        if unset:
            raise ValueError(f"the worker needs a Redis URL for the {', '.join(unset)} server")
        # Per role, whether its server answered last time the worker looked.
        self.servers_up: dict[Role, bool] = {role: False for role in Role}
        # Read-only production: how far reading went, what was saved, and the entries
        # read since the last checkpoint (their waiting ones go into the next one).
        self.read_only_progress = ReadOnlyProgress(CHECKPOINT_S)
        self.clock = ClockSkew()
        # What this run had on each server: a server found without it lost its data.
        self.losses = LossWatch()
        self._started_at = time.monotonic()  # `$` starts here (run() sets it again)
        self._skew_warned = False
        # Told about each outcome once it is durable.
        self.sinks = live_sinks(
            self.metrics, self.status, jsonl=settings.jsonl, on_outcomes=on_outcomes
        )
        self._lock_token = lock_token(settings.consumer_name)
        # One commit may be in flight while the next batch is read and verified,
        # so Redis (running the commit) and Python (verifying) work in parallel.
        self._inflight: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once state is rebuilt and live reading began
        self.lag: dict[Side, float] = {}  # consumer lag per side, seconds, as last measured
        self.waiting_for: str | None = None  # what the worker waits for (streams), for /readyz
        self.heartbeat = time.monotonic()  # last sign of life of the run loop (liveness)
        self.running = False
        self._next_missing_warning = 0.0

    def pending_joins(self) -> dict[Side, int]:
        return {side: self.verifier.waiting_count(side) for side in STREAM_SIDES}

    def stop(self) -> None:
        """Finish the batch in hand, commit it, release the lock and return from run()."""
        self._stopping.set()

    async def run(self) -> None:
        with fewer_collections():  # collector.py: the young generation, per batch
            await self._run()

    async def _run(self) -> None:
        backoff = Backoff()
        self._started_at = time.monotonic()
        self.running = True
        log.info("worker %s starting: %s", self.settings.consumer_name, self._describe_servers())
        log.info("hot path: %s", HOT_PATH)  # native (compiled) or pure Python, and why
        try:
            while not self._stopping.is_set():
                self.heartbeat = time.monotonic()
                try:
                    await self._session(backoff)
                except REDIS_DOWN as exc:
                    if not heals_by_waiting(exc):
                        raise
                    self._set_ready(False)
                    if self._stopping.is_set():
                        break  # asked to stop, e.g. with an embedded Redis stopping beside us
                    await wait_for_redis(
                        exc, backoff, self.metrics.redis_reconnects, self._sleep, log,
                        then="reconnecting",
                    )  # fmt: skip
                except LockLost as exc:
                    self._set_ready(False)
                    log.error("%s; dropping this worker's state and waiting for the lock", exc)
                except StreamsMissing as exc:
                    self._set_ready(False)
                    self.waiting_for = f"the streams: {exc}"
                    self._set_lag({})  # none to measure: not a lag
                    if time.monotonic() >= self._next_missing_warning:
                        log.warning(
                            "waiting for the streams: %s (--create-streams creates them)", exc,
                        )  # fmt: skip
                        self._next_missing_warning = time.monotonic() + 30
                    await self._sleep(STREAMS_POLL_S)
                except redis_errors.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # A stream or group vanished (Redis restarted without persistence?).
                    self._set_ready(False)
                    log.warning("consumer group gone (%s); recreating it", exc)
                    await self._sleep(backoff.next())
        except (ServerRefused, AclRefused) as exc:
            log.critical("worker stopped: %s", exc)  # says what to fix: no traceback
            raise
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                log.critical("worker failed: %s", exc, exc_info=exc)
            raise
        finally:
            self.running = False
            self._set_ready(False)
            self.sinks.close()
            self.spill.close()
        log.info("worker stopped")

    def _describe_servers(self) -> str:
        parts = [
            f"{role.value} on {server.redacted_url()}" for role, server in self.servers.items()
        ]
        if self.settings.production_read_only:
            parts[0] += " (read-only)"
        return ", ".join(parts)

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
        try:
            topology = await Topology.open(s)  # every server answered it (HELLO)
        except REDIS_DOWN:
            await self._probe_servers()
            raise
        self._servers_seen_up(topology)
        session: Session | None = None
        try:
            await self._check_acls(topology.keys)
            self.keys = topology.keys
            rules = self.verifier.shape_rules
            session = Session.open(topology, s, self._lock_token, rules, self.envelopes)
            # The state server's lock first: it fences commits; then one on each other
            # server whose stream is read through the group: it fences the reads there.
            for lock in session.locks:
                if not await lock.acquire(self._stopping, on_wait=self._beat):
                    return
            session.keeper.start()  # refreshes them while this loop verifies
            streams = session.streams
            # Before anything is recreated: what a server lost since the last session.
            lost = await self.losses.check(topology, streams, self.verifier)
            if lost:
                self._report_losses(lost)
            horizon = await streams.ensure_groups(
                s.start_id, s.grace_ms, s.create_streams,
                started_at=self._started_at, horizon_known=self.losses.horizon,
            )  # fmt: skip
            self.waiting_for = None
            if streams.start_ignored:
                log.warning("%s", streams.start_ignored)
            self.losses.remember(horizon, streams)
            await streams.size_reads()
            if rules is not None:  # the paths earlier sessions (or workers) found wide
                await load_wide(topology.state, topology.keys, rules)
            claimed = await streams.claim_orphans()
            if claimed:
                log.info("claimed %d entries left pending by dead consumers", claimed)
            # Join state lives in Redis (un-acked entries, or read-only production's
            # waiting set); rebuild it from there.
            self.verifier.reset(horizon)
            self.read_only_progress.restart()
            rebuilt = 0
            async for batch in streams.read_pending(s.batch_size):
                rebuilt += len(batch)
                await self._process(session, batch)
                await session.keep_locks()
                self.heartbeat = time.monotonic()
            if rebuilt:
                log.info("rebuilt join state from %d pending entries", rebuilt)
            backoff.reset()
            self._set_ready(True)
            next_housekeeping = next_clock_sample = 0.0
            # Read-ahead: the next read is under way while this batch is verified.
            reading = asyncio.create_task(
                streams.read_new(s.batch_size, s.block_ms, s.read_linger_ms)
            )
            try:
                while not self._stopping.is_set():
                    read = await reading
                    reading = asyncio.create_task(
                        streams.read_new(s.batch_size, s.block_ms, s.read_linger_ms)
                    )
                    if self._inflight is not None and self._inflight.done():
                        await self._settle_commit()  # a failed commit surfaces now
                    for side, position in read.caught_up.items():
                        self.verifier.advance(side, position)
                    if read.caught_up.keys() & self.lag.keys():  # nothing unread: no lag
                        self._set_lag(
                            {k: v for k, v in self.lag.items() if k not in read.caught_up}
                        )
                    if PRODUCTION in read.last_ids:
                        self.read_only_progress.read_through = read.last_ids[PRODUCTION]
                        if session.read_only_production:
                            self.losses.saw(PRODUCTION, read.last_ids[PRODUCTION])
                    await self._process(session, read.entries)
                    await session.keep_locks()
                    self.heartbeat = now = time.monotonic()
                    if now >= next_clock_sample:
                        await self._sample_clocks(session)
                        next_clock_sample = now + CLOCK_SAMPLE_S
                    if now >= next_housekeeping:
                        await self._housekeeping(session)
                        next_housekeeping = now + HOUSEKEEPING_S
            finally:
                # What it read stays pending in Redis and is rebuilt on the next start.
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading
            await self._settle_commit()
            await session.keeper.stop()
            for lock in reversed(session.locks):
                await lock.release()
        except REDIS_DOWN:
            await self._probe_servers()
            raise
        finally:
            self._set_ready(False)
            if session is not None:
                await session.keeper.stop()
            task, self._inflight = self._inflight, None
            if task is not None:
                # Let it finish: if Redis ran it, its outcomes are durable and the
                # metrics, JSONL and callbacks must still see them. A dead connection
                # makes it fail fast, and then Redis never saw it.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=s.redis_socket_timeout)
            await topology.aclose()

    def _report_losses(self, lost: list[DataLoss]) -> None:
        by_server: dict[str, list[DataLoss]] = {}
        for loss in lost:
            self.metrics.server_data_lost.labels(role=loss.role.value).inc()
            self.status.servers_lost_data.append({**loss.as_json(), "what": loss.what})
            by_server.setdefault(loss.server, []).append(loss)
        for server, found in by_server.items():
            *others, last = [loss.role.value for loss in found]
            roles = f"{', '.join(others)} and {last}" if others else last
            gone = "; ".join(loss.what for loss in found)
            log.error(
                "the %s server %s lost its data (restarted without persistence, or "
                "flushed): %s is gone. What it held that was not yet verified went with "
                "it: the gaps that may cause are marked server_lost_data in their alerts. "
                "Give that server persistence (docs/topology.md#durability-appendfsync)",
                roles, server, gone,
            )  # fmt: skip

    async def _check_acls(self, keys: WorkerKeys) -> None:
        """Try each command every server's user needs, harmlessly (acl.py): a refusal is
        one line naming the server and the fix, now, not a NOPERM mid-run."""
        s = self.settings
        for use in server_uses(s):
            check = await check_acl(use.server, use.needs, list(use.streams), probe_key(keys))
            if not check.ok:
                raise AclRefused(refusal(use, check, s))

    def _servers_seen_up(self, topology: Topology) -> None:
        for role in topology.servers:
            self.servers_up[role] = True
            self.metrics.redis_up.labels(role=role.value).set(1)

    async def _probe_servers(self) -> None:
        """Which server went away: each is asked once, briefly, on a connection of its own
        (for /readyz, cdc_verify_redis_up and the log)."""
        for role, server in self.servers.items():
            client = connect(server)
            try:
                await asyncio.wait_for(client.ping(), 1.0)
                up = True
            except Exception:  # any failure to answer is "away"
                up = False
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            if self.servers_up.get(role) and not up:
                log.warning("the %s server %s is away", role.value, server.redacted_url())
            self.servers_up[role] = up
            self.metrics.redis_up.labels(role=role.value).set(1 if up else 0)

    async def _sample_clocks(self, session: Session) -> None:
        """Measures the skew of the two streams' clocks; shifts the core's comparisons by it
        (so that it stays out of the verdicts) and warns when it nears the grace window."""
        await self.clock.sample(session.streams)
        skew = self.clock.skew_ms
        self.metrics.clock_skew.set(skew / 1000)
        self.verifier.set_skew(self.clock.correction_ms())
        near = abs(skew) >= self.settings.grace_ms / 2
        if near and not self._skew_warned:
            log.warning(
                "the sister stream's clock is %+.0f ms off production's: that nears the "
                "grace window (%.1f s); verdicts are corrected for it, but check NTP",
                skew, self.settings.grace,
            )  # fmt: skip
        self._skew_warned = near

    def _set_lag(self, lag: dict[Side, float]) -> None:
        self.lag = lag
        for side in STREAM_SIDES:
            self.metrics.consumer_lag.labels(side=side.value).set(lag.get(side, 0.0))

    async def _housekeeping(self, session: Session) -> None:
        self._set_lag(await session.streams.lag_seconds())
        alerts_dropped, verdicts_dropped = await session.pruner.prune()
        if alerts_dropped or verdicts_dropped:
            log.info(
                "retention: dropped %d alerts and %d verdict records",
                alerts_dropped, verdicts_dropped,
            )  # fmt: skip
        count, oldest_age = await session.alerts.open_summary()
        self.metrics.open_alerts.set(count)
        self.metrics.oldest_open_alert_age.set(oldest_age or 0.0)

    async def _process(self, session: Session, entries: list[StreamEntry]) -> None:
        verifier = self.verifier
        outcomes: list[Outcome] = []
        if entries:
            outcomes = await verify_entries(
                verifier, entries, session.committer.lookup, self.metrics,
                slice_size=INGEST_SLICE,
                busy=session.keeper.busy,  # its thread keeps the lock meanwhile
                after_slice=self._beat,  # progress, for /healthz
            )  # fmt: skip
            self._report_slow()
            await self._compare_late(session, outcomes)
            if session.read_only_production:
                self.read_only_progress.read(entries)
        outcomes += verifier.expire()
        self.losses.mark(outcomes, self.settings.grace_ms)
        checkpoint = (
            self.read_only_progress.checkpoint(bool(outcomes), verifier.is_waiting)
            if session.read_only_production
            else None
        )
        if outcomes or checkpoint is not None:
            await self._settle_commit()
            self._inflight = asyncio.create_task(self._commit(session, outcomes, checkpoint))
            self._inflight.add_done_callback(self._commit_done)
        for side in STREAM_SIDES:
            self.metrics.pending_joins.labels(side=side.value).set(verifier.waiting_count(side))
        self.metrics.spilled_bytes.set(self.spill.bytes)

    def _report_slow(self) -> None:
        """Events that took longer than the lock's ttl to verify: the lock keeper held the
        lock meanwhile, but every other event waited, and the operator should know."""
        for entry, seconds in self.verifier.take_slow():
            log.warning(
                "event %r (%s entry %s) took %.1f s to verify, longer than --lock-ttl "
                "(%g s): the lock's own thread kept the lock meanwhile, and the events "
                "after it waited that long for their verdicts",
                entry.event_id, entry.side.value, entry.entry_id, seconds, self.settings.lock_ttl,
            )  # fmt: skip

    async def _compare_late(self, session: Session, outcomes: list[Outcome]) -> None:
        """Late arrivals whose twin the core no longer holds: fetch it back from its stream."""
        late = {
            o.event_id: o
            for o in outcomes
            if o.kind is OutcomeKind.LATE and o.late_record is None and o.event_id
        }
        if not late:
            return
        twins = await session.streams.fetch(await session.alerts.gap_entries(list(late)))
        with session.keeper.busy():  # decoding both sides again
            for event_id, twin in twins.items():
                if twin.side is not late[event_id].settles[0].side:
                    self.verifier.compare_late(late[event_id], twin)

    async def _settle_commit(self) -> None:
        """Wait for the commit in flight; its errors surface here."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    def _commit_done(self, task: asyncio.Task[None]) -> None:
        # Readiness drops the moment a commit fails, not when the loop next looks.
        if not task.cancelled() and task.exception() is not None:
            self._set_ready(False)

    async def _commit(
        self, session: Session, outcomes: list[Outcome], checkpoint: Checkpoint | None
    ) -> None:
        try:
            # A retried commit (after a lost reply) returns only what it newly wrote.
            fresh = await session.committer.commit(outcomes, checkpoint)
            # Streams elsewhere than the state server are acked once their outcomes are
            # durable; markers on the state server guard a crash in between.
            await session.ack_elsewhere(outcomes)
        except LockLost:
            raise  # the session ends; the entries stay pending and are read again
        except REDIS_DOWN:
            raise
        except redis_errors.RedisError as exc:
            if "NOGROUP" in str(exc):
                raise  # a group that vanished: run() recreates it
            raise CommitFailed(f"Redis rejected a commit of {len(outcomes)}: {exc}") from exc
        self.sinks.add(fresh)


@dataclass
class Session:
    """What one connection to the servers holds: readers, locks, the committer."""

    streams: StreamPair
    locks: list[WorkerLock]
    keeper: LockKeeper  # refreshes `locks` from a thread, once they are all taken
    committer: VerdictCommitter
    pruner: RetentionPruner
    alerts: AlertStore
    ack_after: dict[Side, GroupStream]  # sides acked after the commit, where they live
    read_only_production: bool

    @classmethod
    def open(
        cls,
        topology: Topology,
        s: Settings,
        token: str,
        shapes: ShapeRules | None = None,
        envelopes: Mapping[Side, Envelope | None] | None = None,
    ) -> Session:
        ttl_ms = round(s.lock_ttl * 1000)
        state, keys = topology.state, topology.keys
        streams = StreamPair.from_topology(
            topology, s.consumer_name, token, int(s.read_max_bytes), envelopes
        )
        # The state server's lock fences commits (and reads of a stream beside it); a
        # stream read through the group elsewhere is fenced by a lock beside it (same
        # name on another server; on a Cluster, in the stream's slot).
        locks = [WorkerLock(state, keys.lock, token, ttl_ms, topology.servers[Role.STATE])]
        modes: dict[Side, SettleMode] = {}
        ack_after: dict[Side, GroupStream] = {}
        for side, reader in streams.readers.items():
            if isinstance(reader, ReadOnlyStream):
                modes[side] = SettleMode.POSITION
            elif topology.on_state_server(ROLE_OF_SIDE[side]):
                modes[side] = SettleMode.ACK
            else:
                modes[side] = SettleMode.MARK
                ack_after[side] = reader
                fence = keys.fence_lock(reader.key)
                if all(lock.client is not reader.client or lock.key != fence for lock in locks):
                    server = topology.servers[ROLE_OF_SIDE[side]]
                    locks.append(WorkerLock(reader.client, fence, token, ttl_ms, server))
        committer = verdict_committer(
            state, s, keys=keys, settle=(modes[PRODUCTION], modes[SISTER]), lock_token=token,
            shapes=shapes,
        )  # fmt: skip
        return cls(
            streams,
            locks,
            LockKeeper(locks, token, ttl_ms, LIVENESS_S),
            committer,
            retention_pruner(state, s, keys),
            AlertStore(state, keys),
            ack_after,
            topology.production_read_only,
        )

    async def keep_locks(self) -> None:
        """Between batches: refresh the locks (LockLost if one is gone, also when the
        keeper found it so while this loop verified)."""
        self.keeper.check()
        for lock in self.locks:
            await lock.keep()

    async def ack_elsewhere(self, outcomes: Sequence[Outcome]) -> None:
        for side, reader in self.ack_after.items():
            ids = [e.entry_id for o in outcomes for e in o.settles if e.side is side]
            if ids:
                await reader.ack(ids)
