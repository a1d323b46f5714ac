"""Mismatch groups: verdicts that share a fingerprint, so one bug reads as one line.

The fingerprint is (verdict, side, error, each difference's path, kind and wire
types, entity and op), with list indices in paths replaced by `*`: the same bug on the
third award and on the first is one group, the same bug in two write endpoints two.
Fixing a bug in the new service empties its group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.outcome import Outcome
from cdc_verify.pipeline.sinks.base import Sink
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.timestamps import iso_ms

EXAMPLES = 5
_INDEX = re.compile(r"/\d+(?=/|$)")


class Fingerprint(NamedTuple):
    verdict: str
    side: str | None
    error: str | None
    # (path with * for list indices, kind, production wire type, sister wire type)
    differences: tuple[tuple[str, str, str | None, str | None], ...]
    entity: str
    op: str


# What a group is about when it has no differences and no error: the gaps and copies.
GAP_WHAT = {
    Verdict.MISSING_IN_SISTER.value: "only on production: no sister event within the grace window",
    Verdict.MISSING_IN_PRODUCTION.value: (
        "only on the sister: no production event within the grace window"
    ),
}


def describe(
    fp: Fingerprint, code: Callable[[str], str] = str, text: Callable[[str], str] = str
) -> str:
    """A group's "what": its differences (paths through `code`), its error (through
    `text`), or what kind of gap or copy it is. report.html and summary.md show it."""
    what = "; ".join(
        f"{code(path)} {kind}" + (f" ({pw} vs {sw})" if pw or sw else "")
        for path, kind, pw, sw in fp.differences
    )
    if fp.verdict in GAP_WHAT:
        return GAP_WHAT[fp.verdict]
    if fp.verdict == Verdict.DUPLICATE.value and not what:
        return f"another copy of an event on {fp.side or 'one side'}"
    what = what or (text(fp.error) if fp.error else "")
    return f"{fp.side}: {what}" if fp.side and what else (what or fp.side or "")


@dataclass(slots=True)
class Group:
    fingerprint: Fingerprint
    count: int = 0
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    examples: list[str] = field(default_factory=list)
    # The first example's entries, for the report's side-by-side view.
    example_entries: tuple[StreamEntry, ...] = ()

    def as_json(self) -> dict[str, Any]:
        verdict, side, error, differences, entity, op = self.fingerprint
        return {
            "verdict": verdict,
            "entity": entity,
            "op": op,
            "side": side,
            "error": error,
            "differences": [
                {"path": p, "kind": k, "production_wire": pw, "sister_wire": sw}
                for p, k, pw, sw in differences
            ],
            "count": self.count,
            "first_seen": iso_ms(self.first_seen_ms, "milliseconds"),
            "last_seen": iso_ms(self.last_seen_ms, "milliseconds"),
            "examples": self.examples,
        }


_MATCH = Verdict.MATCH  # per outcome: a module name is faster than the Enum's class


def fingerprint_of(outcome: Outcome) -> Fingerprint | None:
    """The group of the outcome's record; None for a match or an outcome without a record."""
    record = outcome.record
    if record is None or record.verdict is _MATCH:
        return None
    return Fingerprint(
        record.verdict.value,
        record.side.value if record.side else None,
        record.error,
        tuple(
            (_INDEX.sub("/*", d.path), d.kind.value, d.production_wire, d.sister_wire)
            for d in record.differences or ()
        ),
        *outcome.entity_op,
    )


class MismatchGroups(Sink):
    """Groups every verdict other than `match`."""

    def __init__(self, max_groups: int | None = None) -> None:
        self._groups: dict[Fingerprint, Group] = {}
        # A long-lived worker caps its groups (an error text with a unique detail
        # would make one group an event); records beyond the cap are only counted.
        self._max_groups = max_groups
        self.ungrouped = 0

    def add(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            record = outcome.record
            fingerprint = fingerprint_of(outcome)
            if record is None or fingerprint is None:
                continue
            group = self._groups.get(fingerprint)
            seen = min((e.arrival_ms for e in outcome.settles), default=0)
            if group is None:
                if self._max_groups is not None and len(self._groups) >= self._max_groups:
                    self.ungrouped += 1
                    continue
                group = self._groups[fingerprint] = Group(fingerprint, 0, seen, seen)
                group.example_entries = outcome.settles
            group.count += 1
            group.first_seen_ms = min(group.first_seen_ms, seen)
            group.last_seen_ms = max(group.last_seen_ms, seen)
            if len(group.examples) < EXAMPLES:
                group.examples.append(record.event_id or (record.entry_id or ""))

    def sorted(self) -> list[Group]:
        """Largest first; ties by verdict and fingerprint, so the order is stable."""
        return sorted(self._groups.values(), key=lambda g: (-g.count, repr(g.fingerprint)))
