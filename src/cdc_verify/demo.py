"""`cdc-verify demo`: embedded Redis servers, simulated streams with every fault, live report.

The streams carry two models, comments and accounts, through all three write endpoints
(create, update, increment); the worker decodes them through the default consumers, one
per entity, and the run checks the verdicts per entity and op as well.

The real topology (docs/topology.md): a production server and a sister server, the
worker's state on the sister one, and production reached through a read-only ACL user
(a random password per run, never printed) with `production_read_only`. A paced writer
plays a generated corpus into the production and sister streams in real time while the
real worker verifies them; the terminal shows verdict counts as they land, and the run
ends by comparing them with what was injected and by showing what production received.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

import redis
import redis.asyncio as aioredis
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cdc_verify.api.service import WorkerService
from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.core.breakdown import entity_op_key
from cdc_verify.core.coverage import CoverageTally
from cdc_verify.core.outcome import Outcome, OutcomeKind, record_to_json
from cdc_verify.embedded_redis import READ_ONLY_ACL, EmbeddedRedis
from cdc_verify.escaping import terminal_text
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.state_read import read_state
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.schemas.models import Coverage
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side, Verdict
from cdc_verify.simulate.corpus import DEMO_ENTITIES, DEMO_INCREMENTS, Corpus, generate
from cdc_verify.simulate.writer import PacedWrite, cancel_writer, paced_client, write_paced
from cdc_verify.terminal import verdict_table

PRODUCTION, SISTER = "demo:production", "demo:sister"  # stream keys
READER = "reader"  # the verifier's ACL user on the production server
# What a read-only verifier may send production (docs/topology.md), handshake included.
READ_COMMANDS = frozenset(
    {"xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping"}
    | {"hello", "auth", "client", "select", "command"}
)


# Each ends a run in order (the summary, the servers stopped); Ctrl-C is SIGINT, a closed
# terminal SIGHUP, `kill` SIGTERM.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STALL_S = 30.0  # the run fails when no event got its verdict for this long past the grace


class StopSignal(KeyboardInterrupt):
    """A stop signal (STOP_SIGNALS) outside the worker's part of the run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signal.Signals(signum)


def run_demo(
    events: int, rate: float, grace: float, seed: int, http_port: int = 0, linger: float = 0
) -> int:
    """The demo; its exit status: 0 passed, 1 failed, 128 + the signal when stopped early.
    Its last line says PASS or FAIL."""
    console = Console()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    _stop_signals_interrupt()
    try:
        return _run_demo(console, events, rate, grace, seed, http_port, linger)
    except StopSignal as stop:  # before or after the worker's part of the run
        _verdict_line(console, False, f"stopped by {stop.signum.name} before the run was done")
        return 128 + stop.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise StopSignal(signum)


def _stop_signals_interrupt() -> None:
    """SIGTERM and SIGHUP stop the demo as Ctrl-C does (an exception), so its servers
    are stopped in order rather than left to the kernel's safety net (embedded.py)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


def _run_demo(
    console: Console, events: int, rate: float, grace: float, seed: int, http_port: int,
    linger: float,
) -> int:  # fmt: skip
    corpus = generate(
        events, seed=seed, grace_ms=round(grace * 1000), rate=rate, entities=DEMO_ENTITIES,
        increments=DEMO_INCREMENTS,
    )  # fmt: skip
    # Fault names are `fault` (comments) or `entity:fault`.
    faulty = {n: k for n, k in corpus.faults.items() if n.rpartition(":")[2] != "clean"}
    accounts = sum(k for n, k in corpus.faults.items() if n.startswith("account:"))
    console.print(
        f"Generated {events:,} changes ({events - accounts:,} to comments, {accounts:,} to "
        f"accounts; creates, updates and increments), {sum(faulty.values()):,} with injected "
        f"faults of {len(faulty)} kinds; writing them at {rate:,.0f}/s."
    )
    with EmbeddedRedis() as production, EmbeddedRedis() as sister:
        password = secrets.token_urlsafe(24)  # this run's only; never printed
        production.acl_user(READER, password, READ_ONLY_ACL)
        with redis.Redis.from_url(production.url) as admin:
            # The legacy service's stream exists (empty) before the verifier starts: a
            # read-only verifier waits for it, it never creates it. Then count afresh.
            admin.xadd(PRODUCTION, {"created": "1"}, maxlen=0, approximate=False)
            admin.config_resetstat()
        settings = Settings(
            redis_url=sister.url,  # the sister stream, and the state (it defaults to sister)
            production_redis_url=production.url, production_redis_username=READER,
            production_redis_password=SecretStr(password), production_read_only=True,
            production=PRODUCTION, sister=SISTER, grace=grace,
            start_id="0", consumer_name="demo-worker", http_port=http_port,
            create_streams=True,  # the sister's; the demo's writer starts once the worker is ready
        )  # fmt: skip
        _show_topology(console, settings)
        writers = {Side.PRODUCTION: paced_client(production.url),  # the legacy service
                   Side.SISTER: paced_client(sister.url)}  # fmt: skip
        try:
            run = asyncio.run(_demo(console, settings, corpus, linger, writers))
        finally:
            _stop_signals_interrupt()  # closing the loop set them back to their defaults
        if run.stopped_by is not None and not run.done:
            entries = len(corpus.production) + len(corpus.sister)
            _verdict_line(
                console, False, f"stopped by {run.stopped_by.name} before the run was done "
                f"({sum(run.paced.written.values()):,} of {entries:,} entries written)",
            )  # fmt: skip
            return 128 + run.stopped_by
        reads_only = _show_production_commands(console, production.url, run.paced)
        problems = run.problems + ([] if reads_only else ["production received more than reads"])
        _verdict_line(
            console, not problems, "; ".join(problems) or (
                f"{len(corpus.expected):,} events, each with the verdict its entries imply; "
                "every count as expected; production received read commands only"),
        )  # fmt: skip
        return 0 if not problems else 1


def _verdict_line(console: Console, ok: bool, text: str) -> None:
    """The run's last line: PASS or FAIL and why, on one line whatever the width."""
    word = "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"
    console.print(f"\n{word}: {escape(text)}", highlight=False, soft_wrap=True)


def _show_topology(console: Console, settings: Settings) -> None:
    servers = {role: settings.server(role) for role in Role}
    state = servers[Role.STATE]
    shared = next(
        (r for r in (Role.SISTER, Role.PRODUCTION) if servers[r].same_server(state)), None
    )
    rows = [
        (f"production (read-only ACL user {servers[Role.PRODUCTION].username})",
         servers[Role.PRODUCTION].redacted_url()),
        ("sister", servers[Role.SISTER].redacted_url()),
        ("state (verdicts, alerts, positions)",
         f"on the {shared.value} server" if shared else state.redacted_url()),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    console.print(
        f"Topology ({len({s.address for s in servers.values()})} embedded Redis servers):"
    )
    for name, where in rows:
        console.print(f"  {name:<{width}}  {where}", highlight=False)


def _show_production_commands(console: Console, url: str, written: PacedWrite) -> bool:
    """What the production server received, the writer's XADDs aside: read commands only,
    and nothing but its stream is stored there."""
    with redis.Redis.from_url(url) as admin:
        stats = admin.info("commandstats")
        keys = sorted(k.decode() for k in admin.keys("*"))
    calls: dict[str, int] = {}
    refused: dict[str, int] = {}
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_").partition("|")[0]
        if values.get("calls"):
            calls[command] = calls.get(command, 0) + int(values["calls"])
        if values.get("rejected_calls"):
            refused[command] = refused.get(command, 0) + int(values["rejected_calls"])
    xadds = calls.pop("xadd", 0)
    calls.pop("config", None)  # the demo's own CONFIG RESETSTAT
    others = set(calls) - READ_COMMANDS
    ok = not others and xadds == written.written[Side.PRODUCTION] and keys == [PRODUCTION]
    listed = ", ".join(f"{name} {n:,}" for name, n in sorted(calls.items(), key=lambda c: -c[1]))
    verdict = "[green]read commands only[/]" if ok else "[red]NOT read commands only[/]"
    console.print(
        f"\nThe production server received {verdict}, the writer's {xadds:,} XADDs aside: "
        f"{listed}.",
        highlight=False,
        soft_wrap=True,  # one line, for whoever reads the output
    )
    if refused:
        shown = ", ".join(f"{name} {n:,}" for name, n in sorted(refused.items()))
        console.print(f"Its ACL refused: {shown}.", highlight=False, soft_wrap=True)
    if not ok:
        console.print(
            f"  commands other than reads: {sorted(others) or 'none'}; keys there: {keys}; "
            f"XADDs {xadds:,} for {written.written[Side.PRODUCTION]:,} entries written"
        )
    return ok


@dataclass
class DemoRun:
    """What `_demo` did."""

    paced: PacedWrite
    problems: list[str] = field(default_factory=list)  # why it fails; none: it passes
    stopped_by: signal.Signals | None = None
    done: bool = False  # every entry written, every verdict waited for


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Waits `seconds`, less if `stop` is set; whether it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _demo(
    console: Console,
    settings: Settings,
    corpus: Corpus,
    linger: float,
    writers: dict[Side, aioredis.Redis],
) -> DemoRun:
    """The worker's part of the run, with the stop signals as a request to stop: during the
    run it ends the run, during the linger the linger (then the summary)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    run = DemoRun(PacedWrite())

    def on_signal(sig: signal.Signals) -> None:
        if run.stopped_by is not None:
            raise StopSignal(sig)  # a second one: no more waiting
        run.stopped_by = sig
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await _run_worker(console, settings, corpus, linger, writers, stop, run)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        _stop_signals_interrupt()  # removing a loop's handler set the default again
        for client in writers.values():
            await client.aclose()
    return run


async def _run_worker(
    console: Console,
    settings: Settings,
    corpus: Corpus,
    linger: float,
    writers: dict[Side, aioredis.Redis],
    stop: asyncio.Event,
    run: DemoRun,
) -> None:
    counts: Counter[Verdict] = Counter()
    examples: dict[Verdict, str] = {}
    primary: dict[str, Verdict] = {}  # event_id -> its verdict, to check event by event
    by_entity_op: dict[str, Counter[str]] = {}  # as summary.json's by_entity_op

    def collect(outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            if o.record is not None:
                counts[o.record.verdict] += 1
                examples.setdefault(o.record.verdict, record_to_json(o.record))
                key = entity_op_key(o.settles)
                by_entity_op.setdefault(key, Counter())[o.record.verdict.value] += 1
                if o.kind is OutcomeKind.PRIMARY and o.record.event_id:
                    primary[o.record.event_id] = o.record.verdict

    # One consumer per entity, chosen by the entry's `entity`: dispatch on real data.
    worker = StreamWorker(settings, load_consumers(DEFAULT_CONSUMERS), on_outcomes=collect)
    service = WorkerService(worker)
    if settings.http_port:
        base = service.bind_http()
        console.print(f"Status page at {base}/ · API at {base}/docs · metrics at {base}/metrics")
    worker_task = asyncio.create_task(service.run())
    waits = {asyncio.create_task(worker.ready.wait()), asyncio.create_task(stop.wait())}
    await asyncio.wait({*waits, worker_task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if not worker.ready.is_set():
        worker.stop()
        await worker_task  # raises what stopped the worker
        if stop.is_set():
            return
        raise RuntimeError("the worker did not start within 30 s")

    expected = corpus.expected_counts()  # as planned while it runs, as written at the end
    as_written = corpus.expected
    total = len(corpus.production) + len(corpus.sister)
    written = 0
    started = time.monotonic()

    def on_written(n: int) -> None:
        nonlocal written
        written += n

    primaries = sum(expected[v] for v in PRIMARY_VERDICTS)

    history: deque[tuple[float, int]] = deque()  # (when, events verified) of the last 2 s

    def verified_now() -> int:
        return sum(counts[v] for v in PRIMARY_VERDICTS)

    def view(done: bool = False) -> Panel:
        waiting = worker.verifier.waiting_count
        now = time.monotonic()
        verified = verified_now()
        history.append((now, verified))
        while now - history[0][0] > 2.0:
            history.popleft()
        then, before = history[0]
        rate = (verified - before) / (now - then) if now > then else 0.0
        pace = (
            f"in {now - started:.1f} s, {verified / max(now - started, 0.1):,.0f} events/s"
            if done
            else f"{rate:,.0f} events/s now, {now - started:.1f} s"
        )
        status = (
            f"written {written:,}/{total:,} entries\n"
            f"verified {verified:,}/{primaries:,} events ({verified / max(primaries, 1):.0%}), "
            f"{pace}\nwaiting for partner: {waiting(Side.PRODUCTION):,} production, "
            f"{waiting(Side.SISTER):,} sister"
        )
        table = verdict_table(dict(counts), expected, done=done)
        return Panel(Group(table, status), title="cdc-verify demo")

    with Live(view(), console=console, refresh_per_second=4) as live:
        writer = asyncio.create_task(
            write_paced(
                writers, corpus, PRODUCTION, SISTER, on_written, stats=run.paced, in_step=True
            )
        )
        while not writer.done() and not await _stopped(stop, 0.25):
            live.update(view())
        writing_s = time.monotonic() - started
        await cancel_writer(writer)
        if not writer.cancelled():
            writer.result()  # what stopped the writer raises here
        # Gaps are only known once the grace window has passed; a worker under load takes
        # longer, and the run waits as long as verdicts keep coming.
        progress_at, last = time.monotonic(), -1
        while not stop.is_set() and (verified := verified_now()) < primaries:
            if verified != last:
                progress_at, last = time.monotonic(), verified
            elif time.monotonic() - progress_at > settings.grace + STALL_S:
                run.problems.append(
                    f"{primaries - verified:,} events got no verdict: none came for "
                    f"{settings.grace + STALL_S:.0f} s"
                )
                break
            live.update(view())
            await _stopped(stop, 0.25)
        if not await _stopped(stop, 0.5):  # let stray records (there should be none) show up
            run.done = True
            as_written = corpus.expected_as_written(
                {side: run.paced.entry_ms(side) for side in (Side.PRODUCTION, Side.SISTER)}
            )
            expected = corpus.expected_counts(as_written)
        live.update(view(done=run.done))
    if not run.done:
        worker.stop()
        await worker_task
        return
    if linger:
        console.print(f"\nDone; the status page stays up {linger:.0f} s more (Ctrl-C ends it).")
        await _stopped(stop, linger)
    coverage = await _coverage(settings)
    worker.stop()
    await worker_task

    moved = sum(1 for event_id, exp in as_written.items() if exp != corpus.expected[event_id])
    first_ms = min(entries[0].at_ms for entries in (corpus.production, corpus.sister) if entries)
    schedule_s = (corpus.duration_ms - first_ms) / 1000
    console.print(
        f"\nThe writer took {writing_s:.1f} s for its {schedule_s:.1f} s schedule"
        + (
            f"; behind it, {moved:,} pairs landed otherwise than planned (a late partner within "
            "the grace window, or a partner past it): each is expected as written, on its "
            "entry ids (docs/guarantees.md)."
            if moved
            else "."
        ),
        highlight=False,
        soft_wrap=True,
    )
    wrong = [
        (event_id, corpus.faults_by_event[event_id], want.verdict, primary.get(event_id))
        for event_id, want in as_written.items()
        if primary.get(event_id) is not want.verdict
    ]
    got_by_entity_op = {key: dict(c) for key, c in by_entity_op.items()}
    expected_by_entity_op = corpus.expected_by_entity_op(as_written)
    console.print("\nVerdict records by entity and op (write endpoint):")
    console.print(_entity_op_table(got_by_entity_op, expected_by_entity_op))
    if coverage is not None:
        ratio = "-" if coverage.ratio is None else f"{coverage.ratio:.1%}"
        console.print(
            f"\nShape coverage (docs/coverage.md): {coverage.shapes:,} shapes of production "
            f"event, {coverage.verified:,} verified, {coverage.mismatched:,} mismatched, "
            f"{coverage.never_verified:,} never verified ({ratio}); the status page lists the "
            "parts never verified"
        )
    if wrong:
        run.problems.append(f"{len(wrong):,} events got another verdict than their entries imply")
    if any(counts.get(v, 0) != expected.get(v, 0) for v in Verdict):
        run.problems.append("the verdict counts differ from what was written")
    if got_by_entity_op != expected_by_entity_op:
        run.problems.append("the counts per entity and op differ from what was written")
    console.print("\nOne record of each verdict, as written to the verdict stream:")
    for verdict in Verdict:
        if verdict in examples:
            record = terminal_text(examples[verdict][:300])  # stream data, as written
            console.print(Text.assemble("  ", (verdict.value, "bold"), ": ", record),
                          soft_wrap=True)  # fmt: skip
    if not run.problems:
        console.print(
            f"\n[green]All {sum(counts.values()):,} verdict records match what was injected, "
            "per entity and op too, "
            f"and each of the {len(as_written):,} events got the verdict its entries imply.[/]"
        )
    else:
        console.print("\n[red]Verdicts differ from what was injected:[/]")
        for event_id, fault, want, got in wrong[:10]:
            console.print(
                terminal_text(f"  {event_id} ({fault}): expected {want.value}, got {got}")
            )


async def _coverage(settings: Settings) -> Coverage | None:
    """The shape coverage the worker counted on its state server."""

    async def read(client: AsyncClient, keys: WorkerKeys) -> CoverageTally:
        return await ShapeReader(client, keys).tally()

    tally = await read_state(settings, read)
    return tally.totals() if tally.entities else None


def _entity_op_table(got: dict[str, dict[str, int]], expected: dict[str, dict[str, int]]) -> Table:
    """Per `entity/op`: records, how many are not `match`, and whether every verdict's
    count is the one injected."""
    table = Table(show_edge=False)
    table.add_column("entity/op")
    for name in ("records", "match", "other verdicts", "injected"):
        table.add_column(name, justify="right")
    table.add_column("", justify="center")
    for key in sorted(got.keys() | expected.keys()):
        have, want = got.get(key, {}), expected.get(key, {})
        total = sum(have.values())
        table.add_row(
            terminal_text(key), f"{total:,}", f"{have.get('match', 0):,}",
            f"{total - have.get('match', 0):,}",
            f"{sum(want.values()):,}", "[green]ok[/]" if have == want else "[red]≠[/]",
        )  # fmt: skip
    return table
