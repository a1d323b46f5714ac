"""Prometheus metrics and the kubelet's probes. The probes never ask for a token (a
kubelet has none); /metrics does when one is set (`create_app` guards `metrics_router`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from cdc_verify.api import models
from cdc_verify.api.context import COVERAGE_MAX_AGE_S, Context
from cdc_verify.pipeline.runners.worker import LIVENESS_S

# The run loop beats at least every few seconds (reads block for block_ms, backoff
# and lock waits tick); LIVENESS_S (a minute) without a beat means it is wedged.
PROBE_TIMEOUT_S = 2.0

metrics_router = APIRouter()
router = APIRouter()


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    tags=["probes"],
)
async def metrics(context: Context) -> Response:
    # The coverage gauges are read from the state server when scraped (at most every
    # COVERAGE_MAX_AGE_S); with Redis away they keep their last values.
    worker = context.worker
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            coverage = (await context.shapes.tally(COVERAGE_MAX_AGE_S)).totals()
        worker.metrics.set_coverage(coverage)
    return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def health(checks: dict[str, models.Check]) -> JSONResponse:
    ok = all(c.ok for c in checks.values())
    body = models.Health(status="ok" if ok else "failing", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


PROBE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": models.Health, "description": "a check failed"}
}


@router.get("/healthz", response_model=models.Health, responses=PROBE_RESPONSES, tags=["probes"])
async def healthz(context: Context) -> JSONResponse:
    """Liveness: the worker's loop runs (restart the process if this fails)."""
    worker = context.worker
    age = time.monotonic() - worker.heartbeat
    return health(
        {
            "worker_running": models.Check(
                ok=worker.running, detail="running" if worker.running else "stopped"
            ),
            "loop_alive": models.Check(ok=age < LIVENESS_S, detail=f"last beat {age:.1f}s ago"),
        }
    )


@router.get("/readyz", response_model=models.Health, responses=PROBE_RESPONSES, tags=["probes"])
async def readyz(context: Context) -> JSONResponse:
    """Readiness: Redis reachable, consumer group present, state rebuilt, lag bounded."""
    settings, worker = context.settings, context.worker
    checks: dict[str, models.Check] = {}
    # Each server on its own line: which one is away is what an operator needs.
    away = []
    for role, role_client in context.servers.items():
        try:
            await asyncio.wait_for(role_client.ping(), PROBE_TIMEOUT_S)
            checks[f"{role}_server"] = models.Check(ok=True, detail="PING answered")
        except (RedisError, OSError, TimeoutError) as exc:
            away.append(role)
            checks[f"{role}_server"] = models.Check(
                ok=False, detail=f"unreachable: {exc or 'timeout'}"
            )
    checks["redis"] = models.Check(
        ok=not away,
        detail=f"{', '.join(away)} server away" if away else "every server answers",
    )
    if not away:
        try:
            present = await asyncio.wait_for(context.streams.groups_present(), PROBE_TIMEOUT_S)
            missing = [side.value for side, there in present.items() if not there]
            checks["consumer_group"] = models.Check(
                ok=not missing,
                detail=f"group {settings.group!r} "
                + (f"missing on {', '.join(missing)}" if missing else "present on both streams"),
            )
        except (RedisError, OSError, TimeoutError) as exc:
            checks["redis"] = models.Check(ok=False, detail=f"unreachable: {exc or 'timeout'}")
    ready, waiting = worker.ready.is_set(), worker.waiting_for
    if ready:
        doing = "verifying"
    elif waiting:
        doing = f"waiting for {waiting}"
    else:
        doing = "starting, reconnecting or waiting for the lock"
    checks["worker"] = models.Check(ok=ready, detail=doing)
    bound = settings.ready_max_lag
    if waiting:  # nothing to lag behind: a lag would be a number made up
        checks["lag"] = models.Check(
            ok=True, detail=f"consumer lag not measured: no stream yet (bound {bound:g}s)"
        )
    else:
        lag = max(worker.lag.values(), default=0.0)
        checks["lag"] = models.Check(
            ok=lag <= bound, detail=f"consumer lag {lag:.1f}s (bound {bound:g}s)"
        )
    return health(checks)
