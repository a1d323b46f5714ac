"""What the commands share once their flags are read: logging, the consumer, a progress
bar, a Redis client, and a check that the streams to read exist."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from cdc_verify.config.servers import RedisServer
from cdc_verify.config.settings import Settings
from cdc_verify.consumers.loader import ConsumerLoadError, load_consumers
from cdc_verify.logs import configure_logging


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def load_consumer(settings: Settings) -> Callable[..., Any]:
    """The consumers; a user's envelope is loaded too, so that a bad one is a usage error
    before any work (the runners load it again: Python has it imported by then)."""
    from cdc_verify.pipeline.runners.wiring import side_envelopes

    try:
        side_envelopes(settings)
        return load_consumers(settings.consumer)
    except ConsumerLoadError as exc:
        raise click.UsageError(str(exc)) from exc


def progress_bar(show: bool | None) -> Any:
    """A rich progress bar on stderr; `show` None: on a TTY only."""
    from rich.progress import Progress

    return Progress(disable=not (sys.stderr.isatty() if show is None else show), transient=True)


def redis_client(server: RedisServer) -> Any:
    """A synchronous client (a context manager that closes it)."""
    from cdc_verify.pipeline.redis.connection import connect_sync

    return connect_sync(server)


def require_streams(checks: list[tuple[RedisServer, list[str]]]) -> None:
    """Name each key that holds no stream, on its server, rather than report "0 events"."""
    from cdc_verify.pipeline.redis.ranges import missing_streams

    lines = []
    for server, keys in checks:
        url = server.redacted_url()
        with redis_client(server) as client:
            lines += [
                f"stream {key!r} does not exist on {url}"
                if kind == "none"
                else f"{key!r} on {url} is a {kind}, not a stream"
                for key, kind in missing_streams(client, keys).items()
            ]
    if lines:
        raise click.ClickException("\n".join(lines))
