"""The production and sister streams as one consumer group reads them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from cdc_verify.pipeline.core.entry import (
    PRODUCTION,
    SISTER,
    StreamEntry,
    entry_id_ms,
    fields_dict,
)
from cdc_verify.pipeline.core.position import ReadPosition
from cdc_verify.pipeline.redis.errors import LockLost
from cdc_verify.pipeline.redis.keys import WorkerKeys
from cdc_verify.pipeline.redis.script import ScriptContract
from cdc_verify.schemas.verdicts import Side

# How often a read also asks Redis for its clock (to advance caught-up sides).
TIME_REFRESH_S = 0.05

FENCED_READ = ScriptContract(
    keys=("production", "sister", "lock"), args=("group", "consumer", "count", "token")
)
# Takes new entries into our pending list only while the worker lock is ours, in one
# atomic step with the check: a worker frozen past its lock (SIGSTOP, a long pause)
# cannot take entries after the standby took over, and everything it took before is
# in its pending list for the new active worker to claim. TIME is taken in the same
# step, so a side that had nothing new is known complete before that millisecond.
# For a side that had nothing, the last entry id: the idle wait blocks after it.
FENCED_READ_SCRIPT = """
if redis.call('GET', K.lock) ~= A.token then
  return redis.error_reply('LOCKLOST the worker lock is held by another worker')
end
local now = redis.call('TIME')
local reply = redis.call('XREADGROUP', 'GROUP', A.group, A.consumer, 'COUNT', A.count,
                         'STREAMS', K.production, K.sister, '>', '>')
local read = {}
for _, stream in ipairs(reply or {}) do read[stream[1]] = true end
local after = {}
for i, key in ipairs({K.production, K.sister}) do
  after[i] = ''
  if not read[key] then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    after[i] = last[1] and last[1][1] or '0-0'
  end
end
return {now[1], now[2], reply or {}, after[1], after[2]}
"""


class StreamsMissing(RuntimeError):
    """Stream keys that hold no stream: absent (a typo? the writer not started?) or another type."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.kinds = kinds
        super().__init__(
            ", ".join(
                f"{key!r} does not exist"
                if kind == "none"
                else f"{key!r} is a {kind}, not a stream"
                for key, kind in kinds.items()
            )
        )


@dataclass(frozen=True, slots=True)
class Fence:
    """The lock a reader must hold to take new entries (the single-process worker)."""

    lock_key: str
    token: str


@dataclass(slots=True)
class ReadResult:
    entries: list[StreamEntry]
    # Sides that had nothing new, and how far that makes their streams read.
    caught_up: dict[Side, ReadPosition]


class StreamPair:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: WorkerKeys,
        consumer_name: str,
        fence: Fence | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._me = consumer_name
        self._fence = fence
        self._fenced_read = FENCED_READ.register(client, FENCED_READ_SCRIPT) if fence else None
        self._side_of = {keys.production.encode(): PRODUCTION, keys.sister.encode(): SISTER}
        self._key_of = {PRODUCTION: keys.production, SISTER: keys.sister}
        self._server_ms = 0  # Redis TIME taken just before a read, and when (monotonic)
        self._time_taken = -TIME_REFRESH_S

    async def ensure_groups(self, start_id: str, grace_ms: int, create_streams: bool = True) -> int:
        """Create the consumer groups where absent; return the start horizon (ms).

        A stream key that holds no stream raises StreamsMissing, unless it is absent
        and `create_streams` allows creating it.

        A new deployment starting at `$` (now) or at an entry id starts its groups
        `grace_ms` earlier, so the twin of an event written just after the start
        is still read. The horizon is stored before the groups are created, so a
        crash in between resumes with the same one.
        """
        keys = (self._keys.production, self._keys.sister)
        kinds = {key: _as_str(await self._client.type(key)) for key in keys}
        missing = {k: kind for k, kind in kinds.items() if kind != "stream"}
        if missing and not (create_streams and set(missing.values()) == {"none"}):
            raise StreamsMissing(missing)
        exists = [await self._group_exists(key) for key in keys]
        stored = await self._client.get(self._keys.horizon)
        if stored is not None:
            horizon = int(stored)
        elif any(exists):
            horizon = 0  # groups from before horizons existed: verify all they deliver
        else:
            horizon = await self._start_ms(start_id)
            await self._client.set(self._keys.horizon, horizon)
        group_start = "0" if horizon == 0 else f"{max(horizon - grace_ms, 0)}-0"
        for key, present in zip(keys, exists, strict=True):
            if present:
                continue
            try:
                await self._client.xgroup_create(
                    key, self._keys.group, id=group_start, mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        return horizon

    async def groups_present(self) -> dict[Side, bool]:
        """Whether the consumer group exists on each stream (a readiness check)."""
        return {side: await self._group_exists(key) for side, key in self._key_of.items()}

    async def fetch(self, wanted: dict[str, tuple[Side, str]]) -> dict[str, StreamEntry]:
        """Entries by id (event_id -> (side, entry id)); those trimmed away are left out."""
        if not wanted:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for side, entry_id in wanted.values():
                pipe.xrange(self._key_of[side], entry_id, entry_id)
            replies = await pipe.execute()
        found = {}
        for (event_id, (side, _)), reply in zip(wanted.items(), replies, strict=True):
            if reply:
                entry_id, fields = reply[0]
                found[event_id] = StreamEntry.from_redis(side, entry_id, fields)
        return found

    async def _group_exists(self, key: str) -> bool:
        if not await self._client.exists(key):
            return False
        groups = await self._client.xinfo_groups(key)
        return any(_as_str(g["name"]) == self._keys.group for g in groups)

    async def _start_ms(self, start_id: str) -> int:
        if start_id == "$":
            seconds, micros = await self._client.time()
            return seconds * 1000 + micros // 1000
        return entry_id_ms(start_id)  # "0" gives 0: everything

    async def claim_orphans(self) -> int:
        """Take over every entry other consumers of the group left pending.

        Only called while holding the worker lock, so those consumers are dead.
        Their entries join our pending list and are re-read by `read_pending`.
        """
        claimed = 0
        for key in (self._keys.production, self._keys.sister):
            owners = await self._client.xpending(key, self._keys.group)
            others = [c for c in owners["consumers"] if _as_str(c["name"]) != self._me]
            if not others:
                continue
            cursor = "0-0"
            while True:
                # Not JUSTID: redis-py drops the cursor from that reply.
                reply = await self._client.xautoclaim(
                    key, self._keys.group, self._me, min_idle_time=0, start_id=cursor, count=1000
                )
                cursor = reply[0]
                claimed += sum(1 for _ in reply[1])
                if cursor in (b"0-0", "0-0"):
                    break
            for consumer in await self._client.xinfo_consumers(key, self._keys.group):
                name = consumer["name"]
                name = name.decode() if isinstance(name, bytes) else name
                if name != self._me and consumer["pending"] == 0:
                    await self._client.xgroup_delconsumer(key, self._keys.group, name)
        return claimed

    async def heartbeat(self, ttl_ms: int) -> None:
        """Says this consumer is alive for `ttl_ms` (several consumers share the group)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.alive_prefix + self._me, 1, px=ttl_ms)
            pipe.srem(self._keys.retired, self._me)  # back after a stall: not retired
            await pipe.execute()

    async def dead_consumers(self) -> set[str]:
        """Other consumers of the group whose heartbeat expired and are not yet retired.

        They stay in the group (XGROUP DELCONSUMER would drop entries that a
        consumer only seemed dead for read meanwhile); `retire` marks them done.
        """
        names: set[str] = set()
        for key in (self._keys.production, self._keys.sister):
            if await self._client.exists(key):
                consumers = await self._client.xinfo_consumers(key, self._keys.group)
                names.update(_as_str(c["name"]) for c in consumers)
        names.discard(self._me)
        names -= {_as_str(n) for n in await self._client.smembers(self._keys.retired)}
        if not names:
            return set()
        ordered = sorted(names)
        alive = await self._client.mget([self._keys.alive_prefix + n for n in ordered])
        return {name for name, beat in zip(ordered, alive, strict=True) if beat is None}

    async def retire(self, consumers: set[str]) -> None:
        if consumers:
            await self._client.sadd(self._keys.retired, *consumers)

    async def claim_from(self, consumers: set[str]) -> int:
        """Moves the pending entries of these consumers to us (then `read_pending`)."""
        claimed = 0
        for key in (self._keys.production, self._keys.sister):
            for name in consumers:
                while ids := [
                    cast(StreamIdT, p["message_id"])
                    for p in await self._client.xpending_range(
                        key, self._keys.group, min="-", max="+", count=1000, consumername=name
                    )
                ]:
                    await self._client.xclaim(
                        key, self._keys.group, self._me, min_idle_time=0, message_ids=ids,
                        justid=True,
                    )  # fmt: skip
                    claimed += len(ids)
        return claimed

    async def read_pending(self, count: int) -> AsyncIterator[list[StreamEntry]]:
        """Our own pending entries (delivered, never acked), oldest first, in batches."""
        cursors: dict[KeyT, StreamIdT] = {self._keys.production: "0", self._keys.sister: "0"}
        while cursors:
            reply = _stream_reply(
                await self._client.xreadgroup(self._keys.group, self._me, cursors, count=count)
            )
            batch: list[StreamEntry] = []
            for key, entries in reply:
                name = key.decode() if isinstance(key, bytes) else key
                if not entries:
                    cursors.pop(name, None)
                    continue
                side = self._side_of[key if isinstance(key, bytes) else key.encode()]
                batch.extend(StreamEntry.from_redis(side, eid, fields) for eid, fields in entries)
                last = entries[-1][0]
                cursors[name] = last.decode() if isinstance(last, bytes) else last
                if len(entries) < count:
                    cursors.pop(name, None)
            if not batch:
                return
            yield batch

    async def read_new(self, count: int, block_ms: int) -> ReadResult:
        """New entries for this consumer; waits up to `block_ms` when there are none."""
        if self._fence is not None:
            return await self._read_fenced(count, block_ms)
        streams: dict[KeyT, StreamIdT] = {self._keys.production: ">", self._keys.sister: ">"}
        if time.monotonic() - self._time_taken < TIME_REFRESH_S:
            # A Redis time taken before an earlier read is older, so still a safe bound.
            reply = await self._client.xreadgroup(
                self._keys.group, self._me, streams, count=count, block=block_ms
            )
            server_ms = self._server_ms
        else:
            pipe = self._client.pipeline(transaction=False)
            pipe.time()
            pipe.xreadgroup(self._keys.group, self._me, streams, count=count, block=block_ms)
            self._time_taken = time.monotonic()
            (seconds, micros), reply = await pipe.execute()
            server_ms = self._server_ms = seconds * 1000 + micros // 1000
        return self._result(_stream_reply(reply), server_ms)

    async def _read_fenced(self, count: int, block_ms: int) -> ReadResult:
        assert self._fence is not None and self._fenced_read is not None
        keys = FENCED_READ.keys_of(
            production=self._keys.production, sister=self._keys.sister, lock=self._fence.lock_key
        )
        args = FENCED_READ.args_of(
            group=self._keys.group, consumer=self._me, count=count, token=self._fence.token
        )
        try:
            seconds, micros, reply, after_p, after_s = await self._fenced_read(keys=keys, args=args)
        except ResponseError as exc:
            if str(exc).startswith("LOCKLOST"):
                raise LockLost(f"read refused: {exc}") from None
            raise
        parsed: StreamReply = [
            (key, [(eid, fields_dict(flat)) for eid, flat in items]) for key, items in reply
        ]
        result = self._result(parsed, int(seconds) * 1000 + int(micros) // 1000)
        if not result.entries:
            # Nothing new: wait for the next entry with a plain XREAD, which changes
            # nothing in Redis, so waiting needs no lock. The caller reads it, fenced.
            await self._client.xread(
                {self._keys.production: after_p, self._keys.sister: after_s},
                count=1, block=block_ms,
            )  # fmt: skip
        return result

    def _result(self, reply: StreamReply, server_ms: int) -> ReadResult:
        entries: list[StreamEntry] = []
        seen: set[Side] = set()
        for key, items in reply:
            side = self._side_of[key if isinstance(key, bytes) else key.encode()]
            if items:
                seen.add(side)
            entries.extend(StreamEntry.from_redis(side, eid, fields) for eid, fields in items)
        # Entry ids are Redis time: a side with nothing new at server_ms holds nothing older.
        position = ReadPosition.caught_up(server_ms)
        return ReadResult(entries, {s: position for s in (PRODUCTION, SISTER) if s not in seen})

    async def delivered_ms(self) -> dict[Side, int]:
        """Per side, the time of the group's last delivered entry: XREADGROUP > only
        delivers entries after it, so nobody reads an entry older than this again."""
        delivered: dict[Side, int] = {}
        for side, key in self._key_of.items():
            groups = await self._client.xinfo_groups(key)
            mine = next((g for g in groups if _as_str(g["name"]) == self._keys.group), None)
            delivered[side] = entry_id_ms(_as_str(mine["last-delivered-id"])) if mine else 0
        return delivered

    async def lag_seconds(self) -> dict[Side, float]:
        """How far (in entry-id time) the group's read position is behind each stream's head."""
        lags: dict[Side, float] = {}
        for side, key in self._key_of.items():
            info = await self._client.xinfo_stream(key)
            groups = await self._client.xinfo_groups(key)
            head = _as_str(info["last-generated-id"])
            mine = next((g for g in groups if _as_str(g["name"]) == self._keys.group), None)
            if mine is None:
                continue
            delivered = _as_str(mine["last-delivered-id"])
            lags[side] = max(0, entry_id_ms(head) - entry_id_ms(delivered)) / 1000
        return lags


# A stream read's reply as redis-py gives it (bytes, the client does not decode).
StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]]


def _stream_reply(raw: object) -> StreamReply:
    # redis-py types the reply as a union of every protocol's shapes; RESP2 gives this.
    return cast(StreamReply, raw or [])


def _as_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
