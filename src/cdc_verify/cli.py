"""The `cdc-verify` command line (DESIGN.md fixes the commands and their flags)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from cdc_verify.consumers.loader import ConsumerLoadError, load_consumer
from cdc_verify.logs import configure_logging
from cdc_verify.pipeline.redis.connection import redact
from cdc_verify.pipeline.redis.embedded import EmbeddedRedis, EmbeddedRedisError
from cdc_verify.schemas.settings import ConfigFileError, Settings, load_settings

log = logging.getLogger("cdc_verify")


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _settings(config: Path | None, **flags: Any) -> Settings:
    try:
        return load_settings(config, **flags)
    except (ValidationError, ConfigFileError) as exc:
        raise click.UsageError(str(exc)) from exc


def _consumer(settings: Settings) -> Callable[..., Any]:
    try:
        return load_consumer(settings.consumer)
    except ConsumerLoadError as exc:
        raise click.UsageError(str(exc)) from exc


def _redis_url(settings: Settings, stack: ExitStack) -> str:
    if settings.redis_url:
        return settings.redis_url
    try:
        embedded = stack.enter_context(EmbeddedRedis())
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"no --redis given: started an embedded Redis at {embedded.url}", err=True)
    return embedded.url


def _apply(options: list[Callable[..., Any]], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def redis_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How to reach Redis."""
    return _apply([
        click.option("--redis", "redis_url", help="Redis URL (redis://, rediss://, unix://); "
                     "none: start an embedded Redis. Env: CDC_VERIFY_REDIS_URL"),
        click.option("--redis-username", help="ACL user"),
        click.option("--redis-tls-ca-file", type=click.Path(path_type=Path)),
        click.option("--redis-tls-cert-file", type=click.Path(path_type=Path)),
        click.option("--redis-tls-key-file", type=click.Path(path_type=Path)),
    ], fn)  # fmt: skip


def stream_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The two stream keys."""
    return _apply([
        click.option("--production", help="production stream key"),
        click.option("--sister", help="sister stream key"),
    ], fn)  # fmt: skip


def verify_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How events are joined, decoded and compared; where settings come from."""
    return _apply([
        click.option("--grace", type=float, help="seconds a partner may lag (default 5)"),
        click.option("--consumer", help="legacy consumer as module:callable"),
        click.option("--ignore-path", "ignore_paths", multiple=True,
                     help="JSON pointer not compared (repeatable; * = any segment)"),
        click.option("--float-tolerance", type=float, help="absolute tolerance for floats"),
        click.option("--config", type=click.Path(path_type=Path, dir_okay=False),
                     help="TOML config file (env: CDC_VERIFY_CONFIG)"),
        click.option("--log-level", help="DEBUG, INFO, WARNING, ERROR"),
        click.option("--log-format", type=click.Choice(["text", "json"]),
                     help="text (default) or json: one object a line, event_id as a field"),
    ], fn)  # fmt: skip


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Flags of the commands that verify both streams in Redis."""
    return redis_options(stream_options(verify_options(fn)))


def _flags(kwargs: dict[str, Any]) -> dict[str, Any]:
    flags = dict(kwargs)
    flags["ignore_paths"] = list(flags.get("ignore_paths") or ()) or None
    return flags


class RedisErrorsAsMessages(click.Group):
    """Redis errors reach the user as one clear line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import redis

        try:
            return super().invoke(ctx)
        except redis.AuthenticationError as exc:
            raise click.ClickException(f"Redis refused the credentials: {exc}") from exc
        except redis.exceptions.NoPermissionError as exc:
            raise click.ClickException(
                f"Redis ACL denies a command the verifier needs: {exc}"
            ) from exc
        except redis.ConnectionError as exc:
            raise click.ClickException(f"cannot reach Redis: {exc}") from exc
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis error: {exc}") from exc


@click.group(
    cls=RedisErrorsAsMessages,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="cdc-verify")
def main() -> None:
    """Verify that a sister CDC stream says what the production stream says.

    Every event is decoded with the legacy consumer, joined on event_id, compared,
    and given one verdict: match, mismatch, race, undecodable, missing_in_sister or
    missing_in_production (plus duplicate and malformed records).
    """


@main.command()
@click.option("--events", type=click.IntRange(100, 10_000_000), default=20_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(10, 100_000),
    default=2_000,
    show_default=True,
    help="events per second written to each stream",
)
@click.option("--grace", type=click.FloatRange(0.2, 60), default=2.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="serve the status page, API and /metrics on 127.0.0.1:PORT (0: off)",
)
@click.option(
    "--linger",
    type=click.FloatRange(0, 86_400),
    default=0,
    help="seconds to keep the worker and status page up after the run",
)
def demo(events: int, rate: float, grace: float, seed: int, http_port: int, linger: float) -> None:
    """Embedded Redis + simulated streams with every fault + live report."""
    from cdc_verify.demo import run_demo

    configure_logging("WARNING")
    ok = run_demo(events=events, rate=rate, grace=grace, seed=seed, http_port=http_port,
                  linger=linger)  # fmt: skip
    sys.exit(0 if ok else 1)


@main.command()
@common_options
@click.option("--group", help="consumer group on both streams (default cdc-verify)")
@click.option("--consumer-name", help="this worker's name in the group (default: hostname)")
@click.option("--start-id", help="where a new group starts: $ (new entries, default), 0, or an id")
@click.option("--verdict-stream", help="stream of verdict records (default cdc-verify:verdicts)")
@click.option("--verdict-stream-maxlen", type=int, help="approximate trim length, 0 = never")
@click.option(
    "--decided-retention",
    type=float,
    help="seconds a verdict is remembered to spot duplicates and late arrivals",
)
@click.option(
    "--jsonl",
    type=click.Path(path_type=Path, dir_okay=False),
    help="also append verdict records to this file",
)
@click.option(
    "--alert-retention", type=float, help="seconds an alert is kept (default 604800: 7 days)"
)
@click.option(
    "--verdict-retention",
    type=float,
    help="seconds a record stays in the verdict stream (default 604800: 7 days)",
)
@click.option(
    "--http-port",
    type=int,
    help="port of the API, status page, /metrics, /healthz, /readyz (default 9464, 0 = off)",
)
@click.option("--http-host", help="address the HTTP server binds to (default 127.0.0.1)")
@click.option(
    "--ready-max-lag", type=float, help="seconds of consumer lag that fail /readyz (default 60)"
)
@click.option(
    "--engine",
    type=click.Choice(["single", "faust"]),
    help="single (default): one process; faust: one of many Faust workers on Kafka",
)
@click.option(
    "--kafka", "kafka_url", help="Kafka bootstrap server for --engine faust, e.g. kafka://host:9092"
)
@click.option(
    "--partitions",
    "kafka_partitions",
    type=click.IntRange(1, 1024),
    help="partitions of the entries topic (--engine faust, default 8; fixed once created)",
)
@click.option("--batch-size", type=int, help="entries per XREADGROUP per stream (default 500)")
@click.option("--block-ms", type=int, help="XREADGROUP BLOCK when idle (default 100)")
@click.option(
    "--lock-ttl", type=float, help="seconds a dead worker's lock outlives it (default 10)"
)
def run(config: Path | None, **kwargs: Any) -> None:
    """Long-lived worker: verify both streams as they are written.

    Serves the HTTP API, status page and /metrics on --http-host:--http-port.
    With --engine faust, runs as one of any number of Faust workers on Kafka
    (serving /metrics only); see README: scaling out.
    """
    from cdc_verify.api.service import WorkerService
    from cdc_verify.pipeline.runners.worker import StreamWorker

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    if settings.engine == "faust":
        from cdc_verify.pipeline.faust.app import run_faust_worker
        from cdc_verify.pipeline.faust.topics import TopicMismatch

        if not settings.kafka_url or not settings.redis_url:
            raise click.UsageError("--engine faust needs --kafka and --redis")
        try:
            run_faust_worker(settings, consumer)
        except TopicMismatch as exc:
            raise click.ClickException(str(exc)) from exc
        return
    with ExitStack() as stack:
        url = _redis_url(settings, stack)
        service = WorkerService(StreamWorker(settings, consumer, redis_url=url), url)
        if settings.http_port:
            try:
                base = service.bind_http()
            except OSError as exc:
                raise click.ClickException(
                    f"cannot serve HTTP on {settings.http_host}:{settings.http_port}: {exc}"
                ) from exc
            log.info("status page %s/ · API %s/docs · metrics %s/metrics", base, base, base)
        log.info(
            "verifying %s against %s on %s (group %s, grace %.1fs)",
            settings.sister, settings.production, redact(url), settings.group, settings.grace,
        )  # fmt: skip
        asyncio.run(service.run_until_signal())


@main.command()
@common_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="directory for verdicts.jsonl and summary.json",
)
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a TTY)")
def backfill(config: Path | None, out: Path, progress: bool | None, **kwargs: Any) -> None:
    """Bounded check of what both streams hold now (read-only, no consumer group)."""
    from cdc_verify.pipeline.runners.backfill import run_backfill
    from cdc_verify.report import print_summary

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    with ExitStack() as stack:
        url = _redis_url(settings, stack)
        bar = stack.enter_context(_progress(progress))
        task = bar.add_task("verifying", total=None)
        summary = run_backfill(
            settings, consumer, out, url,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    print_summary(summary, out)


def _progress(show: bool | None) -> Any:
    from rich.progress import Progress

    return Progress(disable=not (sys.stderr.isatty() if show is None else show), transient=True)


@main.command()
@redis_options
@click.option("--stream", required=True, help="stream key to capture")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="capture file to write",
)
@click.option("--from", "start", help="first entry: an entry id, epoch ms or ISO 8601 time")
@click.option(
    "--to",
    "end",
    help="last entry: an entry id, epoch ms or ISO 8601 time "
    "(default: the last entry when the capture starts)",
)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a TTY)")
def capture(stream: str, out: Path, start: str | None, end: str | None, config: Path | None,
            progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Capture one stream, byte-exact, to a compressed file (see README: capture files)."""
    import redis

    from cdc_verify.capture.redis_capture import capture_stream, parse_bound
    from cdc_verify.pipeline.redis.connection import client_options

    settings = _settings(config, **kwargs)
    try:
        bounds = parse_bound(start, end=False), parse_bound(end, end=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    with ExitStack() as stack:
        url = _redis_url(settings, stack)
        client = redis.Redis.from_url(url, **client_options(settings))
        stack.callback(client.close)
        bar = stack.enter_context(_progress(progress))
        task = bar.add_task(f"capturing {stream}", total=None)
        count = capture_stream(
            client, stream, out, *bounds, source=url,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    click.echo(f"captured {count:,} entries of {stream} into {out} ({out.stat().st_size:,} bytes)")


@main.command()
@click.option(
    "--production",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="capture file of the production stream",
)
@click.option(
    "--sister",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="capture file of the sister stream",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="directory for verdicts.jsonl and summary.json",
)
@verify_options
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a TTY)")
def replay(production: Path, sister: Path, out: Path, config: Path | None,
           progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Verify two capture files, on event time, with the same verdicts as backfill."""
    from cdc_verify.capture.format import CaptureError
    from cdc_verify.pipeline.runners.replay import run_replay
    from cdc_verify.report import print_summary

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    with _progress(progress) as bar:
        task = bar.add_task("replaying", total=None)
        try:
            summary = run_replay(settings, consumer, production, sister, out,
                                 on_progress=lambda n: bar.advance(task, n))  # fmt: skip
        except CaptureError as exc:
            raise click.ClickException(str(exc)) from exc
    print_summary(summary, out)


@main.command()
@redis_options
@click.option("--group", help="consumer group of the worker (default cdc-verify)")
@click.option("--since", default=None, help="only alerts opened in this window, e.g. 10m, 2h, 1d")
@click.option(
    "--side",
    type=click.Choice(["production", "sister"]),
    help="only events missing on this side (sister: missing_in_sister)",
)
@click.option("--entity-id", help="only alerts about this entity (e.g. t1_abc)")
@click.option("--resolved", is_flag=True, help="alerts resolved by a late arrival instead")
@click.option(
    "--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
    help="at most this many alerts (oldest first)",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False))
def alerts(group: str | None, since: str | None, side: str | None, entity_id: str | None,
           resolved: bool, limit: int, as_json: bool, config: Path | None,
           **kwargs: Any) -> None:  # fmt: skip
    """Missing-event alerts: gaps not (or, with --resolved, since) resolved by a late arrival.

    The same query as GET /api/alerts of a running worker, straight from Redis.
    """
    from cdc_verify.pipeline.redis.alerts import (
        AlertFilter,
        AlertState,
        query_alerts,
        window_start_ms,
    )
    from cdc_verify.report import parse_window, print_alerts
    from cdc_verify.schemas.verdicts import Side

    settings = _settings(config, group=group, **kwargs)
    if not settings.redis_url:
        raise click.UsageError("alerts needs --redis (or CDC_VERIFY_REDIS_URL)")
    try:
        window = parse_window(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    where = AlertFilter(
        None if window is None else window_start_ms(window),
        Side(side) if side else None,
        entity_id,
    )
    state = AlertState.RESOLVED if resolved else AlertState.OPEN
    found, more = asyncio.run(query_alerts(settings, state, where, limit))
    print_alerts(found, as_json, state.value, more)


if __name__ == "__main__":
    main()
