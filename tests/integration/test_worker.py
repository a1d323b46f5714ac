"""The long-lived worker against a real Redis server."""

from __future__ import annotations

import asyncio
import json
import random

import msgpack
import pytest
import redis
import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.redis.decisions import DecisionStore
from cdc_verify.pipeline.redis.errors import LockLost
from cdc_verify.pipeline.redis.lock import WorkerLock, lock_token
from cdc_verify.pipeline.runners.state_writers import verdict_committer
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import (
    PROD,
    SIS,
    assert_exactly_one_primary,
    assert_records_match,
    run_worker_until_done,
    settings,
    verdict_records,
    verdicts_metric,
)


def test_every_verdict_kind_exactly_once_and_everything_acked(redis_url, redis_client):
    corpus = generate(3000, seed=11, grace_ms=1000)
    base = past_base_ms(redis_client, corpus)
    write_corpus(redis_client, corpus, PROD, SIS, base)
    cfg = settings(redis_url)
    worker = run_worker_until_done(cfg, redis_client, len(corpus.expected))

    records = verdict_records(redis_client)
    assert_records_match(records, corpus.expected_records(base))
    assert_exactly_one_primary(records, corpus)
    assert {r["verdict"] for r in records} == {
        "match", "mismatch", "race", "undecodable", "missing_in_sister",
        "missing_in_production", "duplicate", "malformed",
    }  # fmt: skip
    for stream in (PROD, SIS):  # nothing left un-acked
        assert redis_client.xpending(stream, cfg.group)["pending"] == 0
    metrics = worker.metrics.registry
    read = metrics.get_sample_value("cdc_verify_events_read_total", {"side": "production"})
    assert read == len(corpus.production)
    matches = verdicts_metric(metrics, "match")
    assert matches == sum(1 for r in records if r["verdict"] == "match")


def test_gap_opens_an_alert_and_a_late_arrival_resolves_it(redis_url, redis_client):
    cfg = settings(redis_url, grace=0.3)
    keys = WorkerKeys.from_settings(cfg)
    comment = sample_comment(random.Random(1), "t1_x")

    def fields(event_id: str) -> dict:
        return {"event_id": event_id, "entity_id": "t1_x", "version": "1",
                "encoding": "msgpack", "payload": encode_msgpack(comment)}  # fmt: skip

    async def scenario(worker: StreamWorker) -> None:
        await asyncio.wait_for(worker.ready.wait(), 10)
        redis_client.xadd(PROD, fields("GAP1"))
        redis_client.xadd(PROD, fields("LATE1"))
        for _ in range(100):  # both gaps are reported within grace + 1 s
            if redis_client.hlen(keys.alerts_open) == 2:
                break
            await asyncio.sleep(0.02)
        assert redis_client.hlen(keys.alerts_open) == 2
        redis_client.xadd(SIS, fields("LATE1"))

    run_worker_until_done(cfg, redis_client, 2, during=scenario)
    records = verdict_records(redis_client)
    assert sorted((r["event_id"], r["verdict"]) for r in records) == [
        ("GAP1", "missing_in_sister"),
        ("LATE1", "missing_in_sister"),
    ]
    assert list(redis_client.hkeys(keys.alerts_open)) == [b"GAP1"]
    resolved = json.loads(redis_client.hget(keys.alerts_resolved, "LATE1"))
    assert resolved["resolution"] == "late" and resolved["late_by_ms"] >= 300
    assert resolved["verdict"] == "missing_in_sister" and resolved["opened_at"]

    # The remembered decision now knows both sides: another copy is a duplicate.
    async def remembered() -> Decision | ValueError:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return (await DecisionStore(client, keys).lookup({"LATE1": None}))["LATE1"]
        finally:
            await client.aclose()

    decision = asyncio.run(remembered())
    assert isinstance(decision, Decision)
    assert (decision.verdict, decision.sides) == (Verdict.MISSING_IN_SISTER, "ps")


def test_garbage_entries_never_stop_the_worker(redis_url, redis_client):
    rng = random.Random(3)
    comment = sample_comment(rng, "t1_big")
    big = {**comment, "body": "x" * 10_000_000}
    good = encode_msgpack(comment)

    def event(event_id: str, payload: bytes, **extra) -> dict:
        return {"event_id": event_id, "version": "1", "encoding": "msgpack", "payload": payload,
                **extra}  # fmt: skip

    for stream in (PROD, SIS):
        redis_client.xadd(stream, {"": ""})  # as empty as an entry can be
        redis_client.xadd(stream, {b"\xff\xfe": b"\x80\x81", b"event_id": b"\xc3\x28"})
        redis_client.xadd(stream, {"payload": good})  # no event_id
        redis_client.xadd(stream, event("HUGE", encode_msgpack(big)))  # 10 MB, valid
        redis_client.xadd(stream, event("HUGE-BAD", b"\xc1" * 10_000_000))  # 10 MB garbage
        redis_client.xadd(stream, event("NONUTF8", good, **{"op": b"\xff\xff", "x\xff": "y"}))
        redis_client.xadd(stream, event("OK", good))
    cfg = settings(redis_url)
    run_worker_until_done(cfg, redis_client, 4)
    records = {(r["event_id"], r["verdict"], r.get("side")) for r in verdict_records(redis_client)}
    assert records >= {
        ("HUGE", "match", None),
        ("HUGE-BAD", "undecodable", "both"),
        ("NONUTF8", "match", None),
        ("OK", "match", None),
        (None, "malformed", "production"),
        (None, "malformed", "sister"),
    }
    assert sum(1 for r in verdict_records(redis_client) if r["verdict"] == "malformed") == 6


def test_a_retried_commit_writes_nothing_twice(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    redis_client.xgroup_create(PROD, cfg.group, id="0", mkstream=True)
    redis_client.xgroup_create(SIS, cfg.group, id="0", mkstream=True)
    payload = encode_msgpack(sample_comment(random.Random(2), "t1_q"))
    for stream in (PROD, PROD, SIS):
        redis_client.xadd(stream, {"event_id": "E", "encoding": "msgpack", "payload": payload})
    redis_client.xreadgroup(cfg.group, "c", {PROD: ">", SIS: ">"})
    entries = [
        StreamEntry.from_redis(side, eid, f)
        for side, stream in ((PRODUCTION, PROD), (SISTER, SIS))
        for eid, f in redis_client.xrange(stream)
    ]
    outcomes = Verifier(decode_event, VerifierConfig()).ingest(entries)
    assert [o.record.verdict.value for o in outcomes] == ["duplicate", "match"]

    async def commit_twice() -> list[list]:
        client = redis.asyncio.Redis.from_url(redis_url)
        committer = verdict_committer(client, cfg)
        try:
            return [await committer.commit(outcomes), await committer.commit(outcomes)]
        finally:
            await client.aclose()

    async def commit_without_the_lock() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        await client.set(keys.lock, "another-worker/0001")
        committer = verdict_committer(client, cfg, lock_token="me/0002")
        try:
            with pytest.raises(LockLost):
                await committer.commit(outcomes)
        finally:
            await client.delete(keys.lock)
            await client.aclose()

    # A worker whose lock another one took writes nothing, not even the first time.
    asyncio.run(commit_without_the_lock())
    assert verdict_records(redis_client) == []
    assert redis_client.xpending(PROD, cfg.group)["pending"] == 2
    assert [len(x) for x in asyncio.run(commit_twice())] == [2, 0]
    assert len(verdict_records(redis_client)) == 2
    assert redis_client.xpending(PROD, cfg.group)["pending"] == 0


def test_second_worker_waits_for_the_lock(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)

    async def scenario() -> tuple[bool, bool]:
        client = redis.asyncio.Redis.from_url(redis_url)
        first = WorkerLock(client, keys.lock, lock_token("a"), 5000)
        again = WorkerLock(client, keys.lock, first._token, 5000)  # same worker, reconnected
        second = WorkerLock(client, keys.lock, lock_token("b"), 5000)
        stop = asyncio.Event()
        assert await first.acquire(stop)
        assert await asyncio.wait_for(again.acquire(stop), 1)
        waiting = asyncio.create_task(second.acquire(stop))
        await asyncio.sleep(0.3)
        blocked = not waiting.done()
        await first.release()
        got = await asyncio.wait_for(waiting, 5)
        await client.aclose()
        return blocked, got

    assert asyncio.run(scenario()) == (True, True)


@pytest.mark.parametrize("start_id", ["$", "0"])
def test_start_id_chooses_whether_history_is_verified(redis_url, redis_client, start_id):
    payload = msgpack.packb({"x": 1})
    redis_client.xadd(PROD, {"event_id": "OLD", "encoding": "msgpack", "payload": payload})
    cfg = settings(redis_url, start_id=start_id, grace=0.2)

    async def add_new(worker: StreamWorker) -> None:
        await asyncio.wait_for(worker.ready.wait(), 10)
        redis_client.xadd(PROD, {"event_id": "NEW", "encoding": "msgpack", "payload": payload})

    run_worker_until_done(cfg, redis_client, 1 if start_id == "$" else 2, during=add_new)
    seen = sorted(r["event_id"] for r in verdict_records(redis_client))
    assert seen == (["NEW"] if start_id == "$" else ["NEW", "OLD"])


def test_an_unreadable_decision_in_redis_does_not_stop_the_worker(redis_url, redis_client):
    cfg = settings(redis_url, grace=0.2)
    keys = WorkerKeys.from_settings(cfg)
    redis_client.set(keys.decided_prefix + "ODD", "not a decision")
    redis_client.xadd(PROD, {"event_id": "ODD", "payload": "x"})
    run_worker_until_done(cfg, redis_client, 1)
    [record] = verdict_records(redis_client)
    assert (record["event_id"], record["verdict"]) == ("ODD", "missing_in_sister")
