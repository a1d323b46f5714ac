"""One read of the worker's state server by a command (`gate`, `coverage`): connect, read,
close, and any Redis failure as one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, open_client
from cdc_verify.pipeline.redis.errors import failure_reason
from cdc_verify.pipeline.redis.presence import NoState, require_state

T = TypeVar("T")


async def read_state(
    settings: Settings,
    read: Callable[[AsyncClient, WorkerKeys], Awaitable[T]],
    *,
    require: bool = False,
) -> T:
    """`read(client, keys)` on a connection of its own to the state server of `settings`;
    `require`: first raise NoState if the group has no state there (presence.py)."""
    server = settings.server(Role.STATE)
    client = await open_client(server)
    try:
        keys = WorkerKeys.from_settings(settings, cluster=is_cluster(client))
        if require:
            await require_state(client, keys, settings.counter_retention, server.redacted_url())
        return await read(client, keys)
    finally:
        await client.aclose()


async def read_state_checked(
    settings: Settings,
    read: Callable[[AsyncClient, WorkerKeys], Awaitable[T]],
    reading: str,
    failed: Callable[[str], Exception],
) -> T:
    """`read_state` for a command; a Redis failure, or a group without state on the
    server, raises `failed(reason)`, the reason saying what `reading` could not be read
    and why."""
    try:
        return await read_state(settings, read, require=True)
    except NoState as exc:  # a wrong server or group: not "nothing to report"
        raise failed(str(exc)) from None
    except Exception as exc:
        reason = failure_reason(exc, settings.server(Role.STATE).redacted_url(), reading)
        if reason is None:
            raise
        raise failed(reason) from None


def read_state_server(
    settings: Settings,
    read: Callable[[AsyncClient, WorkerKeys], Awaitable[T]],
    reading: str,
    failed: Callable[[str], Exception],
) -> T:
    """`read_state_checked` on an event loop of its own (a command's)."""
    return asyncio.run(read_state_checked(settings, read, reading, failed))
