"""One read of the worker's state server by a command (`gate`, `coverage`): connect, read,
close, and any Redis failure as one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, open_client
from cdc_verify.pipeline.redis.errors import failure_reason
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.schemas.servers import Role
from cdc_verify.schemas.settings import Settings

T = TypeVar("T")


def read_state_server(
    settings: Settings,
    read: Callable[[AsyncClient, WorkerKeys], Awaitable[T]],
    reading: str,
    failed: Callable[[str], Exception],
) -> T:
    """`read(client, keys)` on the state server of `settings`; a Redis failure raises
    `failed(reason)`, the reason saying what `reading` could not be read and why."""
    server = settings.server(Role.STATE)

    async def run() -> T:
        client = await open_client(server)
        try:
            return await read(
                client, WorkerKeys.from_settings(settings, cluster=is_cluster(client))
            )
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except Exception as exc:
        reason = failure_reason(exc, server.redacted_url(), reading)
        if reason is None:
            raise
        raise failed(reason) from None
