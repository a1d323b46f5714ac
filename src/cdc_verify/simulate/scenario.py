"""Scenarios: logical comment changes as JSON lines, the input both writers share.

The Python legacy writer (production side) and the Go writer in tests/gowriter
(sister side) read the same file, so a verdict other than `match` on a clean
scenario is a real cross-language divergence. One change per line:

    {"event_id": "<ULID>", "entity_id": "t1_…", "op": "create"|"update",
     "version": 3, "ts_ms": 1700000000123, "comment": {…the msgpack map of docs/wire-format.md…}}

Both writers give a change the entry id `<ts_ms>-0`, so the streams line up in time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import redis

from cdc_verify.simulate.ids import base36, ulid
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

EPOCH_MS = 1_700_000_000_000
CHUNK = 1000


def generate_changes(
    count: int, seed: int = 0, start_ms: int = EPOCH_MS
) -> Iterator[dict[str, Any]]:
    """`count` clean changes, 1 ms apart; deterministic for a seed."""
    rng = random.Random(seed)
    for i in range(count):
        ts_ms = start_ms + i
        entity_id = "t1_" + base36(rng.randrange(36**6, 36**8))
        version = rng.randint(1, 30)
        yield {
            "event_id": ulid(rng, ts_ms),
            "entity_id": entity_id,
            "op": "create" if version == 1 else "update",
            "version": version,
            "ts_ms": ts_ms,
            "comment": sample_comment(rng, entity_id),
        }


def write_scenario(path: Path, changes: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for change in changes:
            out.write(json.dumps(change, ensure_ascii=False, allow_nan=False) + "\n")
            count += 1
    return count


def read_scenario(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON change: {exc}") from exc


def legacy_fields(change: dict[str, Any]) -> dict[bytes, bytes]:
    """The stream entry the legacy (Python) service writes for a change."""
    return {
        b"event_id": change["event_id"].encode(),
        b"entity": b"comment",
        b"op": change["op"].encode(),
        b"entity_id": change["entity_id"].encode(),
        b"version": str(change["version"]).encode(),
        b"ts_ms": str(change["ts_ms"]).encode(),
        b"encoding": b"msgpack",
        b"payload": encode_msgpack(change["comment"]),
    }


def write_production(client: redis.Redis, stream: str, changes: Iterable[dict[str, Any]]) -> int:
    """XADD the legacy writer's entries, id `<ts_ms>-0` each; returns how many."""
    count = 0
    pipe = client.pipeline(transaction=False)
    for change in changes:
        # redis-py's XADD wants an invariant dict of its unions; it only reads the fields.
        pipe.xadd(stream, legacy_fields(change), id=f"{change['ts_ms']}-0")  # type: ignore[arg-type]
        count += 1
        if count % CHUNK == 0:
            pipe.execute()
    pipe.execute()
    return count
