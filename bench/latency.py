"""Latency: from the later entry of a pair landing in Redis to its durable verdict.

A writer process XADDs pairs (production, then the sister copy a few ms later) with
`*` ids at a steady rate, pipelined per ~1 ms tick, for `--seconds`. The worker runs
in this process (asyncio, StreamWorker); its `on_outcomes` callback, which runs after
the batch's commit script returned (verdict, decision and XACK durable in Redis),
stamps each primary verdict with time.time(). Landing time of the later entry = the
ms part of its entry id (Redis' clock, same machine). Verdicts of pairs that landed
during the first `--warmup` seconds are left out.
Target (docs/guarantees.md): p99 < 50 ms at 10k events/s.
Prints figures; asserts nothing.

    .venv/bin/python bench/latency.py [--rate 10000] [--seconds 20] [--jitter-ms 5]

`--rate` counts logical events (pairs), so 10k events/s is 20k XADDs/s.
The writer runs in its own process so it does not share the worker's event loop;
writer, worker and redis-server share the machine's cores. So that the load takes as
little of them as it can (the writing service runs elsewhere in a real deployment), the
writer sends each XADD as RESP bytes packed from its templates beforehand, over a plain
socket, and counts the replies with hiredis (`--writer raw`, the default);
`--writer redis-py` sends them through redis-py's pipeline instead.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import multiprocessing as mp
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hiredis
import psutil
import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    clean_pairs,
    fresh_event_ids,
    machine_busy_s,
    percentile,
    verdict_stream_summary,
    versions,
    with_event_id,
)

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker

PROD, SIS = "bench:lat:production", "bench:lat:sister"
TICK_S = 0.001


# ------------------------------------------------------------------------------- writer


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class PackedXadd:
    """`XADD key * fields...` as RESP bytes, packed once per template: only the
    event_id's value changes from one entry to the next."""

    def __init__(self, key: str, fields: dict[bytes, bytes]) -> None:
        if b"event_id" not in fields:
            raise ValueError("a template without an event_id field")
        parts = [
            b"*%d\r\n" % (3 + 2 * len(fields)),
            _bulk(b"XADD"),
            _bulk(key.encode()),
            _bulk(b"*"),
        ]
        self._before = b""
        for name, value in fields.items():
            parts.append(_bulk(name))
            if name == b"event_id":
                self._before, parts = b"".join(parts), []
            else:
                parts.append(_bulk(value))
        self._after = b"".join(parts)

    def __call__(self, event_id: bytes) -> bytes:
        return self._before + _bulk(event_id) + self._after


class RawPipe:
    """A pipeline of packed commands on a plain socket; `execute` awaits their replies
    (hiredis counts them) and raises the first error among them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._queued: list[bytes] = []
        self._replies = hiredis.Reader()

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, command: bytes) -> None:
        self._queued.append(command)

    async def execute(self) -> None:
        owed = len(self._queued)
        self._writer.write(b"".join(self._queued))
        self._queued.clear()
        while owed:
            reply = self._replies.gets()
            if reply is False:
                data = await self._reader.read(1 << 16)
                if not data:
                    raise ConnectionError("redis closed the writer's connection")
                self._replies.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise reply
            owed -= 1

    async def aclose(self) -> None:
        self._writer.close()


class RedisPyPipe:
    """RawPipe's interface on redis-py's pipeline (`--writer redis-py`): a command is
    (stream, fields)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._queued: list[tuple[str, dict[bytes, bytes]]] = []

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, command: tuple[str, dict[bytes, bytes]]) -> None:
        self._queued.append(command)

    async def execute(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        for stream, fields in self._queued:
            pipe.xadd(stream, fields)
        self._queued.clear()
        await pipe.execute()

    async def aclose(self) -> None:
        await self._client.aclose()


async def write_pairs(
    url: str, rate: float, seconds: float, jitter_ms: float, seed: int, conn, raw: bool = True
) -> dict:
    rng = random.Random(seed)
    templates = clean_pairs(2_000, seed)
    ids = fresh_event_ids(rng)
    pipe: RawPipe | RedisPyPipe
    if raw:
        packed = [(PackedXadd(PROD, p), PackedXadd(SIS, s)) for p, s in templates]
        where = urlsplit(url)
        reader, stream = await asyncio.open_connection(where.hostname, where.port)
        pipe = RawPipe(reader, stream)

        def commands(i: int, event_id: bytes) -> tuple[Any, Any]:
            production, sister = packed[i % len(packed)]
            return production(event_id), sister(event_id)

    else:
        client = aioredis.Redis.from_url(url)
        await client.ping()
        pipe = RedisPyPipe(client)

        def commands(i: int, event_id: bytes) -> tuple[Any, Any]:
            production, sister = templates[i % len(templates)]
            return (PROD, with_event_id(production, event_id)), (
                SIS,
                with_event_id(sister, event_id),
            )

    total = int(rate * seconds)
    sisters: list[tuple[float, int, Any]] = []  # (due, seq, command): a heap
    written = entries = 0
    worst_behind = 0.0
    conn.send(time.time() * 1000)  # the clock starts now
    start = time.monotonic()
    try:
        while written < total or sisters:
            now = time.monotonic()
            due = min(total, int((now - start) * rate))
            if due > written:
                worst_behind = max(worst_behind, (due - written) / rate)
            for i in range(written, due):
                production, sister = commands(i, next(ids))
                pipe.add(production)
                later = now + rng.uniform(0, jitter_ms) / 1000
                heapq.heappush(sisters, (later, i, sister))
            entries += due - written
            written = due
            while sisters and sisters[0][0] <= now:
                pipe.add(heapq.heappop(sisters)[2])
                entries += 1
            if len(pipe):
                await pipe.execute()
            await asyncio.sleep(TICK_S)
        elapsed = time.monotonic() - start
    finally:
        await pipe.aclose()
    cpu = sum(psutil.Process().cpu_times()[:2])
    return {
        "pairs": written,
        "entries": entries,
        "seconds": elapsed,
        "behind_s": worst_behind,
        "cpu_s": cpu,
    }


def writer_main(
    url: str, rate: float, seconds: float, jitter_ms: float, seed: int, conn, raw: bool
) -> None:
    conn.send(asyncio.run(write_pairs(url, rate, seconds, jitter_ms, seed, conn, raw)))
    conn.close()


# ------------------------------------------------------------------------------- worker


async def measure(args: argparse.Namespace, url: str, redis_pid: int | None) -> None:
    settings = Settings(
        redis_url=url,
        production=PROD,
        sister=SIS,
        group="bench-latency",
        consumer_name="bench-latency",
        start_id="0",
        create_streams=True,
        http_port=0,
        grace=args.grace,
        lock_ttl=2,
        batch_size=args.batch,
        read_linger_ms=args.read_linger_ms,
    )
    latencies: list[float] = []
    verdicts: Counter[str] = Counter()
    warm_from_ms = [float("inf")]  # entry-id ms before which verdicts are warm-up
    done = asyncio.Event()
    expected = [0]

    def on_outcomes(outcomes: list[Outcome]) -> None:  # runs once the batch is committed
        now_ms = time.time() * 1000
        for o in outcomes:
            if o.kind is not OutcomeKind.PRIMARY or o.record is None:
                continue
            verdicts[o.record.verdict.value] += 1
            if len(o.settles) == 2:
                landed = max(e.arrival_ms for e in o.settles)
                if landed >= warm_from_ms[0]:
                    latencies.append(now_ms - landed)
        if expected[0] and sum(verdicts.values()) >= expected[0]:
            done.set()

    worker = StreamWorker(settings, decode_event, on_outcomes=on_outcomes)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.ready.wait(), 30)

    me = psutil.Process()
    server = psutil.Process(redis_pid) if redis_pid else None
    rss_before, cpu_before = me.memory_info().rss, sum(me.cpu_times()[:2])
    redis_cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
    forks_before = rewrite_forks(url)
    machine_before = machine_busy_s()
    wall_before = time.monotonic()
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    writer = ctx.Process(
        target=writer_main,
        args=(url, args.rate, args.seconds, args.jitter_ms, args.seed, send, args.writer == "raw"),
        name="bench-latency-writer",
    )
    writer.start()
    # The writer needs ~1 s to build its payloads before its clock starts; wait off-loop.
    started_ms = await asyncio.to_thread(receive.recv)
    warm_from_ms[0] = started_ms + args.warmup * 1000
    result = await asyncio.to_thread(receive.recv)
    await asyncio.to_thread(writer.join)
    expected[0] = result["pairs"]
    backlog = result["pairs"] - sum(verdicts.values())
    # Done when every pair has its verdict in the verdict stream (the durable output; a
    # commit that was in flight when a session ended is in there without a callback).
    probe = aioredis.Redis.from_url(url)
    deadline = time.monotonic() + 60
    while not done.is_set() and await probe.xlen(settings.verdict_stream) < expected[0]:
        if time.monotonic() > deadline:
            print(f"timed out: {sum(verdicts.values()):,}/{expected[0]:,} verdicts")
            break
        await asyncio.sleep(0.05)
    await probe.aclose()
    cpu = sum(me.cpu_times()[:2]) - cpu_before
    redis_cpu = sum(server.cpu_times()[:2]) - redis_cpu_before if server else 0.0
    wall = time.monotonic() - wall_before
    machine = (machine_busy_s() - machine_before) / (wall * (psutil.cpu_count() or 1))
    rss_after = me.memory_info().rss
    forks = rewrite_forks(url) - forks_before
    worker.stop()
    await asyncio.wait_for(task, 30)

    latencies.sort()
    print(
        f"writer: {result['pairs']:,} pairs ({result['entries']:,} entries) in"
        f" {result['seconds']:.1f}s = {result['pairs'] / result['seconds']:,.0f} events/s"
        f" ({result['entries'] / result['seconds']:,.0f} XADD/s); longest pause between writes"
        f" {result['behind_s'] * 1000:.0f} ms"
    )
    print(f"verdicts seen by on_outcomes: {dict(verdicts)}")
    sync = redis.Redis.from_url(url)
    counts, primaries, distinct = verdict_stream_summary(sync, settings.verdict_stream)
    sync.close()
    print(
        f"verdict stream: {dict(counts)}; {primaries:,} primary records for {distinct:,}"
        f" event_ids ({'exactly one each' if primaries == distinct == expected[0] else 'CHECK'})"
    )
    print(
        f"latency (later entry landed -> verdict committed), {len(latencies):,} pairs after"
        f" {args.warmup:g}s warm-up: p50 {percentile(latencies, 50):.1f} ms,"
        f" p90 {percentile(latencies, 90):.1f} ms, p99 {percentile(latencies, 99):.1f} ms,"
        f" p99.9 {percentile(latencies, 99.9):.1f} ms, max {percentile(latencies, 100):.1f} ms"
    )
    print(f"target: p99 < 50 ms at 10k events/s -> p99 {percentile(latencies, 99):.1f} ms")
    print(
        f"verdicts still owed when the writer stopped: {backlog:,}"
        f" ({'kept up' if backlog < args.rate * 0.1 else 'fell behind'})"
    )
    print(
        f"CPU over {wall:.1f}s: worker {cpu:.1f}s ({cpu / wall:.0%} of a core),"
        f" writer {result['cpu_s']:.1f}s, redis-server {redis_cpu:.1f}s"
        f" (2 cores = {2 * wall:.0f}s); the machine {machine:.0%} busy of"
        f" {psutil.cpu_count()} cores; worker RSS {rss_before / 2**20:,.0f}"
        f" -> {rss_after / 2**20:,.0f} MiB"
    )
    print(
        f"AOF rewrites during the run: {forks} (--aof-rewrite {args.aof_rewrite}); each forks"
        " a child that writes the whole dataset, on these same cores"
    )


def rewrite_forks(url: str) -> int:
    """Redis' forks so far: AOF rewrites here (no RDB snapshots: save is off)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_forks"])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="pairs (events) per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds left out at the start")
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=5.0,
        help="the sister copy lands 0..this many ms after production",
    )
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--read-linger-ms",
        type=int,
        default=Settings.model_fields["read_linger_ms"].default,
        help="the worker's --read-linger-ms (default: the setting's own)",
    )
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--writer",
        choices=["raw", "redis-py"],
        default="raw",
        help="how the writer sends its XADDs: packed beforehand, on a plain socket (raw), "
        "or through redis-py's pipeline",
    )
    parser.add_argument(
        "--aof-rewrite",
        choices=["auto", "off"],
        default="auto",
        help="off: no automatic AOF rewrite during the run (CONFIG SET "
        "auto-aof-rewrite-percentage 0), to see what the rewrites cost",
    )
    args = parser.parse_args()  # fmt: skip

    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        print(versions(client))
        if args.aof_rewrite == "off":
            client.config_set("auto-aof-rewrite-percentage", 0)
        client.close()
        print(
            f"rate {args.rate:,.0f} events/s for {args.seconds:g}s, sister 0-{args.jitter_ms:g} ms"
            f" after production, batch {args.batch}, read linger {args.read_linger_ms} ms,"
            f" grace {args.grace:g}s, writer {args.writer}"
        )
        asyncio.run(measure(args, server.url, server.pid))


if __name__ == "__main__":
    main()
