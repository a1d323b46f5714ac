"""Wire types of a msgpack payload or a Debezium record, by JSON pointer.

Decoding hides some distinctions a consumer in another language may care about:
a msgpack float32 and float64 of equal value both become a Python float; a Postgres
numeric(12,2) and a numeric(12,1) of equal value both become a Decimal, a timestamp and
a timestamp(3) both a datetime. The verifier walks the raw payloads of both sides to
name the wire types of a difference, and to find such differences where the decoded
values are equal.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Collection, Mapping
from typing import Any

import msgpack

from cdc_verify.consumers.row import (
    DECIMAL,
    VARIABLE_DECIMAL,
    RowDecodeError,
    open_record,
    row_image,
    scale_of,
)
from cdc_verify.core.diff import TYPE, Difference, escape_token, unescape_token
from cdc_verify.native import NATIVE

FLOAT32_MARKER = 0xCA
DEBEZIUM = b"debezium"


class WireError(ValueError):
    pass


_ABSENT = object()


def with_wire_types(
    differences: list[Difference],
    production: Mapping[bytes, bytes],
    sister: Mapping[bytes, bytes],
    decoded: tuple[Any, Any],
    is_ignored: Callable[[str], bool],
) -> list[Difference]:
    """Name the msgpack wire types of type differences, and add the float32/float64
    differences that decoding hides (equal values, different wire types).

    Only msgpack payloads on both sides are walked, and only when there is a type
    difference or a float32 marker byte: most pairs pay nothing. Debezium records on
    both sides (the `debezium` envelope's encoding) go to `with_row_wire_types`.
    """
    p_encoding, s_encoding = production.get(b"encoding"), sister.get(b"encoding")
    if p_encoding == DEBEZIUM and s_encoding == DEBEZIUM:
        return with_row_wire_types(differences, production, sister, decoded, is_ignored)
    if p_encoding != b"msgpack" or s_encoding != b"msgpack":
        return differences
    p_payload, s_payload = production.get(b"payload", b""), sister.get(b"payload", b"")
    has_float32 = may_hold_float32(p_payload) or may_hold_float32(s_payload)
    if not has_float32 and all(d.kind is not TYPE for d in differences):
        return differences
    try:
        p_wire, s_wire = msgpack_wire_types(p_payload), msgpack_wire_types(s_payload)
    except WireError:
        return differences
    return _named(differences, p_wire, s_wire, decoded, is_ignored, _FLOATS.__eq__)


_FLOATS = {"float32", "float64"}
_FLOAT32 = struct.Struct("<f")


def may_hold_float32(payload: bytes) -> bool:
    """False only when the msgpack payload holds no float32 value: it has no marker byte
    (0xCA, mostly a byte of some other value), or no float it holds is one a float32
    gives back exactly (float32 -> float64 is exact). A payload with the marker is
    scanned by the native module when it is there (its `may_hold_float32` walks the bytes
    without building the value, and leaves what it is unsure of to the pure function)."""
    if FLOAT32_MARKER not in payload:
        return False
    if NATIVE is not None and type(payload) is bytes:
        answer: bool | None = NATIVE.may_hold_float32(payload)
        if answer is not None:
            return answer
    return pure_may_hold_float32(payload)


def pure_may_hold_float32(payload: bytes) -> bool:
    """`may_hold_float32` in Python, and the reference of the native scan: C-level
    unpacking and a look at the floats cost a fraction of `msgpack_wire_types`' walk;
    anything unusual says True."""
    if FLOAT32_MARKER not in payload:
        return False
    try:
        # Maps as lists of pairs: a repeated key's earlier value is looked at too.
        value = msgpack.unpackb(payload, raw=True, strict_map_key=False, object_pairs_hook=list)
    except Exception:  # not msgpack (or an ext it cannot build): the walk decides
        return True
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is float:
            if item != item:
                return True  # NaN: a float32 NaN is a float64 NaN
            try:
                if _FLOAT32.unpack(_FLOAT32.pack(item))[0] == item:
                    return True
            except OverflowError:  # beyond float32's range: a float64
                continue
        elif kind is list or kind is tuple:  # an array, a map's pairs, or one pair
            extend(item)
    return False


def _named(
    differences: list[Difference],
    p_wire: dict[str, str],
    s_wire: dict[str, str],
    decoded: tuple[Any, Any],
    is_ignored: Callable[[str], bool],
    hides: Callable[[set[str]], bool],
) -> list[Difference]:
    """The differences with their wire types named (on a type difference, or where the
    wires differ), and a type difference at each path whose wire types `hides` says
    decoding made equal."""
    out = [
        Difference(d.path, d.kind, d.production, d.sister, p_wire.get(d.path), s_wire.get(d.path))
        if d.kind is TYPE or _differ(p_wire.get(d.path), s_wire.get(d.path))
        else d
        for d in differences
    ]
    reported = {d.path for d in differences}
    for path, p_type in p_wire.items():
        s_type = s_wire.get(path)
        if s_type is None or p_type == s_type or not hides({p_type, s_type}):
            continue
        if path in reported or is_ignored(path):
            continue
        p_value, s_value = resolve(decoded[0], path), resolve(decoded[1], path)
        if p_value is _ABSENT or s_value is _ABSENT:
            continue  # not part of what the consumer returns
        out.append(Difference(path, TYPE, p_value, s_value, p_type, s_type))
    return out


def with_row_wire_types(
    differences: list[Difference],
    production: Mapping[bytes, bytes],
    sister: Mapping[bytes, bytes],
    decoded: tuple[Any, Any],
    is_ignored: Callable[[str], bool],
) -> list[Difference]:
    """Name the Debezium wire types of differences, and add a type difference for each
    column whose wire types differ though the decoded values are equal (a numeric of
    another scale, a timestamp(3) against a timestamp, an int32 against an int64).

    Every pair is walked, but only the row's columns, and below them only the paths
    that lead to a difference: a wire type inside an array or a jsonb value is named on
    its difference, not looked for where the values are equal (int against float, what
    jsonb can differ in there, is a type difference of the values already).
    """
    below: set[str] = set()
    for difference in differences:
        path = difference.path
        while path:
            path = path.rpartition("/")[0]
            if path in below:
                break
            below.add(path)
    try:
        p_wire = row_wire_types(production.get(b"payload", b""), below)
        s_wire = row_wire_types(sister.get(b"payload", b""), below)
    except WireError:
        return differences
    return _named(differences, p_wire, s_wire, decoded, is_ignored, _same_knowledge)


def _same_knowledge(types: set[str]) -> bool:
    """Both wire types say what a schema says, or both only what JSON says: a side
    without schemas tells nothing of a column's type, so it makes no finding of it."""
    return len({t.startswith("json ") for t in types}) == 1


def row_wire_types(payload: bytes, below: Collection[str] = ()) -> dict[str, str]:
    """JSON pointer of the decoded row (consumers/row.py) -> Debezium wire type, for
    each column and, under the paths in `below`, for what is inside them.

    With a schema: `decimal(scale=S)`, `variable decimal(scale=S)`, the last part of a
    Debezium or Connect type name (`MicroTimestamp`, `Timestamp`, `Date`, `MicroTime`,
    `Json`, `Uuid`...; `ZonedTimestamp(digits=N)` says its fraction digits), else the
    Connect type (`int16`, `int32`, `int64`, `float`, `double`, `boolean`, `string`,
    `bytes`, `array`, `struct`, `map`); a NULL is `null`. What only JSON says (no schema,
    and inside a Json value): `json int`, `json float`, `json string`, `json bool`,
    `json null`, `json array`, `json object`.
    """
    out: dict[str, str] = {}
    try:
        envelope, schema = open_record(payload)
        row, columns = row_image(envelope, schema)
        plan = _column_wires(columns) if columns is not None else {}
        for name, value in row.items():
            planned = plan.get(name)
            if planned is not None:
                path, fixed = planned
                if value is None:
                    out[path] = "null"
                    continue
                if fixed is not None and path not in below:
                    out[path] = fixed
                    continue
            path = "/" + escape_token(name)
            column = columns.get(name) if columns is not None else None
            _row_wire(value, column if type(column) is dict else None, path, below, out)
    except RowDecodeError as exc:
        raise WireError(str(exc)) from None
    except RecursionError:  # a jsonb value nested past the stack
        raise WireError("payload nested too deep to read") from None
    return out


_plans: dict[int, tuple[Mapping[str, Any], dict[str, tuple[str, str | None]]]] = {}
_PLANS_KEPT = 64  # as the row consumer's plans: one a table and image


def _column_wires(columns: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Column -> (its path, the wire type _row_wire names for any value but NULL, or None
    where it depends on the value), for the columns with a schema. Worked out once per
    columns object: row_image shares one per schema and image."""
    planned = _plans.get(id(columns))
    if planned is not None and planned[0] is columns:
        return planned[1]
    plan: dict[str, tuple[str, str | None]] = {}
    for name, column in columns.items():
        if type(column) is not dict:
            continue
        kind, named = column.get("type"), column.get("name")
        fixed: str | None
        if named == VARIABLE_DECIMAL or named == "io.debezium.time.ZonedTimestamp":
            fixed = None  # the value's scale, the value's digits
        elif named == DECIMAL:
            fixed = f"decimal(scale={scale_of(column)})"
        elif type(named) is str and named.startswith(("io.debezium.", "org.apache.kafka.connect.")):
            fixed = named.rpartition(".")[2]
        else:
            fixed = str(kind)
        plan[name] = ("/" + escape_token(name), fixed)
    if len(_plans) >= _PLANS_KEPT:
        _plans.clear()
    _plans[id(columns)] = (columns, plan)  # holds the columns: their id stays their own
    return plan


def _row_wire(
    value: Any, schema: dict[str, Any] | None, path: str, below: Collection[str], out: dict
) -> None:
    if schema is None:
        _json_wire(value, path, below, out, plain=True)
        return
    if value is None:
        out[path] = "null"
        return
    name = schema.get("name")
    kind = schema.get("type")
    if name == DECIMAL:
        out[path] = f"decimal(scale={scale_of(schema)})"
    elif name == VARIABLE_DECIMAL:
        out[path] = f"variable decimal(scale={_scale(value)})"
    elif name == "io.debezium.time.ZonedTimestamp" and type(value) is str:
        digits = len(value.partition(".")[2].rstrip("Z").partition("+")[0].partition("-")[0])
        out[path] = f"ZonedTimestamp(digits={digits})"
    elif type(name) is str and name.startswith(("io.debezium.", "org.apache.kafka.connect.")):
        out[path] = name.rpartition(".")[2]
        if name == "io.debezium.data.Json" and path in below and type(value) is str:
            try:
                document = json.loads(value)
            except ValueError:
                return
            _json_wire(document, path, below, out, plain=False, top=False)
    else:
        out[path] = str(kind)
        if path not in below:
            return
        if kind == "array" and type(value) is list:
            items = schema.get("items")
            for i, item in enumerate(value):
                _row_wire(item, items if type(items) is dict else None, f"{path}/{i}", below, out)
        elif kind == "struct" and type(value) is dict and type(schema.get("fields")) is list:
            fields = {f.get("field"): f for f in schema["fields"] if type(f) is dict}
            for key, item in value.items():
                field = fields.get(key)
                sub = f"{path}/{escape_token(key)}"
                _row_wire(item, field if type(field) is dict else None, sub, below, out)


def _json_wire(
    value: Any, path: str, below: Collection[str], out: dict, plain: bool, top: bool = True
) -> None:
    """What JSON says of a value: its kind; in a record without schemas, a variable-scale
    numeric's {scale, value} object (the row consumer reads it as a Decimal)."""
    kind = type(value)
    if plain and kind is dict and value.keys() == {"scale", "value"}:
        out[path] = f"variable decimal(scale={_scale(value)})"
        return
    if top:
        out[path] = _JSON_KINDS.get(kind) or f"json {kind.__name__}"
    if path not in below:
        return
    if kind is list:
        for i, item in enumerate(value):
            _json_wire(item, f"{path}/{i}", below, out, plain)
    elif kind is dict:  # the row consumer reads no {scale, value} inside an object
        for key, item in value.items():
            _json_wire(item, f"{path}/{escape_token(key)}", below, out, plain=False)


_JSON_KINDS = {
    int: "json int", float: "json float", str: "json string", bool: "json bool",
    type(None): "json null", list: "json array", dict: "json object",
}  # fmt: skip


def _scale(value: Any) -> str:
    scale = value.get("scale") if type(value) is dict else None
    return str(scale) if type(scale) is int else "?"


def _differ(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


def resolve(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or _ABSENT."""
    value = document
    for token in pointer.split("/")[1:]:
        key = unescape_token(token)
        if isinstance(value, Mapping):
            value = value.get(key, _ABSENT)
        elif isinstance(value, list) and key.isascii() and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def msgpack_wire_types(payload: bytes) -> dict[str, str]:
    """JSON pointer -> wire type ("int", "float32", "float64", "str", "bin", "nil",
    "bool", "array", "map", "ext<code>") of every value in the payload.

    By the native module when it is there (its `msgpack_wire_types` mirrors the pure
    walk and answers None for a payload the pure one refuses, which then says why)."""
    if NATIVE is not None and type(payload) is bytes:
        found: dict[str, str] | None = NATIVE.msgpack_wire_types(payload)
        if found is not None:
            return found
    return pure_msgpack_wire_types(payload)


def pure_msgpack_wire_types(payload: bytes) -> dict[str, str]:
    """`msgpack_wire_types` in Python, the reference of the native walk; raises
    WireError for a payload that is no msgpack value."""
    out: dict[str, str] = {}
    try:
        end = _walk(memoryview(payload), out)
    except struct.error:  # a length or an ext code cut off at the end of the payload
        raise WireError("truncated") from None
    if end != len(payload):
        raise WireError(f"{len(payload) - end} bytes after the value")
    return out


def _walk(buf: memoryview, out: dict[str, str]) -> int:
    """Records every value's wire type; returns the position after the top value.

    Iterative: msgpack nests up to 1024 levels, deeper than Python's stack allows.
    Each open container on `stack` is [path, items left, is map, next array index].
    """
    pos = 0
    stack: list[list] = []
    path = ""
    while True:
        kind, pos, length = _header(buf, pos)
        out[path] = kind
        if kind == "map" or kind == "array":
            if length:
                stack.append([path, length, kind == "map", 0])
        else:
            pos += length
        # Find the next value to read: the next item of the innermost open container.
        while stack and stack[-1][1] == 0:
            stack.pop()
        if not stack:
            return pos
        top = stack[-1]
        top[1] -= 1
        if top[2]:
            key_kind, pos, key_len = _header(buf, pos)
            if key_kind != "str":
                raise WireError(f"{top[0] or '/'}: {key_kind} map key")
            key = bytes(buf[pos : pos + key_len]).decode("utf-8", "replace")
            pos += key_len
            path = f"{top[0]}/{escape_token(key)}"
        else:
            path = f"{top[0]}/{top[3]}"
            top[3] += 1


def _header(buf: memoryview, pos: int) -> tuple[str, int, int]:
    """(wire type, position after the header, payload bytes or item count)."""
    if pos >= len(buf):
        raise WireError("truncated")
    b = buf[pos]
    pos += 1
    if b <= 0x7F or b >= 0xE0:
        return "int", pos, 0
    if 0x80 <= b <= 0x8F:
        return "map", pos, b & 0x0F
    if 0x90 <= b <= 0x9F:
        return "array", pos, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return "str", pos, b & 0x1F
    if b == 0xC0:
        return "nil", pos, 0
    if b in (0xC2, 0xC3):
        return "bool", pos, 0
    if b == FLOAT32_MARKER:
        return "float32", pos, 4
    if b == 0xCB:
        return "float64", pos, 8
    if 0xCC <= b <= 0xD3:
        return "int", pos, 1 << ((b - 0xCC) & 3)
    size = _SIZED.get(b)
    if size is not None:
        kind, width = size
        (length,) = struct.unpack_from(_WIDTH[width], buf, pos)
        pos += width
        if kind == "ext":
            code = struct.unpack_from("b", buf, pos)[0]
            return f"ext{code}", pos + 1, length
        return kind, pos, length
    if 0xD4 <= b <= 0xD8:  # fixext 1, 2, 4, 8, 16
        code = struct.unpack_from("b", buf, pos)[0]
        return f"ext{code}", pos + 1, 1 << (b - 0xD4)
    raise WireError(f"byte 0x{b:02x} is no msgpack type")


_WIDTH = {1: ">B", 2: ">H", 4: ">I"}
_SIZED = {
    0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4),
    0xC7: ("ext", 1), 0xC8: ("ext", 2), 0xC9: ("ext", 4),
    0xD9: ("str", 1), 0xDA: ("str", 2), 0xDB: ("str", 4),
    0xDC: ("array", 2), 0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
}  # fmt: skip
