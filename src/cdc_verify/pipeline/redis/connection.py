"""Redis clients for one server each: AUTH, ACL users and TLS are all configurable.

A URL may name a plain server or any node of a Redis Cluster: `open_client` asks the
node (`HELLO`, which even a read-only ACL user may send: @connection) and returns a
cluster client when it is one.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cdc_verify.config.servers import TLS_FILES, RedisServer, redact
from cdc_verify.pipeline.redis.errors import ServerRefused

__all__ = [
    "AsyncClient",
    "client_options",
    "connect",
    "connect_sync",
    "is_cluster",
    "open_client",
    "redact",
    "server_time_ms",
]

# What the async runners hold: a plain client, or a cluster client for a Cluster URL.
AsyncClient = aioredis.Redis | AsyncRedisCluster


def client_options(server: RedisServer) -> dict[str, Any]:
    if any(getattr(server, f) for f in TLS_FILES) and not (server.url or "").startswith(
        "rediss://"
    ):  # settings refuse it (tls_without_tls); never ignore TLS files silently
        raise ValueError(
            f"TLS files given for the {server.role.value} server, whose URL "
            f"{server.redacted_url()} is not rediss://"
        )
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
        # redis-py 5 does not check the certificate's name unless told (6 does): a
        # verified certificate must be the server's own.
        options["ssl_check_hostname"] = server.tls_verify
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
    """An asyncio client of a plain server for a long-lived runner.

    redis-py's own retries are off: a lost connection must reach the runner at
    once, which reconnects and rebuilds its state from Redis itself.
    """
    return aioredis.Redis.from_url(
        _url(server), retry=Retry(NoBackoff(), 0), **client_options(server)
    )


async def open_client(server: RedisServer, *, lenient: bool = False) -> AsyncClient:
    """`connect`, or a cluster client when the URL names a node of a Redis Cluster.

    `lenient`: a server that cannot be reached now gets a plain client all the same
    (the HTTP API must start while Redis is away; it is not a Cluster client then).
    """
    client = connect(server)
    try:
        hello = await client.execute_command("HELLO")
    except redis.AuthenticationError as exc:
        await client.aclose()
        raise refused_credentials(server, exc) from None
    except redis.ResponseError:  # a server or proxy without HELLO: a plain server
        return client
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        if lenient:
            return client
        await client.aclose()
        raise
    except BaseException:
        await client.aclose()
        raise
    if not _says_cluster(hello):
        return client
    await client.aclose()
    options = client_options(server)
    options.pop("health_check_interval", None)
    # No retries here either; a moved slot is still followed (that is no retry).
    return AsyncRedisCluster.from_url(
        _url(server), retry=Retry(NoBackoff(), 0), cluster_error_retry_attempts=0, **options
    )


def connect_sync(server: RedisServer) -> redis.Redis | redis.RedisCluster:
    """A blocking client for the bounded commands (backfill, capture); a Cluster is detected."""
    client = redis.Redis.from_url(_url(server), **client_options(server))
    try:
        cluster = _says_cluster(client.execute_command("HELLO"))
    except redis.AuthenticationError as exc:
        client.close()
        raise refused_credentials(server, exc) from None
    except redis.ResponseError:
        cluster = False
    if not cluster:
        return client
    client.close()
    options = client_options(server)
    options.pop("health_check_interval", None)
    return redis.RedisCluster.from_url(_url(server), **options)


def refused_credentials(server: RedisServer, exc: Exception) -> ServerRefused:
    user = server.username or "default"
    return ServerRefused(
        f"the {server.role.value} server {server.redacted_url()} refused the credentials of "
        f"user {user} ({exc}): check its username and password (--{server.role.value}-redis-"
        f"username, CDC_VERIFY_{server.role.value.upper()}_REDIS_PASSWORD or its file)"
    )


def _says_cluster(hello: Any) -> bool:
    """Whether a HELLO reply (a flat list, or a dict once redis-py parsed it) says cluster."""
    fields = hello if isinstance(hello, dict) else dict(zip(hello[::2], hello[1::2], strict=False))
    mode = fields.get(b"mode", fields.get("mode", b""))
    return (mode.decode() if isinstance(mode, bytes) else str(mode)) == "cluster"


def is_cluster(client: object) -> bool:
    return isinstance(client, AsyncRedisCluster | redis.RedisCluster)


async def server_time_ms(client: AsyncClient, key: str) -> int:
    """Redis' clock, on the node that holds `key` (entry ids there come from it)."""
    if isinstance(client, AsyncRedisCluster):
        node = client.get_node_from_key(key)
        return time_ms(await client.execute_command("TIME", target_nodes=node))
    return time_ms(await client.time())


def time_ms(reply: Any) -> int:
    """The milliseconds of a TIME reply (seconds, microseconds), parsed or as sent."""
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000
