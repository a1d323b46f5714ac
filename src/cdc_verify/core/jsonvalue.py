"""Any value a consumer may return, as strict JSON (docs/verdicts.md, "Values JSON cannot hold").

Records carry decoded values (the two sides of a difference), and a user's consumer
may return anything: bytes, maps with bytes or tuple keys, sets, NaN, cycles, values
nested a thousand levels deep. A record line must still be strict JSON that any
parser reads, so such values become tagged objects:

  NaN, Infinity, -Infinity    {"$float": "NaN"}, {"$float": "Infinity"}, ...
  bytes, bytearray            {"$bytes": "<hex>"}
  a map with a non-str key    {"$map": [[key, value], ...]}
  tuple                       a JSON array
  set, frozenset              {"$set": [...]}, items sorted by their JSON text
  a container inside itself   {"$cycle": "<JSON pointer of the ancestor>"}
  deeper than MAX_DEPTH       {"$deep": "nested deeper than 64 levels"}
  an int of >= 1024 bits      {"$int": "<hex>"}
  Decimal                     {"$decimal": "1234.50"} (its exact text: str())
  datetime, date, time        {"$datetime": "2024-02-29T10:34:56.789012+00:00"}, {"$date": ...},
                              {"$time": ...} (isoformat(): an aware one ends in its offset)
  timedelta                   {"$timedelta": "<days>d<seconds>s<microseconds>us"}
  UUID                        {"$uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
  anything else               {"$repr": "<repr, cut to 200 chars>"}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from cdc_verify.core.diff import escape_token

MAX_DEPTH = 64
MAX_REPR = 200
_BIG_INT_BITS = 1024
_PLAIN = (str, bool, type(None))
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def to_json_value(value: Any) -> Any:
    """`value` as plain JSON types only (dict with str keys, list, str, int, float, bool, None)."""
    return _convert(value, "", 0, {})


def dumps(value: Any) -> str:
    """Compact strict JSON of any value (never raises, never writes NaN)."""
    return json.dumps(
        to_json_value(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def _convert(value: Any, path: str, depth: int, ancestors: dict[int, str]) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        return value if value.bit_length() < _BIG_INT_BITS else {"$int": hex(value)}
    if kind is float:
        return value if math.isfinite(value) else {"$float": _NON_FINITE[repr(value)]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": bytes(value).hex()}
    tagged = _TAGGED.get(kind)
    if tagged is not None:
        return tagged(value)
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        return _scalar_subclass(value)
    if depth >= MAX_DEPTH:
        return {"$deep": f"nested deeper than {MAX_DEPTH} levels"}
    if id(value) in ancestors:
        return {"$cycle": ancestors[id(value)]}
    ancestors[id(value)] = path
    try:
        return _container(value, path, depth + 1, ancestors)
    finally:
        del ancestors[id(value)]


# The row consumer's values (consumers/row.py): a tag each, so that a Decimal and the
# string of its digits, or a date and its ISO text, read apart in a type difference.
_TAGGED: dict[type, Callable[[Any], dict[str, str]]] = {
    Decimal: lambda d: {"$decimal": str(d)},
    datetime: lambda d: {"$datetime": d.isoformat()},
    date: lambda d: {"$date": d.isoformat()},
    time: lambda t: {"$time": t.isoformat()},
    timedelta: lambda t: {"$timedelta": f"{t.days}d{t.seconds}s{t.microseconds}us"},
    UUID: lambda u: {"$uuid": str(u)},
}


def _container(value: Any, path: str, depth: int, ancestors: dict[int, str]) -> Any:
    if isinstance(value, Mapping):
        items = list(value.items())
        if all(type(k) is str for k, _ in items):
            return {k: _convert(v, f"{path}/{escape_token(k)}", depth, ancestors) for k, v in items}
        return {
            "$map": [
                [_convert(k, f"{path}/{i}/0", depth, ancestors),
                 _convert(v, f"{path}/{i}/1", depth, ancestors)]
                for i, (k, v) in enumerate(items)
            ]
        }  # fmt: skip
    if isinstance(value, set | frozenset):
        converted = [_convert(v, f"{path}/{i}", depth, ancestors) for i, v in enumerate(value)]
        return {"$set": sorted(converted, key=_sort_key)}
    return [_convert(v, f"{path}/{i}", depth, ancestors) for i, v in enumerate(value)]


def _scalar_subclass(value: Any) -> Any:
    # Subclasses of str/int/float (enums, numpy-like scalars) keep their plain value.
    for base in (str, bool, int, float):
        if isinstance(value, base):
            try:
                return _convert(base(value), "", 0, {})
            except Exception:  # a hostile __str__/__int__: fall through to repr
                break
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{type(value).__name__}: repr() raised {type(exc).__name__}>"
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 1] + "…"
    return {"$repr": text}


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, allow_nan=False)
