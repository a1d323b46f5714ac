"""`cdc-verify demo`: embedded Redis, simulated streams with every fault, live report.

A paced writer plays a generated corpus into a production and a sister stream
in real time while the real worker verifies them; the terminal shows verdict
counts as they land, and the run ends by comparing them with what was injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence

import redis.asyncio as aioredis
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel

from cdc_verify.api.service import WorkerService
from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind, record_to_json
from cdc_verify.pipeline.redis.embedded import EmbeddedRedis
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.report import verdict_table
from cdc_verify.schemas.settings import Settings
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side, Verdict
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import write_paced

PRODUCTION, SISTER = "demo:production", "demo:sister"  # stream keys


def run_demo(
    events: int, rate: float, grace: float, seed: int, http_port: int = 0, linger: float = 0
) -> bool:
    console = Console()
    corpus = generate(events, seed=seed, grace_ms=round(grace * 1000), rate=rate)
    console.print(
        f"Generated {events:,} changes ({sum(corpus.faults.values()) - corpus.faults['clean']:,}"
        f" with injected faults of {len(corpus.faults) - 1} kinds); writing them at {rate:,.0f}/s."
    )
    with EmbeddedRedis() as redis_server:
        console.print(f"Embedded Redis at {redis_server.url}")
        settings = Settings(
            redis_url=redis_server.url, production=PRODUCTION, sister=SISTER, grace=grace,
            start_id="0", consumer_name="demo-worker", lock_ttl=2, http_port=http_port,
            create_streams=True,  # the demo's writer starts once the worker is ready
        )  # fmt: skip
        return asyncio.run(_demo(console, settings, corpus, linger))


async def _demo(console: Console, settings: Settings, corpus: Corpus, linger: float) -> bool:
    counts: Counter[Verdict] = Counter()
    examples: dict[Verdict, str] = {}
    primary: dict[str, Verdict] = {}  # event_id -> its verdict, to check event by event

    def collect(outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            if o.record is not None:
                counts[o.record.verdict] += 1
                examples.setdefault(o.record.verdict, record_to_json(o.record))
                if o.kind is OutcomeKind.PRIMARY and o.record.event_id:
                    primary[o.record.event_id] = o.record.verdict

    worker = StreamWorker(settings, decode_event, on_outcomes=collect)
    service = WorkerService(worker, settings.redis_url or "")
    if settings.http_port:
        base = service.bind_http()
        console.print(f"Status page at {base}/ · API at {base}/docs · metrics at {base}/metrics")
    worker_task = asyncio.create_task(service.run())
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({ready, worker_task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not worker.ready.is_set():
        ready.cancel()
        worker.stop()
        await worker_task  # raises what stopped the worker
        raise RuntimeError("the worker did not start within 30 s")

    expected = corpus.expected_counts()
    total = len(corpus.production) + len(corpus.sister)
    written = 0
    started = time.monotonic()

    def on_written(n: int) -> None:
        nonlocal written
        written += n

    def view() -> Panel:
        waiting = worker.verifier.waiting_count
        status = (
            f"written {written:,}/{total:,} entries   "
            f"waiting for partner: {waiting(Side.PRODUCTION):,} production, "
            f"{waiting(Side.SISTER):,} sister   {time.monotonic() - started:5.1f}s"
        )
        return Panel(Group(verdict_table(dict(counts), expected), status), title="cdc-verify demo")

    client = aioredis.Redis.from_url(settings.redis_url or "")
    primaries = sum(expected[v] for v in PRIMARY_VERDICTS)
    with Live(view(), console=console, refresh_per_second=4) as live:
        writer = asyncio.create_task(write_paced(client, corpus, PRODUCTION, SISTER, on_written))
        while not writer.done():
            live.update(view())
            await asyncio.sleep(0.25)
        await writer
        # Gaps are only known once the grace window has passed.
        deadline = time.monotonic() + settings.grace + 10
        while sum(counts[v] for v in PRIMARY_VERDICTS) < primaries and time.monotonic() < deadline:
            live.update(view())
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.5)  # let stray records (there should be none) show up
        live.update(view())
    if linger:
        console.print(f"Done; the status page stays up {linger:.0f}s more (Ctrl-C ends).")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(linger)
    worker.stop()
    await worker_task
    await client.aclose()

    wrong = [
        (event_id, corpus.faults_by_event[event_id], want.verdict, primary.get(event_id))
        for event_id, want in corpus.expected.items()
        if primary.get(event_id) is not want.verdict
    ]
    ok = not wrong and all(counts.get(v, 0) == expected.get(v, 0) for v in Verdict)
    console.print("\nOne record of each verdict, as written to the verdict stream:")
    for verdict in Verdict:
        if verdict in examples:
            console.print(f"  [bold]{verdict.value}[/]: {examples[verdict][:300]}", soft_wrap=True)
    if ok:
        console.print(
            f"\n[green]All {sum(counts.values()):,} verdict records match what was injected, "
            f"and each of the {len(corpus.expected):,} events got the verdict its fault implies.[/]"
        )
    else:
        console.print("\n[red]Verdicts differ from what was injected:[/]")
        for event_id, fault, want, got in wrong[:10]:
            console.print(f"  {event_id} ({fault}): expected {want.value}, got {got}")
    return ok
