"""`run`, the long-lived worker, and `check`, which tries its servers first."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from cdc_verify.cli.command import Command, Topic
from cdc_verify.cli.options import (
    DURATION,
    URL_FORMS,
    command_settings,
    common_options,
    config_option,
    group_option,
    read_only_option,
    redis_options,
    setting,
    setting_values,
    stream_options,
)
from cdc_verify.cli.runtime import load_consumer, setup_logging
from cdc_verify.config.roles import (
    no_server_given,
    require_every_server,
    require_faust_topology,
    run_default_url,
)
from cdc_verify.config.servers import RedisServer, Role, read_only_conflict
from cdc_verify.config.settings import Settings
from cdc_verify.embedded_redis import EmbeddedRedis, EmbeddedRedisError

log = logging.getLogger("cdc_verify")

HTTP, LIMITS, RETENTION = Topic.HTTP, Topic.HTTP_LIMITS, Topic.RETENTION
GROUP, RECORDS, ENGINE, READING = Topic.GROUP, Topic.RECORDS, Topic.ENGINE, Topic.READING


@click.command(cls=Command)
@common_options(f"Redis URL of the streams and the worker's state, for every role without a "
                f"server of its own: {URL_FORMS}; no server given at all: an embedded Redis "
                "for this run")  # fmt: skip
@group_option("consumer group on both streams")
@setting("--consumer-name", topic=GROUP, help="this worker's name in the group")
@setting("--start-id", topic=GROUP,
         help="where a new group starts: $ (new entries), 0, or an entry id")  # fmt: skip
@setting("--verdict-stream", topic=RECORDS, help="stream of verdict records")
@setting("--verdict-stream-maxlen", type=int, topic=RETENTION,
         help="approximate trim length, 0 = never")  # fmt: skip
@setting("--compact-matches", is_flag=True, default=None, topic=RETENTION,
         help="one verdict-stream entry per commit for its matches (event_ids, count), "
              "instead of one entry each: a sixth of the memory")  # fmt: skip
@setting("--decided-retention", type=DURATION, topic=RETENTION,
         help="how long a verdict is remembered to spot duplicates and late arrivals")  # fmt: skip
@setting("--jsonl", type=click.Path(path_type=Path, dir_okay=False), topic=RECORDS,
         help="also append verdict records to this file")  # fmt: skip
@setting("--alert-retention", type=DURATION, topic=RETENTION, help="how long an alert is kept")
@setting("--verdict-retention", type=DURATION, topic=RETENTION,
         help="how long a record stays in the verdict stream")  # fmt: skip
@setting("--http-port", type=int, topic=HTTP,
         help="port of the API, status page, /metrics, /healthz, /readyz; 0 = off")  # fmt: skip
@setting("--http-host", topic=HTTP, help="address the HTTP server binds to")
@setting("--http-allowed-hosts", topic=LIMITS, help="comma-separated Host names served besides "
         "IP addresses, loopback names and --http-host (DNS rebinding); * for any")  # fmt: skip
@setting("--http-max-connections", type=int, topic=LIMITS,
         help="open HTTP connections; past it the oldest idle one is closed")  # fmt: skip
@setting("--http-request-timeout", type=DURATION, topic=LIMITS,
         help="how long a client has to send a whole request, headers and body")  # fmt: skip
@setting("--http-max-requests", type=int, topic=LIMITS,
         help="API requests (/api, /metrics) answered at once; 503 past it")  # fmt: skip
@setting("--http-max-answer-bytes", topic=LIMITS, help="largest HTTP answer (16MiB); 413 past it")
@setting("--http-answer-timeout", type=DURATION, topic=LIMITS,
         help="how long a client has to take an answer; disconnected past it")  # fmt: skip
@setting("--ready-max-lag", type=DURATION, topic=LIMITS, help="consumer lag that fails /readyz")
@setting("--engine", type=click.Choice(["single", "faust"]), topic=ENGINE,
         help="single: one process; faust: one of many Faust workers on Kafka, which needs "
         "the Faust extra (pip install -e '.[faust]' in the checkout)")  # fmt: skip
@setting("--kafka", "kafka_url", topic=ENGINE,
         help="Kafka bootstrap server for --engine faust, e.g. kafka://host:9092")  # fmt: skip
@setting("--partitions", "kafka_partitions", type=click.IntRange(1, 1024), topic=ENGINE,
         help="partitions of the entries topic of --engine faust, fixed once created")  # fmt: skip
@setting("--batch-size", type=int, topic=READING, help="entries per XREADGROUP per stream")
@setting("--read-max-bytes", topic=READING,
         help="about the most bytes one read takes, both streams (64MiB, 1GB)")  # fmt: skip
@setting("--waiting-max-bytes", topic=READING, help="memory for big (64 KiB+) waiting entries; "
         "past it they are spilled to files until their partner comes; 0: no cap")  # fmt: skip
@setting("--spill-dir", type=click.Path(path_type=Path, file_okay=False), topic=READING,
         help="where spill files go (a private directory is made in it)")  # fmt: skip
@setting("--block-ms", type=int, topic=READING, help="XREADGROUP BLOCK when idle")
@setting("--read-linger-ms", type=int, topic=READING,
         help="when caught up, read at most once per this many ms (0: at once)")  # fmt: skip
@setting("--lock-ttl", type=DURATION, topic=READING,
         help="how long a dead worker's lock outlives it")  # fmt: skip
@setting("--create-streams", is_flag=True, default=None, topic=GROUP,
         help="create missing streams instead of waiting for them to appear")  # fmt: skip
def run(config: Path | None, **kwargs: Any) -> None:
    """Long-lived worker: verify both streams as they are written.

    Serves the HTTP API, status page and /metrics on --http-host:--http-port.
    With --engine faust, runs as one of any number of Faust workers on Kafka
    (serving /metrics only); see docs/architecture.md, "The Faust engine".
    """
    from cdc_verify.api.guard import HttpExposureError
    from cdc_verify.api.service import WorkerService
    from cdc_verify.pipeline.runners.failure import WorkerFailed
    from cdc_verify.pipeline.runners.worker import StreamWorker

    settings = command_settings(config, **setting_values(kwargs))
    setup_logging(settings)
    consumer = load_consumer(settings)
    if settings.engine == "faust":
        # A usage error, whether Faust is installed or not.
        require_faust_topology(settings, lambda: _names_a_cluster(settings.server(Role.STATE)))
        _require_faust()
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
        url = _run_redis_url(settings, stack)
        # Before any connection: a read-only production must not get the state's writes.
        conflict = read_only_conflict(settings.model_copy(update={"redis_url": url}))
        if conflict:
            raise click.UsageError(conflict)
        worker = StreamWorker(settings, consumer, redis_url=url)
        service = WorkerService(worker)
        if settings.http_port:
            try:
                base = service.bind_http()
            except HttpExposureError as exc:
                raise click.UsageError(str(exc)) from exc
            except OSError as exc:
                raise click.ClickException(
                    f"cannot serve HTTP on {settings.http_host}:{settings.http_port}: {exc}"
                ) from exc
            log.info("status page %s/ · API %s/docs · metrics %s/metrics", base, base, base)
        servers = worker.servers
        read_only = " (read-only)" if settings.production_read_only else ""
        log.info(
            "verifying %s on %s against %s on %s%s; state on %s (group %s, grace %.1fs)",
            settings.sister, servers[Role.SISTER].redacted_url(),
            settings.production, servers[Role.PRODUCTION].redacted_url(), read_only,
            servers[Role.STATE].redacted_url(), settings.group, settings.grace,
        )  # fmt: skip
        try:
            asyncio.run(service.run_until_signal())
        except WorkerFailed as exc:
            # Logged at CRITICAL with its cause already: exit 1 without a second traceback.
            raise click.ClickException(f"the worker stopped: {exc}") from exc


def _run_redis_url(settings: Settings, stack: ExitStack) -> str | None:
    """The server the roles of `run` default to (config.roles); an embedded Redis for this
    run when no server is given at all."""
    if not no_server_given(settings):
        return run_default_url(settings)
    try:
        embedded = stack.enter_context(EmbeddedRedis())
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"no --redis given: started an embedded Redis at {embedded.url}", err=True)
    return embedded.url


def _names_a_cluster(server: RedisServer) -> bool:
    """Asks the server; one that cannot be reached now is left for the engine to wait for."""
    import redis

    from cdc_verify.pipeline.redis.connection import connect_sync, is_cluster

    try:
        client = connect_sync(server)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    with client:
        return is_cluster(client)


def _require_faust() -> None:
    # Faust is an extra: say how to install it rather than fail on an import.
    if importlib.util.find_spec("faust") is None:
        raise click.ClickException(
            "--engine faust needs Faust, which is not installed: from the cdc-verify checkout, "
            "pip install -e '.[faust]'"
        )


@click.command(cls=Command)
@redis_options(f"Redis URL of every role without a server of its own: {URL_FORMS}", tuple(Role))
@read_only_option
@stream_options
@group_option()
@config_option("the redis_* settings, the stream keys, group and key_prefix")
def check(config: Path | None, **kwargs: Any) -> None:
    """Connect to every server of `run` as its user: reachable? streams and group? which
    needed commands does the ACL refuse, and the ACL line to use. Exit 0 all fine, else 1."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cdc_verify.pipeline.redis.acl import check_servers

    settings = command_settings(config, **kwargs)
    require_every_server(settings)
    reports = asyncio.run(check_servers(settings))
    table = Table("roles", "server (user)", "reachable", "streams and group", "ACL refuses",
                  "fix", show_lines=True)  # fmt: skip
    for r in reports:
        user = r.use.server.username or "default"
        table.add_row(*(escape(text) for text in (
            " + ".join(r.use.roles), f"{r.use.server.redacted_url()} ({user})", r.reachable,
            "\n".join(r.streams) or "-", r.refused or "nothing", r.fix or "-",
        )))  # fmt: skip
    Console(width=200).print(table)
    ok = all(r.ok for r in reports)
    click.echo("all servers fine" if ok else "not fine: see the fix column")
    sys.exit(0 if ok else 1)
