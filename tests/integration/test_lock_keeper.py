"""The worker's lock is refreshed by a thread of its own (docs/guarantees.md, "One active
worker, fenced"): an event that takes longer than --lock-ttl to verify gets its verdict
and the worker goes on, while a lock another worker holds is never extended."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.redis.errors import LockLost
from cdc_verify.pipeline.redis.lock import LockKeeper, WorkerLock, lock_token
from cdc_verify.pipeline.runners import worker as worker_module
from cdc_verify.pipeline.runners.worker import StreamWorker

from .support import PROD, SIS, primary_count, settings, verdict_records
from .test_worker_faults import fields

SLOW_S = 2.5  # verifying the slow event: past the 1 s lock several times over


class SlowOnce:
    """A consumer that takes SLOW_S on the event SLOW (the first `times` calls)."""

    def __init__(self, times: int = 1_000) -> None:
        self.left = times
        self.slow_calls = 0

    def __call__(self, entry: Mapping[bytes, bytes]) -> Any:
        if entry.get(b"event_id") == b"SLOW" and self.left > 0:
            self.left -= 1
            self.slow_calls += 1
            time.sleep(SLOW_S)
        return decode_event(entry)


def write_around_slow(client: redis.Redis) -> list[str]:
    """Events before SLOW, SLOW, and events after it: every one must get a verdict."""
    ids = [f"B{i}" for i in range(5)] + ["SLOW"] + [f"A{i}" for i in range(5)]
    for event_id in ids:
        client.xadd(PROD, fields(event_id))
        client.xadd(SIS, fields(event_id))
    return ids


def verify_watching_the_lock(
    url: str, client: redis.Redis, consumer: SlowOnce, caplog
) -> tuple[list[str], list[bytes | None]]:
    """Runs a worker with a 1 s lock over the events around SLOW until each has its
    verdict; returns them and the lock's value every 50 ms meanwhile."""
    ids = write_around_slow(client)
    cfg = settings(url, lock_ttl=1)
    key = WorkerKeys.from_settings(cfg).lock
    holders: list[bytes | None] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            holders.append(client.get(key))
            time.sleep(0.05)

    async def main() -> None:
        worker = StreamWorker(cfg, consumer)
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 30
        while primary_count(client) < len(ids) and time.monotonic() < deadline:
            assert not task.done(), "the worker stopped"
            await asyncio.sleep(0.1)
        worker.stop()
        await asyncio.wait_for(task, 20)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with caplog.at_level(logging.WARNING):
            asyncio.run(main())
    finally:
        stop.set()
        watcher.join()
    return ids, holders


def test_an_event_slower_than_the_lock_ttl_gets_its_verdict_and_the_worker_goes_on(
    redis_url, redis_client, caplog
):
    consumer = SlowOnce()
    ids, holders = verify_watching_the_lock(redis_url, redis_client, consumer, caplog)
    records = verdict_records(redis_client)
    assert sorted(r["event_id"] for r in records) == sorted(ids)  # each once
    assert {r["verdict"] for r in records} == {"match"}
    # Verified once: the lock never lapsed, so the batch was never redone.
    assert consumer.slow_calls == 1
    held = [i for i, h in enumerate(holders) if h is not None]
    assert held and len({holders[i] for i in held}) == 1, "the lock changed hands"
    assert None not in holders[held[0] : held[-1] + 1], "the lock lapsed"
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "was lost" in m or "refused" in m], messages
    [slow] = [m for m in messages if "to verify, longer than --lock-ttl" in m]
    assert "'SLOW'" in slow and "(1 s)" in slow


def test_a_loop_stuck_past_the_liveness_bound_lets_its_lock_go(
    redis_url, redis_client, caplog, monkeypatch
):
    """The keeper holds the lock for a loop that verifies, not for a hung one: past
    LIVENESS_S on the same entries the lock lapses (a standby could take it) and the
    worker, once it moves again, finds it lost, rebuilds from Redis and verifies the
    event."""
    monkeypatch.setattr(worker_module, "LIVENESS_S", 0.5)
    consumer = SlowOnce(times=1)  # hangs once; the retry after the lost lock is quick
    ids, holders = verify_watching_the_lock(redis_url, redis_client, consumer, caplog)
    records = verdict_records(redis_client)
    assert sorted(r["event_id"] for r in records) == sorted(ids)
    first_held = next(i for i, h in enumerate(holders) if h is not None)
    assert None in holders[first_held:], "the lock of a hung loop never lapsed"
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "verifying the same entries for" in m]
    assert [m for m in messages if "was lost" in m or "refused" in m]


def test_the_keeper_refreshes_while_the_loop_is_blocked_and_never_a_lock_another_holds(
    redis_url, redis_client
):
    cfg = settings(redis_url, lock_ttl=1)
    server = cfg.server(Role.STATE)
    key = WorkerKeys.from_settings(cfg).lock
    token = lock_token("keeper")

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        lock = WorkerLock(client, key, token, 1000, server)
        assert await lock.acquire(asyncio.Event())
        keeper = LockKeeper([lock], token, 1000, hold_s=60)
        keeper.start()
        try:
            with keeper.busy():
                time.sleep(3.0)  # the event loop blocked three times the ttl
            assert redis_client.get(key) == token.encode()
            keeper.check()
            assert keeper.refreshes >= 5
            # Another worker holds it now (as after our expiry): not ours to extend.
            redis_client.set(key, "other/1", px=5000)
            with keeper.busy():
                time.sleep(0.8)
            with pytest.raises(LockLost, match="was lost"):
                keeper.check()
            assert redis_client.get(key) == b"other/1"
            assert redis_client.pttl(key) > 1000  # our refresh would have set 1 s
        finally:
            await keeper.stop()
            await client.aclose()

    asyncio.run(main())
