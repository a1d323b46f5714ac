"""Bounds in bytes on what the live worker keeps per event (docs/guarantees.md, "Bounds"):
a huge difference, a huge entity_id and a commit the state server refuses for its size,
through the real worker on a real redis-server."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx
import msgpack
import redis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.bounds import (
    ALERT_MAX_BYTES,
    CUT,
    MINIMAL_BOUNDS,
    RECORD_BOUNDS,
    MiB,
)
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .support import (
    PROD,
    SIS,
    ServedWorker,
    primary_count,
    run_worker_until_done,
    settings,
    verdict_records,
    wait_for,
)


def comment_event(event_id: str, body: str, **fields: str) -> dict[str, Any]:
    comment = {**sample_comment(random.Random(event_id), event_id), "body": body}
    return {"event_id": event_id, "version": "1", "encoding": "msgpack",
            "payload": encode_msgpack(comment), **fields}  # fmt: skip


def streamed_sha256(*parts: tuple[bytes, int]) -> str:
    """SHA-256 of the concatenation of (bytes, times repeated), without building it."""
    digest = hashlib.sha256()
    for data, times in parts:
        block = data * 100_000
        for _ in range(times // 100_000):
            digest.update(block)
        digest.update(data * (times % 100_000))
    return digest.hexdigest()


def test_a_90_mb_differing_body_gets_its_mismatch_in_a_bounded_record_beside_its_batch(
    redis_url, redis_client
):
    # Half of the body is control characters: 90 MB of text, 315 MB of JSON a side.
    pairs = 45_000_000
    body = "a\x01" * pairs
    production, sister = comment_event("BIG", body), comment_event("BIG", body[:-1] + "b")
    del body
    redis_client.xadd(PROD, production)
    redis_client.xadd(SIS, sister)
    del production, sister
    for i in range(20):
        redis_client.xadd(PROD, comment_event(f"S{i}", "same"))
        redis_client.xadd(SIS, comment_event(f"S{i}", "same" if i % 2 else "other"))
    # Writing 90 MB takes a while: a grace window that no write of the test outlasts.
    # Verifying the pair takes 1-3 s, past the tests' 1 s lock: its thread keeps it.
    cfg = settings(redis_url, redis_socket_timeout=30, grace=30)
    with ServedWorker(cfg) as served:
        wait_for(lambda: primary_count(redis_client) == 21, timeout=60, what="all 21 verdicts")
        answer = httpx.get(f"{served.url}/api/events/BIG", timeout=30)
    records = {r["event_id"]: r for r in verdict_records(redis_client)}
    assert {e: r["verdict"] for e, r in records.items()} == {
        "BIG": "mismatch",
        **{f"S{i}": "match" if i % 2 else "mismatch" for i in range(20)},
    }
    big = records["BIG"]
    assert [d["path"] for d in big["differences"]] == ["/body"]
    production = big["differences"][0]["production"][CUT]
    sister = big["differences"][0]["sister"][CUT]
    # The size and hash of each side's whole JSON text ("a\u0001..." in quotes).
    assert production["bytes"] == pairs * 7 + 2
    assert sister["bytes"] == pairs * 7 + 2 - 5  # its last "\u0001" is a "b"
    assert production["sha256"] == streamed_sha256((b'"', 1), (b"a\\u0001", pairs), (b'"', 1))
    assert sister["sha256"] == streamed_sha256(
        (b'"', 1), (b"a\\u0001", pairs - 1), (b"ab", 1), (b'"', 1)
    )
    assert production["type"] == "string" and production["head"].startswith("a\x01a\x01")
    # What the state server keeps of it, and what the API serves.
    keys = WorkerKeys.from_settings(cfg)
    stored = redis_client.get(keys.record_prefix + "BIG")
    assert stored is not None and json.loads(stored) == big
    assert len(stored) <= RECORD_BOUNDS.record
    usage = redis_client.memory_usage(keys.record_prefix + "BIG")
    assert usage is not None and usage < 16 * 1024
    assert answer.status_code == 200
    served_difference = answer.json()["record"]["differences"][0]
    assert (served_difference["production"], served_difference["sister"]) == (
        {CUT: production},
        {CUT: sister},
    )
    assert len(answer.content) < 16 * 1024


def test_a_20_mb_entity_id_is_cut_in_its_alert_and_a_big_late_comparison_too(
    redis_url, redis_client
):
    entity_id = "t1_" + "\x07" * 20_000_000  # 20 MB, 120 MB of JSON
    body = "b\x02" * 1_000_000
    redis_client.xadd(PROD, comment_event("LONELY", body, entity_id=entity_id))
    redis_client.xadd(PROD, comment_event("PAIR", "x"))
    redis_client.xadd(SIS, comment_event("PAIR", "x"))
    cfg = settings(redis_url)
    keys = WorkerKeys.from_settings(cfg)
    with ServedWorker(cfg):
        wait_for(lambda: primary_count(redis_client) == 2, what="the pair and the gap")
        opened = redis_client.hget(keys.alerts_open, "LONELY")
        assert opened is not None
        # The late twin, with a body that differs: its comparison goes into the alert.
        redis_client.xadd(SIS, comment_event("LONELY", body + "c", entity_id="t1_other"))
        wait_for(lambda: redis_client.hexists(keys.alerts_resolved, "LONELY"), what="the late twin")
    assert len(opened) <= ALERT_MAX_BYTES
    alert = json.loads(opened)
    assert alert["verdict"] == "missing_in_sister"
    head, _, tail = alert["entity_id"].partition("…[cut: ")
    assert entity_id.startswith(head) and head.startswith("t1_\x07")
    json_size = 20_000_000 * 6 + 5  # "t1_" and the quotes; each \x07 is \u0007
    digest = streamed_sha256((b'"t1_', 1), (b"\\u0007", 20_000_000), (b'"', 1))
    assert tail == f"{json_size} bytes, sha256:{digest}]"
    resolved = redis_client.hget(keys.alerts_resolved, "LONELY")
    assert resolved is not None and len(resolved) <= ALERT_MAX_BYTES
    late = json.loads(resolved)["late_comparison"]
    assert late["verdict"] == "mismatch" and [d["path"] for d in late["differences"]] == ["/body"]
    assert late["differences"][0]["production"][CUT]["bytes"] == 1_000_000 * 7 + 2


def _payload_consumer(fields: Mapping[bytes, bytes]) -> Any:
    """A consumer that returns the msgpack payload as it is: maps of any size."""
    return msgpack.unpackb(fields[b"payload"], raw=False)


def _map_event(event_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "payload": msgpack.packb(value)}


def test_a_commit_the_state_server_refuses_for_its_size_is_a_finding_not_an_outage(
    tmp_path, caplog
):
    # WIDE: 40,000 differing keys fill a record to 1 MiB, and its commit row past the
    # 1 MiB the server is set to take below. MID1/MID2: half a MiB each, fine alone but
    # not together. The rest are small.
    wide = "W" * 200  # a long event_id adds to the row, outside the record
    events: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        wide: ({f"k{i}": i for i in range(40_000)}, {f"k{i}": -i - 1 for i in range(40_000)}),
    }
    for name in ("MID1", "MID2"):
        events[name] = (
            {f"v{i}": "p" * 30_000 for i in range(9)},
            {f"v{i}": "s" * 30_000 for i in range(9)},
        )
    for i in range(10):
        events[f"S{i}"] = ({"n": i}, {"n": i if i % 2 else -i - 1})
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        for event_id, (production, sister) in events.items():
            client.xadd(PROD, _map_event(event_id, production))
            client.xadd(SIS, _map_event(event_id, sister))
        # Redis' lowest settings: an argument past 1 MiB closes the connection.
        client.config_set("proto-max-bulk-len", str(MiB))
        client.config_set("client-query-buffer-limit", str(MiB))
        cfg = settings(server.url, redis_socket_timeout=10)
        worker = StreamWorker(cfg, _payload_consumer)
        with caplog.at_level(logging.WARNING, logger="cdc_verify.pipeline.redis.commit"):
            run_worker_until_done(cfg, client, len(events), timeout=60, worker=worker)
        records = {r["event_id"]: r for r in verdict_records(client)}
        stored = client.get(WorkerKeys.from_settings(cfg).record_prefix + wide)
        client.close()
    assert set(records) == set(events)
    assert {e for e, r in records.items() if r["verdict"] == "mismatch"} == {
        wide, "MID1", "MID2", *(f"S{i}" for i in range(0, 10, 2))
    }  # fmt: skip
    # The refused one is committed reduced, and says so; the others whole.
    reduced = records[wide]
    assert "refused the whole record" in reduced["reduced"]
    assert stored is not None and len(stored) <= MINIMAL_BOUNDS.record
    assert len(reduced["differences"]) + reduced["more_differences"] == 40_000
    assert all("reduced" not in records[e] for e in events if e != wide)
    assert len(records["MID1"]["differences"]) == 9
    registry = worker.metrics.registry
    assert registry.get_sample_value("cdc_verify_records_reduced_total") == 1
    # Each message names the server; the refused event is the one error.
    address = server.url.split("//")[1].split("/")[0]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and address in errors[0] and "proto-max-bulk-len" in errors[0]
    halved = [r.getMessage() for r in caplog.records if "two halves" in r.getMessage()]
    assert halved and all(address in message for message in halved)
