"""Big entries and memory by bytes: reads capped by --read-max-bytes, big waiting entries
spilled to files past --waiting-max-bytes, on a real Redis with real msgpack payloads."""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION
from cdc_verify.pipeline.redis.streams import StreamPair
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .support import PROD, SIS, settings, verdict_records

MiB = 2**20


def big_event(event_id: str, body: str) -> dict[str, bytes | str]:
    comment = {**sample_comment(random.Random(event_id), event_id), "body": body}
    return {"event_id": event_id, "version": "1", "encoding": "msgpack",
            "payload": encode_msgpack(comment)}  # fmt: skip


def test_a_read_takes_no_more_entries_than_its_byte_cap_allows(redis_url):
    async def scenario() -> list[int]:
        client = aioredis.Redis.from_url(redis_url)
        keys = WorkerKeys.from_settings(settings(redis_url))
        for i in range(20):
            await client.xadd(PROD, big_event(f"B{i}", "x" * MiB))
        await client.xadd(SIS, {"event_id": "small"})
        streams = StreamPair.on_one_server(client, keys, "w", read_max_bytes=5 * MiB)
        await streams.ensure_groups("0", 1000)
        sizes = []
        while sum(sizes) < 20:
            read = await streams.read_new(500, block_ms=10)
            sizes.append(sum(1 for e in read.entries if e.side is PRODUCTION))
        await client.aclose()
        return sizes

    sizes = asyncio.run(scenario())
    # 5 MiB over two streams of 1 MiB entries: two a read, after a first read of one.
    assert sizes[0] == 1 and max(sizes) == 2 and sum(sizes) == 20, sizes


def test_big_waiting_entries_are_spilled_past_the_cap_and_verified_when_their_twin_comes(
    redis_url, redis_client, tmp_path
):
    bodies = {f"BIG{i}": chr(ord("a") + i) * MiB for i in range(12)}
    for event_id, body in bodies.items():
        redis_client.xadd(PROD, big_event(event_id, body))
    cfg = settings(
        redis_url, grace=60, waiting_max_bytes=3 * MiB, read_max_bytes=4 * MiB,
        spill_dir=tmp_path,
    )  # fmt: skip
    worker = StreamWorker(cfg, decode_event)
    seen: dict[str, float] = {}

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 60
        while worker.verifier.waiting_count(PRODUCTION) < 12:
            assert not task.done() and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the gauge is set after the batch
        seen["files"] = worker.spill.files
        seen["gauge"] = worker.metrics.registry.get_sample_value("cdc_verify_spilled_bytes")
        seen["mode"] = worker.spill.path.stat().st_mode & 0o777 if worker.spill.path else 0
        for event_id, body in bodies.items():  # the twins; one of them differs
            redis_client.xadd(SIS, big_event(event_id, body if event_id != "BIG3" else "z"))
        while len(verdict_records(redis_client)) < 12:
            assert not task.done() and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        seen["files_after"] = worker.spill.files
        worker.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    # 1.5 MiB a side: one entry of 1 MiB stays in memory, the other 11 are in files.
    assert seen["files"] == 11 and seen["gauge"] > 11 * MiB and seen["mode"] == 0o700
    assert seen["files_after"] == 0
    verdicts = {r["event_id"]: r for r in verdict_records(redis_client)}
    assert {e: r["verdict"] for e, r in verdicts.items()} == {
        e: "mismatch" if e == "BIG3" else "match" for e in bodies
    }
    assert [d["path"] for d in verdicts["BIG3"]["differences"]] == ["/body"]
    assert not any(tmp_path.iterdir()), "the spill directory outlived the worker"
    for stream in (PROD, SIS):
        assert redis_client.xpending(stream, cfg.group)["pending"] == 0
