"""Measuring the live worker: its durable per-minute counters on the state server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import redis

from cdc_verify.gate.criteria import CannotMeasure, Endpoint, Measurement
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, open_client
from cdc_verify.pipeline.redis.counters import Counts, Window, read_window
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.schemas.servers import Role
from cdc_verify.schemas.settings import Settings


def iso_ms(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


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


def measure_server(settings: Settings, window: Window, scope: Endpoint) -> Measurement:
    """The counters of the state server in `settings`; any Redis failure is CannotMeasure
    (the gate answers "cannot decide", it does not fail)."""
    server = settings.server(Role.STATE)

    async def read() -> Measurement:
        client = await open_client(server)
        try:
            keys = WorkerKeys.from_settings(settings, cluster=is_cluster(client))
            return await measure_counters(client, keys, window, scope)
        finally:
            await client.aclose()

    url = server.redacted_url()
    try:
        return asyncio.run(read())
    except redis.AuthenticationError as exc:
        raise CannotMeasure(f"the state server {url} refused the credentials: {exc}") from None
    except redis.exceptions.NoPermissionError as exc:
        raise CannotMeasure(f"the state server {url} denies reading the counters: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise CannotMeasure(f"cannot reach the state server {url}: {exc}") from None
    except redis.RedisError as exc:
        raise CannotMeasure(f"the state server {url} failed: {exc}") from None
