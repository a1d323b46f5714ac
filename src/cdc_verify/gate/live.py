"""The live gate: the worker's durable per-minute counters on the state server, judged
over a window. `judge_live` is the one rule of `cdc-verify gate`, GET /api/gate and the
status page's banner; they differ only in how they read (`Measure`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.gate.criteria import (
    Answer,
    CannotMeasure,
    Criteria,
    Endpoint,
    Measurement,
    cannot_measure,
    judge,
)
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.counters import CounterReader, Counts, Window, read_window
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.state_read import read_state_checked
from cdc_verify.timestamps import iso_ms


class Measure(Protocol):
    """Reads the counts of `window` for `scope`, and the shape coverage when `coverage`
    (since the worker's state began, not over the window: docs/coverage.md).
    CannotMeasure: the source cannot be read, and the gate cannot decide."""

    async def __call__(self, window: Window, scope: Endpoint, coverage: bool) -> Measurement: ...


async def judge_live(
    settings: Settings,
    measure: Measure,
    criteria: Criteria,
    scope: Endpoint,
    seconds: float | None = None,
    window: Window | None = None,
) -> Answer:
    """Go / no-go on the last `seconds` (default: gate_since) of the counters `measure`
    reads; the shape coverage is read only when `criteria` judge it. A window past
    counter_retention, or a CannotMeasure, is a `cannot_decide` answer.

    `window`: the minutes already chosen for the counts (the status page counts its
    totals and its banner over one window, no longer than counter_retention); by
    default the last `seconds`.
    """
    seconds = settings.gate_since if seconds is None else seconds
    window = Window.last(seconds) if window is None else window
    server = settings.server(Role.STATE).redacted_url()
    source = redis_source(server, settings.group, window, seconds)
    try:
        problem = window_problem(seconds, settings)
        if problem:  # nothing read: such a window would be long to read, and expired
            raise CannotMeasure(problem)
        measured = await measure(window, scope, criteria.min_coverage is not None)
    except CannotMeasure as exc:
        return cannot_measure(str(exc), criteria, source, scope)
    return judge(measured, criteria, source, scope)


def redis_source(server: str | None, group: str, window: Window, seconds: float) -> dict[str, Any]:
    """Where the counts came from: the counted minutes run from `since` to `until`;
    `seconds` is the window asked for."""
    return {
        "kind": "redis",
        "server": server,
        "group": group,
        "since": iso_ms(window.start_ms),
        "until": iso_ms(window.until_ms),
        "window_seconds": seconds,
    }


def window_problem(seconds: float, settings: Settings) -> str | None:
    """Why a window cannot be gated (None: it can): the counters keep counter_retention."""
    if seconds <= settings.counter_retention:
        return None
    return (
        f"the window reaches {seconds:g} s back, past counter_retention "
        f"({settings.counter_retention:g} s): older counters have expired"
    )


def measurement(counts: Counts, scope: Endpoint) -> Measurement:
    chosen = counts.only(scope.entity, scope.op)
    return Measurement(chosen.totals(), tuple(counts.by_entity_op()))


async def _measured(counts: Counts, scope: Endpoint, shapes: ShapeReader | None) -> Measurement:
    """`counts` for `scope`, with the coverage ratio of `shapes` when given (None without
    shapes)."""
    ratio = None if shapes is None else (await shapes.tally()).totals().ratio_of(scope.entity)
    return dataclasses.replace(measurement(counts, scope), coverage=ratio)


@dataclass(frozen=True, slots=True)
class Counted:
    """Counts already read (the status page's, read with its totals); no shape coverage."""

    counts: Counts

    async def __call__(self, window: Window, scope: Endpoint, coverage: bool) -> Measurement:
        return measurement(self.counts, scope)


@dataclass(frozen=True, slots=True)
class LiveReaders:
    """The API's long-lived readers on the state server; a Redis failure propagates (the
    API answers 503: the server is away, not the question unanswerable)."""

    counters: CounterReader
    shapes: ShapeReader

    async def __call__(self, window: Window, scope: Endpoint, coverage: bool) -> Measurement:
        counts, _ = await self.counters.read(window)
        return await _measured(counts, scope, self.shapes if coverage else None)


@dataclass(frozen=True, slots=True)
class StateServer:
    """The state server of `settings` on a connection of its own (`cdc-verify gate`):
    any Redis failure is CannotMeasure (the gate answers "cannot decide", it does not
    fail)."""

    settings: Settings

    async def __call__(self, window: Window, scope: Endpoint, coverage: bool) -> Measurement:
        async def read(client: AsyncClient, keys: WorkerKeys) -> Measurement:
            counts = await read_window(client, keys, window)
            return await _measured(counts, scope, ShapeReader(client, keys) if coverage else None)

        return await read_state_checked(self.settings, read, "the counters", CannotMeasure)
