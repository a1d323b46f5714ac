"""Redis errors a runner survives by reconnecting and rebuilding its state."""

from __future__ import annotations

from redis import exceptions as redis_errors

# After these the runner backs off, reconnects and rebuilds its state from Redis.
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    # A Cluster answers these while it forms or fails over: it heals without us.
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.RedisClusterUnreachableError,  # no RedisError: listed on its own
    OSError,
)


def heals_by_waiting(exc: BaseException) -> bool:
    """A lost connection heals by waiting; wrong credentials, a ConnectionError to
    redis-py too, do not."""
    return isinstance(exc, REDIS_DOWN) and not isinstance(exc, redis_errors.AuthenticationError)


class ServerRefused(redis_errors.AuthenticationError):
    """Wrong credentials, said with the server's role, redacted URL and user."""


class AclRefused(redis_errors.NoPermissionError):
    """The ACL refuses the worker a command it needs, said with the server and the fix."""


class LockLost(RuntimeError):
    """This worker no longer holds the group's lock: another one may be active."""


def failure_reason(exc: Exception, url: str, reading: str) -> str | None:
    """One line saying why reading `reading` from the server at `url` failed; None for an
    exception that is no Redis failure (a bug: let it raise)."""
    if isinstance(exc, redis_errors.AuthenticationError):
        return f"the state server {url} refused the credentials: {exc}"
    if isinstance(exc, redis_errors.NoPermissionError):
        return f"the state server {url} denies reading {reading}: {exc}"
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError):
        return f"cannot reach the state server {url}: {exc}"
    if isinstance(exc, redis_errors.RedisError):
        return f"the state server {url} failed: {exc}"
    return None
