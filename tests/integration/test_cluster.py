"""A real 3-master Redis Cluster: the tool detects it from any node's URL, keeps its
state keys in one slot, and stays exact across SIGKILLs with the streams on two nodes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import PacedWrite, write_paced

from ..conftest import cli_command, cli_env
from .redis_cluster import LocalCluster
from .support import (
    PRIMARY,
    assert_exactly_one_primary,
    assert_live_coverage_is_a_backfills,
    assert_records_match,
    coverage_env,
)

PROD, SIS = "t:production", "t:sister"  # on two different masters (checked below)
STATE_TAG = "{cdc-verify:cdc-verify}"
VERDICTS = STATE_TAG + ":verdicts"


@pytest.fixture()
def cluster(tmp_path):
    with LocalCluster(tmp_path / "cluster") as c:
        yield c


def start_worker(url: str, log, *extra: str) -> subprocess.Popen:
    args = cli_command(
        "run", "--redis", url, "--production", PROD, "--sister", SIS, "--grace", "1",
        "--start-id", "0", "--lock-ttl", "1", "--http-port", "0", "--batch-size", "200",
        "--create-streams", "--consumer-name", f"worker-{random.randrange(10**6)}", *extra,
    )  # fmt: skip
    return subprocess.Popen(args, env=coverage_env(), stdout=log, stderr=log)


def records(client) -> list[dict]:
    return [json.loads(f[b"record"]) for _, f in client.xrange(VERDICTS)]


def wait_for_every_verdict(worker: subprocess.Popen, log_path, client, events: int) -> None:
    deadline = time.monotonic() + 90
    while sum(1 for r in records(client) if r["verdict"] in PRIMARY) < events:
        assert worker.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "not every event got its verdict"
        time.sleep(0.2)
    time.sleep(1.5)  # a wrong extra verdict would land now


def test_sigkills_on_a_cluster_with_the_streams_on_two_nodes_lose_nothing(cluster, tmp_path):
    assert len({cluster.node_of(PROD), cluster.node_of(SIS), cluster.node_of(VERDICTS)}) >= 2
    assert cluster.node_of(PROD) != cluster.node_of(SIS)
    client = cluster.client()
    corpus = generate(6000, seed=17, grace_ms=1000, rate=1500)

    async def write() -> None:
        writer = AsyncRedisCluster.from_url(cluster.url)
        await write_paced(writer, corpus, PROD, SIS)
        await writer.aclose()

    writer = threading.Thread(target=asyncio.run, args=(write(),))
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    # Any node's URL will do: use one that holds neither stream nor the state.
    url = cluster.nodes[2].url
    worker = start_worker(url, log)
    writer.start()
    rng = random.Random(3)
    kills = 0
    try:
        while writer.is_alive() or kills < 10:
            time.sleep(rng.uniform(0.2, 0.8))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = start_worker(url, log)
        writer.join()
        wait_for_every_verdict(worker, log_path, client, len(corpus.expected))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
        log.close()
    assert code == 0, log_path.read_text()[-3000:]
    assert kills >= 10
    got = records(client)
    assert_exactly_one_primary(got, corpus)
    assert_records_match(got, corpus.expected_records(0), with_entry_ids=False)
    for stream in (PROD, SIS):
        assert client.xpending(stream, "cdc-verify")["pending"] == 0
    # Every state key shares the one slot, and nothing but the streams lives outside it.
    keys = [k.decode() for node in cluster.nodes for k in node_keys(node.port)]
    outside = {k for k in keys if STATE_TAG not in k and k not in (PROD, SIS)}
    assert not {k for k in outside if not k.endswith(":lock")}, outside
    assert Counter(r["verdict"] for r in got)["duplicate"] == corpus.expected_counts()["duplicate"]
    client.close()
    # Shape coverage, counted in the slot of the state keys: a backfill's, shape by shape.
    assert assert_live_coverage_is_a_backfills(url, tmp_path / "backfill") > 500


def node_keys(port: int) -> list[bytes]:
    import redis

    node = redis.Redis(port=port)
    try:
        return node.keys("*")
    finally:
        node.close()


def test_the_faust_engine_refuses_a_cluster_in_one_line(cluster):
    done = subprocess.run(
        cli_command("run", "--engine", "faust", "--kafka", "kafka://127.0.0.1:9",
                    "--redis", cluster.url),
        env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "names a node of a Redis Cluster; use the single engine" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_cluster_that_goes_down_and_heals_is_waited_out(cluster, tmp_path):
    """A master frozen past the node timeout makes the whole Cluster answer CLUSTERDOWN
    (and the worker's commands with it); the worker waits it out and misses nothing."""
    import redis

    client = cluster.client()
    corpus = generate(1500, seed=5, grace_ms=1000, rate=300)
    written = PacedWrite()  # the outage holds writes back: judge by what was written

    async def write() -> None:
        writer = AsyncRedisCluster.from_url(cluster.url, cluster_error_retry_attempts=30)
        await write_paced(writer, corpus, PROD, SIS, stats=written)
        await writer.aclose()

    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    frozen = cluster.nodes[2]
    worker = start_worker(cluster.nodes[0].url, log)
    writer = threading.Thread(target=asyncio.run, args=(write(),))
    writer.start()
    try:
        time.sleep(1.5)
        frozen_pid = frozen.pid
        assert frozen_pid is not None
        os.kill(frozen_pid, signal.SIGSTOP)
        try:
            healthy = redis.Redis(port=cluster.nodes[0].port)
            deadline = time.monotonic() + 30
            while healthy.cluster("info").get("cluster_state") == "ok":
                assert time.monotonic() < deadline, "the cluster never noticed the frozen node"
                time.sleep(0.1)
            time.sleep(2)  # the worker meets CLUSTERDOWN for a while
            assert worker.poll() is None, log_path.read_text()[-3000:]
        finally:
            os.kill(frozen_pid, signal.SIGCONT)
        writer.join()
        wait_for_every_verdict(worker, log_path, client, len(corpus.expected))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
        log.close()
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "The cluster is down" in text  # it met the outage, and waited it out
    assert_exactly_one_primary(records(client), corpus, written.expected(corpus))
    client.close()
