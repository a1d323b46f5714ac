"""/readyz of a worker started before its streams exist (docs/guarantees.md, "Streams
that do not exist"): it says what it waits for, is ready as soon as the streams appear,
and never reports a lag made up from where its group started."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
import redis.asyncio as aioredis

from cdc_verify.pipeline.redis.group_stream import GroupStream
from cdc_verify.schemas.verdicts import Side

from .support import PROD, SIS, ServedWorker, primary_count, settings, wait_for
from .test_worker_faults import fields

BOUND_S = 1.0  # --ready-max-lag: far above the real lag, far below a made-up one


def probe(url: str) -> tuple[int, dict]:
    reply = httpx.get(f"{url}/readyz", timeout=5)
    return reply.status_code, reply.json()["checks"]


def lag_of(checks: dict) -> float | None:
    found = re.match(r"consumer lag ([0-9.e+]+)s", checks["lag"]["detail"])
    return float(found.group(1)) if found else None


@pytest.mark.parametrize("start_id", ["$", "0"])
def test_readyz_waits_for_the_streams_by_name_then_is_ready_with_a_true_lag(
    redis_url, redis_client, start_id
):
    # A long idle wait: the first XADD wakes it before anything is delivered, and the
    # housekeeping after that wake-up measured the lag from the group's start (1970 for
    # --start-id 0, the run's start for $): 1.8e9 s, or the seconds it waited.
    cfg = settings(redis_url, start_id=start_id, create_streams=False, block_ms=3000,
                   lock_ttl=10, ready_max_lag=BOUND_S)  # fmt: skip
    with ServedWorker(cfg, wait_ready=False) as served:
        wait_for(lambda: "waiting for" in probe(served.url)[1]["worker"]["detail"], 10,
                 "the worker to say it waits")  # fmt: skip
        status, checks = probe(served.url)
        assert status == 503
        assert checks["worker"]["detail"] == (
            f"waiting for the streams: '{PROD}' does not exist, '{SIS}' does not exist"
        )
        assert checks["lag"]["ok"] and "not measured" in checks["lag"]["detail"]
        # The writer's application creates both streams (with a group of its own), empty.
        for key in (PROD, SIS):
            redis_client.xgroup_create(key, "app", id="$", mkstream=True)
        wait_for(lambda: probe(served.url)[0] == 200, 10, "/readyz 200 once the streams exist")
        time.sleep(0.5)
        seen: list[tuple[int, float | None]] = []
        for i in range(20):
            redis_client.xadd(PROD, fields(f"E{i}"))
            redis_client.xadd(SIS, fields(f"E{i}"))
            status, checks = probe(served.url)
            seen.append((status, lag_of(checks)))
            time.sleep(0.05)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            status, checks = probe(served.url)
            seen.append((status, lag_of(checks)))
            time.sleep(0.05)
        wait_for(lambda: primary_count(redis_client) >= 20, 20, "the 20 verdicts")
    assert {status for status, _ in seen} == {200}, seen
    assert max(lag or 0.0 for _, lag in seen) <= BOUND_S, seen


def test_the_lag_counts_from_the_oldest_entry_not_yet_read(redis_url, redis_client):
    """Entries written 40 s, 30 s and 10 s ago (entry-id time), read one by one by a group
    at 0: the lag is how long the oldest unread one has waited, by the server's clock."""
    seconds, _ = redis_client.time()
    now_ms = int(seconds) * 1000
    for ago in (40, 30, 10):
        redis_client.xadd(PROD, {"n": ago}, id=f"{now_ms - ago * 1000}-0")
    redis_client.xgroup_create(PROD, "g", id="0")

    async def lags() -> list[float]:
        client = aioredis.Redis.from_url(redis_url)
        reader = GroupStream(Side.PRODUCTION, client, PROD, "g", "me")
        found = [await reader.lag_seconds()]
        for _ in range(3):
            await client.xreadgroup("g", "me", {PROD: ">"}, count=1)
            found.append(await reader.lag_seconds())
        await client.aclose()
        return found

    # Not since 1970 (the group's start at 0), and not 0 for the last one left unread:
    # one entry a stuck worker never reads shows its wait.
    found = asyncio.run(lags())
    for got, want in zip(found, (40, 30, 10, 0), strict=True):
        assert want <= got < want + 5, found
