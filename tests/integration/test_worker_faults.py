"""The live worker against what breaks workers: poison payloads, a frozen process that
thaws after its lock moved on, a commit Redis rejects, streams that do not exist."""

from __future__ import annotations

import asyncio
import json
import math
import random
import signal
import subprocess
import time
from collections import Counter

import msgpack
import pytest
import redis

from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.runners.worker import CommitFailed, StreamWorker
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.legacy_writer import sample_comment

from ..conftest import cli_command, cli_env
from .support import (
    PROD,
    SIS,
    VERDICTS,
    PrimaryCounter,
    assert_exactly_one_primary,
    assert_records_match,
    run_worker_until_done,
    settings,
    verdict_records,
    wait_for,
)
from .test_crash_recovery import paced_writer


def nested(depth: int, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def fields(event_id: str, **overrides) -> dict[bytes, bytes]:
    comment = sample_comment(random.Random(event_id), "t1_poison")
    comment.update(overrides)
    return {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": b"t1_poison", b"version": b"1", b"ts_ms": b"1", b"encoding": b"msgpack",
        b"payload": msgpack.packb(comment, use_bin_type=True),
    }  # fmt: skip


# event_id -> (production overrides, sister overrides, expected verdict)
POISON = {
    "deep-500": ({"score": nested(500, 1)}, {"score": nested(500, 2)}, "mismatch"),
    "deep-1020-equal": ({"score": nested(1020, 1)}, {"score": nested(1020, 1)}, "match"),
    "bin-key": ({"score": 1}, {"score": {b"k": 1}}, "mismatch"),
    "nan": ({"created_utc": 1.5}, {"created_utc": math.nan}, "mismatch"),
    "inf": ({"created_utc": math.inf}, {"created_utc": 1.5}, "mismatch"),
}


def write_poison_between_good_pairs(client: redis.Redis) -> dict[str, str]:
    """Good pairs before, between and after the poison ones; returns event_id -> verdict."""
    expected = {}
    for n, (event_id, (p, s, verdict)) in enumerate(POISON.items()):
        for good in (f"good-{n}-a", f"good-{n}-b"):
            client.xadd(PROD, fields(good))
            client.xadd(SIS, fields(good))
            expected[good] = "match"
        client.xadd(PROD, fields(event_id, **p))
        client.xadd(SIS, fields(event_id, **s))
        expected[event_id] = verdict
    return expected


def strict(line: str):
    def no_constant(name: str):
        raise ValueError(name)

    return json.loads(line, parse_constant=no_constant)


def test_poison_pairs_get_verdicts_in_the_live_worker_and_spare_their_neighbours(
    redis_url, redis_client
):
    expected = write_poison_between_good_pairs(redis_client)
    run_worker_until_done(settings(redis_url), redis_client, len(expected))
    raw = [f[b"record"].decode() for _, f in redis_client.xrange(VERDICTS)]
    got = {r["event_id"]: r["verdict"] for r in map(strict, raw)}
    assert got == expected
    for stream in (PROD, SIS):
        assert redis_client.xpending(stream, "cdc-verify")["pending"] == 0


def test_poison_pairs_through_backfill(redis_url, redis_client, tmp_path):
    expected = write_poison_between_good_pairs(redis_client)
    done = subprocess.run(
        cli_command("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                    "--out", str(tmp_path / "out")),
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()
    assert {r["event_id"]: r["verdict"] for r in map(strict, lines)} == expected
    assert (tmp_path / "out" / "report.html").stat().st_size > 0


def test_a_commit_redis_rejects_stops_the_worker_loudly(redis_url, redis_client, caplog):
    worker = StreamWorker(settings(redis_url), decode_event)
    became_unready = []

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 10)
        await asyncio.sleep(0.3)  # past the first housekeeping, which trims VERDICTS too
        redis_client.set(VERDICTS, "not a stream")  # the commit's XADD answers WRONGTYPE
        redis_client.xadd(PROD, fields("E1"))
        redis_client.xadd(SIS, fields("E1"))
        while not task.done():
            if not worker.ready.is_set():
                became_unready.append(time.monotonic())
            await asyncio.sleep(0.01)
        await task

    with pytest.raises(CommitFailed, match="WRONGTYPE"):
        asyncio.run(main())
    assert became_unready, "readiness dropped before the worker stopped"
    assert worker.metrics.registry.get_sample_value("cdc_verify_ready") == 0
    assert any(r.levelname == "CRITICAL" and "worker failed" in r.message for r in caplog.records)
    # Nothing was acked: a fixed Redis and a restart verify the pair.
    assert redis_client.xpending(PROD, "cdc-verify")["pending"] == 1
    redis_client.delete(VERDICTS)
    run_worker_until_done(settings(redis_url), redis_client, 1)
    assert [r["verdict"] for r in verdict_records(redis_client)] == ["match"]


def test_run_waits_for_missing_streams_instead_of_creating_them(redis_url, redis_client, caplog):
    cfg = settings(redis_url, create_streams=False)
    worker = StreamWorker(cfg, decode_event)

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(1.5)
        assert not worker.ready.is_set()
        assert redis_client.exists(PROD, SIS) == 0, "a typo must not become a stream"
        redis_client.xadd(PROD, fields("E1"))
        redis_client.xadd(SIS, fields("E1"))
        await asyncio.wait_for(worker.ready.wait(), 10)
        wait = time.monotonic() + 10
        while redis_client.xlen(VERDICTS) < 1 and time.monotonic() < wait:
            await asyncio.sleep(0.05)
        worker.stop()
        await task

    asyncio.run(main())
    assert [r["verdict"] for r in verdict_records(redis_client)] == ["match"]
    warning = [r.message for r in caplog.records if "waiting for the streams" in r.message]
    assert warning and f"'{PROD}' does not exist" in warning[0]


def start_named_worker(url: str, name: str, log) -> subprocess.Popen:
    args = cli_command(
        "run", "--redis", url, "--production", PROD, "--sister", SIS, "--grace", "1",
        "--start-id", "0", "--lock-ttl", "1", "--http-port", "0", "--batch-size", "200",
        "--consumer-name", name, "--create-streams",
    )  # fmt: skip
    return subprocess.Popen(args, env=cli_env(), stdout=log, stderr=log)


def test_a_frozen_worker_that_thaws_after_losing_its_lock_invents_no_gap(
    redis_url, redis_client, tmp_path
):
    """SIGSTOP the active worker past --lock-ttl, let the standby take over, SIGCONT it:
    whatever it still does must neither strand entries nor write verdicts."""
    corpus = generate(24_000, seed=23, grace_ms=1000, rate=1500)
    rng = random.Random(11)
    log_path = tmp_path / "workers.log"
    log = log_path.open("w")
    workers = {name: start_named_worker(redis_url, name, log) for name in ("w-a", "w-b")}
    wait_for(lambda: redis_client.get("cdc-verify:cdc-verify:lock"), 20, "an active worker")
    writer = paced_writer(redis_url, corpus)
    freezes = Counter()
    try:
        deadline = time.monotonic() + 18
        while time.monotonic() < deadline:
            holder = redis_client.get("cdc-verify:cdc-verify:lock")
            if holder is None:
                time.sleep(0.1)
                continue
            name = holder.decode().partition("/")[0]
            active = workers[name]
            active.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(1.6, 2.6))  # past the 1 s lock: the standby takes over
            active.send_signal(signal.SIGCONT)
            freezes[name] += 1
            time.sleep(rng.uniform(1.0, 3.0))  # thawed: it reads and commits what it can
        writer.join()
        count = PrimaryCounter(redis_client)
        wait_for(lambda: count() >= len(corpus.expected), 120, "every primary verdict")
        time.sleep(2.0)  # a wrong extra verdict would land now
    finally:
        for worker in workers.values():
            worker.send_signal(signal.SIGCONT)
            worker.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=30) for w in workers.values()]
        log.close()
    assert sum(freezes.values()) >= 5, freezes
    assert codes == [0, 0], log_path.read_text()[-3000:]
    records = verdict_records(redis_client)
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(0), with_entry_ids=False)
    for stream in (PROD, SIS):
        assert redis_client.xpending(stream, "cdc-verify")["pending"] == 0
    text = log_path.read_text()
    assert "read refused" in text or "commit refused" in text or "was lost" in text


def test_run_exits_non_zero_with_one_line_when_a_commit_is_rejected(
    redis_url, redis_client, tmp_path
):
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_named_worker(redis_url, "w-commit", log)
        try:
            wait_for(lambda: redis_client.get("cdc-verify:cdc-verify:lock"), 20, "the lock")
            time.sleep(0.5)  # past the first housekeeping (it trims the verdict stream too)
            redis_client.set(VERDICTS, "not a stream")
            redis_client.xadd(PROD, fields("E1"))
            redis_client.xadd(SIS, fields("E1"))
            code = worker.wait(timeout=20)
        finally:
            if worker.poll() is None:
                worker.kill()
    text = log_path.read_text()
    assert code == 1, text[-2000:]
    assert "worker failed: Redis rejected a commit" in text
    # The traceback (with its cause) is logged once, then one line ends the run.
    assert text.rstrip().splitlines()[-1].startswith("Error: the worker stopped: Redis rejected")
    assert text.count("runners.worker.CommitFailed: Redis rejected") == 1
