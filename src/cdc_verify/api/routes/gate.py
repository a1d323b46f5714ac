"""Go / no-go on the worker's durable counters: `cdc-verify gate --json`'s answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query

from cdc_verify.api import models
from cdc_verify.api.context import Context
from cdc_verify.durations import DURATION_PATTERN, parse_window
from cdc_verify.gate.criteria import ENTITY_PATTERN, OP_VALUES, Criteria, Endpoint
from cdc_verify.gate.live import LiveReaders, judge_live

OpName = Literal["create", "update", "increment", "delete", "read", "unknown", "other"]
if get_args(OpName) != OP_VALUES:
    raise RuntimeError("OpName and the ops the counters hold (gate.criteria.OP_VALUES) differ")

router = APIRouter(prefix="/api")


@router.get(
    "/gate",
    response_model=models.Gate,
    tags=["gate"],
)
async def gate(
    context: Context,
    since: Annotated[
        str | None,
        Query(pattern=DURATION_PATTERN, description="the window, e.g. 10m, 2h, 1d (gate_since)"),
    ] = None,
    entity: Annotated[
        str | None, Query(pattern=ENTITY_PATTERN, description="gate this entity only")
    ] = None,
    op: Annotated[OpName | None, Query(description="gate this op only")] = None,
    max_mismatch_rate: Annotated[
        float | None,
        Query(ge=0, le=1, description="largest share of mismatches (gate_max_mismatch_rate)"),
    ] = None,
    max_undecodable: Annotated[
        int | None, Query(ge=0, description="most undecodable (gate_max_undecodable)")
    ] = None,
    max_gaps: Annotated[int | None, Query(ge=0, description="most gaps (gate_max_gaps)")] = None,
    min_events: Annotated[
        int | None, Query(ge=0, description="fewest events to decide on (gate_min_events)")
    ] = None,
    min_coverage: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            description="fewest verified shapes of all production sent, "
            "since the worker's state began (not over `since`); default: not judged",
        ),
    ] = None,
) -> dict[str, Any]:
    """Go / no-go on the worker's durable counters: `cdc-verify gate --json`'s answer.

    Criteria not given are the worker's gate_* settings. A `cannot_decide` answer (too
    few events, or `since` past counter_retention) is a 200 like the others; Redis
    away is a 503.
    """
    settings = context.settings
    criteria = Criteria.from_settings(
        settings, max_mismatch_rate=max_mismatch_rate, max_undecodable=max_undecodable,
        max_gaps=max_gaps, min_events=min_events, min_coverage=min_coverage,
    )  # fmt: skip
    answer = await judge_live(
        settings,
        LiveReaders(context.counters, context.shapes),
        criteria,
        Endpoint(entity, op),
        seconds=None if since is None else parse_window(since).total_seconds(),
    )
    return answer.as_json()
