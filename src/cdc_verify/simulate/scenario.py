"""Scenarios: logical changes of comments and accounts as JSON lines, the input both
writers share.

The Python legacy writer (production side) and the Go writer in tests/gowriter
(sister side) read the same file, so a verdict other than `match` on a clean
scenario is a real cross-language divergence. One change per line:

    {"event_id": "<ULID>", "entity": "comment"|"account", "entity_id": "t1_…"|"t2_…",
     "op": "create"|"update"|"increment", "version": 3, "ts_ms": 1700000000123,
     "comment"|"account": {…the entity's msgpack map of docs/wire-format.md…}}

The model sits under the key named by `entity`; a line without `entity` is a comment
(older files). Both writers give a change the entry id `<ts_ms>-0`, so the streams line
up in time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import redis

from cdc_verify.simulate.ids import ulid
from cdc_verify.simulate.legacy_writer import encode_msgpack
from cdc_verify.simulate.models import ENTITIES, new_entity_id, sample

EPOCH_MS = 1_700_000_000_000
CHUNK = 1000


def generate_changes(
    count: int,
    seed: int = 0,
    start_ms: int = EPOCH_MS,
    entities: Sequence[str] = ("comment",),
    increments: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """`count` clean changes, 1 ms apart; deterministic for a seed.

    Each change is of one of `entities`, picked evenly (comments only by default).
    `increments` is the share of the changes past version 1 that are `increment`s
    (a score or karma change) rather than `update`s. The defaults draw nothing more
    from the rng, so their scenarios stay as they were.
    """
    rng = random.Random(seed)
    for i in range(count):
        ts_ms = start_ms + i
        entity = entities[0] if len(entities) == 1 else rng.choice(entities)
        entity_id = new_entity_id(rng, entity)
        version = rng.randint(1, 30)
        event_id = ulid(rng, ts_ms)
        model = sample(rng, entity, entity_id)
        op = "create" if version == 1 else "update"
        if increments and version > 1 and rng.random() < increments:
            op = "increment"
        yield {
            "event_id": event_id,
            "entity": entity,
            "entity_id": entity_id,
            "op": op,
            "version": version,
            "ts_ms": ts_ms,
            entity: model,
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
    """The stream entry the legacy (Python) service writes for a change (msgpack)."""
    entity = change.get("entity", "comment")
    if entity not in ENTITIES or entity not in change:
        raise ValueError(
            f"change {change.get('event_id')!r}: entity {entity!r} needs its map under "
            f"the key {entity!r} (entities: {', '.join(ENTITIES)})"
        )
    return {
        b"event_id": change["event_id"].encode(),
        b"entity": entity.encode(),
        b"op": change["op"].encode(),
        b"entity_id": change["entity_id"].encode(),
        b"version": str(change["version"]).encode(),
        b"ts_ms": str(change["ts_ms"]).encode(),
        b"encoding": b"msgpack",
        b"payload": encode_msgpack(change[entity]),
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
