"""Redis clients built from settings: AUTH, ACL users and TLS are all configurable."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cdc_verify.schemas.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_timeout,
        "health_check_interval": 30,
    }
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    url = settings.redis_url or ""
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required" if settings.redis_tls_verify else "none"
        if settings.redis_tls_ca_file:
            options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
        if settings.redis_tls_cert_file:
            options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        if settings.redis_tls_key_file:
            options["ssl_keyfile"] = str(settings.redis_tls_key_file)
    return options


def connect(settings: Settings, url: str | None = None) -> aioredis.Redis:
    """An asyncio client for the worker; `url` overrides settings (e.g. an embedded Redis).

    redis-py's own retries are off: a lost connection must reach the worker at
    once, which reconnects and rebuilds its state from Redis itself.
    """
    target = url or settings.redis_url
    if not target:
        raise ValueError("no Redis URL")
    return aioredis.Redis.from_url(target, retry=Retry(NoBackoff(), 0), **client_options(settings))


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"
