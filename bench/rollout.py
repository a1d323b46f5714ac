"""Rollout: the verifier under `--scope sample:5` with production at 20x the sister's volume.

A 5% rollout sends the writes of a sticky 5% of entities (`crc32(entity_id) % 100000 <
5000`, docs/rollouts.md) through the new service: the sister stream carries the twins of
those events only, and every other production event waits out the grace window and is
counted as out of scope. Two measurements, printed side by side; nothing is asserted.

1. Throughput, one embedded Redis, corpora written at once with explicit past ids
   (production at --rate entries/s of entry-id time, distinct entity_ids, twins
   --sister-delay-ms later). On each corpus, in this process: a raw XREADGROUP+XACK
   drain of both streams (throughput.py's), then an in-process StreamWorker until every
   entry is settled (the primary verdicts and the out-of-scope entries it counts in
   its on_outcomes callback, which runs after the commit; XPENDING is checked after):
     sample:5  --events production entries, the sister only the 5% sample's twins
     all       the same number of entries read, as pairs (the sister has every twin)

2. Memory of the core (no Redis), in a spawned process per scope, both at once: a
   Verifier configured as the live worker's (grace --grace, decisions kept in memory for
   60 s) fed --rate production entries/s of entry-id time for --seconds, the twins
   --sister-delay-ms later, with advance()/expire() per --mem-batch production entries as a
   caught-up runner does. At the end: the waiting entries and the remembered decisions,
   sized object by object (sys.getsizeof over what they own), and the process' RSS growth.

    .venv/bin/python bench/rollout.py                        # ~1.5 min on 2 idle cores
    .venv/bin/python bench/rollout.py --events 50000 --seconds 70
    .venv/bin/python bench/rollout.py --part memory --tracemalloc
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import msgpack
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_pairs, src_digest, ulid_prefix, verdict_stream_summary, versions
from throughput import PROD, SIS, VERDICTS, CpuMeter, raw_drain

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Outcome
from cdc_verify.core.position import ReadPosition
from cdc_verify.core.scope import Scope, in_sample
from cdc_verify.core.verifier import DECIDED_IN_MEMORY_MS, Verifier, VerifierConfig
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker

GROUP = "bench-rollout"
CHUNK = 2_000  # XADDs per pipeline
MiB = 2**20
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# A bijection of 0..36^8-1 (the multiplier is prime to 36): distinct, scattered entity ids.
_ENTITY_SPACE, _ENTITY_MUL = 36**8, 1_640_531_527


# -- data ------------------------------------------------------------------------------


def entity_id(i: int) -> bytes:
    """The i-th distinct entity id, shaped like the corpus' (`t1_` + 8 base36 chars)."""
    n = (i * _ENTITY_MUL + 12_345) % _ENTITY_SPACE
    chars = []
    for _ in range(8):
        n, r = divmod(n, 36)
        chars.append(_BASE36[r])
    return ("t1_" + "".join(chars)).encode()


def event_id(ms: int, i: int) -> bytes:
    """A ULID-shaped event id, unique by construction (no set of those seen to keep)."""
    chars = []
    for _ in range(16):
        i, r = divmod(i, 32)
        chars.append(_CROCKFORD[r])
    return (ulid_prefix(ms) + "".join(reversed(chars))).encode()


@dataclass(frozen=True)
class Change:
    """One production entry of the rollout and, if its entity is in the sample, its twin."""

    index: int
    ms: int  # production entry-id time
    seq: int
    in_sample: bool


def changes(count: int, base_ms: int, rate: int, percent: float) -> Iterator[Change]:
    """Production entries at `rate` per second of entry-id time (rate/1000 per ms)."""
    per_ms = max(1, rate // 1000)
    for i in range(count):
        ms, seq = divmod(i, per_ms)
        yield Change(i, base_ms + ms, seq, in_sample(entity_id(i), percent))


class Templates:
    """Realistic fields (clean comment changes: msgpack on production, Go-ordered msgpack
    on the sister side), given a fresh event_id and entity_id per use."""

    def __init__(self, count: int, seed: int) -> None:
        self.pairs = clean_pairs(count, seed)
        # Flat [name, value, ...] lists packed once: unpacking one gives fresh bytes
        # objects for every name and value, as redis-py/hiredis does for an entry read.
        self.packed = [
            tuple(msgpack.packb([x for kv in side.items() for x in kv]) for side in pair)
            for pair in self.pairs
        ]

    def fields(self, i: int, side: int, eid: bytes, entity: bytes) -> dict[bytes, bytes]:
        """Fields of the i-th change (side 0: production, 1: sister), freshly allocated."""
        flat = msgpack.unpackb(self.packed[i % len(self.packed)][side])
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        fields[b"event_id"] = eid
        fields[b"entity_id"] = entity
        return fields

    def shared(self, i: int, side: int, eid: bytes, entity: bytes) -> dict[bytes, bytes]:
        """The same, sharing the template's values (for writing to Redis: no copies)."""
        fields = dict(self.pairs[i % len(self.pairs)][side])
        fields[b"event_id"] = eid
        fields[b"entity_id"] = entity
        return fields


# -- 1. throughput ---------------------------------------------------------------------


@dataclass
class Corpus:
    production: int = 0
    sister: int = 0
    in_sample: int = 0
    write_s: float = 0.0

    @property
    def entries(self) -> int:
        return self.production + self.sister


def write_rollout(
    client: redis.Redis, templates: Templates, count: int, rate: int, percent: float,
    delay_ms: int, everything: bool,
) -> Corpus:  # fmt: skip
    """`count` production entries; to the sister the twins of the sample (or of every
    change: `everything`), `delay_ms` later. All ids explicit, in the past of Redis' clock."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    base_ms = now_ms - count * 1000 // max(rate, 1) - 120_000
    corpus = Corpus()
    start = time.perf_counter()
    sister_seq: dict[int, int] = {}
    prod_pipe = client.pipeline(transaction=False)
    sister_pipe = client.pipeline(transaction=False)
    pending = 0
    for change in changes(count, base_ms, rate, percent):
        eid, entity = event_id(change.ms, change.index), entity_id(change.index)
        fields = templates.shared(change.index, 0, eid, entity)
        prod_pipe.xadd(PROD, fields, id=f"{change.ms}-{change.seq}")  # type: ignore[arg-type]
        corpus.production += 1
        corpus.in_sample += change.in_sample
        if change.in_sample or everything:
            ms = change.ms + delay_ms
            seq = sister_seq.get(ms, 0)
            sister_seq[ms] = seq + 1
            twin = templates.shared(change.index, 1, eid, entity)
            sister_pipe.xadd(SIS, twin, id=f"{ms}-{seq}")  # type: ignore[arg-type]
            corpus.sister += 1
        pending += 1
        if pending >= CHUNK:
            prod_pipe.execute()
            sister_pipe.execute()
            pending = 0
            sister_seq = {ms: n for ms, n in sister_seq.items() if ms >= change.ms}
    prod_pipe.execute()
    sister_pipe.execute()
    corpus.write_s = time.perf_counter() - start
    return corpus


@dataclass
class WorkerRun:
    seconds: float  # start -> last entry settled (its outcome committed)
    read_all_s: float | None
    primaries: int
    out_of_scope: int
    kinds: dict[str, int] = field(default_factory=dict)


async def run_worker(
    url: str, scope: str, grace: float, batch: int, corpus: Corpus, primaries: int,
    timeout: float,
) -> WorkerRun:  # fmt: skip
    settings = Settings(
        redis_url=url,
        production=PROD,
        sister=SIS,
        group=GROUP,
        verdict_stream=VERDICTS,
        consumer_name="bench-rollout",
        create_streams=True,
        start_id="0",
        http_port=0,
        grace=grace,
        lock_ttl=2,
        batch_size=batch,
        scope=scope,
    )
    out_of_scope = corpus.production - primaries
    seen: dict[str, int] = {"read": 0}
    marks: dict[str, float] = {}
    done = asyncio.Event()

    def on_outcomes(outcomes: Sequence[Outcome]) -> None:  # called once the batch is committed
        for o in outcomes:
            seen[o.kind.name] = seen.get(o.kind.name, 0) + 1
        if (
            seen.get("PRIMARY", 0) >= primaries
            and seen.get("OUT_OF_SCOPE", 0) >= out_of_scope
            and not done.is_set()
        ):
            marks["done"] = time.perf_counter()
            done.set()

    worker = StreamWorker(settings, decode_event, on_outcomes=on_outcomes)
    count_read = worker.metrics.read

    def read(side: str, count: int) -> None:  # wraps the metric to timestamp the last read
        count_read(side, count)
        seen["read"] += count
        if seen["read"] >= corpus.entries and "read" not in marks:
            marks["read"] = time.perf_counter()

    worker.metrics.read = read  # type: ignore[method-assign]
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            raise RuntimeError("the worker stopped before every entry was settled")
        if not done.is_set():
            raise TimeoutError(f"settled so far: {seen}")
    finally:
        waiter.cancel()
        worker.stop()
        await asyncio.wait_for(task, 30)
    return WorkerRun(
        seconds=marks["done"] - start,
        read_all_s=marks["read"] - start if "read" in marks else None,
        primaries=seen.get("PRIMARY", 0),
        out_of_scope=seen.get("OUT_OF_SCOPE", 0),
        kinds={k: n for k, n in seen.items() if k != "read"},
    )


@dataclass
class ThroughputRow:
    name: str
    corpus: Corpus
    raw_s: float
    raw_entries: int
    run: WorkerRun
    raw_cpu: str
    cpu: str
    checks: list[str]

    @property
    def raw_rate(self) -> float:
        return self.raw_entries / self.raw_s

    @property
    def rate(self) -> float:
        return self.corpus.entries / self.run.seconds


def check(client: redis.Redis, corpus: Corpus, run: WorkerRun, primaries: int) -> list[str]:
    stream, records, distinct = verdict_stream_summary(client, VERDICTS)
    pending = {key: client.xpending(key, GROUP)["pending"] for key in (PROD, SIS)}
    out_of_scope = corpus.production - primaries
    ok = (
        dict(stream) == {"match": primaries}
        and records == distinct == primaries
        and run.out_of_scope == out_of_scope
        and not any(pending.values())
    )
    return [
        f"verdict stream {dict(stream)}, {records:,} primary records for {distinct:,} event_ids;"
        f" out of scope {run.out_of_scope:,} (expected {out_of_scope:,});"
        f" XPENDING production {pending[PROD]}, sister {pending[SIS]}"
        f" -> {'as expected' if ok else 'CHECK'}"
    ]


def throughput(args: argparse.Namespace) -> list[ThroughputRow]:
    templates = Templates(args.templates, args.seed)
    rows: list[ThroughputRow] = []
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        print(versions(client))
        # sample:PCT first; then "all" with as many entries read in total, as pairs.
        for scope in (f"sample:{args.percent:g}", "all"):
            everything = scope == "all"
            count = rows[0].corpus.entries // 2 if everything and rows else args.events
            name = scope
            client.flushall()
            corpus = write_rollout(
                client, templates, count, args.rate, args.percent, args.sister_delay_ms,
                everything,
            )  # fmt: skip
            primaries = corpus.sister  # every sister entry is some production entry's twin
            print(
                f"{name}: {corpus.production:,} production + {corpus.sister:,} sister entries"
                f" = {corpus.entries:,} ({corpus.in_sample:,} production entries in the"
                f" {args.percent:g}% sample), written in {corpus.write_s:.1f}s"
            )
            with CpuMeter(server.pid) as raw_cpu:
                raw_entries, raw_s = asyncio.run(raw_drain(server.url, args.batch))
            with CpuMeter(server.pid) as cpu:
                run = asyncio.run(
                    run_worker(
                        server.url, scope, args.grace, args.batch, corpus, primaries,
                        args.timeout,
                    )
                )  # fmt: skip
            row = ThroughputRow(
                name, corpus, raw_s, raw_entries, run,
                raw_cpu.describe(raw_s), cpu.describe(run.seconds),
                check(client, corpus, run, primaries),
            )  # fmt: skip
            rows.append(row)
            mem = client.info("memory")["used_memory"] / MiB
            print(
                f"  raw drain {raw_entries:,} entries in {raw_s:.2f}s ({row.raw_cpu});"
                f" verifier {run.seconds:.2f}s ({row.cpu}); redis used_memory {mem:,.0f} MiB"
            )
            for line in row.checks:
                print(f"  {line}")
        client.close()
    return rows


def print_throughput(rows: list[ThroughputRow], args: argparse.Namespace) -> None:
    print()
    print(
        f"Throughput (batch {args.batch}, grace {args.grace:g}s, production at"
        f" {args.rate:,} entries/s of entry-id time; rates per wall-clock second):"
    )
    header: tuple[str, ...] = (
        "scope", "sister/prod", "entries", "prod read/s", "verified/s", "out of scope/s",
        "total entries/s", "raw drain/s", "verifier/raw",
    )  # fmt: skip
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        s, c = row.run.seconds, row.corpus
        table.append(
            (
                row.name,
                f"{c.sister / c.production:.1%}",
                f"{c.entries:,}",
                f"{c.production / s:,.0f}",
                f"{row.run.primaries / s:,.0f}",
                f"{row.run.out_of_scope / s:,.0f}",
                f"{c.entries / s:,.0f}",
                f"{row.raw_rate:,.0f}",
                f"{row.rate / row.raw_rate:.2f}",
            )
        )
    print_table(table)
    if len(rows) == 2:
        a, b = rows
        prod_a, prod_b = a.corpus.production / a.run.seconds, b.corpus.production / b.run.seconds
        print(
            f"{a.name} against all: production entries read/s x{prod_a / prod_b:.2f},"
            f" total entries/s x{a.rate / b.rate:.2f}, raw drain x{a.raw_rate / b.raw_rate:.2f}"
        )


# -- 2. memory -------------------------------------------------------------------------


Parts = dict[str, int]  # bytes per component of a structure


def sizeof_room(room: Any, seen: set[int]) -> tuple[int, Parts, int, Parts]:
    """(young entries, their bytes by component, packed entries, theirs) a WaitingRoom
    owns: each OrderedDict (its linked-list nodes included) shared out over its entries;
    a young entry's key, StreamEntry, entry id, arrival int, fields dict with every name
    and value; a packed entry's key and bytes."""
    young, packed = room._young, room._packed
    y: Parts = dict.fromkeys(YOUNG_PARTS, 0)
    y["OrderedDict"] = sys.getsizeof(young)
    for key, entry in young.items():
        y["event_id str"] += _size(key, seen)
        y["StreamEntry"] += _size(entry, seen)
        y["entry_id str"] += _size(entry.entry_id, seen)
        y["arrival int"] += _size(entry.arrival_ms, seen)
        y["fields dict"] += _size(entry.fields, seen)
        for name, value in entry.fields.items():
            y["field names"] += _size(name, seen)
            y["payload" if name == b"payload" else "other values"] += _size(value, seen)
    p: Parts = dict.fromkeys(PACKED_PARTS, 0)
    p["OrderedDict"] = sys.getsizeof(packed)
    for key, blob in packed.items():
        p["event_id str"] += _size(key, seen)
        p["packed bytes"] += _size(blob, seen)
    return len(young), y, len(packed), p


YOUNG_PARTS = (
    "OrderedDict", "event_id str", "StreamEntry", "entry_id str", "arrival int",
    "fields dict", "field names", "payload", "other values",
)  # fmt: skip
PACKED_PARTS = ("OrderedDict", "event_id str", "packed bytes")
DECIDED_PARTS = ("OrderedDict", "event_id str", "Decision", "first_seen int")


def sizeof_decided(decided: Any, seen: set[int]) -> Parts:
    """What the remembered decisions own: the OrderedDict, keys, Decision objects and
    their first_seen ints (verdicts are enum members, sides shared literals)."""
    d: Parts = dict.fromkeys(DECIDED_PARTS, 0)
    d["OrderedDict"] = sys.getsizeof(decided)
    for key, decision in decided.items():
        d["event_id str"] += _size(key, seen)
        d["Decision"] += _size(decision, seen) + _size(decision.sides, seen)
        d["first_seen int"] += _size(decision.first_seen_ms, seen)
    return d


def _size(obj: object, seen: set[int]) -> int:
    """getsizeof, once per object (an int or str two structures share is counted once)."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    return sys.getsizeof(obj)


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_run(
    scope_text: str, seconds: float, rate: int, grace_ms: int, batch: int, delay_ms: int,
    templates_count: int, seed: int, trace: bool,
) -> dict[str, Any]:  # fmt: skip
    """Runs in a spawned process: the core fed `seconds` of event time; figures as a dict."""
    scope = Scope.parse(scope_text)
    percent = scope.percent if scope.kind == "sample" else 100.0
    templates = Templates(templates_count, seed)
    # As verifier_config(settings, durable_decisions=True) makes it.
    config = VerifierConfig(
        grace_ms=grace_ms,
        decided_in_memory_ms=max(2 * grace_ms, DECIDED_IN_MEMORY_MS),
        scope=scope,
    )
    verifier = Verifier(decode_event, config)
    base_ms = 1_700_000_000_000
    count = int(seconds * rate)
    gc.collect()
    if trace:
        tracemalloc.start()
    rss0 = rss()
    traced0 = tracemalloc.get_traced_memory()[0] if trace else 0
    kinds: dict[str, int] = {}
    timeline: list[tuple[float, int, int, float]] = []  # (s, waiting, decided, RSS MiB)
    twins: deque[StreamEntry] = deque()
    cpu0 = time.process_time()
    next_mark = base_ms + 10_000
    prod_batch: list[StreamEntry] = []
    prod_ms = base_ms

    def step(through_ms: int) -> None:
        """One runner batch: the production entries read, the sister's twins up to
        `through_ms`, both streams read up to it (caught up), then expiry."""
        entries = prod_batch[:]
        prod_batch.clear()
        while twins and twins[0].arrival_ms < through_ms:
            entries.append(twins.popleft())
        outcomes = verifier.ingest(entries)
        verifier.advance(PRODUCTION, ReadPosition(through_ms))
        verifier.advance(SISTER, ReadPosition(through_ms))
        outcomes += verifier.expire()
        for o in outcomes:
            kinds[o.kind.name] = kinds.get(o.kind.name, 0) + 1

    sister_seq: dict[int, int] = {}
    for change in changes(count, base_ms, rate, percent):
        eid, entity = event_id(change.ms, change.index), entity_id(change.index)
        fields = templates.fields(change.index, 0, eid, entity)
        prod_batch.append(StreamEntry(PRODUCTION, f"{change.ms}-{change.seq}", fields))
        prod_ms = change.ms
        if change.in_sample:
            ms = change.ms + delay_ms
            seq = sister_seq.get(ms, 0)
            sister_seq[ms] = seq + 1
            twin = templates.fields(change.index, 1, eid, entity)
            twins.append(StreamEntry(SISTER, f"{ms}-{seq}", twin))
        if len(prod_batch) >= batch:
            step(prod_ms + 1)
            if len(sister_seq) > 64:
                sister_seq = {ms: n for ms, n in sister_seq.items() if ms > prod_ms}
            if prod_ms >= next_mark:
                now = verifier.waiting_count(PRODUCTION) + verifier.waiting_count(SISTER)
                timeline.append(
                    ((prod_ms - base_ms) / 1000, now, len(verifier._decided), rss() / MiB)
                )
                next_mark += 10_000
    if prod_batch:
        step(prod_ms + 1)
    cpu = time.process_time() - cpu0

    gc.collect()
    rss1, peak = rss(), peak_rss()  # before sizing, which allocates a set of every id
    traced1 = tracemalloc.get_traced_memory()[0] if trace else 0
    seen: set[int] = set()
    waiting: dict[str, tuple[int, int]] = {}
    young_parts: Parts = dict.fromkeys(YOUNG_PARTS, 0)
    packed_parts: Parts = dict.fromkeys(PACKED_PARTS, 0)
    for side in (PRODUCTION, SISTER):
        young, y, packed, p = sizeof_room(verifier._waiting[side], seen)
        waiting[side.value] = (young, packed)
        for parts, more in ((young_parts, y), (packed_parts, p)):
            for k, n in more.items():
                parts[k] += n
    return {
        "scope": scope_text,
        "production": count,
        "cpu_s": cpu,
        "kinds": kinds,
        "waiting": waiting,
        "young_parts": young_parts,
        "packed_parts": packed_parts,
        "decided": len(verifier._decided),
        "decided_parts": sizeof_decided(verifier._decided, seen),
        "gap_twins": len(verifier._gap_twins),
        "rss0": rss0,
        "rss1": rss1,
        "peak": peak,
        "traced": traced1 - traced0 if trace else None,
        "timeline": timeline,
    }


def memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    scopes = [f"sample:{args.percent:g}", "all"]
    print(
        f"memory: {len(scopes)} spawned processes at once (one per scope), each feeding its"
        f" core {args.seconds:g}s of event time at {args.rate:,} production entries/s ..."
    )
    jobs = [
        (s, args.seconds, args.rate, round(args.grace * 1000), args.mem_batch,
         args.sister_delay_ms, args.templates, args.seed, args.tracemalloc)
        for s in scopes
    ]  # fmt: skip
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=get_context("spawn")) as pool:
        results = list(pool.map(memory_run, *zip(*jobs, strict=True)))
    print(f"  done in {time.perf_counter() - start:.0f}s wall")
    return results


@dataclass
class MemoryFigures:
    """The derived figures of one memory_run."""

    r: dict[str, Any]

    @property
    def young(self) -> int:
        return sum(y for y, _ in self.r["waiting"].values())

    @property
    def packed(self) -> int:
        return sum(p for _, p in self.r["waiting"].values())

    @property
    def young_b(self) -> int:
        return sum(self.r["young_parts"].values())

    @property
    def packed_b(self) -> int:
        return sum(self.r["packed_parts"].values())

    @property
    def waiting_b(self) -> int:
        return self.young_b + self.packed_b

    @property
    def decided_b(self) -> int:
        return sum(self.r["decided_parts"].values())

    @property
    def total_b(self) -> int:
        return self.waiting_b + self.decided_b


def per(total: int, count: int) -> str:
    return f"{total / count:,.0f}" if count else "-"


def print_memory(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"Memory of the core at {args.rate:,} production entries/s, grace {args.grace:g}s,"
        f" decisions kept {DECIDED_IN_MEMORY_MS // 1000}s in memory, after {args.seconds:g}s"
        " of event time. Sizes: sys.getsizeof of every object each structure owns, counted"
        " once; RSS growth: end minus start of the feeding, both after gc.collect():"
    )
    for r in results:
        series = ", ".join(f"{t:.0f}s {w:,}/{d:,}/{m:,.0f}" for t, w, d, m in r["timeline"])
        print(
            f"  {r['scope']}: RSS {r['rss0'] / MiB:,.0f} MiB at the start, then every 10s"
            f" waiting/decisions/RSS MiB: {series}; at the end"
            f" {r['rss1'] / MiB:,.0f} MiB (after gc.collect())"
        )
        kinds = ", ".join(f"{k.lower()} {n:,}" for k, n in sorted(r["kinds"].items()))
        print(
            f"  {r['scope']}: outcomes {kinds}; core CPU {r['cpu_s']:.1f}s ="
            f" {r['cpu_s'] / r['production'] * 1e6:.1f} us per production entry"
            " (building the entries included; both processes ran at once on the 2 cores)"
        )
    header: tuple[str, ...] = (
        "scope", "waiting", "young/packed", "waiting MiB", "B/waiting", "B/young",
        "B/packed", "decisions", "decisions MiB", "B/decision", "core total MiB",
        "RSS growth MiB", "peak RSS MiB",
    )  # fmt: skip
    traced = any(r["traced"] is not None for r in results)
    if traced:
        header += ("tracemalloc MiB",)
    table: list[tuple[str, ...]] = [header]
    for r in results:
        f = MemoryFigures(r)
        sister = sum(r["waiting"]["sister"])
        line: tuple[str, ...] = (
            r["scope"],
            f"{f.young + f.packed:,}" + (f" ({sister:,} sister)" if sister else ""),
            f"{f.young:,}/{f.packed:,}",
            f"{f.waiting_b / MiB:,.1f}",
            per(f.waiting_b, f.young + f.packed),
            per(f.young_b, f.young),
            per(f.packed_b, f.packed),
            f"{r['decided']:,}",
            f"{f.decided_b / MiB:,.1f}",
            per(f.decided_b, r["decided"]),
            f"{f.total_b / MiB:,.1f}",
            f"{(r['rss1'] - r['rss0']) / MiB:,.0f}",
            f"{r['peak'] / MiB:,.0f}",
        )
        if traced:
            line += (f"{r['traced'] / MiB:,.1f}" if r["traced"] is not None else "-",)
        table.append(line)
    print_table(table)
    print("Where the bytes go (per entry; OrderedDict: the container's share):")
    for r in results:
        f = MemoryFigures(r)
        for what, parts, count in (
            ("young waiting", r["young_parts"], f.young),
            ("packed waiting", r["packed_parts"], f.packed),
            ("decision", r["decided_parts"], r["decided"]),
        ):
            if count:
                shown = ", ".join(f"{k} {n / count:,.0f}" for k, n in parts.items())
                print(f"  {r['scope']:>9} {what:>14}: {shown}")
    by_scope = {r["scope"]: MemoryFigures(r) for r in results}
    sample, full = by_scope.get(f"sample:{args.percent:g}"), by_scope.get("all")
    if sample and full:
        print(
            f"sample:{args.percent:g} against all: waiting"
            f" +{(sample.waiting_b - full.waiting_b) / MiB:,.1f} MiB, core total"
            f" +{(sample.total_b - full.total_b) / MiB:,.1f} MiB"
            f" ({sample.total_b / full.total_b:.2f}x); gap twins kept:"
            f" {sample.r['gap_twins']:,} and {full.r['gap_twins']:,}"
        )


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
            zip(row, widths, strict=True))))  # fmt: skip
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("throughput", "memory", "both"), default="both")
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="production entries of the sample:PCT corpus (throughput)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="event time fed to the core (memory); past 60s + grace: steady",
    )
    parser.add_argument(
        "--rate", type=int, default=20_000, help="production entries per second of entry-id time"
    )
    parser.add_argument("--percent", type=float, default=5.0, help="the sample: sample:PCT")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds")
    parser.add_argument("--batch", type=int, default=500, help="COUNT per XREADGROUP")
    parser.add_argument(
        "--mem-batch",
        type=int,
        default=200,
        help="production entries per advance()/expire() (memory)",
    )
    parser.add_argument(
        "--sister-delay-ms",
        type=int,
        default=3,
        help="a twin's entry-id time after its production entry's",
    )
    parser.add_argument(
        "--templates",
        type=int,
        default=2_000,
        help="distinct generated payloads the entries cycle through",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="memory: also trace allocations (slower; cross-checks the sizes)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    if args.part == "memory":
        print(f"Python {platform.python_version()}; cdc_verify sources {src_digest()}")
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows = throughput(args) if args.part in ("throughput", "both") else []
    results = memory(args) if args.part in ("memory", "both") else []
    print(
        f"\n{time.perf_counter() - start:.0f}s in all; 1-min load average {load:.1f} at the"
        f" start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs: above that,"
        " something else was running)"
    )
    if rows:
        print_throughput(rows, args)
    if results:
        print_memory(results, args)


if __name__ == "__main__":
    main()
