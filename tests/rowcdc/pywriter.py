"""Production's writer: the legacy service's kind, psycopg 3, one transaction per change,
each row version as the plan says (no faults: production is the reference).

    apply_plan(plan, dsn)                                      # a library call
    python -m tests.rowcdc.pywriter --dsn URL --plan plan.json  # or a process
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .plan import Change, Plan
from .schema import COLUMNS, KEYS, SCHEMA

APPLICATION = "legacy-service"


def python_values(table: str, values: dict[str, Any]) -> dict[str, Any]:
    """The plan's JSON form as the legacy code holds a row: Decimal, datetime, bytes..."""
    row = dict(values)
    if table == "comments":
        row["score"], row["amount"] = Decimal(values["score"]), Decimal(values["amount"])
        row["meta"] = Jsonb(values["meta"])  # json.dumps: 3.0 stays "3.0"
        row["blob"] = bytes.fromhex(values["blob"])
        row["uid"] = uuid.UUID(values["uid"])
        row["day"] = date.fromisoformat(values["day"])
        row["edited_at"] = datetime.fromisoformat(values["edited_at"])  # naive: a timestamp
        row["created_at"] = datetime.fromisoformat(values["created_at"])
    else:
        row["cast_at"] = datetime.fromisoformat(values["cast_at"])
    return row


def statement(change: Change) -> tuple[sql.Composed, list[Any]]:
    table, columns, key = change.table, COLUMNS[change.table], KEYS[change.table]
    name = sql.Identifier(SCHEMA, table)
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
    row = python_values(table, change.values)
    if change.op == "insert":
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            name,
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        return query, [row[c] for c in columns]
    if change.op == "update":
        rest = [c for c in columns if c not in key]
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in rest)
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(name, sets, where)
        return query, [row[c] for c in rest] + [row[k] for k in key]
    return sql.SQL("DELETE FROM {} WHERE {}").format(name, where), [row[k] for k in key]


def apply_plan(plan: Plan, dsn: str) -> int:
    """Writes production's changes in order, each in its own transaction; their count."""
    done = 0
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION) as conn:
        for change in plan.production_order():
            query, params = statement(change)
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(query, params)
                if cur.rowcount != 1:  # a plan that does not fit the table: stop loudly
                    raise RuntimeError(f"{change.join_key}: {cur.rowcount} rows changed")
            done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rowcdc.pywriter", description=__doc__)
    parser.add_argument("--dsn", required=True, help="production's Postgres, a libpq URL")
    parser.add_argument("--plan", required=True, type=Path, help="the plan's JSON file")
    args = parser.parse_args(argv)
    done = apply_plan(Plan.load(args.plan), args.dsn)
    print(f"applied {done} changes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
