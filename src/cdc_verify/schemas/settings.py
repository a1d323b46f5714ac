"""Worker settings: command-line flags > CDC_VERIFY_* environment > TOML config file > defaults."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cdc_verify.consumers.loader import REFERENCE_CONSUMER


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDC_VERIFY_", extra="forbid")

    # Redis connection. No URL means: start an embedded Redis for this run.
    redis_url: str | None = Field(None, description="redis://, rediss:// (TLS) or unix:// URL")
    redis_username: str | None = Field(None, description="ACL user (overrides the URL's)")
    redis_password: SecretStr | None = Field(
        None, description="AUTH password (overrides the URL's)"
    )
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    redis_tls_verify: bool = True
    redis_socket_timeout: float = Field(10.0, gt=0)

    production: str = Field("cdc:production", min_length=1, description="production stream key")
    sister: str = Field("cdc:sister", min_length=1, description="sister stream key")
    group: str = Field("cdc-verify", min_length=1, description="consumer group on both streams")
    consumer_name: str = Field(default_factory=socket.gethostname, min_length=1)
    start_id: str = Field(
        "$",
        pattern=r"^(\$|\d+(-\d+)?)$",
        description="where a new consumer group starts: $ (now), 0 (everything) or an entry id",
    )

    grace: float = Field(5.0, ge=0, description="seconds a partner may lag before it is a gap")
    decided_retention: float = Field(
        3600.0, gt=0, description="seconds an event_id's verdict is remembered"
    )
    alert_retention: float = Field(
        7 * 86400.0, ge=1, description="seconds an open or resolved alert is kept"
    )
    consumer: str = Field(REFERENCE_CONSUMER, description="legacy consumer as module:callable")
    ignore_paths: list[str] = Field(default_factory=list, description="JSON pointers not compared")
    float_tolerance: float = Field(0.0, ge=0)

    verdict_stream: str = "cdc-verify:verdicts"
    verdict_stream_maxlen: int = Field(
        10_000_000, ge=0, description="approximate trim length; 0 keeps everything"
    )
    key_prefix: str = Field("cdc-verify", min_length=1, description="prefix of the worker's keys")
    jsonl: Path | None = Field(None, description="also append verdict records to this file")

    batch_size: int = Field(500, ge=1, le=100_000)
    block_ms: int = Field(100, ge=1, le=60_000)
    lock_ttl: float = Field(10.0, ge=1, description="seconds a dead worker's lock outlives it")
    verdict_retention: float = Field(
        7 * 86400.0, ge=1, description="seconds a verdict record is kept in the verdict stream"
    )
    http_port: int = Field(
        9464, ge=0, le=65535, description="API, status page and /metrics; 0: no HTTP server"
    )
    http_host: str = Field("127.0.0.1", description="address the HTTP server binds to")
    http_token: SecretStr | None = Field(
        None, description="bearer token the API asks for (not /healthz, /readyz)"
    )
    ready_max_lag: float = Field(
        60.0, gt=0, description="seconds of consumer lag above which /readyz fails"
    )
    engine: Literal["single", "faust"] = Field(
        "single", description="single: one process; faust: Faust workers on Kafka"
    )
    kafka_url: str | None = Field(None, description="Kafka bootstrap server (engine faust)")
    kafka_partitions: int = Field(
        8, ge=1, le=1024, description="partitions of the entries topic (engine faust)"
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")

    @field_validator("ignore_paths", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [p for p in value.split(",") if p]
        return value

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


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from flags (`overrides`; None means not given), env and a TOML file."""
    path = config_file or os.environ.get("CDC_VERIFY_CONFIG")
    cls: type[Settings] = Settings
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigFileError(f"config file {path} does not exist")
        config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})
        cls = type("FileSettings", (Settings,), {"model_config": config})
    return cls(**{k: v for k, v in overrides.items() if v is not None})
