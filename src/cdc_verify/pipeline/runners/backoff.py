"""How long a runner waits before it tries a server again, and how it waits out a lost
Redis connection (the single worker's sessions, the Faust worker's calls and rounds)."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

from prometheus_client import Counter


class Backoff:
    """Exponential reconnect delay with jitter: 0.1 s doubling to 5 s."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first, self._cap, self._next = first, cap, first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay * random.uniform(0.8, 1.2)


async def wait_for_redis(
    exc: BaseException,
    backoff: Backoff,
    reconnects: Counter,
    sleep: Callable[[float], Awaitable[object]],
    log: logging.Logger,
    *,
    then: str = "retrying",
    what: str | None = None,
) -> None:
    """Counts a lost connection (`cdc_verify_redis_reconnects_total`), says so on the
    caller's `log` and sleeps the backoff's next delay: "Redis unavailable (<exc>)[ for
    <what>]; <then> in <delay>s"."""
    reconnects.inc()
    delay = backoff.next()
    for_what = f" for {what}" if what else ""
    log.warning("Redis unavailable (%s)%s; %s in %.1fs", exc, for_what, then, delay)
    await sleep(delay)
