"""Read-only production: the waiting set on the state server is the join state."""

from __future__ import annotations

import asyncio
import random
import time

import redis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.consumers.reference import decode_event
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .support import PROD, SIS, VERDICTS, settings, verdict_records


def fields(event_id: str) -> dict[bytes, bytes]:
    return {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": b"t1_ro", b"version": b"1", b"ts_ms": b"1", b"encoding": b"msgpack",
        b"payload": encode_msgpack(sample_comment(random.Random(event_id), "t1_ro")),
    }  # fmt: skip


def run_for(worker: StreamWorker, until, timeout: float = 30) -> None:
    async def main() -> None:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + timeout
        while not until():
            assert not task.done(), "worker stopped"
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
        worker.stop()
        await task

    asyncio.run(main())


def test_a_restart_rebuilds_every_waiting_production_entry(tmp_path):
    """More waiting entries than a batch: each rebuilt batch's commit shrinks the waiting
    set, which must not make the rebuild skip any."""
    with EmbeddedRedis(tmp_path / "p") as prod, EmbeddedRedis(tmp_path / "s") as sis:
        cfg = settings(
            None, production_redis_url=prod.url, sister_redis_url=sis.url,
            production_read_only=True, grace=60.0, batch_size=100,
        )  # fmt: skip
        prod_client, sis_client = redis.Redis.from_url(prod.url), redis.Redis.from_url(sis.url)
        ids = [f"E{i:05d}" for i in range(1500)]
        for event_id in ids:
            prod_client.xadd(PROD, fields(event_id))
        sis_client.xadd(SIS, fields("warm-up"))  # the sister stream exists
        keys = WorkerKeys.from_settings(cfg)
        waiting = lambda: sis_client.zcard(keys.production_waiting)  # noqa: E731
        run_for(StreamWorker(cfg, decode_event), lambda: waiting() == len(ids))
        # The twins come while no worker runs; the next one must find every partner.
        for event_id in ids:
            sis_client.xadd(SIS, fields(event_id))
        done = lambda: sum(1 for _ in sis_client.xrange(VERDICTS)) >= len(ids)  # noqa: E731
        run_for(StreamWorker(cfg, decode_event), done)
        records = verdict_records(sis_client, VERDICTS)
        assert sorted(r["event_id"] for r in records if r["verdict"] == "match") == ids
        assert waiting() == 0
