"""Pydantic models of the HTTP API's answers: they are its OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdc_verify.schemas.models import DifferenceModel, VerdictRecordModel
from cdc_verify.schemas.verdicts import Side, Verdict


class Alert(BaseModel):
    """A missing-event alert: opened by a gap verdict, resolved by a late arrival."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    verdict: Literal[Verdict.MISSING_IN_SISTER, Verdict.MISSING_IN_PRODUCTION]
    present_on: Side = Field(description="the side that had the event")
    entry_id: str = Field(description="stream entry id of the event on `present_on`")
    entity_id: str
    opened_at: str = Field(description="ISO 8601 UTC time the gap verdict was written")
    resolution: Literal["late"] | None = None
    resolved_at: str | None = None
    late_by_ms: int | None = Field(None, description="how long after its twin the event came")
    late_entry_id: str | None = None
    late_comparison: VerdictRecordModel | None = Field(
        None,
        description="the late pair decoded and compared (null: the earlier entry was trimmed "
        "from its stream first); the event's first verdict stands",
    )


class AlertPage(BaseModel):
    alerts: list[Alert]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null when there is none. A page may "
        "hold fewer than `limit` alerts even when more follow"
    )


class EventVerdict(BaseModel):
    event_id: str
    verdict: Verdict
    sides_seen: str | None = Field(
        None, description='sides the event was seen on: "p", "s" or "ps" (null once forgotten)'
    )
    first_seen_ms: int | None = Field(None, description="entry-id time of its first entry")
    record: VerdictRecordModel
    alert_state: Literal["open", "resolved"] | None = None
    alert: Alert | None = None


class MismatchGroupDifference(BaseModel):
    path: str
    kind: str
    production_wire: str | None
    sister_wire: str | None


class MismatchGroup(BaseModel):
    verdict: Verdict
    side: Side | None
    error: str | None
    differences: list[MismatchGroupDifference]
    count: int
    first_seen: str
    last_seen: str
    examples: list[str] = Field(description="event_ids of the first records in the group")


class MismatchGroups(BaseModel):
    since: str = Field(description="groups are counted in memory since the worker started")
    groups: list[MismatchGroup]
    ungrouped: int = Field(description="records not grouped once the group limit was reached")


class RatePoint(BaseModel):
    at: int = Field(description="start of a 10-second bucket, seconds since epoch")
    per_second: dict[str, float]


class Status(BaseModel):
    worker: str
    ready: bool
    started_at: str
    production: str
    sister: str
    group: str
    totals: dict[str, int] = Field(description="verdict records per verdict since start")
    late_arrivals: int
    rate: list[RatePoint]
    consumer_lag_seconds: dict[str, float]
    pending_joins: dict[str, int]
    open_alerts: int
    oldest_open_alert_age_seconds: float | None
    recent_open_alerts: list[Alert]
    top_groups: list[MismatchGroup]


class Check(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, Check]


class Problem(BaseModel):
    detail: str


__all__ = ["Alert", "AlertPage", "DifferenceModel", "EventVerdict", "Health", "Status"]
