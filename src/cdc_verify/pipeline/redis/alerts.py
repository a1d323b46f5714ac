"""Reads the missing-event alerts the worker keeps in Redis."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import redis

from cdc_verify.pipeline.redis.connection import client_options
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.schemas.settings import Settings
from cdc_verify.schemas.verdicts import Side, Verdict

MISSING_ON = {
    Side.SISTER: Verdict.MISSING_IN_SISTER,
    Side.PRODUCTION: Verdict.MISSING_IN_PRODUCTION,
}


def read_alerts(
    settings: Settings,
    window: timedelta | None = None,
    missing_on: Side | None = None,
    resolved: bool = False,
) -> list[dict]:
    """Open (or resolved) alerts, oldest first.

    `window`: only those opened (resolved) within it; `missing_on`: only gaps on that side.
    """
    keys = WorkerKeys.from_settings(settings)
    alerts_key, index_key = (
        (keys.alerts_resolved, keys.alerts_resolved_index)
        if resolved
        else (keys.alerts_open, keys.alerts_open_index)
    )
    since = "-inf" if window is None else int((time.time() - window.total_seconds()) * 1000)
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url, **client_options(settings))
    try:
        event_ids = client.zrangebyscore(index_key, since, "+inf")
        raw = client.hmget(alerts_key, event_ids) if event_ids else []
    finally:
        client.close()
    alerts = [json.loads(value) for value in raw if value]
    if missing_on is not None:
        alerts = [a for a in alerts if a["verdict"] == MISSING_ON[missing_on].value]
    return alerts
