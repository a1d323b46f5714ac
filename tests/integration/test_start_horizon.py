"""A worker started in the middle of live traffic invents no gap at its start point."""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis

from cdc_verify.pipeline.core.entry import entry_id_ms
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .support import PROD, SIS, primary_count, run_worker_until_done, settings, verdict_records


async def write_pairs(url: str, seconds: float) -> None:
    """Pairs at ~1500/s; the sister copy lags 0-600 ms or leads by up to 300 ms."""
    client = aioredis.Redis.from_url(url)
    rng = random.Random(9)
    payload = encode_msgpack(sample_comment(rng, "t1_h"))
    scheduled: list[tuple[float, str, str]] = []
    start, n = time.monotonic(), 0
    while time.monotonic() - start < seconds or scheduled:
        now = time.monotonic()
        if now - start < seconds:
            for _ in range(15):
                event_id = f"H{n:07d}"
                n += 1
                lag = rng.uniform(-0.3, 0.6)
                first, second = (PROD, SIS) if lag >= 0 else (SIS, PROD)
                scheduled.append((now, first, event_id))
                scheduled.append((now + abs(lag), second, event_id))
        due = [s for s in scheduled if s[0] <= now]
        scheduled = [s for s in scheduled if s[0] > now]
        pipe = client.pipeline(transaction=False)
        for _, stream, event_id in due:
            pipe.xadd(stream, {"event_id": event_id, "encoding": "msgpack", "payload": payload})
        await pipe.execute()
        await asyncio.sleep(0.01)
    await client.aclose()


def test_starting_mid_stream_reports_no_false_gap(redis_url, redis_client):
    cfg = settings(redis_url, start_id="$", grace=1.0)
    horizon_key = WorkerKeys.from_settings(cfg).horizon
    in_scope: set[bytes] = set()

    async def traffic_then_wait(worker) -> None:
        writer = asyncio.create_task(write_pairs(redis_url, 4.0))
        await asyncio.sleep(1.5)  # the worker joins 1.5 s into the traffic
        await asyncio.wait_for(worker.ready.wait(), 10)
        await writer
        # In scope: every event with an entry at or after the declared start.
        horizon = int(redis_client.get(horizon_key))
        for stream in (PROD, SIS):
            for entry_id, fields in redis_client.xrange(stream):
                if entry_id_ms(entry_id.decode()) >= horizon:
                    in_scope.add(fields[b"event_id"])
        deadline = time.monotonic() + 30
        while primary_count(redis_client) < len(in_scope):
            assert time.monotonic() < deadline, f"{primary_count(redis_client)}/{len(in_scope)}"
            await asyncio.sleep(0.05)

    run_worker_until_done(cfg, redis_client, 0, during=traffic_then_wait)
    records = verdict_records(redis_client)
    assert len(in_scope) > 3000
    assert len(records) == len(in_scope)  # exactly one each, nothing extra
    assert {r["event_id"].encode() for r in records} == in_scope
    assert {r["verdict"] for r in records} == {"match"}, [
        r for r in records if r["verdict"] != "match"
    ][:3]
