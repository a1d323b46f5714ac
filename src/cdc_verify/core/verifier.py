"""The engine-agnostic core: join on event_id, decode, compare, classify.

It does no I/O. A runner feeds it entries in stream order per side, tells it
how far each stream has been read (`advance`, with a `ReadPosition`), and asks for
expired gaps (`expire`). Every answer is an `Outcome` that names the entries it settles, so
the runner acks exactly those once the outcome is durable.

Verdicts are a function of the data alone, not of how reads were batched: a
partner that arrived more than `grace_ms` after its twin (on entry-id time) is a
gap plus a late arrival even if both happen to be read in one batch.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc_verify.core.breakdown import entity_of
from cdc_verify.core.decided import RecentDecisions
from cdc_verify.core.decoder import Consumer, LegacyDecoder, describe_error
from cdc_verify.core.diff import IgnoredPaths, StructuralDiff
from cdc_verify.core.entry import (
    PRODUCTION,
    SISTER,
    StreamEntry,
    entry_bytes,
    is_tombstone,
    parse_version,
)
from cdc_verify.core.outcome import Decision, Outcome, OutcomeKind, VerdictRecord
from cdc_verify.core.position import START, ReadPosition
from cdc_verify.core.rowsource import sources_of
from cdc_verify.core.scope import ALL, Scope
from cdc_verify.core.shape import MAX_SHAPES, Shape, ShapeRules
from cdc_verify.core.waiting import Spill, WaitingRoom
from cdc_verify.core.wire import with_wire_types
from cdc_verify.schemas.verdicts import (
    OTHER_SIDE,
    SIDE_LETTERS,
    STREAM_SIDES,
    Side,
    Verdict,
)

# Waiting entries older than this (on their own stream) are packed to save memory.
PACK_AFTER_MS = 2_000
SEEN_BOTH = SIDE_LETTERS[Side.BOTH]  # a decision's sides once both have come
MISSING_ON = {PRODUCTION: Verdict.MISSING_IN_PRODUCTION, SISTER: Verdict.MISSING_IN_SISTER}
# Members read per entry, as module names (through its class, an Enum member costs
# about 50 ns on Python 3.11).
_PRIMARY, _MATCH = OutcomeKind.PRIMARY, Verdict.MATCH
# Entries of the latest gap verdicts kept to compare with a late partner. Older
# ones a runner fetches back from the stream (`compare_late`).
GAP_TWINS_KEPT = 10_000
GAP_TWINS_MAX_BYTES = 64 * 2**20
# Decisions a runner with a durable store keeps in memory; older ones it looks up.
# It must cover a commit in flight and the grace window; a minute does, cheaply.
DECIDED_IN_MEMORY_MS = 60_000
UNDECODED = object()  # _judge's production value when production could not be decoded


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    grace_ms: int = 5_000
    # How long (event time) an event_id's verdict is remembered, to tell
    # duplicates and late arrivals from new events.
    decided_retention_ms: int = 3_600_000
    # How much of that the core itself keeps. A runner with a durable decision
    # store keeps a short window and looks older event_ids up (`lookup_needed`);
    # None keeps the whole retention (bounded runs, where memory is the only store).
    decided_in_memory_ms: int | None = None
    ignored_paths: tuple[str, ...] = ()
    float_tolerance: float = 0.0
    # False: a pair whose fields are byte-identical is decoded once, on the assumption
    # that the consumer's output depends on its input alone (docs/verdicts.md).
    decode_each_side: bool = False
    # True: every outcome with a production event carries that event's shape (coverage),
    # which also decodes the production side of gaps and out-of-scope events.
    shapes: bool = False
    # The most shapes counted per entity (core/coverage.py); the core takes shapes, the
    # runners count them, by this cap.
    max_shapes: int = MAX_SHAPES
    # True: each side's entries come in stream order, so an entry also says the stream
    # was read up to it. False (several forwarders feed one join, out of order): only
    # `advance` moves the read position.
    ordered_sides: bool = True
    # Which production events the sister must deliver (docs/rollouts.md).
    scope: Scope = ALL
    # Bytes of big waiting entries held in memory; past it they go to the runner's
    # spill (waiting.py). None, or no spill: no cap.
    waiting_max_bytes: int | None = None


class Verifier:
    def __init__(
        self,
        consumer: Consumer,
        config: VerifierConfig | None = None,
        spill: Spill | None = None,
        shape_rules: ShapeRules | None = None,
    ) -> None:
        """`shape_rules`: those to take shapes by when the config takes shapes (the joins
        of one Faust worker share theirs); by default, rules of its own."""
        self.config = config or VerifierConfig()
        self._spill = spill
        if self.config.grace_ms < 0:
            raise ValueError("grace must be >= 0")
        self.decoder = LegacyDecoder(consumer)
        self._diff = StructuralDiff(
            IgnoredPaths(self.config.ignored_paths), self.config.float_tolerance
        )
        self._grace = self.config.grace_ms
        self._decode_identical_once = not self.config.decode_each_side
        # What takes the shapes of production events, when the runner counts coverage.
        self.shape_rules = (shape_rules or ShapeRules()) if self.config.shapes else None
        self._ordered = self.config.ordered_sides
        self._scope = self.config.scope
        retention, in_memory = self.config.decided_retention_ms, self.config.decided_in_memory_ms
        self._decided_window = retention if in_memory is None else min(retention, in_memory)
        # How far the sister stream's entry-id clock runs ahead of production's (a
        # measured skew between two servers; it outlives resets).
        self._skew_ms = 0
        # Entries that took at least this long to ingest are kept for `take_slow` (a
        # runner that must tell an operator about an event that stalls it).
        self.slow_after_s = math.inf
        self._slow: list[tuple[StreamEntry, float]] = []
        self.reset()

    def reset(self, horizon_ms: int = 0) -> None:
        """Forget everything: used when state is rebuilt from Redis' pending lists.

        Entries older than `horizon_ms` (where a new deployment declared its start)
        only serve as partners: an event is verified when one of its entries is at
        or after the horizon, so a pair cut by the start point is no false gap.
        """
        self.horizon_ms = horizon_ms
        # Waiting events per side, oldest first; an event_id waits on one side only.
        cap = self.config.waiting_max_bytes
        if self._spill is not None:
            self._spill.clear()
        self._waiting: dict[Side, WaitingRoom] = {
            s: WaitingRoom(s, max_bytes=None if cap is None else cap // 2, spill=self._spill)
            for s in STREAM_SIDES
        }
        # Per side, how far its stream has been read (ReadPosition.before_ms).
        self._read_before: dict[Side, int] = {s: START.before_ms for s in STREAM_SIDES}
        self._decided = RecentDecisions()
        # The entry of each recent gap and its bytes, oldest first.
        self._gap_twins: OrderedDict[str, tuple[StreamEntry, int]] = OrderedDict()
        self._gap_twin_bytes = 0

    # -- queries ---------------------------------------------------------------

    def waiting_count(self, side: Side) -> int:
        return len(self._waiting[side])

    def is_waiting(self, entry: StreamEntry) -> bool:
        """Whether this very entry waits for its partner (a runner persisting state asks)."""
        if entry.event_id is None:
            return False
        return self._waiting[entry.side].entry_id(entry.event_id) == entry.entry_id

    def unsettled_since_ms(self, side: Side) -> int:
        """The entry-id time from which `side`'s entries may be unsettled: its oldest
        waiting entry, or how far its stream was read (0: not known)."""
        oldest = self._waiting[side].oldest_arrival()
        read = self._read_before[side]
        return read if oldest is None else min(oldest, read)

    def lookup_needed(self, entries: Iterable[StreamEntry]) -> dict[str, int]:
        """event_ids whose earlier verdict (if any) the core does not know, each with the
        entry-id ms of its first entry here (its decision is looked for near that time).

        A runner with a durable decision store looks these up and passes them
        to `ingest` as `prior`, so duplicates and late arrivals survive restarts.
        """
        prod, sis, decided = self._waiting[PRODUCTION], self._waiting[SISTER], self._decided
        needed: dict[str, int] = {}
        for e in entries:
            event_id = e.event_id
            if (
                event_id is not None
                and event_id not in needed
                and event_id not in prod
                and event_id not in sis
                and event_id not in decided
            ):
                needed[event_id] = e.arrival_ms
        return needed

    # -- input -----------------------------------------------------------------

    def ingest(
        self, entries: Iterable[StreamEntry], prior: Mapping[str, Decision] | None = None
    ) -> list[Outcome]:
        if prior:
            for event_id, decision in prior.items():
                self._decided.remember_if_new(event_id, decision)
        out: list[Outcome] = []
        for entry in entries:
            began = time.perf_counter()
            self._ingest_one(entry, out)
            took = time.perf_counter() - began
            if took >= self.slow_after_s:
                self._slow.append((entry, took))
        self._evict_decisions()
        return out

    def take_slow(self) -> list[tuple[StreamEntry, float]]:
        """The entries that took `slow_after_s` or longer since the last call, with their
        seconds."""
        slow, self._slow = self._slow, []
        return slow

    def advance(self, side: Side, position: ReadPosition) -> None:
        """`side`'s stream has been read up to `position` (it never moves back)."""
        if position.before_ms > self._read_before[side]:
            self._read_before[side] = position.before_ms

    def set_skew(self, sister_ahead_ms: int) -> None:
        """The sister stream's entry ids come from a clock `sister_ahead_ms` ahead of
        production's (two servers): times are compared on production's clock."""
        self._skew_ms = sister_ahead_ms

    def _common_ms(self, entry: StreamEntry) -> int:
        return entry.arrival_ms - self._skew_ms if entry.side is SISTER else entry.arrival_ms

    def expire(self) -> list[Outcome]:
        """Gap verdicts for events whose partner can no longer arrive in time."""
        out: list[Outcome] = []
        for side in STREAM_SIDES:
            waiting = self._waiting[side]
            waiting.pack_older_than(self._read_before[side] - PACK_AFTER_MS)
            # The partner would have an entry id <= arrival + grace on the other stream
            # (on the other stream's own clock: the skew moves that bound).
            other = ReadPosition(self._read_before[OTHER_SIDE[side]])
            shift = self._skew_ms if side is PRODUCTION else -self._skew_ms
            while (arrival := waiting.oldest_arrival()) is not None and other.covers(
                arrival + self._grace + shift
            ):
                out.append(self._expired(waiting.take_oldest()))
        self._evict_decisions()
        return out

    def flush(self) -> list[Outcome]:
        """End of a bounded input: every waiting event is a gap (or out of scope)."""
        return [
            self._expired(entry) for side in STREAM_SIDES for entry in self._waiting[side].drain()
        ]

    def compare_late(self, outcome: Outcome, twin: StreamEntry) -> None:
        """Compares a late arrival with the entry its gap verdict was about.

        For LATE outcomes whose twin the core no longer holds: the runner fetched it.
        """
        late = outcome.settles[0]
        if outcome.kind is not OutcomeKind.LATE or twin.side is late.side:
            raise ValueError("compare_late needs a late outcome and the entry on the other side")
        production, sister = (twin, late) if twin.side is PRODUCTION else (late, twin)
        outcome.late_record = self._judge(production, sister)[0]

    # -- internals -------------------------------------------------------------

    def _ingest_one(self, entry: StreamEntry, out: list[Outcome]) -> None:
        side = entry.side
        if self._ordered and entry.arrival_ms > self._read_before[side]:
            self._read_before[side] = ReadPosition.at_entry(entry.arrival_ms).before_ms
        event_id = entry.event_id
        if event_id is None:
            if entry.arrival_ms < self.horizon_ms:
                out.append(self._skip(entry))
                return
            if is_tombstone(entry):
                out.append(Outcome(OutcomeKind.TOMBSTONE, None, (entry,)))
                return
            record = VerdictRecord(
                None, Verdict.MALFORMED, side, entry.entry_id, error=entry.problem
            )
            out.append(Outcome(OutcomeKind.EXTRA, record, (entry,)))
            return

        if event_id in self._waiting[side]:
            if self._waiting[side].entry_id(event_id) != entry.entry_id:
                out.append(self._duplicate(entry))  # a re-delivery of one entry is no copy
            return

        twin = self._waiting[OTHER_SIDE[side]].take(event_id)
        if twin is not None:
            first, late = (twin, entry) if self._common_ms(twin) <= self._common_ms(entry) else (
                entry, twin)  # fmt: skip
            if self._common_ms(late) - self._common_ms(first) <= self._grace:
                out.append(self._pair(twin, entry))
            elif first.arrival_ms < self.horizon_ms:
                # The early twin is out of scope; the late one must find a partner in time.
                out.append(self._skip(first))
                self._wait(late)
            else:
                out.append(self._expired(first))
                self._arrived_after_verdict(late, out)
            return

        if event_id in self._decided:
            self._arrived_after_verdict(entry, out)
            return
        self._wait(entry)

    def _wait(self, entry: StreamEntry) -> None:
        self._waiting[entry.side].put(entry)

    def _arrived_after_verdict(self, entry: StreamEntry, out: list[Outcome]) -> None:
        event_id = entry.event_id
        assert event_id is not None
        decision = self._decided.get(event_id)
        assert decision is not None
        if SIDE_LETTERS[entry.side] in decision.sides:
            out.append(self._duplicate(entry))
            return
        updated = Decision(decision.verdict, SEEN_BOTH, decision.first_seen_ms)
        self._decided.remember(event_id, updated)
        outcome = Outcome(
            OutcomeKind.LATE, None, (entry,), updated,
            late_by_ms=entry.arrival_ms - decision.first_seen_ms,
        )  # fmt: skip
        kept = self._gap_twins.pop(event_id, None)
        if kept is not None:
            self._gap_twin_bytes -= kept[1]
            self.compare_late(outcome, kept[0])
        out.append(outcome)

    def _skip(self, *entries: StreamEntry) -> Outcome:
        """Settles entries from before the horizon without a verdict."""
        return Outcome(OutcomeKind.SKIP, None, entries)

    def _duplicate(self, entry: StreamEntry) -> Outcome:
        if entry.arrival_ms < self.horizon_ms:
            return self._skip(entry)
        record = VerdictRecord(
            entry.event_id, Verdict.DUPLICATE, entry.side, entry.entry_id,
            sources=sources_of(entry),
        )  # fmt: skip
        return Outcome(OutcomeKind.EXTRA, record, (entry,))

    def _expired(self, present: StreamEntry) -> Outcome:
        """The partner did not come in time: a gap, unless production did not expect it."""
        if present.side is PRODUCTION and not self._scope.expects(present.fields):
            return self._out_of_scope(present)
        return self._gap(present)

    def _out_of_scope(self, present: StreamEntry) -> Outcome:
        event_id = present.event_id
        assert event_id is not None
        if present.arrival_ms < self.horizon_ms:
            return self._skip(present)
        # Remembered like a verdict, so a twin that comes later is a late arrival, not
        # a sister event production never had.
        decision = Decision(None, SIDE_LETTERS[PRODUCTION], present.arrival_ms)
        self._decided.remember(event_id, decision)
        outcome = Outcome(OutcomeKind.OUT_OF_SCOPE, None, (present,), decision)
        if self.shape_rules is not None:
            outcome.shape = self._shape_of(present)
        return outcome

    def _gap(self, present: StreamEntry) -> Outcome:
        event_id = present.event_id
        assert event_id is not None
        if present.arrival_ms < self.horizon_ms:
            return self._skip(present)
        verdict = MISSING_ON[OTHER_SIDE[present.side]]
        decision = Decision(verdict, SIDE_LETTERS[present.side], present.arrival_ms)
        self._decided.remember(event_id, decision)
        twins, size = self._gap_twins, entry_bytes(present)
        twins[event_id] = (present, size)
        self._gap_twin_bytes += size
        while len(twins) > GAP_TWINS_KEPT or self._gap_twin_bytes > GAP_TWINS_MAX_BYTES:
            self._gap_twin_bytes -= twins.popitem(last=False)[1][1]
        record = VerdictRecord(
            event_id, verdict, entry_id=present.entry_id, sources=sources_of(present)
        )
        outcome = Outcome(_PRIMARY, record, (present,), decision)
        if self.shape_rules is not None and present.side is PRODUCTION:
            outcome.shape = self._shape_of(present)
        return outcome

    def _shape_of(self, production: StreamEntry, value: Any = UNDECODED) -> Shape | None:
        """The shape of production's event; decoded here unless `value` is at hand."""
        assert self.shape_rules is not None
        if value is UNDECODED:
            value, error = self.decoder.decode(production.fields)
            if error is not None:
                return None
        return self.shape_rules.shape(entity_of(production.fields), value)

    def _pair(self, a: StreamEntry, b: StreamEntry) -> Outcome:
        if max(a.arrival_ms, b.arrival_ms) < self.horizon_ms:
            return self._skip(a, b)
        production, sister = (a, b) if a.side is PRODUCTION else (b, a)
        record, value = self._judge(production, sister)
        first_seen = min(a.arrival_ms, b.arrival_ms)
        decision = Decision(record.verdict, SEEN_BOTH, first_seen)
        self._decided.remember(record.event_id, decision)  # type: ignore[arg-type]
        outcome = Outcome(_PRIMARY, record, (production, sister), decision)
        if self.shape_rules is not None and value is not UNDECODED:
            outcome.shape = self._shape_of(production, value)
        return outcome

    def _judge(self, production: StreamEntry, sister: StreamEntry) -> tuple[VerdictRecord, Any]:
        """The pair's record, and production's decoded value (UNDECODED if it has none)."""
        event_id = production.event_id
        if self._decode_identical_once and production.fields == sister.fields:
            # The same bytes through a deterministic consumer: the same value on both sides.
            value, error = self.decoder.decode(production.fields)
            if error is None:
                return VerdictRecord(event_id, _MATCH), value
            both = f"production: {error}; sister: {error}"
            return _undecodable(production, sister, Side.BOTH, None, both), UNDECODED
        p_value, p_error = self.decoder.decode(production.fields)
        s_value, s_error = self.decoder.decode(sister.fields)
        if p_error is not None and s_error is not None:
            error = f"production: {p_error}; sister: {s_error}"
            return _undecodable(production, sister, Side.BOTH, None, error), UNDECODED
        if p_error is not None:
            record = _undecodable(production, sister, PRODUCTION, production.entry_id, p_error)
            return record, UNDECODED
        if s_error is not None:
            return _undecodable(production, sister, SISTER, sister.entry_id, s_error), p_value
        return self._compare(production, sister, p_value, s_value), p_value

    def _compare(
        self, production: StreamEntry, sister: StreamEntry, p_value: Any, s_value: Any
    ) -> VerdictRecord:
        event_id = production.event_id
        suppressed: dict[str, int] = {}
        diff = self._diff
        try:
            differences = with_wire_types(
                diff(p_value, s_value, suppressed),
                production.fields,
                sister.fields,
                (p_value, s_value),
                lambda path: diff.ignores(path, suppressed),
            )
        except Exception as exc:  # values a consumer returned that cannot even be compared
            error = f"the decoded events cannot be compared: {describe_error(exc)}"
            sources = sources_of(production, sister)
            return VerdictRecord(
                event_id, Verdict.UNDECODABLE, Side.BOTH, error=error, sources=sources
            )
        if not differences:
            record = VerdictRecord(event_id, _MATCH)
        else:
            p_version, s_version = parse_version(production.fields), parse_version(sister.fields)
            raced = p_version is not None and s_version is not None and p_version != s_version
            verdict = Verdict.RACE if raced else Verdict.MISMATCH
            record = VerdictRecord(
                event_id, verdict, differences=differences, sources=sources_of(production, sister)
            )
        if suppressed:
            record.ignored = suppressed
        return record

    def _evict_decisions(self) -> None:
        self._decided.forget_older_than(max(self._read_before.values()) - self._decided_window)


def _undecodable(
    production: StreamEntry, sister: StreamEntry, side: Side, entry_id: str | None, error: str
) -> VerdictRecord:
    """The pair's `undecodable` record, with both entries' source blocks (row CDC)."""
    return VerdictRecord(
        production.event_id, Verdict.UNDECODABLE, side, entry_id, error,
        sources=sources_of(production, sister),
    )  # fmt: skip
