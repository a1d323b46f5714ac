"""Which Redis server plays which role, and how to reach it (docs/topology.md).

Three roles: the server holding the production stream, the one holding the sister
stream, and the state server, where the verifier writes verdicts, alerts, decisions
and read positions. Settings name each role's URL, ACL user, password (from the
environment or a file) and TLS files; what a role leaves unset comes from the server
it defaults to: production and sister from the plain --redis settings, state from
the sister server. `--redis` alone therefore keeps everything on one server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from cdc_verify.schemas.settings import Settings


class Role(StrEnum):
    PRODUCTION = "production"
    SISTER = "sister"
    STATE = "state"


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
        if not self.url:
            return ""
        parts = urlsplit(self.url)
        host = (parts.hostname or "").lower()
        if host in ("localhost", "::1"):
            host = "127.0.0.1"
        db = parts.path.strip("/") or "0"
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        return f"{host}:{parts.port or 6379}/{db}"

    def same_server(self, other: RedisServer) -> bool:
        return bool(self.url) and self.address == other.address

    def redacted_url(self) -> str:
        return redact(self.url) if self.url else "(none)"


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"


def _value(settings: Settings, role: Role | None, field: str) -> Any:
    name = f"redis_{field}" if role is None else f"{role.value}_redis_{field}"
    return getattr(settings, name)


def resolve_server(settings: Settings, role: Role) -> RedisServer:
    chain: list[Role | None] = [role]
    parent = _DEFAULTS_TO[role]
    while parent is not None:
        chain.append(parent)
        parent = _DEFAULTS_TO[parent]
    chain.append(None)  # the plain redis_* settings

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
        url=pick("url"),
        username=pick("username"),
        password=password,
        tls_ca_file=pick("tls_ca_file"),
        tls_cert_file=pick("tls_cert_file"),
        tls_key_file=pick("tls_key_file"),
        tls_verify=settings.redis_tls_verify,
        socket_timeout=settings.redis_socket_timeout,
    )
