#!/usr/bin/env python3
"""Record tests/debezium_vectors/: real Debezium Server records, as its Redis sink wrote
them (apart from tests/vectors/, which the Go writer owns), from a real Postgres 15 (the
rig of tests/integration/test_debezium_server.py).

    PYTHONPATH=src .venv/bin/python tests/debezium_vectors/record.py [OUT_DIR]

Needs what the row CDC tests need (bash scripts/setup test). One Debezium Server per
configuration (a directory each, see CONFIGS), ~15 s each; each writes:

- items-{read,create,update,delete,tombstone,truncate}.json: a table with a `version`
  column, REPLICA IDENTITY FULL (the whole old row in updates and deletes): its snapshot
  read, then an insert, an update, a delete (and the tombstone after it) and a TRUNCATE;
- items_default-{update,delete}.json (first configuration only): the same table with the
  default replica identity, where an update has no `before` and a delete's `before` holds
  the primary key only (no version);
- types-{read,create,update}.json: a row of each Postgres type the reference row consumer
  reads (README.md's table), from the snapshot and from the stream.

Each file: {"stream", "config", "kind", "fields"}; `fields` is the Redis entry's fields,
exactly as written (str -> str). Positions, transaction ids and times differ at each run.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # tests.integration: the servers' helpers

from cdc_verify.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.integration.debezium_server import DebeziumServer, MessageFormat  # noqa: E402
from tests.integration.postgres_server import PostgresServer  # noqa: E402

PREFIX = "rec"
# (message format, schemas in the JSON, decimal.handling.mode)
CONFIGS: list[tuple[MessageFormat, bool, str]] = [
    ("extended", False, "precise"),
    ("extended", True, "precise"),
    ("compact", False, "precise"),
    ("compact", True, "precise"),
    ("extended", True, "string"),
    ("extended", True, "double"),
]

TYPES_TABLE = """
CREATE TABLE public.types (
    id int PRIMARY KEY,
    version bigint NOT NULL,
    n_fixed numeric(12, 2),
    n_free numeric,
    f8 double precision,
    f4 real,
    i2 smallint,
    i8 bigint,
    flag boolean,
    ts timestamp,
    ts3 timestamp(3),
    tstz timestamptz,
    d date,
    t time,
    j jsonb,
    js json,
    ints int[],
    texts text[],
    b bytea,
    u uuid,
    txt text,
    empty_txt text,
    null_txt text,
    vc varchar(10)
);
ALTER TABLE public.types REPLICA IDENTITY FULL;
"""
TYPES_ROW = """(
    {id}, 1, {n_fixed}, 3.14159265358979, 0.1, 0.1, -32768, 9007199254740993, true,
    '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789012+02',
    '2024-02-29', '12:34:56.789012', '{{"b": null, "a": [1, 2.50, "x"]}}', '{{"b": 1, "a": 2}}',
    '{{1,2,3}}', '{{"a","b c",NULL}}', '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'héllo', '', NULL, 'short'
)"""


def wait_len(client: redis.Redis, stream: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.xlen(stream) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{stream}: {client.xlen(stream)} entries, not {count}")
        time.sleep(0.1)


def entries(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    written: Any = client.xrange(stream)  # redis-py's sync-or-async union
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in written]


def record(
    pg: PostgresServer, work: Path, out: Path, message_format: MessageFormat, schemas: bool,
    decimal: str, first: bool,
) -> None:  # fmt: skip
    pg.sql(
        "DROP TABLE IF EXISTS public.items, public.items_default, public.types;"
        "CREATE TABLE public.items (id int PRIMARY KEY, name text, version bigint NOT NULL);"
        "ALTER TABLE public.items REPLICA IDENTITY FULL;"
        "CREATE TABLE public.items_default (id int PRIMARY KEY, name text, version bigint);"
        + TYPES_TABLE
        + "INSERT INTO public.items VALUES (1, 'one', 1);"
        + "INSERT INTO public.items_default VALUES (1, 'one', 1);"
        + f"INSERT INTO public.types VALUES {TYPES_ROW.format(id=1, n_fixed='1234.50')};"
    )
    config = {
        "message_format": message_format,
        "schemas": schemas,
        "decimal_handling_mode": decimal,
    }
    tables = ["public.items", "public.items_default", "public.types"]
    with EmbeddedRedis(data_dir=work / "redis") as red, DebeziumServer(
        work / "dbz", pg, red.port, tables, prefix=PREFIX, message_format=message_format,
        schemas=schemas, extra={"debezium.source.decimal.handling.mode": decimal},
    ) as dbz:  # fmt: skip
        print(
            f"  started and snapshot in {dbz.start_seconds:.1f}s, RSS {dbz.rss_bytes() >> 20} MiB"
        )
        pg.sql(
            "INSERT INTO public.items VALUES (2, 'two', 1);"
            "UPDATE public.items SET name = 'two!', version = 2 WHERE id = 2;"
            "DELETE FROM public.items WHERE id = 1;"
            "TRUNCATE public.items;"
            "UPDATE public.items_default SET name = 'one!', version = 2 WHERE id = 1;"
            "DELETE FROM public.items_default WHERE id = 1;"
            f"INSERT INTO public.types VALUES {TYPES_ROW.format(id=2, n_fixed='-0.01')};"
            "UPDATE public.types SET version = 2, n_fixed = 0, n_free = 1e-20, f8 = 3,"
            " ts = '1969-12-31 23:59:59.999999', tstz = '2024-06-01 00:00:00-07',"
            " d = '1900-01-01', j = '[]', ints = '{}', b = '', txt = NULL WHERE id = 2;"
        )
        client = redis.Redis(port=red.port)
        streams = {t: dbz.stream(t) for t in tables}
        wait_len(client, streams["public.items"], 6)
        wait_len(client, streams["public.items_default"], 4)  # r, u, d, tombstone
        wait_len(client, streams["public.types"], 3)
        print(f"  RSS after the changes: {dbz.rss_bytes() >> 20} MiB")
        kinds = {
            "public.items": ["read", "create", "update", "delete", "tombstone", "truncate"],
            "public.items_default": ["read", "update", "delete", "tombstone"],
            "public.types": ["read", "create", "update"],
        }
        for table, names in kinds.items():
            got = entries(client, streams[table])
            assert len(got) == len(names), (table, got)
            for kind, fields in zip(names, got, strict=True):
                if not wanted(table, kind, decimal, first):
                    continue
                doc: dict[str, Any] = {
                    "stream": streams[table], "config": config, "kind": kind, "fields": fields,
                }  # fmt: skip
                name = f"{table.split('.')[1]}-{kind}.json"
                (out / name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        client.close()


def wanted(table: str, kind: str, decimal: str, first: bool) -> bool:
    """A handful: the default replica identity's update and delete once, the ops table
    where decimals are as by default, the types table everywhere."""
    if table == "public.items_default":
        return first and kind in ("update", "delete")
    return table == "public.types" or decimal == "precise"


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    with PostgresServer() as pg:
        print(f"postgres ready in {pg.start_seconds:.1f}s on port {pg.port}")
        for i, (message_format, schemas, decimal) in enumerate(CONFIGS):
            name = f"{message_format}-{'schemas' if schemas else 'plain'}"
            if decimal != "precise":
                name += f"-decimal-{decimal}"
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            print(f"{name}:")
            with tempfile.TemporaryDirectory(prefix="cdc-verify-dbz-rec-") as work:
                record(pg, Path(work), out, message_format, schemas, decimal, first=i == 0)


if __name__ == "__main__":
    main()
