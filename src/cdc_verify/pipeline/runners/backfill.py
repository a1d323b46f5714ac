"""`cdc-verify backfill`: a bounded check of what both streams hold right now.

It reads with XRANGE (no consumer group, nothing acked), so it never disturbs a
running worker, and stops at the last entry each stream had when it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from cdc_verify.pipeline.core.decoder import Consumer
from cdc_verify.pipeline.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.pipeline.core.verifier import Verifier
from cdc_verify.pipeline.redis.connection import client_options
from cdc_verify.pipeline.runners.bounded import verify_to_reports
from cdc_verify.pipeline.runners.worker import verifier_config
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.settings import Settings
from cdc_verify.schemas.verdicts import Side

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    key: str
    last_id: str | None  # None: the stream is empty or absent
    length: int


def snapshot(client: redis.Redis, key: str) -> StreamSnapshot:
    last = client.xrevrange(key, count=1)
    if not last:
        return StreamSnapshot(key, None, 0)
    last_id = last[0][0]
    last_id = last_id.decode() if isinstance(last_id, bytes) else last_id
    return StreamSnapshot(key, last_id, client.xlen(key))


def read_stream(client: redis.Redis, side: Side, snap: StreamSnapshot) -> Iterator[StreamEntry]:
    if snap.last_id is None:
        return
    start = "-"
    while True:
        chunk = client.xrange(snap.key, min=start, max=snap.last_id, count=CHUNK)
        for entry_id, fields in chunk:
            yield StreamEntry.from_redis(side, entry_id, fields)
        if len(chunk) < CHUNK:
            return
        last = chunk[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else last)


def run_backfill(
    settings: Settings,
    consumer: Consumer,
    out_dir: Path,
    redis_url: str,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    client = redis.Redis.from_url(redis_url, **client_options(settings))
    try:
        prod = snapshot(client, settings.production)
        sister = snapshot(client, settings.sister)
        if on_start:
            on_start(prod.length + sister.length)
        verifier = Verifier(consumer, verifier_config(settings))
        return verify_to_reports(
            verifier,
            read_stream(client, PRODUCTION, prod),
            read_stream(client, SISTER, sister),
            out_dir,
            on_progress,
        )
    finally:
        client.close()
