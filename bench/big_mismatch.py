"""One big differing body through the live worker: what it costs the state server.

Writes an event whose `body` is `--mb` MB on each side (half of its characters control
characters, which JSON writes as six bytes), the two sides differing in their last
character, beside 20 small events, and runs the real worker (StreamWorker) on an
embedded Redis until every event has its verdict or `--timeout` passes. Reports the
time, the big event's record size, the state server's `used_memory` growth and the
record key's MEMORY USAGE, and the process's peak RSS (issue 22, item 1).
Prints figures; asserts nothing.

    .venv/bin/python bench/big_mismatch.py [--mb 50] [--timeout 120]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import versions

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

PROD, SIS, VERDICTS = "b:production", "b:sister", "cdc-verify:verdicts"
SMALL = 20


def event(event_id: str, body: str) -> dict[str, bytes | str]:
    comment = {**sample_comment(random.Random(event_id), event_id), "body": body}
    return {"event_id": event_id, "version": "1", "encoding": "msgpack",
            "payload": encode_msgpack(comment)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    body = "a\x01" * (args.mb * 500_000)
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=120)
        print(versions(client))
        client.xadd(PROD, event("BIG", body))
        client.xadd(SIS, event("BIG", body[:-1] + "z"))
        for i in range(SMALL):
            client.xadd(PROD, event(f"S{i}", "x"))
            client.xadd(SIS, event(f"S{i}", "x" if i % 2 else "y"))
        before = int(client.info("memory")["used_memory"])
        settings = Settings(
            redis_url=server.url, production=PROD, sister=SIS, grace=1.0, start_id="0",
            http_port=0, block_ms=20, redis_socket_timeout=60,
        )  # fmt: skip
        worker = StreamWorker(settings, decode_event)
        started = time.monotonic()

        async def run() -> bool:
            task = asyncio.create_task(worker.run())
            done = False
            while time.monotonic() - started < args.timeout and not task.done():
                try:
                    done = client.xlen(VERDICTS) >= SMALL + 1
                except redis.RedisError as exc:  # the state server busy with a commit
                    print(f"{time.monotonic() - started:.1f} s: {exc}")
                if done:
                    break
                await asyncio.sleep(0.2)
            worker.stop()
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:
                print("the worker did not stop within 30 s of stop()")
            return done

        done = asyncio.run(run())
        took = time.monotonic() - started
        after = int(client.info("memory")["used_memory"])
        record_key = next(iter(client.scan_iter("*:record:BIG")), None)
        record = client.get(record_key) if record_key else None
        usage = client.memory_usage(record_key) if record_key else None
        print(f"body {args.mb} MB a side; all verdicts: {done} after {took:.1f} s")
        print(f"verdict entries: {client.xlen(VERDICTS)} of {SMALL + 1}")
        print(f"record of BIG: {len(record) if record else None} bytes; MEMORY USAGE {usage}")
        print(f"record starts: {record[:300] if record else None!r}")
        print(f"state server used_memory growth: {(after - before) / 2**20:.1f} MiB")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MiB")
        client.close()


if __name__ == "__main__":
    main()
