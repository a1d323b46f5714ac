"""Coverage: which shapes of event production sent, and how far each was verified.

Shapes come from the core (`pipeline/core/shape.py`), with the value of every short
string and bool. Here those values are kept only where they look like an enum: a path
(per entity) whose values stay within ENUM_VALUES distinct ones. Once a path passes
that, it is "wide" (an id, a name, a body) and its values leave every shape, earlier
ones included, which may merge shapes. So the result depends on the events seen, not on
their order. At most MAX_SHAPES shapes are counted per entity; events of shapes past
that are counted together as the entity's `overflow`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cdc_verify.pipeline.core.shape import Part, Shape
from cdc_verify.schemas.models import Coverage, CoverageFigures

ENUM_VALUES = 8
MAX_SHAPES = 2_000


@dataclass
class ShapeCounts:
    """What happened to the production events of one shape."""

    production: int = 0  # every production event with a primary outcome, in scope or not
    match: int = 0
    mismatch: int = 0  # mismatch or race
    unverified: int = 0  # the sister missed it, could not decode it, or it was out of scope

    def merge(self, other: ShapeCounts) -> None:
        self.production += other.production
        self.match += other.match
        self.mismatch += other.mismatch
        self.unverified += other.unverified

    @property
    def status(self) -> str:
        """ "mismatched" once one event of the shape mismatched; else "verified" once one
        matched; else "never_verified"."""
        if self.mismatch:
            return "mismatched"
        return "verified" if self.match else "never_verified"


@dataclass
class EntityShapes:
    values: dict[str, set[str | bool]] = field(default_factory=dict)  # path -> values so far
    wide: set[str] = field(default_factory=set)
    shapes: dict[Shape, ShapeCounts] = field(default_factory=dict)
    overflow: ShapeCounts = field(default_factory=ShapeCounts)
    undecodable: int = 0  # production events the consumer could not decode: no shape


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
            "status": self.counts.status,
            "production": self.counts.production,
            "match": self.counts.match,
            "mismatch": self.counts.mismatch,
            "unverified": self.counts.unverified,
            "parts": [describe(p) for p in self.parts],
        }


class CoverageTally:
    def __init__(self, enum_values: int = ENUM_VALUES, max_shapes: int = MAX_SHAPES) -> None:
        self._enum_values = enum_values
        self._max_shapes = max_shapes
        self.entities: dict[str, EntityShapes] = {}

    def add(self, entity: str, shape: Shape | None, counts: ShapeCounts) -> None:
        """Counts one production event (`counts` says what became of it)."""
        state = self.entities.get(entity)
        if state is None:
            state = self.entities[entity] = EntityShapes()
        if shape is None:
            state.undecodable += counts.production
            return
        if self._learn(state, shape):
            state.shapes = _reprojected(state.shapes, state.wide)
        key = _project(shape, state.wide)
        held = state.shapes.get(key)
        if held is None:
            if len(state.shapes) >= self._max_shapes:
                state.overflow.merge(counts)
                return
            held = state.shapes[key] = ShapeCounts()
        held.merge(counts)

    def _learn(self, state: EntityShapes, shape: Shape) -> bool:
        """Takes note of the shape's values; True when a path just became wide."""
        widened = False
        for path, _, value in shape:
            if value is None or path in state.wide:
                continue
            seen = state.values.setdefault(path, set())
            seen.add(value)
            if len(seen) > self._enum_values:
                state.wide.add(path)
                del state.values[path]
                widened = True
        return widened

    def rows(self) -> list[ShapeRow]:
        """Every shape, by entity, the most frequent first."""
        out = []
        for entity in sorted(self.entities):
            state = self.entities[entity]
            for shape, counts in state.shapes.items():
                parts = tuple(sorted(shape, key=_sort_key))
                out.append(ShapeRow(entity, shape_id(parts), parts, counts))
        out.sort(key=lambda r: (r.entity, -r.counts.production, r.shape_id))
        return out

    def totals(self) -> Coverage:
        """The figures summary.json carries (docs/coverage.md)."""
        by_entity = {}
        for entity in sorted(self.entities):
            state = self.entities[entity]
            statuses = [c.status for c in state.shapes.values()]
            by_entity[entity] = CoverageFigures.of(
                statuses.count("verified"), statuses.count("mismatched"), len(statuses),
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


def _project(shape: Shape, wide: set[str]) -> Shape:
    if not wide:
        return shape
    return frozenset(
        (path, kind, None) if value is not None and path in wide else (path, kind, value)
        for path, kind, value in shape
    )


def _reprojected(shapes: dict[Shape, ShapeCounts], wide: set[str]) -> dict[Shape, ShapeCounts]:
    out: dict[Shape, ShapeCounts] = {}
    for shape, counts in shapes.items():
        key = _project(shape, wide)
        held = out.get(key)
        if held is None:
            out[key] = counts
        else:
            held.merge(counts)
    return out


def _sort_key(part: Part) -> tuple[str, str, str]:
    return part[0], part[1], repr(part[2])


def describe(part: Part) -> str:
    """`/media/*/type str=gif`, `/edited float`, `/stickied bool=false`."""
    path, kind, value = part
    text = f"{path or '/'} {kind}"
    if isinstance(value, bool):
        return f"{text}={'true' if value else 'false'}"
    return text if value is None else f"{text}={value}"


def shape_id(parts: Iterable[Part]) -> str:
    """12 hex digits that name a shape, the same on every run and machine."""
    text = "\n".join(describe(p) for p in sorted(parts, key=_sort_key))
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=6).hexdigest()
