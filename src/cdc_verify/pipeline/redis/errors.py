"""Redis errors a runner survives by reconnecting and rebuilding its state."""

from __future__ import annotations

from redis import exceptions as redis_errors

# After these the runner backs off, reconnects and rebuilds its state from Redis.
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    OSError,
)


class LockLost(RuntimeError):
    """This worker no longer holds the group's lock: another one may be active."""
