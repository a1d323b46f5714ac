"""One active worker per consumer group.

The core joins production and sister entries in one process, so two workers on
one group would each see half of every pair. The lock expires `ttl` after a
worker dies (kill -9 included); holding it also proves every other consumer of
the group is dead, which is what makes claiming their pending entries safe.

The active worker's loop refreshes the lock between batches; while it verifies one,
which may take longer than the ttl (one huge or slow event), a thread of its own
(`LockKeeper`) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import redis
from redis import exceptions as redis_errors
from redis.commands.core import Script

from cdc_verify.config.servers import RedisServer
from cdc_verify.pipeline.redis.connection import AsyncClient, connect_sync
from cdc_verify.pipeline.redis.errors import LockLost

log = logging.getLogger(__name__)

# The keeper's own client of one server, and its refresh script there.
_Kept = tuple[redis.Redis | redis.RedisCluster, Script]

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
    def __init__(
        self,
        client: AsyncClient,
        key: str,
        token: str,
        ttl_ms: int,
        server: RedisServer | None = None,
    ) -> None:
        """`server`: the one `client` talks to (the keeper connects to it on its own)."""
        self.client = client
        self.key = key
        self.server = server
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


class LockKeeper:
    """Refreshes the locks a worker holds while its loop verifies (`busy`), every third
    of their ttl, from a thread with connections of its own.

    The loop cannot do it then: verifying one event (a 90 MB differing body, a slow
    consumer) may take longer than the ttl, and a lock that lapsed sent the worker back
    to the start of the same batch, to lose the lock again, for ever. The fence is
    unchanged: the refresh only extends a lock that still holds our token, so a lock a
    standby took stays the standby's, and a frozen process (SIGSTOP, a paused VM)
    freezes this thread too. Only verifying is covered: a loop waiting on Redis keeps
    its lock only as before, and one verifying for longer than `hold_s` (what /healthz
    calls dead: a consumer that hangs) is let go, so that a standby can take over.
    """

    def __init__(self, locks: Sequence[WorkerLock], token: str, ttl_ms: int, hold_s: float):
        self._locks = [(lock.server, lock.key) for lock in locks]
        self._token, self._ttl_ms, self._hold_s = token, ttl_ms, hold_s
        self._busy_since: float | None = None  # set by the loop, read by the thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None  # why a lock is no longer ours (set by the thread)
        self.refreshes = 0  # refreshes that extended every lock

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop refreshing (before the locks are released); waits for a refresh under way."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """The loop verifies (and does not refresh the locks itself) inside this."""
        self._busy_since = time.monotonic()
        try:
            yield
        finally:
            self._busy_since = None

    def check(self) -> None:
        """Raise LockLost if the thread found a lock no longer ours."""
        if self.lost is not None:
            raise LockLost(self.lost)

    def _run(self) -> None:
        clients: dict[RedisServer, _Kept] = {}
        let_go = False
        try:
            while not self._stop.wait(self._ttl_ms / 3000):
                since = self._busy_since
                if since is None:
                    let_go = False
                    continue  # the loop refreshes them itself
                busy = time.monotonic() - since
                if busy > self._hold_s:
                    if not let_go:
                        log.error(
                            "the worker has been verifying the same entries for %.0f s (an "
                            "event that takes that long? a consumer that hangs?): its lock "
                            "is no longer refreshed, so that a standby can take over; "
                            "/healthz fails too", busy,
                        )  # fmt: skip
                    let_go = True
                    continue
                if all(self._refresh(clients, server, key) for server, key in self._locks):
                    self.refreshes += 1
        except Exception as exc:  # a bug here must not pass silently: the lock then lapses
            log.error("the lock's keeper thread failed: %s", exc, exc_info=exc)
        finally:
            for client, _ in clients.values():
                with contextlib.suppress(Exception):
                    client.close()

    def _refresh(
        self, clients: dict[RedisServer, _Kept], server: RedisServer | None, key: str
    ) -> bool:
        """Extends one lock; False when it could not (this time)."""
        if server is None:
            raise ValueError(f"lock {key}: no server to keep it on")
        try:
            if server not in clients:
                client = connect_sync(server)
                clients[server] = (client, client.register_script(_REFRESH))
            _, refresh = clients[server]
            if refresh(keys=[key], args=[self._token, self._ttl_ms]):
                return True
        except (redis_errors.RedisError, OSError) as exc:
            # Once: a new connection next time. If Redis stays away, the loop finds out
            # on its own connection; if only ours broke, the lock lapses and the loop's
            # next fenced read or commit says so.
            log.debug("refreshing lock %s failed: %s", key, exc)
            popped = clients.pop(server, None)
            if popped is not None:
                with contextlib.suppress(Exception):
                    popped[0].close()
            return False
        self.lost = (
            f"lock {key} was lost (another worker holds it, or it expired while this "
            "process was frozen)"
        )
        return False
