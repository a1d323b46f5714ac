"""A user's own envelope (`--envelope tests.own_envelope:read`), for the tests: entries
of another team's CDC, whose fields name the change differently.

    id    the logical change (the join key)     kind  ENTITY:OP
    key   the entity id                          rev   the version
    fmt   the payload's encoding                 body  the payload
"""

from __future__ import annotations

from collections.abc import Mapping

from cdc_verify.core.envelope import Event, Malformed


def read(fields: Mapping[bytes, bytes]) -> Event:
    key = fields.get(b"id")
    if not key:
        raise Malformed("no id field")
    entity, _, op = fields.get(b"kind", b"").decode().partition(":")
    rev = fields.get(b"rev")
    decodes = {name: fields[raw] for name, raw in ((b"encoding", b"fmt"), (b"payload", b"body"))
               if raw in fields}  # fmt: skip
    return Event(
        key.decode(),  # not UTF-8: the UnicodeDecodeError is the malformed record's reason
        entity or None,
        op or None,
        fields[b"key"].decode() if b"key" in fields else None,
        int(rev) if rev is not None and rev.isdigit() else None,
        decodes,
    )


def own_fields(fields: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """A cdc-verify entry's fields as this envelope's: what the tests write."""
    names = ((b"event_id", b"id"), (b"entity_id", b"key"), (b"version", b"rev"),
             (b"encoding", b"fmt"), (b"payload", b"body"))  # fmt: skip
    out = {own: fields[name] for name, own in names if name in fields}
    if b"entity" in fields or b"op" in fields:
        out[b"kind"] = fields.get(b"entity", b"") + b":" + fields.get(b"op", b"")
    return out or {b"junk": b""}
