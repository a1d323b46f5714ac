"""`alerts`: the worker's missing-event alerts, straight from its state server."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    Duration,
    command_settings,
    config_option,
    group_option,
    json_option,
    option,
    state_redis_options,
)
from cdc_verify.config.roles import require_state_server


@click.command(cls=Command)
@state_redis_options("the worker writes its alerts to")
@group_option()
@option(
    "--since",
    type=Duration(0),
    topic=Topic.SCOPE,
    help="only alerts opened in this window, e.g. 10m, 2h, 1d (default: all)",
)
@option(
    "--side",
    type=click.Choice(["production", "sister"]),
    topic=Topic.SCOPE,
    help="only events missing on this side (sister: missing_in_sister; default: both)",
)
@option("--entity-id", topic=Topic.SCOPE,
        help="only alerts about this entity, e.g. t1_abc (default: all)")  # fmt: skip
@option("--resolved", is_flag=True, topic=Topic.SCOPE,
        help="alerts resolved by a late arrival instead")  # fmt: skip
@option(
    "--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
    topic=Topic.OUTPUT, help="at most this many alerts (oldest first)",
)  # fmt: skip
@json_option("print a JSON array")
@config_option("the redis_* settings and group")
def alerts(group: str | None, since: float | None, side: str | None, entity_id: str | None,
           resolved: bool, limit: int, as_json: bool, config: Path | None,
           **kwargs: Any) -> None:  # fmt: skip
    """Missing-event alerts: gaps not (or, with --resolved, since) resolved by a late arrival.

    The same query as GET /api/alerts of a running worker, straight from Redis.
    """
    from cdc_verify.pipeline.redis.alerts import (
        AlertFilter,
        AlertState,
        query_alerts,
        window_start_ms,
    )
    from cdc_verify.pipeline.redis.presence import NoState
    from cdc_verify.schemas.verdicts import Side
    from cdc_verify.terminal import print_alerts

    settings = command_settings(config, group=group, **kwargs)
    require_state_server(settings, "alerts")
    where = AlertFilter(
        None if since is None else window_start_ms(timedelta(seconds=since)),
        Side(side) if side else None,
        entity_id,
    )
    state = AlertState.RESOLVED if resolved else AlertState.OPEN
    try:
        found, more = asyncio.run(query_alerts(settings, state, where, limit))
    except NoState as exc:  # the wrong server or group: not "no alerts"
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    print_alerts(found, as_json, state.value, more)
