"""The live worker's shape coverage, durable on its state server (pipeline/redis/shapes.py):
`cdc-verify coverage` and `gate --min-coverage` read it back."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import msgpack
import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.redis.commit import VerdictCommitter
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.simulate.legacy_writer import encode_msgpack

from ..conftest import cli_command, cli_env
from ..shape_corpus import EXPECTED, by_kind, known_shapes
from .support import (
    PROD,
    SIS,
    ServedWorker,
    primary_count,
    run_worker_until_done,
    settings,
    wait_for,
)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def write_known_shapes(client) -> None:
    production, sister = known_shapes()
    for stream, entries in ((PROD, production), (SIS, sister)):
        for e in entries:
            client.xadd(stream, e.fields)


def test_the_live_worker_counts_shapes_exactly_and_coverage_reads_them(redis_url, redis_client):
    write_known_shapes(redis_client)
    cfg = settings(redis_url, grace=0.3)
    run_worker_until_done(cfg, redis_client, 40)

    shown = cli("coverage", "--redis", redis_url, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert by_kind(document["shapes"]) == EXPECTED
    figures = document["coverage"]
    assert (figures["shapes"], figures["verified"], figures["mismatched"]) == (4, 1, 2)
    assert figures["ratio"] == 0.25
    parts = {p["part"]: p for p in document["parts"]}
    assert parts["/media/*/type str=gif"]["status"] == "never_verified"
    assert parts["/ map"]["production"] == 40

    # A second run over the same state counts nothing again.
    run_worker_until_done(cfg, redis_client, 40)
    again = json.loads(cli("coverage", "--redis", redis_url, "--json").stdout)
    assert by_kind(again["shapes"]) == EXPECTED

    table = cli("coverage", "--redis", redis_url, "--status", "never_verified")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(
        "4 shapes of production event: 1 verified, 2 mismatched, 1 never verified (coverage 25.0%)"
    )
    assert "/media/*/type str=gif" in table.stdout
    assert table.stdout.rstrip().endswith(
        f"Counted by the live workers of group 'cdc-verify' on {redis_url}, since their state "
        "began."
    )

    def gate(threshold: str) -> subprocess.CompletedProcess:
        return cli("gate", "--redis", redis_url, "--min-events", "1", "--max-mismatch-rate",
                   "100%", "--max-gaps", "100", "--min-coverage", threshold, "--json")  # fmt: skip

    passed, failed = gate("25%"), gate("30%")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert failed.returncode == 1, failed.stdout + failed.stderr
    answer = json.loads(failed.stdout)
    [criterion] = [c for c in answer["criteria"] if c["name"] == "min_coverage"]
    assert (criterion["measured"], criterion["passed"]) == (0.25, False)
    assert "25% of production's shapes verified, below 30%" in answer["reason"]


def test_coverage_says_why_a_state_server_has_none(redis_url, redis_client):
    empty = cli("coverage", "--redis", redis_url)  # no worker's state at all: not "none"
    assert empty.returncode == 2
    assert "no state for group 'cdc-verify' on the state server" in empty.stderr
    # A worker ran there (its start horizon is kept), with shapes off: no counts, said so.
    redis_client.set(WorkerKeys.from_settings(settings(redis_url)).horizon, "1-0")
    done = cli("coverage", "--redis", redis_url)
    assert done.returncode == 2
    assert "holds no shape counts for group 'cdc-verify'" in done.stderr
    away = cli("coverage", "--redis", "redis://127.0.0.1:1")
    assert away.returncode == 2 and "cannot reach the state server" in away.stderr
    both = cli("coverage", "--redis", redis_url, "--report", "x")
    assert both.returncode == 2 and "give one or the other" in both.stderr
    assert "Traceback" not in empty.stderr + done.stderr + away.stderr + both.stderr


def test_a_retried_commit_counts_each_shape_once_and_the_cap_holds(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    production, sister = known_shapes()
    verifier = Verifier(decode_event, VerifierConfig(grace_ms=100, shapes=True))
    # Rules that know the wide paths (ids, texts) already: the four kinds are four shapes
    # from the first event on (before that, each new value makes a shape of its own).
    assert verifier.shape_rules is not None
    for e in production:
        verifier.shape_rules.shape("comment", decode_event(e.fields))
    by_time = sorted(production + sister, key=lambda e: e.arrival_ms)
    outcomes = verifier.ingest(by_time) + verifier.expire() + verifier.flush()
    assert len(outcomes) == 40

    async def commit_twice(max_shapes: int) -> list[dict]:
        client = aioredis.Redis.from_url(redis_url)

        def committer() -> VerdictCommitter:
            return VerdictCommitter(
                client, keys, decided_retention_ms=60_000, verdict_maxlen=0,
                record_retention_ms=60_000, shapes=verifier.shape_rules, max_shapes=max_shapes,
            )  # fmt: skip

        first = committer()
        await first.commit(outcomes)
        await first.commit(outcomes)  # a retry after a lost reply writes nothing again
        await committer().commit(outcomes)  # a new session's sends the parts again
        tally = await ShapeReader(client, keys).tally()
        await client.aclose()
        assert tally.entities["comment"].overflow.production == 40 - sum(
            c.production for c in tally.entities["comment"].shapes.values()
        )
        return [r.as_json() for r in tally.rows()]

    assert by_kind(asyncio.run(commit_twice(4))) == EXPECTED
    assert redis_client.hget(keys.shape_counts, "comment|+shapes") == b"4"
    redis_client.flushdb()
    # Two shapes at most: the first two committed are kept (plain and link: the gaps of
    # the GIF comments come later), the others overflow.
    kept = by_kind(asyncio.run(commit_twice(2)))
    assert kept == {kind: EXPECTED[kind] for kind in ("plain", "link")}
    assert redis_client.hlen(keys.shapes) == 2


def test_wide_paths_are_kept_on_the_state_server_and_merge_shapes_taken_before(
    redis_url, redis_client
):
    """Nine distinct short bodies: /body is enum-like for eight events, wide from the
    ninth. The stored shapes of the first eight merge into one when read."""
    cfg = settings(redis_url, grace=0.3)
    keys = WorkerKeys.from_settings(cfg)
    production, sister = known_shapes()
    plain = [e for e in production if e.event_id.startswith("plain-")]
    twins = [e for e in sister if e.event_id.startswith("plain-")]
    for i, (p, s) in enumerate(zip(plain, twins, strict=True)):
        for stream, e in ((PROD, p), (SIS, s)):
            value = decode_event(e.fields)
            value["body"] = f"short {i}"
            fields = dict(e.fields)
            fields[b"payload"] = encode_msgpack(value)
            redis_client.xadd(stream, fields)
    run_worker_until_done(cfg, redis_client, 10)
    members = [msgpack.unpackb(m) for m in redis_client.smembers(keys.shape_wide)]
    assert ["comment", "/body"] in members
    assert redis_client.hlen(keys.shapes) == 9  # eight with a body value, one without
    [row] = json.loads(cli("coverage", "--redis", redis_url, "--json").stdout)["shapes"]
    assert (row["production"], row["match"], row["status"]) == (10, 10, "verified")
    assert "/body str" in row["parts"]


def test_the_api_serves_coverage_gates_on_it_and_metrics_carry_it(redis_url, redis_client):
    write_known_shapes(redis_client)
    with ServedWorker(settings(redis_url, grace=0.3)) as served:
        wait_for(lambda: primary_count(redis_client) >= 40, what="all verdicts")
        found = httpx.get(f"{served.url}/api/coverage", params={"limit": 2}).json()
        never = httpx.get(f"{served.url}/api/coverage", params={"status": "never_verified"})
        gate = httpx.get(f"{served.url}/api/gate", params={
            "min_coverage": 0.3, "min_events": 1, "max_mismatch_rate": 1, "max_gaps": 100,
        }).json()  # fmt: skip
        metrics = httpx.get(f"{served.url}/metrics").text
        bad = httpx.get(f"{served.url}/api/gate", params={"min_coverage": 2})
    assert found["coverage"]["shapes"] == 4 and found["coverage"]["ratio"] == 0.25
    assert found["shapes_listed"] == 4 and len(found["shapes"]) == 2  # the limit
    assert by_kind(never.json()["shapes"]) == {"gif": EXPECTED["gif"]}
    assert gate["decision"] == "no_go"
    assert [c["measured"] for c in gate["criteria"] if c["name"] == "min_coverage"] == [0.25]
    assert 'cdc_verify_shape_coverage_ratio{entity="comment"} 0.25' in metrics
    assert 'cdc_verify_shapes{entity="comment",status="mismatched"} 2.0' in metrics
    assert bad.status_code == 422


def test_a_reader_ignores_what_the_workers_did_not_write(redis_url, redis_client):
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    redis_client.hset(keys.shape_counts, mapping={
        "comment|abc|match": "not a number", "no separators": 3, "comment|abc|weird": 2,
        "comment|gone|match": 5,  # counted, but its parts are missing: overflow
        "comment|junk|match": 1, "comment|+undecodable|unverified": 4,
    })  # fmt: skip
    redis_client.hset(keys.shapes, mapping={"comment|junk": b"\xc1 not msgpack"})
    redis_client.sadd(keys.shape_wide, b"\xc1", msgpack.packb([1, 2]), msgpack.packb(["a"]))

    async def read():
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await ShapeReader(client, keys).tally()
        finally:
            await client.aclose()

    tally = asyncio.run(read())
    state = tally.entities["comment"]
    assert state.shapes == {} and state.undecodable == 4
    assert state.overflow.production == 6  # "gone" and "junk": no parts to show
    assert tally.totals().shapes == 0 and tally.totals().ratio is None
