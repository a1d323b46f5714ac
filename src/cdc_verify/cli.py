"""The `cdc-verify` command line (docs/commands.md describes every command and flag)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from pydantic import ByteSize, ValidationError

from cdc_verify.config.servers import RedisServer, Role, read_only_conflict
from cdc_verify.config.settings import (
    ConfigFileError,
    InvalidSettings,
    Settings,
    env_var,
    load_settings,
)
from cdc_verify.consumers.loader import ConsumerLoadError, load_consumers
from cdc_verify.core.coverage import STATUSES
from cdc_verify.durations import parse_duration
from cdc_verify.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from cdc_verify.escaping import json_visible, terminal_markup
from cdc_verify.logs import configure_logging
from cdc_verify.pipeline.reports.files import REPORT_FILES

log = logging.getLogger("cdc_verify")


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _settings(config: Path | None, **flags: Any) -> Settings:
    try:
        return load_settings(config, **flags)
    except InvalidSettings as exc:
        names = _setting_flags()
        lines = [p.describe(names.get(p.field)) for p in exc.problems]
        raise click.UsageError("\n".join(lines)) from exc
    except (ValidationError, ConfigFileError) as exc:
        raise click.UsageError(str(exc)) from exc


def _setting_flags() -> dict[str, str]:
    """Settings field -> the flag of the running command that sets it (redis_url: --redis)."""
    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx else []
    return {p.name: p.opts[0] for p in params if isinstance(p, SettingOption) and p.name}


def _consumer(settings: Settings) -> Callable[..., Any]:
    try:
        return load_consumers(settings.consumer)
    except ConsumerLoadError as exc:
        raise click.UsageError(str(exc)) from exc


def _run_redis_url(settings: Settings, stack: ExitStack) -> str | None:
    """The server the roles of `run` default to: --redis; else an embedded Redis for this
    run when no server is given at all; None when every role has its own."""
    if settings.redis_url:
        return settings.redis_url
    unset = [role for role in Role if not settings.server(role).url]
    if not unset:
        return None
    if len(unset) < len(Role):
        names = " and ".join(role.value for role in unset)
        # The state server defaults to the sister's: one flag gives both.
        flags = [role for role in unset if not (role is Role.STATE and Role.SISTER in unset)]
        own = " and ".join(f"--{role.value}-redis URL" for role in flags)
        if Role.STATE in unset and Role.STATE not in flags:
            own += " (the state server defaults to it)"
        raise click.UsageError(
            f"no Redis URL for the {names} server{'s' if len(unset) > 1 else ''}: give "
            f"{own}, or --redis URL for every role without a server of its own (an "
            "embedded Redis is started only when no server is given at all)"
        )
    try:
        embedded = stack.enter_context(EmbeddedRedis())
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"no --redis given: started an embedded Redis at {embedded.url}", err=True)
    return embedded.url


def _given_redis(settings: Settings, command: str, *roles: Role) -> list[RedisServer]:
    """backfill and capture read streams that exist already: a fresh embedded Redis has none."""
    servers = [settings.server(role) for role in roles]
    unset = [server.role.value for server in servers if not server.url]
    if unset:
        streams = " and ".join(unset)
        own = " and ".join(f"--{role}-redis URL" for role in unset)
        raise click.UsageError(
            f"{command} reads streams that already exist, and a fresh embedded Redis has "
            f"nothing to read: no server for the {streams} stream; give --redis URL (or "
            f"{env_var('redis_url')}) or {own}"
        )
    return servers


def _require_streams(checks: list[tuple[RedisServer, list[str]]]) -> None:
    """Name each key that holds no stream, on its server, rather than report "0 events"."""
    from cdc_verify.pipeline.redis.ranges import missing_streams

    lines = []
    for server, keys in checks:
        url = server.redacted_url()
        with _client(server) as client:
            lines += [
                f"stream {key!r} does not exist on {url}"
                if kind == "none"
                else f"{key!r} on {url} is a {kind}, not a stream"
                for key, kind in missing_streams(client, keys).items()
            ]
    if lines:
        raise click.ClickException("\n".join(lines))


def _faust_topology(settings: Settings) -> None:
    """The Faust engine keeps both streams and its state on one server, read via the group."""
    if settings.production_read_only:
        raise click.UsageError(
            "--engine faust cannot read production read-only: its forwarders share the "
            "streams through a consumer group (XREADGROUP, XACK), which a read-only ACL user "
            "may not run; use the single engine (the default) for --production-read-only"
        )
    apart = [role.value for role in Role if getattr(settings, f"{role.value}_redis_url")]
    if apart:
        raise click.UsageError(
            "--engine faust keeps both streams and its state on one Redis (--redis); "
            f"--{apart[0]}-redis is for the single engine (the default)"
        )
    if settings.redis_url and _names_a_cluster(settings.server(Role.STATE)):
        raise click.UsageError(
            "--engine faust runs on one plain Redis server, and --redis names a node of a "
            "Redis Cluster; use the single engine (the default) on a Cluster"
        )


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


def _shown_default(name: str) -> str:
    """`default: 5.0; env CDC_VERIFY_GRACE`, from the Settings field itself."""
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    shown = "none" if value in (None, []) else str(value)
    if isinstance(value, ByteSize):
        shown = value.human_readable(separator=" ")
    return f"default: {shown}; env {env_var(name)}"


class SettingOption(click.Option):
    """A flag that sets the Settings field of its name.

    It defaults to None, so that the environment and the config file can fill it; its
    help shows the Settings default and the variable instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.name in Settings.model_fields, f"no setting {self.name}"
        what = self.help or Settings.model_fields[self.name].description
        self.help = f"{what} ({_shown_default(self.name)})"


class Duration(click.ParamType):
    """A duration, as seconds, in the one syntax of cdc_verify.durations: 90, 30s, 10m,
    2h, 7d; between `low` and `high` seconds when given."""

    name = "duration"

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if self.low is not None and seconds < self.low:
            self.fail(f"{value!r} is less than {self.low:g} s", param, ctx)
        if self.high is not None and seconds > self.high:
            self.fail(f"{value!r} is more than {self.high:g} s", param, ctx)
        return seconds


DURATION = Duration()


def setting(*decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(*decls, cls=SettingOption, **kwargs)


def config_option(uses: str = "any setting") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"TOML config file; this command reads {uses} from it "
        "(default: none; env CDC_VERIFY_CONFIG)",
    )


def progress_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--progress/--no-progress", default=None, help="progress bar (default: on a TTY)"
    )


URL_FORMS = "redis://HOST:PORT, rediss:// (TLS) or unix:///path"
REPORT_HELP = "directory to write " + ", ".join(REPORT_FILES) + " into (created if missing)"


def _apply(options: list[Callable[..., Any]], fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


ROLE_URL_HELP = {
    Role.PRODUCTION: "server of the production stream; unset: the --redis one",
    Role.SISTER: "server of the sister stream; unset: the --redis one",
    Role.STATE: "server of the worker's state (verdicts, alerts, decisions, read positions); "
    "unset: the sister server",
}


def server_options(
    role: Role | None, url_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """How to reach one server: URL, ACL user, password file and TLS files.

    `role` None gives the plain --redis flags, which every role's unset ones default to;
    a role gives --production-redis, --production-redis-username, ... A password is never
    a flag (it would show in ps): it comes from the environment or a file.
    """
    flag = "--redis" if role is None else f"--{role.value}-redis"
    field = "redis" if role is None else f"{role.value}_redis"
    server = "the server" if role is None else f"the {role.value} server"
    on = "" if role is None else f" on {server}"
    password = env_var(f"{field}_password")
    return lambda fn: _apply([
        setting(flag, f"{field}_url", help=url_help),
        setting(f"{flag}-username", help=f"ACL user{on}, over the URL's; its password comes "
                f"from {password}, {flag}-password-file or the URL"),
        setting(f"{flag}-password-file", type=click.Path(path_type=Path, dir_okay=False),
                help=f"file holding the AUTH password{on}, read at start ({password} wins "
                     "over it; a password is never a flag, which ps would show)"),
        setting(f"{flag}-tls-ca-file", type=click.Path(path_type=Path),
                help=f"CA certificates that verify {server}, for rediss://"),
        setting(f"{flag}-tls-cert-file", type=click.Path(path_type=Path),
                help=f"client certificate for mutual TLS with {server} over rediss://"),
        setting(f"{flag}-tls-key-file", type=click.Path(path_type=Path),
                help=f"client key for mutual TLS with {server} over rediss://"),
    ], fn)  # fmt: skip


UNUSED_STATE_HELP = (
    "the worker's state server: not used here, this command writes nothing (taken so that "
    "run's flags and settings serve it too)"
)


def redis_options(
    url_help: str, roles: tuple[Role, ...] = (), state_help: str = ROLE_URL_HELP[Role.STATE]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """How to reach Redis (`url_help` says what this command does with --redis), and the
    flags of each of `roles` with a server of its own (docs/topology.md)."""
    helps = {**ROLE_URL_HELP, Role.STATE: state_help}
    per_role = [server_options(role, helps[role]) for role in roles]
    return lambda fn: _apply([server_options(None, url_help), *per_role], fn)


def read_only_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return setting(
        "--production-read-only", is_flag=True, default=None,
        help="send the production server read commands only (XREAD, XRANGE, XINFO, ...), so "
        "that an ACL user limited to -@all +@read +@connection +ping +time works; read "
        "positions are kept on the state server",
    )(fn)  # fmt: skip


def stream_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The two stream keys."""
    return _apply([
        setting("--production", help="production stream key"),
        setting("--sister", help="sister stream key"),
    ], fn)  # fmt: skip


def verify_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How events are joined, decoded and compared; where settings come from."""
    return _apply([
        setting("--grace", type=DURATION, help="how long a partner may lag before it is a gap"),
        setting("--consumer", multiple=True,
                help="legacy consumer: module:callable for every entity, or "
                     "ENTITY=module:callable for one; repeatable"),
        setting("--scope", help="production events the sister must deliver: all, sample:PCT "
                "(sticky, by --scope-key), field:NAME=VALUE or sister"),
        setting("--scope-key", type=click.Choice(["entity_id", "event_id"]),
                help="field sample:PCT hashes (crc32 of its UTF-8 bytes)"),
        setting("--ignore-path", "ignore_paths", multiple=True,
                help="JSON pointer not compared, e.g. /edited or /awards/*/count; repeatable, "
                     "* = any segment, comma separated in the environment"),
        setting("--float-tolerance", type=float, help="absolute tolerance for floats"),
        setting("--decode-each-side", is_flag=True, default=None,
                help="decode both entries of a pair even when their fields are "
                     "byte-identical (default: once, for a deterministic consumer)"),
        config_option(),
        setting("--log-level", help="DEBUG, INFO, WARNING or ERROR"),
        setting("--log-format", type=click.Choice(["text", "json"]),
                help="text, or json: one object a line, event_id as a field"),
    ], fn)  # fmt: skip


def common_options(
    url_help: str, state_help: str = ROLE_URL_HELP[Role.STATE]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Flags of the commands that verify both streams in Redis."""
    return lambda fn: redis_options(url_help, tuple(Role), state_help)(
        read_only_option(stream_options(verify_options(fn)))
    )


def _flags(kwargs: dict[str, Any]) -> dict[str, Any]:
    flags = dict(kwargs)
    for multiple in ("ignore_paths", "consumer"):
        flags[multiple] = list(flags.get(multiple) or ()) or None
    return flags


class RedisErrorsAsMessages(click.Group):
    """Redis errors reach the user as one clear line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import redis

        from cdc_verify.pipeline.redis.errors import AclRefused, ServerRefused

        try:
            return super().invoke(ctx)
        except (ServerRefused, AclRefused) as exc:  # they name the server and the fix
            raise click.ClickException(str(exc)) from exc
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
@click.option(
    "--events",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="changes to generate (comments and accounts), each written to both streams, with "
    "faults injected",
)
@click.option(
    "--rate",
    type=click.FloatRange(10, 100_000),
    default=2_000,
    show_default=True,
    help="events per second written to each stream",
)
@click.option(
    "--grace",
    type=Duration(0.2, 60),
    default=2.0,
    show_default=True,
    help="seconds a partner may lag before it is a gap (late deliveries are injected past it)",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="seed of the generated changes and faults: the same seed, the same run",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="serve the status page, API and /metrics on 127.0.0.1:PORT (0: off)",
)
@click.option(
    "--linger",
    type=Duration(0, 86_400),
    default=0,
    show_default=True,
    help="seconds to keep the worker and status page up after the run (Ctrl-C ends it)",
)
def demo(events: int, rate: float, grace: float, seed: int, http_port: int, linger: float) -> None:
    """Two embedded Redis servers + simulated streams with every fault + live report.

    Ctrl-C (or SIGTERM, SIGHUP) during --linger ends it and shows the summary; during
    the run it stops the run. The last line says PASS or FAIL."""
    from cdc_verify.demo import run_demo

    configure_logging("WARNING")
    sys.exit(run_demo(events=events, rate=rate, grace=grace, seed=seed, http_port=http_port,
                      linger=linger))  # fmt: skip


@main.command()
@common_options(f"Redis URL of the streams and the worker's state, for every role without a "
                f"server of its own: {URL_FORMS}; no server given at all: an embedded Redis "
                "for this run")  # fmt: skip
@setting("--group", help="consumer group on both streams")
@setting("--consumer-name", help="this worker's name in the group")
@setting("--start-id", help="where a new group starts: $ (new entries), 0, or an entry id")
@setting("--verdict-stream", help="stream of verdict records")
@setting("--verdict-stream-maxlen", type=int, help="approximate trim length, 0 = never")
@setting("--compact-matches", is_flag=True, default=None,
         help="one verdict-stream entry per commit for its matches (event_ids, count), "
              "instead of one entry each: a sixth of the memory")  # fmt: skip
@setting(
    "--decided-retention",
    type=DURATION,
    help="how long a verdict is remembered to spot duplicates and late arrivals",
)
@setting(
    "--jsonl",
    type=click.Path(path_type=Path, dir_okay=False),
    help="also append verdict records to this file",
)
@setting("--alert-retention", type=DURATION, help="how long an alert is kept")
@setting("--verdict-retention", type=DURATION,
         help="how long a record stays in the verdict stream")  # fmt: skip
@setting(
    "--http-port",
    type=int,
    help="port of the API, status page, /metrics, /healthz, /readyz; 0 = off",
)
@setting("--http-host", help="address the HTTP server binds to")
@setting("--http-allowed-hosts", help="comma-separated Host names served besides IP "
         "addresses, loopback names and --http-host (DNS rebinding); * for any")  # fmt: skip
@setting("--http-max-connections", type=int,
         help="open HTTP connections; past it the oldest idle one is closed")  # fmt: skip
@setting("--http-request-timeout", type=DURATION,
         help="how long a client has to send a whole request, headers and body")  # fmt: skip
@setting("--http-max-requests", type=int,
         help="API requests (/api, /metrics) answered at once; 503 past it")  # fmt: skip
@setting("--http-max-answer-bytes", help="largest HTTP answer (16MiB); 413 past it")
@setting("--http-answer-timeout", type=DURATION,
         help="how long a client has to take an answer; disconnected past it")  # fmt: skip
@setting("--ready-max-lag", type=DURATION, help="consumer lag that fails /readyz")
@setting(
    "--engine",
    type=click.Choice(["single", "faust"]),
    help="single: one process; faust: one of many Faust workers on Kafka, which needs "
    "the Faust extra (pip install -e '.[faust]' in the checkout)",
)
@setting(
    "--kafka", "kafka_url", help="Kafka bootstrap server for --engine faust, e.g. kafka://host:9092"
)
@setting(
    "--partitions",
    "kafka_partitions",
    type=click.IntRange(1, 1024),
    help="partitions of the entries topic of --engine faust, fixed once created",
)
@setting("--batch-size", type=int, help="entries per XREADGROUP per stream")
@setting("--read-max-bytes", help="about the most bytes one read takes, both streams (64MiB, 1GB)")
@setting("--waiting-max-bytes", help="memory for big (64 KiB+) waiting entries; past it "
         "they are spilled to files until their partner comes; 0: no cap")  # fmt: skip
@setting("--spill-dir", type=click.Path(path_type=Path, file_okay=False),
         help="where spill files go (a private directory is made in it)")  # fmt: skip
@setting("--block-ms", type=int, help="XREADGROUP BLOCK when idle")
@setting("--lock-ttl", type=DURATION, help="how long a dead worker's lock outlives it")
@setting("--create-streams", is_flag=True, default=None,
         help="create missing streams instead of waiting for them to appear")  # fmt: skip
def run(config: Path | None, **kwargs: Any) -> None:
    """Long-lived worker: verify both streams as they are written.

    Serves the HTTP API, status page and /metrics on --http-host:--http-port.
    With --engine faust, runs as one of any number of Faust workers on Kafka
    (serving /metrics only); see README: scaling out.
    """
    from cdc_verify.api.guard import HttpExposureError
    from cdc_verify.api.service import WorkerService
    from cdc_verify.pipeline.runners.worker import CommitFailed, StreamWorker

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    if settings.engine == "faust":
        _faust_topology(settings)  # a usage error, whether Faust is installed or not
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
        except CommitFailed as exc:
            # Logged at CRITICAL with its cause already: exit 1 without a second traceback.
            raise click.ClickException(f"the worker stopped: {exc}") from exc


@main.command()
@common_options(
    f"Redis URL of the two streams, unless each has its own server: {URL_FORMS}",
    UNUSED_STATE_HELP,
)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), required=True, help=REPORT_HELP
)
@progress_option()
def backfill(config: Path | None, out: Path, progress: bool | None, **kwargs: Any) -> None:
    """Bounded check of what both streams hold now (read-only, no consumer group)."""
    from cdc_verify.pipeline.runners.backfill import run_backfill
    from cdc_verify.terminal import print_summary

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    servers = _given_redis(settings, "backfill", Role.PRODUCTION, Role.SISTER)
    _require_streams([(servers[0], [settings.production]), (servers[1], [settings.sister])])
    with _progress(progress) as bar:
        task = bar.add_task("verifying", total=None)
        summary = run_backfill(
            settings, consumer, out,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    print_summary(summary, out, settings.grace)


def _client(server: RedisServer) -> Any:
    """A synchronous client (a context manager that closes it)."""
    from cdc_verify.pipeline.redis.connection import connect_sync

    return connect_sync(server)


def _progress(show: bool | None) -> Any:
    from rich.progress import Progress

    return Progress(disable=not (sys.stderr.isatty() if show is None else show), transient=True)


@main.command()
@redis_options(
    f"Redis URL of the stream, unless --side's role has a server of its own: {URL_FORMS}",
    tuple(Role),
    UNUSED_STATE_HELP,
)
@click.option("--stream", required=True, help="stream key to capture")
@click.option(
    "--side",
    type=click.Choice([Role.PRODUCTION.value, Role.SISTER.value]),
    help="whose server to read the stream from (default: production; sister when only "
    "--sister-redis is given)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="capture file to write (its directory must exist)",
)
@click.option(
    "--from",
    "start",
    help="first entry: an entry id, epoch ms or ISO 8601 time (default: the first entry)",
)
@click.option(
    "--to",
    "end",
    help="last entry: an entry id, epoch ms or ISO 8601 time "
    "(default: the last entry when the capture starts)",
)
@config_option("the redis_* settings")
@progress_option()
def capture(stream: str, side: str | None, out: Path, start: str | None, end: str | None,
            config: Path | None, progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Capture one stream, byte-exact, to a compressed file (see README: capture files)."""
    from cdc_verify.pipeline.capture.format import CaptureError
    from cdc_verify.pipeline.capture.redis_capture import capture_stream, parse_bound

    settings = _settings(config, **kwargs)
    try:
        bounds = parse_bound(start, end=False), parse_bound(end, end=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if not out.parent.is_dir():
        raise click.BadParameter(f"directory {out.parent} does not exist", param_hint="--out")
    [server] = _given_redis(settings, "capture", _capture_role(settings, side))
    with ExitStack() as stack:
        _require_streams([(server, [stream])])
        client = stack.enter_context(_client(server))
        bar = stack.enter_context(_progress(progress))
        task = bar.add_task(f"capturing {terminal_markup(stream)}", total=None)
        try:
            count = capture_stream(
                client, stream, out, *bounds, source=server.url or "",
                on_start=lambda total: bar.update(task, total=total),
                on_progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
        except CaptureError as exc:  # an entry past the format's block bound
            raise click.ClickException(str(exc)) from exc
    click.echo(f"captured {count:,} entries of {stream} on {server.redacted_url()} into {out} "
               f"({out.stat().st_size:,} bytes)")  # fmt: skip


def _capture_role(settings: Settings, side: str | None) -> Role:
    """--side, else production; sister when the sister server is the only one given."""
    if side:
        return Role(side)
    only_sister = settings.sister_redis_url and not (
        settings.production_redis_url or settings.redis_url
    )
    return Role.SISTER if only_sister else Role.PRODUCTION


def capture_file_option(
    flag: str, help_text: str, required: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A capture file to read (replay, cases)."""
    return click.option(
        flag, type=click.Path(path_type=Path, dir_okay=False, exists=True), required=required,
        help=help_text,
    )  # fmt: skip


@main.command()
@capture_file_option("--production", "capture file of the production stream")
@capture_file_option("--sister", "capture file of the sister stream")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), required=True, help=REPORT_HELP
)
@verify_options
@progress_option()
def replay(production: Path, sister: Path, out: Path, config: Path | None,
           progress: bool | None, **kwargs: Any) -> None:  # fmt: skip
    """Verify two capture files, on event time, with the same verdicts as backfill."""
    from cdc_verify.pipeline.capture.format import CaptureError
    from cdc_verify.pipeline.runners.replay import run_replay
    from cdc_verify.terminal import print_summary

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
    print_summary(summary, out, settings.grace)


@main.command()
@redis_options(
    "the Redis the worker writes its alerts to (its state server), unless --state-redis "
    f"names it: {URL_FORMS}",
    (Role.STATE,),
)
@setting("--group", help="consumer group of the worker")
@click.option(
    "--since",
    type=Duration(0),
    help="only alerts opened in this window, e.g. 10m, 2h, 1d (default: all)",
)
@click.option(
    "--side",
    type=click.Choice(["production", "sister"]),
    help="only events missing on this side (sister: missing_in_sister; default: both)",
)
@click.option("--entity-id", help="only alerts about this entity, e.g. t1_abc (default: all)")
@click.option("--resolved", is_flag=True, help="alerts resolved by a late arrival instead")
@click.option(
    "--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
    help="at most this many alerts (oldest first)",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@config_option("the redis_* settings and group")
def alerts(group: str | None, since: float | None, side: str | None, entity_id: str | None,
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
    from cdc_verify.pipeline.redis.presence import NoState
    from cdc_verify.schemas.verdicts import Side
    from cdc_verify.terminal import print_alerts

    settings = _settings(config, group=group, **kwargs)
    if not settings.server(Role.STATE).url:
        raise click.UsageError(
            "alerts reads the worker's state server: give --state-redis URL or --redis URL "
            f"(or {env_var('state_redis_url')}, {env_var('redis_url')})"
        )
    where = AlertFilter(
        None if since is None else window_start_ms(timedelta(seconds=since)),
        Side(side) if side else None,
        entity_id,
    )
    state = AlertState.RESOLVED if resolved else AlertState.OPEN
    try:
        found, more = asyncio.run(query_alerts(settings, state, where, limit))
    except NoState as exc:  # the wrong server or group: not "no alerts"
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    print_alerts(found, as_json, state.value, more)


class _Rate(click.ParamType):
    """--max-mismatch-rate 0.001 or 0.1%."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from cdc_verify.gate.criteria import parse_rate

        if isinstance(value, float):
            return value
        try:
            return parse_rate(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _gate_ops() -> list[str]:
    from cdc_verify.gate.criteria import OP_VALUES

    return list(OP_VALUES)


def _entity(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    import re

    from cdc_verify.gate.criteria import ENTITY_PATTERN

    if value is not None and not re.match(ENTITY_PATTERN, value):
        raise click.BadParameter(f"{value!r} is not an entity name like comment or account")
    return value


@main.command()
@redis_options(
    "the Redis the worker keeps its counters on (its state server), unless --state-redis "
    f"names it: {URL_FORMS}",
    (Role.STATE,),
)
@setting("--group", help="consumer group of the worker")
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="gate the output directory of a backfill or replay instead of the live counters",
)
@setting(
    "--since",
    "gate_since",
    type=DURATION,
    help="the window of live counters to gate, e.g. 10m, 2h, 1d; not with --report",
)
@setting(
    "--max-mismatch-rate",
    "gate_max_mismatch_rate",
    type=_Rate(),
    help="largest share of events with a mismatch verdict: 0.001 or 0.1%",
)
@setting("--max-undecodable", "gate_max_undecodable", type=int, help="most undecodable verdicts")
@setting(
    "--max-gaps",
    "gate_max_gaps",
    type=int,
    help="most gaps (missing_in_sister + missing_in_production)",
)
@setting(
    "--min-events",
    "gate_min_events",
    type=int,
    help="fewest events (primary verdicts) to decide on; fewer: cannot decide (exit 2)",
)
@click.option(
    "--min-coverage",
    type=_Rate(),
    help="fewest verified shapes of all production sent (docs/coverage.md): 0.9 or 90%; "
    "live, counted since the worker's state began, not over --since; default: not judged",
)
@click.option("--entity", callback=_entity, help="gate this entity only, e.g. comment")
@click.option("--op", type=click.Choice(_gate_ops()), help="gate this op (write endpoint) only")
@click.option("--json", "as_json", is_flag=True, help="print the answer as a JSON object")
@config_option("the redis_* settings, group, key_prefix and the gate_* settings")  # fmt: skip
def gate(report: Path | None, min_coverage: float | None, entity: str | None, op: str | None,
         as_json: bool, config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """Go / no-go: may the new service take more traffic? Exit 0 go, 1 no-go, 2 cannot decide.

    Measures the live worker's durable counters over --since (or a report directory)
    against each criterion; see docs/rollouts.md.
    """
    from cdc_verify.gate.criteria import (
        CannotMeasure,
        Criteria,
        Endpoint,
        Measurement,
        cannot_measure,
        judge,
    )
    from cdc_verify.gate.live import measure_server, redis_source, window_problem
    from cdc_verify.gate.render import print_json, print_table
    from cdc_verify.gate.report_dir import measure_report, report_source
    from cdc_verify.pipeline.redis.counters import Window

    if report is not None:
        given = [f for f in ("redis_url", "state_redis_url", "gate_since") if kwargs[f] is not None]
        if given:
            flag = {"redis_url": "--redis", "state_redis_url": "--state-redis"}.get(given[0])
            raise click.UsageError(
                f"--report gates a report directory; {flag or '--since'} is for the live "
                "counters: give one or the other"
            )
    settings = _settings(config, **kwargs)
    criteria = Criteria.from_settings(settings, min_coverage=min_coverage)
    scope = Endpoint(entity, op)
    if report is not None:
        source = report_source(report)

        def measure() -> Measurement:
            return measure_report(report, scope)

    else:
        server = settings.server(Role.STATE)
        if not server.url:
            raise click.UsageError(
                "gate reads the worker's state server: give --state-redis URL or --redis URL "
                f"(or {env_var('state_redis_url')}, {env_var('redis_url')}), or --report DIR"
            )
        window = Window.last(settings.gate_since)
        source = redis_source(server.redacted_url(), settings.group, window, settings.gate_since)

        def measure() -> Measurement:
            problem = window_problem(settings.gate_since, settings)
            if problem:
                raise CannotMeasure(problem)
            return measure_server(settings, window, scope, coverage=min_coverage is not None)

    try:
        answer = judge(measure(), criteria, source, scope)
    except CannotMeasure as exc:
        answer = cannot_measure(str(exc), criteria, source, scope)
        if not as_json:
            click.echo(f"CANNOT DECIDE: {exc}", err=True)
            sys.exit(answer.decision.exit_status)
    (print_json if as_json else print_table)(answer)
    sys.exit(answer.decision.exit_status)


@main.command()
@redis_options(
    "the Redis the live worker counts shapes on (its state server), unless --state-redis "
    f"names it: {URL_FORMS}",
    (Role.STATE,),
)
@setting("--group", help="consumer group of the worker")
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="the --out directory of a backfill or replay, instead of the live worker's counts",
)
@click.option("--entity", callback=_entity, help="this entity only, e.g. comment")
@click.option(
    "--status",
    type=click.Choice(list(STATUSES)),
    help="only the shapes and parts of this status",
)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="shapes, and combinations to test next, to list (0: all); every part is listed",
)
@click.option("--json", "as_json", is_flag=True, help="print the figures, shapes and parts as JSON")
@config_option("the redis_* settings, group and key_prefix")
def coverage(report: Path | None, entity: str | None, status: str | None, limit: int,
             as_json: bool, config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """Which kinds (shapes) of production event were verified: the live worker's counts on
    its state server, or a report directory's; see docs/coverage.md.

    Exit 0, or 2 when there is no coverage to show (the reason is printed).
    """
    from cdc_verify.core.coverage import CoverageUnavailable
    from cdc_verify.coverage.live import read_live
    from cdc_verify.coverage.report_dir import read_report
    from cdc_verify.coverage.view import print_report

    if report is not None:
        given = [f for f in ("redis_url", "state_redis_url") if kwargs[f] is not None]
        if given:
            flag = {"redis_url": "--redis", "state_redis_url": "--state-redis"}[given[0]]
            raise click.UsageError(
                f"--report shows a report directory; {flag} is for the live worker's "
                "counts: give one or the other"
            )
    source = None
    try:
        if report is not None:
            found = read_report(report)
        else:
            settings = _settings(config, **kwargs)
            if not settings.server(Role.STATE).url:
                raise click.UsageError(
                    "coverage reads the worker's state server: give --state-redis URL or "
                    f"--redis URL (or {env_var('state_redis_url')}, {env_var('redis_url')}), "
                    "or --report DIR"
                )
            found = read_live(settings)
            source = (
                f"Counted by the live workers of group {settings.group!r} on "
                f"{settings.server(Role.STATE).redacted_url()}, since their state began."
            )
    except CoverageUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    found = found.only(entity, status)
    if as_json:
        click.echo(json_visible(json.dumps(found.as_json(), indent=2, ensure_ascii=False)))
    else:
        print_report(found, limit, source)


@main.command()
@redis_options(f"Redis URL of every role without a server of its own: {URL_FORMS}", tuple(Role))
@read_only_option
@stream_options
@setting("--group", help="consumer group of the worker")
@config_option("the redis_* settings, the stream keys, group and key_prefix")
def check(config: Path | None, **kwargs: Any) -> None:
    """Connect to every server of `run` as its user: reachable? streams and group? which
    needed commands does the ACL refuse, and the ACL line to use. Exit 0 all fine, else 1."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cdc_verify.pipeline.redis.acl import check_servers

    settings = _settings(config, **kwargs)
    unset = [role.value for role in Role if not settings.server(role).url]
    if unset:
        raise click.UsageError(
            f"no Redis URL for the {' and '.join(unset)} server: give --redis URL (every "
            "role), or a URL per role (--production-redis, --sister-redis, --state-redis)"
        )
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


@main.command()
@capture_file_option(
    "--production", "capture file of the production stream: the events the cases are taken from"
)
@capture_file_option(
    "--sister", "capture file of the sister stream, to cover every mismatch group too",
    required=False,
)  # fmt: skip
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="directory to write cases.json into (created if missing)",
)
@click.option(
    "--redact",
    "redact_pointers",
    multiple=True,
    help="JSON pointer whose value is replaced in every case, e.g. /body or /awards/*/award_id; "
    "repeatable",
)
@verify_options
def cases(production: Path, sister: Path | None, out: Path, redact_pointers: tuple[str, ...],
          config: Path | None, **kwargs: Any) -> None:  # fmt: skip
    """The fewest production events that cover every shape (and, with --sister, every
    mismatch group), redacted, as test vectors; see docs/coverage.md."""
    from cdc_verify.coverage.cases import CASES_FILE, write_cases
    from cdc_verify.pipeline.capture.format import CaptureError

    settings = _settings(config, **_flags(kwargs))
    _setup_logging(settings)
    consumer = _consumer(settings)
    if not redact_pointers:
        log.warning(
            "no --redact: %s gets production data as it is (payloads, decoded events, the "
            "values in shapes' parts, error texts); give --redact POINTER for every path that "
            "must not leave production", out / CASES_FILE,
        )  # fmt: skip
    try:
        figures = write_cases(settings, consumer, production, sister, out, redact_pointers)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(
        f"{figures['events']:,} production events, {figures['shapes']:,} shapes, "
        f"{figures['groups']:,} mismatch groups: {figures['cases']:,} cases in "
        f"{out / CASES_FILE}"
    )


if __name__ == "__main__":
    main()
