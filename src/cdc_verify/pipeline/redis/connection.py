"""Redis clients for one server each: AUTH, ACL users and TLS are all configurable."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cdc_verify.schemas.servers import RedisServer, redact

__all__ = ["client_options", "connect", "connect_sync", "redact"]


def client_options(server: RedisServer) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": server.socket_timeout,
        "socket_connect_timeout": server.socket_timeout,
        "health_check_interval": 30,
    }
    if server.username:
        options["username"] = server.username
    if server.password is not None:
        options["password"] = server.password.get_secret_value()
    if (server.url or "").startswith("rediss://"):
        options["ssl_cert_reqs"] = "required" if server.tls_verify else "none"
        if server.tls_ca_file:
            options["ssl_ca_certs"] = str(server.tls_ca_file)
        if server.tls_cert_file:
            options["ssl_certfile"] = str(server.tls_cert_file)
        if server.tls_key_file:
            options["ssl_keyfile"] = str(server.tls_key_file)
    return options


def _url(server: RedisServer) -> str:
    if not server.url:
        raise ValueError(f"no Redis URL for the {server.role.value} server")
    return server.url


def connect(server: RedisServer) -> aioredis.Redis:
    """An asyncio client for a long-lived runner.

    redis-py's own retries are off: a lost connection must reach the runner at
    once, which reconnects and rebuilds its state from Redis itself.
    """
    return aioredis.Redis.from_url(
        _url(server), retry=Retry(NoBackoff(), 0), **client_options(server)
    )


def connect_sync(server: RedisServer) -> redis.Redis:
    """A blocking client for the bounded commands (backfill, capture)."""
    return redis.Redis.from_url(_url(server), **client_options(server))
