"""Pydantic models of what crosses the project's boundary: report files and records.

The hot path builds plain dataclasses (core/outcome.py); these models
validate what users and tests read back, and give the JSON its schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdc_verify.schemas.verdicts import (
    OUT_OF_SCOPE,
    PRIMARY_VERDICTS,
    TOMBSTONE,
    DifferenceKind,
    Side,
    Verdict,
)


class DifferenceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^(/.*)?$", description="JSON pointer into the decoded comment")
    kind: DifferenceKind
    production: Any = None
    sister: Any = None
    production_wire: str | None = Field(
        None, description="msgpack or Debezium wire type, on type differences"
    )
    sister_wire: str | None = None


class VerdictRecordModel(BaseModel):
    """One line of verdicts.jsonl, and the `record` field of the verdict stream."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None
    verdict: Verdict
    side: Side | None = None
    entry_id: str | None = None
    error: str | None = None
    differences: list[DifferenceModel] | None = None
    more_differences: int | None = Field(
        None, ge=1, description="differences past the record's bound, not listed"
    )
    reduced: str | None = Field(None, description="why the record was cut below its usual bounds")
    sources: dict[Side, dict[str, str | int | bool]] | None = Field(
        None,
        description="Debezium records: per side, the source block's lsn, txId, ts_ms, db, "
        "schema, table and snapshot (left out of the comparison)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> VerdictRecordModel:
        if (self.event_id is None) != (self.verdict is Verdict.MALFORMED):
            raise ValueError("event_id is null exactly for malformed records")
        if self.verdict in (Verdict.MISMATCH, Verdict.RACE) and not self.differences:
            raise ValueError(f"a {self.verdict} record lists its differences")
        if self.verdict is Verdict.UNDECODABLE and not (self.side and self.error):
            raise ValueError("an undecodable record keeps side and error")
        return self


class CoverageFigures(BaseModel):
    """Shape coverage of one entity, or of all (docs/coverage.md)."""

    shapes: int = Field(0, description="shapes of event production sent")
    verified: int = Field(0, description="shapes with a match and no mismatch")
    mismatched: int = Field(0, description="shapes with at least one mismatch or race")
    never_verified: int = Field(0, description="shapes with neither")
    ratio: float | None = Field(None, description="verified / shapes; null without shapes")
    overflow_events: int = Field(0, description="events of shapes past the cap, not counted")
    undecodable_events: int = Field(0, description="production events with no shape")

    @classmethod
    def of(cls, verified: int, mismatched: int, shapes: int, **rest: int) -> CoverageFigures:
        return cls(
            shapes=shapes, verified=verified, mismatched=mismatched,
            never_verified=shapes - verified - mismatched,
            ratio=round(verified / shapes, 4) if shapes else None, **rest,
        )  # fmt: skip


class Coverage(CoverageFigures):
    by_entity: dict[str, CoverageFigures] = Field(default_factory=dict)

    def ratio_of(self, entity: str | None) -> float | None:
        """Verified shapes over shapes, of every entity or of one (shapes are per entity,
        not per op); None with no shape at all."""
        if entity is None:
            return self.ratio
        figures = self.by_entity.get(entity)
        return None if figures is None else figures.ratio


class Summary(BaseModel):
    """summary.json: how many distinct event_ids, and how many records per verdict."""

    events: int
    verdicts: dict[Verdict, int]
    out_of_scope: int = Field(
        0, description="production events outside --scope whose twin never came: no verdict"
    )
    tombstones: int = Field(
        0, description="entries that stand for no change (Debezium tombstones): no verdict"
    )
    by_entity_op: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description='"entity/op" -> {verdict, "out_of_scope" or "tombstone": count}',
    )
    ignored: dict[str, int] = Field(
        default_factory=dict, description="--ignore-path -> differences it suppressed"
    )
    coverage: Coverage | None = Field(None, description="shape coverage; coverage.json lists them")

    @classmethod
    def empty(cls, ignore_paths: tuple[str, ...] | list[str] = ()) -> Summary:
        return cls(events=0, verdicts={v: 0 for v in Verdict}, ignored={p: 0 for p in ignore_paths})

    def add(self, verdict: Verdict, entity_op: str | None = None) -> None:
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        if verdict in PRIMARY_VERDICTS:
            self.events += 1
        if entity_op is not None:
            counts = self.by_entity_op.setdefault(entity_op, {})
            counts[verdict.value] = counts.get(verdict.value, 0) + 1

    def add_out_of_scope(self, entity_op: str) -> None:
        self.out_of_scope += 1
        counts = self.by_entity_op.setdefault(entity_op, {})
        counts[OUT_OF_SCOPE] = counts.get(OUT_OF_SCOPE, 0) + 1

    def add_tombstone(self, entity_op: str) -> None:
        self.tombstones += 1
        counts = self.by_entity_op.setdefault(entity_op, {})
        counts[TOMBSTONE] = counts.get(TOMBSTONE, 0) + 1

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
