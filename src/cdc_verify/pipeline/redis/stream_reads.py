"""What the stream readers share: the shapes of Redis' replies, and reads by entry id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.client import CaseInsensitiveDict

from cdc_verify.core.entry import StreamEntry, entry_id_ms
from cdc_verify.core.envelope import Envelope
from cdc_verify.core.position import ReadPosition
from cdc_verify.pipeline.redis.connection import AsyncClient, server_time_ms
from cdc_verify.pipeline.redis.ranges import reply_as_sent
from cdc_verify.schemas.verdicts import Side

# Entries as redis-py returns them (the client does not decode): (id, fields or None).
RawEntries = list[tuple[bytes, dict[bytes, bytes] | None]]
# A read's items: those, or [id, [name, value, ...] or None] as Redis sends them
# (core/entry.py's read_entries takes either).
ReadItems = Sequence[Sequence[Any]]


@dataclass(slots=True)
class SideRead:
    """What one read of one stream gave."""

    entries: list[StreamEntry]
    # Set when nothing new was there: how far that makes the stream read.
    caught_up: ReadPosition | None
    after: str  # the id after which the idle wait watches for new entries


async def fetch_entries(
    client: AsyncClient,
    side: Side,
    key: str,
    entry_ids: list[str],
    envelope: Envelope | None = None,
) -> dict[str, StreamEntry]:
    if not entry_ids:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for entry_id in entry_ids:
            pipe.xrange(key, entry_id, entry_id)
        replies = await pipe.execute()
    found = {}
    for entry_id, reply in zip(entry_ids, replies, strict=True):
        if reply:
            found[entry_id] = StreamEntry.from_redis(side, reply[0][0], reply[0][1], envelope)
    return found


async def lag_after(client: AsyncClient, key: str, read_through: str) -> float:
    """Seconds the oldest entry of `key` after `read_through` (not read yet) has waited, by
    the clock of the server that holds it (its entry ids come from that clock); 0 with
    nothing after it.

    Not from `read_through` itself: a group that starts at 0, or at a start a stream
    reached long after (a worker started before its streams, or its writers), has read
    nothing that old, and would otherwise lag since 1970, or since it started. And not to
    the stream's newest entry: one entry a stuck worker never reads must show its wait."""
    oldest = cast(RawEntries, await client.xrange(key, f"({read_through}", "+", count=1))
    if not oldest:
        return 0.0
    now_ms = await server_time_ms(client, key)
    return max(0, now_ms - entry_id_ms(as_text(oldest[0][0]))) / 1000


class UnparsedReads:
    """Has a plain server's read pipelines hand back XREADGROUP's and XREAD's replies as
    Redis sent them. redis-py would make each entry's fields a dict in a Python call of its
    own; read_entries makes them in one pass over the read. One per reader: the copy of
    the client's callbacks costs tens of µs, as much as a small read. The client's own
    commands keep their parsing."""

    def __init__(self, client: Any) -> None:
        callbacks = CaseInsensitiveDict(client.response_callbacks)
        callbacks["XREADGROUP"] = callbacks["XREAD"] = reply_as_sent
        self._callbacks = callbacks

    def on(self, pipe: Any) -> None:
        pipe.response_callbacks = self._callbacks


def stream_replies(reply: object) -> list[tuple[bytes, ReadItems]]:
    """A read of several streams: [(key, items), ...] for the streams that had some; the
    reply as redis-py parses it ([[key, [(id, fields), ...]], ...]) or as Redis sends it
    (RESP3: {key: [[id, [name, value, ...]], ...]}, RESP2: the list form)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return cast(list[tuple[bytes, ReadItems]], reply)


def stream_entries(reply: object) -> ReadItems:
    """The items of a read of one stream (any of stream_replies' forms)."""
    streams = stream_replies(reply)
    return streams[0][1] if streams else []


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
