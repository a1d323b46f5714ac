"""The row CDC writers on two real Postgres 15 servers: production written by the Python
writer (psycopg), the sister by the Go writer (pgx) with the plan's faults. An audit
trigger (tests/rowcdc/schema.py, AUDIT_SQL) records every row image each change left;
read back with psycopg, the two databases differ exactly where the plan says, row version
by row version, and nowhere else. What a version join of their CDC would find is derived
here from what Postgres stored, independently of the plan's own expectations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.rowcdc import build_gowriter, pywriter
from tests.rowcdc.plan import BENIGN, FAULTS, WALL, Change, Plan, make_plan
from tests.rowcdc.schema import AUDIT_SQL, COLUMNS, KEYS, SCHEMA_SQL, TABLES, publication_sql

from ..conftest import REPO
from .postgres_server import PostgresServer


@pytest.fixture(scope="module")
def gowriter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gowriter(tmp_path_factory.mktemp("rowcdc") / "gowriter")


@pytest.fixture
def servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    with PostgresServer() as production, PostgresServer() as sister:
        for server in (production, sister):
            server.sql(SCHEMA_SQL + AUDIT_SQL + publication_sql())
            # The publication holds the plan's tables and nothing else (not the audit).
            published = server.sql(
                "SELECT schemaname || '.' || tablename FROM"
                " pg_publication_tables WHERE pubname = 'rowcdc_pub'"
            )
            assert sorted(published.split()) == sorted(TABLES)
        yield production, sister


def json_form(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row as psycopg reads it, in the plan's JSON form (Decimal keeps its scale in str)."""
    out: dict[str, Any] = {}
    for column in COLUMNS[table]:
        value = row[column]
        if isinstance(value, Decimal | UUID | date) and not isinstance(value, datetime):
            value = str(value)
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, datetime):
            aware = value.tzinfo is not None
            value = (
                value.astimezone(UTC).isoformat(timespec="microseconds")
                if aware
                else value.strftime(WALL)
            )
        out[column] = value
    return out


def read_audit(dsn: str) -> list[tuple[str, str, int, dict[str, Any]]]:
    """Every change's (join key, op, transaction id, row image) in the order made."""
    found = []
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        for table, key in KEYS.items():
            for row in conn.execute(f"SELECT * FROM rowcdc_audit.{table}"):
                join_key = f"{table}/{','.join(str(row[k]) for k in key)}@{row['version']}"
                if row["audit_op"] == "DELETE":
                    join_key += ":delete"
                found.append((row["audit_seq"], join_key, row["audit_op"].lower(),
                              row["audit_txid"], json_form(table, row)))  # fmt: skip
    return [entry[1:] for entry in sorted(found)]


def diff(production: Any, sister: Any, path: str = "") -> list[dict[str, Any]]:
    """Strict differences (types too: 3.0 is not 3), as docs/verdicts.md names them."""
    if isinstance(production, dict) and isinstance(sister, dict):
        return [d for k in sorted(production.keys() | sister.keys())
                for d in diff(production.get(k), sister.get(k), f"{path}/{k}")]  # fmt: skip
    if type(production) is not type(sister):
        return [{"path": path, "kind": "type", "production": production, "sister": sister}]
    if production != sister:
        return [{"path": path, "kind": "value", "production": production, "sister": sister}]
    return []


def final_versions(dsn: str) -> dict[str, dict[str, int]]:
    rows: dict[str, dict[str, int]] = {}
    with psycopg.connect(dsn) as conn:
        for table, key in KEYS.items():
            columns = ", ".join(key)
            rows[table] = {
                ",".join(map(str, found[:-1])): found[-1]
                for found in conn.execute(f"SELECT {columns}, version FROM public.{table}")
            }
    return rows


def applied(plan: Plan, audit: list[tuple[str, str, int, dict[str, Any]]],
            order: list[Change]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Checks a side's audit against the changes it was to make, in its order, one
    transaction each; its row images by join key."""
    assert [(k, op) for k, op, _, _ in audit] == [(c.join_key, c.op) for c in order]
    assert len({txid for _, _, txid, _ in audit}) == len(audit)  # one transaction per change
    return {k: image for k, _, _, image in audit}


@pytest.mark.parametrize(
    ("seed", "size", "writer"), [(24, 300, "command"), (7, 150, "library")]
)  # fmt: skip
def test_the_databases_differ_exactly_by_the_plans_faults(
    servers: tuple[PostgresServer, PostgresServer],
    gowriter: Path,
    tmp_path: Path,
    seed: int,
    size: int,
    writer: str,
) -> None:
    production, sister = servers
    plan = make_plan(seed=seed, size=size, faults=2)
    path = plan.write(tmp_path / "plan.json")
    assert Plan.load(path).to_json() == json.loads(path.read_text())  # the file round-trips

    # Production by the module's command line or its function; the sister by the Go binary.
    if writer == "command":
        python = subprocess.run(
            [sys.executable, "-m", "tests.rowcdc.pywriter", "--dsn", production.dsn,
             "--plan", str(path)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert python.returncode == 0, python.stderr
        assert python.stdout == f"applied {len(plan.production_order())} changes\n"
    else:
        assert pywriter.apply_plan(plan, production.dsn) == len(plan.production_order())
    go = subprocess.run([str(gowriter), "--dsn", sister.dsn, "--plan", str(path)],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert go.returncode == 0, go.stderr
    assert go.stdout == f"applied {len(plan.sister_order())} changes\n"

    prod = applied(plan, read_audit(production.dsn), plan.production_order())
    sis = applied(plan, read_audit(sister.dsn), plan.sister_order())
    by_key = {c.join_key: c for c in plan.changes}
    # Production stored every version exactly as planned (numeric scales, jsonb number
    # texts, NULL against '', microseconds), and so did the sister's sister-only changes.
    for key, image in prod.items():
        assert diff(by_key[key].values, image) == [], key
    for key in sis.keys() - prod.keys():
        assert diff(by_key[key].values, sis[key]) == [], key

    # A version join of the two: every key's verdict, derived from what was stored.
    verdicts, differences = {}, {}
    for key in prod.keys() | sis.keys():
        if key not in sis:
            verdicts[key] = "missing_in_sister"
        elif key not in prod:
            verdicts[key] = "missing_in_production"
        elif found := diff(prod[key], sis[key]):
            verdicts[key], differences[key] = "mismatch", found
        else:
            verdicts[key] = "match"
    assert verdicts == plan.expected()
    planned = {k: [{n: v for n, v in d.items() if n != "fault"} for d in ds]
               for k, ds in plan.differences().items()}  # fmt: skip
    assert differences == planned
    assert set(verdicts.values()) == {"match", "mismatch", "missing_in_sister",
                                      "missing_in_production"}  # fmt: skip
    # Every fault and benign variant the plan has is there; a swapped race was applied
    # the other way round on the sister and both its versions still match.
    assert {c.fault for c in plan.changes} - {None} == set(FAULTS)
    assert {c.benign for c in plan.changes} - {None} == set(BENIGN)
    swapped = [c for c in plan.changes if c.race == "swapped"]
    assert swapped and all(verdicts[c.join_key] == "match" for c in swapped)

    # The tables' rows end at the versions each side's changes leave.
    assert final_versions(production.dsn) == plan.final_versions("production")
    assert final_versions(sister.dsn) == plan.final_versions("sister")
    assert plan.final_versions("production") != plan.final_versions("sister")
