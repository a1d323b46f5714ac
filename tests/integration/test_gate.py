"""`cdc-verify gate` and GET /api/gate on the durable counters of a real state server."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from cdc_verify.api.models import Gate, Status
from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.pipeline.redis.counters import CounterReader, Counts, Window, read_window
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .redis_cluster import LocalCluster
from .support import (
    PROD,
    SIS,
    ServedWorker,
    primary_count,
    settings,
    verdict_records,
    wait_for,
)

Label = tuple[str, str, str]


def now_minute() -> int:
    return int(time.time() * 1000) // 60_000


def hincrby(client: Any, keys: WorkerKeys, minute: int, counts: Mapping[Label, int]) -> None:
    """What the worker's commit writes: `<name>|<entity>|<op>` -> count, per minute."""
    for (name, entity, op), n in counts.items():
        client.hincrby(f"{keys.counts_prefix}{minute}", f"{name}|{entity}|{op}", n)


def gate_cli(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """(exit status, the --json answer when there is one, stderr)."""
    done = subprocess.run(
        cli_command("gate", *args), env=cli_env(), capture_output=True, text=True, timeout=60
    )
    body = json.loads(done.stdout) if "--json" in args and done.stdout else None
    if body is not None:
        Gate.model_validate(body)
    return done.returncode, body, done.stderr


def timeless(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without the window's clock times (two calls a moment apart differ there)."""
    source = {k: v for k, v in answer["source"].items() if k not in ("since", "until")}
    return {**answer, "source": source}


# Comment updates, and account creates with faults; a minute in the hour, two outside.
IN_HOUR = {
    ("match", "comment", "update"): 1500, ("mismatch", "comment", "update"): 1,
    ("race", "comment", "update"): 4, ("duplicate", "comment", "update"): 9,
    ("out_of_scope", "comment", "update"): 30, ("late", "comment", "update"): 2,
    ("match", "account", "create"): 480, ("mismatch", "account", "create"): 10,
    ("missing_in_sister", "account", "create"): 2, ("malformed", "unknown", "unknown"): 1,
}  # fmt: skip
LATER_IN_HOUR = {("match", "comment", "update"): 500, ("undecodable", "account", "create"): 3}
OUTSIDE_HOUR = {("mismatch", "comment", "update"): 1000}


@pytest.fixture()
def counted(redis_url: str, redis_client: redis.Redis) -> WorkerKeys:
    keys = WorkerKeys.from_settings(Settings())
    minute = now_minute()
    hincrby(redis_client, keys, minute - 30, IN_HOUR)
    hincrby(redis_client, keys, minute - 2, LATER_IN_HOUR)
    hincrby(redis_client, keys, minute - 90, OUTSIDE_HOUR)
    # Not ours: another group's counters, and a field of another shape.
    other = WorkerKeys.from_settings(Settings(group="other"))
    hincrby(redis_client, other, minute - 2, {("mismatch", "comment", "update"): 777})
    redis_client.hincrby(f"{keys.counts_prefix}{minute - 2}", "garbage", 5)
    return keys


def test_gate_reads_the_counters_of_its_window(redis_url, counted):
    status, body, _ = gate_cli("--redis", redis_url, "--since", "1h", "--json")
    assert body is not None and status == 1 and body["decision"] == "no_go"
    assert body["events"] == 1500 + 1 + 4 + 480 + 10 + 2 + 500 + 3 == 2500
    assert body["counts"] == {
        "match": 2480, "mismatch": 11, "race": 4, "undecodable": 3, "missing_in_sister": 2,
        "missing_in_production": 0, "duplicate": 9, "malformed": 1, "out_of_scope": 30,
        "tombstone": 0, "late": 2,
    }  # fmt: skip
    assert body["source"]["kind"] == "redis" and body["source"]["window_seconds"] == 3600
    assert body["source"]["server"] == redis_url and body["source"]["group"] == "cdc-verify"


def test_gate_decides_on_the_counters(redis_url, counted):
    lenient = ("--max-undecodable", "3", "--max-gaps", "2")
    # 11 mismatches of 2,500 events: 0.44%.
    status, body, _ = gate_cli("--redis", redis_url, "--since", "1h", "--json", *lenient)
    assert status == 1 and body is not None and body["decision"] == "no_go"
    assert body["criteria"][0]["measured"] == 11 / 2500
    status, _, _ = gate_cli("--redis", redis_url, "--since", "1h", "--max-mismatch-rate",
                            "0.44%", *lenient)  # fmt: skip
    assert status == 0
    # Two hours reach the minute with 1,000 more mismatches.
    status, body, _ = gate_cli("--redis", redis_url, "--since", "2h", "--json", *lenient)
    assert body is not None and body["counts"]["mismatch"] == 1011 and status == 1
    # Too short a window: too few events.
    status, body, _ = gate_cli("--redis", redis_url, "--since", "10m", "--json", *lenient)
    assert status == 2 and body is not None and body["events"] == 503
    table = subprocess.run(
        cli_command("gate", "--redis", redis_url, "--since", "1h", *lenient),
        env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert table.returncode == 1
    assert re.search(r"--max-mismatch-rate\s.*0\.44%\s.*≤ 0\.1%\s.*FAIL", table.stdout)
    assert f"gate on state server {redis_url}, group cdc-verify, counters from" in table.stdout
    assert "NO-GO: --max-mismatch-rate: 0.44% of events are mismatches (11)" in table.stdout


def test_gate_on_one_entity_or_op(redis_url, counted):
    base = ("--redis", redis_url, "--since", "1h", "--json", "--min-events", "100")
    status, comment, _ = gate_cli(*base, "--entity", "comment")
    assert comment is not None and comment["events"] == 2005 and comment["counts"]["mismatch"] == 1
    assert status == 0 and comment["scope"] == {"entity": "comment", "op": None}
    status, create, _ = gate_cli(*base, "--op", "create")
    assert create is not None and create["events"] == 495 and status == 1
    status, none, _ = gate_cli(*base, "--entity", "link")
    assert status == 2 and none is not None
    assert none["reason"] == (
        "no events for link/* (there are counts for account/create, comment/update, "
        "unknown/unknown)"
    )


def test_api_gate_answers_as_the_command_does(redis_url, counted):
    cfg = settings(redis_url, gate_since=3600, gate_max_undecodable=3, gate_max_gaps=2)
    with ServedWorker(cfg) as served:
        for params, flags in (
            ({}, ()),
            ({"entity": "comment", "min_events": "100"}, ("--entity", "comment",
                                                          "--min-events", "100")),
            ({"op": "create", "max_mismatch_rate": "0.03", "max_gaps": "5"},
             ("--op", "create", "--max-mismatch-rate", "0.03", "--max-gaps", "5")),
            ({"since": "2h"}, ("--since", "2h")),
        ):  # fmt: skip
            reply = httpx.get(f"{served.url}/api/gate", params=params)
            assert reply.status_code == 200, reply.text
            api = Gate.model_validate(reply.json()).model_dump(mode="json")
            args = ("--redis", redis_url, "--max-undecodable", "3", "--max-gaps", "2")
            since = () if "since" in params else ("--since", "1h")
            status, cli, _ = gate_cli(*args, *since, *flags, "--json")
            assert cli is not None and timeless(api) == timeless(cli), params
            assert status == cli["exit_status"]
        # The status page's banner is the same answer, on the worker's criteria.
        banner = httpx.get(f"{served.url}/api/status").json()["gate"]
        assert timeless(banner) == timeless(httpx.get(f"{served.url}/api/gate").json())


def test_an_unreachable_or_broken_state_server_cannot_decide(redis_url, redis_client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens there
    status, _, stderr = gate_cli("--redis", closed)
    assert status == 2
    assert stderr.startswith(f"CANNOT DECIDE: cannot reach the state server {closed}")
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    status, body, _ = gate_cli("--state-redis", closed, "--json")
    assert status == 2 and body is not None and body["decision"] == "cannot_decide"
    assert body["events"] is None and "cannot reach" in body["reason"]
    # A key of another type where a minute's hash belongs: no answer, in one line.
    keys = WorkerKeys.from_settings(Settings())
    redis_client.set(f"{keys.counts_prefix}{now_minute() - 1}", "x")
    status, _, stderr = gate_cli("--redis", redis_url, "--since", "10m")
    assert status == 2 and "WRONGTYPE" in stderr and len(stderr.splitlines()) == 1


def test_a_read_only_user_on_the_state_server_may_gate(own_redis):
    client = redis.Redis.from_url(own_redis.url)
    keys = WorkerKeys.from_settings(Settings())
    hincrby(client, keys, now_minute() - 1, {("match", "comment", "update"): 1000})
    client.close()
    own_redis.acl_user("gate", "gate-pw", ("~*", "-@all", "+@read", "+@connection"))
    url = own_redis.url.replace("redis://", "redis://gate:gate-pw@")
    status, body, _ = gate_cli("--redis", url, "--since", "5m", "--json")
    assert status == 0 and body is not None and body["events"] == 1000
    assert body["source"]["server"] == url.replace("gate-pw", "***")
    status, _, stderr = gate_cli("--redis", url.replace("gate-pw", "wrong"), "--since", "5m")
    assert status == 2 and "refused the credentials" in stderr


def test_gate_on_a_redis_cluster(tmp_path):
    with LocalCluster(tmp_path / "cluster") as cluster:
        client = cluster.client()
        keys = WorkerKeys.from_settings(Settings(), cluster=True)
        minute = now_minute()
        for back in range(0, 120, 7):
            counts = {("match", "comment", "update"): 100, ("mismatch", "comment", "update"): 1}
            hincrby(client, keys, minute - back, counts)
        client.close()
        for node in cluster.nodes:  # any node's URL names the cluster
            status, body, _ = gate_cli("--redis", node.url, "--since", "2h", "--json",
                                       "--max-mismatch-rate", "1%")  # fmt: skip
            assert status == 0 and body is not None
            assert body["events"] == 18 * 101 and body["counts"]["mismatch"] == 18


def test_the_api_reader_sums_as_a_plain_read_does(redis_url, redis_client):
    """CounterReader keeps whole past hours: its sums equal a read of every minute, as
    windows slide and recent minutes take more writes."""
    keys = WorkerKeys.from_settings(Settings())
    rng = random.Random(3)
    labels = [(n, e, o) for n in ("match", "mismatch", "late", "out_of_scope")
              for e in ("comment", "account") for o in ("create", "update")]  # fmt: skip
    minute = now_minute()
    for back in range(0, 26 * 60):
        if rng.random() < 0.7:
            hincrby(redis_client, keys, minute - back,
                    {label: rng.randint(1, 9) for label in rng.sample(labels, 3)})  # fmt: skip

    async def compare() -> None:
        client = aioredis.Redis.from_url(redis_url)
        reader = CounterReader(client, keys, 8 * 86400)
        try:
            for seconds in (86_400, 86_400, 3600, 7_000, 600, 59, 90_000, 86_400):
                window = Window.last(seconds)
                cached, series = await reader.read(window, recent=10)
                assert cached == await read_window(client, keys, window), seconds
                assert [m for m, _ in series] == list(range(window.last_minute - 9,
                                                            window.last_minute + 1))  # fmt: skip
                # The open minutes take more writes; the next read sees them.
                await client.hincrby(
                    f"{keys.counts_prefix}{now_minute()}", "match|comment|update", 5
                )
                await client.hincrby(f"{keys.counts_prefix}{now_minute() - 2}", "late|x|y", 1)
        finally:
            await client.aclose()

    asyncio.run(compare())
    recent = Counts({("match", "comment", "update"): 1})
    assert recent.only("comment").events == 1 and recent.only(op="create").events == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CliWorker:
    """`cdc-verify run` as a process of its own, with its HTTP port."""

    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = cli_command(
            "run", "--redis", url, "--production", PROD, "--sister", SIS, "--grace", "0.5",
            "--start-id", "0", "--lock-ttl", "1", "--http-port", str(self.port),
            "--consumer-name", f"gate-{random.randrange(10**6)}",
        )  # fmt: skip
        env = {**cli_env(), "CDC_VERIFY_GATE_SINCE": "3600", "CDC_VERIFY_GATE_MIN_EVENTS": "100"}
        self._log = log.open("ab")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=self._log)

    def ready(self) -> bool:
        assert self.process.poll() is None, "the worker exited"
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, **params: str) -> dict[str, Any]:
        reply = httpx.get(f"{self.base}{path}", params=params, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()


def test_counts_survive_a_killed_worker_and_the_gate_answers_the_same(redis_url, redis_client,
                                                                      tmp_path):  # fmt: skip
    corpus = generate(1200, seed=31, grace_ms=500)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    want = {v.value: n for v, n in corpus.expected_counts().items()}
    gate_args = ("--redis", redis_url, "--since", "1h", "--min-events", "100", "--json")

    worker = CliWorker(redis_url, tmp_path / "worker.log")
    wait_for(worker.ready, what="the worker ready")
    wait_for(lambda: primary_count(redis_client) >= len(corpus.expected), what="all verdicts")
    time.sleep(1.0)  # grace: late arrivals and extras land too
    status_before, before, _ = gate_cli(*gate_args)
    api_before = worker.get("/api/gate", since="1h", min_events="100")
    totals_before = Status.model_validate(worker.get("/api/status")).totals
    assert before is not None and timeless(api_before) == timeless(before)
    assert {v.value: before["counts"][v.value] for v in Verdict} == want
    assert totals_before == {name: n for name, n in want.items() if n}
    worker.kill()

    # Nobody runs now: the counts are on the state server all the same.
    status, still, _ = gate_cli(*gate_args)
    assert still is not None and timeless(still) == timeless(before) and status == status_before
    # Changes written meanwhile are verified, and counted, by the next worker.
    more = generate(300, seed=32, grace_ms=500, mix={"clean": 1.0}, malformed=0)
    last_ms = max(int(redis_client.xrevrange(key, count=1)[0][0].split(b"-")[0])
                  for key in (PROD, SIS))  # fmt: skip
    write_corpus(redis_client, more, PROD, SIS, last_ms + 1000)
    total = len(corpus.expected) + len(more.expected)

    restarted = CliWorker(redis_url, tmp_path / "worker.log")
    try:
        wait_for(restarted.ready, what="the restarted worker ready")
        wait_for(lambda: primary_count(redis_client) >= total, what="the new verdicts")
        wait_for(lambda: restarted.get("/api/status")["events"] == total, what="the counts")
        time.sleep(1.0)
        status, after, _ = gate_cli(*gate_args)
        api_after = restarted.get("/api/gate", since="1h", min_events="100")
        assert after is not None and timeless(api_after) == timeless(after)
        grown = {**want, "match": want["match"] + 300}
        assert {v.value: after["counts"][v.value] for v in Verdict} == grown
        assert restarted.get("/api/status")["totals"] == {k: n for k, n in grown.items() if n}
        # Exactly once: the counters say what the verdict stream holds.
        stream = Counter(r["verdict"] for r in verdict_records(redis_client))
        assert {v.value: stream[v.value] for v in Verdict} == grown
    finally:
        restarted.kill()
