"""Measuring the live worker: its durable per-minute counters on the state server."""

from __future__ import annotations

import dataclasses
from typing import Any

from cdc_verify.config.settings import Settings
from cdc_verify.gate.criteria import CannotMeasure, Endpoint, Measurement
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.counters import Counts, Window, read_window
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.state_read import read_state_server
from cdc_verify.timestamps import iso_ms


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


async def measure_counters(
    client: AsyncClient, keys: WorkerKeys, window: Window, scope: Endpoint
) -> Measurement:
    return measurement(await read_window(client, keys, window), scope)


async def measure_coverage(
    client: AsyncClient, keys: WorkerKeys, scope: Endpoint, reader: ShapeReader | None = None
) -> float | None:
    """Verified shapes over shapes since the worker's state began (not over a window:
    docs/coverage.md); None without shapes."""
    tally = await (reader or ShapeReader(client, keys)).tally()
    return tally.totals().ratio_of(scope.entity)


def measure_server(
    settings: Settings, window: Window, scope: Endpoint, coverage: bool = False
) -> Measurement:
    """The counters of the state server in `settings`, and its shape coverage when
    `coverage`; any Redis failure is CannotMeasure (the gate answers "cannot decide", it
    does not fail)."""

    async def read(client: AsyncClient, keys: WorkerKeys) -> Measurement:
        measured = await measure_counters(client, keys, window, scope)
        if coverage:
            ratio = await measure_coverage(client, keys, scope)
            measured = dataclasses.replace(measured, coverage=ratio)
        return measured

    return read_state_server(settings, read, "the counters", CannotMeasure)
