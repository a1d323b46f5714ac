"""One active worker per consumer group.

The core joins production and sister entries in one process, so two workers on
one group would each see half of every pair. The lock expires `ttl` after a
worker dies (kill -9 included); holding it also proves every other consumer of
the group is dead, which is what makes claiming their pending entries safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from redis import exceptions as redis_errors

from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.errors import LockLost

log = logging.getLogger(__name__)

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_token(owner: str) -> str:
    """A token unique to one worker process, kept across its reconnects."""
    return f"{owner}/{secrets.token_hex(8)}"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class WorkerLock:
    def __init__(self, client: AsyncClient, key: str, token: str, ttl_ms: int) -> None:
        self.client = client
        self.key = key
        self._token = token
        self._ttl_ms = ttl_ms
        self._refreshed = 0.0
        self._acquire = client.register_script(_ACQUIRE)
        self._refresh = client.register_script(_REFRESH)
        self._release = client.register_script(_RELEASE)

    async def acquire(
        self, stopping: asyncio.Event, on_wait: Callable[[], None] | None = None
    ) -> bool:
        """Wait until the lock is ours (True) or `stopping` is set (False).

        A lock that already carries our token (we reconnected) is ours at once.
        `on_wait` is called on each try: a waiting standby is alive, not stuck.
        """
        holder_seen: bytes | str | None = None
        waited_since: float | None = None
        while not stopping.is_set():
            if on_wait is not None:
                on_wait()
            if await self._acquire(keys=[self.key], args=[self._token, self._ttl_ms]):
                self._refreshed = time.monotonic()
                if waited_since is not None:
                    log.warning(
                        "took the lock %s after standing by %.1f s: this worker is now active",
                        self.key, time.monotonic() - waited_since,
                    )  # fmt: skip
                return True
            holder = await self.client.get(self.key)
            if holder is not None and holder != holder_seen:
                # Said again when another worker takes over while we stand by.
                holder_seen = holder
                waited_since = waited_since or time.monotonic()
                log.warning(
                    "lock %s held by %s, expires in %s unless refreshed (a dead worker's "
                    "lock holds until then); standing by",
                    self.key, _text(holder), await self._expires_in(),
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=min(1.0, self._ttl_ms / 4000))
        return False

    async def _expires_in(self) -> str:
        try:
            ms = int(await self.client.pttl(self.key))
        except redis_errors.NoPermissionError:  # an ACL from before +pttl was documented
            return "? s (the ACL refuses PTTL)"
        return f"{max(ms, 0) / 1000:.1f} s" if ms >= 0 else "? s"

    async def keep(self) -> None:
        """Refresh the lock when a third of its ttl has passed; raise LockLost if it is gone."""
        if time.monotonic() - self._refreshed < self._ttl_ms / 3000:
            return
        if not await self._refresh(keys=[self.key], args=[self._token, self._ttl_ms]):
            raise LockLost(f"lock {self.key} was lost (expired while this worker was stalled?)")
        self._refreshed = time.monotonic()

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self._token])
