"""Debezium: verified row changes per second against a raw drain of the same streams.

One embedded Redis, one corpus of `--events` row changes as Debezium Server 3.6's Redis
sink writes them (templated from the real records in tests/debezium_vectors/: the key id,
the row's `version`, a value or two and the source block's positions vary), on a
production and a sister stream, written once with explicit ids in the past. Then, in
this process and on the same data, each with its own fresh consumer group:

  raw drain  XREADGROUP COUNT batch STREAMS prod sister > > ; XACK every id ; repeat
  floor      the raw drain, plus the row consumer's decode of every entry's value
             (cdc_verify.consumers.row:decode_row on {encoding: debezium, payload: value})
  verifier   StreamWorker with envelope=debezium (join by version, the row consumer),
             until every primary verdict is durable

Prints figures; asserts nothing (a LOUD line when the verdicts are not the corpus').

    .venv/bin/python bench/debezium.py [--events 50000] [--batch 500]
    .venv/bin/python bench/debezium.py --production extended-plain --sister compact-plain
    .venv/bin/python bench/debezium.py --table types       # the wide row of every type
    .venv/bin/python bench/debezium.py --events 20000 --profile cprofile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import verdict_stream_summary, versions
from throughput import PROD, SIS, CpuMeter, drain, raw_drain, show_profile

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.loader import Consumer, load_consumers
from cdc_verify.consumers.reference import decode_event
from cdc_verify.consumers.row import decode_row
from cdc_verify.core.debezium import NULL, DebeziumEnvelope
from cdc_verify.core.envelope import Tombstone
from cdc_verify.core.outcome import Outcome, OutcomeKind
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.corpus import Corpus as DefaultCorpus
from cdc_verify.simulate.corpus import generate as default_generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "debezium_vectors"
# The configurations recorded for both tables (tests/debezium_vectors/README.md).
FORMATS = ("extended-schemas", "extended-plain", "compact-schemas", "compact-plain")
VERDICTS = "bench:dbz:verdicts"
FLOOR_GROUP, VERIFIER_GROUP = "bench-floor", "bench-dbz-verifier"
TOMBSTONE = "tombstone"

# Shares of the row changes (production's truth): the rest are matching pairs.
MISMATCH, MISSING_IN_SISTER, MISSING_IN_PRODUCTION = 0.015, 0.01, 0.005
NEW_ROW, DELETE = 0.2, 0.06  # of the changes after the snapshot
SNAPSHOT = 0.02  # the first changes: the snapshot's reads (op r) of rows already there
SISTER_DELAY_MS = 3


# -- the corpus ---------------------------------------------------------------------


class Template:
    """One recorded record, parsed once: (key document, value document, headers)."""

    def __init__(self, path: Path) -> None:
        record = json.loads(path.read_text())
        self.compact = record["config"]["message_format"] == "compact"
        self.schemas = record["config"]["schemas"]
        fields: dict[str, str] = record["fields"]
        if self.compact:
            ((key, value),) = fields.items()
            self.headers: dict[bytes, bytes] = {}
        else:
            key, value = fields["key"], fields["value"]
            self.headers = {
                k.encode(): v.encode() for k, v in fields.items() if k not in ("key", "value")
            }
        self.key = json.loads(key)
        self.value = None if value.encode() == NULL else json.loads(value)

    def _payload(self, document: dict[str, Any]) -> dict[str, Any]:
        return document["payload"] if self.schemas else document

    def _wrap(self, document: dict[str, Any], payload: dict[str, Any]) -> bytes:
        out = {"schema": document["schema"], "payload": payload} if self.schemas else payload
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()

    def key_json(self, row_id: int) -> bytes:
        return self._wrap(self.key, {**self._payload(self.key), "id": row_id})

    def fields(self, key: bytes, value: bytes) -> dict[bytes, bytes]:
        if self.compact:
            return {key: value}
        return {b"key": key, b"value": value, **self.headers}

    def value_json(
        self, before: dict[str, Any] | None, after: dict[str, Any] | None, source: SourceClock
    ) -> bytes:
        assert self.value is not None
        payload = dict(self._payload(self.value))
        src = dict(payload["source"])
        lsn, tx, us = source.tick()
        src.update(
            ts_ms=us // 1000, ts_us=us, ts_ns=us * 1000, txId=tx, lsn=lsn,
            sequence=f'[null,"{lsn}"]',
        )  # fmt: skip
        handled_us = us + 120_000  # Debezium saw it ~120 ms after the commit
        payload.update(
            before=before, after=after, source=src,
            ts_ms=handled_us // 1000, ts_us=handled_us, ts_ns=handled_us * 1000 + 407,
        )  # fmt: skip
        return self._wrap(self.value, payload)

    def image(self, which: str) -> dict[str, Any]:
        assert self.value is not None
        image = self._payload(self.value)[which]
        assert isinstance(image, dict)
        return image


@dataclass
class SourceClock:
    """A database's positions: each side's LSNs, txIds and commit times differ."""

    lsn: int
    tx: int
    us: int

    def tick(self) -> tuple[int, int, int]:
        self.lsn += 104
        self.tx += 1
        self.us += 173
        return self.lsn, self.tx, self.us


class Database:
    """The recorded templates of one configuration, and the records made from them."""

    def __init__(self, config: str, clock: SourceClock) -> None:
        folder = VECTORS / config
        kinds = ("read", "create", "update", "delete", "tombstone")
        self.t = {
            f"{table}-{kind}": Template(folder / f"{table}-{kind}.json")
            for table in ("items", "types")
            for kind in kinds
            if (folder / f"{table}-{kind}.json").exists()
        }
        self.clock = clock

    def row(self, table: str, row_id: int, version: int, altered: bool) -> dict[str, Any]:
        """The row image of `table`'s row `row_id` at `version` (`altered`: a fault)."""
        if table == "items":
            row = dict(self.t["items-create"].image("after"))
            row.update(id=row_id, version=version, name=f"item {row_id} v{version}")
            if altered:
                row["name"] += " (sister)"
            return row
        row = dict(self.t[f"types-{'update' if version % 2 else 'create'}"].image("after"))
        row.update(id=row_id, version=version, i8=row_id * 1_000_003 + version,
                   txt=f"héllo {row_id} v{version}")  # fmt: skip
        if altered:
            row["txt"] = row["txt"].replace("é", "e")  # an encoding the sister lost
        return row

    def change(
        self, table: str, op: str, row_id: int, version: int, altered: bool = False
    ) -> list[dict[bytes, bytes]]:
        """The entries Debezium writes for one row change: the record (and a delete's
        tombstone)."""
        kind = {"r": "read", "c": "create", "u": "update", "d": "delete"}[op]
        tmpl = self.t[f"{table}-{kind}"]  # deletes: items only (types has no recorded one)
        key = tmpl.key_json(row_id)
        if op == "d":
            value = tmpl.value_json(self.row(table, row_id, version, altered), None, self.clock)
            tomb = self.t[f"{table}-tombstone"]
            return [tmpl.fields(key, value), tomb.fields(key, NULL)]
        before = self.row(table, row_id, version - 1, False) if op == "u" else None
        value = tmpl.value_json(before, self.row(table, row_id, version, altered), self.clock)
        return [tmpl.fields(key, value)]


@dataclass
class Corpus:
    production: list[tuple[float, dict[bytes, bytes]]] = field(default_factory=list)
    sister: list[tuple[float, dict[bytes, bytes]]] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)  # verdict -> records
    ops: Counter[str] = field(default_factory=Counter)
    duration_ms: float = 0.0

    @property
    def entries(self) -> int:
        return len(self.production) + len(self.sister)

    @property
    def row_versions(self) -> int:
        return sum(n for v, n in self.expected.items() if v != TOMBSTONE)


def generate(
    events: int, production: str, sister: str, tables: tuple[str, ...], seed: int, rate: float
) -> Corpus:
    """`events` row changes: a snapshot's reads, then new rows, updates (several versions
    a row), deletes of `items` rows with their tombstones; about 97% matching pairs."""
    rng = random.Random(seed)
    now_us = int(time.time() * 1e6)
    prod = Database(production, SourceClock(lsn=22_000_000, tx=700, us=now_us))
    sis = Database(sister, SourceClock(lsn=91_000_000, tx=50_000, us=now_us + 2_500))
    corpus = Corpus()
    live: list[tuple[str, int]] = []  # (table, id) of rows that exist
    version: dict[tuple[str, int], int] = {}
    next_id = 1
    for i in range(events):
        ms = i * 1000.0 / rate
        r = rng.random()
        snapshot = i < events * SNAPSHOT
        if snapshot or not live or r < NEW_ROW:
            table = rng.choice(tables)
            row = (table, next_id)
            next_id += 1
            op, version[row] = ("r" if snapshot else "c"), 1
            live.append(row)
        else:
            # Mostly recent rows: the hot end of a table.
            index = len(live) - 1 - min(int(rng.expovariate(1 / 50)), len(live) - 1)
            row = live[index]
            if row[0] == "items" and r < NEW_ROW + DELETE:
                op = "d"
                live[index] = live[-1]
                live.pop()
            else:
                op = "u"
                version[row] += 1
        table, row_id = row
        corpus.ops[op] += 1
        entries = prod.change(table, op, row_id, version[row])
        corpus.production += [(ms, e) for e in entries]
        fault = rng.random()
        if fault < MISSING_IN_SISTER:
            corpus.expected[Verdict.MISSING_IN_SISTER] += 1
        else:
            mismatch = fault < MISSING_IN_SISTER + MISMATCH
            twin = sis.change(table, op, row_id, version[row], altered=mismatch)
            corpus.sister += [(ms + SISTER_DELAY_MS, e) for e in twin]
            corpus.expected[Verdict.MISMATCH if mismatch else Verdict.MATCH] += 1
        corpus.expected[TOMBSTONE] += (len(entries) - 1) * (2 if fault >= MISSING_IN_SISTER else 1)
        if rng.random() < MISSING_IN_PRODUCTION:
            # Something else wrote to the sister database: a row production never had.
            table = rng.choice(tables)
            corpus.sister.append((ms + 1, sis.change(table, "c", 10_000_000 + i, 1)[0]))
            corpus.expected[Verdict.MISSING_IN_PRODUCTION] += 1
    corpus.sister.sort(key=lambda item: item[0])  # stable: a change's entries stay in order
    corpus.duration_ms = events * 1000.0 / rate + SISTER_DELAY_MS
    return corpus


def ids(times: list[float], base_ms: int) -> Iterator[str]:
    """Explicit entry ids: the entry's ms, then a sequence within that ms."""
    last, seq = -1, 0
    for t in times:
        ms = base_ms + int(t)
        seq = seq + 1 if ms == last else 0
        last = ms
        yield f"{ms}-{seq}"


def write(client: redis.Redis, corpus: Corpus) -> None:
    seconds, micros = client.time()
    base_ms = seconds * 1000 + micros // 1000 - int(corpus.duration_ms) - 60_000
    for key, side in ((PROD, corpus.production), (SIS, corpus.sister)):
        pipe = client.pipeline(transaction=False)
        entry_ids = ids([t for t, _ in side], base_ms)
        for n, (entry_id, (_, fields)) in enumerate(zip(entry_ids, side, strict=True)):
            pipe.xadd(key, fields, id=entry_id)  # type: ignore[arg-type]
            if n % 1000 == 999:
                pipe.execute()
        pipe.execute()


def apart(production: str, sister: str) -> str | None:
    """Why matching pairs would not be `match`, or None: a side without schemas gives
    every column a JSON wire type (`json int`) where the other's schema names it
    (`int32`), a type difference of every row (core/wire.py)."""
    if production.endswith("-schemas") != sister.endswith("-schemas"):
        return f"{production} against {sister}: every pair differs in wire types"
    return None


# -- the runs -----------------------------------------------------------------------


def debezium_row(fields: dict[bytes, bytes]) -> Any:
    """The row consumer's decode of an entry's value, as the envelope hands it over
    (extended's `value`, or compact's one field; no JSON read here); None: a tombstone."""
    value = fields[b"value"] if b"value" in fields else next(iter(fields.values()))
    if value == NULL:
        return None
    return decode_row({b"encoding": b"debezium", b"payload": value})


def default_event(fields: dict[bytes, bytes]) -> Any:
    """The reference consumer's decode of a default-corpus entry; None: it refuses it
    (the corpus' undecodable and malformed entries), which the verifier finds too."""
    try:
        return decode_event(fields)
    except Exception:
        return None


async def floor_drain(
    url: str, batch: int, decode: Callable[[dict[bytes, bytes]], Any]
) -> tuple[int, int, float]:
    """The raw drain plus the consumer's decode of every entry: what the verifier cannot
    avoid. Returns (entries read, entries decoded, seconds)."""
    return await drain([(url, (PROD, SIS))], batch, FLOOR_GROUP, decode)


@dataclass
class VerifierRun:
    entries: int
    primaries: int
    tombstones: int
    seconds: float
    profile: str = ""


async def run_verifier(
    url: str,
    batch: int,
    primaries: int,
    envelope: dict[str, Any],
    consumer: Consumer | None,
    profile: bool,
    timeout: float,
) -> VerifierRun:
    """`envelope`: the settings of the streams' envelope; `consumer`: None for the one
    the settings name (debezium: the row consumer)."""
    settings = Settings(
        **envelope, redis_url=url, production=PROD, sister=SIS, group=VERIFIER_GROUP,
        verdict_stream=VERDICTS, consumer_name="bench-verifier", create_streams=True,
        start_id="0", http_port=0, grace=2.0, lock_ttl=2, batch_size=batch,
    )  # fmt: skip
    done = asyncio.Event()
    seen: Counter[OutcomeKind] = Counter()
    marks: dict[str, float] = {}

    def on_outcomes(outcomes: list[Outcome]) -> None:  # called once the batch is committed
        seen.update(o.kind for o in outcomes)
        if seen[OutcomeKind.PRIMARY] >= primaries and not done.is_set():
            marks["done"] = time.perf_counter()
            done.set()

    worker = StreamWorker(
        settings, consumer or load_consumers(settings.consumer), on_outcomes=on_outcomes
    )
    read = Counter[str]()
    count_read = worker.metrics.read

    def count(side: str, n: int) -> None:
        count_read(side, n)
        read["entries"] += n

    worker.metrics.read = count  # type: ignore[method-assign]
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            raise RuntimeError("the worker stopped before every verdict was in")
        if not done.is_set():
            raise TimeoutError(f"{seen[OutcomeKind.PRIMARY]:,}/{primaries:,} primary verdicts")
    finally:
        waiter.cancel()
        if prof:
            prof.disable()
        worker.stop()
        await asyncio.wait_for(task, 30)
    text = ""
    if prof:
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        out.write("\n---- by internal time ----\n")
        stats.sort_stats("tottime").print_stats(35)
        text = out.getvalue()
    return VerifierRun(
        read["entries"], seen[OutcomeKind.PRIMARY], seen[OutcomeKind.TOMBSTONE],
        marks["done"] - start, text,
    )  # fmt: skip


def per_record_us(records: list[Any], fn: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    for record in records:
        fn(record)
    return (time.perf_counter() - start) / len(records) * 1e6


def parts(corpus: Corpus, sample: int = 4000) -> str:
    """µs per record (no Redis) of what the verifier does to each: the envelope's read,
    the row consumer's decode of what it gives, and one json.loads of the value."""
    env = DebeziumEnvelope()
    records = []
    for _, fields in (corpus.production + corpus.sister)[:: max(1, corpus.entries // sample)]:
        with contextlib.suppress(Tombstone):
            records.append((fields, env(fields).decodes or {}))
    envelope = per_record_us([f for f, _ in records], env)
    row = per_record_us([g for _, g in records], decode_row)
    loads = per_record_us([g[b"payload"] for _, g in records], json.loads)
    return (
        f"per record (no Redis, {len(records):,} records): envelope {envelope:.1f} µs,"
        f" decode_row {row:.1f} µs; one json.loads of the value {loads:.1f} µs"
        f" (the envelope and decode_row each parse it)"
    )


@dataclass
class Figures:
    """One corpus' figures: entries/s of each run, Python CPU µs per entry."""

    name: str
    changes: int
    entries: int
    entry_bytes: float
    raw: float = 0.0
    floor: float = 0.0
    verifier: float = 0.0
    raw_us: float = 0.0
    floor_us: float = 0.0
    verifier_us: float = 0.0


@dataclass
class Plan:
    """What a corpus is and implies, and how the verifier reads it."""

    name: str
    changes: int  # row changes (debezium) or logical events (default corpus)
    entries: list[dict[bytes, bytes]]
    primaries: int
    expected: dict[str, int]  # verdict -> records; TOMBSTONE -> tombstones counted
    floor_decode: Callable[[dict[bytes, bytes]], Any]
    envelope: dict[str, Any]
    consumer: Consumer | None
    checked: bool = True


def measure(plan: Plan, url: str, args: argparse.Namespace, profile: bool) -> Figures:
    """The three runs on what is written at `url`; prints their figures and checks the
    verdict stream. Returns the figures."""
    n = len(plan.entries)
    size = sum(len(k) + len(v) for fields in plan.entries for k, v in fields.items()) / n
    figs = Figures(plan.name, plan.changes, n, size)
    with CpuMeter(None) as cpu:
        read, seconds = asyncio.run(raw_drain(url, args.batch))
    figs.raw, figs.raw_us = read / seconds, cpu.used[0] / read * 1e6
    print(
        f"  raw drain: {read:,} entries in {seconds:.2f}s = {figs.raw:,.0f} entries/s"
        f" ({plan.changes / seconds:,.0f} changes/s)"
    )
    with CpuMeter(None) as cpu:
        read, decoded, seconds = asyncio.run(floor_drain(url, args.batch, plan.floor_decode))
    figs.floor, figs.floor_us = read / seconds, cpu.used[0] / read * 1e6
    print(
        f"  floor:     {read:,} entries ({decoded:,} decoded) in {seconds:.2f}s ="
        f" {figs.floor:,.0f} entries/s ({plan.changes / seconds:,.0f} changes/s)"
    )
    with CpuMeter(None) as cpu:
        run = asyncio.run(
            run_verifier(
                url, args.batch, plan.primaries, plan.envelope, plan.consumer, profile,
                args.timeout,
            )
        )  # fmt: skip
    figs.verifier, figs.verifier_us = n / run.seconds, cpu.used[0] / run.entries * 1e6
    print(
        f"  verifier:  {run.entries:,} entries in {run.seconds:.2f}s = {figs.verifier:,.0f}"
        f" entries/s ({plan.changes / run.seconds:,.0f} changes/s,"
        f" {plan.primaries / run.seconds:,.0f} verdicts/s); python {cpu.used[0]:.1f}s CPU"
        f" ({cpu.used[0] / run.seconds:.0%} of a core)"
    )
    with redis.Redis.from_url(url) as client:
        stream, primary_records, distinct = verdict_stream_summary(client, VERDICTS)
    got = {v.value: stream[v.value] for v in Verdict if stream[v.value]}
    want = {v: n for v, n in plan.expected.items() if n and v != TOMBSTONE}
    print(f"  verdict stream: {got}; tombstones counted {run.tombstones:,}")
    once = primary_records == distinct == plan.primaries
    print(
        f"  primary records: {primary_records:,} for {distinct:,} join keys"
        f" ({'exactly one each' if once else 'CHECK'})"
    )
    if not plan.checked:
        pass
    elif got == want and run.tombstones == plan.expected.get(TOMBSTONE, 0) and once:
        print("  verdicts: as the corpus implies")
    else:
        print(
            f"  !!!!!! VERDICTS ARE NOT THE CORPUS': expected {want} and"
            f" {plan.expected.get(TOMBSTONE, 0):,} tombstones !!!!!!"
        )
    if run.profile:
        show_profile(run.profile, args.profile_out, "  ")
    return figs


def debezium_plan(args: argparse.Namespace, tables: tuple[str, ...]) -> tuple[Plan, Corpus]:
    why = apart(args.production, args.sister)
    if why:  # every pair is then a mismatch: say so, check nothing
        print(f"NOTE: {why}; the verdict counts are not checked")
    corpus = generate(args.events, args.production, args.sister, tables, args.seed, args.rate)
    plan = Plan(
        f"debezium {args.production} / {args.sister}",
        args.events,
        [f for _, f in corpus.production + corpus.sister],
        corpus.row_versions,
        {str(v): n for v, n in corpus.expected.items()},
        debezium_row,
        {"envelope": "debezium"},  # joined by version, the row consumer: its defaults
        None,
        checked=not why,
    )
    return plan, corpus


def table(figures: list[Figures]) -> None:
    print(
        "| corpus | changes | entries | B/entry | raw entries/s | floor entries/s |"
        " verifier entries/s | verifier changes/s | verifier/raw | verifier/floor |"
        " python µs/entry raw, floor, verifier |"
    )
    print("| --- " * 11 + "|")
    for f in figures:
        changes_s = f.verifier * f.changes / f.entries
        print(
            f"| {f.name} | {f.changes:,} | {f.entries:,} | {f.entry_bytes:,.0f} | {f.raw:,.0f} |"
            f" {f.floor:,.0f} | {f.verifier:,.0f} | **{changes_s:,.0f}** |"
            f" {f.verifier / f.raw:.2f} | {f.verifier / f.floor:.2f} |"
            f" {f.raw_us:.1f}, {f.floor_us:.1f}, {f.verifier_us:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="row changes")
    parser.add_argument("--production", choices=FORMATS, default="extended-schemas",
                        help="production's message format and schemas")  # fmt: skip
    parser.add_argument("--sister", choices=FORMATS, default="compact-schemas",
                        help="the sister's message format and schemas")  # fmt: skip
    parser.add_argument("--table", choices=("both", "items", "types"), default="both",
                        help="items (3 columns), types (every Postgres type), or both")  # fmt: skip
    parser.add_argument("--batch", type=int, default=500, help="COUNT per XREADGROUP")
    parser.add_argument("--rate", type=float, default=5_000.0,
                        help="row changes per second of entry-id time")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-default-corpus", action="store_true",
                        help="skip the default cdc-verify corpus of as many events")  # fmt: skip
    parser.add_argument("--profile", choices=("cprofile",),
                        help="profile the Debezium verifier run (its rate is then not "
                        "representative)")  # fmt: skip
    parser.add_argument("--profile-out", type=Path, help="write the profile text here")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    tables = ("items", "types") if args.table == "both" else (args.table,)
    t = time.perf_counter()
    plan, corpus = debezium_plan(args, tables)
    gen_s = time.perf_counter() - t
    figures = []
    with EmbeddedRedis() as server:
        with redis.Redis.from_url(server.url) as client:
            t = time.perf_counter()
            write(client, corpus)
            write_s = time.perf_counter() - t
            print(versions(client))
        print(
            f"{plan.name}: {args.events:,} row changes ({dict(corpus.ops)}; tables"
            f" {', '.join(tables)}) -> {plan.primaries:,} row versions; production"
            f" {len(corpus.production):,} entries, sister {len(corpus.sister):,}"
            f" ({corpus.expected[TOMBSTONE]:,} tombstones); generated in {gen_s:.1f}s,"
            f" written in {write_s:.1f}s; batch {args.batch}"
        )
        print(f"  {parts(corpus)}")
        figures.append(measure(plan, server.url, args, bool(args.profile)))
    del corpus, plan

    if not args.no_default_corpus:
        t = time.perf_counter()
        default = default_corpus(args.events, args.seed, args.rate)
        with EmbeddedRedis() as server:
            with redis.Redis.from_url(server.url) as client:
                write_corpus(client, default, PROD, SIS, past_base_ms(client, default))
            entries = [e.fields for e in default.production + default.sister]
            print(
                f"default corpus (every fault, throughput.py's): {args.events:,} events,"
                f" {len(entries):,} entries; generated and written in"
                f" {time.perf_counter() - t:.1f}s"
            )
            expected = {v.value: n for v, n in default.expected_counts().items()}
            plan = Plan("default (msgpack)", args.events, entries, len(default.expected),
                        expected, default_event, {}, decode_event)  # fmt: skip
            figures.append(measure(plan, server.url, args, False))
    print()
    table(figures)


def default_corpus(events: int, seed: int, rate: float) -> DefaultCorpus:
    return default_generate(events, seed=seed, grace_ms=2000, rate=rate)


if __name__ == "__main__":
    main()
