"""State memory: Redis bytes per remembered decision, and the cost of a lookup.

Commits N `match` outcomes through the real commit script (VerdictCommitter) to one
embedded Redis, first seen at `--rate` and at `--low-rate` events per second, and
reports the growth of `used_memory` minus what the verdict stream and the counters hold
(MEMORY USAGE), per decision. ULID event_ids are kept in per-second hashes of ULID time,
row versions (`comments/<id>@<version>`, many rows with several versions each) in
generations of first-seen time (pipeline/redis/decisions.py); ids over 64 bytes in a key
each, as every decision was kept before. ULIDs also once with --compact-matches (a
commit's matches as one verdict-stream entry). Then `--lookups` lookups in batches of
1,000 (a worker's), of decided event_ids and of new ones: the Redis time of the lookup
script (INFO commandstats) and the wall time per lookup. Targets (issues 14 and 24):
<= 64 bytes per decision. Prints figures; asserts nothing.

    .venv/bin/python bench/state_memory.py [--events 1000000] [--rate 10000] [--low-rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import versions

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.settings import Settings
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision, Outcome, OutcomeKind, VerdictRecord
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.runners.state_writers import verdict_committer
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import ulid

CHUNK = 1000
FIELDS = {b"entity": b"comment", b"op": b"update"}


def event_ids(kind: str, count: int, rate: float, start_ms: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    if kind == "ulid":
        return [ulid(rng, start_ms + int(i * 1000 / rate)) for i in range(count)]
    if kind == "version":  # a fifth as many rows as changes: five versions a row on average
        versions: dict[int, int] = {}
        ids = []
        for _ in range(count):
            row = rng.randrange(max(1, count // 5))
            versions[row] = versions.get(row, 0) + 1
            ids.append(f"comments/{row}@{versions[row]}")
        return ids
    return [f"evt-{seed}-{i:09d}-{rng.getrandbits(40):010x}-{'x' * 40}" for i in range(count)]


def outcomes(ids: list[str], start_ms: int, rate: float) -> list[Outcome]:
    out = []
    for i, event_id in enumerate(ids):
        ms = start_ms + int(i * 1000 / rate)
        entries = (
            StreamEntry(PRODUCTION, f"{ms}-{i}", {b"event_id": event_id.encode(), **FIELDS}),
            StreamEntry(SISTER, f"{ms}-{i}", {b"event_id": event_id.encode(), **FIELDS}),
        )
        record = VerdictRecord(event_id, Verdict.MATCH)
        out.append(Outcome(OutcomeKind.PRIMARY, record, entries, Decision(Verdict.MATCH, "ps", ms)))
    return out


async def commit_all(url: str, settings: Settings, batch: list[Outcome]) -> float:
    client = aioredis.Redis.from_url(url)
    committer = verdict_committer(client, settings)
    started = time.perf_counter()
    for i in range(0, len(batch), CHUNK):
        await committer.commit(batch[i : i + CHUNK])
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def lookup_all(url: str, settings: Settings, events: dict[str, int]) -> tuple[float, int]:
    """Wall seconds for looking `events` up in batches of CHUNK, and how many were found."""
    client = aioredis.Redis.from_url(url)
    committer = verdict_committer(client, settings)
    items, found = list(events.items()), 0
    started = time.perf_counter()
    for i in range(0, len(items), CHUNK):
        found += len(await committer.lookup(dict(items[i : i + CHUNK])))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed, found


def script_usec(client: redis.Redis) -> int:
    """Microseconds Redis spent in scripts called by their SHA since the last reset."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("usec", 0))


def measure_lookups(
    url: str, settings: Settings, known: dict[str, int], new: dict[str, int]
) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    out: dict[str, float] = {}
    for name, events in (("known", known), ("new", new)):
        client.config_resetstat()
        seconds, found = asyncio.run(lookup_all(url, settings, events))
        out[f"{name}_redis_us"] = script_usec(client) / len(events)
        out[f"{name}_wall_us"] = seconds * 1e6 / len(events)
        out[f"{name}_found"] = found / len(events)
    client.close()
    return out


def measure(
    kind: str, events: int, rate: float, seed: int, compact: bool, lookups: int, retention: float
) -> dict[str, float]:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(
            redis_url=server.url, production="p", sister="s", compact_matches=compact,
            decided_retention=retention,
        )  # fmt: skip
        keys = WorkerKeys.from_settings(settings)
        start_ms = int(client.time()[0]) * 1000 - int(events * 1000 / rate)
        ids = event_ids(kind, events, rate, start_ms, seed)
        batch = outcomes(ids, start_ms, rate)
        client.execute_command("MEMORY", "PURGE")
        before = int(client.info("memory")["used_memory"])
        seconds = asyncio.run(commit_all(server.url, settings, batch))
        client.execute_command("MEMORY", "PURGE")
        after = int(client.info("memory")["used_memory"])
        stream = int(client.execute_command("MEMORY", "USAGE", keys.verdicts, "SAMPLES", "0"))
        counters = sum(
            int(client.execute_command("MEMORY", "USAGE", k, "SAMPLES", "0"))
            for k in client.scan_iter(match=keys.counts_prefix + "*")
        )
        decision_keys = sum(
            1 for _ in client.scan_iter(match=keys.decided_prefix + "*", count=10_000)
        )
        buckets = sum(1 for _ in client.scan_iter(match=keys.decisions_prefix + "*", count=10_000))
        # Lookups as a worker's: decided event_ids (each at its first-seen time), and new
        # ones from the end of the run (none decided, as most a live worker asks about).
        step = max(1, events // lookups)
        known = {o.event_id or "": o.settles[0].arrival_ms for o in batch[::step][:lookups]}
        end_ms = batch[-1].settles[0].arrival_ms
        fresh = event_ids(kind, lookups, rate, end_ms, seed + 1)
        new = {f"{e}-new" if kind == "version" else e: end_ms for e in fresh}
        cost = measure_lookups(server.url, settings, known, new)
        client.close()
    decisions = after - before - stream - counters
    return {
        "growth": after - before, "stream": stream, "counters": counters,
        "per_decision": decisions / events, "per_record": stream / events,
        "keys": decision_keys, "buckets": buckets, "commit_s": seconds, **cost,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=10_000, help="events first seen per second")
    parser.add_argument("--low-rate", type=float, default=100, help="the same, a quiet stream")
    parser.add_argument("--lookups", type=int, default=100_000, help="of each kind, per run")
    parser.add_argument(
        "--decided-retention", type=float, default=3600.0,
        help="seconds; a generation of row versions spans a quarter of it: one shorter "
        "than the run shows the generations filled, as a long-running worker has them",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.events:,} match decisions committed per run, --decided-retention "
          f"{args.decided_retention:,.0f} s; {args.lookups:,} lookups of decided and of new "
          f"event_ids, in batches of {CHUNK:,}\n")  # fmt: skip
    header = ("event_id", "events/s", "matches", "used_memory growth", "verdict stream",
              "B/decision", "B/record", "keys", "hashes", "commit/s", "lookup us (Redis)",
              "lookup us (wall)")  # fmt: skip
    widths = (8, 8, 8, 19, 15, 11, 9, 9, 9, 9, 18, 17)
    runs = (
        ("ulid", args.rate, False), ("ulid", args.rate, True), ("version", args.rate, False),
        ("ulid", args.low_rate, False), ("version", args.low_rate, False),
        ("long", args.rate, False),
    )  # fmt: skip
    rows = [
        measure(kind, args.events, rate, args.seed, compact, args.lookups, args.decided_retention)
        for kind, rate, compact in runs
    ]
    print(versions_line())
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for (kind, rate, compact), m in zip(runs, rows, strict=True):
        cells = (kind, f"{rate:,.0f}", "compact" if compact else "each",
                 f"{m['growth'] / 2**20:.1f} MiB", f"{m['stream'] / 2**20:.1f} MiB",
                 f"{m['per_decision']:.1f}", f"{m['per_record']:.1f}", f"{m['keys']:,}",
                 f"{m['buckets']:,}", f"{args.events / m['commit_s']:,.0f}",
                 f"{m['known_redis_us']:.2f} / {m['new_redis_us']:.2f}",
                 f"{m['known_wall_us']:.1f} / {m['new_wall_us']:.1f}")  # fmt: skip
        print("  " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
        if m["known_found"] != 1 or m["new_found"] != 0:
            print(f"    ! found {m['known_found']:.0%} of decided, {m['new_found']:.0%} of new")
    print("\n  lookup us: per event_id, decided / new")


def versions_line() -> str:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        line = versions(client)
        client.close()
    return line


if __name__ == "__main__":
    main()
