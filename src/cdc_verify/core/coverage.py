"""Coverage: which shapes of event production sent, and how far each was verified.

Shapes come from the core (`core/shape.py`), each with the values of the paths
that were enum-like when it was taken. Counts are kept per shape as taken; a report
first takes out the values of every path that has become wide since (`ShapeRules`), which
may merge shapes, so the figures do not depend on the order of the events. At most
MAX_SHAPES shapes are counted per entity; events of shapes past that are counted
together as the entity's `overflow_events`.

Each part of a shape (`/media/*/type str=gif`) is also reported on its own, with the sum
of the counts of the shapes that have it: which parts were never verified in any
combination.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cdc_verify.core.outcome import EVENT_COVERAGE_VALUES, EventCoverage
from cdc_verify.core.shape import (
    MAX_SHAPES,
    Part,
    Shape,
    ShapeRules,
    part_fields,
    project,
)
from cdc_verify.schemas.models import Coverage, CoverageFigures

# Per entity, the most frequent parts that vary (are not in every production event) are
# paired: at most 64 * 63 / 2 = 2,016 pairs an entity.
MAX_PAIR_PARTS = 64


class ShapeStatus(StrEnum):
    """The status of a shape, a part or a pair, from what became of its events
    (`EventCoverage`); in the order to look at them."""

    NEVER_VERIFIED = "never_verified"
    MISMATCHED = "mismatched"
    VERIFIED = "verified"


STATUSES = tuple(status.value for status in ShapeStatus)  # as text (the CLI's choices)
_LOOK_ORDER: dict[str, int] = {status: i for i, status in enumerate(ShapeStatus)}
# The counts of a shape, a part or a pair, as the reports show them.
COUNT_COLUMNS = ("production", "match", "mismatch", "unverified")


@dataclass
class ShapeCounts:
    """What happened to the production events of one shape."""

    production: int = 0  # every production event with a primary outcome, in scope or not
    match: int = 0
    mismatch: int = 0  # mismatch or race
    unverified: int = 0  # the sister missed it, could not decode it, or it was out of scope

    @classmethod
    def one(cls, status: str, events: int = 1) -> ShapeCounts:
        """`events` production events of one `EventCoverage`: match, mismatch or
        unverified."""
        if status not in EVENT_COVERAGE_VALUES:
            raise ValueError(f"not a coverage status: {status!r}")
        counts = cls(production=events)
        setattr(counts, EventCoverage(status).value, events)
        return counts

    def merge(self, other: ShapeCounts) -> None:
        self.production += other.production
        self.match += other.match
        self.mismatch += other.mismatch
        self.unverified += other.unverified

    @property
    def status(self) -> ShapeStatus:
        """`mismatched` once one event mismatched; else `verified` once one matched;
        else `never_verified`."""
        if self.mismatch:
            return ShapeStatus.MISMATCHED
        return ShapeStatus.VERIFIED if self.match else ShapeStatus.NEVER_VERIFIED

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "production": self.production,
            "match": self.match,
            "mismatch": self.mismatch,
            "unverified": self.unverified,
        }


@dataclass
class EntityShapes:
    shapes: dict[Shape, ShapeCounts] = field(default_factory=dict)
    overflow: ShapeCounts = field(default_factory=ShapeCounts)
    undecodable: int = 0  # production events the consumer could not decode: no shape
    merged_at: int = 0  # how many wide paths the shapes were last merged by


@dataclass(frozen=True)
class ShapeRow:
    entity: str
    shape_id: str
    parts: tuple[Part, ...]
    counts: ShapeCounts

    def as_json(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "shape": self.shape_id,
            **self.counts.as_json(),
            "parts": [describe(p) for p in self.parts],
        }


class CoverageTally:
    """`rules`: those the verifier takes its shapes with (it learns the wide paths)."""

    def __init__(self, rules: ShapeRules, max_shapes: int = MAX_SHAPES) -> None:
        self._rules = rules
        self._max_shapes = max_shapes
        self.entities: dict[str, EntityShapes] = {}

    def add(self, entity: str, shape: Shape | None, counts: ShapeCounts) -> None:
        """Counts one production event (`counts` says what became of it)."""
        state = self._entity(entity)
        if shape is None:
            state.undecodable += counts.production
            return
        held = state.shapes.get(shape)
        if held is None:
            if len(state.shapes) >= self._max_shapes:
                self._merge(entity, state)  # paths gone wide since may free room
            if len(state.shapes) >= self._max_shapes:
                state.overflow.merge(counts)
                return
            held = state.shapes[shape] = ShapeCounts()
        held.merge(counts)

    def add_overflow(self, entity: str, counts: ShapeCounts) -> None:
        """Counts production events of shapes another tally had no room for."""
        self._entity(entity).overflow.merge(counts)

    def _entity(self, entity: str) -> EntityShapes:
        state = self.entities.get(entity)
        if state is None:
            state = self.entities[entity] = EntityShapes()
        return state

    def _merge(self, entity: str, state: EntityShapes) -> None:
        wide = self._rules.wide.get(entity, set())
        if len(wide) == state.merged_at:
            return  # no path went wide since: nothing would merge
        state.merged_at = len(wide)
        merged: dict[Shape, ShapeCounts] = {}
        for shape, counts in state.shapes.items():
            key = project(shape, wide)
            held = merged.get(key)
            if held is None:
                merged[key] = counts
            else:
                held.merge(counts)
        state.shapes = merged

    def rows(self) -> list[ShapeRow]:
        """Every shape, by entity, the most frequent first."""
        out = []
        for entity in sorted(self.entities):
            state = self.entities[entity]
            self._merge(entity, state)
            for shape, counts in state.shapes.items():
                name, parts = _named(shape)
                out.append(ShapeRow(entity, name, parts, counts))
        out.sort(key=lambda r: (r.entity, -r.counts.production, r.shape_id))
        return out

    def parts(self, rows: list[ShapeRow] | None = None) -> list[dict[str, object]]:
        """Every part of every shape (of `rows`, if given: what `rows()` returned), with the
        summed counts of the shapes that have it."""
        by_part: dict[tuple[str, Part], ShapeCounts] = {}
        for row in self.rows() if rows is None else rows:
            for part in row.parts:
                held = by_part.get((row.entity, part))
                if held is None:
                    held = by_part[(row.entity, part)] = ShapeCounts()
                held.merge(row.counts)
        ordered = sorted(by_part.items(), key=lambda kv: (kv[0][0], _sort_key(kv[0][1])))
        return [
            {"entity": entity, "part": describe(part), **counts.as_json()}
            for (entity, part), counts in ordered
        ]

    def pairs(
        self, rows: list[ShapeRow] | None = None, parts: list[dict[str, object]] | None = None
    ) -> list[dict[str, object]]:
        """Pairs of parts that vary, with the summed counts of the shapes that have both:
        which combinations were verified, where the shapes of a rich model are too many
        to be verified one by one (docs/coverage.md). Of each entity, the MAX_PAIR_PARTS
        parts most often present (and not always) are paired. `each_matched`: each of
        the two parts had a match, in some shape (`parts`: what parts(rows) returned)."""
        rows = self.rows() if rows is None else rows
        parts = self.parts(rows) if parts is None else parts
        matched = {(p["entity"], p["part"]) for p in parts if int(str(p["match"])) > 0}
        by_entity: dict[str, list[ShapeRow]] = {}
        for row in rows:
            by_entity.setdefault(row.entity, []).append(row)
        out: list[dict[str, object]] = []
        for entity, entity_rows in by_entity.items():
            events = sum(r.counts.production for r in entity_rows)
            present: dict[Part, int] = {}
            for row in entity_rows:
                for part in row.parts:
                    present[part] = present.get(part, 0) + row.counts.production
            varying = sorted(
                (p for p, n in present.items() if n < events),
                key=lambda p: (-present[p], _sort_key(p)),
            )
            chosen = set(varying[:MAX_PAIR_PARTS])
            paired: dict[tuple[Part, Part], ShapeCounts] = {}
            for row in entity_rows:
                mine = [p for p in row.parts if p in chosen]  # row.parts are sorted
                for i, first in enumerate(mine):
                    for second in mine[i + 1 :]:
                        held = paired.get((first, second))
                        if held is None:
                            held = paired[(first, second)] = ShapeCounts()
                        held.merge(row.counts)
            for (first, second), counts in sorted(
                paired.items(), key=lambda kv: (_sort_key(kv[0][0]), _sort_key(kv[0][1]))
            ):
                named = [describe(first), describe(second)]
                each = all((entity, name) in matched for name in named)
                out.append(
                    {"entity": entity, "parts": named, **counts.as_json(), "each_matched": each}
                )
        return out

    def totals(self) -> Coverage:
        """The figures summary.json carries (docs/coverage.md)."""
        by_entity = {}
        for entity, state in self.entities.items():
            self._merge(entity, state)
        for entity in sorted(self.entities):
            state = self.entities[entity]
            statuses = [c.status for c in state.shapes.values()]
            by_entity[entity] = CoverageFigures.of(
                statuses.count(ShapeStatus.VERIFIED), statuses.count(ShapeStatus.MISMATCHED),
                len(statuses),
                overflow_events=state.overflow.production, undecodable_events=state.undecodable,
            )  # fmt: skip
        figures = list(by_entity.values())
        every = CoverageFigures.of(
            sum(f.verified for f in figures), sum(f.mismatched for f in figures),
            sum(f.shapes for f in figures),
            overflow_events=sum(f.overflow_events for f in figures),
            undecodable_events=sum(f.undecodable_events for f in figures),
        )  # fmt: skip
        return Coverage(**every.model_dump(), by_entity=by_entity)


def look_first(part: Mapping[str, Any]) -> tuple[int, float, int]:
    """Sort key of `CoverageTally.parts()` rows, in the order to look at them: never
    verified, then mismatched, then verified; mismatched parts by their share of
    mismatches (a part in every event says little); the most frequent first."""
    production = int(part["production"])
    return (
        _LOOK_ORDER[str(part["status"])],
        -int(part["mismatch"]) / max(production, 1),
        -production,
    )


def parts_to_verify(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts not verified (never, or with a mismatch), in the order to look at them."""
    return sorted((p for p in parts if p["status"] != ShapeStatus.VERIFIED), key=look_first)


def combination_gaps(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs no event of which matched, although each of their two parts matched in
    other shapes: the combinations to test next, in the order to look at them."""
    return sorted((p for p in pairs if p["each_matched"] and not p["match"]), key=look_first)


def _sort_key(part: Part) -> tuple[str, str, str]:
    path, kind, value = part_fields(part)
    return path, kind, value or ""


def describe(part: Part) -> str:
    """`/media/*/type str=gif`, `/edited float`, `/stickied bool=false`."""
    path, kind, value = part_fields(part)
    text = f"{path or '/'} {kind}"
    return text if value is None else f"{text}={value}"


def shape_id(parts: Iterable[Part]) -> str:
    """12 hex digits that name a shape, the same on every run and machine."""
    text = "\n".join(describe(p) for p in sorted(parts, key=_sort_key))
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=6).hexdigest()


def _named(shape: Shape) -> tuple[str, tuple[Part, ...]]:
    """shape_id and the sorted parts, remembered: a live reader names the same thousands
    of shapes at every read (2,000 comment shapes take about 70 ms the first time)."""
    named = _NAMES.get(shape)
    if named is None:
        if len(_NAMES) >= 8 * MAX_SHAPES:
            _NAMES.clear()
        parts = tuple(sorted(shape, key=_sort_key))
        named = _NAMES[shape] = (shape_id(parts), parts)
    return named


_NAMES: dict[Shape, tuple[str, tuple[Part, ...]]] = {}


class CoverageUnavailable(Exception):
    """There is no coverage to show; the message says why."""


@dataclass(frozen=True)
class CoverageReport:
    totals: Coverage
    shapes: list[dict[str, Any]]
    parts: list[dict[str, Any]]
    pairs: list[dict[str, Any]]  # CoverageTally.pairs(); empty in an older coverage.json

    def only(self, entity: str | None, status: str | None) -> CoverageReport:
        def keep(row: dict[str, Any]) -> bool:
            return entity in (None, row["entity"]) and status in (None, row["status"])

        return CoverageReport(
            self.totals,
            [r for r in self.shapes if keep(r)],
            [r for r in self.parts if keep(r)],
            [r for r in self.pairs if keep(r)],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "coverage": self.totals.model_dump(mode="json"),
            "shapes": self.shapes,
            "parts": self.parts,
            "pairs": self.pairs,
        }

    @classmethod
    def of_tally(cls, tally: CoverageTally, pairs: bool = True) -> CoverageReport:
        """`pairs`: work out the pairs of parts too (tens of milliseconds for a rich
        model: the status page does without them)."""
        rows = tally.rows()
        parts = tally.parts(rows)
        shapes = [r.as_json() for r in rows]
        return cls(tally.totals(), shapes, parts, tally.pairs(rows, parts) if pairs else [])
