"""Split: the verifier's Python between its runner, its core and the legacy consumer.

Issue 25's first target asks the verifier's Python CPU per entry to be at most 1.5 times
the floor's (a raw drain plus the legacy consumer's decode). This script says how close a
faster core alone could bring it. On throughput.py's corpus and servers, per round, it runs
the floor and then the verifier (StreamWorker, in process), and times:

  consumer  every call of the legacy consumer (decode_event), in the floor and in the
            verifier (perf_counter around each call)
  core      every call the runner makes into its Verifier: ingest, expire, flush,
            lookup_needed, compare_late (this thread's CPU time around each call; the
            consumer's calls are inside it)
  runner    the process' CPU over the run less the core's: reads, lookups, the commit and
            its rows, sinks, the worker's loop and asyncio

and prints each in µs per stream entry, then two ratios to the floor: the verifier's, and
that of a core that cost nothing but its consumer's decode, (runner + consumer) / floor,
the best Python/floor any core could give with these runners. Prints figures; asserts
nothing beyond the verdicts (throughput.py's check).

    .venv/bin/python bench/split.py                       # one server, shapes on, 3 rounds
    .venv/bin/python bench/split.py --topology three --coverage off
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import redis
from _common import versions
from throughput import (
    FLOOR_SHAPES_OFF,
    FLOOR_SHAPES_ON,
    OneServer,
    ThreeServers,
    Topology,
    check_verdicts,
    drain,
    legacy_decode,
    run_verifier,
)

from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.corpus import generate

# The Verifier's methods a runner calls (the single worker calls these and no other that
# does work per entry).
CORE_CALLS = ("ingest", "expire", "flush", "lookup_needed", "compare_late")


class Clock:
    """Seconds spent inside the functions it wraps."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.seconds = 0.0
        self._now = now

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        now = self._now

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = now()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += now() - began

        return timed


@dataclass
class Round:
    floor: float  # µs of Python an entry
    floor_consumer: float
    python: float
    core: float
    consumer: float

    @property
    def runner(self) -> float:
        return self.python - self.core

    @property
    def bound(self) -> float:
        """Python/floor with a core that cost only its consumer's decode."""
        return (self.runner + self.consumer) / self.floor


def one_round(topo: Topology, n: int, args: argparse.Namespace, corpus: Any) -> Round:
    entries = len(corpus.production) + len(corpus.sister)
    decode = Clock(time.perf_counter)
    with topo.cpu() as cpu:  # throughput.py's meter: the same "Python µs"
        read, _, _ = asyncio.run(
            drain(topo.sources(), args.batch, f"split-floor-{n}", decode.wrap(legacy_decode))
        )
    floor_cpu = cpu.of("python")
    assert read == entries, f"the floor read {read:,} of {entries:,} entries"

    consumer, core = Clock(time.perf_counter), Clock(time.thread_time)

    def instrument(worker: StreamWorker) -> None:
        for name in CORE_CALLS:
            setattr(worker.verifier, name, core.wrap(getattr(worker.verifier, name)))

    group, verdicts = f"split-{n}", f"split:verdicts:{n}"
    with topo.cpu() as cpu:
        run = asyncio.run(
            run_verifier(
                topo.url, args.batch, entries, len(corpus.expected), None, args.timeout,
                topo.settings(), args.coverage == "on", group, verdicts,
                consumer=consumer.wrap(decode_event), instrument=instrument,
            )
        )  # fmt: skip
    python_cpu = cpu.of("python")
    with redis.Redis.from_url(topo.state_url) as state:
        check_verdicts(state, corpus.expected_counts(), len(corpus.expected), verdicts)

    def per_entry(seconds: float) -> float:
        return seconds / entries * 1e6

    result = Round(
        per_entry(floor_cpu), per_entry(decode.seconds), per_entry(python_cpu),
        per_entry(core.seconds), per_entry(consumer.seconds),
    )  # fmt: skip
    print(
        f"[round {n + 1}] {run.entries:,} entries in {run.seconds:.2f}s; µs an entry: floor"
        f" {result.floor:.1f} (consumer {result.floor_consumer:.1f}); verifier"
        f" {result.python:.1f} = runner {result.runner:.1f} + core {result.core:.1f}"
        f" (consumer {result.consumer:.1f})"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="logical changes (pairs)")
    parser.add_argument("--batch", type=int, default=500, help="COUNT per XREADGROUP")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5_000.0, help="event-time events/s")
    parser.add_argument("--topology", choices=("one", "three"), default="one")
    parser.add_argument("--coverage", choices=("on", "off"), default="on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    corpus = generate(args.events, seed=args.seed, grace_ms=2000, rate=args.rate)
    gc.freeze()  # as throughput.py: the corpus held for the checks stays out of collections
    with ExitStack() as stack:
        topo: Topology = OneServer(stack) if args.topology == "one" else ThreeServers(stack)
        topo.write(corpus)
        with redis.Redis.from_url(topo.url) as client:
            print(versions(client))
        print(f"{args.topology} server(s), shapes {args.coverage}, {args.events:,} events")
        rounds = [one_round(topo, n, args, corpus) for n in range(args.rounds)]

    def median(figure: Callable[[Round], float]) -> float:
        return statistics.median(figure(r) for r in rounds)

    target = FLOOR_SHAPES_ON if args.coverage == "on" else FLOOR_SHAPES_OFF
    rows: Mapping[str, Callable[[Round], float]] = {
        "floor (raw drain + consumer)": lambda r: r.floor,
        "  of which the consumer": lambda r: r.floor_consumer,
        "verifier": lambda r: r.python,
        "  runner (read, lookups, commit, sinks, loop)": lambda r: r.runner,
        "  core (join, decode, compare, shapes)": lambda r: r.core,
        "    of which the consumer": lambda r: r.consumer,
        "    the core's own": lambda r: r.core - r.consumer,
    }
    print(f"\nmedians of {len(rounds)} rounds, µs of Python an entry:")
    for name, figure in rows.items():
        print(f"  {name:48} {median(figure):6.1f}")
    print(f"Python/floor: {median(lambda r: r.python / r.floor):.2f} (target {target})")
    print(
        f"with a core that cost only its consumer, (runner + consumer) / floor:"
        f" {median(lambda r: r.bound):.2f}"
    )


if __name__ == "__main__":
    main()
