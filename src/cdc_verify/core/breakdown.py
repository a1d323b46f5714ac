"""The entity and op an outcome is counted under: summary.json's `by_entity_op`,
the metrics' labels, the durable counters (docs/rollouts.md, "More than one model").

Both come from the stream entry, production's when there is one (it is the
reference), else the sister's. They become label values, so they are bounded: an
op other than the three write endpoints and a row's delete and (snapshot) read is
`other`, an entity that is no short lower-case name is `unknown`, and past
MAX_ENTITIES names every new one is `other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from cdc_verify.core.entry import PRODUCTION, StreamEntry

OPS = ("create", "update", "increment", "delete", "read")
UNKNOWN = "unknown"  # the field is missing or not a name
OTHER = "other"  # a value past the bounds
MAX_ENTITIES = 32
_NAME = re.compile(rb"[a-z][a-z0-9_]{0,31}")
_OP_NAMES = {op.encode(): op for op in OPS}
_entities: dict[bytes, str] = {}


def entity_of(fields: Mapping[bytes, bytes]) -> str:
    raw = fields.get(b"entity")
    if raw is None:
        return UNKNOWN
    known = _entities.get(raw)
    if known is not None:
        return known
    if not _NAME.fullmatch(raw):
        return UNKNOWN
    if len(_entities) >= MAX_ENTITIES:
        return OTHER
    name = _entities[raw] = raw.decode("ascii")
    return name


def op_of(fields: Mapping[bytes, bytes]) -> str:
    raw = fields.get(b"op")
    if raw is None:
        return UNKNOWN
    return _OP_NAMES.get(raw, OTHER)


def entity_op(entries: Iterable[StreamEntry]) -> tuple[str, str]:
    """(entity, op) of the entries an outcome settles; production's first."""
    chosen: StreamEntry | None = None
    for entry in entries:
        if entry.side is PRODUCTION:
            chosen = entry
            break
        if chosen is None:
            chosen = entry
    if chosen is None:
        return UNKNOWN, UNKNOWN
    return entity_of(chosen.fields), op_of(chosen.fields)


def entity_op_key(entries: Iterable[StreamEntry]) -> str:
    """`entity/op`, the key of summary.json's by_entity_op."""
    entity, op = entity_op(entries)
    return f"{entity}/{op}"
