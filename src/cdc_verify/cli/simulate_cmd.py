"""`cdc-verify simulate`: the demo's simulated traffic, written to servers the user names.

It plays both services of a migration: the legacy one writing the production stream and
the new one writing the sister stream, with the demo's models (comments and accounts),
rate and faults, so that `run` (or `backfill`) can be tried against one's own Redis and
the compose stack has a writer. The corpus knows the verdict each event must get: the
last line says them, worked out from the entry ids each entry really got.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import redis
import redis.asyncio as aioredis

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    DURATION,
    URL_FORMS,
    command_settings,
    config_option,
    option,
    redis_options,
    setting,
    stream_options,
)
from cdc_verify.config.servers import RedisServer, Role
from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.corpus import DEMO_ENTITIES, DEMO_INCREMENTS, Corpus, generate
from cdc_verify.simulate.models import ENTITIES
from cdc_verify.simulate.writer import PacedWrite, cancel_writer, write_paced

PROGRESS_S = 5.0  # a progress line this often
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIDE_ROLES = {Side.PRODUCTION: Role.PRODUCTION, Side.SISTER: Role.SISTER}


def _entity_shares(ctx: click.Context, param: click.Parameter, value: str) -> dict[str, float]:
    """`comment=0.8,account=0.2`, or `comment,account` for equal shares."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, share = part.partition("=")
        if name not in ENTITIES:
            raise click.BadParameter(f"{name!r} is not a model: {', '.join(ENTITIES)}")
        try:
            shares[name] = float(share) if sep else 1.0
        except ValueError:
            raise click.BadParameter(f"{share!r} is not a number (in {part!r})") from None
        if not shares[name] > 0:
            raise click.BadParameter(f"{part!r}: a share must be more than 0")
    if not shares:
        raise click.BadParameter("give at least one model")
    total = sum(shares.values())
    return {name: share / total for name, share in shares.items()}


@click.command(
    cls=Command, short_help="Write the demo's simulated traffic to the servers you name."
)
@redis_options(
    f"Redis URL of both streams, unless each has a server of its own: {URL_FORMS}",
    (Role.PRODUCTION, Role.SISTER),
)
@stream_options
@setting(
    "--grace",
    type=DURATION,
    topic=Topic.TRAFFIC,
    help="the grace window run will use: late partners are written past it, healthy ones "
    "well inside it",
)
@option(
    "--events", topic=Topic.TRAFFIC, type=click.IntRange(1, 10_000_000), default=20_000,
    show_default=True,
    help="changes to generate, each written to both streams (faults aside)",
)  # fmt: skip
@option(
    "--rate", topic=Topic.TRAFFIC, type=click.FloatRange(1, 100_000), default=2_000,
    show_default=True,
    help="events per second written to each stream",
)  # fmt: skip
@option(
    "--seed", topic=Topic.TRAFFIC, type=int, default=1, show_default=True,
    help="seed of the changes and faults: the same seed, the same event ids and verdicts",
)  # fmt: skip
@option(
    "--faults/--no-faults", topic=Topic.TRAFFIC, default=True, show_default=True,
    help="inject the demo's faults (gaps, late partners, duplicates, mismatches, races, "
    "undecodable and malformed entries); --no-faults: every event a match",
)  # fmt: skip
@option(
    "--entities",
    topic=Topic.TRAFFIC,
    default=",".join(f"{name}={share:g}" for name, share in DEMO_ENTITIES.items()),
    show_default=True,
    callback=_entity_shares,
    help=f"the models changed and the share of each: NAME=SHARE or NAME (equal shares), "
    f"comma separated; models: {', '.join(ENTITIES)}",
)
@config_option("the redis_*, production_redis_* and sister_redis_* settings, the stream keys "
               "and grace")  # fmt: skip
def simulate(events: int, rate: float, seed: int, faults: bool, entities: dict[str, float],
             config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """Write the demo's simulated production and sister traffic to your servers.

    Progress goes to stderr every few seconds; the last line says how many entries were
    written and the verdict counts `run` or `backfill` must give them. Ctrl-C or SIGTERM
    stops the writer (exit status 128 + the signal)."""
    settings = command_settings(config, **kwargs)
    servers = {side: settings.server(role) for side, role in SIDE_ROLES.items()}
    unset = [side.value for side, server in servers.items() if not server.url]
    if unset:
        own = " and ".join(f"--{name}-redis URL" for name in unset)
        raise click.UsageError(
            f"simulate writes to servers you name: no server for the {' and '.join(unset)} "
            f"stream; give --redis URL (both streams) or {own}"
        )
    corpus = generate(
        events, seed=seed, grace_ms=settings.grace_ms, rate=rate, entities=entities,
        increments=DEMO_INCREMENTS, faults=faults,
    )  # fmt: skip
    keys = {Side.PRODUCTION: settings.production, Side.SISTER: settings.sister}
    total = len(corpus.production) + len(corpus.sister)
    click.echo(
        f"writing {total:,} entries for {events:,} events at {rate:,.0f} events/s: "
        + "; ".join(f"{keys[s]} on {servers[s].redacted_url()}" for s in keys),
        err=True,
    )
    done = asyncio.run(_simulate(servers, keys, corpus))
    written = sum(done.paced.written.values())
    counts = {s.value: f"{done.paced.written[s]:,}" for s in keys}
    if done.stopped_by is not None:
        click.echo(
            f"stopped by {done.stopped_by.name}: wrote {written:,} of {total:,} entries "
            f"(production {counts['production']}, sister {counts['sister']}); a run stopped "
            "half way has no expected verdicts"
        )
        sys.exit(128 + done.stopped_by)
    expected = corpus.expected_counts(done.paced.expected(corpus))
    verdicts = ", ".join(f"{v.value} {expected[v]:,}" for v in Verdict if expected.get(v))
    click.echo(
        f"wrote {written:,} entries (production {counts['production']}, sister "
        f"{counts['sister']}) for {events:,} events in {done.seconds:.1f} s; expected "
        f"verdicts: {verdicts}"
    )


@dataclass
class Simulated:
    paced: PacedWrite
    seconds: float
    stopped_by: signal.Signals | None


async def _simulate(
    servers: Mapping[Side, RedisServer], keys: Mapping[Side, str], corpus: Corpus
) -> Simulated:
    """Writes `corpus` in real time until done or a stop signal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        stopped_by.append(sig)
        stop.set()

    for sig in STOP_SIGNALS:  # first: a signal while it connects stops it too
        loop.add_signal_handler(sig, on_signal, sig)
    paced, started = PacedWrite(), time.monotonic()
    try:
        clients = await _clients(servers, keys)
        try:
            if not stop.is_set():
                await _write(clients, keys, corpus, stop, paced)
        except redis.ResponseError as exc:  # an ACL refusing XADD, a Cluster's MOVED
            urls = sorted({server.redacted_url() for server in servers.values()})
            raise click.ClickException(
                f"Redis refused the simulated writes ({', '.join(urls)}): {exc}"
            ) from exc
        finally:
            for client in {id(c): c for c in clients.values()}.values():
                await client.aclose()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    return Simulated(paced, time.monotonic() - started, stopped_by[0] if stopped_by else None)


async def _write(
    clients: Mapping[Side, aioredis.Redis], keys: Mapping[Side, str], corpus: Corpus,
    stop: asyncio.Event, paced: PacedWrite,
) -> None:  # fmt: skip
    """`write_paced`, a progress line every PROGRESS_S, until done or `stop` is set."""
    writer = asyncio.create_task(write_paced(
        clients, corpus, keys[Side.PRODUCTION], keys[Side.SISTER], stats=paced,
        in_step=len({id(c) for c in clients.values()}) > 1,
    ))  # fmt: skip
    stopping = asyncio.create_task(stop.wait())
    total = len(corpus.production) + len(corpus.sister)
    before, then = 0, time.monotonic()
    while True:
        await asyncio.wait({writer, stopping}, timeout=PROGRESS_S,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if writer.done() or stop.is_set():
            break
        now, written = time.monotonic(), sum(paced.written.values())
        rate = (written - before) / (now - then)
        click.echo(f"written {written:,}/{total:,} entries ({rate:,.0f} entries/s)", err=True)
        before, then = written, now
    stopping.cancel()
    await cancel_writer(writer)
    if not writer.cancelled():
        writer.result()  # what stopped it (an ACL refusing XADD) raises here


async def _clients(
    servers: Mapping[Side, RedisServer], keys: Mapping[Side, str]
) -> dict[Side, aioredis.Redis]:
    """A client per side, one for both when they are the same server and user; each server
    checked first, so that a wrong URL or password is one line naming it."""
    from cdc_verify.pipeline.redis.connection import connect, refused_credentials

    clients: dict[Side, aioredis.Redis] = {}
    by_login: dict[tuple[str | None, str | None, str | None], aioredis.Redis] = {}
    try:
        for side, server in servers.items():
            password = server.password.get_secret_value() if server.password else None
            login = (server.url, server.username, password)
            if login not in by_login:
                # connect: no retries of its own, as write_paced wants (see paced_client).
                by_login[login] = connect(server)
            client = clients[side] = by_login[login]
            url = server.redacted_url()
            try:
                kind = _text(await client.type(keys[side]))
                if kind == "stream" and (length := await client.xlen(keys[side])):
                    click.echo(
                        f"stream {keys[side]!r} on {url} holds {length:,} entries already: "
                        "run and backfill verify them too",
                        err=True,
                    )
            except redis.AuthenticationError as exc:
                raise refused_credentials(server, exc) from None
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                raise click.ClickException(
                    f"cannot reach the {server.role.value} server {url}: {exc}"
                ) from exc
            except redis.ResponseError as exc:
                raise click.ClickException(
                    f"the {server.role.value} server {url} refused: {exc}"
                ) from exc
            if kind not in ("none", "stream"):
                raise click.ClickException(f"{keys[side]!r} on {url} is a {kind}, not a stream")
    except BaseException:
        for client in by_login.values():
            await client.aclose()
        raise
    return clients


def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply
