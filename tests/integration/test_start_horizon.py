"""A worker started in the middle of live traffic invents no gap at its start point, and
one started before its streams exist verifies every event written after it started."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import entry_id_ms
from cdc_verify.pipeline.runners import worker as worker_module
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .redis_cluster import LocalCluster
from .support import PROD, SIS, primary_count, run_worker_until_done, settings, verdict_records
from .topology_servers import servers_fixture  # noqa: F401 (the `servers` fixture)


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


# -- a worker started before its streams exist (`$` is when `run` started) ----------------

POLL_S = 2.0  # how often the waiting worker looks for its streams: the old gap's width


def _fields(event_id: str, payload: bytes) -> dict[str, str | bytes]:
    return {"event_id": event_id, "encoding": "msgpack", "payload": payload}


async def write_from_creation(production, sister, seconds: float) -> list[str]:
    """Pairs at ~400/s from the first XADD on, which creates each stream."""
    payload = encode_msgpack(sample_comment(random.Random(5), "t1_s"))
    written: list[str] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        batch = [f"S{len(written) + i:07d}" for i in range(4)]
        for client, stream in ((production, PROD), (sister, SIS)):
            pipe = client.pipeline(transaction=False)
            for event_id in batch:
                pipe.xadd(stream, _fields(event_id, payload))
            await pipe.execute()
        written += batch
        await asyncio.sleep(0.01)
    return written


def verify_what_follows_the_start(cfg, writers, verdicts, monkeypatch) -> None:
    """A worker starts before both streams exist; they are created 0.5 s later and
    written at once. Every event written gets its verdict, exactly one: `match`."""
    monkeypatch.setattr(worker_module, "STREAMS_POLL_S", POLL_S)
    worker = StreamWorker(cfg, decode_event)
    written: list[str] = []

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # it looked, found no stream, and waits POLL_S
        assert not worker.ready.is_set() and not task.done()
        production, sister = writers()
        written.extend(await write_from_creation(production, sister, 2.5))
        for client in {id(production): production, id(sister): sister}.values():
            await client.aclose()
        deadline = time.monotonic() + 30
        while primary_count(verdicts, cfg_verdicts(cfg, verdicts)) < len(written):
            assert not task.done(), "the worker stopped"
            if time.monotonic() > deadline:
                break  # the assertions below say what is missing
            await asyncio.sleep(0.1)
        await asyncio.sleep(cfg.grace + 0.3)  # anything extra would show up now
        worker.stop()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
    records = verdict_records(verdicts, cfg_verdicts(cfg, verdicts))
    verified = sorted(r["event_id"] for r in records)
    missing = sorted(set(written) - set(verified))
    assert not missing, f"{len(missing)} of {len(written)} events got no verdict: {missing[:3]}"
    assert len(written) > 200
    assert verified == sorted(written)  # exactly one each
    assert {r["verdict"] for r in records} == {"match"}


def cfg_verdicts(cfg, client) -> str:
    """The verdict stream's key (hash-tagged on a Cluster)."""
    return WorkerKeys.from_settings(cfg, cluster=isinstance(client, redis.RedisCluster)).verdicts


def test_a_worker_started_before_its_streams_verifies_every_event_after_its_start(
    redis_url, redis_client, monkeypatch
):
    cfg = settings(redis_url, start_id="$", create_streams=False)

    def writers():
        client = aioredis.Redis.from_url(redis_url)
        return client, client

    verify_what_follows_the_start(cfg, writers, redis_client, monkeypatch)


def test_on_three_servers_a_worker_started_before_its_streams_verifies_every_event(
    servers, monkeypatch
):
    with servers.client(Role.PRODUCTION) as admin:
        admin.delete(PROD)  # a read-only worker waits for production's stream
    cfg = servers.settings(start_id="$", create_streams=False)

    def writers():
        return (aioredis.Redis.from_url(servers.production.url),
                aioredis.Redis.from_url(servers.sister.url))  # fmt: skip

    with servers.client(Role.STATE) as state:
        verify_what_follows_the_start(cfg, writers, state, monkeypatch)


def test_on_a_cluster_a_worker_started_before_its_streams_verifies_every_event(
    tmp_path, monkeypatch
):
    with LocalCluster(tmp_path / "cluster") as cluster:
        cfg = settings(cluster.url, start_id="$", create_streams=False)

        def writers():
            client = AsyncRedisCluster.from_url(cluster.url)
            return client, client

        client = cluster.client()
        try:
            verify_what_follows_the_start(cfg, writers, client, monkeypatch)
        finally:
            client.close()


def test_a_start_id_on_a_group_that_started_before_is_said_to_be_ignored(
    redis_url, redis_client, caplog
):
    run_worker_until_done(settings(redis_url, start_id="$"), redis_client, 0)
    redis_client.xadd(PROD, {"event_id": "E1", "encoding": "msgpack", "payload": b""})
    run_worker_until_done(settings(redis_url, start_id="$"), redis_client, 0)  # reads it
    delivered = redis_client.xinfo_groups(PROD)[0]["last-delivered-id"].decode()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_worker_until_done(settings(redis_url, start_id="0"), redis_client, 0)
    said = [r for r in caplog.records if "--start-id" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING], [r.getMessage() for r in said]
    message = said[0].getMessage()
    assert message.startswith("--start-id 0 is ignored"), message
    for stream, role in ((PROD, "production"), (SIS, "sister")):
        assert f"consumer group 'cdc-verify' of '{stream}' on the {role} server {redis_url}" in (
            message
        )
    assert f"last delivered entry {delivered}" in message
    assert "a new --group name" in message
