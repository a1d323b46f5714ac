"""Pydantic models of the HTTP API's answers: they are its OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdc_verify.config.servers import Role
from cdc_verify.schemas.models import Coverage, DifferenceModel, VerdictRecordModel
from cdc_verify.schemas.verdicts import Side, Verdict


class LostData(BaseModel):
    """A server found without the data the worker had put there (restarted empty)."""

    role: Role
    server: str = Field(description="its URL, password left out")
    at: str = Field(description="ISO 8601 UTC time the worker found it")


class ServerLostData(LostData):
    what: str = Field(description="what was found gone")


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
    server_lost_data: LostData | None = Field(
        None,
        description="the server that lost its data while the missing entry may have been on "
        "it: the gap may be that loss, not a missing event",
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
    entity: str = Field(description="the entity of its events: one group per write endpoint")
    op: str = Field(description="their op: create, update, increment, ...")
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


class GateCriterion(BaseModel):
    name: Literal["max_mismatch_rate", "max_undecodable", "max_gaps", "min_events", "min_coverage"]
    flag: str = Field(description="the `cdc-verify gate` flag that sets its threshold")
    measured: int | float | None = Field(
        description="a share of events for max_mismatch_rate, of shapes for min_coverage, "
        "else a count; null: not measured"
    )
    threshold: int | float
    passed: bool | None = Field(description="null: not measured")


class GateRedisSource(BaseModel):
    kind: Literal["redis"]
    server: str | None = Field(description="the state server, its password as ***")
    group: str
    since: str = Field(description="ISO 8601 UTC start of the first minute counted")
    until: str = Field(description="ISO 8601 UTC end of the window (now)")
    window_seconds: float = Field(description="the window asked for (`since`), in seconds")


class GateReportSource(BaseModel):
    kind: Literal["report"]
    dir: str


class GateScope(BaseModel):
    entity: str | None = Field(description="the entity gated; null: every entity")
    op: str | None = Field(description="the op gated; null: every op")


class Gate(BaseModel):
    """The go / no-go answer: the same object as `cdc-verify gate --json`."""

    decision: Literal["go", "no_go", "cannot_decide"]
    exit_status: Literal[0, 1, 2] = Field(description="what `cdc-verify gate` exits with")
    reason: str = Field(description="one line: what failed, or why there is no answer")
    source: GateRedisSource | GateReportSource = Field(discriminator="kind")
    scope: GateScope
    events: int | None = Field(description="events with a primary verdict; null: not measured")
    counts: dict[str, int] | None = Field(
        description="count per verdict, `out_of_scope` and (live counters) `late`"
    )
    criteria: list[GateCriterion]


CoverageStatus = Literal["never_verified", "mismatched", "verified"]


class CoverageCounts(BaseModel):
    status: CoverageStatus = Field(
        description="mismatched once one event mismatched, else verified once one matched"
    )
    production: int = Field(description="production events, in scope or not")
    match: int
    mismatch: int = Field(description="mismatch or race verdicts")
    unverified: int = Field(description="gaps, undecodable on the sister, out of scope")


class CoverageShape(CoverageCounts):
    entity: str
    shape: str = Field(description="12 hex digits that name the shape")
    parts: list[str] = Field(description="its parts: `path type[=value]`")


class CoveragePart(CoverageCounts):
    entity: str
    part: str = Field(description="`path type[=value]`, counted over every shape with it")


class CoveragePair(CoverageCounts):
    entity: str
    parts: list[str] = Field(description="two parts, counted over every shape with both")
    each_matched: bool = Field(description="each of the two parts matched, in some shape")


class CoverageReport(BaseModel):
    """Shape coverage since the worker's state began: `cdc-verify coverage --json`."""

    coverage: Coverage
    shapes: list[CoverageShape] = Field(description="the most frequent first, up to `limit`")
    shapes_listed: int = Field(description="shapes that match the query, listed or not")
    parts: list[CoveragePart] = Field(description="every part that matches the query")
    pairs: list[CoveragePair] = Field(
        description="pairs of the parts that vary, up to 2,016 an entity (docs/coverage.md)"
    )


class RatePoint(BaseModel):
    at: int = Field(description="start of a minute, seconds since epoch")
    counts: dict[str, int] = Field(description="count per verdict (and out_of_scope, late)")


class CountsWindow(BaseModel):
    since: str = Field(description="ISO 8601 UTC start of the first minute counted")
    until: str
    seconds: float = Field(description="the worker's gate_since (at most counter_retention)")


class Status(BaseModel):
    worker: str
    ready: bool
    started_at: str
    production: str
    sister: str
    group: str
    counts_window: CountsWindow = Field(
        description="the window of the durable counters that totals, by_entity_op and gate read"
    )
    totals: dict[str, int] = Field(
        description="verdict records per verdict in counts_window (non-zero only); durable"
    )
    events: int = Field(description="events with a primary verdict in counts_window")
    late_arrivals: int = Field(description="late arrivals in counts_window")
    out_of_scope: int = Field(description="production events outside --scope in counts_window")
    tombstones: int = Field(
        description="entries that stand for no change (Debezium tombstones) in counts_window"
    )
    by_entity_op: dict[str, dict[str, int]] = Field(
        description='"entity/op" -> {verdict, "out_of_scope", "tombstone" or "late": count}'
    )
    rate: list[RatePoint] = Field(description="the last 10 minutes, oldest first")
    events_per_second: dict[str, float] = Field(
        description='"1m", "5m": events a second over the last 1 (5) whole minutes and this one'
    )
    gate: Gate = Field(description="the worker's gate_* criteria over counts_window")
    coverage: Coverage | None = Field(
        description="shape coverage since the worker's state began; null: none counted"
    )
    parts_to_verify: list[CoveragePart] = Field(
        description="up to 10 parts never verified or mismatched, the most frequent first"
    )
    consumer_lag_seconds: dict[str, float]
    pending_joins: dict[str, int]
    open_alerts: int
    oldest_open_alert_age_seconds: float | None
    recent_open_alerts: list[Alert]
    top_groups: list[MismatchGroup] = Field(description="in memory, since the worker started")
    servers_lost_data: list[ServerLostData] = Field(
        default_factory=list,
        description="servers found to have lost the worker's data since it started (the "
        "latest 10, the latest last)",
    )


class Check(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, Check]


class Problem(BaseModel):
    detail: str


__all__ = ["Alert", "AlertPage", "DifferenceModel", "EventVerdict", "Gate", "Health", "Status"]
