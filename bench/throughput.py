"""Throughput: the verifier against a raw XREADGROUP+XACK drain of the same streams.

One embedded Redis, one realistic corpus (every fault, 80% clean; or clean only),
written once with explicit past ids. Then, in this process and on the same data,
each with its own fresh consumer group so that both read everything:

  raw drain  XREADGROUP COUNT batch STREAMS prod sister > > ; XACK every id ; repeat
  verifier   StreamWorker (in-process, asyncio), until every primary verdict is durable

With --topology three or both (the default), the same corpus is also written to three
embedded servers (production, sister, state; docs/topology.md) and verified by a
StreamWorker reading production read-only through an ACL user (XREAD, positions on the
state server, which fsyncs every write): its rate is printed beside the one-server one.

The target (docs/guarantees.md) is verifier/raw >= 0.5. Prints figures; asserts nothing.

    .venv/bin/python bench/throughput.py [--events 200000] [--batch 500] [--clean-only]
    .venv/bin/python bench/throughput.py --topology one   # the one-server figures only
    .venv/bin/python bench/throughput.py --identical-bytes   # pairs decoded once
    .venv/bin/python bench/throughput.py --events 50000 --profile cprofile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import verdict_stream_summary, versions

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.embedded_redis import READ_ONLY_ACL, EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

PROD, SIS, VERDICTS = "bench:production", "bench:sister", "bench:verdicts"
RAW_GROUP, VERIFIER_GROUP = "bench-raw", "bench-verifier"


@dataclass
class VerifierRun:
    entries: int
    primaries: int
    seconds: float  # start of reading -> last primary verdict committed
    read_all_s: float | None  # start of reading -> last entry handed to the core
    profile: str = ""


async def raw_drain(url: str, batch: int) -> tuple[int, float]:
    """Read both streams with a fresh group and XACK every id read, until both are empty."""
    client = aioredis.Redis.from_url(url)
    try:
        for key in (PROD, SIS):
            await client.xgroup_create(key, RAW_GROUP, id="0")
        streams = {PROD: ">", SIS: ">"}
        read = 0
        start = time.perf_counter()
        while True:
            reply = await client.xreadgroup(RAW_GROUP, "c", streams, count=batch)
            items = reply.items() if isinstance(reply, dict) else (reply or ())
            pipe = client.pipeline(transaction=False)
            got = 0
            for key, entries in items:
                if isinstance(entries, list) and entries and isinstance(entries[0], list):
                    entries = entries[0]  # RESP3 shape
                if entries:
                    pipe.xack(key, RAW_GROUP, *[entry_id for entry_id, _ in entries])
                    got += len(entries)
            if not got:
                break
            await pipe.execute()
            read += got
        return read, time.perf_counter() - start
    finally:
        await client.aclose()


async def run_verifier(
    url: str,
    batch: int,
    entries: int,
    primaries: int,
    profiler: str | None,
    timeout: float,
    servers: dict[str, Any] | None = None,
    coverage: bool = True,
    group: str = VERIFIER_GROUP,
    verdicts: str = VERDICTS,
) -> VerifierRun:
    """`servers`: settings of a topology other than everything on `url` (see ThreeServers);
    `coverage`: count shapes (the setting); `group`, `verdicts`: a second run's own."""
    settings = Settings(
        **(servers or {}),
        redis_url=url,
        production=PROD,
        sister=SIS,
        group=group,
        verdict_stream=verdicts,
        coverage=coverage,
        consumer_name="bench-verifier",
        create_streams=True,
        start_id="0",
        http_port=0,
        grace=2.0,
        lock_ttl=2,
        batch_size=batch,
    )
    done = asyncio.Event()
    seen = {"primaries": 0, "read": 0}
    marks: dict[str, float] = {}

    def on_outcomes(outcomes: list[Outcome]) -> None:  # called once the batch is committed
        seen["primaries"] += sum(1 for o in outcomes if o.kind is OutcomeKind.PRIMARY)
        if seen["primaries"] >= primaries and not done.is_set():
            marks["done"] = time.perf_counter()
            done.set()

    worker = StreamWorker(settings, decode_event, on_outcomes=on_outcomes)
    count_read = worker.metrics.read

    def read(side: str, count: int) -> None:  # wraps the metric to timestamp the last read
        count_read(side, count)
        seen["read"] += count
        if seen["read"] >= entries and "read" not in marks:
            marks["read"] = time.perf_counter()

    worker.metrics.read = read  # type: ignore[method-assign]

    prof = cprofile = None
    if profiler == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(async_mode="disabled", interval=0.0005)
        prof.start()
    elif profiler == "cprofile":
        cprofile = cProfile.Profile()
        cprofile.enable()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the worker died: raise its error
            raise RuntimeError("the worker stopped before every verdict was in")
        if not done.is_set():
            raise TimeoutError(f"{seen['primaries']:,}/{primaries:,} primary verdicts")
    finally:
        waiter.cancel()
        if cprofile:
            cprofile.disable()
        if prof:
            prof.stop()
        worker.stop()
        await asyncio.wait_for(task, 30)

    text = ""
    if cprofile:
        out = io.StringIO()
        stats = pstats.Stats(cprofile, stream=out)
        stats.sort_stats("cumulative").print_stats(40)
        out.write("\n---- by internal time ----\n")
        stats.sort_stats("tottime").print_stats(40)
        text = out.getvalue()
    elif prof:
        text = prof.output_text(unicode=False, color=False, show_all=False)

    return VerifierRun(
        entries=seen["read"],
        primaries=seen["primaries"],
        seconds=marks["done"] - start,
        read_all_s=marks["read"] - start if "read" in marks else None,
        profile=text,
    )


class CpuMeter:
    """CPU seconds (user+system) this process and the redis-servers spend between two points."""

    def __init__(self, redis_pid: int | None, **more_pids: int | None) -> None:
        self._names = ["python"]
        self._procs = [psutil.Process()]
        pids = {"redis-server": redis_pid} if redis_pid else {}
        for name, pid in {**pids, **more_pids}.items():
            if pid:
                self._names.append(name)
                self._procs.append(psutil.Process(pid))

    def _now(self) -> list[float]:
        return [sum(p.cpu_times()[:2]) for p in self._procs]

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = [b - a for a, b in zip(self._start, self._now(), strict=True)]

    def describe(self, seconds: float, entries: int = 0) -> str:
        """CPU seconds and share of a core of each process; with `entries`, also µs
        per stream entry."""
        return ", ".join(
            f"{n} {u:.2f}s CPU ({u / seconds:.0%}"
            + (f", {u / entries * 1e6:.1f} µs/entry)" if entries else ")")
            for n, u in zip(self._names, self.used, strict=True)
        )


def reset_commandstats(client: redis.Redis) -> None:
    client.config_resetstat()


def print_commandstats(client: redis.Redis, entries: int, top: int = 12) -> None:
    """Redis' own time per command since the last reset, per stream entry: a command a
    script calls is counted under its own name too (and inside the script's figure)."""
    stats = client.info("commandstats")
    rows = sorted(
        ((k.removeprefix("cmdstat_"), v) for k, v in stats.items()),
        key=lambda kv: -kv[1]["usec"],
    )
    print(f"            commandstats ({entries:,} entries), µs/entry and calls/entry:")
    for name, v in rows[:top]:
        print(
            f"              {name:<12} {v['usec'] / entries:6.2f} µs  "
            f"{v['calls'] / entries:6.3f} calls  ({v['usec_per_call']:.2f} µs/call)"
        )


READER = "reader"


class ThreeServers:
    """Production, sister and state each on an embedded server of its own; production
    read through a read-only ACL user. The state server fsyncs every write (appendfsync
    always), as a separate state server must for exactness (docs/topology.md)."""

    def __init__(self, stack: ExitStack) -> None:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-three-")))
        self.production = stack.enter_context(EmbeddedRedis(base / "production"))
        self.sister = stack.enter_context(EmbeddedRedis(base / "sister"))
        self.state = stack.enter_context(
            EmbeddedRedis(base / "state", extra_args=("--appendfsync", "always"))
        )
        self._password = secrets.token_urlsafe(16)
        self.production.acl_user(READER, self._password, READ_ONLY_ACL)

    def write(self, corpus: Corpus) -> float:
        """Writes the corpus with the same explicit ids the one-server run used; seconds."""
        prod = redis.Redis.from_url(self.production.url)
        sister = redis.Redis.from_url(self.sister.url)
        start = time.perf_counter()
        clients = {Side.PRODUCTION: prod, Side.SISTER: sister}
        write_corpus(clients, corpus, PROD, SIS, past_base_ms(prod, corpus))
        seconds = time.perf_counter() - start
        prod.close()
        sister.close()
        return seconds

    def settings(self) -> dict[str, Any]:
        return dict(
            production_redis_url=self.production.url,
            production_redis_username=READER,
            production_redis_password=self._password,
            production_read_only=True,
            state_redis_url=self.state.url,
        )

    def cpu(self) -> CpuMeter:
        return CpuMeter(
            None, production=self.production.pid, sister=self.sister.pid, state=self.state.pid
        )


def shape_memory(client: redis.Redis) -> str:
    """What shape coverage holds on the state server after the run with shapes."""
    keys = WorkerKeys.from_settings(Settings(group=VERIFIER_GROUP))
    shapes = client.hlen(keys.shapes)
    held = sum(client.memory_usage(k, samples=0) or 0 for k in (keys.shapes, keys.shape_counts))
    per = f", {held / shapes:,.0f} B a shape" if shapes else ""
    return f"shape coverage on Redis: {shapes:,} shapes in {held / 2**20:,.2f} MiB{per}"


def check_verdicts(
    client: redis.Redis, expected: dict[Verdict, int], primaries: int, verdicts: str = VERDICTS
) -> None:
    stream, primary_records, distinct = verdict_stream_summary(client, verdicts)
    got = {v.value: stream[v.value] for v in Verdict}
    want = {v.value: expected[v] for v in Verdict}
    same = "as expected" if got == want else f"EXPECTED {want}"
    shown = {k: n for k, n in got.items() if n}
    print(f"verdict stream: {shown} ({same})")
    once = primary_records == distinct == primaries
    print(
        f"primary records: {primary_records:,} for {distinct:,} event_ids"
        f" ({'exactly one each' if once else 'CHECK'})"
    )


def same_bytes_when_clean(corpus: Corpus) -> None:
    """Each clean event's sister entry gets its production twin's fields."""
    production = {e.event_id: e.fields for e in corpus.production if e.label == "clean"}
    for entry in corpus.sister:
        if entry.label == "clean" and entry.event_id in production:
            entry.fields = dict(production[entry.event_id])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="logical changes (pairs)")
    parser.add_argument("--batch", type=int, default=500, help="COUNT per XREADGROUP (both runs)")
    parser.add_argument("--clean-only", action="store_true", help='corpus mix {"clean": 1.0}')
    parser.add_argument(
        "--identical-bytes",
        action="store_true",
        help="healthy sister entries carry production's very bytes (a writer that encodes "
        "alike), so the verifier decodes them once; default: other key order, as a Go writer",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rate",
        type=float,
        default=5_000.0,
        help="event-time rate of the corpus (events/s); sets the entry-id spacing",
    )
    parser.add_argument(
        "--profile",
        choices=("cprofile", "pyinstrument"),
        help="profile the verifier run (its figures are then not representative)",
    )
    parser.add_argument("--profile-out", type=Path, help="write the profile text here")
    parser.add_argument(
        "--topology",
        choices=("one", "three", "both"),
        default="both",
        help="one server for everything, three (production read-only, sister, state), or "
        "both side by side on the same corpus",
    )
    parser.add_argument(
        "--coverage",
        choices=("on", "off", "both"),
        default="on",
        help="count shapes (the worker's default), not, or both side by side (one server): "
        "what shape coverage costs",
    )
    parser.add_argument(
        "--commandstats",
        action="store_true",
        help="print Redis' INFO commandstats per phase (one server): which commands, "
        "the commit script's among them, take the server's time",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()  # fmt: skip

    mix = {"clean": 1.0} if args.clean_only else None
    t = time.perf_counter()
    corpus = generate(args.events, seed=args.seed, grace_ms=2000, rate=args.rate, mix=mix)
    if args.identical_bytes:
        same_bytes_when_clean(corpus)
    gen_s = time.perf_counter() - t
    entries = len(corpus.production) + len(corpus.sister)
    expected = corpus.expected_counts()
    primaries = len(corpus.expected)

    run: VerifierRun | None = None
    one_rate: float | None = None
    with ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        client = redis.Redis.from_url(server.url)
        t = time.perf_counter()
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        write_s = time.perf_counter() - t
        print(versions(client))
        print(
            f"corpus: {args.events:,} events ({'clean only' if args.clean_only else 'all faults'}),"
            f" {len(corpus.production):,} production + {len(corpus.sister):,} sister entries"
            f" = {entries:,}{'; healthy pairs byte-identical' if args.identical_bytes else ''};"
            f" generated in {gen_s:.1f}s, written in {write_s:.1f}s;"
            f" batch {args.batch}"
        )

        stats = args.commandstats
        if stats:
            reset_commandstats(client)
        with CpuMeter(server.pid) as raw_cpu:
            raw_read, raw_s = asyncio.run(raw_drain(server.url, args.batch))
        raw_rate = raw_read / raw_s
        print(f"raw drain:  {raw_read:,} entries in {raw_s:.2f}s = {raw_rate:,.0f} entries/s")
        print(f"            {raw_cpu.describe(raw_s, raw_read)}")
        if stats:
            print_commandstats(client, raw_read)

        if args.topology in ("one", "both") and args.coverage == "both":
            # Shapes off first, on its own group and verdict stream; the run below has them.
            if stats:
                reset_commandstats(client)
            with CpuMeter(server.pid) as cpu:
                off = asyncio.run(
                    run_verifier(
                        server.url, args.batch, entries, primaries, None, args.timeout,
                        coverage=False, group="bench-no-shapes", verdicts="bench:no-shapes",
                    )
                )  # fmt: skip
            off_rate = entries / off.seconds
            print(
                f"verifier without shapes: {off.entries:,} entries in {off.seconds:.2f}s ="
                f" {off_rate:,.0f} entries/s ({args.events / off.seconds:,.0f} events/s)"
            )
            print(f"            {cpu.describe(off.seconds, entries)}")
            if stats:
                print_commandstats(client, entries)
            check_verdicts(client, expected, primaries, "bench:no-shapes")
        if args.topology in ("one", "both"):
            if stats:
                reset_commandstats(client)
            with CpuMeter(server.pid) as cpu:
                run = asyncio.run(
                    run_verifier(
                        server.url, args.batch, entries, primaries, args.profile, args.timeout,
                        coverage=args.coverage != "off",
                    )
                )  # fmt: skip
            one_rate = rate = entries / run.seconds
            tail = f"; all entries read at {run.read_all_s:.2f}s" if run.read_all_s else ""
            print(
                f"verifier:   {run.entries:,} entries in {run.seconds:.2f}s = {rate:,.0f}"
                f" entries/s ({args.events / run.seconds:,.0f} events/s){tail}"
            )
            print(f"            {cpu.describe(run.seconds, entries)}")
            if stats:
                print_commandstats(client, entries)
            print(f"ratio verifier/raw: {rate / raw_rate:.2f}  (target: >= 0.5)")
            if args.coverage == "both":
                print(f"with shapes / without: {rate / off_rate:.2f}")
            check_verdicts(client, expected, primaries)
            if args.coverage != "off":
                print(shape_memory(client))
            info = client.info("memory")
            print(f"redis used_memory after both runs: {info['used_memory'] / 2**20:,.0f} MiB")
        client.close()

        if args.topology in ("three", "both"):
            three = ThreeServers(stack)
            three_write_s = three.write(corpus)
            profiler = args.profile if run is None else None  # profile one run only
            with three.cpu() as cpu:
                run3 = asyncio.run(
                    run_verifier(
                        three.sister.url, args.batch, entries, primaries, profiler,
                        args.timeout, three.settings(), args.coverage != "off",
                    )
                )  # fmt: skip
            rate = entries / run3.seconds
            vs = f"; {rate / one_rate:.2f} of one server" if one_rate else ""
            print(
                f"verifier, three servers (production read-only): {run3.entries:,} entries in"
                f" {run3.seconds:.2f}s = {rate:,.0f} entries/s"
                f" ({args.events / run3.seconds:,.0f} events/s){vs}; ratio to the raw drain"
                f" {rate / raw_rate:.2f} (written to the three in {three_write_s:.1f}s)"
            )
            print(f"            {cpu.describe(run3.seconds, entries)}")
            with redis.Redis.from_url(three.state.url) as state:
                check_verdicts(state, expected, primaries)
            run = run if run is not None else run3

    assert run is not None
    if run.profile:
        if args.profile_out:
            args.profile_out.write_text(run.profile)
            print(f"profile written to {args.profile_out}")
        else:
            print(run.profile)


if __name__ == "__main__":
    main()
