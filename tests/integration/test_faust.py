"""The Faust engine on a real Kafka broker (KRaft, started by deploy/kafka/kafka.sh).

The same input through the single-process worker, one Faust worker and two Faust
workers gives the same verdict per event_id; a Faust worker killed mid-stream
loses nothing and invents no gap; its sinks (--jsonl, /metrics) see exactly what
Redis holds; it waits out a Redis restart, and a commit Redis rejects stops it with
a non-zero status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete

from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.faust.partition_reader import PartitionReader, Record
from cdc_verify.pipeline.faust.record_batches import send_in_batches
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .kafka_broker import KafkaBroker
from .support import (
    PROD,
    SIS,
    VERDICTS,
    PrimaryCounter,
    assert_exactly_one_primary,
    assert_live_coverage_is_a_backfills,
    assert_records_match,
    coverage_env,
    run_worker_until_done,
    settings,
    verdict_records,
)
from .test_crash_recovery import paced_writer

PRIMARY = {v.value for v in PRIMARY_VERDICTS}
WRITE_MARGIN_MS = 20_000


@pytest.fixture(scope="module")
def kafka(tmp_path_factory) -> KafkaBroker:
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as broker:
        print(f"Kafka broker ready on {broker.bootstrap} in {broker.start_seconds:.1f}s")
        yield broker


class FaustWorkers:
    """`cdc-verify run --engine faust` processes, as an operator would start them."""

    def __init__(
        self, kafka: str, redis_url: str, group: str, logs: Path, *extra: str, http_port: int = 0
    ) -> None:
        self._args = [
            "run", "--engine", "faust", "--kafka", kafka, "--redis", redis_url,
            "--production", PROD, "--sister", SIS, "--grace", "1", "--start-id", "0",
            "--group", group, "--lock-ttl", "2", "--http-port", str(http_port), *extra,
        ]  # fmt: skip
        self._logs = logs
        self.procs: list[subprocess.Popen] = []
        self.env = cli_env()

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            name = f"faust-{len(self.procs)}"
            log = (self._logs / f"{name}.log").open("w")
            args = cli_command(*self._args, "--consumer-name", name)
            self.procs.append(subprocess.Popen(args, env=self.env, stdout=log, stderr=log))

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.returncode is None and proc.poll() is not None:
                log = (self._logs / f"faust-{i}.log").read_text()[-3000:]
                raise AssertionError(f"faust-{i} exited with {proc.returncode}:\n{log}")

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()
        self.procs[index].returncode = -9  # expected: not a crash

    def stop(self) -> list[int]:
        live = [p for p in self.procs if p.returncode is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout=60) for proc in live]


def wait_for_primaries(client: redis.Redis, count: int, workers: FaustWorkers, timeout: float):
    deadline = time.monotonic() + timeout
    primaries = PrimaryCounter(client)
    while primaries() < count:
        workers.check_alive()
        assert time.monotonic() < deadline, f"{primaries.count}/{count} primary verdicts"
        time.sleep(0.2)
    time.sleep(2.0)  # a wrong extra verdict would land now


def verdicts_by_event(records: list[dict]) -> dict[str, str]:
    return {r["event_id"]: r["verdict"] for r in records if r["verdict"] in PRIMARY}


def wait_until_forwarding(workers: FaustWorkers, logs: Path, count: int) -> None:
    """Every worker in the Kafka group and forwarding before the corpus is written
    (rebalances with events in flight are the SIGKILL test's subject)."""
    deadline = time.monotonic() + 60
    while sum("forwarder faust-" in p.read_text() for p in logs.glob("faust-*.log")) < count:
        workers.check_alive()
        assert time.monotonic() < deadline, "Faust workers did not start within 60 s"
        time.sleep(0.2)
    time.sleep(3)  # the last join's rebalance settles


def faust_run(kafka: str, corpus, tmp_path: Path, workers: int, name: str) -> list[dict]:
    with EmbeddedRedis(data_dir=tmp_path / f"redis-{name}") as server:
        client = redis.Redis.from_url(server.url)
        logs = tmp_path / name
        logs.mkdir()
        faust = FaustWorkers(kafka, server.url, f"diff-{name}", logs)
        faust.start(workers)
        wait_until_forwarding(faust, logs, workers)
        # Written now with ids a little in the future: a forwarder that finds a stream
        # caught up promises nothing about later ids, so every entry must be in Redis
        # before Redis' clock reaches its id (production is written before sister).
        seconds, micros = client.time()
        base = seconds * 1000 + micros // 1000 + WRITE_MARGIN_MS
        write_corpus(client, corpus, PROD, SIS, base)
        seconds, micros = client.time()
        assert seconds * 1000 + micros // 1000 < base, "writing the corpus outran its margin"
        started = time.monotonic()
        try:
            wait_for_primaries(client, len(corpus.expected), faust, timeout=240)
            print(f"{name}: {len(corpus.expected):,} events in {time.monotonic() - started:.1f}s")
        finally:
            codes = faust.stop()
        assert codes == [0] * workers, "graceful stop on SIGTERM"
        records = verdict_records(client)
        client.close()
    return records


def test_single_worker_and_one_and_two_faust_workers_agree_event_by_event(kafka, tmp_path):
    corpus = generate(20_000, seed=61, grace_ms=1000)
    assert {e.verdict for e in corpus.expected.values()} == set(PRIMARY_VERDICTS)

    with EmbeddedRedis(data_dir=tmp_path / "redis-single") as server:
        client = redis.Redis.from_url(server.url)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        run_worker_until_done(settings(server.url), client, len(corpus.expected), timeout=120)
        single = verdict_records(client)
        client.close()
    one = faust_run(kafka.bootstrap, corpus, tmp_path, 1, "one")
    two = faust_run(kafka.bootstrap, corpus, tmp_path, 2, "two")

    expected = {e: want.verdict.value for e, want in corpus.expected.items()}
    for records in (single, one, two):
        assert_exactly_one_primary(records, corpus)
        assert verdicts_by_event(records) == expected
    # The same records, differences included. Which of two copies is called the
    # duplicate depends on arrival order across forwarders, so entry ids are left out.
    assert_records_match(one, single, with_entry_ids=False)
    assert_records_match(two, single, with_entry_ids=False)
    kinds = Counter(r["verdict"] for r in two)
    assert kinds.keys() >= {"duplicate", "malformed"} | PRIMARY


def test_a_faust_worker_killed_mid_stream_loses_nothing_and_invents_no_gap(
    kafka, redis_url, redis_client, tmp_path
):
    corpus = generate(12_000, seed=62, grace_ms=1000, rate=1500)
    faust = FaustWorkers(kafka.bootstrap, redis_url, "kill", tmp_path)
    faust.env = coverage_env()
    faust.start(2)
    time.sleep(8)  # both workers in the group and reading
    writer = paced_writer(redis_url, corpus)
    try:
        time.sleep(3)
        faust.check_alive()
        faust.kill(0)
        writer.join()
        wait_for_primaries(redis_client, len(corpus.expected), faust, timeout=120)
    finally:
        writer.join()
        codes = faust.stop()
    assert codes == [0]
    records = verdict_records(redis_client)
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(0), with_entry_ids=False)
    for stream in (PROD, SIS):  # the dead worker's entries were taken over and acked
        assert redis_client.xpending(stream, "kill")["pending"] == 0
    log = (tmp_path / "faust-1.log").read_text()
    assert "faust-0" in log and "retired them" in log
    # The shapes the two workers counted, one of them killed: a backfill's, exactly.
    assert_live_coverage_is_a_backfills(redis_url, tmp_path / "backfill", group="kill")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verdicts_counted(port: int) -> Counter[str]:
    """cdc_verify_verdicts_total per verdict, as the worker's /metrics serves it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    counted: Counter[str] = Counter()
    series = r'^cdc_verify_verdicts_total\{[^}]*\bverdict="(\w+)"[^}]*\} (\S+)$'
    for verdict, value in re.findall(series, text, re.M):
        if float(value):  # summed over the entity and op labels
            counted[verdict] += int(float(value))
    return counted


def record_keys(records: list[dict]) -> Counter[tuple]:
    return Counter((r["event_id"], r["verdict"], r.get("side")) for r in records)


def test_a_faust_workers_jsonl_file_and_metrics_hold_what_the_verdict_stream_holds(
    kafka, redis_url, redis_client, tmp_path
):
    """`run --engine faust --jsonl FILE`: every record of the verdict stream, once."""
    corpus = generate(3_000, seed=63, grace_ms=1000)
    assert {e.verdict for e in corpus.expected.values()} == set(PRIMARY_VERDICTS)
    # In Redis before the worker starts: nothing is written while it forwards.
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    jsonl, port = tmp_path / "out" / "verdicts.jsonl", free_port()
    faust = FaustWorkers(
        kafka.bootstrap, redis_url, "jsonl", tmp_path, "--jsonl", str(jsonl), http_port=port
    )
    faust.start()
    try:
        wait_for_primaries(redis_client, len(corpus.expected), faust, timeout=120)
        counted = verdicts_counted(port)
        in_redis = verdict_records(redis_client)
    finally:
        codes = faust.stop()
    assert codes == [0]
    assert verdict_records(redis_client) == in_redis, "nothing new after the verdicts settled"
    assert_exactly_one_primary(in_redis, corpus)
    assert Counter(r["verdict"] for r in in_redis).keys() >= {"duplicate", "malformed"} | PRIMARY
    written = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert record_keys(written) == record_keys(in_redis)
    assert counted == Counter(r["verdict"] for r in in_redis)


def test_a_faust_worker_waits_out_a_redis_restart_and_loses_nothing(kafka, own_redis, tmp_path):
    client = redis.Redis.from_url(own_redis.url)
    corpus = generate(6_000, seed=65, grace_ms=1000)
    write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
    faust = FaustWorkers(kafka.bootstrap, own_redis.url, "restart", tmp_path)
    faust.start()
    try:
        deadline, primaries = time.monotonic() + 60, PrimaryCounter(client)
        while primaries() == 0:  # mid-run: commits, lookups and rounds all meet the outage
            faust.check_alive()
            assert time.monotonic() < deadline, "no verdict within 60 s"
            time.sleep(0.05)
        own_redis.restart(1.0)
        wait_for_primaries(client, len(corpus.expected), faust, timeout=120)
    finally:
        codes = faust.stop()
    assert codes == [0]
    records = verdict_records(client)
    client.close()
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(0), with_entry_ids=False)
    log = (tmp_path / "faust-0.log").read_text()
    assert "Redis unavailable" in log
    assert "Crashed" not in log, "waited out where it was, no agent restarted"


def test_a_commit_redis_rejects_stops_the_faust_worker_with_a_critical_error(
    kafka, redis_url, redis_client, tmp_path
):
    """Not a lost connection (which is waited out): retrying cannot cure it."""
    redis_client.set(VERDICTS, "not a stream")  # every commit's XADD fails: WRONGTYPE
    corpus = generate(200, seed=64, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    faust = FaustWorkers(kafka.bootstrap, redis_url, "wrongtype", tmp_path)
    faust.start()
    try:
        code = faust.procs[0].wait(timeout=120)
    finally:
        faust.stop()
    log = (tmp_path / "faust-0.log").read_text()
    assert code != 0, log[-3000:]
    critical = [line for line in log.splitlines() if "CRITICAL" in line and "WRONGTYPE" in line]
    assert critical, log[-3000:]
    assert "a commit of" in critical[0]


async def _fill_topic(bootstrap: str, topic: str, count: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(count):
        await producer.send_and_wait(topic, b"m%d" % i, partition=1)
    await producer.stop()


def test_the_partition_reader_gives_a_join_every_message_once_in_order(kafka, caplog):
    """What the join agent relies on when Faust's consumer skips a stretch or re-delivers."""
    topic = "reader-order"

    async def scenario() -> None:
        await _fill_topic(kafka.bootstrap, topic, 20)
        reader = PartitionReader(kafka.bootstrap, topic, 1 << 20)
        try:
            delivered = [(o, b"m%d" % o) for o in (3, 5, 6, 12, 13)]  # 7..11 skipped
            got = await reader.in_order(1, 5, delivered)
            assert got == [(o, b"m%d" % o) for o in range(5, 14)]
            assert "skipped offsets 7..11; read 5 messages" in caplog.text
            # Nothing applied yet: the join starts at the partition's first message.
            assert await reader.in_order(1, None, [(2, b"m2")]) == [
                (0, b"m0"), (1, b"m1"), (2, b"m2"),
            ]  # fmt: skip
            assert await reader.in_order(1, 14, [(10, b"m10"), (13, b"m13")]) == []
            assert await reader.in_order(0, None, []) == []  # an empty partition
        finally:
            await reader.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())


def test_the_partition_reader_reports_a_stretch_deleted_before_it_was_applied(kafka, caplog):
    topic = "reader-retention"

    async def scenario() -> None:
        await _fill_topic(kafka.bootstrap, topic, 10)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(6)})
        await admin.close()
        reader = PartitionReader(kafka.bootstrap, topic, 1 << 20)
        try:
            assert await reader.earliest(1) == 6
            got = await reader.in_order(1, 2, [(8, b"m8")])
            assert got == [(6, b"m6"), (7, b"m7"), (8, b"m8")]
        finally:
            await reader.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert "offsets 2..5 were deleted by the topic's retention" in caplog.text


def test_a_faust_worker_applies_the_scope_like_the_single_engine(
    kafka, redis_url, redis_client, tmp_path
):
    """--scope on the Faust engine: the same verdicts and out-of-scope counts."""
    from cdc_verify.schemas.verdicts import Verdict

    from ..scoped_corpus import write_scoped_corpus
    from .test_scopes import counters

    written = write_scoped_corpus(redis_client, "sample:5", 1500, keys=(PROD, SIS))
    expected, want, primaries = written.expected, written.counts, written.primaries
    faust = FaustWorkers(kafka.bootstrap, redis_url, "scoped", tmp_path, "--scope", "sample:5")
    faust.start()
    try:
        wait_for_primaries(redis_client, primaries, faust, timeout=120)
    finally:
        codes = faust.stop()
    assert codes == [0]
    got = verdicts_by_event(verdict_records(redis_client))
    assert got == {e: v.value for e, v in expected.items() if isinstance(v, Verdict)}
    durable = counters(redis_client)
    assert durable["out_of_scope|comment|update"] == want["out_of_scope"] + want["late"]
    assert durable["late|comment|update"] == want["late"]


def test_record_batches_keep_order_tombstones_and_a_message_larger_than_a_batch(kafka):
    """What the joins send their verdict records and changelog entries with."""
    topic = "record-batches"
    big = b"B" * 100_000  # past aiokafka's 16 KB max_batch_size: sent on its own

    async def scenario() -> tuple[list[tuple[bytes, bytes | None]], list[Record]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        messages: list[tuple[bytes, bytes | None]] = [(b"k%d" % i, b"v%d" % i) for i in range(3000)]
        messages[1500] = (b"big", big)
        messages[2000] = (b"gone", None)
        sent = await send_in_batches(producer, topic, 1, messages)
        await asyncio.gather(*sent)
        await producer.stop()
        assert 3 <= len(sent) < 100, len(sent)  # batches, not a send per message
        reader = PartitionReader(kafka.bootstrap, topic, 1 << 20)
        try:
            got = await reader.in_order(1, None, [(2999, b"v2999")])
        finally:
            await reader.stop()
        return messages, got

    messages, got = asyncio.run(scenario())
    # Every message at its own offset, in the order sent (the reader leaves tombstones out).
    assert got == [(i, value) for i, (_, value) in enumerate(messages) if value is not None]
    assert got[1500] == (1500, big)


def test_a_faust_worker_whose_kafka_went_away_still_stops_on_sigterm(redis_url, tmp_path):
    """The stop ends with an offset commit, which cannot complete with the broker gone:
    the worker ends it after STOP_TIMEOUT_S rather than hang (its verdicts are in Redis)."""
    from cdc_verify.pipeline.faust.app import STOP_TIMEOUT_S

    with KafkaBroker(tmp_path / "own-kafka") as broker:
        faust = FaustWorkers(broker.bootstrap, redis_url, "stop", tmp_path)
        faust.start(1)
        wait_until_forwarding(faust, tmp_path, 1)
    # The broker is stopped now.
    started = time.monotonic()
    faust.procs[0].send_signal(signal.SIGTERM)
    code = faust.procs[0].wait(timeout=STOP_TIMEOUT_S + 30)
    took = time.monotonic() - started
    assert code == 0 and took < STOP_TIMEOUT_S + 15, (took, code)
    log = (tmp_path / "faust-0.log").read_text()
    assert "Kafka offsets not committed: they are read again" in log
