"""What every route reads from: the worker beside the API and the readers of its
servers, built once per app (`ApiContext.build`) and handed to a route as `Context`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.pipeline.redis.alerts import AlertStore
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster
from cdc_verify.pipeline.redis.counters import CounterReader
from cdc_verify.pipeline.redis.events import EventLookup
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.pipeline.sinks.status import StatusBoard
from cdc_verify.schemas.verdicts import Side

T = TypeVar("T")
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


class WorkerCall(Protocol):
    """Runs a small read of the worker's in-memory state where the worker runs it."""

    async def __call__(self, read: Callable[[], T]) -> T: ...


async def direct(read: Callable[[], T]) -> T:
    """The worker on the API's own loop (tests): read it in place."""
    return read()


@dataclass(frozen=True, slots=True)
class ApiContext:
    worker: WorkerView
    on_worker: WorkerCall  # reads the worker's memory (on its loop when the API has its own)
    client: AsyncClient  # the state server
    keys: WorkerKeys
    streams: StreamPair
    servers: dict[str, AsyncClient]  # each role's server, by role name: /readyz pings them
    alerts: AlertStore
    events: EventLookup
    counters: CounterReader
    shapes: ShapeReader

    @classmethod
    def build(
        cls, worker: WorkerView, client: AsyncClient, streams: StreamPair, on_worker: WorkerCall
    ) -> ApiContext:
        settings = worker.settings
        keys = WorkerKeys.from_settings(settings, cluster=is_cluster(client))
        return cls(
            worker=worker,
            on_worker=on_worker,
            client=client,
            keys=keys,
            streams=streams,
            servers={
                Role.STATE.value: client,
                **{side.value: r.client for side, r in streams.readers.items()},
            },
            alerts=AlertStore(client, keys),
            events=EventLookup(client, keys),
            counters=CounterReader(client, keys, settings.counter_retention),
            shapes=ShapeReader(client, keys),
        )

    @property
    def settings(self) -> Settings:
        return self.worker.settings


async def api_context(request: Request) -> ApiContext:
    """The context `create_app` put in the app's state (async: no thread pool for it)."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(api_context)]
