"""The worker's HTTP API: the app of a worker, its routes (routes/) and their guards.

Everything under /api and /metrics asks for the bearer token when one is set;
the probes never do (a kubelet has no token) and the status page's shell holds
no data (its script sends the token it finds in the page's #token= fragment).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from cdc_verify.api import models
from cdc_verify.api.access import BearerToken, strict_query
from cdc_verify.api.context import ApiContext, WorkerCall, WorkerView, direct
from cdc_verify.api.routes import coverage, gate, pages, probes, status, verdicts
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.streams import StreamPair

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


def create_app(
    worker: WorkerView, client: AsyncClient, streams: StreamPair, on_worker: WorkerCall = direct
) -> FastAPI:
    """The API of `worker`: `client` reaches the state server, `streams` the two streams;
    `on_worker` reads the worker's in-memory state (on its loop when the API has its own)."""
    settings = worker.settings
    token = settings.http_token.get_secret_value() if settings.http_token else None
    guarded = [Depends(BearerToken(token))] if token else []
    needs_token = NEEDS_TOKEN if token else {}

    app = FastAPI(
        title="cdc-verify",
        version="1",
        summary="Missing-event alerts, verdicts and health of a cdc-verify worker.",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(strict_query)],
    )
    app.state.context = ApiContext.build(worker, client, streams, on_worker)
    app.add_exception_handler(RedisError, redis_unavailable)

    errors: Responses = {**needs_token, **REDIS_DOWN, **TOO_BIG}
    for module in (verdicts, coverage, gate, status):
        app.include_router(module.router, dependencies=guarded, responses=errors)
    app.include_router(probes.metrics_router, dependencies=guarded, responses=needs_token)
    app.include_router(probes.router)
    app.include_router(pages.router)
    return app


async def redis_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """A RedisError: the server is away, not the request wrong."""
    return JSONResponse({"detail": f"Redis unavailable: {exc}"}, status_code=503)
