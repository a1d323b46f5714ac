"""What the core hands to sinks: verdict records and the entries they settle."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any

from cdc_verify.core.bounds import (
    RECORD_BOUNDS,
    Bounds,
    bound_differences,
    cut_text,
    difference_json,
    utf8,
)
from cdc_verify.core.breakdown import entity_op
from cdc_verify.core.diff import Difference
from cdc_verify.core.entry import PRODUCTION, StreamEntry
from cdc_verify.core.shape import Shape
from cdc_verify.schemas.verdicts import (
    LATE,
    OUT_OF_SCOPE,
    PRIMARY_VERDICTS,
    SIDE_CODE,
    SIDE_LETTERS,
    TOMBSTONE,
    Side,
    Verdict,
)


@dataclass(slots=True)
class VerdictRecord:
    """One line of verdicts.jsonl (docs/verdicts.md, "The record").

    Held to RECORD_BOUNDS from the start (core/bounds.py): a cut value keeps its size
    and hash, and `more_differences` counts the differences past the record's bound.
    """

    event_id: str | None
    verdict: Verdict
    side: Side | None = None
    entry_id: str | None = None
    error: str | None = None
    differences: list[Difference] | None = None
    # --ignore-path pattern -> differences it hid in this pair (the audit; not in the JSON)
    ignored: dict[str, int] | None = None
    more_differences: int = 0
    # Why the record was reduced below RECORD_BOUNDS (the state server refused it whole)
    reduced: str | None = None
    # Debezium records only: side -> its source block's LSN, transaction, time, names
    # (core/rowsource.py); bounded where it is read.
    sources: dict[str, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.differences is not None or self.error is not None:
            self._bound(RECORD_BOUNDS)

    def bounded(self, bounds: Bounds, reduced: str | None = None) -> VerdictRecord:
        """A copy held to (tighter) `bounds`; `reduced` says why, in the record."""
        copy = replace(self, reduced=reduced or self.reduced)
        copy._bound(bounds)
        return copy

    def _bound(self, bounds: Bounds) -> None:
        if self.error is not None:
            self.error = cut_text(self.error, bounds.text)
        if self.reduced is not None:
            self.reduced = cut_text(self.reduced, bounds.text)
        if self.differences is not None:
            differences, self.differences = self.differences, []
            # All but the differences, and room for their count.
            base = len(utf8(record_to_json(self))) + len(',"more_differences":') + 20
            self.differences, more = bound_differences(differences, bounds, bounds.record - base)
            self.more_differences += more

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_id": self.event_id, "verdict": self.verdict.value}
        if self.side is not None:
            out["side"] = self.side.value
        if self.entry_id is not None:
            out["entry_id"] = self.entry_id
        if self.error is not None:
            out["error"] = self.error
        if self.differences is not None:
            out["differences"] = [difference_json(d) for d in self.differences]
        if self.more_differences:
            out["more_differences"] = self.more_differences
        if self.reduced is not None:
            out["reduced"] = self.reduced
        if self.sources is not None:
            out["sources"] = self.sources
        return out


@dataclass(slots=True)
class Decision:
    """What is remembered of an event_id after its primary verdict.

    `sides` says which sides have been seen (SIDE_LETTERS: "p", "s" or "ps"), so that a
    later copy is a duplicate on a seen side and a late arrival on an unseen one.
    `verdict` None: a production event outside --scope whose twin did not come in time.
    """

    verdict: Verdict | None
    sides: str
    first_seen_ms: int

    def packed(self) -> int:
        """One integer: first_seen_ms * 32 + verdict * 4 + sides. The core remembers
        decisions so (an int is no object the garbage collector has to walk)."""
        return self.first_seen_ms * 32 + _VERDICT_CODE[self.verdict] * 4 + _CODE[self.sides]

    @classmethod
    def unpacked(cls, packed: int) -> Decision:
        code, side_code = divmod(packed % 32, 4)
        if code >= len(_VERDICTS) or side_code not in _LETTERS:
            raise ValueError(f"not a decision: {packed!r}")
        return cls(_VERDICTS[code], _LETTERS[side_code], packed // 32)

    def encode(self) -> str:
        """`packed()` in decimal: Redis keeps an integer-looking value in 1 to 9 bytes of a
        hash's listpack (docs/reports.md)."""
        return str(self.packed())

    @classmethod
    def decode(cls, raw: bytes | str) -> Decision:
        """From `encode`'s integer, or the `verdict|sides|ms` text of earlier versions."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text.isdigit():
            return cls.unpacked(int(text))
        verdict, sides, first_seen = text.split("|")
        return cls(None if verdict == OUT_OF_SCOPE else Verdict(verdict), sides, int(first_seen))


# Decision.encode's codes: the primary verdicts, then None (out of scope); the sides'
# letters by their SIDE_CODE, 1 to 3.
_VERDICTS: tuple[Verdict | None, ...] = (*PRIMARY_VERDICTS, None)
_VERDICT_CODE = {v: i for i, v in enumerate(_VERDICTS)}
_CODE = {SIDE_LETTERS[side]: code for side, code in SIDE_CODE.items()}
_LETTERS = {code: letters for letters, code in _CODE.items()}


class OutcomeKind(Enum):
    PRIMARY = "P"  # the one verdict of an event_id
    EXTRA = "E"  # duplicate or malformed record
    LATE = "L"  # the missing partner arrived after its gap verdict
    SKIP = "S"  # entries from before the start horizon: acked, no verdict
    OUT_OF_SCOPE = "O"  # production event outside --scope, no twin in time: counted only
    TOMBSTONE = "T"  # an entry that stands for no change (a Debezium tombstone): counted only


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    record: VerdictRecord | None
    settles: tuple[StreamEntry, ...]  # entries that may be acked once this is durable
    decision: Decision | None = None
    late_by_ms: int | None = None
    # LATE only: the late pair compared, once its earlier twin is at hand. It is
    # recorded with the resolved alert; the event's first verdict stands.
    late_record: VerdictRecord | None = None
    # The shape of the production event (core/shape.py), when the verifier takes shapes;
    # None also when production's entry could not be decoded.
    shape: Shape | None = None
    # A gap only: the server that lost its data while the missing entry may have been on
    # it ({"role", "server", "at"}); recorded in the gap's alert.
    server_lost_data: dict[str, str] | None = None
    _entity_op: tuple[str, str] | None = None  # computed once: commit, metrics, reports

    @property
    def entity_op(self) -> tuple[str, str]:
        """(entity, op) this outcome is counted under (core/breakdown.py)."""
        if self._entity_op is None:
            self._entity_op = entity_op(self.settles)
        return self._entity_op

    @property
    def event_id(self) -> str | None:
        if self.record is not None:
            return self.record.event_id
        return self.settles[0].event_id if self.settles else None


def counted_as(outcome: Outcome) -> str | None:
    """The name the outcome is counted under, by entity and op (COUNTED_NAMES): its
    record's verdict, `out_of_scope`, `tombstone` or `late`; None for a skip. commit.py's
    script counts by the same rule."""
    if outcome.record is not None:
        return outcome.record.verdict._value_
    if outcome.kind is _OUT_OF_SCOPE:
        return OUT_OF_SCOPE
    if outcome.kind is _TOMBSTONE:
        return TOMBSTONE
    return LATE if outcome.kind is _LATE else None


class EventCoverage(StrEnum):
    """What became of a production event, for coverage (docs/coverage.md): the counts of
    a shape (core/coverage.py `ShapeCounts`) and the last part of its counters on the
    state server (pipeline/redis/shapes.py). A shape's own status is a `ShapeStatus`."""

    MATCH = "match"
    MISMATCH = "mismatch"  # mismatch or race
    UNVERIFIED = "unverified"  # the sister missed it, could not decode it, or out of scope


EVENT_COVERAGE_VALUES: frozenset[str] = frozenset(EventCoverage)  # (3.11: no `in` by value)


def coverage_status(outcome: Outcome) -> EventCoverage | None:
    """What the outcome says of its production event: matched, mismatched (or raced), or
    unverified (the sister missed it, could not decode it, or it was out of scope). None
    when it has none: no primary outcome, or missing in production (production never sent
    it). Bounded runs, the live commit and `cdc-verify cases` all count by this rule."""
    kind = outcome.kind
    if kind is _OUT_OF_SCOPE:
        return _UNVERIFIED
    record = outcome.record
    if kind is not _PRIMARY or record is None:
        return None
    for entry in outcome.settles:
        if entry.side is PRODUCTION:
            return _COVERAGE_OF.get(record.verdict, _UNVERIFIED)
    return None


# Members as module names: Enum member access through its class is slow on Python 3.11,
# and these run per outcome.
_PRIMARY, _LATE = OutcomeKind.PRIMARY, OutcomeKind.LATE
_OUT_OF_SCOPE, _TOMBSTONE = OutcomeKind.OUT_OF_SCOPE, OutcomeKind.TOMBSTONE
_UNVERIFIED = EventCoverage.UNVERIFIED
_COVERAGE_OF = {
    Verdict.MATCH: EventCoverage.MATCH,
    Verdict.MISMATCH: EventCoverage.MISMATCH,
    Verdict.RACE: EventCoverage.MISMATCH,
}


_encode_str = json.JSONEncoder(ensure_ascii=False).encode
# Made once: json.dumps given any option builds an encoder per call (~0.7 µs a record).
_encode_record = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def record_to_json(record: VerdictRecord) -> str:
    """The record as one line of strict JSON, whatever values its differences hold."""
    if (
        record.side is None
        and record.entry_id is None
        and record.error is None
        and record.differences is None
        and record.reduced is None
        and record.sources is None
        and record.event_id is not None
    ):
        # Most records are a bare match: skip the generic encoder (7x faster, same bytes).
        verdict = record.verdict._value_
        return f'{{"event_id":{_encode_str(record.event_id)},"verdict":"{verdict}"}}'
    text = _encode_record(record.as_json())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from a consumer: its JSON escape, the rest as it is (so the
        # line keeps the size core/bounds.py counted).
        text = utf8(text).decode("utf-8")
    return text
