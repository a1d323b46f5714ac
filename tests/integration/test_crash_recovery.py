"""Nothing lost, nothing twice: SIGKILL of the worker and Redis restarts mid-run."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import threading
import time

import redis.asyncio as aioredis

from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus, write_paced

from ..conftest import cli_command
from .support import (
    PROD,
    SIS,
    assert_exactly_one_primary,
    assert_live_coverage_is_a_backfills,
    assert_records_match,
    coverage_env,
    primary_count,
    run_worker_until_done,
    settings,
    verdict_records,
)


def start_worker(url: str, log) -> subprocess.Popen:
    args = cli_command(
        "run", "--redis", url, "--production", PROD, "--sister", SIS, "--grace", "1",
        "--start-id", "0", "--lock-ttl", "1", "--http-port", "0", "--batch-size", "200",
        "--consumer-name", f"worker-{random.randrange(10**6)}",  # new name: exercises XAUTOCLAIM
    )  # fmt: skip
    return subprocess.Popen(args, env=coverage_env(), stdout=log, stderr=log)


def paced_writer(url: str, corpus) -> threading.Thread:
    async def write() -> None:
        client = aioredis.Redis.from_url(url)
        await write_paced(client, corpus, PROD, SIS)
        await client.aclose()

    thread = threading.Thread(target=asyncio.run, args=(write(),))
    thread.start()
    return thread


def test_sigkill_at_random_moments_loses_nothing_and_invents_no_gap(
    redis_url, redis_client, tmp_path
):
    corpus = generate(8000, seed=21, grace_ms=1000, rate=2000)
    rng = random.Random(5)
    log = (tmp_path / "worker.log").open("w")
    writer = paced_writer(redis_url, corpus)
    kills = 0
    worker = start_worker(redis_url, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and kills < 6:
        time.sleep(rng.uniform(0.2, 2.0))  # sometimes mid-batch, sometimes before the lock
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
        worker = start_worker(redis_url, log)
    writer.join()
    try:
        deadline = time.monotonic() + 90
        while primary_count(redis_client) < len(corpus.expected):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"{primary_count(redis_client)} primaries"
            time.sleep(0.1)
        time.sleep(1.5)  # a wrong extra verdict would land now
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
    assert code == 0, "graceful stop on SIGTERM"
    assert kills == 6
    records = verdict_records(redis_client)
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(0), with_entry_ids=False)
    for stream in (PROD, SIS):
        assert redis_client.xpending(stream, "cdc-verify")["pending"] == 0
    # Shape coverage is counted in the commit too: exactly what a backfill of the same
    # streams counts, though six workers each learnt the enum-like paths afresh.
    assert assert_live_coverage_is_a_backfills(redis_url, tmp_path / "backfill") > 1000


def test_redis_restart_mid_run_loses_nothing(own_redis):
    import redis

    client = redis.Redis.from_url(own_redis.url)
    corpus = generate(6000, seed=31, grace_ms=1000)
    base = past_base_ms(client, corpus)
    write_corpus(client, corpus, PROD, SIS, base)
    cfg = settings(own_redis.url, batch_size=100)
    restarts = 0

    async def take_redis_away(worker) -> None:
        nonlocal restarts
        await asyncio.wait_for(worker.ready.wait(), 10)
        for _ in range(2):
            await asyncio.sleep(0.15)  # let it verify part of the backlog first
            await asyncio.to_thread(own_redis.restart, 0.5)
            restarts += 1

    worker = run_worker_until_done(cfg, client, len(corpus.expected), during=take_redis_away)
    assert restarts == 2
    assert worker.metrics.registry.get_sample_value("cdc_verify_redis_reconnects_total") >= 1
    records = verdict_records(client)
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(base))
    client.close()
