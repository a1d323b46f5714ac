"""How many bytes the verifier keeps of one event (docs/guarantees.md, "Bounds").

A record carries the decoded values of its differences, and a value can be as large as
the payload it came from: a 90 MB body, or a map of a million keys. JSON makes text
larger still (a control character takes six bytes), so every bound here is on the
**encoded** size: the compact JSON text, UTF-8, that a record line holds.

One rule, applied where the core builds what it hands on (records, alerts): a value
whose JSON exceeds its bound is replaced by a marker that keeps what identifies it,

    {"$cut": {"type": "string", "bytes": <size of its JSON>, "sha256": "<hex of that JSON>",
              "head": "<its first characters>"}}

a text that must stay a string (a path, an error, an entity_id) ends, cut, in
`…[cut: <bytes> bytes, sha256:<hex>]`, and a record lists the differences that fit its
bound, saying how many more there are. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cdc_verify.core.diff import Difference
from cdc_verify.core.jsonvalue import to_json_value

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Bounds:
    """Bytes of compact JSON (UTF-8) that each part of a record may take."""

    value: int  # one side of one difference
    head: int  # the head a cut value keeps (its JSON as a string)
    path: int  # a difference's path
    text: int  # the record's error
    record: int  # the whole record line


# What every record holds to (docs/guarantees.md lists them).
RECORD_BOUNDS = Bounds(value=64 * KiB, head=1 * KiB, path=1 * KiB, text=8 * KiB, record=1 * MiB)
# A late pair's record inside its alert: alerts are listed a thousand to an API page.
LATE_BOUNDS = Bounds(value=2 * KiB, head=256, path=1 * KiB, text=2 * KiB, record=12 * KiB)
# The least a record is reduced to when the state server refused it whole.
MINIMAL_BOUNDS = Bounds(value=256, head=64, path=256, text=1 * KiB, record=16 * KiB)
ENTITY_ID_MAX_BYTES = 1 * KiB  # an alert's copy of the entity_id
# An alert: its own fields (event_id <= 256 bytes, entity_id and times) and, resolved,
# the late pair's record; Lua's cjson, which merges the two, writes "/" as "\/".
ALERT_MAX_BYTES = 32 * KiB

CUT = "$cut"
_STR_CHUNK = 64 * KiB  # characters a string is encoded by at a time
_encode_str = json.encoder.encode_basestring  # C; as json.dumps(ensure_ascii=False) writes
_LITERALS = {True: "true", False: "false", None: "null"}
_TYPES: dict[type, str] = {str: "string", list: "array", dict: "object"}


def utf8(text: str) -> bytes:
    """Text as a record line is written: UTF-8, a lone surrogate as its JSON escape."""
    return text.encode("utf-8", "backslashreplace")


def json_pieces(value: Any) -> Iterator[str]:
    """The compact JSON text of a JSON value (to_json_value's output), a piece at a time:
    a long string in pieces of 64 Ki characters, so no piece holds a large value whole."""
    kind = type(value)
    if kind is str:
        if len(value) <= _STR_CHUNK:
            yield _encode_str(value)
            return
        yield '"'
        for start in range(0, len(value), _STR_CHUNK):
            yield _encode_str(value[start : start + _STR_CHUNK])[1:-1]
        yield '"'
    elif kind is dict:
        separator = "{"
        for key, item in value.items():
            yield separator + _encode_str(key) + ":"
            yield from json_pieces(item)
            separator = ","
        yield "}" if separator == "," else "{}"
    elif kind is list:
        separator = "["
        for item in value:
            yield separator
            yield from json_pieces(item)
            separator = ","
        yield "]" if separator == "," else "[]"
    elif value is None or kind is bool:
        yield _LITERALS[value]
    else:  # int or finite float: repr is what json writes
        yield repr(value)


def json_size(value: Any, limit: int | None = None) -> int:
    """Bytes of the JSON value's compact JSON; stops counting once past `limit`."""
    size = 0
    for piece in json_pieces(value):
        size += len(utf8(piece))
        if limit is not None and size > limit:
            break
    return size


def _fits(value: Any, limit: int) -> bool:
    kind = type(value)
    if kind is str:
        # A character takes at most six bytes of JSON (\u001f, or a lone surrogate).
        return len(value) * 6 + 2 <= limit or json_size(value, limit) <= limit
    if kind is int or kind is float or kind is bool or value is None:
        return True  # to_json_value keeps ints below 1,024 bits: at most 310 digits
    return json_size(value, limit) <= limit


def _head(text: str, limit: int) -> str:
    """The longest start of `text` whose JSON string takes at most `limit` bytes."""
    low, high = 0, min(len(text), limit)
    while low < high:  # the JSON size grows with the length: bisect it
        middle = (low + high + 1) // 2
        if len(utf8(_encode_str(text[:middle]))) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _digest(value: Any) -> tuple[int, str, str]:
    """(bytes, sha256 hex, the start of the text) of a JSON value's compact JSON."""
    digest, size, start = hashlib.sha256(), 0, []
    started = 0
    for piece in json_pieces(value):
        data = utf8(piece)
        digest.update(data)
        size += len(data)
        if started < _STR_CHUNK:
            start.append(piece)
            started += len(piece)
    return size, digest.hexdigest(), "".join(start)


def is_cut(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get(CUT)) is dict


def cut_value(value: Any, limit: int, head: int) -> Any:
    """`value` itself if its JSON takes at most `limit` bytes, else its marker (a JSON
    value: `{"$cut": {"type", "bytes", "sha256", "head"}}`). A marker cut again keeps its
    size and hash, with a shorter head."""
    if is_cut(value):
        facts = value[CUT]
        if json_size(value, limit) <= limit:
            return value
        return {CUT: {**facts, "head": _head(str(facts.get("head", "")), head)}}
    if type(value) in (int, bool, float) or value is None:
        return value  # the common case costs nothing more
    converted = to_json_value(value)
    if _fits(converted, limit):
        return value
    size, sha256, start = _digest(converted)
    kind = _TYPES[type(converted)]  # only strings, arrays and objects grow this large
    text = converted if kind == "string" else start
    return {CUT: {"type": kind, "bytes": size, "sha256": sha256, "head": _head(text, head)}}


def cut_text(text: str, limit: int) -> str:
    """`text` itself if its JSON string takes at most `limit` bytes (limit >= 200), else
    its start and `…[cut: <bytes> bytes, sha256:<hex>]` within the limit."""
    if len(text) * 6 + 2 <= limit or json_size(text, limit) <= limit:
        return text
    size, sha256, _ = _digest(text)
    tail = f"…[cut: {size} bytes, sha256:{sha256}]"
    return _head(text, limit - len(utf8(_encode_str(tail))) + 2) + tail


def bound_differences(
    differences: Sequence[Difference], bounds: Bounds, budget: int
) -> tuple[list[Difference], int]:
    """The differences with their values and paths cut to `bounds`, as many of them, in
    order, as `budget` bytes of JSON hold (the first one always); and how many more
    there were."""
    kept: list[Difference] = []
    used = 0
    for difference in differences:
        bounded = replace(
            difference,
            path=cut_text(difference.path, bounds.path),
            production=cut_value(difference.production, bounds.value, bounds.head),
            sister=cut_value(difference.sister, bounds.value, bounds.head),
        )
        size = json_size(difference_json(bounded)) + 1  # and its comma
        if kept and used + size > budget:
            break
        kept.append(bounded)
        used += size
    return kept, len(differences) - len(kept)


def difference_json(difference: Difference) -> dict[str, Any]:
    """A difference as its record writes it: values as JSON values."""
    out = difference.as_json()
    out["production"] = to_json_value(out["production"])
    out["sister"] = to_json_value(out["sister"])
    return out
