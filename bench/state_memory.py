"""State memory: Redis bytes per remembered decision, ULID event_ids against others.

Commits N `match` outcomes through the real commit script (VerdictCommitter) to one
embedded Redis, event_ids made at `--rate` per second of ULID time, and reports the
growth of `used_memory` minus what the verdict stream itself holds (MEMORY USAGE), per
decision. ULID event_ids are kept in per-second hashes (pipeline/redis/decisions.py);
ids that are no ULID keep a key each, as every decision did before: both side by side,
and once more with --compact-matches (a commit's matches as one verdict-stream entry).
Target (issue 14): <= 64 bytes per decision. Prints figures; asserts nothing.

    .venv/bin/python bench/state_memory.py [--events 1000000] [--rate 10000]
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
    return [f"evt-{seed}-{i:09d}-{rng.getrandbits(40):010x}" for i in range(count)]


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


def measure(kind: str, events: int, rate: float, seed: int, compact: bool) -> dict[str, float]:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(
            redis_url=server.url, production="p", sister="s", compact_matches=compact
        )
        keys = WorkerKeys.from_settings(settings)
        start_ms = int(client.time()[0]) * 1000 - events * 1000 // int(rate)
        batch = outcomes(event_ids(kind, events, rate, start_ms, seed), start_ms, rate)
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
        client.close()
    decisions = after - before - stream - counters
    return {
        "growth": after - before, "stream": stream, "counters": counters,
        "per_decision": decisions / events, "per_record": stream / events,
        "keys": decision_keys, "buckets": buckets, "commit_s": seconds,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=10_000, help="events per second of ULID time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.events:,} match decisions committed, {args.rate:,.0f} events/s of ULID time\n")
    header = ("event_id", "matches", "used_memory growth", "verdict stream", "B/decision",
              "B/record", "keys", "hashes", "commit/s")  # fmt: skip
    widths = (8, 8, 19, 15, 11, 9, 9, 7, 9)
    runs = (("ulid", False), ("ulid", True), ("other", False))
    rows = [measure(kind, args.events, args.rate, args.seed, compact) for kind, compact in runs]
    print(versions_line())
    print("  " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for (kind, compact), m in zip(runs, rows, strict=True):
        cells = (kind, "compact" if compact else "each", f"{m['growth'] / 2**20:.1f} MiB",
                 f"{m['stream'] / 2**20:.1f} MiB", f"{m['per_decision']:.1f}",
                 f"{m['per_record']:.1f}", f"{m['keys']:,}", f"{m['buckets']:,}",
                 f"{args.events / m['commit_s']:,.0f}")  # fmt: skip
        print("  " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))


def versions_line() -> str:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        line = versions(client)
        client.close()
    return line


if __name__ == "__main__":
    main()
