"""Scale-out: events/s of the single-process worker, one Faust worker and two.

Each run gets a fresh embedded Redis holding the same corpus (every fault, written
once with past ids) and starts `cdc-verify run` processes as an operator would:
`--engine single`, or `--engine faust` on a real Kafka broker (deploy/kafka/kafka.sh,
started here unless --kafka is given). Primary verdicts in the verdict stream are
sampled every 0.2 s:

  steady   events/s between 10% and 90% of all verdicts (startup and the final
           grace window left out)
  total    events / seconds from process start to the last verdict
  CPU      over the steady window: the machine's busy share of all its cores (from
           /proc/stat), and each process' share of one core: the workers (with
           their children), redis-server, the Kafka broker

Prints figures; asserts nothing (the differential test checks the verdicts).

    .venv/bin/python bench/faust.py [--events 50000] [--partitions 8] [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PRIMARY, machine_busy_s, versions

from cdc_verify.core.entry import StreamEntry
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.faust.messages import encode_batches, partition_of
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
PROD, SIS = "bench:production", "bench:sister"


class Primaries:
    """Primary verdicts so far (the stream also holds extra records); reads only new ones."""

    def __init__(self, client: redis.Redis) -> None:
        self._client, self._after, self.count = client, "-", 0

    def __call__(self) -> int:
        while batch := self._client.xrange("cdc-verify:verdicts", self._after, "+", count=10_000):
            self.count += sum(fields[b"verdict"].decode() in PRIMARY for _, fields in batch)
            self._after = "(" + batch[-1][0].decode()  # exclusive start: Redis >= 6.2
        return self.count


class CpuSamples:
    """CPU seconds so far of the machine (busy, all cores) and of each named process."""

    def __init__(self, procs: dict[str, list[psutil.Process]]) -> None:
        self._procs = procs

    def __call__(self) -> dict[str, float]:
        out = {"machine": machine_busy_s()}
        for name, procs in self._procs.items():
            out[name] = sum(_cpu_s(p) for p in procs)
        return out


def _cpu_s(proc: psutil.Process) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.Error:  # gone: its last figures are lost, which a share shows low
        return 0.0


def broker_process() -> list[psutil.Process]:
    """The Kafka broker's JVM (kafka.Kafka on this machine), if it runs here."""
    for proc in psutil.process_iter(["cmdline"]):
        if "kafka.Kafka" in " ".join(proc.info["cmdline"] or []):
            return [proc]
    return []


def run(mode: str, workers: int, corpus, args, kafka: str | None, logs: Path) -> dict:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        write_corpus(client, corpus, PROD, SIS, past_base_ms(client, corpus))
        total = len(corpus.expected)
        base = [
            sys.executable, "-m", "cdc_verify.cli", "run", "--redis", server.url,
            "--production", PROD, "--sister", SIS, "--grace", "1", "--start-id", "0",
            "--http-port", "0", "--group", f"bench-{mode}-{workers}-{int(time.time())}",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if mode == "faust":
            base += ["--engine", "faust", "--kafka", kafka, "--partitions", str(args.partitions)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_VERIFY_")}
        started = time.monotonic()
        procs = []
        for i in range(workers):
            log = (logs / f"{mode}-{workers}-{i}.log").open("w")
            argv = [*base, "--consumer-name", f"w{i}"]
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        samples: list[tuple[float, int, dict[str, float]]] = []
        primaries = Primaries(client)
        named = {"workers": [psutil.Process(p.pid) for p in procs]}
        named["redis"] = [psutil.Process(server.pid)]
        broker = broker_process() if mode == "faust" else []
        if broker:  # an external --kafka broker on another machine has no share here
            named["broker"] = broker
        cpu = CpuSamples(named)
        try:
            while True:
                done = primaries()
                samples.append((time.monotonic() - started, done, cpu()))
                if done >= total:
                    break
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a {mode} worker exited; see {logs}")
                if samples[-1][0] > args.timeout:
                    raise SystemExit(f"{mode} x{workers}: {done}/{total} after {args.timeout}s")
                time.sleep(0.2)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(60)
        client.close()

    def at(fraction: float) -> tuple[float, int, dict[str, float]]:
        return next(s for s in samples if s[1] >= fraction * total)

    first = next(t for t, n, _ in samples if n > 0)
    (t10, _, cpu10), (t90, _, cpu90) = at(0.1), at(0.9)
    shares = {name: (cpu90[name] - cpu10[name]) / (t90 - t10) for name in cpu10}
    shares["machine"] /= psutil.cpu_count() or 1
    return {
        "steady": 0.8 * total / (t90 - t10),
        "total": total / samples[-1][0],
        "first_verdict_s": first,
        "seconds": samples[-1][0],
        "cpu": shares,
    }


def message_bytes(corpus, partitions: int, batch: int = 500) -> tuple[int, int]:
    """Bytes of the entries-topic messages a forwarder sends for `corpus` in reads of
    `batch` entries a side (marks left out: a few bytes per partition per 0.1 s)."""
    entries = [
        StreamEntry(side, f"{e.at_ms}-{i}", dict(e.fields))
        for side in (Side.PRODUCTION, Side.SISTER)
        for i, e in enumerate(corpus.side(side))
    ]
    total = 0
    for start in range(0, len(entries), batch):
        by_partition: dict[int, list[StreamEntry]] = {}
        for entry in entries[start : start + batch]:
            by_partition.setdefault(partition_of(entry, partitions), []).append(entry)
        for part in by_partition.values():
            total += sum(len(m) for m in encode_batches("faust-0", part, None))
    return total, len(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--kafka", help="an existing broker; default: start one")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    corpus = generate(args.events, seed=7, grace_ms=1000)
    with tempfile.TemporaryDirectory(prefix="cdc-verify-bench-") as tmp:
        logs = Path(tmp)
        kafka = args.kafka
        if not kafka:
            started = time.monotonic()
            out = subprocess.run(
                ["bash", str(KAFKA_SH), "start", "--dir", str(logs / "kafka")],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            ready = re.search(r"ready on (\S+) in ([\d.]+)s", out)
            assert ready, out
            kafka = ready[1]
            print(f"Kafka broker on {kafka}: ready in {ready[2]}s "
                  f"({time.monotonic() - started:.1f}s with fetch check)")  # fmt: skip
        try:
            print(f"{args.events:,} events, every fault; {args.partitions} partitions")
            sent, entries = message_bytes(corpus, args.partitions)
            print(f"entries topic: {sent / entries:,.0f} bytes per entry as the forwarders "
                  f"encode them ({sent / 2**20:,.1f} MiB for {entries:,} entries; Kafka adds "
                  f"its record-batch framing)")  # fmt: skip
            with EmbeddedRedis() as server:
                print(versions(redis.Redis.from_url(server.url)))
            print(f"{'engine':<22}{'steady events/s':>16}{'total events/s':>16}"
                  f"{'first verdict':>15}{'seconds':>9}   CPU over the steady window")  # fmt: skip
            for mode, workers in (("single", 1), ("faust", 1), ("faust", 2)):
                r = run(mode, workers, corpus, args, kafka, logs)
                label = f"{mode} x{workers}" if mode == "faust" else "single process"
                line = f"{label:<22}{r['steady']:>16,.0f}{r['total']:>16,.0f}"
                cpu = r["cpu"]
                used = ", ".join(f"{n} {v:.0%}" for n, v in cpu.items() if n != "machine")
                print(f"{line}{r['first_verdict_s']:>14.1f}s{r['seconds']:>8.1f}s"
                      f"   machine {cpu['machine']:.0%} busy of {psutil.cpu_count()} cores;"
                      f" of a core: {used}", flush=True)  # fmt: skip
        finally:
            if not args.kafka:
                subprocess.run(["bash", str(KAFKA_SH), "stop", "--dir", str(logs / "kafka")],
                               capture_output=True, check=False)  # fmt: skip


if __name__ == "__main__":
    main()
