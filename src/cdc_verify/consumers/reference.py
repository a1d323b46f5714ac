"""The reference legacy consumer for comment CDC events.

This is the deserializer downstream systems run (see docs/consumers.md):
``decode_event`` takes one Redis stream entry and returns the decoded comment, or raises
:class:`LegacyDecodeError` when the legacy code would reject the event.

What it rejects (and nothing else):

- an ``encoding`` other than ``msgpack`` / ``protobuf``; a missing ``encoding``/``payload``;
- a payload that is not valid msgpack (incl. trailing bytes, a top-level value that is not
  a map, non-str map keys) or not valid protobuf;
- a missing required key: every documented top-level key; ``e``/``t`` in rich_text items;
  all five keys in media items; ``award_id``/``count`` in awards items;
- nil where a list is required (``awards``);
- msgpack bin where str is required (every documented str field, top-level or nested);
- any msgpack ext type anywhere in the payload (Go's ``time.Time`` arrives as ext -1);
- non-UTF-8 text;
- ``edited`` that is neither ``false`` nor a number.

Everything else passes through untouched (duck typing): an int where a float is expected
is returned as that int, a str score is returned as a str. Unknown top-level keys are
dropped; nested maps are returned with everything they carry.

It runs twice per event at full stream rate, so the hot path avoids allocations beyond
the decoded objects themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import msgpack
from google.protobuf.message import DecodeError as _ProtoDecodeError

from cdc_verify.schemas.comment_pb2 import Comment as _Comment

__all__ = ["KNOWN_KEYS", "LegacyDecodeError", "decode_event"]


class LegacyDecodeError(ValueError):
    """The legacy consumer rejects the event (verdict ``undecodable``)."""


#: The documented top-level keys of a comment, in the order of docs/wire-format.md.
KNOWN_KEYS: tuple[str, ...] = (
    "id",
    "link_id",
    "parent_id",
    "subreddit_id",
    "author_id",
    "body",
    "rich_text",
    "media",
    "score",
    "ups",
    "downs",
    "gilded",
    "awards",
    "approval_state",
    "automod_filtered",
    "stickied",
    "distinguished",
    "edited",
    "created_utc",
)
_KNOWN_SET = frozenset(KNOWN_KEYS)
_N_KNOWN = len(KNOWN_KEYS)

# Documented top-level str fields (distinguished is nil or str).
_STR_KEYS = (
    "id",
    "link_id",
    "parent_id",
    "subreddit_id",
    "author_id",
    "body",
    "approval_state",
    "distinguished",
)
_get_str_fields = itemgetter(*_STR_KEYS)

# Nested list items: documented key sets, and per list
# (required keys in message order, documented keys, documented str keys).
_RICH_TEXT_ET = frozenset(("e", "t"))
_RICH_TEXT_KEYS = frozenset(("e", "t", "u"))
_MEDIA_KEYS = frozenset(("type", "url", "width", "height", "content_type"))
_AWARD_KEYS = frozenset(("award_id", "count"))
_ITEM_SCHEMAS: dict[str, tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]] = {
    "rich_text": (("e", "t"), _RICH_TEXT_KEYS, ("e", "t", "u")),
    "media": (
        ("type", "url", "width", "height", "content_type"),
        _MEDIA_KEYS,
        ("type", "url", "content_type"),
    ),
    "awards": (("award_id", "count"), _AWARD_KEYS, ("award_id",)),
}

# msgpack-python turns ext -1 of length 4, 8 or 12 into msgpack.Timestamp without calling
# ext_hook (other lengths raise). Every such ext has its type byte 0xff right after either
# a fixext4/fixext8 marker (0xd6/0xd7) or the last byte of an ext8/16/32 length (4/8/12).
# Payloads without such a byte pair cannot contain a Timestamp and skip the walk.
_TIMESTAMP_PRECEDERS = frozenset((0xD6, 0xD7, 0x04, 0x08, 0x0C))

_unpackb = msgpack.unpackb
_Timestamp = msgpack.Timestamp
_from_protobuf = _Comment.FromString


def show(value: Any, limit: int = 40) -> str:
    """Short printable rendering of an untrusted value for error messages."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    try:
        text = repr(value)
    except RecursionError:  # msgpack nests 1,024 levels deep, deeper than repr() goes
        text = f"<{type_name(value)} nested too deep to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if type(value) is bytes:
        return "msgpack bin"
    if type(value) is dict:
        return "map"
    if type(value) is list:
        return "list"
    return type(value).__name__


def decode_event(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Decode one Redis stream entry into the comment dict the legacy consumer sees.

    ``fields`` maps bytes field names to bytes values, as redis returns them. Raises
    :class:`LegacyDecodeError` on exactly the rules in the module docstring.
    """
    try:
        encoding = fields[b"encoding"]
    except KeyError:
        raise LegacyDecodeError("missing field 'encoding'") from None
    try:
        payload = fields[b"payload"]
    except KeyError:
        raise LegacyDecodeError("missing field 'payload'") from None
    if encoding == b"msgpack":
        return _decode_msgpack(payload)
    if encoding == b"protobuf":
        return _decode_protobuf(payload)
    raise LegacyDecodeError(f"unknown encoding {show(encoding)}")


# --------------------------------------------------------------------------- msgpack


class _ExtType(Exception):
    pass


def _reject_ext(code: int, data: bytes) -> Any:
    raise _ExtType(code)


def unpack_map(payload: Any, error: type[LegacyDecodeError] = LegacyDecodeError) -> dict[Any, Any]:
    """A msgpack payload that must be a map, unpacked as the legacy consumers unpack it.

    Raises `error` (a LegacyDecodeError) for a payload that is not bytes, not msgpack, not
    UTF-8 in a str, an ext type (other than a well-formed ext -1, which msgpack turns into
    a Timestamp: the caller looks for those) or not a map. Keys are str or, for a bin
    key, bytes.
    """
    if type(payload) is not bytes:
        try:
            payload = bytes(payload)
        except TypeError:
            raise error(f"payload: {type(payload).__name__} where bytes are required") from None
    try:
        # raw=False: str -> str (strict UTF-8), bin -> bytes; strict_map_key (default)
        # allows only str/bytes keys. ext -1 never reaches ext_hook (see below).
        obj = _unpackb(payload, ext_hook=_reject_ext)
    except _ExtType as ext:
        raise error(f"payload: msgpack ext type {ext.args[0]}") from None
    except UnicodeDecodeError as exc:
        raise error(f"payload: msgpack str is not valid UTF-8 ({exc.reason})") from None
    except Exception as exc:
        msg = str(exc)
        if msg.startswith("invalid timestamp data"):  # ext -1 with a bad length
            raise error(f"payload: msgpack ext type -1 ({msg})") from None
        raise error(f"payload: not valid msgpack ({type(exc).__name__}: {show(msg, 80)})") from None
    if type(obj) is not dict:
        raise error(f"payload: msgpack {type_name(obj)} where a map is required")
    return obj


def _decode_msgpack(payload: Any) -> dict[str, Any]:
    obj = unpack_map(payload)
    payload = bytes(payload)  # unpack_map took it as bytes: so can the marker search

    # ext -1 never reaches ext_hook: look for msgpack.Timestamp objects, but only when the
    # raw bytes could hold one (0xff never occurs in UTF-8 text, so this is rare).
    if b"\xff" in payload and _has_timestamp_marker(payload):
        _reject_timestamps(obj)

    # Top level: all documented keys present; unknown extra keys dropped.
    if len(obj) == _N_KNOWN and obj.keys() >= _KNOWN_SET:
        comment = obj  # exactly the documented keys: no copy needed
    else:
        for key in KNOWN_KEYS:
            if key not in obj:
                raise LegacyDecodeError(f"missing required key {key!r}")
        for key in obj:
            if type(key) is not str:
                raise LegacyDecodeError(f"payload: map key {show(key)} is msgpack bin, not str")
        comment = {key: obj[key] for key in KNOWN_KEYS}

    if bytes in map(type, _get_str_fields(comment)):
        for key in _STR_KEYS:
            if type(comment[key]) is bytes:
                raise LegacyDecodeError(f"{key}: msgpack bin where str is required")

    # Nested lists: a fast pass per item; anything unusual (wrong shape, extra keys, bin)
    # goes to _explain_items, which raises on the first broken rule or accepts extra keys.
    awards = comment["awards"]
    if awards is None:
        raise LegacyDecodeError("awards: nil where a list is required")
    if type(awards) is list:
        for item in awards:
            if (
                type(item) is not dict
                or item.keys() != _AWARD_KEYS
                or type(item["award_id"]) is bytes
            ):
                _explain_items("awards", awards)
                break
    rich_text = comment["rich_text"]
    if type(rich_text) is list:
        for item in rich_text:
            if (
                type(item) is not dict
                or (item.keys() != _RICH_TEXT_ET and item.keys() != _RICH_TEXT_KEYS)
                or type(item["e"]) is bytes
                or type(item["t"]) is bytes
                or type(item.get("u")) is bytes
            ):
                _explain_items("rich_text", rich_text)
                break
    media = comment["media"]
    if type(media) is list:
        for item in media:
            if (
                type(item) is not dict
                or item.keys() != _MEDIA_KEYS
                or type(item["type"]) is bytes
                or type(item["url"]) is bytes
                or type(item["content_type"]) is bytes
            ):
                _explain_items("media", media)
                break

    edited = comment["edited"]
    if edited is not False and type(edited) is not float and type(edited) is not int:
        raise LegacyDecodeError(
            f"edited: {type_name(edited)} {show(edited)} where false or a number is required"
        )
    return comment


def _explain_items(name: str, items: list[Any]) -> None:
    """Slow, detailed check of every item: raise on the first rule broken, else return."""
    required, documented, str_keys = _ITEM_SCHEMAS[name]
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise LegacyDecodeError(
                f"{name}/{index}: {type_name(item)} where a map is required "
                f"(missing required key {required[0]!r})"
            )
        for key in required:
            if key not in item:
                raise LegacyDecodeError(f"{name}/{index}: missing required key {key!r}")
        if not item.keys() <= documented:
            for key in item:
                if type(key) is not str:
                    raise LegacyDecodeError(
                        f"{name}/{index}: map key {show(key)} is msgpack bin, not str"
                    )
        for key in str_keys:
            if type(item.get(key)) is bytes:
                raise LegacyDecodeError(f"{name}/{index}/{key}: msgpack bin where str is required")


def _has_timestamp_marker(payload: bytes) -> bool:
    """True when some 0xff byte in ``payload`` could be the type byte of an ext -1."""
    find = payload.find
    index = find(b"\xff", 1)
    while index != -1:
        if payload[index - 1] in _TIMESTAMP_PRECEDERS:
            return True
        index = find(b"\xff", index + 1)
    return False


def _reject_timestamps(obj: Any) -> None:
    """Raise if a msgpack.Timestamp (ext -1) occurs anywhere in ``obj`` (iterative walk)."""
    stack = [obj]
    pop = stack.pop
    extend = stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind is dict:
            extend(value.values())
        elif kind is list:
            extend(value)
        elif kind is _Timestamp:
            raise LegacyDecodeError(
                f"payload: msgpack ext type -1 (timestamp) at {timestamp_path(obj) or '?'}"
            )


def timestamp_path(obj: Any) -> str | None:
    """JSON pointer of a msgpack.Timestamp (ext -1) anywhere in ``obj``, or None."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if type(value) is dict:
            stack.extend((f"{path}/{show(key, 80)[1:-1]}", item) for key, item in value.items())
        elif type(value) is list:
            stack.extend((f"{path}/{index}", item) for index, item in enumerate(value))
        elif type(value) is _Timestamp:
            return path or "/"
    return None


# --------------------------------------------------------------------------- protobuf


def _decode_protobuf(payload: Any) -> dict[str, Any]:
    try:
        msg = _from_protobuf(payload)
    except _ProtoDecodeError as exc:
        text = str(exc)
        if "UTF-8" in text:
            raise LegacyDecodeError("payload: protobuf string is not valid UTF-8") from None
        raise LegacyDecodeError(f"payload: not valid protobuf ({show(text, 100)})") from None
    except Exception as exc:
        raise LegacyDecodeError(
            f"payload: not valid protobuf ({type(exc).__name__}: {show(str(exc), 80)})"
        ) from None
    has = msg.HasField
    return {
        "id": msg.id,
        "link_id": msg.link_id,
        "parent_id": msg.parent_id,
        "subreddit_id": msg.subreddit_id,
        "author_id": msg.author_id,
        "body": msg.body,
        "rich_text": [
            {"e": r.e, "t": r.t, "u": r.u} if r.HasField("u") else {"e": r.e, "t": r.t}
            for r in msg.rich_text.items
        ]
        if has("rich_text")
        else None,
        "media": [
            {
                "type": m.type,
                "url": m.url,
                "width": m.width,
                "height": m.height,
                "content_type": m.content_type,
            }
            for m in msg.media.items
        ]
        if has("media")
        else None,
        "score": msg.score,
        "ups": msg.ups,
        "downs": msg.downs,
        "gilded": msg.gilded,
        "awards": [{"award_id": a.award_id, "count": a.count} for a in msg.awards],
        "approval_state": msg.approval_state,
        "automod_filtered": msg.automod_filtered,
        "stickied": msg.stickied,
        "distinguished": msg.distinguished if has("distinguished") else None,
        "edited": msg.edited if has("edited") else False,
        "created_utc": msg.created_utc,
    }
