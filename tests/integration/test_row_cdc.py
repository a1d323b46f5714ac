"""The sister Postgres verified end to end (docs/postgres.md): two real Postgres 15 servers,
production written by the legacy kind of writer (psycopg), the sister by a Go writer (pgx)
with the plan's faults (tests/rowcdc/), each database's changes carried by its own real
Debezium Server into its own Redis stream, and `cdc-verify run --envelope debezium`
joining them by row version.

Every row version gets the verdict the plan says: each injected fault its own, every
other version `match`, nothing else (no duplicate, no malformed); each delete's tombstone
is counted, never verdicted. A SIGKILL of a worker and a restart of the sister's Debezium
Server while changes flow lose nothing. The same streams through `backfill`, and through
`capture` + `replay`, give the same verdicts. Production's Debezium Server connects as
the user docs/postgres.md has its owner create, with exactly the grants it gives.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from cdc_verify.core.debezium import DebeziumEnvelope
from cdc_verify.core.envelope import Tombstone
from cdc_verify.core.scope import in_sample
from cdc_verify.embedded_redis import EmbeddedRedis
from tests.rowcdc import build_gowriter, pywriter
from tests.rowcdc.plan import Plan, make_plan
from tests.rowcdc.schema import SCHEMA_SQL, TABLES

from ..conftest import REPO, cli_command, cli_env
from .debezium_server import DebeziumServer
from .postgres_server import PostgresServer
from .support import PRIMARY, coverage_env, verdict_records

DOCS = REPO / "docs" / "postgres.md"
GRACE = "60"  # covers the sister Debezium Server's restart (~5 s) with room to spare
PLAN_SIZE = 300


def docs_sql(heading: str) -> str:
    """The first ```sql block under `heading` in docs/postgres.md: the tests run the SQL
    the docs give."""
    text = DOCS.read_text()
    section = text[text.index(heading) :]
    found = re.search(r"```sql\n(.*?)```", section, re.S)
    assert found, f"no sql block under {heading!r}"
    return found.group(1)


@dataclass
class Rig:
    redis_url: str
    client: redis.Redis
    production: DebeziumServer
    sister: DebeziumServer
    plan: Plan
    work: Path

    def streams(self, table: str) -> tuple[str, str]:
        return self.production.stream(table), self.sister.stream(table)


def entity(table: str) -> str:
    return table.split(".", 1)[1]


def start_worker(rig: Rig, table: str, log: Any) -> subprocess.Popen[bytes]:
    production, sister = rig.streams(table)
    name = entity(table)
    args = cli_command(
        "run", "--redis", rig.redis_url, "--envelope", "debezium",
        "--production", production, "--sister", sister, "--group", name,
        "--verdict-stream", f"{name}:verdicts", "--grace", GRACE, "--start-id", "0",
        "--lock-ttl", "1", "--http-port", "0", "--create-streams",
        "--consumer-name", f"{name}-{random.randrange(10**6)}",
    )  # fmt: skip
    return subprocess.Popen(args, env=coverage_env(), stdout=log, stderr=log)


def wait_for_entries(
    client: redis.Redis, stream: str, count: int, writer: subprocess.Popen[str]
) -> None:
    """Until `stream` holds `count` entries: the Debezium Server has carried some of the
    writer's changes (a server stopped before its first record keeps no position, and
    snapshots again on its next start: docs/postgres.md)."""
    deadline = time.monotonic() + 60
    while client.xlen(stream) < count:
        assert writer.poll() is None or client.xlen(stream) >= count, "the writer ended first"
        assert time.monotonic() < deadline, f"{stream}: {client.xlen(stream)} entries"
        time.sleep(0.05)


def expected_of(plan: Plan, table: str) -> dict[str, str]:
    return {k: v for k, v in plan.expected().items() if k.startswith(entity(table) + "/")}


def primaries(client: redis.Redis, table: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for record in verdict_records(client, f"{entity(table)}:verdicts"):
        if record["verdict"] in PRIMARY:
            found.setdefault(record["event_id"], []).append(record["verdict"])
    return found


def tombstones_counted(client: redis.Redis, table: str) -> int:
    pattern = f"cdc-verify:{entity(table)}:counts:*"
    return sum(
        int(count)
        for key in client.scan_iter(pattern)
        for name, count in client.hgetall(key).items()
        if name.startswith(b"tombstone|")
    )


def deletes_of(plan: Plan, table: str, side: str) -> int:
    order = plan.production_order() if side == "production" else plan.sister_order()
    return sum(1 for c in order if c.table == entity(table) and c.op == "delete")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("rowcdc")
    gowriter = build_gowriter(work / "gowriter")
    plan = make_plan(seed=24, size=PLAN_SIZE)
    plan_path = plan.write(work / "plan.json")
    with (
        EmbeddedRedis(work / "redis") as server,
        PostgresServer() as production_db,
        PostgresServer() as sister_db,
    ):
        for db in (production_db, sister_db):
            db.sql(SCHEMA_SQL)
        # Production belongs to another team: its owner grants what docs/postgres.md says.
        production_db.sql(docs_sql("## What production's owner grants"))
        # docs/postgres.md: numerics as text, which keeps a variable scale's trailing zeros.
        numerics = {"debezium.source.decimal.handling.mode": "string"}
        owner_made = {
            **numerics,
            "debezium.source.database.user": "cdc_verify_reader",
            "debezium.source.publication.name": "cdc_verify_pub",
            "debezium.source.publication.autocreate.mode": "disabled",
        }
        client = redis.Redis.from_url(server.url)
        with (
            DebeziumServer(work / "dbz-production", production_db, server.port, TABLES,
                           prefix="prod", schemas=True, extra=owner_made) as production,
            DebeziumServer(work / "dbz-sister", sister_db, server.port, TABLES,
                           prefix="sister", message_format="compact", schemas=True,
                           extra=numerics) as sister,
        ):  # fmt: skip
            rig = Rig(server.url, client, production, sister, plan, work)
            logs = {table: (work / f"{entity(table)}.log").open("ab") for table in TABLES}
            workers = {table: start_worker(rig, table, logs[table]) for table in TABLES}
            try:
                pywriter.apply_plan(plan, production_db.dsn)
                # The sister's Debezium Server stops (cleanly) while its database is being
                # written, and one worker is SIGKILLed with production's changes waiting.
                go = subprocess.Popen(
                    [str(gowriter), "--dsn", sister_db.dsn, "--plan", str(plan_path),
                     "--pause", "20ms"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                wait_for_entries(client, sister.stream(TABLES[0]), 20, go)
                sister.stop()
                _, errors = go.communicate(timeout=300)
                assert go.returncode == 0, errors
                comments = TABLES[0]
                workers[comments].send_signal(signal.SIGKILL)
                workers[comments].wait()
                workers[comments] = start_worker(rig, comments, logs[comments])
                sister.start()
                deadline = time.monotonic() + 240
                for table, worker in workers.items():
                    want = len(expected_of(plan, table))
                    while len(primaries(client, table)) < want:
                        assert worker.poll() is None, (work / f"{entity(table)}.log").read_text()
                        assert time.monotonic() < deadline, (
                            f"{table}: {len(primaries(client, table))} of {want} verdicts"
                        )
                        time.sleep(0.5)
                time.sleep(2)  # a wrong extra verdict would land now
                yield rig
            finally:
                for worker in workers.values():
                    worker.send_signal(signal.SIGTERM)
                codes = [worker.wait(timeout=30) for worker in workers.values()]
                for log in logs.values():
                    log.close()
            assert codes == [0, 0], [(work / f"{entity(t)}.log").read_text()[-3000:]
                                     for t in TABLES]  # fmt: skip
        client.close()


@pytest.mark.parametrize("table", TABLES)
def test_every_row_version_gets_the_verdict_its_fault_implies(rig, table):
    got = primaries(rig.client, table)
    assert {k: v for k, v in got.items() if len(v) > 1} == {}  # exactly one each
    verdicts = {k: v[0] for k, v in got.items()}
    expected = expected_of(rig.plan, table)
    wrong = {k: (verdicts.get(k), v) for k, v in expected.items() if verdicts.get(k) != v}
    assert wrong == {}
    assert set(verdicts) == set(expected)
    records = verdict_records(rig.client, f"{entity(table)}:verdicts")
    # Nothing but the primary verdicts: no duplicate, no malformed entry.
    assert Counter(r["verdict"] for r in records if r["verdict"] not in PRIMARY) == Counter()
    # Each mismatch names the columns its fault touched.
    differences = rig.plan.differences()
    for record in records:
        if record["verdict"] == "mismatch":
            paths = {d["path"] for d in record["differences"]}
            want = {d["path"] for d in differences[record["event_id"]]}
            assert paths == want, record
    # Each delete's tombstone (both sides) is counted, never verdicted.
    deletes = deletes_of(rig.plan, table, "production") + deletes_of(rig.plan, table, "sister")
    assert tombstones_counted(rig.client, table) == deletes


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def report_verdicts(out: Path) -> dict[str, str]:
    lines = (out / "verdicts.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return {r["event_id"]: r["verdict"] for r in records if r["verdict"] in PRIMARY}


@pytest.mark.parametrize("table", TABLES)
def test_backfill_and_replay_of_captures_give_the_same_verdicts(rig, table, tmp_path):
    live = {k: v[0] for k, v in primaries(rig.client, table).items()}
    production, sister = rig.streams(table)
    captures = []
    for stream, name in ((production, "p.cap"), (sister, "s.cap")):
        done = cli("capture", "--redis", rig.redis_url, "--stream", stream,
                   "--out", str(tmp_path / name))  # fmt: skip
        assert done.returncode == 0, done.stderr
        captures.append(str(tmp_path / name))
    for command, sources in (
        ("backfill", ("--redis", rig.redis_url, "--production", production, "--sister", sister)),
        ("replay", ("--production", captures[0], "--sister", captures[1])),
    ):
        out = tmp_path / command
        done = cli(command, *sources, "--envelope", "debezium", "--grace", GRACE,
                   "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert report_verdicts(out) == live, command
        summary = json.loads((out / "summary.json").read_text())
        deletes = deletes_of(rig.plan, table, "production") + deletes_of(rig.plan, table, "sister")
        assert summary["tombstones"] == deletes
        assert summary["verdicts"]["duplicate"] == summary["verdicts"]["malformed"] == 0


def test_figures(rig, capsys):
    """Row versions and verdicts by kind; Debezium's delivery (production's commit to its
    entry in Redis, which the restart does not touch) and the verifier's latency (the
    later entry of a pair in Redis to its verdict)."""
    envelope = DebeziumEnvelope()
    for table in TABLES:
        landed: dict[str, int] = {}  # join key -> the later entry's Redis time
        delivery: list[int] = []
        for side, stream in enumerate(rig.streams(table)):
            for entry_id, fields in rig.client.xrange(stream):
                try:
                    key = envelope(fields).key
                except Tombstone:
                    continue
                ms = int(entry_id.split(b"-")[0])
                landed[key] = max(landed.get(key, 0), ms)
                if side == 0:
                    raw = fields[b"value"] if b"value" in fields else next(iter(fields.values()))
                    value = json.loads(raw)
                    delivery.append(ms - (value.get("payload") or value)["source"]["ts_ms"])
        latencies = []
        for entry_id, fields in rig.client.xrange(f"{entity(table)}:verdicts"):
            ms = int(entry_id.split(b"-")[0])
            ids = (fields[b"event_ids"].decode().split(" ") if b"event_ids" in fields
                   else [fields[b"event_id"].decode()])  # fmt: skip
            if fields[b"verdict"].decode() in ("match", "mismatch"):
                latencies += [ms - landed[i] for i in ids]
        latencies.sort()
        delivery.sort()
        counts = Counter(v[0] for v in primaries(rig.client, table).values())
        with capsys.disabled():
            print(f"\n{table}: {sum(counts.values())} row versions, {dict(counts)}; "
                  f"commit to Redis (production) p50 {delivery[len(delivery) // 2]} ms "
                  f"max {delivery[-1]} ms; later entry to verdict (pairs) p50 "
                  f"{latencies[len(latencies) // 2]} ms max {latencies[-1]} ms")  # fmt: skip
        assert latencies and latencies[0] >= 0


def test_the_documented_version_trigger_counts_the_versions():
    """docs/postgres.md's trigger, for a table without a version column."""
    with PostgresServer() as db:
        db.sql("CREATE TABLE comments (id bigint PRIMARY KEY, body text NOT NULL)")
        db.sql(docs_sql("## The version column"))
        db.sql("INSERT INTO comments (id, body) VALUES (1, 'a'), (2, 'b')")
        db.sql("UPDATE comments SET body = 'c' WHERE id = 1")
        db.sql("UPDATE comments SET body = 'd' WHERE id = 1")
        versions = db.sql("SELECT id, version FROM comments ORDER BY id")
        assert versions.split() == ["1|3", "2|1"], versions


def test_alerts_gate_cases_reports_and_scopes_read_row_versions(rig, tmp_path):
    """The other surfaces on the same streams: a row's alerts by its entity id, the gate
    by table and op, cases from the captures, report.html's per-table breakdown, and a
    sticky share by entity id (a rollout's --scope)."""
    table = TABLES[0]
    name = entity(table)
    url = rig.redis_url
    expected = expected_of(rig.plan, table)
    counts = Counter(expected.values())
    gap = next(k for k, v in expected.items() if v == "missing_in_sister")
    entity_id = gap.split("/", 1)[1].split("@")[0]
    done = cli("alerts", "--redis", url, "--group", name, "--entity-id", entity_id, "--json")
    assert done.returncode == 0, done.stderr
    alerts = json.loads(done.stdout)
    assert gap in {a["event_id"] for a in alerts}
    assert {a["entity_id"] for a in alerts} == {entity_id}

    gate = ("gate", "--redis", url, "--group", name, "--since", "1h", "--json", "--min-events", "1")
    done = cli(*gate)
    body = json.loads(done.stdout)
    assert done.returncode == 1 and body["decision"] == "no_go", done.stdout
    assert body["counts"]["mismatch"] == counts["mismatch"]
    assert body["counts"]["tombstone"] == deletes_of(rig.plan, table, "production") + deletes_of(
        rig.plan, table, "sister"
    )
    updates = sum(1 for k in expected if any(
        c.join_key == k and c.op == "update" for c in rig.plan.production_order()))  # fmt: skip
    done = cli(*gate, "--entity", name, "--op", "update")
    assert json.loads(done.stdout)["events"] >= updates

    production, sister = rig.streams(table)
    for stream, cap in ((production, "p.cap"), (sister, "s.cap")):
        assert cli("capture", "--redis", url, "--stream", stream,
                   "--out", str(tmp_path / cap)).returncode == 0  # fmt: skip
    captures = ("--production", str(tmp_path / "p.cap"), "--sister", str(tmp_path / "s.cap"))
    done = cli("cases", *captures, "--envelope", "debezium", "--out", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    cases = json.loads((tmp_path / "c" / "cases.json").read_text())["cases"]
    assert cases and all(c["event_id"] in expected and c["entity"] == name for c in cases)

    out = tmp_path / "scoped"
    done = cli("backfill", "--redis", url, "--production", production, "--sister", sister,
               "--envelope", "debezium", "--scope", "sample:50", "--grace", GRACE,
               "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    scoped = report_verdicts(out)
    for key, verdict in expected.items():
        row = key.split("/", 1)[1].split("@")[0].encode()
        if verdict == "missing_in_sister" and not in_sample(row, 50):
            assert key not in scoped  # out of scope: counted, no verdict
        else:
            assert scoped[key] == verdict, key
    summary = json.loads((out / "summary.json").read_text())
    assert summary["out_of_scope"] == len(expected) - len(scoped)
    html = (out / "report.html").read_text()
    assert f"{name}/update" in html and f"{name}/create" in html
