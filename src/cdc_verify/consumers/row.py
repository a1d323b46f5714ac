"""The reference row consumer for Debezium's JSON (docs/consumers.md, "The row consumer").

``decode_row`` takes the fields the `debezium` envelope gives a consumer,
``{b"encoding": b"debezium", b"payload": <the record's value JSON>}``, and returns the
row image as legacy Python code reads the row through psycopg: a dict column -> value,
with Debezium's encodings of Postgres types undone (numeric -> Decimal, timestamp ->
naive datetime, timestamptz -> aware datetime, date, time, jsonb parsed, bytea -> bytes,
uuid -> UUID, arrays -> lists). The image is `after`, or `before` for a delete. The
`source` block (LSN, transaction id, times, database names) differs between any two
databases by nature: it is left out of the row, so it is never compared.

Only a record *with* its schema (`debezium.format.value.schemas.enable`) says each
column's type. Without it, only what JSON says is known: a variable-scale numeric's
``{"scale", "value"}`` object becomes a Decimal, everything else stays as JSON gives it
(a timestamp stays its integer, a numeric(p,s) its base64 text).

It raises :class:`RowDecodeError` (the event is then `undecodable`) for a payload that is
no JSON object, an op with no row image, a value its schema does not allow, bad base64,
a date or time out of Python's range... Its work is linear in the payload, and nesting
is bounded (MAX_DEPTH), so no payload can make it hang or overflow the stack.
"""

from __future__ import annotations

import binascii
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

__all__ = [
    "MAX_DEPTH", "RowDecodeError", "decode_row", "open_record", "row_image", "scale_of",
]  # fmt: skip

#: Levels of nested schemas (arrays of arrays, structs) and of plain-JSON arrays read.
MAX_DEPTH = 32
#: The bytes of one numeric's unscaled value, about 9,800 digits. Turning the bytes into
#: a Decimal takes time quadratic in their length (1 ms here, 0.3 s at Postgres's
#: largest, ~60 KiB), so a record cannot make the consumer slow.
MAX_DECIMAL_BYTES = 4 * 1024
#: A numeric's scale, either sign: Postgres's own go to 16,383.
MAX_SCALE = 100_000

DECIMAL = "org.apache.kafka.connect.data.Decimal"
VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_EPOCH = datetime(1970, 1, 1)  # naive: Debezium's timestamps are the wall time read as UTC
_EPOCH_DATE = date(1970, 1, 1)
_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_IMAGE = {"c": "after", "u": "after", "r": "after", "d": "before"}
_Zoned = TypeVar("_Zoned", datetime, time)


class RowDecodeError(ValueError):
    """The row consumer rejects the record (verdict ``undecodable``)."""


def decode_row(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """The row image of one Debezium record, column -> value, as psycopg code reads it."""
    encoding = fields.get(b"encoding")
    if encoding != b"debezium":
        shown = "none" if encoding is None else repr(bytes(encoding[:40]))
        raise RowDecodeError(f"encoding {shown}: the row consumer reads debezium records")
    payload = fields.get(b"payload")
    if payload is None:
        raise RowDecodeError("missing field 'payload'")
    try:
        envelope, schema = open_record(payload)
        row, image = _image(envelope)
        if schema is None:
            return {name: _plain(value, f"/{_token(name)}", 0) for name, value in row.items()}
        columns, readers = _plan(schema, image)
        if row.keys() != columns.keys():
            _explain_columns(row, columns)
        out = {}
        for name, value in row.items():
            read, path = readers[name]
            out[name] = read(value, path)
        return out
    except RecursionError:  # json.loads on a document nested past the stack
        raise RowDecodeError("payload nested too deep to read") from None


# -- the record -------------------------------------------------------------------


# The last records opened, by identity: the verifier's wire walk (core/wire.py) and
# source blocks (core/rowsource.py) read the very payloads just decoded, and parsing the
# JSON is most of the cost. Nothing mutates what is kept; two entries: one pair, and
# none of a payload so large that keeping its parse would matter.
_recent: list[tuple[bytes, tuple[dict[str, Any], dict[str, Any] | None]]] = []
_RECENT = 2
_RECENT_MAX_BYTES = 1024 * 1024


def open_record(payload: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the change envelope: before, after, source, op...; the envelope's schema or
    None) of a record's value JSON, with or without its schema. What it gives is shared:
    read it, never change it."""
    for seen, opened in _recent:
        if seen is payload:
            return opened
    opened = _open_record(payload)
    # bytes are immutable: the same object is the same record
    if type(payload) is bytes and len(payload) <= _RECENT_MAX_BYTES:
        _recent.append((payload, opened))
        if len(_recent) > _RECENT:
            del _recent[0]
    return opened


_SCHEMA_HEAD = b'{"schema":'
_PAYLOAD_KEY = b',"payload":'
_schemas: dict[bytes, Any] = {}  # a schema's JSON text -> its parse (every table's is the same)
_SCHEMAS_KEPT = 64  # bounded: at most this many distinct texts (~4 KiB each) are kept
_schema_texts: list[bytes] = []  # the latest schema texts parsed, most recent first
_SCHEMA_TEXTS = 8


def split_schema(document: bytes) -> tuple[bytes, bytes] | None:
    """(the schema's JSON, the payload's JSON) of the JSON converter's compact
    `{"schema":...,"payload":...}`, cut by their text, or None when it is not in that form.

    A record's schema is most of its bytes and the same for every record of its table:
    parsed once, not per record. The cut is at the first `,"payload":`; JSON escapes a
    quote inside a string, so that text is a key, and a key "payload" nested in the schema
    would leave a payload text of several values, which no parse accepts (the caller then
    parses the whole document)."""
    if not (document.startswith(_SCHEMA_HEAD) and document.endswith(b"}")):
        return None
    head = len(_SCHEMA_HEAD)
    for text in _schema_texts:
        # A schema met before, compared in place: no search through it, no copy of it.
        # Its text holds no `,"payload":` and that key's one comma cannot start inside
        # it, so this is the cut the search would find.
        end = head + len(text)
        if document.startswith(text, head) and document.startswith(_PAYLOAD_KEY, end):
            return text, document[end + len(_PAYLOAD_KEY) : -1]
    at = document.find(_PAYLOAD_KEY)
    if at < 0:
        return None
    return document[head:at], document[at + len(_PAYLOAD_KEY) : -1]


def _parsed_schema(text: bytes) -> Any:
    schema = _schemas.get(text)
    if schema is None:
        schema = json.loads(text)
        if len(_schemas) >= _SCHEMAS_KEPT:
            _schemas.clear()
        _schemas[text] = schema
    if _schema_texts[:1] != [text]:  # the most recent first, a few (split_schema's)
        _schema_texts[:] = [text, *(t for t in _schema_texts if t != text)][:_SCHEMA_TEXTS]
    return schema


def _open_record(payload: bytes) -> tuple[dict[str, Any], dict[str, Any] | None]:
    split = split_schema(payload) if type(payload) is bytes else None
    if split is not None:
        try:
            envelope, schema = json.loads(split[1]), _parsed_schema(split[0])
        except (ValueError, RecursionError):
            pass  # the whole document's parse below says what is wrong
        else:
            if type(envelope) is dict and type(schema) is dict:
                return envelope, schema
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowDecodeError(f"payload is not UTF-8 ({exc.reason})") from None
    try:
        document = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and an int of too many digits
        raise RowDecodeError(f"payload is not JSON ({_cut(str(exc), 120)})") from None
    if type(document) is not dict:
        raise RowDecodeError(f"payload is a JSON {_kind(document)}, not an object")
    if document.keys() == {"schema", "payload"}:  # debezium.format.value.schemas.enable
        envelope, schema = document["payload"], document["schema"]
        if type(envelope) is not dict:
            raise RowDecodeError(f"payload's payload is a JSON {_kind(envelope)}, not an object")
        if type(schema) is not dict:
            raise RowDecodeError(f"payload's schema is a JSON {_kind(schema)}, not an object")
        return envelope, schema
    return document, None


def row_image(
    envelope: dict[str, Any], schema: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]] | None]:
    """(the row image for the envelope's op, its columns' schemas by name or None). The
    columns are shared: read them, never change them."""
    row, image = _image(envelope)
    if schema is None:
        return row, None
    return row, _plan(schema, image)[0]


def _image(envelope: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the row image for the envelope's op, which image it is: after or before)."""
    op = envelope.get("op")
    image = _IMAGE.get(op) if type(op) is str else None
    if image is None:
        shown = _cut(repr(op), 40)
        raise RowDecodeError(f"op {shown} has no row image (c, u, r: after; d: before)")
    row = envelope.get(image)
    if type(row) is not dict:
        raise RowDecodeError(f"no row image: {image} is a JSON {_kind(row)} in an op {op!r} record")
    return row, image


_ColumnReader = Callable[[Any, str], Any]
_plans: dict[
    tuple[int, str],
    tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, tuple[_ColumnReader, str]]],
] = {}
_PLANS_KEPT = 64  # bounded as _schemas is: one a table and image


def _plan(
    schema: dict[str, Any], image: str
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[_ColumnReader, str]]]:
    """(the image's columns' schemas by name, a reader and a path for each column).

    Worked out once per schema (a parsed schema is shared, split_schema), not per
    record: the schema's checks, its type name's lookups and each column's path."""
    key = (id(schema), image)
    planned = _plans.get(key)
    if planned is not None and planned[0] is schema:
        return planned[1], planned[2]
    columns = _columns(schema, image)
    readers = {name: (_reader(column), f"/{_token(name)}") for name, column in columns.items()}
    if len(_plans) >= _PLANS_KEPT:
        _plans.clear()
    _plans[key] = (schema, columns, readers)  # holds the schema: its id stays its own
    return columns, readers


def _columns(schema: dict[str, Any], image: str) -> dict[str, dict[str, Any]]:
    fields = schema.get("fields")
    if type(fields) is not list:
        raise RowDecodeError("schema: no fields list")
    for field in fields:
        if type(field) is dict and field.get("field") == image:
            columns = field.get("fields")
            if field.get("type") != "struct" or type(columns) is not list:
                raise RowDecodeError(f"schema of {image}: not a struct with fields")
            out: dict[str, dict[str, Any]] = {}
            for column in columns:
                if type(column) is not dict or type(column.get("field")) is not str:
                    raise RowDecodeError(f"schema of {image}: a field without a name")
                out[column["field"]] = column
            return out
    raise RowDecodeError(f"schema: no field {image!r}")


def _explain_columns(row: dict[str, Any], columns: dict[str, Any], path: str = "") -> None:
    for name in row:
        if name not in columns:
            raise RowDecodeError(f"{path}/{_token(name)}: a column the schema does not name")
    for name in columns:
        if name not in row:
            raise RowDecodeError(f"{path}/{_token(name)}: a column of the schema the row lacks")


# -- values by their schema ---------------------------------------------------------


def _typed(value: Any, schema: Any, path: str, depth: int) -> Any:
    if value is None:
        # Not checked against "optional": a delete's `before` under the default replica
        # identity holds NULL in NOT NULL columns (only the key is there).
        return None
    if type(schema) is not dict:
        raise RowDecodeError(f"{path}: schema is a JSON {_kind(schema)}, not an object")
    name = schema.get("name")
    if type(name) is str:
        named = _NAMED.get(name)
        if named is not None:
            return named(value, schema, path)
    kind = schema.get("type")
    if type(kind) is not str:
        raise RowDecodeError(f"{path}: schema type {_cut(repr(kind), 40)}")
    bits = _INT_BITS.get(kind)
    if bits is not None:
        if type(value) is not int or not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            _mismatch(path, kind, value)
        return value
    if kind == "string":
        if type(value) is not str:
            _mismatch(path, kind, value)
        return value
    if kind == "double" or kind == "float":
        return _float(value, path, kind)
    if kind == "boolean":
        if type(value) is not bool:
            _mismatch(path, kind, value)
        return value
    if kind == "bytes":
        return _base64(value, path)
    if depth >= MAX_DEPTH:
        raise RowDecodeError(f"{path}: schema nested deeper than {MAX_DEPTH} levels")
    if kind == "array":
        if type(value) is not list:
            _mismatch(path, kind, value)
        items = schema.get("items")
        return [_typed(item, items, f"{path}/{i}", depth + 1) for i, item in enumerate(value)]
    if kind == "struct":
        return _struct(value, schema, path, depth)
    if kind == "map":
        if type(value) is not dict:
            _mismatch(path, "map with string keys", value)
        values = schema.get("values")
        return {k: _typed(v, values, f"{path}/{_token(k)}", depth + 1) for k, v in value.items()}
    raise RowDecodeError(f"{path}: unknown schema type {_cut(repr(kind), 40)}")


def _reader(schema: dict[str, Any]) -> _ColumnReader:
    """A top-level column's _typed, its schema looked at once: the same value or error
    for every value."""
    name = schema.get("name")
    named = _NAMED.get(name) if type(name) is str else None
    if named is not None:
        return lambda value, path: None if value is None else named(value, schema, path)
    kind = schema.get("type")
    bits = _INT_BITS.get(kind) if type(kind) is str else None
    if bits is not None:
        low, high, int_kind = -(1 << (bits - 1)), 1 << (bits - 1), str(kind)

        def read_int(value: Any, path: str) -> Any:
            if value is not None and (type(value) is not int or not low <= value < high):
                _mismatch(path, int_kind, value)
            return value

        return read_int
    if kind == "string" or kind == "boolean":
        wanted = str if kind == "string" else bool

        def read_exact(value: Any, path: str) -> Any:
            if value is not None and type(value) is not wanted:
                _mismatch(path, kind, value)
            return value

        return read_exact
    return lambda value, path: _typed(value, schema, path, 0)


def _struct(value: Any, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
    if type(value) is not dict:
        _mismatch(path, "struct", value)
    fields = schema.get("fields")
    if type(fields) is not list:
        raise RowDecodeError(f"{path}: struct schema without fields")
    by_name = {f["field"]: f for f in fields if type(f) is dict and type(f.get("field")) is str}
    if value.keys() != by_name.keys():
        _explain_columns(value, by_name, path)
    return {k: _typed(v, by_name[k], f"{path}/{_token(k)}", depth + 1) for k, v in value.items()}


def _float(value: Any, path: str, kind: str) -> float:
    kind_of = type(value)
    if kind_of is float:
        return value
    if kind_of is int:
        return float(value)  # Jackson writes 3.0; an integer here still means the double
    if kind_of is str and value in _NON_FINITE:  # Jackson quotes NaN and the infinities
        return _NON_FINITE[value]
    _mismatch(path, kind, value)
    raise AssertionError  # unreachable: _mismatch raises


def _base64(value: Any, path: str) -> bytes:
    if type(value) is not str:
        _mismatch(path, "bytes (base64 text)", value)
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise RowDecodeError(f"{path}: not base64 ({exc})") from None


def _unscaled(value: Any, path: str) -> int:
    raw = _base64(value, path)
    if len(raw) > MAX_DECIMAL_BYTES:
        raise RowDecodeError(f"{path}: a numeric of {len(raw)} bytes (at most {MAX_DECIMAL_BYTES})")
    if not raw:
        raise RowDecodeError(f"{path}: a numeric of no bytes")
    return int.from_bytes(raw, "big", signed=True)  # Java's BigInteger.toByteArray


def _scaled(unscaled: int, scale: Any, path: str) -> Decimal:
    if type(scale) is not int or not -MAX_SCALE <= scale <= MAX_SCALE:
        raise RowDecodeError(f"{path}: numeric scale {_cut(repr(scale), 40)}")
    # Exact, whatever the digits: no decimal context rounds a tuple.
    sign, digits, _ = Decimal(unscaled).as_tuple()
    return Decimal((sign, digits, -scale))


def scale_of(schema: dict[str, Any]) -> Any:
    """A fixed-scale Decimal schema's scale (an int), or what its parameters hold."""
    parameters = schema.get("parameters")
    text = parameters.get("scale") if type(parameters) is dict else None
    if isinstance(text, str):
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 7:
            return int(text)
    return text


def _decimal(value: Any, schema: dict[str, Any], path: str) -> Decimal:
    # The JSON converter's decimal.format=NUMERIC (a JSON number) is not read: Python's
    # JSON would read it through a double. BASE64, the default, is exact.
    return _scaled(_unscaled(value, path), scale_of(schema), path)


def _variable_decimal(value: Any, schema: dict[str, Any], path: str) -> Decimal:
    if type(value) is not dict or value.keys() != {"scale", "value"}:
        _mismatch(path, "variable-scale numeric {scale, value}", value)
    return _scaled(_unscaled(value["value"], f"{path}/value"), value["scale"], path)


def _int(value: Any, path: str, what: str) -> int:
    if type(value) is not int:
        _mismatch(path, what, value)
    return value


def _since_epoch(per_second: int) -> Callable[[Any, dict[str, Any], str], datetime]:
    def read(value: Any, schema: dict[str, Any], path: str) -> datetime:
        units = _int(value, path, "timestamp (an integer)")
        try:
            return _EPOCH + timedelta(microseconds=units * 1_000_000 // per_second)
        except OverflowError:
            raise RowDecodeError(f"{path}: timestamp {units} out of Python's range") from None

    return read


def _since_midnight(per_second: int) -> Callable[[Any, dict[str, Any], str], time]:
    def read(value: Any, schema: dict[str, Any], path: str) -> time:
        units = _int(value, path, "time (an integer)")
        micros = units * 1_000_000 // per_second
        if not 0 <= micros < 86_400_000_000:  # 24:00:00 too: Python's time has none
            raise RowDecodeError(f"{path}: time {units} is not within one day")
        seconds, micro = divmod(micros, 1_000_000)
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)

    return read


def _date(value: Any, schema: dict[str, Any], path: str) -> date:
    days = _int(value, path, "date (days since 1970-01-01)")
    try:
        return _EPOCH_DATE + timedelta(days=days)
    except OverflowError:
        raise RowDecodeError(f"{path}: date {days} out of Python's range") from None


def _zoned_timestamp(value: Any, schema: dict[str, Any], path: str) -> datetime:
    parsed = _zoned(value, path, datetime.fromisoformat, "timestamp")
    return parsed.astimezone(UTC) if parsed.utcoffset() else parsed.replace(tzinfo=UTC)


def _zoned_time(value: Any, schema: dict[str, Any], path: str) -> time:
    return _zoned(value, path, time.fromisoformat, "time")


def _zoned(value: Any, path: str, parse: Callable[[str], _Zoned], what: str) -> _Zoned:
    """An ISO 8601 `what` with its zone (Debezium's ZonedTimestamp and ZonedTime)."""
    if type(value) is not str:
        _mismatch(path, f"ISO 8601 {what} with zone", value)
    try:
        parsed = parse(value)
    except ValueError:
        raise RowDecodeError(f"{path}: {_cut(repr(value), 60)} is no ISO 8601 {what}") from None
    if parsed.tzinfo is None:
        raise RowDecodeError(f"{path}: {_cut(repr(value), 60)} has no zone")
    return parsed


def _duration(value: Any, schema: dict[str, Any], path: str) -> timedelta:
    micros = _int(value, path, "interval (microseconds)")
    try:
        return timedelta(microseconds=micros)
    except OverflowError:
        raise RowDecodeError(f"{path}: interval {micros} out of Python's range") from None


def _json(value: Any, schema: dict[str, Any], path: str) -> Any:
    if type(value) is not str:
        _mismatch(path, "JSON text", value)
    try:
        return json.loads(value)  # as psycopg reads json and jsonb
    except ValueError as exc:
        raise RowDecodeError(f"{path}: not JSON ({_cut(str(exc), 120)})") from None


def _uuid(value: Any, schema: dict[str, Any], path: str) -> uuid.UUID:
    if type(value) is not str:
        _mismatch(path, "UUID text", value)
    try:
        return uuid.UUID(value)  # psycopg reads uuid as uuid.UUID
    except ValueError:
        raise RowDecodeError(f"{path}: {_cut(repr(value), 60)} is no UUID") from None


_Reader = Callable[[Any, dict[str, Any], str], Any]
_NAMED: dict[str, _Reader] = {
    DECIMAL: _decimal,
    VARIABLE_DECIMAL: _variable_decimal,
    "io.debezium.time.Timestamp": _since_epoch(1_000),
    "io.debezium.time.MicroTimestamp": _since_epoch(1_000_000),
    "io.debezium.time.NanoTimestamp": _since_epoch(1_000_000_000),
    "org.apache.kafka.connect.data.Timestamp": _since_epoch(1_000),
    "io.debezium.time.ZonedTimestamp": _zoned_timestamp,
    "io.debezium.time.Date": _date,
    "org.apache.kafka.connect.data.Date": _date,
    "io.debezium.time.Time": _since_midnight(1_000),
    "io.debezium.time.MicroTime": _since_midnight(1_000_000),
    "io.debezium.time.NanoTime": _since_midnight(1_000_000_000),
    "org.apache.kafka.connect.data.Time": _since_midnight(1_000),
    "io.debezium.time.ZonedTime": _zoned_time,
    "io.debezium.time.MicroDuration": _duration,
    "io.debezium.data.Json": _json,
    "io.debezium.data.Uuid": _uuid,
}


# -- values without a schema --------------------------------------------------------


def _plain(value: Any, path: str, depth: int) -> Any:
    """A value as JSON gives it, but for a variable-scale numeric's {scale, value} (no
    other column type comes as a JSON object of just those two keys)."""
    kind = type(value)
    if kind is dict:
        if value.keys() == {"scale", "value"} and type(value["scale"]) is int:
            return _scaled(_unscaled(value["value"], f"{path}/value"), value["scale"], path)
        return value
    if kind is list and depth < MAX_DEPTH:
        return [_plain(item, f"{path}/{i}", depth + 1) for i, item in enumerate(value)]
    return value


# -- messages -----------------------------------------------------------------------


def _mismatch(path: str, wanted: str, value: Any) -> None:
    raise RowDecodeError(f"{path}: a JSON {_kind(value)} where the schema says {wanted}")


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", float: "number",
             int: "number"}  # fmt: skip
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _token(name: str) -> str:
    """A column name as a JSON-pointer token (cut: it names the place in messages)."""
    if len(name) <= 80 and "/" not in name and "~" not in name:
        return name
    return _cut(name.replace("~", "~0").replace("/", "~1"), 80)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
