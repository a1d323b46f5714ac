"""Reads the missing-event alerts the worker keeps in Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import redis

from cdc_verify.pipeline.redis.connection import client_options
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.schemas.settings import Settings


def parse_opened_at(alert: dict) -> datetime:
    return datetime.fromisoformat(alert["opened_at"].replace("Z", "+00:00"))


def read_open_alerts(settings: Settings, window: timedelta | None = None) -> list[dict]:
    """Open alerts, oldest first; only those opened within `window` when given."""
    keys = WorkerKeys.from_settings(settings)
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url, **client_options(settings))
    try:
        raw = client.hvals(keys.alerts_open)
    finally:
        client.close()
    alerts = [json.loads(v) for v in raw]
    if window is not None:
        since = datetime.now(UTC) - window
        alerts = [a for a in alerts if parse_opened_at(a) >= since]
    return sorted(alerts, key=lambda a: (a["opened_at"], a["event_id"]))
