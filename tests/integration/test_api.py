"""The worker's HTTP API against a real worker, a real Redis and real HTTP."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import jsonschema_rs
import pytest
import redis

from cdc_verify.api.app import create_app
from cdc_verify.api.models import AlertPage, EventVerdict, Gate, Health, MismatchGroups, Status
from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import PROD, SIS, ServedWorker, primary_count, settings, wait_for

GAPS = {Verdict.MISSING_IN_SISTER.value, Verdict.MISSING_IN_PRODUCTION.value}


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """A worker (with its API) that has verified a corpus with every fault, still running.

    It has a Redis of its own: the other tests here flush theirs.
    """
    with EmbeddedRedis(data_dir=tmp_path_factory.mktemp("api-redis")) as server:
        client = redis.Redis.from_url(server.url)
        corpus = generate(2500, seed=5, grace_ms=1000)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        with ServedWorker(settings(server.url)) as served:
            wait_for(lambda: primary_count(client) >= len(corpus.expected), what="all verdicts")
            yield served, corpus, client
        client.close()


def all_pages(url: str, **params) -> tuple[list[dict], int]:
    alerts, pages, cursor = [], 0, None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        reply = httpx.get(f"{url}/api/alerts", params=query)
        assert reply.status_code == 200, reply.text
        page = AlertPage.model_validate(reply.json())
        assert len(page.alerts) <= params.get("limit", 100)
        alerts += [a.model_dump(mode="json") for a in page.alerts]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return alerts, pages


def expected_gaps(corpus, still_open: bool) -> set[str]:
    return {
        e for e, want in corpus.expected.items()
        if want.verdict.value in GAPS and (not want.late) == still_open
    }  # fmt: skip


def test_alert_pages_cover_every_open_gap_once_in_order(verified):
    served, corpus, _ = verified
    alerts, pages = all_pages(served.url, limit=7)
    ids = [a["event_id"] for a in alerts]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_gaps(corpus, still_open=True)
    assert pages >= len(ids) // 7
    opened = [a["opened_at"] for a in alerts]
    assert opened == sorted(opened)
    for a in alerts:
        assert a["verdict"] == corpus.expected[a["event_id"]].verdict.value
        assert a["resolution"] is None


def test_resolved_alerts_carry_the_late_pair_comparison(verified):
    served, corpus, _ = verified
    alerts, _ = all_pages(served.url, state="resolved", limit=50)
    assert {a["event_id"] for a in alerts} == expected_gaps(corpus, still_open=False)
    for a in alerts:
        assert a["resolution"] == "late" and a["late_by_ms"] > 1000
        assert a["late_comparison"]["verdict"] == "match"  # the corpus' late copies are clean


def test_alert_filters(verified):
    served, _, _ = verified
    sister, _ = all_pages(served.url, side="sister", limit=1000)
    production, _ = all_pages(served.url, side="production", limit=1000)
    assert sister and production
    assert {a["verdict"] for a in sister} == {"missing_in_sister"}
    assert {a["verdict"] for a in production} == {"missing_in_production"}
    one = production[0]
    by_entity, _ = all_pages(served.url, entity_id=one["entity_id"])
    assert [a["event_id"] for a in by_entity] == [one["event_id"]]
    recent, _ = all_pages(served.url, since="10m")
    assert len(recent) == len(sister) + len(production)
    time.sleep(1.1)
    none, _ = all_pages(served.url, since="1s")
    assert none == []  # all opened more than a second ago


def test_bad_queries_get_clear_4xx(verified):
    served, _, _ = verified
    for params, status in (
        ({"cursor": "not-a-cursor!"}, 422),
        ({"since": "soon"}, 422),
        ({"limit": 0}, 422),
        ({"side": "both"}, 422),
    ):
        reply = httpx.get(f"{served.url}/api/alerts", params=params)
        assert reply.status_code == status, (params, reply.text)
        assert "detail" in reply.json()


@pytest.mark.parametrize(
    ("params", "status"),
    [
        # The request schemathesis flagged (seed 181206020828306823263460718924941116189):
        # its negative entity_id={} goes on the wire as `entity_id=`, the empty string,
        # which the document allows. (It was flagged only because test_api_schema replaced
        # the bad Authorization header of the same case; see there.)
        ({"cursor": "80023948684:\u00d5\u00c6*kC\x8a\u00ac\x8a\x1f", "entity_id": ""}, 200),
        ({"entity_id": ""}, 200),
        ({"entity_id": "t1_abc"}, 200),
        ({"entity_id": "x" * 256}, 200),
        ({"entity_id": "x" * 257}, 422),
        # A list where the document declares one string: no silent last-value-wins.
        ({"entity_id": ["t1_abc", "t1_def"]}, 422),
        ({"limit": ["5000", "1"]}, 422),
        # `\d` in a pattern: ASCII digits in the document (ECMA), any Unicode digit in
        # pydantic-core's Rust regex. U+0661 is ARABIC-INDIC DIGIT ONE.
        ({"since": "\u0661m"}, 422),
        ({"since": "1.5h"}, 200),
        ({"since": "600"}, 200),  # plain seconds, as every duration takes
        ({"since": "10m\n"}, 422),
        ({"cursor": "\u0661:01ABC"}, 422),
        ({"cursor": "1:01ABC\n"}, 422),
        ({"cursor": "1:01\rABC"}, 200),
    ],
)
def test_alert_queries_are_rejected_exactly_when_the_document_says(verified, params, status):
    """The OpenAPI document and FastAPI's validation agree, value for value."""
    served, _, _ = verified
    document = httpx.get(f"{served.url}/openapi.json").json()
    declared = {
        p["name"]: p["schema"] for p in document["paths"]["/api/alerts"]["get"]["parameters"]
    }
    # schemathesis judges requests with jsonschema_rs, whose `\d` is ASCII as in ECMA-262.
    valid = all(jsonschema_rs.validator_for(declared[k]).is_valid(v) for k, v in params.items())
    assert valid == (status == 200), params
    reply = httpx.get(f"{served.url}/api/alerts", params=params)
    assert reply.status_code == status, (params, reply.text)


def test_the_verdict_of_one_event(verified):
    served, corpus, _ = verified
    by_verdict = {}
    for event_id, want in corpus.expected.items():
        by_verdict.setdefault(want.verdict, event_id)
    for verdict, event_id in by_verdict.items():
        reply = httpx.get(f"{served.url}/api/events/{event_id}")
        assert reply.status_code == 200, reply.text
        body = EventVerdict.model_validate(reply.json())
        assert body.verdict is verdict and body.record.verdict is verdict
        if verdict in (Verdict.MISMATCH, Verdict.RACE):
            assert body.record.differences
        if verdict.value in GAPS:
            assert body.alert is not None and body.alert.event_id == event_id
    missing = httpx.get(f"{served.url}/api/events/01NOTANEVENT")
    assert missing.status_code == 404 and "no verdict" in missing.json()["detail"]


def test_groups_status_and_probes(verified):
    served, corpus, _ = verified
    groups = MismatchGroups.model_validate(httpx.get(f"{served.url}/api/groups").json())
    counts = [g.count for g in groups.groups]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1
    assert {g.verdict for g in groups.groups} >= {Verdict.MISMATCH, Verdict.UNDECODABLE}
    # Each group is one write endpoint's: entity and op are part of what the API shows, so
    # the same bug on three endpoints is three distinct groups, not one listed three times.
    shown = [g.model_dump(include={"verdict", "entity", "op", "side", "error", "differences"})
             for g in groups.groups]  # fmt: skip
    assert len({repr(s) for s in shown}) == len(shown)
    endpoints = {(g.entity, g.op) for g in groups.groups}
    assert {("comment", "update"), ("comment", "create")} <= endpoints
    without = {repr({k: v for k, v in s.items() if k not in ("entity", "op")}) for s in shown}
    assert len(without) < len(shown)  # some bugs span endpoints: entity/op tell them apart

    status = Status.model_validate(httpx.get(f"{served.url}/api/status").json())
    assert status.ready
    want = corpus.expected_counts()
    assert status.totals == {v.value: n for v, n in want.items() if n}
    assert status.events == len(corpus.expected)
    assert status.open_alerts == len(expected_gaps(corpus, still_open=True))
    # The durable counters: per minute, and by entity/op, they add up to the totals.
    assert len(status.rate) == 10
    per_minute = Counter(
        name for p in status.rate for name, n in p.counts.items() for _ in range(n)
    )
    assert {v: per_minute[v] for v in status.totals} == status.totals
    assert per_minute["late"] == status.late_arrivals == sum(1 for e in corpus.expected.values()
                                                             if e.late)  # fmt: skip
    by_entity_op = Counter()
    for counts in status.by_entity_op.values():
        by_entity_op.update(counts)
    assert {v: by_entity_op[v] for v in status.totals} == status.totals
    assert {"comment/update", "comment/create"} <= set(status.by_entity_op)
    assert status.events_per_second["5m"] > 0
    assert status.gate.decision == "no_go"  # the corpus has every fault

    for path in ("/healthz", "/readyz"):
        reply = httpx.get(served.url + path)
        health = Health.model_validate(reply.json())
        assert reply.status_code == 200 and health.status == "ok", reply.text
    metrics = httpx.get(f"{served.url}/metrics").text
    assert "cdc_verify_open_alerts " in metrics and "cdc_verify_ready 1.0" in metrics
    # Labels in any order: the client library sorts them.
    assert re.search(r'cdc_verify_verdicts_total\{[^}]*verdict="match"[^}]*\} [1-9]', metrics)


def test_the_gate_of_the_live_worker(verified):
    served, corpus, _ = verified
    want = {v.value: n for v, n in corpus.expected_counts().items()}

    def gate(**params) -> dict:
        reply = httpx.get(f"{served.url}/api/gate", params=params)
        assert reply.status_code == 200, reply.text
        return Gate.model_validate(reply.json()).model_dump(mode="json")

    answer = gate()
    assert answer["decision"] == "no_go" and answer["exit_status"] == 1
    assert {v.value: answer["counts"][v.value] for v in Verdict} == want
    assert answer["events"] == len(corpus.expected)
    assert answer["source"]["kind"] == "redis" and answer["source"]["window_seconds"] == 86400
    assert [c["threshold"] for c in answer["criteria"]] == [0.001, 0, 0, 1000]  # the settings'
    lenient = {"max_mismatch_rate": 1, "max_undecodable": 10**6, "max_gaps": 10**6}
    assert gate(**lenient)["decision"] == "go"
    assert gate(**lenient, min_events=10**6)["decision"] == "cannot_decide"
    # One endpoint: its counts are that row of the status page's table.
    rows = httpx.get(f"{served.url}/api/status").json()["by_entity_op"]
    update = gate(entity="comment", op="update")
    assert update["scope"] == {"entity": "comment", "op": "update"}
    assert {k: n for k, n in update["counts"].items() if n} == rows["comment/update"]
    comment = gate(entity="comment")
    assert comment["events"] == sum(
        n for key, row in rows.items() if key.startswith("comment/")
        for name, n in row.items() if name in GAPS | {"match", "mismatch", "race", "undecodable"}
    )  # fmt: skip
    nothing = gate(entity="link")
    assert nothing["decision"] == "cannot_decide" and nothing["reason"].startswith(
        "no events for link/* (there are counts for "
    )
    assert gate(since="1s")["events"] <= answer["events"]
    beyond = gate(since="9d")  # past counter_retention (8 days): expired, no answer
    assert beyond["decision"] == "cannot_decide" and beyond["events"] is None
    assert "past counter_retention" in beyond["reason"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"max_mismatch_rate": "1.5"}, 422),
        ({"max_mismatch_rate": "-0.1"}, 422),
        ({"max_mismatch_rate": "0.1%"}, 422),  # the command takes 0.1%; a query takes 0.001
        ({"max_gaps": "-1"}, 422),
        ({"min_events": "many"}, 422),
        ({"op": "upsert"}, 422),
        ({"entity": "Comment"}, 422),
        ({"entity": "x" * 33}, 422),
        ({"since": "soon"}, 422),
        ({"sinse": "1h"}, 422),
        ({"since": "8d", "entity": "comment", "op": "update", "max_gaps": "3"}, 200),
    ],
)
def test_gate_queries_are_checked(verified, params, status):
    served, _, _ = verified
    reply = httpx.get(f"{served.url}/api/gate", params=params)
    assert reply.status_code == status, (params, reply.text)
    if status != 200:
        assert "detail" in reply.json()


def _entry(event_id: str, comment: dict) -> dict[bytes, bytes]:
    return {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": comment["id"].encode(), b"version": b"2", b"ts_ms": b"1700000000000",
        b"encoding": b"msgpack", b"payload": encode_msgpack(comment),
    }  # fmt: skip


def test_a_late_arrival_after_a_restart_is_compared_with_its_twin_from_the_stream(
    redis_url, redis_client
):
    """The twin left the worker's memory (new process): it is fetched back from Redis."""
    cfg = settings(redis_url, grace=0.3)
    comment = sample_comment(random.Random(7), "t1_late")
    redis_client.xadd(PROD, _entry("01LATEPAIR0000000000000001", comment))
    redis_client.xadd(PROD, _entry("01LATEGONE0000000000000001", comment))
    with ServedWorker(cfg) as served:
        wait_for(lambda: primary_count(redis_client) == 2, what="the gap verdicts")
        opened = httpx.get(f"{served.url}/api/alerts").json()["alerts"]
        assert {a["event_id"] for a in opened} == {
            "01LATEPAIR0000000000000001", "01LATEGONE0000000000000001"
        }  # fmt: skip
    # The twin of one is trimmed from its stream before its partner comes.
    gone = next(a for a in opened if a["event_id"] == "01LATEGONE0000000000000001")
    redis_client.xdel(PROD, gone["entry_id"])
    changed = {**comment, "score": comment["score"] + 1}
    redis_client.xadd(SIS, _entry("01LATEPAIR0000000000000001", changed))
    redis_client.xadd(SIS, _entry("01LATEGONE0000000000000001", comment))
    with ServedWorker(cfg) as served:

        def resolved() -> list[dict]:
            reply = httpx.get(f"{served.url}/api/alerts", params={"state": "resolved"})
            return reply.json()["alerts"]

        wait_for(lambda: len(resolved()) == 2, what="both alerts resolved")
        late = {a["event_id"]: a for a in resolved()}
        compared = late["01LATEPAIR0000000000000001"]["late_comparison"]
        assert compared["verdict"] == "mismatch"
        assert [(d["path"], d["kind"]) for d in compared["differences"]] == [("/score", "value")]
        assert late["01LATEGONE0000000000000001"]["late_comparison"] is None
        assert httpx.get(f"{served.url}/api/alerts").json()["alerts"] == []
        # The first verdict stands.
        event = httpx.get(f"{served.url}/api/events/01LATEPAIR0000000000000001").json()
        assert event["verdict"] == "missing_in_sister" and event["sides_seen"] == "ps"
        assert event["alert_state"] == "resolved"


def test_bearer_token_guards_the_api_but_not_the_probes(redis_url):
    cfg = settings(redis_url, http_token="s3cret-token")
    with ServedWorker(cfg) as served:
        for path in ("/api/alerts", "/api/status", "/api/groups", "/api/gate", "/metrics"):
            assert httpx.get(served.url + path).status_code == 401
            wrong = httpx.get(served.url + path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            right = httpx.get(served.url + path, headers={"Authorization": "Bearer s3cret-token"})
            assert right.status_code == 200, path
        for path in ("/healthz", "/readyz", "/"):
            assert httpx.get(served.url + path).status_code == 200
        schema = httpx.get(f"{served.url}/openapi.json").json()
        assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_readyz_fails_while_redis_is_away_and_recovers(own_redis):
    cfg = settings(own_redis.url)
    with ServedWorker(cfg) as served:
        assert httpx.get(f"{served.url}/readyz").status_code == 200
        own_redis.stop()
        wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 503, what="503")
        body = httpx.get(f"{served.url}/readyz").json()
        assert not body["checks"]["redis"]["ok"] and body["status"] == "failing"
        assert httpx.get(f"{served.url}/healthz").status_code == 200  # alive, just waiting
        assert httpx.get(f"{served.url}/api/alerts").status_code == 503
        own_redis.start()
        wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, what="ready")


@dataclass
class StandingWorker:
    """A worker seen from the API: a fixed state, to drive the readiness rules."""

    settings: Settings
    lag: dict[Side, float]
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: VerifierMetrics = field(default_factory=VerifierMetrics)
    status: StatusBoard = field(default_factory=StatusBoard)
    running: bool = True
    heartbeat: float = field(default_factory=time.monotonic)
    waiting_for: str | None = None

    def pending_joins(self) -> dict[Side, int]:
        return {}


def test_readyz_fails_when_the_consumer_lags_beyond_the_bound_or_the_group_is_gone(
    redis_url, redis_client
):
    cfg = settings(redis_url, ready_max_lag=30)
    for key in (PROD, SIS):
        redis_client.xgroup_create(key, cfg.group, id="0", mkstream=True)
    view = StandingWorker(cfg, {Side.PRODUCTION: 2.0, Side.SISTER: 0.0})
    view.ready.set()

    async def probe() -> tuple[int, dict]:
        client = redis.asyncio.Redis.from_url(redis_url)
        keys = WorkerKeys.from_settings(cfg)
        app = create_app(view, client, StreamPair.on_one_server(client, keys, cfg.consumer_name))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            reply = await http.get("/readyz")
        await client.aclose()
        return reply.status_code, reply.json()["checks"]

    status, _ = asyncio.run(probe())
    assert status == 200
    view.lag[Side.SISTER] = 31.0
    status, checks = asyncio.run(probe())
    assert status == 503 and not checks["lag"]["ok"] and "31.0s" in checks["lag"]["detail"]
    view.lag[Side.SISTER] = 0.0
    redis_client.xgroup_destroy(SIS, cfg.group)
    status, checks = asyncio.run(probe())
    assert status == 503 and "missing on sister" in checks["consumer_group"]["detail"]
    view.heartbeat -= 120
    assert asyncio.run(probe())[0] == 503  # still not ready; and /healthz would fail too


def test_record_keys_and_the_verdict_stream_expire(redis_url, redis_client):
    from cdc_verify.config.keys import WorkerKeys
    from cdc_verify.pipeline.redis.retention import RetentionPruner

    comment = sample_comment(random.Random(3), "t1_kept")
    redis_client.xadd(PROD, _entry("01RETAINED0000000000000001", comment))
    cfg = settings(redis_url, grace=0.2, verdict_retention=3600)
    with ServedWorker(cfg):
        wait_for(lambda: primary_count(redis_client) == 1, what="the gap verdict")
    keys = WorkerKeys.from_settings(cfg)
    ttl = redis_client.pttl(keys.record_prefix + "01RETAINED0000000000000001")
    assert 3_500_000 < ttl <= 3_600_000
    # Verdict records older than the retention leave the stream.
    redis_client.delete(cfg.verdict_stream)
    old = int(time.time() * 1000) - 7_200_000
    for i in range(300):
        redis_client.xadd(cfg.verdict_stream, {b"record": b"{}"}, id=f"{old - 1000 + i}-1")
    redis_client.xadd(cfg.verdict_stream, {b"record": b"{}"})  # a recent one stays
    total = redis_client.xlen(cfg.verdict_stream)

    async def prune() -> tuple[int, int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await RetentionPruner(client, keys, 86_400_000, 3_600_000).prune()
        finally:
            await client.aclose()

    _, dropped = asyncio.run(prune())
    assert dropped > 0 and redis_client.xlen(cfg.verdict_stream) == total - dropped
    assert redis_client.xrevrange(cfg.verdict_stream, count=1)  # the recent one is kept


def test_readyz_names_the_server_that_is_away(tmp_path):
    """Production on its own server: while it is away /readyz says so, and the worker's
    cdc_verify_redis_up{role="production"} goes to 0 (the sister and state stay up)."""
    with (
        EmbeddedRedis(data_dir=tmp_path / "p") as prod,
        EmbeddedRedis(data_dir=tmp_path / "s") as sis,
    ):
        cfg = settings(None, production_redis_url=prod.url, sister_redis_url=sis.url)
        with ServedWorker(cfg) as served:
            assert httpx.get(f"{served.url}/readyz").status_code == 200
            prod.stop()
            wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 503, what="503")
            checks = httpx.get(f"{served.url}/readyz").json()["checks"]
            assert not checks["production_server"]["ok"]
            assert checks["sister_server"]["ok"] and checks["state_server"]["ok"]
            assert checks["redis"]["detail"] == "production server away"
            up = served.worker.metrics.registry.get_sample_value
            wait_for(lambda: up("cdc_verify_redis_up", {"role": "production"}) == 0, what="down")
            assert up("cdc_verify_redis_up", {"role": "sister"}) == 1
            prod.start()
            wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, what="ready")
            assert up("cdc_verify_redis_up", {"role": "production"}) == 1
