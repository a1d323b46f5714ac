"""Capture and replay: capture size per event, peak RSS while capturing, replay rate.

Writes `--events` clean pairs (realistic payloads from generated templates with fresh
event ids, explicit ids 1 ms apart on both streams), captures both streams with
`cdc-verify capture` (subprocess, RSS polled), then replays them with `cdc-verify replay`
(subprocess, timed). Prints figures; asserts nothing.

    .venv/bin/python bench/replay.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_pairs, fresh_event_ids, versions, with_event_id

from cdc_verify.embedded_redis import EmbeddedRedis

PROD, SIS = "bench:production", "bench:sister"
CHUNK = 2000
BASE_MS = 1_790_000_000_000


def write_pairs(client: redis.Redis, events: int, templates: int, seed: int) -> None:
    rng = random.Random(seed)
    pairs = clean_pairs(templates, seed)
    ids = fresh_event_ids(rng)
    for start in range(0, events, CHUNK):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(events, start + CHUNK)):
            production, sister = pairs[i % len(pairs)]
            event_id = next(ids)
            pipe.xadd(PROD, with_event_id(production, event_id), id=f"{BASE_MS + i}-0")
            pipe.xadd(SIS, with_event_id(sister, event_id), id=f"{BASE_MS + i}-1")
        pipe.execute()


def run_polled(args: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of a subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[3]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="pairs")
    parser.add_argument("--templates", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    cli = [sys.executable, "-m", "cdc_verify.cli"]
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        client = redis.Redis.from_url(server.url)
        print(versions(client))
        t = time.perf_counter()
        write_pairs(client, args.events, args.templates, args.seed)
        print(f"wrote {args.events:,} pairs ({2 * args.events:,} entries) in "
              f"{time.perf_counter() - t:.1f}s")  # fmt: skip
        for key, name in ((PROD, "production.cap"), (SIS, "sister.cap")):
            seconds, peak = run_polled(
                [*cli, "capture", "--redis", server.url, "--stream", key,
                 "--out", str(work / name), "--no-progress"]
            )  # fmt: skip
            size = (work / name).stat().st_size
            rate, mib, per_entry = args.events / seconds, size / 2**20, size / args.events
            print(f"capture {key}: {args.events:,} entries in {seconds:.1f}s ({rate:,.0f}/s); "
                  f"file {mib:,.1f} MiB = {per_entry:,.0f} B/entry; "
                  f"peak RSS {peak / 2**20:,.0f} MiB")  # fmt: skip
        seconds, peak = run_polled(
            [*cli, "replay", "--production", str(work / "production.cap"),
             "--sister", str(work / "sister.cap"), "--out", str(work / "out"), "--no-progress"]
        )  # fmt: skip
        summary = json.loads((work / "out" / "summary.json").read_text())
        print(f"replay: {args.events:,} events in {seconds:.1f}s = {args.events / seconds:,.0f} "
              f"events/s ({2 * args.events / seconds:,.0f} entries/s); peak RSS "
              f"{peak / 2**20:,.0f} MiB; verdicts {summary['verdicts']}")  # fmt: skip


if __name__ == "__main__":
    main()
