"""The go / no-go rule: criteria, their thresholds and the decision (docs/rollouts.md).

Rates are over events, the event_ids with a primary verdict: a `race` is an event but
no mismatch; `duplicate`, `malformed`, `out_of_scope`, `tombstone` and `late` are no events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from cdc_verify.config.settings import Settings
from cdc_verify.core.breakdown import OPS, OTHER, UNKNOWN
from cdc_verify.schemas.verdicts import GAP_VERDICTS, PRIMARY_VERDICTS, Verdict

PRIMARY = tuple(v.value for v in PRIMARY_VERDICTS)
# The label values the counters can hold (core/breakdown.py bounds them).
ENTITY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
OP_VALUES = (*OPS, UNKNOWN, OTHER)
GAPS = tuple(v.value for v in PRIMARY_VERDICTS if v in GAP_VERDICTS)


class GateDecision(StrEnum):
    GO = "go"
    NO_GO = "no_go"
    CANNOT_DECIDE = "cannot_decide"

    @property
    def exit_status(self) -> int:
        return {GateDecision.GO: 0, GateDecision.NO_GO: 1, GateDecision.CANNOT_DECIDE: 2}[self]

    @property
    def label(self) -> str:
        return {
            GateDecision.GO: "GO",
            GateDecision.NO_GO: "NO-GO",
            GateDecision.CANNOT_DECIDE: "CANNOT DECIDE",
        }[self]


@dataclass(frozen=True, slots=True)
class Criteria:
    max_mismatch_rate: float  # a fraction of events, 0..1
    max_undecodable: int
    max_gaps: int
    min_events: int
    # Verified shapes over production's shapes (docs/coverage.md), 0..1; None: not judged.
    min_coverage: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **given: Any) -> Criteria:
        """The settings' gate_* thresholds, each overridden by a `given` one not None."""
        chosen = {k: v for k, v in given.items() if v is not None}
        return cls(
            max_mismatch_rate=chosen.get("max_mismatch_rate", settings.gate_max_mismatch_rate),
            max_undecodable=chosen.get("max_undecodable", settings.gate_max_undecodable),
            max_gaps=chosen.get("max_gaps", settings.gate_max_gaps),
            min_events=chosen.get("min_events", settings.gate_min_events),
            min_coverage=chosen.get("min_coverage"),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One criterion: what was measured, against what, and whether it passed
    (measured and passed are None when nothing could be measured)."""

    name: str
    flag: str
    measured: float | int | None
    threshold: float | int
    passed: bool | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "flag": self.flag, "measured": self.measured,
                "threshold": self.threshold, "passed": self.passed}  # fmt: skip


def parse_rate(text: str) -> float:
    """A share of events: a fraction (0.001) or a percentage (0.1%)."""
    body = text.strip()
    scale = Fraction(1, 100) if body.endswith("%") else Fraction(1)
    try:
        value = Fraction(body.removesuffix("%").strip()) * scale
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a share of events like 0.001 or 0.1%") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not between 0 and 1 (0% and 100%)")
    return float(value)


def _at_most(value: Fraction | int, bound: float | int) -> bool:
    # A threshold is compared as the decimal it was written as (0.001, not the binary
    # float just above or below it): a rate exactly at the threshold passes.
    return value <= Fraction(repr(bound))


def measure(
    counts: Mapping[str, int], criteria: Criteria, coverage: float | None = None
) -> list[Result]:
    """Every criterion against `counts` (name -> count) and the coverage ratio."""
    events = sum(counts.get(name, 0) for name in PRIMARY)
    mismatches = counts.get(Verdict.MISMATCH.value, 0)
    undecodable = counts.get(Verdict.UNDECODABLE.value, 0)
    gaps = sum(counts.get(name, 0) for name in GAPS)
    rate = Fraction(mismatches, events) if events else Fraction(0)
    c = criteria
    results = [
        Result("max_mismatch_rate", "--max-mismatch-rate", float(rate), c.max_mismatch_rate,
               _at_most(rate, c.max_mismatch_rate)),
        Result("max_undecodable", "--max-undecodable", undecodable, c.max_undecodable,
               undecodable <= c.max_undecodable),
        Result("max_gaps", "--max-gaps", gaps, c.max_gaps, gaps <= c.max_gaps),
        Result("min_events", "--min-events", events, c.min_events, events >= c.min_events),
    ]  # fmt: skip
    if c.min_coverage is not None:
        passed = None if coverage is None else coverage >= c.min_coverage
        results.append(Result("min_coverage", "--min-coverage", coverage, c.min_coverage, passed))
    return results


def unmeasured(criteria: Criteria) -> list[Result]:
    """The criteria with their thresholds, when nothing could be measured."""
    return [
        Result(r.name, r.flag, None, r.threshold, None)
        for r in measure({}, criteria)  # the same order and names, values dropped
    ]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Which endpoint is gated: one entity, one op, both, or everything (None)."""

    entity: str | None = None
    op: str | None = None

    def describe(self) -> str:
        if self.entity is None and self.op is None:
            return "every entity and op"
        return f"{self.entity or '*'}/{self.op or '*'}"


class CannotMeasure(Exception):
    """Nothing to decide on (a server away, a bad report): the reason is one line."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a source counted for a scope, and which `entity/op`s it holds at all."""

    counts: dict[str, int]
    seen: tuple[str, ...] = ()
    coverage: float | None = None  # verified shapes / shapes, where the source has shapes


@dataclass(frozen=True, slots=True)
class Answer:
    """What `gate` answers: `gate --json` and GET /api/gate print `as_json()`."""

    decision: GateDecision
    reason: str
    source: dict[str, Any]
    scope: Endpoint
    criteria: list[Result]
    events: int | None = None
    counts: dict[str, int] | None = None

    @property
    def measured(self) -> bool:
        """False for `cannot_measure`'s answer: nothing was read, `reason` says why."""
        return self.events is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "exit_status": self.decision.exit_status,
            "reason": self.reason,
            "source": self.source,
            "scope": {"entity": self.scope.entity, "op": self.scope.op},
            "events": self.events,
            "counts": self.counts,
            "criteria": [r.as_json() for r in self.criteria],
        }


def judge(
    measured: Measurement, criteria: Criteria, source: dict[str, Any], scope: Endpoint
) -> Answer:
    """The decision on measured counts: too few events is no answer, whatever failed."""
    counts = measured.counts
    results = measure(counts, criteria, measured.coverage)
    events = sum(counts.get(name, 0) for name in PRIMARY)
    failed = [r for r in results if r.passed is False and r.name != "min_events"]
    what = "; ".join(_failure(r, counts) for r in failed)
    unknown = [r for r in results if r.passed is None]
    if unknown:  # a criterion asked for that the source cannot measure
        decision = GateDecision.CANNOT_DECIDE
        reason = (
            f"{unknown[0].flag}: the source has no shape coverage (coverage = false, or no "
            "production event counted yet)"
        )
    elif events == 0 or events < criteria.min_events:
        decision = GateDecision.CANNOT_DECIDE
        reason = (
            f"no events for {scope.describe()}" if events == 0
            else f"{events:,} events, fewer than --min-events {criteria.min_events:,}"
        )  # fmt: skip
        if events == 0 and scope != Endpoint() and measured.seen:
            reason += f" (there are counts for {', '.join(measured.seen)})"
        if failed:
            reason += f" (failing so far: {what})"
    elif failed:
        decision, reason = GateDecision.NO_GO, what
    else:
        decision, reason = GateDecision.GO, f"every criterion passed on {events:,} events"
    return Answer(decision, reason, source, scope, results, events, dict(counts))


def _failure(result: Result, counts: Mapping[str, int]) -> str:
    if result.name == "max_mismatch_rate":
        mismatches = counts.get(Verdict.MISMATCH.value, 0)
        return (
            f"{result.flag}: {percent(result.measured)} of events are mismatches "
            f"({mismatches:,}), above {percent(result.threshold)}"
        )
    if result.name == "max_gaps":
        parts = ", ".join(f"{name} {counts.get(name, 0):,}" for name in GAPS)
        return f"{result.flag}: {result.measured:,} gaps ({parts}), more than {result.threshold:,}"
    if result.name == "min_coverage":
        return (
            f"{result.flag}: {percent(result.measured)} of production's shapes verified, "
            f"below {percent(result.threshold)} (cdc-verify coverage lists them)"
        )
    return f"{result.flag}: {result.measured:,} undecodable, more than {result.threshold:,}"


def percent(fraction: float | int | None) -> str:
    """0.000417 -> '0.0417%': enough digits to tell a rate from its threshold."""
    if fraction is None:
        return "n/a"
    return f"{float(fraction) * 100:.6g}%"


def cannot_measure(
    reason: str, criteria: Criteria, source: dict[str, Any], scope: Endpoint
) -> Answer:
    return Answer(GateDecision.CANNOT_DECIDE, reason, source, scope, unmeasured(criteria))
