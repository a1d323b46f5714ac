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
import time
from collections import Counter, deque
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cdc_verify.api.service import WorkerService
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.coverage.tally import CoverageTally
from cdc_verify.escaping import terminal_text
from cdc_verify.pipeline.core.breakdown import entity_op_key
from cdc_verify.pipeline.core.outcome import Outcome, OutcomeKind, record_to_json
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.embedded import READ_ONLY_ACL, EmbeddedRedis
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.state_read import read_state
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.report import verdict_table
from cdc_verify.schemas.models import Coverage
from cdc_verify.schemas.servers import Role
from cdc_verify.schemas.settings import Settings
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side, Verdict
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import PacedWrite, paced_client, write_paced

PRODUCTION, SISTER = "demo:production", "demo:sister"  # stream keys
READER = "reader"  # the verifier's ACL user on the production server
# What a read-only verifier may send production (docs/topology.md), handshake included.
READ_COMMANDS = frozenset(
    {"xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping"}
    | {"hello", "auth", "client", "select", "command"}
)
ENTITIES = {"comment": 0.8, "account": 0.2}  # the share of each model's changes
INCREMENTS = 0.3  # of the changes past version 1: the rest are updates


def run_demo(
    events: int, rate: float, grace: float, seed: int, http_port: int = 0, linger: float = 0
) -> bool:
    console = Console()
    corpus = generate(
        events, seed=seed, grace_ms=round(grace * 1000), rate=rate, entities=ENTITIES,
        increments=INCREMENTS,
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
            start_id="0", consumer_name="demo-worker", lock_ttl=2, http_port=http_port,
            create_streams=True,  # the sister's; the demo's writer starts once the worker is ready
        )  # fmt: skip
        _show_topology(console, settings)
        writers = {Side.PRODUCTION: paced_client(production.url),  # the legacy service
                   Side.SISTER: paced_client(sister.url)}  # fmt: skip
        ok, written = asyncio.run(_demo(console, settings, corpus, linger, writers))
        return _show_production_commands(console, production.url, written) and ok


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


async def _demo(
    console: Console,
    settings: Settings,
    corpus: Corpus,
    linger: float,
    writers: dict[Side, aioredis.Redis],
) -> tuple[bool, PacedWrite]:
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

    primaries = sum(expected[v] for v in PRIMARY_VERDICTS)

    history: deque[tuple[float, int]] = deque()  # (when, events verified) of the last 2 s

    def view(done: bool = False) -> Panel:
        waiting = worker.verifier.waiting_count
        now = time.monotonic()
        verified = sum(counts[v] for v in PRIMARY_VERDICTS)
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
        writer = asyncio.create_task(write_paced(writers, corpus, PRODUCTION, SISTER, on_written))
        while not writer.done():
            live.update(view())
            await asyncio.sleep(0.25)
        paced = await writer
        # Gaps are only known once the grace window has passed.
        deadline = time.monotonic() + settings.grace + 10
        while sum(counts[v] for v in PRIMARY_VERDICTS) < primaries and time.monotonic() < deadline:
            live.update(view())
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.5)  # let stray records (there should be none) show up
        live.update(view(done=True))
    if linger:
        console.print(f"Done; the status page stays up {linger:.0f}s more (Ctrl-C ends).")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(linger)
    coverage = await _coverage(settings)
    worker.stop()
    await worker_task
    for client in writers.values():
        await client.aclose()

    wrong = [
        (event_id, corpus.faults_by_event[event_id], want.verdict, primary.get(event_id))
        for event_id, want in corpus.expected.items()
        if primary.get(event_id) is not want.verdict
    ]
    got_by_entity_op = {key: dict(c) for key, c in by_entity_op.items()}
    expected_by_entity_op = corpus.expected_by_entity_op()
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
    ok = (
        not wrong
        and all(counts.get(v, 0) == expected.get(v, 0) for v in Verdict)
        and got_by_entity_op == expected_by_entity_op
    )
    console.print("\nOne record of each verdict, as written to the verdict stream:")
    for verdict in Verdict:
        if verdict in examples:
            record = terminal_text(examples[verdict][:300])  # stream data, as written
            console.print(Text.assemble("  ", (verdict.value, "bold"), ": ", record),
                          soft_wrap=True)  # fmt: skip
    if ok:
        console.print(
            f"\n[green]All {sum(counts.values()):,} verdict records match what was injected, "
            "per entity and op too, "
            f"and each of the {len(corpus.expected):,} events got the verdict its fault implies.[/]"
        )
    else:
        console.print("\n[red]Verdicts differ from what was injected:[/]")
        for event_id, fault, want, got in wrong[:10]:
            console.print(
                terminal_text(f"  {event_id} ({fault}): expected {want.value}, got {got}")
            )
    return ok, paced


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
