"""Worker settings: command-line flags > CDC_VERIFY_* environment > TOML config file > defaults."""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from cdc_verify.config.servers import (
    RedisServer,
    Role,
    redact,
    resolve_server,
    tls_without_tls,
)
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, ROW_CONSUMER
from cdc_verify.core.envelope import BUILT_IN, DEBEZIUM, parse_pointer
from cdc_verify.core.scope import Scope
from cdc_verify.core.shape import MAX_SHAPES
from cdc_verify.durations import parse_duration

ENV_PREFIX = "CDC_VERIFY_"
# Every setting in seconds takes the one duration syntax: 90, 30s, 10m, 2h, 7d.
Duration = Annotated[float, BeforeValidator(parse_duration)]
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def env_var(field: str) -> str:
    """The environment variable of a setting: grace -> CDC_VERIFY_GRACE."""
    return ENV_PREFIX + field.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # Redis connection. No URL means: start an embedded Redis for this run.
    redis_url: str | None = Field(None, description="redis://, rediss:// (TLS) or unix:// URL")
    redis_username: str | None = Field(None, description="ACL user (overrides the URL's)")
    redis_password: SecretStr | None = Field(
        None, description="AUTH password (overrides the URL's)"
    )
    redis_tls_ca_file: Path | None = Field(None, description="CA certificates (rediss://)")
    redis_tls_cert_file: Path | None = Field(None, description="client certificate (rediss://)")
    redis_tls_key_file: Path | None = Field(None, description="client key (rediss://)")
    redis_password_file: Path | None = Field(
        None, description="file holding the AUTH password (kept out of ps and shell history)"
    )
    redis_tls_verify: bool = True
    redis_socket_timeout: Duration = Field(10.0, gt=0)

    # One server per role (docs/topology.md). Each setting a role leaves unset is taken
    # from the server it defaults to: production and sister -> the redis_* ones; state ->
    # sister's. So --redis alone keeps everything on one server.
    production_redis_url: str | None = Field(
        None, description="server of the production stream (default: --redis)"
    )
    production_redis_username: str | None = Field(None, description="ACL user on production")
    production_redis_password: SecretStr | None = Field(None, description="AUTH on production")
    production_redis_password_file: Path | None = Field(
        None, description="file holding production's AUTH password"
    )
    production_redis_tls_ca_file: Path | None = Field(None, description="CA certificates")
    production_redis_tls_cert_file: Path | None = Field(None, description="client certificate")
    production_redis_tls_key_file: Path | None = Field(None, description="client key")
    production_read_only: bool = Field(
        False,
        description="send production only read commands (XREAD, XRANGE, ...): no consumer "
        "group, no key; read positions are kept on the state server",
    )
    sister_redis_url: str | None = Field(
        None, description="server of the sister stream (default: --redis)"
    )
    sister_redis_username: str | None = Field(None, description="ACL user on the sister server")
    sister_redis_password: SecretStr | None = Field(None, description="AUTH on the sister server")
    sister_redis_password_file: Path | None = Field(
        None, description="file holding the sister server's AUTH password"
    )
    sister_redis_tls_ca_file: Path | None = Field(None, description="CA certificates")
    sister_redis_tls_cert_file: Path | None = Field(None, description="client certificate")
    sister_redis_tls_key_file: Path | None = Field(None, description="client key")
    state_redis_url: str | None = Field(
        None,
        description="where verdicts, alerts, decisions and read positions live "
        "(default: the sister server)",
    )
    state_redis_username: str | None = Field(None, description="ACL user on the state server")
    state_redis_password: SecretStr | None = Field(None, description="AUTH on the state server")
    state_redis_password_file: Path | None = Field(
        None, description="file holding the state server's AUTH password"
    )
    state_redis_tls_ca_file: Path | None = Field(None, description="CA certificates")
    state_redis_tls_cert_file: Path | None = Field(None, description="client certificate")
    state_redis_tls_key_file: Path | None = Field(None, description="client key")

    production: str = Field("cdc:production", min_length=1, description="production stream key")
    sister: str = Field("cdc:sister", min_length=1, description="sister stream key")
    group: str = Field("cdc-verify", min_length=1, description="consumer group on both streams")
    consumer_name: str = Field(
        default_factory=socket.gethostname, min_length=1, description="this worker's name"
    )
    start_id: str = Field(
        "$",
        pattern=r"^(\$|\d+(-\d+)?)$",
        description="where a new consumer group starts: $ (now), 0 (everything) or an entry id",
    )

    grace: Duration = Field(5.0, ge=0, description="seconds a partner may lag before it is a gap")
    decided_retention: Duration = Field(
        3600.0, gt=0, description="seconds an event_id's verdict is remembered"
    )
    alert_retention: Duration = Field(
        7 * 86400.0, ge=1, description="seconds an open or resolved alert is kept"
    )
    # NoDecode: the environment gives "a:b,account=c:d" (split below).
    consumer: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CONSUMERS),
        description="legacy consumers: module:callable for every entity, "
        "ENTITY=module:callable for one",
    )
    # What a stream entry's fields mean (docs/envelopes.md), for both sides or one.
    envelope: str = Field(
        "cdc-verify",
        description="what a stream entry means: cdc-verify (docs/wire-format.md), debezium, json "
        "(the event as one field, --json-* say where its key fields are) or module:callable",
    )
    production_envelope: str | None = Field(
        None, description="the production stream's envelope (default: --envelope)"
    )
    sister_envelope: str | None = Field(
        None, description="the sister stream's envelope (default: --envelope)"
    )
    join_key: Literal["event_id", "version"] | None = Field(
        None,
        description="what joins the two sides: event_id, or version (entity, entity id, "
        "version); default event_id, version when an envelope is debezium",
    )
    version_column: str = Field(
        "version",
        min_length=1,
        description="debezium envelope: the row image's column that holds the row version",
    )
    json_field: str = Field(
        "event", min_length=1, description="json envelope: the field holding the event"
    )
    json_format: Literal["json", "msgpack"] = Field(
        "json", description="json envelope: how the event field is encoded"
    )
    json_event_id: str = Field("/event_id", description="json envelope: pointer to the event id")
    json_entity: str = Field("/entity", description="json envelope: pointer to the entity")
    json_op: str = Field("/op", description="json envelope: pointer to the op")
    json_entity_id: str = Field("/entity_id", description="json envelope: pointer to the entity id")
    json_version: str = Field("/version", description="json envelope: pointer to the version")
    json_payload: str = Field(
        "/payload",
        description='json envelope: pointer to what the consumer decodes ("": the whole event)',
    )
    json_encoding: str = Field(
        "/encoding",
        description="json envelope: pointer to the payload's encoding",
    )
    scope: str = Field(
        "all",
        description="production events the sister must deliver: all, sample:PCT, "
        "field:NAME=VALUE or sister",
    )
    scope_key: Literal["entity_id", "event_id"] = Field(
        "entity_id", description="the field sample:PCT hashes"
    )
    # NoDecode: the environment gives "/a,/b" (split below), not the JSON list it would expect.
    ignore_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="JSON pointers not compared"
    )
    float_tolerance: float = Field(0.0, ge=0, description="absolute tolerance for floats")
    coverage: bool = Field(
        True,
        description="count each production event's shape (docs/coverage.md): coverage.json "
        "of backfill and replay, the live worker's on its state server; false saves "
        "decoding and walking every production event",
    )
    coverage_max_shapes: int = Field(
        MAX_SHAPES,
        ge=1,
        le=100_000,
        description="the most shapes counted per entity; the events of shapes past it are "
        "counted together as overflow (docs/coverage.md)",
    )
    decode_each_side: bool = Field(
        False,
        description="decode both entries of a pair even when their fields are byte-identical "
        "(a consumer whose output is not a function of its input)",
    )

    counter_retention: Duration = Field(
        8 * 86400.0, ge=60, description="seconds the per-minute verdict counters are kept"
    )
    # What `gate`, /api/gate and the status page's banner measure against.
    gate_since: Duration = Field(86400.0, gt=0, description="seconds of counters the gate reads")
    gate_max_mismatch_rate: float = Field(
        0.001, ge=0, le=1, description="largest share of events with a mismatch verdict"
    )
    gate_max_undecodable: int = Field(0, ge=0, description="most undecodable verdicts")
    gate_max_gaps: int = Field(
        0, ge=0, description="most missing_in_sister + missing_in_production verdicts"
    )
    gate_min_events: int = Field(
        1000, ge=0, description="fewest events with a primary verdict to decide on"
    )

    verdict_stream: str = Field("cdc-verify:verdicts", description="stream of verdict records")
    verdict_stream_maxlen: int = Field(
        10_000_000, ge=0, description="approximate trim length; 0 keeps everything"
    )
    compact_matches: bool = Field(
        False,
        description="write the matches of each commit as one verdict-stream entry "
        "(verdict=match, count, event_ids) instead of one entry each",
    )
    key_prefix: str = Field("cdc-verify", min_length=1, description="prefix of the worker's keys")
    jsonl: Path | None = Field(None, description="also append verdict records to this file")
    create_streams: bool = Field(
        False,
        description="create missing streams (XGROUP CREATE MKSTREAM) instead of waiting for "
        "them: a typo would otherwise make an empty stream that nothing writes to",
    )

    batch_size: int = Field(500, ge=1, le=100_000, description="entries per read per stream")
    read_max_bytes: ByteSize = Field(
        ByteSize(64 * 2**20),
        ge=1024,
        description="about the most bytes of entries one read takes (both streams), "
        "e.g. 64MiB: fewer entries than --batch-size when they are big",
    )
    waiting_max_bytes: ByteSize = Field(
        ByteSize(512 * 2**20),
        ge=0,
        description="memory for big waiting entries (64 KiB and more) of both sides; past "
        "it the oldest go to files in --spill-dir until their partner comes; 0: no cap",
    )
    spill_dir: Path | None = Field(
        None,
        description="directory for the spill files (a private directory is made in it); "
        "default: the system's temporary directory",
    )
    block_ms: int = Field(100, ge=1, le=60_000, description="XREADGROUP BLOCK when idle")
    read_linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="after a read that found every stream caught up, the next begins this "
        "long after it did: a live stream comes in fewer, larger reads (each costs round "
        "trips and a commit) for up to this much latency; 0: read again at once",
    )
    lock_ttl: Duration = Field(10.0, ge=1, description="seconds a dead worker's lock outlives it")
    verdict_retention: Duration = Field(
        7 * 86400.0, ge=1, description="seconds a verdict record is kept in the verdict stream"
    )
    http_port: int = Field(
        9464, ge=0, le=65535, description="API, status page and /metrics; 0: no HTTP server"
    )
    http_host: str = Field("127.0.0.1", description="address the HTTP server binds to")
    http_token: SecretStr | None = Field(
        None, description="bearer token the API asks for (not /healthz, /readyz)"
    )
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names served besides IP addresses, loopback names and "
        "--http-host (DNS rebinding); * for any",
    )
    http_max_connections: int = Field(
        64, ge=1, le=10_000, description="open HTTP connections; past it the oldest idle closes"
    )
    http_request_timeout: Duration = Field(
        5.0, gt=0, le=300, description="seconds a client has to send a whole request"
    )
    http_max_requests: int = Field(
        8, ge=1, le=1000, description="API requests (/api, /metrics) answered at once; 503 past it"
    )
    http_max_answer_bytes: ByteSize = Field(
        ByteSize(16 * 2**20), ge=1024, description="largest HTTP answer; 413 past it"
    )
    http_answer_timeout: Duration = Field(
        30.0, gt=0, le=3600, description="seconds a client has to take an answer"
    )
    ready_max_lag: Duration = Field(
        60.0, gt=0, description="seconds of consumer lag above which /readyz fails"
    )
    engine: Literal["single", "faust"] = Field(
        "single", description="single: one process; faust: Faust workers on Kafka"
    )
    kafka_url: str | None = Field(None, description="Kafka bootstrap server (engine faust)")
    kafka_partitions: int = Field(
        8, ge=1, le=1024, description="partitions of the entries topic (engine faust)"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")

    @field_validator("ignore_paths", "consumer", "http_allowed_hosts", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [p for p in value.split(",") if p]
        return value

    @field_validator("ignore_paths")
    @classmethod
    def _json_pointers(cls, paths: list[str]) -> list[str]:
        bad = [p for p in paths if not p.startswith("/")]
        if bad:
            raise ValueError("; ".join(
                f"{p!r} is not a JSON pointer (those start with /): did you mean {'/' + p!r}?"
                for p in bad
            ))  # fmt: skip
        return paths

    @field_validator(
        "redis_password_file", "production_redis_password_file", "sister_redis_password_file",
        "state_redis_password_file",
    )  # fmt: skip
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise ValueError(f"{str(path)!r} is not a readable file")
        return path

    @field_validator("scope")
    @classmethod
    def _scope(cls, text: str) -> str:
        Scope.parse(text)  # ScopeError is a ValueError: its words reach the user
        return text.strip()

    @field_validator("envelope", "production_envelope", "sister_envelope")
    @classmethod
    def _envelope(cls, spec: str | None) -> str | None:
        if spec is None or spec in BUILT_IN or ":" in spec:
            return spec
        raise ValueError(f"{spec!r}: give {', '.join(BUILT_IN)} or module:callable")

    @model_validator(mode="after")
    def _row_cdc(self) -> Settings:
        """Debezium's records carry no event id: they join by row version, and decode
        through the row consumer unless --consumer says otherwise."""
        if DEBEZIUM not in self.side_envelopes:
            return self
        if self.join_key == "event_id":
            raise ValueError(
                "--join-key event_id with the debezium envelope: its records carry no "
                "event id; they join by row version (--join-key version, the default for it)"
            )
        if "consumer" not in self.model_fields_set:
            self.consumer = [ROW_CONSUMER]
        return self

    @property
    def side_envelopes(self) -> tuple[str, str]:
        """(production's envelope, the sister's)."""
        return (
            self.production_envelope or self.envelope,
            self.sister_envelope or self.envelope,
        )

    @property
    def joins_by_version(self) -> bool:
        """Whether the sides join by row version (explicitly, or for debezium)."""
        return self.join_key == "version" or (
            self.join_key is None and DEBEZIUM in self.side_envelopes
        )

    @field_validator(
        "json_event_id", "json_entity", "json_op", "json_entity_id", "json_version",
        "json_payload", "json_encoding",
    )  # fmt: skip
    @classmethod
    def _pointer(cls, pointer: str) -> str:
        parse_pointer(pointer)  # its ValueError's words reach the user
        return pointer

    @field_validator("consumer")
    @classmethod
    def _consumer_specs(cls, specs: list[str]) -> list[str]:
        if not specs:
            raise ValueError("give at least one consumer")
        return specs

    def server(self, role: Role) -> RedisServer:
        """How to reach the server of `role`, each unset setting taken from its default."""
        return resolve_server(self, role)

    @field_validator("redis_url", "production_redis_url", "sister_redis_url", "state_redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if not url:
            return None  # CDC_VERIFY_REDIS_URL= : no URL, as when unset
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(
                f"{redact(url)!r} is not a Redis URL; expected redis://HOST:PORT, "
                "rediss:// (TLS) or unix:///path"
            )
        return url

    @property
    def grace_ms(self) -> int:
        return round(self.grace * 1000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class ConfigFileError(ValueError):
    pass


# Pydantic's error types, said in a few words (its own messages name neither flag nor value).
_REASONS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "{input!r} does not match {pattern}",
    "literal_error": "{input!r} is not one of {expected}",
    "float_parsing": "not a number: {input!r}",
    "float_type": "not a number: {input!r}",
    "int_parsing": "not an integer: {input!r}",
    "int_from_float": "not an integer: {input!r}",
    "int_type": "not an integer: {input!r}",
    "bool_parsing": "not true or false: {input!r}",
    "extra_forbidden": "not a setting",
}


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value  # 0, not 0.0


def _reason(error: ErrorDetails) -> str:
    ctx = {k: _plain(v) for k, v in error.get("ctx", {}).items()}
    if error["type"] == "value_error":
        return str(ctx["error"])  # our validators' own words
    template = _REASONS.get(error["type"])
    if template is None:
        return error["msg"]
    return template.format(input=error.get("input"), **ctx)


@dataclass(frozen=True)
class Problem:
    """One bad setting: the field, why, and where its value came from."""

    field: str
    reason: str
    origin: str | None  # None: a flag (keyword argument); else the variable or "KEY in FILE"

    def describe(self, flag: str | None) -> str:
        """`--grace (from CDC_VERIFY_GRACE): must be >= 0`; with no flag, the origin alone."""
        if flag is None:
            return f"{self.origin or self.field}: {self.reason}"
        where = f" (from {self.origin})" if self.origin else ""
        return f"{flag}{where}: {self.reason}"


def default_flag(field: str) -> str:
    return "--" + field.replace("_", "-")


class InvalidSettings(ValueError):
    """Settings that failed validation, one problem per bad field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.describe(default_flag(p.field)) for p in problems))
        self.problems = problems


def _origin(field: str, given: dict[str, Any], config_file: Path | None) -> str | None:
    """Where a field's value came from, by the sources' precedence."""
    if field in given:
        return None
    var = env_var(field)
    if any(name.upper() == var for name in os.environ):  # env names are case-insensitive
        return var
    return f"{field} in {config_file}" if config_file else None


def _problems(exc: ValidationError, given: dict[str, Any], path: Path | None) -> list[Problem]:
    problems: dict[str, Problem] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        if field not in problems:  # one line per field, e.g. for a list's items
            problems[field] = Problem(field, _reason(error), _origin(field, given, path))
    return list(problems.values())


def _settings_class(config_file: Path | None) -> tuple[type[Settings], Path | None]:
    """Settings reading the TOML file of --config or CDC_VERIFY_CONFIG, and its path."""
    path = config_file or os.environ.get("CDC_VERIFY_CONFIG")
    if not path:
        return Settings, None
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"config file {path} does not exist")
    config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
    return type("FileSettings", (Settings,), {"model_config": config}), path


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from flags (`overrides`; None means not given), env and a TOML file."""
    cls, path = _settings_class(config_file)
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = cls(**given)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text; tomllib leaves this to decode()
        raise ConfigFileError(
            f"config file {path} is not valid TOML: not UTF-8 text (byte {exc.start} is "
            f"0x{exc.object[exc.start]:02x}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigFileError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except SettingsError as exc:  # a source could not parse a value at all
        raise ConfigFileError(str(exc)) from exc
    except ValidationError as exc:
        raise InvalidSettings(_problems(exc, given, path)) from exc
    ignored = tls_without_tls(settings)
    if ignored:
        raise InvalidSettings(
            [Problem(f, reason, _origin(f, given, path)) for f, reason in ignored.items()]
        )
    return settings


@dataclass(frozen=True)
class Source:
    """Where one setting's value comes from."""

    kind: Literal["flag", "environment", "file", "default"]
    where: str | None = None  # the variable, or the file; None for a flag and a default


def setting_sources(config_file: Path | None = None, **overrides: Any) -> dict[str, Source]:
    """Each setting's source for `load_settings(config_file, **overrides)`: the first
    source holding it, in the order Settings itself reads them (settings_customise_sources)."""
    cls, path = _settings_class(config_file)
    given = {k: v for k, v in overrides.items() if v is not None}
    sources = cls.settings_customise_sources(
        cls, InitSettingsSource(cls, given), EnvSettingsSource(cls), DotEnvSettingsSource(cls),
        SecretsSettingsSource(cls),
    )  # fmt: skip
    found: dict[str, Source] = {}
    for source in reversed(sources):  # the first source wins: it is written last
        if isinstance(source, TomlConfigSettingsSource):  # an InitSettingsSource too
            origin = Source("file", str(path))
        elif isinstance(source, InitSettingsSource):
            origin = Source("flag")
        elif isinstance(source, EnvSettingsSource):
            origin = None  # per field: its variable
        else:
            raise TypeError(f"no name for the settings source {type(source).__name__}")
        for field in source():
            found[field] = origin or Source("environment", env_var(field))
    return {field: found.get(field, Source("default")) for field in Settings.model_fields}
