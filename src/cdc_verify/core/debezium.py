"""The `debezium` envelope: Debezium Server's Redis sink records (docs/envelopes.md).

The sink writes one stream entry per record, in one of two message formats:

- `extended`: fields `key` and `value` (each a JSON document), then the record's headers;
- `compact`: one field, named by the key's JSON, whose value is the value's JSON.

Either JSON document may carry its schema (`{"schema": ..., "payload": ...}`) or not. A
null key or value is the sink's `null.key` / `null.value`, `default` unless set: a
tombstone (the null value after a delete) is no change, and a TRUNCATE (null key) belongs
to no row. The table is the entity, the key's primary-key values (in key order, joined by
`,`) the entity id, the row image's version column the version. The consumer is given the
value's JSON as it came (`payload`, encoding `debezium`): consumers/row.py reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cdc_verify.consumers.row import split_schema
from cdc_verify.core.envelope import Event, Malformed, Tombstone, version_key

ENCODING = b"debezium"
#: The sink's `debezium.sink.redis.null.key` / `null.value` default.
NULL = b"default"
#: Debezium's op letters -> the op an event is counted under.
OPS = {"c": "create", "u": "update", "d": "delete", "r": "read"}
_NOT_ROW_CHANGES = {"t": "a TRUNCATE", "m": "a logical decoding message"}
MAX_KEY_VALUE_CHARS = 64  # of one primary-key value in an entity id


class DebeziumEnvelope:
    """Reads a record in either message format, with or without schemas.

    `version_column`: the column of the row image holding the row version (a delete's
    `before` needs it: REPLICA IDENTITY FULL, docs/postgres.md).
    """

    def __init__(self, version_column: str = "version") -> None:
        self.version_column = version_column

    def __call__(self, fields: Mapping[bytes, bytes]) -> Event:
        key, value = _key_and_value(fields)
        if value == NULL:
            raise Tombstone
        record = _payload(value, "value")
        op_letter = record.get("op")
        if op_letter in _NOT_ROW_CHANGES:
            raise Malformed(f"{_NOT_ROW_CHANGES[op_letter]} (op {op_letter!r}) is no row change")
        op = OPS.get(op_letter) if isinstance(op_letter, str) else None
        if op is None:
            raise Malformed(f"op {_short(op_letter)} is none of c, u, d, r")
        source = record.get("source")
        table = source.get("table") if isinstance(source, dict) else None
        if not isinstance(table, str) or not table:
            raise Malformed("no source.table in the value")
        image_name = "before" if op == "delete" else "after"
        row = record.get(image_name)
        if not isinstance(row, dict):
            raise Malformed(f"op {op_letter!r} without a row image in {image_name!r}")
        if key == NULL:
            raise Malformed("the key is null: a table without a primary key")
        entity_id = _entity_id(_payload(key, "key"))
        version = self._version(row, image_name)
        return Event(
            version_key(table, entity_id, version, op),
            table,
            op,
            entity_id,
            version,
            {b"encoding": ENCODING, b"payload": value},
        )

    def _version(self, row: dict[str, Any], image_name: str) -> int:
        column = self.version_column
        if column not in row:
            raise Malformed(f"no {column!r} column in {image_name!r} (--version-column)")
        value = row[column]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= 19:
            return int(value)
        if value is None and image_name == "before":
            raise Malformed(
                f"{column!r} is null in 'before': the table needs REPLICA IDENTITY FULL "
                "for deletes to carry their version"
            )
        raise Malformed(f"{column!r} is {_short(value)} in {image_name!r}: not an integer >= 0")


def _key_and_value(fields: Mapping[bytes, bytes]) -> tuple[bytes, bytes]:
    """(key, value) of either message format."""
    if b"value" in fields:
        key = fields.get(b"key")
        if key is None:
            raise Malformed("a value field without a key field (extended format)")
        return key, fields[b"value"]
    if len(fields) == 1:
        ((key, value),) = fields.items()
        return key, value
    raise Malformed(
        f"{len(fields)} fields and none named value: neither of Debezium's message formats"
    )


def _payload(document: bytes, what: str) -> dict[str, Any]:
    """The JSON document's payload (with or without its schema)."""
    split = split_schema(document)
    if split is not None:  # the schema is not needed here: its bytes are not parsed
        try:
            payload = json.loads(split[1])
        except (ValueError, RecursionError):
            pass  # the whole document's parse below says what is wrong
        else:
            if isinstance(payload, dict):
                return payload
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"the {what} is not JSON: {str(exc)[:80]}") from None
    if isinstance(parsed, dict) and "payload" in parsed and "schema" in parsed:
        parsed = parsed["payload"]
    if not isinstance(parsed, dict):
        raise Malformed(f"the {what} is {_kind(parsed)}, not an object")
    return parsed


def _entity_id(key: dict[str, Any]) -> str:
    """The key's values in key order, joined by `,`."""
    if not key:
        raise Malformed("the key has no fields")
    return ",".join(_key_value(name, value) for name, value in key.items())


def _key_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise Malformed(f"key field {name!r} is {_short(value)}: not usable in an entity id")
    text = str(value) if isinstance(value, int | float) else value
    if not isinstance(text, str) or len(text) > MAX_KEY_VALUE_CHARS:
        raise Malformed(f"key field {name!r} is {_short(value)}: too long for an entity id")
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")
