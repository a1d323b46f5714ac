"""The row CDC test rig on its own: a real Postgres 15, a real Debezium Server and its Redis
sink, in both message formats. Each row change of a table lands in the stream
`<prefix>.<schema>.<table>` as the sink writes it (RedisStreamChangeConsumer):

- `extended`: `key` and `value`, each the converter's JSON, then the record's headers,
  their names upper-cased: Debezium 3 adds four, `__DEBEZIUM.CONTEXT.*`;
- `compact`: one field, named by the key's JSON, holding the value's JSON.

A null key or value (a TRUNCATE has no key, a delete's tombstone no value) is written as
the sink's `null.key` / `null.value`, "default" unless set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis

from .debezium_server import SCRIPT, DebeziumServer, MessageFormat, java_home
from .postgres_server import PostgresServer

NULL = "default"  # the Redis sink's null.key and null.value
CONTEXT_HEADERS = {
    f"__DEBEZIUM.CONTEXT.{name}"
    for name in ("CONNECTORNAME", "CONNECTORLOGICALNAME", "TASKID", "RUNID")
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def read_stream(
    client: redis.Redis, stream: str, count: int, timeout: float = 60.0
) -> list[dict[str, str]]:
    """The stream's first `count` entries' fields (str -> str), once there are that many."""
    deadline = time.monotonic() + timeout
    while (length := client.xlen(stream)) < count:
        assert time.monotonic() < deadline, f"{stream}: {length} entries, not {count}"
        time.sleep(0.1)
    entries: Any = client.xrange(stream)  # redis-py's sync-or-async union
    assert len(entries) == count, entries[count:]  # nothing more than the changes made
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def key_and_value(fields: dict[str, str], message_format: MessageFormat) -> tuple[str, str]:
    if message_format == "extended":
        assert list(fields)[:2] == ["key", "value"], fields
        assert set(fields) - {"key", "value"} == CONTEXT_HEADERS, fields
        header = json.loads(fields["__DEBEZIUM.CONTEXT.CONNECTORLOGICALNAME"])
        assert header["payload"] == "prod"  # the topic prefix
        return fields["key"], fields["value"]
    assert len(fields) == 1, fields
    return next(iter(fields.items()))


def payload(text: str, schemas: bool) -> Any:
    """The JSON converter's document: with schemas, {"schema", "payload"}."""
    document = json.loads(text)
    if not schemas:
        return document
    assert set(document) == {"schema", "payload"}, document
    assert document["schema"]["type"] == "struct"
    return document["payload"]


@pytest.mark.parametrize(
    ("message_format", "schemas"), [("extended", False), ("compact", True)]
)  # both formats, both converter settings, two servers' starts (~15 s each)
def test_row_changes_land_in_the_tables_stream(
    postgres: PostgresServer,
    own_redis: EmbeddedRedis,
    tmp_path: Path,
    message_format: MessageFormat,
    schemas: bool,
) -> None:
    table = f"items_{message_format}"
    postgres.sql(
        f"CREATE TABLE public.{table} (id int PRIMARY KEY, name text, version int NOT NULL);"
        # The whole old row in updates and deletes (the version of what was deleted).
        f"ALTER TABLE public.{table} REPLICA IDENTITY FULL;"
        f"INSERT INTO public.{table} VALUES (1, 'one', 1);"  # there before: the snapshot's
    )
    client = redis.Redis(port=own_redis.port)
    with DebeziumServer(
        tmp_path / "dbz", postgres, own_redis.port, [f"public.{table}"], prefix="prod",
        message_format=message_format, schemas=schemas,
    ) as dbz:  # fmt: skip
        stream = dbz.stream(f"public.{table}")
        assert stream == f"prod.public.{table}"
        postgres.sql(
            f"INSERT INTO public.{table} VALUES (2, 'two', 1);"
            f"UPDATE public.{table} SET name = 'two!', version = 2 WHERE id = 2;"
            f"DELETE FROM public.{table} WHERE id = 1;"
            f"TRUNCATE public.{table};"
        )
        entries = read_stream(client, stream, 6)
        assert dbz.slot in postgres.slots()
    slot = dbz.slot
    assert slot not in postgres.slots()  # dropped at the end

    pairs = [key_and_value(fields, message_format) for fields in entries]
    keys = [None if k == NULL else payload(k, schemas) for k, _ in pairs]
    values: list[Any] = [None if v == NULL else payload(v, schemas) for _, v in pairs]
    assert keys == [{"id": 1}, {"id": 2}, {"id": 2}, {"id": 1}, {"id": 1}, None]
    ops = [v and v["op"] for v in values]
    assert ops == ["r", "c", "u", "d", None, "t"]  # the 5th: the delete's tombstone
    read, create, update, delete, _, truncate = values
    assert (read["before"], read["after"]) == (None, {"id": 1, "name": "one", "version": 1})
    assert read["source"]["snapshot"] == "last"  # the snapshot's last row (of one)
    assert create["after"] == {"id": 2, "name": "two", "version": 1}
    assert update["before"] == {"id": 2, "name": "two", "version": 1}
    assert update["after"] == {"id": 2, "name": "two!", "version": 2}
    assert (delete["before"], delete["after"]) == ({"id": 1, "name": "one", "version": 1}, None)
    for value in (create, update, delete):
        source = value["source"]
        assert (source["schema"], source["table"], source["db"]) == ("public", table, "postgres")
        assert source["snapshot"] == "false" and source["lsn"] > 0 and source["txId"] > 0
    assert (truncate["before"], truncate["after"]) == (None, None)  # no row: key "default"
    assert truncate["source"]["table"] == table


def fake_jdk(root: Path, version: str) -> Path:
    """A directory shaped like a JDK home: its release file and a bin/java."""
    root.mkdir()
    (root / "release").write_text(f'JAVA_VERSION="{version}"\n')
    (root / "bin").mkdir()
    (root / "bin" / "java").write_text("#!/bin/sh\n")
    (root / "bin" / "java").chmod(0o755)
    return root


def java_home_with(env_home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "java-home"], capture_output=True, text=True, check=False,
        env={**os.environ, "CDC_VERIFY_JAVA_HOME": str(env_home)},
    )  # fmt: skip


def test_the_java_debezium_runs_on_is_21_or_newer(tmp_path: Path) -> None:
    """Debezium Server 3 needs Java 21+, and the machine's default java may be older: an
    older JDK is refused with a message saying so, a newer one taken."""
    old = java_home_with(fake_jdk(tmp_path / "jdk17", "17.0.15"))
    assert old.returncode != 0 and old.stdout == ""
    assert "is no JDK 21+ (found: 17)" in old.stderr
    new = java_home_with(fake_jdk(tmp_path / "jdk21", "21.0.2"))
    assert (new.returncode, new.stdout.strip()) == (0, str(tmp_path / "jdk21"))
    # Without the variable: a real one on this machine (what the servers above ran on).
    found = Path(java_home())
    release = (found / "release").read_text()
    major = int(release.split('JAVA_VERSION="', 1)[1].split(".", 1)[0])
    assert major >= 21, release
