"""The development Kafka broker (deploy/kafka/kafka.sh): a real KRaft broker, real aiokafka."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from cdc_verify.pipeline.faust.topics import ensure_topics

from .kafka_broker import KafkaBroker, run_kafka_sh

MESSAGES = 1_000
KEYS = 50
PARTITIONS = 4


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as running:
        yield running


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def process_gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` has exited (an exited child that init has not reaped yet counts)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    # As the engine makes its topics: a topic just made shows no partitions for a moment,
    # and ensure_topics waits for them (and raises if they are not `partitions`).
    await ensure_topics(bootstrap, [name], partitions, {})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert name in await admin.list_topics()
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str) -> list[tuple[str, str, int]]:
    """Sends MESSAGES keyed messages; returns (key, value, partition) as the broker acked them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = []
        for i in range(MESSAGES):
            key, value = f"key-{i % KEYS}", f"value-{i}"
            sent.append((key, value, await producer.send(topic, value.encode(), key.encode())))
        acked = await asyncio.gather(*(future for _, _, future in sent))
    finally:
        await producer.stop()
    return [(key, value, meta.partition) for (key, value, _), meta in zip(sent, acked, strict=True)]


def decoded(record: ConsumerRecord[bytes, bytes]) -> tuple[str, str, int]:
    assert record.key is not None and record.value is not None, record
    return record.key.decode(), record.value.decode(), record.partition


async def consume(bootstrap: str, topic: str, group: str) -> list[tuple[str, str, int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[str, str, int]] = []
    try:
        deadline = time.monotonic() + 120
        while len(got) < MESSAGES and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                got += map(decoded, records)
        # Nothing more may come: a duplicate would show up here.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            got += map(decoded, records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def test_keyed_messages_round_trip_exactly_once(broker: KafkaBroker) -> None:
    topic = "cdc-verify.roundtrip"
    asyncio.run(create_topic(broker.bootstrap, topic, PARTITIONS))
    produced = asyncio.run(produce(broker.bootstrap, topic))
    consumed = asyncio.run(consume(broker.bootstrap, topic, group="cdc-verify-test"))

    counts = Counter((key, value) for key, value, _ in consumed)
    expected = {(key, value) for key, value, _ in produced}
    assert set(counts) == expected, f"missing {sorted(expected - set(counts))[:5]}"
    assert [pair for pair, n in counts.items() if n != 1] == [], "delivered more than once"
    assert len(consumed) == MESSAGES

    partitions_of: defaultdict[str, set[int]] = defaultdict(set)
    for key, _, partition in produced + consumed:
        partitions_of[key].add(partition)
    assert all(len(p) == 1 for p in partitions_of.values()), dict(partitions_of)
    assert {p for (p,) in partitions_of.values()} == set(range(PARTITIONS))  # keys spread out

    # Within a key (so within a partition) the order is the order sent.
    order = {value: i for i, (_, value, _) in enumerate(produced)}
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    for key, value, _ in consumed:
        by_key[key].append(order[value])
    assert all(seq == sorted(seq) for seq in by_key.values())


def test_listens_on_loopback_only(broker: KafkaBroker) -> None:
    listening = [
        conn
        for conn in psutil.Process(broker.pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert {conn.laddr.port for conn in listening} == {
        broker.broker_port,
        broker.controller_port,
    }, listening
    assert {conn.laddr.ip for conn in listening} == {"127.0.0.1"}, listening
    assert broker.bootstrap == f"127.0.0.1:{broker.broker_port}"


def test_fetch_again_is_a_no_op(broker: KafkaBroker) -> None:
    started = time.monotonic()
    result = run_kafka_sh("fetch", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "already fetched" in result.stdout
    assert time.monotonic() - started < 10


def test_stop_leaves_nothing_and_a_fresh_start_works(tmp_path: Path) -> None:
    first = KafkaBroker(tmp_path / "first").start()
    pid, ports = first.pid, (first.broker_port, first.controller_port)
    assert psutil.pid_exists(pid)
    first.stop()
    assert process_gone(pid), f"broker pid {pid} still runs after stop()"
    assert not any(port_accepts(port) for port in ports), f"ports {ports} still open"
    assert not (tmp_path / "first" / "kafka.pid").exists()
    first.stop()  # stopping a stopped broker is fine

    with KafkaBroker(tmp_path / "second") as second:
        assert second.pid != pid
        assert second.start_seconds < 60, second.output
        asyncio.run(create_topic(second.bootstrap, "after-restart", 2))
    assert process_gone(second.pid)
    assert not port_accepts(second.broker_port)


@pytest.mark.parametrize("listening", [True, False], ids=["listening", "bound-only"])
def test_taken_port_fails_clearly(tmp_path: Path, listening: bool) -> None:
    """A listener is caught before the JVM starts; a bound socket when the broker binds."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if listening:
            taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match=rf"port 127\.0\.0\.1:{port} .*is taken"):
            KafkaBroker(tmp_path / "kafka", port=port).start()
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
    leftover = [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(proc.info["cmdline"] or ())
    ]
    assert not leftover, f"processes left running from {tmp_path}: {leftover}"
