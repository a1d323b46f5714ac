"""The fault catalogue: how each kind of fault is made, and the verdict it must get.

Every fault turns one logical change (a comment) into the entries each side
writes, and states what docs/verdicts.md says the verifier must answer for it. The
demo injects these, and the tests and benchmarks use them as known answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.legacy_writer import encode_msgpack, encode_protobuf

P, S = Side.PRODUCTION, Side.SISTER


@dataclass(frozen=True, slots=True)
class Expected:
    verdict: Verdict
    side: Side | None = None
    differences: tuple[tuple[str, str], ...] = ()  # (path, kind)
    duplicates: tuple[Side, ...] = ()
    late: Side | None = None
    # The verdict of a late pair whose two sides come within the grace window after all
    # (a writer behind its schedule): `Corpus.expected_as_written`.
    joined: Verdict | None = None


@dataclass(slots=True)
class Copy:
    """One entry to write: its delay after the change's time, and its fields."""

    delay_ms: int
    fields: dict[bytes, bytes]


@dataclass(slots=True)
class Change:
    """One logical change and what both services write for it.

    `comment` is the entity's map, whatever the `entity` (an account's too).
    """

    event_id: str
    entity_id: str
    version: int
    ts_ms: int
    comment: dict[str, Any]
    production: list[Copy] = field(default_factory=list)
    sister: list[Copy] = field(default_factory=list)
    entity: str = "comment"
    op: str = ""  # empty: create at version 1, else update

    @property
    def op_name(self) -> str:
        return self.op or ("update" if self.version > 1 else "create")


@dataclass(frozen=True, slots=True)
class FaultContext:
    rng: random.Random
    grace_ms: int

    def jitter(self) -> int:
        """Sister delay of a healthy event: well inside the grace window, either way."""
        return self.rng.randint(-self.grace_ms // 4, self.grace_ms // 2)


def envelope(
    change: Change, encoding: bytes, payload: bytes, version: int | None = None
) -> dict[bytes, bytes]:
    return {
        b"event_id": change.event_id.encode(),
        b"entity": change.entity.encode(),
        b"op": change.op_name.encode(),
        b"entity_id": change.entity_id.encode(),
        b"version": str(version or change.version).encode(),
        b"ts_ms": str(change.ts_ms).encode(),
        b"encoding": encoding,
        b"payload": payload,
    }


def go_order(comment: dict[str, Any]) -> dict[str, Any]:
    """Same content, other key order: the sister's bytes differ as a Go writer's would."""
    return dict(reversed(comment.items()))


def production(change: Change) -> Copy:
    return Copy(0, envelope(change, b"msgpack", encode_msgpack(change.comment)))


def sister_msgpack(change: Change, ctx: FaultContext, comment: dict[str, Any], **kw: Any) -> Copy:
    return Copy(ctx.jitter(), envelope(change, b"msgpack", encode_msgpack(go_order(comment)), **kw))


Fault = Callable[[Change, FaultContext], Expected]
FAULTS: dict[str, Fault] = {}


def fault(name: str) -> Callable[[Fault], Fault]:
    def register(fn: Fault) -> Fault:
        FAULTS[name] = fn
        return fn

    return register


def _healthy(
    change: Change, ctx: FaultContext, comment: dict[str, Any] | None = None, **kw: Any
) -> None:
    change.production.append(production(change))
    change.sister.append(sister_msgpack(change, ctx, comment or change.comment, **kw))


@fault("clean")
def _clean(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx)
    return Expected(Verdict.MATCH)


@fault("clean_protobuf")
def _clean_protobuf(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(production(change))
    payload = encode_protobuf(change.comment)
    change.sister.append(Copy(ctx.jitter(), envelope(change, b"protobuf", payload)))
    return Expected(Verdict.MATCH)


@fault("unknown_extra_key")
def _unknown_extra_key(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx, {**change.comment, "shard_hint": 7})  # ignored by the consumer
    return Expected(Verdict.MATCH)


@fault("version_skew_same_content")
def _version_skew(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx, version=change.version + 1)
    return Expected(Verdict.MATCH)


@fault("missing_in_sister")
def _missing_in_sister(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(production(change))
    return Expected(Verdict.MISSING_IN_SISTER)


@fault("missing_in_production")
def _missing_in_production(change: Change, ctx: FaultContext) -> Expected:
    change.sister.append(sister_msgpack(change, ctx, change.comment))
    return Expected(Verdict.MISSING_IN_PRODUCTION)


@fault("late_sister")
def _late_sister(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(production(change))
    late = sister_msgpack(change, ctx, change.comment)
    late.delay_ms = ctx.grace_ms + ctx.rng.randint(200, 1000)
    change.sister.append(late)
    return Expected(Verdict.MISSING_IN_SISTER, late=S, joined=Verdict.MATCH)


@fault("duplicate_production")
def _duplicate_production(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx)
    again = production(change)
    again.delay_ms = ctx.rng.randint(1, 50)
    change.production.append(again)
    return Expected(Verdict.MATCH, duplicates=(P,))


@fault("duplicate_sister")
def _duplicate_sister(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx)
    again = sister_msgpack(change, ctx, change.comment)
    again.delay_ms = change.sister[0].delay_ms + ctx.rng.randint(1, 50)
    change.sister.append(again)
    return Expected(Verdict.MATCH, duplicates=(S,))


@fault("value_difference")
def _value_difference(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx, {**change.comment, "score": change.comment["score"] + 1})
    return Expected(Verdict.MISMATCH, differences=(("/score", "value"),))


@fault("int_for_float")
def _int_for_float(change: Change, ctx: FaultContext) -> Expected:
    # The legacy consumer accepts it (duck typing); the verifier still flags the type.
    comment = {**change.comment, "created_utc": int(change.comment["created_utc"])}
    _healthy(change, ctx, comment)
    return Expected(Verdict.MISMATCH, differences=(("/created_utc", "type"),))


@fault("int_for_bool")
def _int_for_bool(change: Change, ctx: FaultContext) -> Expected:
    # 0 == False in Python, but not to a consumer that checks `is False`.
    _healthy(change, ctx, {**change.comment, "stickied": int(change.comment["stickied"])})
    return Expected(Verdict.MISMATCH, differences=(("/stickied", "type"),))


@fault("nested_value_difference")
def _nested_value_difference(change: Change, ctx: FaultContext) -> Expected:
    change.comment["awards"] = [{"award_id": "gold", "count": 2}]
    sister = {**change.comment, "awards": [{"award_id": "gold", "count": 3}]}
    _healthy(change, ctx, sister)
    return Expected(Verdict.MISMATCH, differences=(("/awards/0/count", "value"),))


@fault("nested_extra_key")
def _nested_extra_key(change: Change, ctx: FaultContext) -> Expected:
    change.comment["rich_text"] = [{"e": "text", "t": "hello"}]
    sister = {**change.comment, "rich_text": [{"e": "text", "t": "hello", "x": 1}]}
    _healthy(change, ctx, sister)
    return Expected(Verdict.MISMATCH, differences=(("/rich_text/0/x", "extra"),))


@fault("race")
def _race(change: Change, ctx: FaultContext) -> Expected:
    sister = {**change.comment, "score": change.comment["score"] + 5}
    _healthy(change, ctx, sister, version=change.version + 1)
    return Expected(Verdict.RACE, differences=(("/score", "value"),))


def _undecodable_sister(fields: Callable[[Change], dict[bytes, bytes]]) -> Fault:
    def make(change: Change, ctx: FaultContext) -> Expected:
        change.production.append(production(change))
        change.sister.append(Copy(ctx.jitter(), fields(change)))
        return Expected(Verdict.UNDECODABLE, side=S)

    return make


def _msgpack_with(change: Change, **overrides: Any) -> dict[bytes, bytes]:
    comment = {**change.comment, **overrides}
    return envelope(change, b"msgpack", msgpack.packb(comment, use_bin_type=True))


def _without(change: Change, key: str) -> dict[bytes, bytes]:
    comment = {k: v for k, v in change.comment.items() if k != key}
    return envelope(change, b"msgpack", msgpack.packb(comment, use_bin_type=True))


def _non_utf8_body(change: Change) -> dict[bytes, bytes]:
    marker = "\x01MARKER\x01"
    payload = msgpack.packb({**change.comment, "body": marker}, use_bin_type=True)
    return envelope(change, b"msgpack", payload.replace(marker.encode(), b"\xff\xfe\xfa bad!!"))


def _corrupt_msgpack(change: Change) -> dict[bytes, bytes]:
    payload = encode_msgpack(change.comment)
    return envelope(change, b"msgpack", payload[: len(payload) // 2])


UNDECODABLE_RULES: dict[str, Callable[[Change], dict[bytes, bytes]]] = {
    "unknown_encoding": lambda c: envelope(c, b"xml", encode_msgpack(c.comment)),
    "corrupt_msgpack": _corrupt_msgpack,
    "corrupt_protobuf": lambda c: envelope(c, b"protobuf", b"\x0f\xff\xff\xff"),
    "missing_key": lambda c: _without(c, "author_id"),
    "nil_awards": lambda c: _msgpack_with(c, awards=None),
    "bin_body": lambda c: _msgpack_with(c, body=c.comment["body"].encode()),
    "ext_timestamp": lambda c: _msgpack_with(
        c, created_utc=msgpack.Timestamp.from_unix(c.comment["created_utc"])
    ),
    "ext_type": lambda c: _msgpack_with(c, gilded=msgpack.ExtType(5, b"\x01")),
    "non_utf8_text": _non_utf8_body,
    "edited_true": lambda c: _msgpack_with(c, edited=True),
    "edited_string": lambda c: _msgpack_with(c, edited="yesterday"),
}
for _name, _build in UNDECODABLE_RULES.items():
    FAULTS[f"undecodable_{_name}"] = _undecodable_sister(_build)


@fault("undecodable_production")
def _undecodable_production(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(Copy(0, _corrupt_msgpack(change)))
    change.sister.append(sister_msgpack(change, ctx, change.comment))
    return Expected(Verdict.UNDECODABLE, side=P)


@fault("undecodable_both")
def _undecodable_both(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(Copy(0, _msgpack_with(change, awards=None)))
    change.sister.append(Copy(ctx.jitter(), _msgpack_with(change, awards=None)))
    return Expected(Verdict.UNDECODABLE, side=Side.BOTH)


# Entries without a usable event_id; each becomes a `malformed` record.
MALFORMED_FIELDS: dict[str, dict[bytes, bytes]] = {
    "no_event_id": {b"entity": b"comment", b"op": b"create", b"payload": b"\x80"},
    "empty_event_id": {b"event_id": b"", b"entity": b"comment"},
    "non_utf8_event_id": {b"event_id": b"\xff\xfe\x00\x01", b"entity": b"comment"},
    "junk_only": {b"\x00\x01": b"\xde\xad\xbe\xef"},
}
