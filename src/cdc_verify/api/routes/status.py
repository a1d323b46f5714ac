"""What the status page shows: totals, rate and the go / no-go banner from the durable
counters, coverage, open alerts and the worker's memory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cdc_verify.api import models
from cdc_verify.api.context import COVERAGE_MAX_AGE_S, ApiContext, Context
from cdc_verify.api.routes.verdicts import top_groups
from cdc_verify.core.coverage import parts_to_verify
from cdc_verify.gate.criteria import Criteria, Endpoint
from cdc_verify.gate.live import Counted, judge_live
from cdc_verify.pipeline.redis.alerts import AlertState
from cdc_verify.pipeline.redis.counters import Window, events_per_second
from cdc_verify.schemas.verdicts import LATE, OUT_OF_SCOPE, TOMBSTONE, Verdict
from cdc_verify.timestamps import iso_ms

RATE_MINUTES = 10  # the status page's chart

router = APIRouter(prefix="/api")


@router.get("/status", response_model=models.Status, tags=["status"])
async def status(context: Context) -> dict[str, Any]:
    """What the status page shows."""
    settings, board = context.settings, context.worker.status
    count, oldest_age = await context.alerts.open_summary()
    # Totals, rate and banner from the durable counters: they survive a restart.
    # No counter outlives counter_retention: a longer gate_since reads no more.
    seconds = min(settings.gate_since, settings.counter_retention)
    window = Window.last(seconds)
    counts, series = await context.counters.read(window, recent=RATE_MINUTES)
    totals = counts.totals()
    verdicts = _nonzero({v.value: totals[v.value] for v in Verdict})
    criteria = Criteria.from_settings(settings)
    banner = await judge_live(settings, Counted(counts), criteria, Endpoint(), window=window)
    coverage = await context.shapes.report(COVERAGE_MAX_AGE_S, pairs=False)
    figures = coverage.totals if coverage.shapes else None
    to_verify = parts_to_verify(coverage.parts)
    memory = await context.on_worker(lambda: in_memory(context))
    return {
        "worker": settings.consumer_name,
        "ready": context.worker.ready.is_set(),
        "started_at": iso_ms(board.started_at * 1000),
        "production": settings.production,
        "sister": settings.sister,
        "group": settings.group,
        "counts_window": {
            "since": iso_ms(window.start_ms),
            "until": iso_ms(window.until_ms),
            "seconds": seconds,
        },
        "totals": verdicts,
        "events": counts.events,
        "late_arrivals": totals[LATE],
        "out_of_scope": totals[OUT_OF_SCOPE],
        "tombstones": totals[TOMBSTONE],
        "by_entity_op": counts.by_entity_op(),
        "rate": [{"at": minute * 60, "counts": _nonzero(c.totals())} for minute, c in series],
        "events_per_second": {
            f"{m}m": events_per_second(series, window.until_ms, m) for m in (1, 5)
        },
        "gate": banner.as_json(),
        "coverage": figures.model_dump(mode="json") if figures else None,
        "parts_to_verify": to_verify[:10],
        "open_alerts": count,
        "oldest_open_alert_age_seconds": oldest_age,
        "recent_open_alerts": await context.alerts.newest(AlertState.OPEN, 10),
        "servers_lost_data": list(board.servers_lost_data),
        **memory,  # top_groups, consumer_lag_seconds, pending_joins
    }


def in_memory(context: ApiContext) -> dict[str, Any]:
    """What /api/status shows of the worker's memory, read on the worker's loop."""
    worker = context.worker
    return {
        "top_groups": top_groups(context, 10),
        "consumer_lag_seconds": {s.value: lag for s, lag in worker.lag.items()},
        "pending_joins": {s.value: n for s, n in worker.pending_joins().items()},
    }


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}
