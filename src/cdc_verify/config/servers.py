"""Which Redis server plays which role, and how to reach it (docs/topology.md).

Three roles: the server holding the production stream, the one holding the sister
stream, and the state server, where the verifier writes verdicts, alerts, decisions
and read positions. Settings name each role's URL, ACL user, password (from the
environment or a file) and TLS files; what a role leaves unset comes from the server
it defaults to: production and sister from the plain --redis settings, state from
the sister server. `--redis` alone therefore keeps everything on one server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from cdc_verify.schemas.verdicts import Side

if TYPE_CHECKING:
    from cdc_verify.config.settings import Settings


class Role(StrEnum):
    PRODUCTION = "production"
    SISTER = "sister"
    STATE = "state"


# The server role that holds each side's stream.
ROLE_OF_SIDE: dict[Side, Role] = {Side.PRODUCTION: Role.PRODUCTION, Side.SISTER: Role.SISTER}

# Where a role's unset settings come from; None: the plain redis_* settings.
_DEFAULTS_TO: dict[Role, Role | None] = {
    Role.PRODUCTION: None,
    Role.SISTER: None,
    Role.STATE: Role.SISTER,
}


@dataclass(frozen=True)
class RedisServer:
    """Everything needed to open a connection to one server."""

    role: Role
    url: str | None  # None: not configured (the CLI may start an embedded Redis)
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_verify: bool = True
    socket_timeout: float = 10.0

    @property
    def address(self) -> str:
        """The server itself, credentials left out: two roles at one address share it."""
        if not self.url or urlsplit(self.url).scheme == "unix":
            return self.instance
        db = urlsplit(self.url).path.strip("/") or "0"
        return f"{self.instance}/{db}"

    @property
    def instance(self) -> str:
        """The redis-server process, whatever the database: host:port, or unix:path."""
        if not self.url:
            return ""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        host = (parts.hostname or "").lower()
        if host in ("localhost", "::1"):
            host = "127.0.0.1"
        return f"{host}:{parts.port or 6379}"

    def same_server(self, other: RedisServer) -> bool:
        return bool(self.url) and self.address == other.address

    def redacted_url(self) -> str:
        return redact(self.url) if self.url else "(none)"


# Query parameters whose value is a secret: redis-py takes `?password=` (and passes
# other parameters on), so any name that speaks of a password, secret or token.
_SECRET_QUERY = re.compile(r"(?i)([?&;][^=&;#]*(?:pass|secret|token|auth)[^=&;#]*=)[^&;#]*")


def redact(url: str) -> str:
    """The URL without its passwords, for logs, messages, answers and files: the one of
    its userinfo (the user name stays) and any secret query parameter (`?password=`).

    Also for text that is not quite a URL (`app:s3cret@db:6379`, echoed back when
    rejected): whatever precedes the last @ is taken as userinfo.
    """
    text = _SECRET_QUERY.sub(r"\1***", url)
    if "@" not in text:
        return text
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    shown = f"{user}:***@" if user and colon else f"{user}@" if user else "***@"
    return f"{scheme}{sep}{shown}{host}"


def read_only_conflict(settings: Settings) -> str | None:
    """Why `--production-read-only` cannot hold (None: it can): the state server, where
    the verifier writes, is production's own redis-server (any database of it)."""
    if not settings.production_read_only:
        return None
    production, state = (
        resolve_server(settings, Role.PRODUCTION),
        resolve_server(settings, Role.STATE),
    )
    if not production.url or production.instance != state.instance:
        return None
    return (
        f"--production-read-only: the state server {state.redacted_url()} is production's "
        f"own server ({production.redacted_url()}, {production.instance}), and the verifier "
        "writes its verdicts, alerts and read positions on the state server; give the state "
        "a server of its own: --state-redis URL, or --sister-redis URL (the state server "
        "defaults to the sister's)"
    )


TLS_FILES = ("tls_ca_file", "tls_cert_file", "tls_key_file")


def tls_without_tls(settings: Settings) -> dict[str, str]:
    """Settings field -> why: a TLS file that would apply to a server whose URL is not
    rediss://, where redis-py would ignore it and the password would go in clear."""
    problems: dict[str, str] = {}
    for role in Role:
        server = resolve_server(settings, role)
        if not server.url or server.url.startswith("rediss://"):
            continue
        for attr in TLS_FILES:
            field = next(
                (_field(step, attr) for step in _chain(role)
                 if _value(settings, step, attr) is not None),
                None,
            )  # fmt: skip
            if field is None or field in problems:
                continue
            tls_url = "rediss://" + server.redacted_url().removeprefix("redis://")
            fix = (
                "a unix socket has no TLS: drop the file"
                if server.url.startswith("unix://")
                else f"use {tls_url!r} to connect with TLS, or drop the file"
            )
            problems[field] = (
                f"a TLS file, but the {role.value} server's URL {server.redacted_url()} is not "
                f"TLS (rediss://), so it would be ignored and the password sent in clear; {fix}"
            )
    return problems


def _field(role: Role | None, field: str) -> str:
    return f"redis_{field}" if role is None else f"{role.value}_redis_{field}"


def _chain(role: Role) -> list[Role | None]:
    """`role`, the roles it defaults to, then None: the plain redis_* settings."""
    chain: list[Role | None] = [role]
    parent = _DEFAULTS_TO[role]
    while parent is not None:
        chain.append(parent)
        parent = _DEFAULTS_TO[parent]
    return [*chain, None]


def _value(settings: Settings, role: Role | None, field: str) -> Any:
    return getattr(settings, _field(role, field))


def role_url(settings: Settings, role: Role) -> str | None:
    """The URL of `role`'s server, or None, without reading any password file."""
    return next(
        (url for step in _chain(role) if (url := _value(settings, step, "url")) is not None),
        None,
    )


def resolve_server(settings: Settings, role: Role) -> RedisServer:
    chain = _chain(role)

    def pick(field: str) -> Any:
        for step in chain:
            value = _value(settings, step, field)
            if value is not None:
                return value
        return None

    # A role's own password, from its variable or its file, before any it would inherit.
    password: SecretStr | None = None
    for step in chain:
        password = _value(settings, step, "password")
        password_file: Path | None = _value(settings, step, "password_file")
        if password is None and password_file is not None:
            # Read at start: a rotated password takes effect at the next start.
            password = SecretStr(password_file.read_text(encoding="utf-8").rstrip("\r\n"))
        if password is not None:
            break
    return RedisServer(
        role=role,
        url=role_url(settings, role),
        username=pick("username"),
        password=password,
        tls_ca_file=pick("tls_ca_file"),
        tls_cert_file=pick("tls_cert_file"),
        tls_key_file=pick("tls_key_file"),
        tls_verify=settings.redis_tls_verify,
        socket_timeout=settings.redis_socket_timeout,
    )
