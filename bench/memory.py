"""Memory: peak RSS of a worker process holding N events that wait for their partner.

Writes N production-only entries (realistic payloads: the production fields of a few
thousand generated clean changes, reused with fresh event_ids), then starts
`cdc-verify run` as a subprocess with a one-day grace window, so nothing expires and
every entry waits for a sister partner that never comes. Polls the worker's RSS and its
`cdc_verify_pending_joins` gauge until all N wait, then prints the peak RSS (VmHWM)
and bytes per waiting event. Target (docs/guarantees.md): 1M waiting events fit in < 1 GiB RSS.
Prints figures; asserts nothing.

    .venv/bin/python bench/memory.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_pairs, fresh_event_ids, versions, with_event_id

from cdc_verify.embedded_redis import EmbeddedRedis, free_port
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

PROD, SIS = "bench:mem:production", "bench:mem:sister"
CHUNK = 5_000
PENDING = re.compile(r'^cdc_verify_pending_joins\{side="production"\} (\S+)$', re.M)
MiB = 2**20


def big_templates(payload_bytes: int, seed: int) -> list[dict[bytes, bytes]]:
    """Production fields of one clean change whose comment body is `payload_bytes` long."""
    [(fields, _)] = clean_pairs(1, seed)
    comment = {**sample_comment(random.Random(seed), "t1_big"), "body": "x" * payload_bytes}
    return [{**fields, b"payload": encode_msgpack(comment)}]


def write_production(
    client: redis.Redis, events: int, templates: int, seed: int, payload_bytes: int = 0
) -> None:
    rng = random.Random(seed)
    if payload_bytes:
        payloads = big_templates(payload_bytes, seed)
    else:
        payloads = [p for p, _ in clean_pairs(templates, seed)]
    ids = fresh_event_ids(rng)
    chunk = max(1, min(CHUNK, (64 * MiB) // max(payload_bytes, 1)))
    for start in range(0, events, chunk):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(events, start + chunk)):
            pipe.xadd(PROD, with_event_id(payloads[i % len(payloads)], next(ids)))
        pipe.execute()


def worker_command(
    url: str, production: str, sister: str, port: int, group: str, *extra: str
) -> list[str]:
    return [
        sys.executable, "-m", "cdc_verify.cli", "run",
        "--redis", url, "--production", production, "--sister", sister,
        "--grace", "86400", "--start-id", "0", "--http-port", str(port), "--lock-ttl", "2",
        "--group", group, "--consumer-name", "bench-memory", "--log-level", "WARNING",
        "--create-streams", *extra,
    ]  # fmt: skip


def scrape_pending(port: int) -> float | None:
    return scrape(port, PENDING)


def peak_rss(pid: int) -> int:
    """VmHWM: the kernel's high-water mark of the process' resident set."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_rss(url: str) -> int:
    """RSS of a worker that is up (metrics served) with empty streams: the baseline."""
    port = free_port()
    cmd = worker_command(url, "bench:mem:empty-p", "bench:mem:empty-s", port, "bench-idle")
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 30
        while scrape_pending(port) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("idle worker did not come up")
            time.sleep(0.1)
        time.sleep(1.0)
        return psutil.Process(proc.pid).memory_info().rss
    finally:
        stop(proc)


SPILLED = re.compile(r"^cdc_verify_spilled_bytes (\S+)$", re.M)


def scrape(port: int, pattern: re.Pattern[str]) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    match = pattern.search(text)
    return float(match.group(1)) if match else None


def measure(
    url: str, events: int, timeout: float, group: str, extra: tuple[str, ...]
) -> tuple[int, int, float, float]:
    """(peak RSS, RSS once all wait, seconds until they did, bytes spilled) of one worker."""
    port = free_port()
    proc = subprocess.Popen(worker_command(url, PROD, SIS, port, group, *extra))
    ps = psutil.Process(proc.pid)
    start = time.monotonic()
    polled_peak, pending, last_scrape = 0, 0.0, 0.0
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            polled_peak = max(polled_peak, ps.memory_info().rss)
            now = time.monotonic()
            if now - last_scrape >= 0.25:
                last_scrape = now
                pending = scrape_pending(port) or pending
                if pending >= events:
                    break
            if now - start > timeout:
                raise RuntimeError(f"timed out with {pending:,.0f} pending")
            time.sleep(0.05)
        filled_s = time.monotonic() - start
        time.sleep(1.0)  # settle: anything still allocated after the last batch
        rss_now = ps.memory_info().rss
        spilled = scrape(port, SPILLED) or 0.0
        hwm = peak_rss(proc.pid)
    finally:
        stop(proc)
    return max(hwm, polled_peak), rss_now, filled_s, spilled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--templates",
        type=int,
        default=10_000,
        help="generated clean changes whose production fields are reused",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=0,
        help="instead of realistic payloads, one comment whose body has this many bytes",
    )
    parser.add_argument(
        "--compare-uncapped",
        action="store_true",
        help="then run a worker without byte caps on the same entries, side by side",
    )
    args = parser.parse_args()  # fmt: skip

    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        print(versions(client))
        t = time.perf_counter()
        write_production(client, args.events, args.templates, args.seed, args.payload_bytes)
        write_s = time.perf_counter() - t
        stream_bytes = client.memory_usage(PROD, samples=0) or 0
        print(
            f"wrote {args.events:,} production-only entries in {write_s:.1f}s"
            f" (stream: {stream_bytes / MiB:,.0f} MiB in Redis,"
            f" {stream_bytes / args.events:,.0f} B/entry)"
        )
        baseline = idle_rss(server.url)
        print(f"idle worker RSS (empty streams): {baseline / MiB:,.1f} MiB")

        runs = [("defaults", ())]
        if args.compare_uncapped:
            # What the worker did before its byte caps: a batch of --batch-size entries
            # whatever their size, and every waiting entry in memory.
            runs.append(("uncapped", ("--read-max-bytes", "1TB", "--waiting-max-bytes", "0")))
        for n_run, (label, extra) in enumerate(runs):
            peak, rss_now, filled_s, spilled = measure(
                server.url, args.events, args.timeout, f"bench-memory-{n_run}", extra
            )
            n = args.events
            print(f"[{label}] all {n:,} waiting {filled_s:.1f}s after the worker started")
            print(
                f"[{label}] peak RSS: {peak / MiB:,.0f} MiB; RSS once all wait: "
                f"{rss_now / MiB:,.0f} MiB; spilled to files: {spilled / MiB:,.0f} MiB"
            )
            print(
                f"[{label}] bytes per waiting event: {peak / n:,.0f} (peak RSS / N),"
                f" {(peak - baseline) / n:,.0f} (peak above idle worker)"
            )
        client.close()

    if not args.payload_bytes:
        print(f"target: {n:,} waiting events in < 1 GiB RSS -> {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
