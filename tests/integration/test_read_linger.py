"""--read-linger-ms: once every stream is caught up, reads come at most once per linger,
so a live stream's entries are verified in fewer, larger batches; a backlog is read at
once. On a real Redis."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.runners.worker import StreamWorker

from .support import PROD, SIS, settings, verdict_records

LINGER_MS = 300


async def _pair(redis_url: str) -> tuple[aioredis.Redis, StreamPair]:
    client = aioredis.Redis.from_url(redis_url)
    keys = WorkerKeys.from_settings(settings(redis_url))
    await client.xadd(PROD, {"event_id": "E0"})
    await client.xadd(SIS, {"event_id": "E0"})
    streams = StreamPair.on_one_server(client, keys, "w")
    await streams.ensure_groups("0", 1000)
    await streams.size_reads()  # else the first reads take one entry (read_budget.py)
    return client, streams


def test_after_a_caught_up_read_the_next_begins_a_linger_after_it_and_takes_what_came(
    redis_url,
):
    async def scenario() -> tuple[float, int, float]:
        client, streams = await _pair(redis_url)
        began = time.monotonic()
        first = await streams.read_new(100, block_ms=10, linger_ms=LINGER_MS)
        assert len(first.entries) == 2  # every stream caught up
        for i in range(1, 6):  # entries that come while the reader lingers
            await client.xadd(PROD, {"event_id": f"E{i}"})
        second = await streams.read_new(100, block_ms=10, linger_ms=LINGER_MS)
        waited = time.monotonic() - began
        # Without a linger the next read is at once.
        await client.xadd(PROD, {"event_id": "E6"})
        quick = time.monotonic()
        third = await streams.read_new(100, block_ms=10, linger_ms=0)
        assert len(third.entries) == 1
        await client.aclose()
        return waited, len(second.entries), time.monotonic() - quick

    waited, read, quick = asyncio.run(scenario())
    assert waited >= LINGER_MS / 1000 - 0.01, waited
    assert read == 5  # all in one batch
    assert quick < LINGER_MS / 1000 / 2, quick


def test_a_stream_with_a_backlog_is_read_again_at_once(redis_url):
    async def scenario() -> tuple[list[int], float]:
        client, streams = await _pair(redis_url)
        for i in range(1, 26):
            await client.xadd(PROD, {"event_id": f"E{i}"})
        began = time.monotonic()
        sizes = []
        for _ in range(3):  # full batches of 10: no linger between them
            read = await streams.read_new(10, block_ms=10, linger_ms=LINGER_MS)
            sizes.append(len(read.entries))
        elapsed = time.monotonic() - began
        await client.aclose()
        return sizes, elapsed

    sizes, elapsed = asyncio.run(scenario())
    assert sizes == [11, 10, 6], sizes  # production's 10 (and the sister's 1), 10, then 6
    assert elapsed < LINGER_MS / 1000 / 2, elapsed


def test_a_lingering_worker_reads_far_less_often_and_still_verifies_every_event(
    redis_url, redis_client
):
    """Pairs written every 10 ms for 1.5 s: with a 100 ms linger the worker reads a few
    times a second (its reads are counted by the server), not after each pair."""

    def reads() -> int:
        stats = redis_client.info("commandstats")
        return int(stats.get("cmdstat_xreadgroup", {}).get("calls", 0))

    async def scenario() -> int:
        cfg = settings(redis_url, read_linger_ms=100, grace=5)
        worker = StreamWorker(cfg, lambda fields: {"id": fields[b"event_id"].decode()})
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 10)
        client = aioredis.Redis.from_url(redis_url)
        before = reads()
        for i in range(150):
            await client.xadd(PROD, {"event_id": f"L{i}"})
            await client.xadd(SIS, {"event_id": f"L{i}"})
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 10
        while len(verdict_records(redis_client)) < 150 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        made = reads() - before
        worker.stop()
        await asyncio.wait_for(task, 10)
        await client.aclose()
        return made

    made = asyncio.run(scenario())
    records = verdict_records(redis_client)
    assert sorted(r["event_id"] for r in records) == sorted(f"L{i}" for i in range(150))
    assert {r["verdict"] for r in records} == {"match"}
    # About 1.5 s of writing at one read per 100 ms (a few more while verdicts settle);
    # without the linger the worker reads after nearly every pair (~150 times).
    assert made <= 40, made
