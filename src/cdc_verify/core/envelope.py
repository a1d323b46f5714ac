"""Envelopes: what a stream entry's fields mean (docs/envelopes.md).

An envelope reads one entry's raw fields and gives the join key, entity, op, entity
id, version and what the consumer decodes, or a reason the entry is malformed. The
core then works on the entry's *canonical* fields: those of the cdc-verify envelope
(event_id, entity, op, entity_id, version) set over what the consumer decodes. So the
breakdowns, scopes, alerts, waiting memory and the consumer read one shape whatever
the envelope, and canonical fields read again as a cdc-verify entry give the same
event (what a restored waiting entry or a Faust message relies on).

The default envelope, `cdc-verify`, is no object at all (None): its entries are
already canonical and are parsed as they always were, at no extra cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from cdc_verify.core.decoder import describe_error

CDC_VERIFY = "cdc-verify"
JSON = "json"
DEBEZIUM = "debezium"
BUILT_IN = (CDC_VERIFY, JSON, DEBEZIUM)


class Malformed(ValueError):
    """Raised by an envelope for an entry it cannot read; the message is the reason."""


class Tombstone(Exception):
    """Raised by an envelope for an entry that stands for no change (Debezium's tombstone
    after a delete): it is settled and counted as `tombstone`, never verdicted."""


@dataclass(frozen=True, slots=True)
class Event:
    """What an envelope reads from one entry.

    `key` is the join key's text (an event_id); `decodes` what the consumer is given
    (the key fields are set over it). None: the entry does not say.
    """

    key: str
    entity: str | None = None
    op: str | None = None
    entity_id: str | None = None
    version: int | None = None
    decodes: Mapping[bytes, bytes] | None = None


#: An envelope: an entry's raw fields -> its event; raises (Malformed, or anything) for
#: an entry it cannot read. A user's own is `module:callable` of this type.
Envelope = Callable[[Mapping[bytes, bytes]], Event]


def open_entry(
    envelope: Envelope, fields: dict[bytes, bytes]
) -> tuple[dict[bytes, bytes] | None, str | None]:
    """The entry's canonical fields, or None and the reason it is malformed; (None, None)
    for a tombstone."""
    try:
        event = envelope(fields)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Tombstone:
        return None, None
    except Malformed as exc:
        return None, str(exc) or "malformed"
    except BaseException as exc:  # a user's envelope failing is the entry's finding
        return None, f"envelope failed: {describe_error(exc)}"
    if not isinstance(event, Event):
        return None, f"envelope gave a {type(event).__name__}, not an Event"
    wrong = _wrong_types(event)
    if wrong:
        return None, f"envelope gave an Event whose {wrong}"
    canonical = dict(event.decodes) if event.decodes else {}
    canonical[b"event_id"] = event.key.encode("utf-8", "surrogatepass")
    for name, value in (
        (b"entity", event.entity), (b"op", event.op), (b"entity_id", event.entity_id)
    ):  # fmt: skip
        if value is not None:
            canonical[name] = value.encode("utf-8", "surrogatepass")
        else:
            canonical.pop(name, None)
    if event.version is not None:
        canonical[b"version"] = b"%d" % event.version
    else:
        canonical.pop(b"version", None)
    return canonical, None


def _wrong_types(event: Event) -> str | None:
    """What of a user's Event is not of its type (the canonical fields need it so)."""
    if not isinstance(event.key, str):
        return f"key is a {type(event.key).__name__}, not a str"
    for name in ("entity", "op", "entity_id"):
        value = getattr(event, name)
        if value is not None and not isinstance(value, str):
            return f"{name} is a {type(value).__name__}, not a str"
    version = event.version
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63
    ):
        return f"version is {version!r}, not an int >= 0"
    decodes = event.decodes
    if decodes is not None and not (
        isinstance(decodes, Mapping)
        and all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in decodes.items())
    ):
        return "decodes is no mapping of bytes to bytes"
    return None


# -- the row-version join ---------------------------------------------------------

DELETE = "delete"


def version_key(entity: str, entity_id: str, version: int, op: str | None) -> str:
    """The join key of one row version: `ENTITY/ENTITY_ID@VERSION`, a delete keyed by the
    version it removed with `:delete` appended (docs/envelopes.md, "Joined by version")."""
    key = f"{entity}/{entity_id}@{version}"
    return f"{key}:{DELETE}" if op == DELETE else key


def read_canonical(fields: Mapping[bytes, bytes]) -> Event:
    """The cdc-verify envelope as an object (the default reads its entries as they are,
    with no object at all; the version join needs one to wrap)."""
    key = fields.get(b"event_id", b"")
    return Event(
        key.decode("utf-8", "surrogatepass"),
        _field_text(fields, b"entity"),
        _field_text(fields, b"op"),
        _field_text(fields, b"entity_id"),
        _field_version(fields),
        fields,
    )


def _field_text(fields: Mapping[bytes, bytes], name: bytes) -> str | None:
    raw = fields.get(name)
    return None if raw is None else raw.decode("utf-8", "surrogatepass")


def _field_version(fields: Mapping[bytes, bytes]) -> int | None:
    raw = fields.get(b"version")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise Malformed(f"version {raw[:40]!r} is not a decimal integer")
    return int(raw)


class VersionKeyed:
    """Another envelope, its events joined by row version (`--join-key version`): the key
    is `version_key` of the event's entity, entity id, version and op; an event without
    one of the three is malformed."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope

    def __call__(self, fields: Mapping[bytes, bytes]) -> Event:
        event = self.envelope(fields)
        if not isinstance(event, Event):
            return event  # open_entry names what it is
        for name in ("entity", "entity_id", "version"):
            if getattr(event, name) is None:
                raise Malformed(f"no {name}: the row-version join needs entity, entity id "
                                "and version")  # fmt: skip
        assert event.entity is not None and event.entity_id is not None
        assert event.version is not None
        key = version_key(event.entity, event.entity_id, event.version, event.op)
        return Event(key, event.entity, event.op, event.entity_id, event.version, event.decodes)


# -- json -------------------------------------------------------------------------


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """RFC 6901: "" is the whole document, "/a/b~1c" is ("a", "b/c")."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer (those start with /)")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


_ABSENT = object()


def _at(document: Any, path: tuple[str, ...]) -> Any:
    value = document
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _ABSENT)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


@dataclass(frozen=True, slots=True)
class JsonPointers:
    """Where the `json` envelope finds each key field in the event."""

    event_id: str = "/event_id"
    entity: str = "/entity"
    op: str = "/op"
    entity_id: str = "/entity_id"
    version: str = "/version"
    payload: str = "/payload"
    encoding: str = "/encoding"


_POINTER_NAMES = ("event_id", "entity", "op", "entity_id", "version", "payload", "encoding")


class JsonEnvelope:
    """The event is one field holding a JSON (or msgpack) object; pointers name its key
    fields. Only the event id is required.

    The consumer is given `payload` and `encoding`. `payload` is the value at the payload
    pointer: a string or (msgpack) binary value as its bytes, any other value encoded in
    the event's own format; the pointer "" gives the field's bytes as they are (the whole
    event). `encoding` is the string at the encoding pointer (none there: no encoding).
    """

    def __init__(
        self, field: str = "event", fmt: str = "json", pointers: JsonPointers = JsonPointers()
    ) -> None:
        if fmt not in ("json", "msgpack"):
            raise ValueError(f"json envelope format {fmt!r}: json or msgpack")
        self.field, self.fmt = field.encode(), fmt
        self._field_name = field
        self._paths = {name: parse_pointer(getattr(pointers, name)) for name in _POINTER_NAMES}
        self._pointers = pointers

    def __call__(self, fields: Mapping[bytes, bytes]) -> Event:
        raw = fields.get(self.field)
        if raw is None:
            raise Malformed(f"no {self._field_name} field (json envelope)")
        document = self._load(raw)
        if not isinstance(document, dict):
            raise Malformed(f"{self._field_name} holds a {_kind(document)}, not an object")
        key = self._text(document, "event_id")
        if key is None:
            raise Malformed(f"no event id at {self._pointers.event_id!r} in {self._field_name}")
        payload_path = self._paths["payload"]
        if not payload_path:
            payload: bytes | None = raw
        else:
            value = _at(document, payload_path)
            payload = None if value is _ABSENT else self._dump(value)
        decodes = {}
        encoding = _at(document, self._paths["encoding"])
        if isinstance(encoding, str):
            decodes[b"encoding"] = encoding.encode("utf-8", "surrogatepass")
        if payload is not None:
            decodes[b"payload"] = payload
        return Event(
            key,
            self._text(document, "entity"),
            self._text(document, "op"),
            self._text(document, "entity_id"),
            self._version(document),
            decodes,
        )

    def _load(self, raw: bytes) -> Any:
        try:
            if self.fmt == "json":
                return json.loads(raw)
            return msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise Malformed(f"{self._field_name} is not {self.fmt}: {exc}") from None

    def _dump(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        if self.fmt == "json":
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return msgpack.packb(value, use_bin_type=True)

    def _text(self, document: dict[str, Any], name: str) -> str | None:
        """A key field as text: a string, or an integer written in decimal."""
        value = _at(document, self._paths[name])
        if value is _ABSENT or value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        pointer = getattr(self._pointers, name)
        raise Malformed(f"{name} at {pointer!r} is a {_kind(value)}, not a string or integer")

    def _version(self, document: dict[str, Any]) -> int | None:
        value = _at(document, self._paths["version"])
        if value is _ABSENT or value is None:
            return None
        if isinstance(value, str) and value.isdigit() and len(value) <= 19:
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value
        raise Malformed(f"version at {self._pointers.version!r} is {value!r}: not an integer >= 0")


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
