"""One side's stream read through the verifier's consumer group.

The group's pending list is the join state of this side: an entry stays pending
until the commit that settles it, so a restarted worker re-reads exactly what it had.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from redis.exceptions import ResponseError, WatchError
from redis.typing import KeyT, StreamIdT

from cdc_verify.core.entry import StreamEntry, read_entries
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.position import ReadPosition
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, time_ms
from cdc_verify.pipeline.redis.errors import REDIS_DOWN, LockLost
from cdc_verify.pipeline.redis.read_budget import ReadBudget
from cdc_verify.pipeline.redis.script import ScriptContract
from cdc_verify.pipeline.redis.stream_reads import (
    ReadItems,
    SideRead,
    UnparsedReads,
    as_text,
    fetch_entries,
    lag_after,
    stream_entries,
    stream_replies,
)
from cdc_verify.schemas.verdicts import Side

FENCED_READ = ScriptContract(keys=("stream", "lock"), args=("group", "consumer", "count", "token"))
# Takes new entries into our pending list only while the worker lock is ours, in one
# atomic step with the check: a worker frozen past its lock (SIGSTOP, a long pause)
# cannot take entries after the standby took over, and everything it took before is
# in its pending list for the new active worker to claim. TIME is taken in the same
# step, so a stream that had nothing new is known complete before that millisecond.
# With nothing new, the last entry id: the idle wait blocks after it.
FENCED_READ_SCRIPT = """
if redis.call('GET', K.lock) ~= A.token then
  return redis.error_reply('LOCKLOST the worker lock is held by another worker')
end
local now = redis.call('TIME')
local reply = redis.call('XREADGROUP', 'GROUP', A.group, A.consumer, 'COUNT', A.count,
                         'STREAMS', K.stream, '>')
if reply then return {now[1], now[2], reply[1][2], ''} end
local last = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)
return {now[1], now[2], {}, last[1] and last[1][1] or '0-0'}
"""


# Taking over a dead worker's entries is fenced the same way: a worker that stalls
# between taking the lock and claiming, and resumes after the lock moved on, must not
# claim the active worker's entries nor delete its consumer (which would drop the
# entries it read in between from the pending list). JUSTID: only the count is needed.
FENCED_CLAIM = ScriptContract(
    keys=("stream", "lock"), args=("group", "consumer", "cursor", "token")
)
FENCED_CLAIM_SCRIPT = """
if redis.call('GET', K.lock) ~= A.token then
  return redis.error_reply('LOCKLOST the worker lock is held by another worker')
end
local reply = redis.call('XAUTOCLAIM', K.stream, A.group, A.consumer, 0, A.cursor,
                         'COUNT', 1000, 'JUSTID')
return {reply[1], #reply[2]}
"""
# Forgets the other consumers once they hold nothing (XINFO's fields come as a flat
# name, value list in a script).
FENCED_FORGET = ScriptContract(keys=("stream", "lock"), args=("group", "consumer", "token"))
FENCED_FORGET_SCRIPT = """
if redis.call('GET', K.lock) ~= A.token then
  return redis.error_reply('LOCKLOST the worker lock is held by another worker')
end
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', K.stream, A.group)) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['name'] ~= A.consumer and info['pending'] == 0 then
    redis.call('XGROUP', 'DELCONSUMER', K.stream, A.group, info['name'])
    removed = removed + 1
  end
end
return removed
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """The lock a reader must hold to take new entries (the single-process worker)."""

    lock_key: str
    token: str


class GroupStream:
    # How the commit settles this side's entries: XACK in the script when the stream
    # is on the state server, else markers there and an XACK here afterwards.
    def __init__(
        self,
        side: Side,
        client: AsyncClient,
        key: str,
        group: str,
        consumer: str,
        fence: Fence | None = None,
        envelope: Envelope | None = None,
    ) -> None:
        self.side, self.client, self.key = side, client, key
        self.envelope = envelope  # how this stream's entries are read (None: cdc-verify)
        self._group, self._me, self._fence = group, consumer, fence
        self._fenced = FENCED_READ.register(client, FENCED_READ_SCRIPT) if fence else None
        self._claim = FENCED_CLAIM.register(client, FENCED_CLAIM_SCRIPT) if fence else None
        self._forget = FENCED_FORGET.register(client, FENCED_FORGET_SCRIPT) if fence else None
        # A plain server's reads take their replies unparsed (a Cluster's pipelines differ).
        self._unparsed = None if is_cluster(client) else UnparsedReads(client)

    async def kind(self) -> str:
        return as_text(await self.client.type(self.key))

    async def group_exists(self) -> bool:
        if not await self.client.exists(self.key):
            return False
        groups = await self.client.xinfo_groups(self.key)
        return any(as_text(g["name"]) == self._group for g in groups)

    async def create_group(self, start: str) -> None:
        try:
            await self.client.xgroup_create(self.key, self._group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def claim_orphans(self) -> int:
        """Take over every entry other consumers of the group left pending.

        Only called while holding the worker lock, so those consumers are dead (or
        frozen, and fenced off). Their entries join our pending list. With a fence,
        each step runs only while the lock is still ours (else LockLost).
        """
        owners = await self.client.xpending(self.key, self._group)
        if not [c for c in owners["consumers"] if as_text(c["name"]) != self._me]:
            return 0
        if self._fence is not None:
            return await self._claim_fenced(self._fence)
        claimed, cursor = 0, "0-0"
        while True:
            # Not JUSTID: redis-py drops the cursor from that reply.
            reply = await self.client.xautoclaim(
                self.key, self._group, self._me, min_idle_time=0, start_id=cursor, count=1000
            )
            cursor = as_text(reply[0])
            claimed += len(reply[1])
            if cursor == "0-0":
                break
        for consumer in await self.client.xinfo_consumers(self.key, self._group):
            name = as_text(consumer["name"])
            if name != self._me and consumer["pending"] == 0:
                await self.client.xgroup_delconsumer(self.key, self._group, name)
        return claimed

    async def _claim_fenced(self, fence: Fence) -> int:
        assert self._claim is not None and self._forget is not None
        keys = FENCED_CLAIM.keys_of(stream=self.key, lock=fence.lock_key)
        claimed, cursor = 0, "0-0"
        try:
            while True:
                args = FENCED_CLAIM.args_of(
                    group=self._group, consumer=self._me, cursor=cursor, token=fence.token
                )
                next_cursor, count = await self._claim(keys=keys, args=args)
                cursor, claimed = as_text(next_cursor), claimed + int(count)
                if cursor == "0-0":
                    break
            args = FENCED_FORGET.args_of(group=self._group, consumer=self._me, token=fence.token)
            await self._forget(keys=FENCED_FORGET.keys_of(stream=self.key, lock=fence.lock_key),
                               args=args)  # fmt: skip
        except ResponseError as exc:
            if str(exc).startswith("LOCKLOST"):
                raise LockLost(f"claim refused: {exc}") from None
            raise
        return claimed

    async def read_pending(
        self, count: int, budget: ReadBudget
    ) -> AsyncIterator[list[StreamEntry]]:
        """Our own pending entries (delivered, never acked), oldest first, in batches of
        at most `count` (fewer when `budget` says they are big)."""
        cursor = "0"
        while True:
            streams: dict[KeyT, StreamIdT] = {self.key: cursor}
            n = budget.count(count)
            reply = stream_entries(
                await self.client.xreadgroup(self._group, self._me, streams, count=n)
            )
            if not reply:
                return
            batch = read_entries(self.side, reply, self.envelope)
            budget.saw(batch)
            yield batch
            if len(reply) < n:
                return
            cursor = as_text(reply[-1][0])

    async def read(self, count: int) -> SideRead:
        """New entries for this consumer (no waiting: see `wait`)."""
        if self._fence is not None:
            return await self._read_fenced(count)
        async with self.client.pipeline(transaction=False) as pipe:
            if self._unparsed is not None:
                self._unparsed.on(pipe)
            pipe.time()
            pipe.xrevrange(self.key, "+", "-", count=1)  # before the read: nothing slips by
            pipe.xreadgroup(self._group, self._me, {self.key: ">"}, count=count)
            clock, last, reply = await pipe.execute()
        raw = stream_entries(reply)
        after = as_text(last[0][0]) if last else "0-0"
        return self._result(raw, time_ms(clock), after)

    async def _read_fenced(self, count: int) -> SideRead:
        assert self._fence is not None
        if not is_cluster(self.client):
            return await self._read_watched(count, self._fence)
        assert self._fenced is not None
        keys = FENCED_READ.keys_of(stream=self.key, lock=self._fence.lock_key)
        args = FENCED_READ.args_of(
            group=self._group, consumer=self._me, count=count, token=self._fence.token
        )
        try:
            seconds, micros, items, after = await self._fenced(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("LOCKLOST"):
                raise LockLost(f"read refused: {exc}") from None
            raise
        return self._result(items, time_ms((seconds, micros)), as_text(after))

    async def _read_watched(self, count: int, fence: Fence) -> SideRead:
        [read] = await read_together([self], count)
        return read

    def can_share_reads_with(self, other: GroupStream) -> bool:
        """Whether one fenced transaction can read both (same plain client and fence)."""
        return (
            self.client is other.client
            and self._fence is not None
            and self._fence == other._fence
            and (self._group, self._me) == (other._group, other._me)
            and not is_cluster(self.client)
        )

    def _result(self, raw: ReadItems, server_ms: int, after: str) -> SideRead:
        entries = read_entries(self.side, raw, self.envelope)
        # Entry ids are Redis time: a stream with nothing new at server_ms holds nothing older.
        caught_up = None if entries else ReadPosition.caught_up(server_ms)
        return SideRead(entries, caught_up, entries[-1].entry_id if entries else after)

    async def ack(self, entry_ids: list[str]) -> None:
        """Acks entries whose outcomes the state server holds (a stream elsewhere)."""
        for start in range(0, len(entry_ids), 1000):
            await self.client.xack(self.key, self._group, *entry_ids[start : start + 1000])

    async def fetch(self, entry_ids: list[str]) -> dict[str, StreamEntry]:
        """Entries by id; those trimmed away are left out."""
        return await fetch_entries(self.client, self.side, self.key, entry_ids, self.envelope)

    async def lag_seconds(self) -> float | None:
        """How far (entry-id time) the group's reading is behind the stream's head."""
        delivered = await self.delivered_id()
        if delivered is None:
            return None
        return await lag_after(self.client, self.key, delivered)

    async def delivered_id(self) -> str | None:
        """The group's last delivered entry id: XREADGROUP > only delivers later ones."""
        groups = await self.client.xinfo_groups(self.key)
        mine = next((g for g in groups if as_text(g["name"]) == self._group), None)
        return as_text(mine["last-delivered-id"]) if mine else None

    async def consumers(self) -> set[str]:
        if not await self.client.exists(self.key):
            return set()
        return {
            as_text(c["name"]) for c in await self.client.xinfo_consumers(self.key, self._group)
        }

    async def claim_from(self, consumer: str) -> int:
        """Moves the pending entries of `consumer` to us."""
        claimed = 0
        while ids := [
            cast(StreamIdT, p["message_id"])
            for p in await self.client.xpending_range(
                self.key, self._group, min="-", max="+", count=1000, consumername=consumer
            )
        ]:
            await self.client.xclaim(
                self.key, self._group, self._me, min_idle_time=0, message_ids=ids, justid=True
            )
            claimed += len(ids)
        return claimed


async def read_together(streams: list[GroupStream], count: int) -> list[SideRead]:
    """The fenced read of streams on one plain server, in one transaction that runs only
    if the lock key is untouched since we found our token in it (WATCH): no Lua script
    has to copy every entry it reads. (A Cluster pipeline runs no such transaction: there
    each stream is read by FENCED_READ.)"""
    first = streams[0]
    fence = first._fence
    assert fence is not None and all(first.can_share_reads_with(s) for s in streams)
    while True:
        async with first.client.pipeline(transaction=True) as pipe:
            assert first._unparsed is not None  # a plain server (can_share_reads_with)
            first._unparsed.on(pipe)
            try:
                await pipe.watch(fence.lock_key)
                if as_text(await pipe.get(fence.lock_key) or b"") != fence.token:
                    raise LockLost("read refused: the worker lock is held by another worker")
                pipe.multi()
                pipe.time()
                for stream in streams:  # before the read: nothing slips by unseen
                    pipe.xrevrange(stream.key, "+", "-", count=1)
                keys: dict[KeyT, StreamIdT] = {s.key: ">" for s in streams}
                pipe.xreadgroup(first._group, first._me, keys, count=count)
                clock, *lasts, reply = await pipe.execute()
            except WatchError as exc:
                # redis-py raises WatchError too when the connection dies while watching,
                # and then the EXEC may have run: its entries are ours, pending, unread.
                # Reading again would pass them by (a false gap when a position moves on);
                # ending the session makes the next one read them from the pending list.
                if isinstance(exc.__context__, REDIS_DOWN):
                    raise exc.__context__ from exc
                continue  # the key was touched (our own refresh, say): look again
        by_key = {as_text(key): items for key, items in stream_replies(reply)}
        server_ms = time_ms(clock)
        return [
            stream._result(
                by_key.get(stream.key, []), server_ms, as_text(last[0][0]) if last else "0-0"
            )
            for stream, last in zip(streams, lasts, strict=True)
        ]
