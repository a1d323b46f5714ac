"""Pydantic models of what crosses the project's boundary: report files and records.

The hot path builds plain dataclasses (pipeline/core/outcome.py); these models
validate what users and tests read back, and give the JSON its schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, DifferenceKind, Side, Verdict


class DifferenceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^(/.*)?$", description="JSON pointer into the decoded comment")
    kind: DifferenceKind
    production: Any = None
    sister: Any = None
    production_wire: str | None = Field(None, description="msgpack wire type, on type differences")
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

    @model_validator(mode="after")
    def _consistent(self) -> VerdictRecordModel:
        if (self.event_id is None) != (self.verdict is Verdict.MALFORMED):
            raise ValueError("event_id is null exactly for malformed records")
        if self.verdict in (Verdict.MISMATCH, Verdict.RACE) and not self.differences:
            raise ValueError(f"a {self.verdict} record lists its differences")
        if self.verdict is Verdict.UNDECODABLE and not (self.side and self.error):
            raise ValueError("an undecodable record keeps side and error")
        return self


class Summary(BaseModel):
    """summary.json: how many distinct event_ids, and how many records per verdict."""

    events: int
    verdicts: dict[Verdict, int]

    @classmethod
    def empty(cls) -> Summary:
        return cls(events=0, verdicts={v: 0 for v in Verdict})

    def add(self, verdict: Verdict) -> None:
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        if verdict in PRIMARY_VERDICTS:
            self.events += 1

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
