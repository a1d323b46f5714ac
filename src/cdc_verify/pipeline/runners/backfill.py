"""`cdc-verify backfill`: a bounded check of what both streams hold right now.

It reads with XRANGE (no consumer group, nothing acked), so it never disturbs a
running worker, and stops at the last entry each stream had when it started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.decoder import Consumer
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry, fields_dict
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.verifier import Verifier
from cdc_verify.pipeline.redis.clock import SIGNIFICANT_MS
from cdc_verify.pipeline.redis.connection import connect_sync
from cdc_verify.pipeline.redis.ranges import last_entry_id, read_range
from cdc_verify.pipeline.runners.bounded import settings_provenance, verify_to_reports
from cdc_verify.pipeline.runners.wiring import side_envelopes, verifier_config
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import Side


def read_stream(
    client: redis.Redis, side: Side, key: str, last_id: str | None, envelope: Envelope | None = None
) -> Iterator[StreamEntry]:
    if last_id is None:
        return
    for page in read_range(client, key, "-", last_id):
        for entry_id, flat in page:
            yield StreamEntry.from_redis(side, entry_id, fields_dict(flat), envelope)


def server_skew_ms(production: Any, sister: Any) -> int:
    """Sister's TIME minus production's, each taken between two readings of our clock."""
    offsets = []
    for client in (production, sister):
        before = time.time() * 1000
        seconds, micros = client.time()
        offsets.append(int(seconds) * 1000 + int(micros) / 1000 - (before + time.time() * 1000) / 2)
    return round(offsets[1] - offsets[0])


def run_backfill(
    settings: Settings,
    consumer: Consumer,
    out_dir: Path,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Each stream is read from its own server (settings.server), with read commands only."""
    with ExitStack() as stack:
        prod = stack.enter_context(connect_sync(settings.server(Role.PRODUCTION)))
        sister = stack.enter_context(connect_sync(settings.server(Role.SISTER)))
        # Pinned now: what is written while the backfill runs belongs to the next one.
        prod_end = last_entry_id(prod, settings.production)
        sister_end = last_entry_id(sister, settings.sister)
        if on_start:
            on_start(prod.xlen(settings.production) + sister.xlen(settings.sister))
        verifier = Verifier(consumer, verifier_config(settings, shapes=True))
        envelopes = side_envelopes(settings)
        # Two servers, two clocks: what their TIMEs say now is the best a bounded run can
        # know of the skew of the ids they gave (the live worker also watches the ids).
        skew = server_skew_ms(prod, sister)
        if abs(skew) >= SIGNIFICANT_MS:
            verifier.set_skew(skew)
        provenance = [
            (
                role.value,
                f"{key} on {settings.server(role).redacted_url()}, up to {end or 'its end'}",
            )
            for role, key, end in (
                (Role.PRODUCTION, settings.production, prod_end),
                (Role.SISTER, settings.sister, sister_end),
            )
        ]
        provenance += settings_provenance(settings)
        return verify_to_reports(
            verifier,
            read_stream(prod, PRODUCTION, settings.production, prod_end, envelopes[PRODUCTION]),
            read_stream(sister, SISTER, settings.sister, sister_end, envelopes[SISTER]),
            out_dir,
            on_progress,
            provenance,
        )
