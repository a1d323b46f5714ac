"""The recorded Debezium records of tests/debezium_vectors/ (README.md there), as the
`debezium` envelope hands them to a consumer: {encoding: debezium, payload: value JSON}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "debezium_vectors"
SCHEMAS = ("extended-schemas", "compact-schemas")
PLAIN = ("extended-plain", "compact-plain")
CONFIGS = (*SCHEMAS, *PLAIN)


def value_json(config: str, name: str) -> str:
    """The record's value JSON exactly as the sink wrote it."""
    record = json.loads((VECTORS / config / f"{name}.json").read_text(encoding="utf-8"))
    fields = record["fields"]
    if record["config"]["message_format"] == "extended":
        return str(fields["value"])
    [value] = fields.values()  # compact: one field, named by the key
    return str(value)


def document(config: str, name: str) -> dict[str, Any]:
    """The value JSON parsed, to edit into the other side of a comparison."""
    parsed: dict[str, Any] = json.loads(value_json(config, name))
    return parsed


def envelope(doc: dict[str, Any]) -> dict[str, Any]:
    """The change envelope (before, after, source, op) of a parsed value JSON."""
    inner: dict[str, Any] = doc["payload"] if doc.keys() == {"schema", "payload"} else doc
    return inner


def column_schema(doc: dict[str, Any], image: str, column: str) -> dict[str, Any]:
    """The schema of one column of a row image, in a value JSON with schemas."""
    [field] = [f for f in doc["schema"]["fields"] if f["field"] == image]
    [schema] = [c for c in field["fields"] if c["field"] == column]
    return dict(schema)


def fields(payload: str | bytes | dict[str, Any]) -> dict[bytes, bytes]:
    """What the debezium envelope gives the consumer."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, ensure_ascii=False)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return {b"encoding": b"debezium", b"payload": payload}
