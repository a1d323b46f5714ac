"""The worker's HTTP API: routes only; the answers come from Redis and the worker.

Everything under /api and /metrics asks for the bearer token when one is set;
the probes never do (a kubelet has no token) and the status page's shell holds
no data (its script sends the token it finds in the page's #token= fragment).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Literal, Protocol, TypeVar, get_args

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from cdc_verify.api import models
from cdc_verify.api.guard import answer_too_big
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.coverage import parts_to_verify
from cdc_verify.durations import DURATION_PATTERN, parse_window
from cdc_verify.gate.criteria import (
    ENTITY_PATTERN,
    OP_VALUES,
    Answer,
    Criteria,
    Endpoint,
    cannot_measure,
    judge,
)
from cdc_verify.gate.live import (
    measure_coverage,
    measurement,
    redis_source,
    window_problem,
)
from cdc_verify.pipeline.redis.alerts import (
    AlertFilter,
    AlertState,
    AlertStore,
    BadCursor,
    window_start_ms,
)
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster
from cdc_verify.pipeline.redis.counters import (
    CounterReader,
    Counts,
    Window,
    events_per_second,
)
from cdc_verify.pipeline.redis.events import EventLookup
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.runners.worker import LIVENESS_S
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import LATE, OUT_OF_SCOPE, Side, Verdict
from cdc_verify.timestamps import iso_ms

# The run loop beats at least every few seconds (reads block for block_ms, backoff
# and lock waits tick); LIVENESS_S (a minute) without a beat means it is wedged.
PROBE_TIMEOUT_S = 2.0
# Query patterns are enforced by pydantic-core's Rust regex and read from the OpenAPI
# document as ECMA-262 regexes (by schemathesis, by clients). They keep to syntax both read
# alike: `[0-9]`, not `\d` (any Unicode digit, e.g. U+0661, in Rust; ASCII only in ECMA),
# and `[^\n]`, not `.` (ECMA's stops also at \r, U+2028 and U+2029).
DURATION = DURATION_PATTERN  # 90, 30s, 10m, 2h, 7d: the syntax of every duration
# alerts.CURSOR_PATTERN (`<ms>:<event_id>`) in that syntax; alerts.decode_cursor accepts
# every cursor this does.
CURSOR = r"^[0-9]{1,16}:[^\n]{1,256}$"
OpName = Literal["create", "update", "increment", "unknown", "other"]
if get_args(OpName) != OP_VALUES:
    raise RuntimeError("OpName and the ops the counters hold (gate.criteria.OP_VALUES) differ")
RATE_MINUTES = 10  # the status page's chart
COVERAGE_MAX_AGE_S = 10.0  # coverage on the status page and /metrics may be this old


class WorkerView(Protocol):
    """What the API reads from the worker it runs beside (StreamWorker has it all)."""

    settings: Settings
    metrics: VerifierMetrics
    status: StatusBoard
    ready: asyncio.Event
    running: bool
    heartbeat: float
    lag: dict[Side, float]
    waiting_for: str | None  # e.g. "the streams: 'p' does not exist"

    def pending_joins(self) -> dict[Side, int]: ...


T = TypeVar("T")


class WorkerCall(Protocol):
    """Runs a small read of the worker's in-memory state where the worker runs it."""

    async def __call__(self, read: Callable[[], T]) -> T: ...


async def direct(read: Callable[[], T]) -> T:
    """The worker on the API's own loop (tests): read it in place."""
    return read()


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}


BEARER = HTTPBearer(auto_error=False, description="the worker's CDC_VERIFY_HTTP_TOKEN")


class BearerToken:
    """A dependency that lets a request through only with the configured token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, self._token):
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )


async def strict_query(request: Request) -> None:
    """A mistyped parameter (`?sinse=10m`) must not silently widen a query, nor may a
    repeated one (`?entity_id=a&entity_id=b`) silently mean its last value.

    Every query parameter here takes one value, as the OpenAPI document declares.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {p.alias for p in dependant.query_params} if dependant else set()
    query = request.query_params
    unknown = sorted(set(query) - known)
    repeated = sorted(name for name in set(query) & known if len(query.getlist(name)) > 1)
    if unknown or repeated:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name),
                 "msg": "unknown query parameter", "input": query[name]}
                for name in unknown
            ] + [
                {"type": "multiple_values", "loc": ("query", name),
                 "msg": "repeated query parameter: give it once", "input": query.getlist(name)}
                for name in repeated
            ]
        )  # fmt: skip


# FastAPI's type of a `responses=` map.
Responses = dict[int | str, dict[str, Any]]

NEEDS_TOKEN: Responses = {
    401: {"model": models.Problem, "description": "missing or wrong bearer token"}
}
REDIS_DOWN: Responses = {
    503: {
        "model": models.Problem,
        "description": "Redis is unavailable, or the API is answering http_max_requests already",
    }
}
TOO_BIG: Responses = {
    413: {"model": models.Problem, "description": "the answer is over http_max_answer_bytes"}
}
# Swagger UI, served from the package (static/swagger-ui, Apache-2.0): /docs works offline
# and loads no code from elsewhere.
SWAGGER_FILES = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}


def create_app(
    worker: WorkerView, client: AsyncClient, streams: StreamPair, on_worker: WorkerCall = direct
) -> FastAPI:
    """The API of `worker`: `client` reaches the state server, `streams` the two streams;
    `on_worker` reads the worker's in-memory state (on its loop when the API has its own)."""
    settings = worker.settings
    keys = WorkerKeys.from_settings(settings, cluster=is_cluster(client))
    servers = {"state": client, **{side.value: r.client for side, r in streams.readers.items()}}
    alerts = AlertStore(client, keys)
    events = EventLookup(client, keys)
    counters = CounterReader(client, keys, settings.counter_retention)
    shapes = ShapeReader(client, keys)
    state_url = settings.server(Role.STATE).redacted_url()
    token = settings.http_token.get_secret_value() if settings.http_token else None
    guarded = [Depends(BearerToken(token))] if token else []
    errors: Responses = {**(NEEDS_TOKEN if token else {}), **REDIS_DOWN, **TOO_BIG}
    max_answer = int(settings.http_max_answer_bytes)

    app = FastAPI(
        title="cdc-verify",
        version="1",
        summary="Missing-event alerts, verdicts and health of a cdc-verify worker.",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(strict_query)],
    )

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis unavailable: {exc}"}, status_code=503)

    api = APIRouter(prefix="/api", dependencies=guarded, responses=errors)

    @api.get("/alerts", response_model=models.AlertPage, tags=["alerts"])
    async def list_alerts(
        state: Literal["open", "resolved"] = "open",
        since: Annotated[
            str | None,
            Query(pattern=DURATION, description="opened (resolved) within, e.g. 10m, 2h, 1d"),
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
            page = await alerts.page(AlertState(state), where, limit, cursor)
        except BadCursor as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"alerts": page.alerts, "next_cursor": page.next_cursor}

    @api.get(
        "/events/{event_id}",
        response_model=models.EventVerdict,
        responses={404: {"model": models.Problem, "description": "no verdict known"}},
        tags=["verdicts"],
    )
    async def event_verdict(
        event_id: Annotated[str, Path(min_length=1, max_length=256)],
    ) -> dict[str, Any]:
        """The verdict of one event_id (a match is remembered for `decided_retention`,
        other verdicts for `verdict_retention`)."""
        # A record too big to answer is not read at all (STRLEN is O(1)).
        size = await client.strlen(keys.record_prefix + event_id)
        if size > max_answer:
            too_big = answer_too_big(size, max_answer, f"the record of {event_id!r}")
            raise HTTPException(413, too_big)
        found = await events.get(event_id)
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

    @api.get("/groups", response_model=models.MismatchGroups, tags=["verdicts"])
    async def mismatch_groups(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
        """Verdicts other than match, grouped by what went wrong, largest first."""
        board = worker.status
        return {
            "since": iso_ms(board.started_at * 1000),
            "groups": await on_worker(lambda: top_groups(limit)),
            "ungrouped": board.groups.ungrouped,
        }

    def top_groups(limit: int) -> list[dict[str, Any]]:
        return [g.as_json() for g in worker.status.groups.sorted()[:limit]]

    def in_memory() -> dict[str, Any]:
        """What /api/status shows of the worker's memory, read on the worker's loop."""
        return {
            "top_groups": top_groups(10),
            "consumer_lag_seconds": {s.value: lag for s, lag in worker.lag.items()},
            "pending_joins": {s.value: n for s, n in worker.pending_joins().items()},
        }

    def gate_answer(
        counts: Counts,
        window: Window,
        seconds: float,
        criteria: Criteria,
        scope: Endpoint,
        coverage: float | None = None,
    ) -> Answer:
        source = redis_source(state_url, settings.group, window, seconds)
        measured = dataclasses.replace(measurement(counts, scope), coverage=coverage)
        return judge(measured, criteria, source, scope)

    @api.get("/coverage", response_model=models.CoverageReport, tags=["coverage"])
    async def coverage(
        entity: Annotated[
            str | None, Query(pattern=ENTITY_PATTERN, description="this entity only")
        ] = None,
        status: Annotated[
            models.CoverageStatus | None, Query(description="only shapes and parts of this status")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="shapes to list")] = 50,
    ) -> dict[str, Any]:
        """Which kinds (shapes) of production event were verified, since the worker's
        state began: `cdc-verify coverage --json` (docs/coverage.md)."""
        found = (await shapes.report()).only(entity, status)
        return {
            "coverage": found.totals.model_dump(mode="json"),
            "shapes": found.shapes[:limit],
            "shapes_listed": len(found.shapes),
            "parts": found.parts,
            "pairs": found.pairs,
        }

    @api.get(
        "/gate",
        response_model=models.Gate,
        tags=["gate"],
    )
    async def gate(
        since: Annotated[
            str | None,
            Query(pattern=DURATION, description="the window, e.g. 10m, 2h, 1d (gate_since)"),
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
        max_gaps: Annotated[
            int | None, Query(ge=0, description="most gaps (gate_max_gaps)")
        ] = None,
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
        seconds = settings.gate_since if since is None else parse_window(since).total_seconds()
        criteria = Criteria.from_settings(
            settings, max_mismatch_rate=max_mismatch_rate, max_undecodable=max_undecodable,
            max_gaps=max_gaps, min_events=min_events, min_coverage=min_coverage,
        )  # fmt: skip
        window, scope = Window.last(seconds), Endpoint(entity, op)
        problem = window_problem(seconds, settings)
        if problem:
            source = redis_source(state_url, settings.group, window, seconds)
            return cannot_measure(problem, criteria, source, scope).as_json()
        counts, _ = await counters.read(window)
        ratio = None
        if min_coverage is not None:
            ratio = await measure_coverage(client, keys, scope, shapes)
        return gate_answer(counts, window, seconds, criteria, scope, ratio).as_json()

    @api.get("/status", response_model=models.Status, tags=["status"])
    async def status() -> dict[str, Any]:
        """What the status page shows."""
        board = worker.status
        count, oldest_age = await alerts.open_summary()
        # Totals, rate and banner from the durable counters: they survive a restart.
        # No counter outlives counter_retention: a longer gate_since reads no more.
        seconds = min(settings.gate_since, settings.counter_retention)
        window = Window.last(seconds)
        counts, series = await counters.read(window, recent=RATE_MINUTES)
        totals = counts.totals()
        verdicts = _nonzero({v.value: totals[v.value] for v in Verdict})
        criteria = Criteria.from_settings(settings)
        banner = gate_answer(counts, window, settings.gate_since, criteria, Endpoint())
        problem = window_problem(settings.gate_since, settings)
        if problem:
            banner = cannot_measure(problem, criteria, banner.source, Endpoint())
        coverage = await shapes.report(COVERAGE_MAX_AGE_S, pairs=False)
        figures = coverage.totals if coverage.shapes else None
        to_verify = parts_to_verify(coverage.parts)
        memory = await on_worker(in_memory)
        return {
            "worker": settings.consumer_name,
            "ready": worker.ready.is_set(),
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
            "recent_open_alerts": await alerts.newest(AlertState.OPEN, 10),
            "top_groups": [g.as_json() for g in board.groups.sorted()[:10]],
            "servers_lost_data": list(board.servers_lost_data),
            **memory,
        }

    app.include_router(api)

    @app.get(
        "/metrics",
        dependencies=guarded,
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            **(NEEDS_TOKEN if token else {}),
        },
        tags=["probes"],
    )
    async def metrics() -> Response:
        # The coverage gauges are read from the state server when scraped (at most every
        # COVERAGE_MAX_AGE_S); with Redis away they keep their last values.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                coverage = (await shapes.tally(COVERAGE_MAX_AGE_S)).totals()
            worker.metrics.set_coverage(coverage)
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def health(checks: dict[str, models.Check]) -> JSONResponse:
        ok = all(c.ok for c in checks.values())
        body = models.Health(status="ok" if ok else "failing", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    probe_responses: Responses = {503: {"model": models.Health, "description": "a check failed"}}

    @app.get("/healthz", response_model=models.Health, responses=probe_responses, tags=["probes"])
    async def healthz() -> JSONResponse:
        """Liveness: the worker's loop runs (restart the process if this fails)."""
        age = time.monotonic() - worker.heartbeat
        return health(
            {
                "worker_running": models.Check(
                    ok=worker.running, detail="running" if worker.running else "stopped"
                ),
                "loop_alive": models.Check(ok=age < LIVENESS_S, detail=f"last beat {age:.1f}s ago"),
            }
        )

    @app.get("/readyz", response_model=models.Health, responses=probe_responses, tags=["probes"])
    async def readyz() -> JSONResponse:
        """Readiness: Redis reachable, consumer group present, state rebuilt, lag bounded."""
        checks: dict[str, models.Check] = {}
        # Each server on its own line: which one is away is what an operator needs.
        away = []
        for role, role_client in servers.items():
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
                present = await asyncio.wait_for(streams.groups_present(), PROBE_TIMEOUT_S)
                missing = [side.value for side, there in present.items() if not there]
                checks["consumer_group"] = models.Check(
                    ok=not missing,
                    detail=f"group {settings.group!r} "
                    + (
                        f"missing on {', '.join(missing)}" if missing else "present on both streams"
                    ),
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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status_page() -> HTMLResponse:
        page = resources.files("cdc_verify.api").joinpath("static/status.html").read_text()
        return HTMLResponse(page)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title="cdc-verify API",
            swagger_js_url="docs/swagger-ui-bundle.js",
            swagger_css_url="docs/swagger-ui.css",
            swagger_favicon_url="docs/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from elsewhere
        )

    @app.get("/docs/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:
            raise HTTPException(404, f"no file {name!r}")
        path = resources.files("cdc_verify.api").joinpath(f"static/swagger-ui/{name}")
        return FileResponse(str(path), headers={"cache-control": "max-age=86400"})

    return app
