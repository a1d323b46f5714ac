"""The reference legacy consumer for account CDC events (the second model).

``decode_event`` takes one Redis stream entry with ``entity = account`` and returns the
decoded account, or raises :class:`AccountDecodeError` when the legacy account code
would reject it. docs/wire-format.md ("Accounts") is the format.

The legacy account code builds typed records, so unlike the comment consumer it checks
the type of every documented value. What it rejects (and nothing else):

- a missing ``encoding``/``payload``; an ``encoding`` other than ``msgpack`` (accounts
  were never written as protobuf, so ``protobuf`` is refused by name);
- a payload that is not valid msgpack (incl. trailing bytes, a top-level value that is not
  a map, map keys that are neither str nor bin);
- a missing required key: every documented top-level key; both keys of a trophy;
- a value of the wrong type (a bool is no int, an int is no bool); msgpack bin where str
  is required; a bin map key at the top level or in a trophy;
- nil where a list is required (``trophies``), a trophy that is not a map;
- any msgpack ext type anywhere in the payload (Go's ``time.Time`` arrives as ext -1);
- non-UTF-8 text.

It accepts an int where a float is expected (returned as that int, so the comparison
shows the ``type`` difference) and drops unknown keys, at the top level and in trophies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# The same error base and message helpers as the comment consumer, so both read alike.
from cdc_verify.consumers.reference import (
    LegacyDecodeError,
    show,
    timestamp_path,
    type_name,
    unpack_map,
)

__all__ = ["KNOWN_KEYS", "TROPHY_KEYS", "AccountDecodeError", "decode_event"]


class AccountDecodeError(LegacyDecodeError):
    """The legacy account consumer rejects the event (verdict ``undecodable``)."""


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int: excluded on purpose


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _is_opt_number(value: Any) -> bool:
    return value is None or type(value) is float or type(value) is int


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_list(value: Any) -> bool:
    return type(value) is list


_Check = tuple[Callable[[Any], bool], str]
_STR: _Check = (_is_str, "str")
_OPT_STR: _Check = (_is_opt_str, "nil or str")
_INT: _Check = (_is_int, "an int")
_NUMBER: _Check = (_is_number, "a number")
_OPT_NUMBER: _Check = (_is_opt_number, "nil or a number")
_BOOL: _Check = (_is_bool, "a bool")
_LIST: _Check = (_is_list, "a list")

#: The documented top-level keys of an account and their checks, in the order of
#: docs/wire-format.md.
_SCHEMA: tuple[tuple[str, _Check], ...] = (
    ("id", _STR),
    ("name", _STR),
    ("icon_url", _OPT_STR),
    ("created_utc", _NUMBER),
    ("link_karma", _INT),
    ("comment_karma", _INT),
    ("is_suspended", _BOOL),
    ("suspended_until", _OPT_NUMBER),
    ("email_verified", _BOOL),
    ("has_premium", _BOOL),
    ("trophies", _LIST),
)
_TROPHY_SCHEMA: tuple[tuple[str, _Check], ...] = (
    ("trophy_id", _STR),
    ("granted_utc", _NUMBER),
)
KNOWN_KEYS: tuple[str, ...] = tuple(key for key, _ in _SCHEMA)
TROPHY_KEYS: tuple[str, ...] = tuple(key for key, _ in _TROPHY_SCHEMA)


def decode_event(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Decode one Redis stream entry into the account dict the legacy consumer sees.

    Raises :class:`AccountDecodeError` on exactly the rules in the module docstring.
    """
    try:
        encoding = fields[b"encoding"]
    except KeyError:
        raise AccountDecodeError("missing field 'encoding'") from None
    try:
        payload = fields[b"payload"]
    except KeyError:
        raise AccountDecodeError("missing field 'payload'") from None
    if encoding != b"msgpack":
        if encoding == b"protobuf":
            raise AccountDecodeError(
                "encoding 'protobuf' is not supported for accounts (msgpack only)"
            )
        raise AccountDecodeError(f"unknown encoding {show(encoding)}")
    obj = _unpack(payload)
    account = _record(obj, _SCHEMA, "")
    trophies = account["trophies"]
    account["trophies"] = [
        _record(_trophy(item, index), _TROPHY_SCHEMA, f"trophies/{index}/")
        for index, item in enumerate(trophies)
    ]
    return account


def _trophy(item: Any, index: int) -> dict[Any, Any]:
    if type(item) is not dict:
        raise AccountDecodeError(f"trophies/{index}: {type_name(item)} where a map is required")
    return item


def _record(
    obj: dict[Any, Any], schema: tuple[tuple[str, _Check], ...], prefix: str
) -> dict[str, Any]:
    """The documented keys of ``obj``, each checked; unknown keys dropped."""
    out: dict[str, Any] = {}
    for key, (check, wanted) in schema:
        try:
            value = obj[key]
        except KeyError:
            where = f"{prefix[:-1]}: " if prefix else ""
            raise AccountDecodeError(f"{where}missing required key {key!r}") from None
        if not check(value):
            raise AccountDecodeError(_wrong_type(prefix + key, value, wanted))
        out[key] = value
    if len(obj) != len(schema):  # extra keys: dropped, but a bin key is still refused
        for key in obj:
            if type(key) is not str:
                where = prefix[:-1] or "payload"
                raise AccountDecodeError(f"{where}: map key {show(key)} is msgpack bin, not str")
    return out


def _wrong_type(path: str, value: Any, wanted: str) -> str:
    if value is None and wanted == "a list":
        return f"{path}: nil where a list is required"
    if type(value) is bytes and "str" in wanted:
        return f"{path}: msgpack bin where str is required"
    return f"{path}: {type_name(value)} {show(value)} where {wanted} is required"


def _unpack(payload: Any) -> dict[Any, Any]:
    obj = unpack_map(payload, AccountDecodeError)
    if b"\xff" in bytes(payload):  # 0xff is the type byte of ext -1 and never occurs in UTF-8
        path = timestamp_path(obj)
        if path is not None:
            raise AccountDecodeError(f"payload: msgpack ext type -1 (timestamp) at {path}")
    return obj
