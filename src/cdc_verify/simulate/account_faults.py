"""The fault catalogue of accounts, the second model: what each fault writes, and the
verdict the account consumer (consumers/account.py) must give it.

Faults that say nothing about a comment's own keys are the comment catalogue's own
functions; the rest break the account's keys and rules instead (typed values, nil
trophies, no protobuf).
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack

from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.faults import (
    FAULTS,
    Change,
    Copy,
    Expected,
    Fault,
    FaultContext,
    _healthy,
    _msgpack_with,
    _undecodable_sister,
    _without,
    envelope,
)

__all__ = ["ACCOUNT_FAULTS"]

# Shared with comments: gaps, duplicates, late arrivals, version skew, an unknown
# top-level key (dropped by both consumers), an int created_utc (accepted by both, a
# type difference), and the undecodables that do not depend on a key.
_SHARED = (
    "clean", "unknown_extra_key", "version_skew_same_content", "missing_in_sister",
    "missing_in_production", "late_sister", "duplicate_production", "duplicate_sister",
    "int_for_float", "undecodable_unknown_encoding", "undecodable_corrupt_msgpack",
    "undecodable_ext_timestamp", "undecodable_production",
)  # fmt: skip
ACCOUNT_FAULTS: dict[str, Fault] = {name: FAULTS[name] for name in _SHARED}


def _account_fault(name: str) -> Callable[[Fault], Fault]:
    def register(fn: Fault) -> Fault:
        ACCOUNT_FAULTS[name] = fn
        return fn

    return register


@_account_fault("value_difference")
def _value_difference(change: Change, ctx: FaultContext) -> Expected:
    _healthy(change, ctx, {**change.comment, "link_karma": change.comment["link_karma"] + 1})
    return Expected(Verdict.MISMATCH, differences=(("/link_karma", "value"),))


@_account_fault("nested_value_difference")
def _nested_value_difference(change: Change, ctx: FaultContext) -> Expected:
    granted = change.comment["created_utc"] + 86_400.0
    change.comment["trophies"] = [{"trophy_id": "verified_email", "granted_utc": granted}]
    sister = {
        **change.comment,
        "trophies": [{"trophy_id": "verified_email", "granted_utc": granted + 1.0}],
    }
    _healthy(change, ctx, sister)
    return Expected(Verdict.MISMATCH, differences=(("/trophies/0/granted_utc", "value"),))


@_account_fault("race")
def _race(change: Change, ctx: FaultContext) -> Expected:
    sister = {**change.comment, "comment_karma": change.comment["comment_karma"] + 5}
    _healthy(change, ctx, sister, version=change.version + 1)
    return Expected(Verdict.RACE, differences=(("/comment_karma", "value"),))


def _non_utf8_name(change: Change) -> dict[bytes, bytes]:
    marker = "\x01MARKER\x01"
    payload = msgpack.packb({**change.comment, "name": marker}, use_bin_type=True)
    return envelope(change, b"msgpack", payload.replace(marker.encode(), b"\xff\xfe bad"))


ACCOUNT_UNDECODABLE_RULES: dict[str, Callable[[Change], dict[bytes, bytes]]] = {
    "protobuf": lambda c: envelope(c, b"protobuf", b""),  # never written for accounts
    "missing_key": lambda c: _without(c, "name"),
    "nil_trophies": lambda c: _msgpack_with(c, trophies=None),
    "trophy_not_map": lambda c: _msgpack_with(c, trophies=["verified_email"]),
    "bin_name": lambda c: _msgpack_with(c, name=c.comment["name"].encode()),
    "str_karma": lambda c: _msgpack_with(c, link_karma="12k"),
    "int_for_bool": lambda c: _msgpack_with(c, is_suspended=int(c.comment["is_suspended"])),
    "ext_type": lambda c: _msgpack_with(c, comment_karma=msgpack.ExtType(5, b"\x01")),
    "non_utf8_text": _non_utf8_name,
}
for _name, _build in ACCOUNT_UNDECODABLE_RULES.items():
    ACCOUNT_FAULTS[f"undecodable_{_name}"] = _undecodable_sister(_build)


@_account_fault("undecodable_both")
def _undecodable_both(change: Change, ctx: FaultContext) -> Expected:
    change.production.append(Copy(0, _msgpack_with(change, trophies=None)))
    change.sister.append(Copy(ctx.jitter(), _msgpack_with(change, trophies=None)))
    return Expected(Verdict.UNDECODABLE, side=Side.BOTH)
