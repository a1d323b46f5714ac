"""The options the commands share, each declared once, and how flags become `Settings`.

A `SettingOption` sets the Settings field of its name (docs/commands.md lists them); the
other options belong to their command alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ByteSize, ValidationError

from cdc_verify.cli.command import Topic, TopicOption
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import (
    ConfigFileError,
    InvalidSettings,
    Settings,
    env_var,
    load_settings,
)
from cdc_verify.durations import parse_duration
from cdc_verify.pipeline.reports.files import REPORT_FILES

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

URL_FORMS = "redis://HOST:PORT, rediss:// (TLS) or unix:///path"
REPORT_HELP = "directory to write " + ", ".join(REPORT_FILES) + " into (created if missing)"


def _shown_default(name: str) -> str:
    """`default: 5.0; env CDC_VERIFY_GRACE`, from the Settings field itself."""
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    shown = "none" if value in (None, []) else str(value)
    if isinstance(value, ByteSize):
        shown = value.human_readable(separator=" ")
    return f"default: {shown}; env {env_var(name)}"


class SettingOption(TopicOption):
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


def setting(*decls: str, topic: Topic, **kwargs: Any) -> Decorator:
    return click.option(*decls, cls=SettingOption, topic=topic, **kwargs)


def option(*decls: str, topic: Topic, **kwargs: Any) -> Decorator:
    """An option of its command alone, shown under `topic`."""
    return click.option(*decls, cls=TopicOption, topic=topic, **kwargs)


def _apply(options: list[Decorator], fn: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in reversed(options):
        fn = decorate(fn)
    return fn


# -- settings from the command line ------------------------------------------------


def command_settings(config: Path | None, **flags: Any) -> Settings:
    """The settings of this command line; a bad value is a usage error naming its flag."""
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


def setting_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The flags of `verify_options` as settings: a repeatable flag not given is unset."""
    flags = dict(kwargs)
    for multiple in ("ignore_paths", "consumer"):
        flags[multiple] = list(flags.get(multiple) or ()) or None
    return flags


def live_flag_given(kwargs: dict[str, Any], fields: dict[str, str]) -> str | None:
    """The first of `fields` (Settings field -> flag) given: a flag of the live counters,
    which --report replaces."""
    return next((flag for field, flag in fields.items() if kwargs[field] is not None), None)


# -- servers -----------------------------------------------------------------------

ROLE_URL_HELP = {
    Role.PRODUCTION: "server of the production stream; unset: the --redis one",
    Role.SISTER: "server of the sister stream; unset: the --redis one",
    Role.STATE: "server of the worker's state (verdicts, alerts, decisions, read positions); "
    "unset: the sister server",
}

UNUSED_STATE_HELP = (
    "the worker's state server: not used here, this command writes nothing (taken so that "
    "run's flags and settings serve it too)"
)


def server_options(role: Role | None, url_help: str) -> Decorator:
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
    access = Topic.ACCESS
    return lambda fn: _apply([
        setting(flag, f"{field}_url", topic=Topic.SERVERS, help=url_help),
        setting(f"{flag}-username", topic=access,
                help=f"ACL user{on}, over the URL's; its password comes "
                f"from {password}, {flag}-password-file or the URL"),
        setting(f"{flag}-password-file", type=click.Path(path_type=Path, dir_okay=False),
                topic=access,
                help=f"file holding the AUTH password{on}, read at start ({password} wins "
                     "over it; a password is never a flag, which ps would show)"),
        setting(f"{flag}-tls-ca-file", type=click.Path(path_type=Path), topic=access,
                help=f"CA certificates that verify {server}, for rediss://"),
        setting(f"{flag}-tls-cert-file", type=click.Path(path_type=Path), topic=access,
                help=f"client certificate for mutual TLS with {server} over rediss://"),
        setting(f"{flag}-tls-key-file", type=click.Path(path_type=Path), topic=access,
                help=f"client key for mutual TLS with {server} over rediss://"),
    ], fn)  # fmt: skip


def redis_options(
    url_help: str, roles: tuple[Role, ...] = (), state_help: str = ROLE_URL_HELP[Role.STATE]
) -> Decorator:
    """How to reach Redis (`url_help` says what this command does with --redis), and the
    flags of each of `roles` with a server of its own (docs/topology.md)."""
    helps = {**ROLE_URL_HELP, Role.STATE: state_help}
    per_role = [server_options(role, helps[role]) for role in roles]
    return lambda fn: _apply([server_options(None, url_help), *per_role], fn)


def state_redis_options(what: str) -> Decorator:
    """The state server of alerts, gate and coverage; `what` says what the worker does
    there ("the worker writes its alerts to")."""
    return redis_options(
        f"the Redis {what} (its state server), unless --state-redis names it: {URL_FORMS}",
        (Role.STATE,),
    )


def read_only_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return setting(
        "--production-read-only", is_flag=True, default=None, topic=Topic.ACCESS,
        help="send the production server read commands only (XREAD, XRANGE, XINFO, ...), so "
        "that an ACL user limited to -@all +@read +@connection +ping +time works; read "
        "positions are kept on the state server",
    )(fn)  # fmt: skip


# -- streams, scope and comparison -------------------------------------------------


def stream_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The two stream keys."""
    return _apply([
        setting("--production", topic=Topic.STREAMS, help="production stream key"),
        setting("--sister", topic=Topic.STREAMS, help="sister stream key"),
    ], fn)  # fmt: skip


def group_option(help_text: str = "consumer group of the worker") -> Decorator:
    return setting("--group", topic=Topic.STREAMS, help=help_text)


def capture_file_option(flag: str, help_text: str, required: bool = True) -> Decorator:
    """A capture file to read (replay, cases)."""
    return option(
        flag, type=click.Path(path_type=Path, dir_okay=False, exists=True), required=required,
        topic=Topic.STREAMS, help=help_text,
    )  # fmt: skip


def envelope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What each side's entries mean (docs/envelopes.md) and what joins them."""
    envelope = Topic.ENVELOPE
    pointers = [
        setting(
            f"--json-{name.replace('_', '-')}",
            topic=envelope,
            help=f"json envelope: JSON pointer to the {what} in the event",
        )
        for name, what in (
            ("event_id", "event id (the join key)"),
            ("entity", "entity"),
            ("op", "op"),
            ("entity_id", "entity id"),
            ("version", "version (optional)"),
        )
    ]
    return _apply([
        setting("--envelope", topic=envelope,
                help="what a stream entry means, both sides: cdc-verify, debezium, json or "
                     "module:callable"),
        setting("--production-envelope", topic=envelope,
                help="the production stream's envelope, over --envelope"),
        setting("--sister-envelope", topic=envelope,
                help="the sister stream's envelope, over --envelope"),
        setting("--join-key", type=click.Choice(["event_id", "version"]), topic=envelope,
                help="what joins the sides: event_id, or version (entity, entity id, "
                     "version); default event_id, version when an envelope is debezium"),
        setting("--version-column", topic=envelope,
                help="debezium envelope: the row image's column holding the row version"),
        setting("--json-field", topic=envelope,
                help="json envelope: the entry field holding the event"),
        setting("--json-format", type=click.Choice(["json", "msgpack"]), topic=envelope,
                help="json envelope: how that field is encoded"),
        *pointers,
        setting("--json-payload", topic=envelope,
                help="json envelope: JSON pointer to what the consumer decodes, as the "
                     "entry's payload field; \"\": the whole event"),
        setting("--json-encoding", topic=envelope,
                help="json envelope: JSON pointer to the payload's encoding, given to the "
                     "consumer as the entry's encoding field"),
    ], fn)  # fmt: skip


def verify_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How events are joined, decoded and compared; where settings come from."""
    scope = Topic.SCOPE
    return _apply([
        setting("--grace", type=DURATION, topic=scope,
                help="how long a partner may lag before it is a gap"),
        setting("--consumer", multiple=True, topic=scope,
                help="legacy consumer: module:callable for every entity, or "
                     "ENTITY=module:callable for one; repeatable"),
        setting("--scope", topic=scope,
                help="production events the sister must deliver: all, sample:PCT "
                "(sticky, by --scope-key), field:NAME=VALUE or sister"),
        setting("--scope-key", type=click.Choice(["entity_id", "event_id"]),
                topic=Topic.COMPARISON,
                help="field sample:PCT hashes (crc32 of its UTF-8 bytes)"),
        setting("--ignore-path", "ignore_paths", multiple=True, topic=scope,
                help="JSON pointer not compared, e.g. /edited or /awards/*/count; repeatable, "
                     "* = any segment, comma separated in the environment"),
        setting("--float-tolerance", type=float, topic=Topic.COMPARISON,
                help="absolute tolerance for floats"),
        setting("--decode-each-side", is_flag=True, default=None, topic=Topic.COMPARISON,
                help="decode both entries of a pair even when their fields are "
                     "byte-identical (default: once, for a deterministic consumer)"),
        envelope_options,
        config_option(),
        setting("--log-level", topic=Topic.RECORDS, help="DEBUG, INFO, WARNING or ERROR"),
        setting("--log-format", type=click.Choice(["text", "json"]), topic=Topic.RECORDS,
                help="text, or json: one object a line, event_id as a field"),
    ], fn)  # fmt: skip


def common_options(url_help: str, state_help: str = ROLE_URL_HELP[Role.STATE]) -> Decorator:
    """Flags of the commands that verify both streams in Redis."""
    return lambda fn: redis_options(url_help, tuple(Role), state_help)(
        read_only_option(stream_options(verify_options(fn)))
    )


def _entity(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from cdc_verify.gate.criteria import ENTITY_PATTERN

    if value is not None and not re.match(ENTITY_PATTERN, value):
        raise click.BadParameter(f"{value!r} is not an entity name like comment or account")
    return value


def entity_option(help_text: str) -> Decorator:
    """--entity of gate and coverage: an entity name like comment."""
    return option("--entity", callback=_entity, topic=Topic.SCOPE, help=help_text)


def report_option(help_text: str) -> Decorator:
    """--report of gate and coverage: a report directory read instead of the live worker."""
    return option("--report", type=click.Path(path_type=Path), topic=Topic.REPORT, help=help_text)


# -- output ------------------------------------------------------------------------


def config_option(uses: str = "any setting") -> Decorator:
    return option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        topic=Topic.GENERAL,
        help=f"TOML config file; this command reads {uses} from it "
        "(default: none; env CDC_VERIFY_CONFIG)",
    )


def progress_option() -> Decorator:
    return option(
        "--progress/--no-progress", default=None, topic=Topic.OUTPUT,
        help="progress bar (default: on a TTY)",
    )  # fmt: skip


def report_out_option() -> Decorator:
    """--out of backfill and replay: the report directory."""
    return option(
        "--out", type=click.Path(path_type=Path, file_okay=False), required=True,
        topic=Topic.OUTPUT, help=REPORT_HELP,
    )  # fmt: skip


def json_option(help_text: str) -> Decorator:
    return option("--json", "as_json", is_flag=True, topic=Topic.OUTPUT, help=help_text)
