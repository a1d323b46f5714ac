"""Missing-event alerts, one event's verdict, and the mismatch groups in memory."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from cdc_verify.api import models
from cdc_verify.api.context import ApiContext, Context
from cdc_verify.api.guard import answer_too_big
from cdc_verify.durations import DURATION_PATTERN, parse_window
from cdc_verify.pipeline.redis.alerts import (
    AlertFilter,
    AlertState,
    BadCursor,
    window_start_ms,
)
from cdc_verify.schemas.verdicts import Side
from cdc_verify.timestamps import iso_ms

# Query patterns are enforced by pydantic-core's Rust regex and read from the OpenAPI
# document as ECMA-262 regexes (by schemathesis, by clients). They keep to syntax both read
# alike: `[0-9]`, not `\d` (any Unicode digit, e.g. U+0661, in Rust; ASCII only in ECMA),
# and `[^\n]`, not `.` (ECMA's stops also at \r, U+2028 and U+2029); DURATION_PATTERN too.
# alerts.CURSOR_PATTERN (`<ms>:<event_id>`) in that syntax; alerts.decode_cursor accepts
# every cursor this does.
CURSOR = r"^[0-9]{1,16}:[^\n]{1,256}$"

router = APIRouter(prefix="/api")


@router.get("/alerts", response_model=models.AlertPage, tags=["alerts"])
async def list_alerts(
    context: Context,
    state: Literal["open", "resolved"] = "open",
    since: Annotated[
        str | None,
        Query(pattern=DURATION_PATTERN, description="opened (resolved) within, e.g. 10m, 2h, 1d"),
    ] = None,
    side: Annotated[
        Literal["production", "sister"] | None,
        Query(description="only events missing on this side"),
    ] = None,
    entity_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR, description="`next_cursor` of the previous page"),
    ] = None,
) -> dict[str, Any]:
    """Missing-event alerts, oldest first, a page at a time."""
    since_ms = None if since is None else window_start_ms(parse_window(since))
    where = AlertFilter(since_ms, Side(side) if side else None, entity_id)
    try:
        page = await context.alerts.page(AlertState(state), where, limit, cursor)
    except BadCursor as exc:
        raise HTTPException(400, str(exc)) from exc
    return {"alerts": page.alerts, "next_cursor": page.next_cursor}


@router.get(
    "/events/{event_id}",
    response_model=models.EventVerdict,
    responses={404: {"model": models.Problem, "description": "no verdict known"}},
    tags=["verdicts"],
)
async def event_verdict(
    context: Context,
    event_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> dict[str, Any]:
    """The verdict of one event_id (a match is remembered for `decided_retention`,
    other verdicts for `verdict_retention`)."""
    # A record too big to answer is not read at all (STRLEN is O(1)).
    max_answer = int(context.settings.http_max_answer_bytes)
    size = await context.client.strlen(context.keys.record_prefix + event_id)
    if size > max_answer:
        too_big = answer_too_big(size, max_answer, f"the record of {event_id!r}")
        raise HTTPException(413, too_big)
    found = await context.events.get(event_id)
    if found is None:
        raise HTTPException(404, f"no verdict known for event_id {event_id!r}")
    d = found.decision
    return {
        "event_id": event_id,
        "verdict": found.record["verdict"],
        "sides_seen": d.sides if d else None,
        "first_seen_ms": d.first_seen_ms if d else None,
        "record": found.record,
        "alert_state": found.alert_state.value if found.alert_state else None,
        "alert": found.alert,
    }


@router.get("/groups", response_model=models.MismatchGroups, tags=["verdicts"])
async def mismatch_groups(
    context: Context, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """Verdicts other than match, grouped by what went wrong, largest first."""
    board = context.worker.status
    return {
        "since": iso_ms(board.started_at * 1000),
        "groups": await context.on_worker(lambda: top_groups(context, limit)),
        "ungrouped": board.groups.ungrouped,
    }


def top_groups(context: ApiContext, limit: int) -> list[dict[str, Any]]:
    """The largest mismatch groups; read on the worker's loop (`context.on_worker`)."""
    return [g.as_json() for g in context.worker.status.groups.sorted()[:limit]]
