"""Soak: a long run at a steady rate with faults injected; memory sampled, counts exact.

Two `cdc-verify run` workers (active and standby) reach an embedded Redis through the
fault campaign's loopback TCP proxy (tests/integration/tcp_proxy.py). A writer process
writes generated segments of `--segment-s` seconds at `--rate` events/s in real time
(Redis' clock for ids, as in production), each segment with every fault kind of the
simulator. Every `--fault-every` seconds the campaign's faults land at random: SIGKILL
(a new worker takes the killed one's place), connections cut, stalled, partitioned,
and the active worker frozen past its lock; every `--restart-every` segments Redis
itself is restarted while the writer waits between segments.

Every `--sample-s` seconds it prints the larger worker RSS, Redis' used memory, the
memory of the worker's own keys (decisions, alerts, counters: MEMORY USAGE key by key)
and of the verdict stream, the consumer lag and the verdicts so far. The workers keep
decisions for `--decided-retention` (300 s), so Redis' state should level off after
that; the verdict stream grows by design (one record per event, 7 days). At the end it
waits for every verdict and checks each segment: exactly one primary verdict per event,
the one the corpus expects, nothing pending. Not a test (CI does not run it): figures.

    .venv/bin/python bench/soak.py                     # 30 minutes at 2000 events/s
    .venv/bin/python bench/soak.py --minutes 3 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import versions  # noqa: E402

from cdc_verify.embedded_redis import EmbeddedRedis  # noqa: E402
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side  # noqa: E402
from cdc_verify.simulate.corpus import Corpus, generate  # noqa: E402
from cdc_verify.simulate.writer import paced_client, write_paced  # noqa: E402
from tests.integration.tcp_proxy import TcpProxy  # noqa: E402
from tests.integration.test_fault_campaign import (  # noqa: E402
    Campaign,
    Workers,
    segment_timing,
)

PROD, SIS, VERDICTS = "soak:production", "soak:sister", "cdc-verify:verdicts"
GROUP = "cdc-verify"
GRACE_MS = 1000
PRIMARY = {v.value for v in PRIMARY_VERDICTS}
FAULTS = ["kill", "kill", "cut", "stall", "partition", "freeze"]
MiB = 2**20


@dataclass(frozen=True)
class Plan:
    rate: float
    segment_s: float
    seed: int
    epoch_ms: int  # the ULID time of the first segment's event ids

    def segment(self, n: int) -> Corpus:
        """Segment n, its event ids (ULIDs) of about the time it is written: the state
        server keeps decisions in per-second buckets of ULID time, which must age."""
        events = round(self.rate * self.segment_s)
        epoch_ms = self.epoch_ms + round(n * self.segment_s * 1000)
        return generate(
            events, seed=self.seed + n, grace_ms=GRACE_MS, rate=self.rate, epoch_ms=epoch_ms
        )


def write_segments(url: str, plan: Plan, go: Any, done: Any) -> None:
    """The writer process: a segment each time `go` says so (None: stop)."""
    n = 0
    while go.get() is not None:
        corpus = plan.segment(n)

        async def write(corpus: Corpus = corpus) -> dict[str, int]:
            client = paced_client(url)
            try:
                result = await write_paced(client, corpus, PROD, SIS)
                # The writer is idle until the next segment: the newest entries are these.
                landed = {}
                for side, key in ((Side.PRODUCTION, PROD), (Side.SISTER, SIS)):
                    newest = await client.xrevrange(key, count=len(corpus.side(side)))
                    landed[side] = [int(i.split(b"-")[0]) for i, _ in reversed(newest)]
            finally:
                await client.aclose()
            timing = segment_timing(corpus, landed)
            return {
                "written": sum(result.written.values()),
                "waited": sum(result.waited.values()),
                "late_ms": timing.worst_late_ms,
                "flipped": timing.flipped,
            }

        done.put(asyncio.run(write()))
        n += 1


def trim_inputs(client: redis.Redis, keep_s: float) -> None:
    """Trims both input streams to their last `keep_s` seconds, as production streams are
    trimmed: the soak's Redis would otherwise grow without end (and reload slower)."""
    seconds, _ = client.time()
    for key in (PROD, SIS):
        # Exact: an approximate trim takes at most 10,000 entries a call, less than come.
        client.xtrim(key, minid=f"{(int(seconds) - int(keep_s)) * 1000}-0", approximate=False)


@dataclass
class SoakWorkers(Workers):
    """The campaign's two worker slots, started with the soak's settings."""

    decided_retention: float = 300.0

    def start(self, slot: str) -> None:
        name = f"{slot}{self.started}"
        self.started += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_VERIFY_")}
        env |= {"PYTHONUNBUFFERED": "1", "CDC_VERIFY_REDIS_SOCKET_TIMEOUT": "1"}
        args = [
            sys.executable, "-m", "cdc_verify.cli", "run", "--redis", self.proxy_url,
            "--production", PROD, "--sister", SIS, "--grace", str(GRACE_MS / 1000),
            "--start-id", "0", "--lock-ttl", "1", "--http-port", "0", "--create-streams",
            "--consumer-name", name, "--decided-retention", str(self.decided_retention),
            "--log-level", "WARNING",
        ]  # fmt: skip
        with (self.logs / f"{name}.log").open("wb") as log:
            self.procs[slot] = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        self.names[slot] = name


def sample(client: redis.Redis, workers: Workers) -> dict[str, float]:
    info = client.info("memory")
    stream = client.memory_usage(VERDICTS, samples=0) or 0
    # The worker's own keys (decisions, alerts, counters, ...) but the verdict stream,
    # key by key: used_memory also holds the input streams, which the writer never
    # trims, and MEMORY USAGE of a big stream is a few percent off.
    # Decisions live for --decided-retention; records of non-match verdicts (kept by id)
    # and alerts for --verdict-retention and --alert-retention (7 days): they grow.
    state = decisions = 0
    keys = [k for k in client.scan_iter(match=f"{GROUP}:*", count=5000) if k != VERDICTS.encode()]
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(chunk, pipe.execute(), strict=True):
            state += size or 0
            if b":decisions:" in key or b":decided:" in key:
                decisions += size or 0
    rss = []
    for proc in workers.procs.values():
        try:
            rss.append(psutil.Process(proc.pid).memory_info().rss)
        except psutil.Error:
            rss.append(0)
    lag = 0.0
    try:
        group = next(g for g in client.xinfo_groups(PROD) if g["name"] == GROUP.encode())
        head = client.xinfo_stream(PROD)["last-generated-id"]
        lag = (int(head.split(b"-")[0]) - int(group["last-delivered-id"].split(b"-")[0])) / 1000
    except (StopIteration, redis.ResponseError):
        pass
    return {
        "rss_max": max(rss), "used": info["used_memory"], "state": state,
        "decisions": decisions,
        "verdict_stream": stream,
        "verdicts": client.xlen(VERDICTS), "lag": max(lag, 0.0),
    }  # fmt: skip


def primaries_by_event(client: redis.Redis) -> tuple[dict[str, list[str]], Counter[str]]:
    """Primary verdicts per event_id, and records per verdict, from the verdict stream."""
    primaries: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    last = "-"
    while True:
        entries = client.xrange(VERDICTS, last, "+", count=10_000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            return primaries, counts
        for _, fields in entries:
            verdict = fields[b"verdict"].decode()
            counts[verdict] += 1
            if verdict in PRIMARY:
                record = json.loads(fields[b"record"])
                primaries.setdefault(record["event_id"], []).append(verdict)
        last = entries[-1][0].decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="logical events per second")
    parser.add_argument("--segment-s", type=float, default=30.0)
    parser.add_argument("--fault-every", type=float, default=15.0, help="seconds between faults")
    parser.add_argument("--restart-every", type=int, default=4, help="segments between restarts")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--decided-retention", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep-inputs-s",
        type=float,
        default=180.0,
        help="seconds of the input streams kept (XTRIM MINID): entries pending longer are lost",
    )
    args = parser.parse_args()

    plan = Plan(args.rate, args.segment_s, args.seed, int(time.time() * 1000))
    rng = random.Random(args.seed)
    segments = max(1, round(args.minutes * 60 / (args.segment_s + 2)))
    tmp = Path(tempfile.mkdtemp(prefix="cdc-verify-soak-"))
    (tmp / "logs").mkdir()
    print(f"soak: {segments} segments of {args.segment_s:.0f} s at {args.rate:,.0f} events/s, "
          f"a fault every {args.fault_every:.0f} s; logs in {tmp}")  # fmt: skip
    context = multiprocessing.get_context("spawn")
    go, done = context.Queue(), context.Queue()
    samples: list[dict[str, float]] = []
    with EmbeddedRedis(data_dir=tmp / "redis") as server, TcpProxy(server.port) as proxy:
        client = redis.Redis.from_url(server.url, socket_timeout=30)
        print(versions(client))
        writer = context.Process(target=write_segments, args=(server.url, plan, go, done))
        writer.start()
        workers = SoakWorkers(proxy.url, tmp / "logs", decided_retention=args.decided_retention)
        # Redis reloads an append-only file that grows through the run: give it time.
        campaign = Campaign(server, proxy, workers, rng, redis_start_timeout=300.0)
        for slot in "ab":
            workers.start(slot)
        started = next_fault = next_sample = time.monotonic()
        written, late_ms, flipped = 0, 0, set()
        try:
            for n in range(segments):
                go.put(1)
                while True:
                    workers.check_running()
                    now = time.monotonic()
                    if now >= next_sample:
                        trim_inputs(client, args.keep_inputs_s)
                        s = sample(client, workers)
                        samples.append(s | {"t": now - started})
                        print(
                            f"{now - started:6.0f}s  segment {n + 1}/{segments}  worker RSS "
                            f"{s['rss_max'] / MiB:5.0f} MiB  Redis used {s['used'] / MiB:6.0f}"
                            f" MiB: worker keys {s['state'] / MiB:5.1f} MiB (decisions "
                            f"{s['decisions'] / MiB:5.1f}), verdict stream "
                            f"{s['verdict_stream'] / MiB:5.0f} MiB  lag {s['lag']:5.1f}s  "
                            f"records {s['verdicts']:,}",
                            flush=True,
                        )
                        next_sample = now + args.sample_s
                    if now >= next_fault:
                        campaign.inject(rng.choice(FAULTS))
                        next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * args.fault_every
                    try:
                        result = done.get(timeout=0.5)
                    except Exception:  # queue.Empty
                        if not writer.is_alive():
                            raise RuntimeError("the writer process died") from None
                        continue
                    written += result["written"]
                    flipped.update(result["flipped"])
                    late_ms = max(late_ms, result["late_ms"])
                    assert result["waited"] == 0, f"the writer was held up: {result}"
                    break
                if (n + 1) % args.restart_every == 0 and n + 1 < segments:
                    campaign.restart_redis()
            campaign.end_faults()
            go.put(None)
            writer.join(30)
            # Each segment's corpus again (generation is seeded): the verdict each event expects.
            expected = {
                event_id: e.verdict.value
                for n in range(segments)
                for event_id, e in plan.segment(n).expected.items()
            }
            expected_total = len(expected)
            print(f"written: {written:,} entries, {expected_total:,} events; waiting for verdicts")
            deadline = time.monotonic() + 600
            while True:
                workers.check_running()
                by_event, _ = primaries_by_event(client)
                if len(by_event) >= expected_total or time.monotonic() > deadline:
                    break
                time.sleep(5)
            time.sleep(GRACE_MS / 1000 + 2)
            final = sample(client, workers)
        finally:
            codes = workers.stop()
            if writer.is_alive():
                writer.kill()
        elapsed = time.monotonic() - started
        by_event, counts = primaries_by_event(client)
        pending = {key: client.xpending(key, GROUP)["pending"] for key in (PROD, SIS)}
        client.close()

    wrong, without, twice, moved = 0, 0, 0, 0
    expected_counts = Counter(expected.values())
    for event_id, verdict in expected.items():
        got = by_event.get(event_id, [])
        if not got:
            without += 1
        elif len(got) > 1:
            twice += 1
        elif got[0] != verdict:
            # The writer fell behind its plan across the grace window: the corpus' verdict
            # of this event no longer holds, whatever the worker does.
            moved += event_id in flipped
            wrong += event_id not in flipped
    steady = [s for s in samples if s["t"] >= args.decided_retention + 60]
    print(f"\nsoak done in {elapsed / 60:.1f} min: {sum(expected_counts.values()):,} events, "
          f"{campaign.counts['kill']} SIGKILLs, {campaign.counts['redis_restart']} Redis "
          f"restarts, {campaign.counts['cut']} cuts, {campaign.counts['stall']} stalls, "
          f"{campaign.counts['partition']} partitions, {campaign.counts['freeze']} freezes, "
          f"{workers.started} worker starts")  # fmt: skip
    print(f"verdicts: {dict(sorted(counts.items()))}")
    print(
        f"exact: {without} events without a primary verdict, {twice} with more than one, "
        f"{wrong} with another verdict than expected; pending {pending}; exit codes {codes}"
    )
    print(
        f"writer: at most {late_ms} ms behind its plan; {len(flipped)} events landed across "
        f"the grace window from where planned ({moved} of them got another verdict than "
        f"planned: not counted as wrong above)"
    )
    if steady:
        for key, label in (
            ("rss_max", "worker RSS"),
            ("decisions", "decisions in Redis"),
            ("state", "all worker keys in Redis (records by id and alerts grow for 7 days)"),
        ):
            values = [s[key] for s in steady]
            print(f"{label} after {args.decided_retention + 60:.0f} s: "
                  f"{min(values) / MiB:,.1f}..{max(values) / MiB:,.1f} MiB "
                  f"(median {statistics.median(values) / MiB:,.1f})")  # fmt: skip
        grew = steady[-1]["verdict_stream"] - steady[0]["verdict_stream"]
        print(f"the verdict stream grew {grew / MiB:,.0f} MiB meanwhile (a record per event)")
    print(f"final: {json.dumps({k: round(v) for k, v in final.items()})}")


if __name__ == "__main__":
    main()
