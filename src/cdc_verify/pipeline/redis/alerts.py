"""The missing-event alerts the worker keeps in Redis: their JSON and how they are read.

The commit script (commit.lua) writes each gap's alert (`gap_alert`) with its verdict,
and merges in what a late arrival adds (`late_resolution`) as it moves the alert to the
resolved ones. Alerts live in a hash (event_id -> alert JSON) with a sorted set beside it that
orders them by the time they were opened (or resolved). Pages walk that sorted
set; a cursor names the last alert looked at by (score, event_id), so a page
stays correct while alerts are added, resolved or pruned between requests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, cast

from redis.typing import ZSetRangeResponse

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.bounds import ENTITY_ID_MAX_BYTES, LATE_BOUNDS, cut_text
from cdc_verify.core.outcome import Outcome, record_to_json
from cdc_verify.core.verifier import MISSING_ON
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, open_client
from cdc_verify.pipeline.redis.presence import require_state
from cdc_verify.schemas.verdicts import Side

# Alerts looked at per request at most, whatever the filters: bounds the cost of
# a selective filter over a long list. A page may then hold fewer than `limit`.
SCAN_BUDGET = 20_000
CHUNK = 500


def window_start_ms(window: timedelta) -> int:
    """Epoch ms at which a window like `--since 10m` / `?since=10m` starts."""
    return int((time.time() - window.total_seconds()) * 1000)


class AlertState(Enum):
    OPEN = "open"
    RESOLVED = "resolved"


class BadCursor(ValueError):
    pass


def gap_alert(outcome: Outcome, opened_at: str) -> str:
    """The open alert of a gap verdict: the entry present on one side only."""
    assert outcome.record is not None
    entry = outcome.settles[0]
    # Cut: an entity_id is stream data of any size.
    entity_id = cut_text(
        entry.fields.get(b"entity_id", b"").decode("utf-8", "replace"), ENTITY_ID_MAX_BYTES
    )
    alert: dict[str, Any] = {
        "event_id": outcome.record.event_id,
        "verdict": outcome.record.verdict.value,
        "present_on": entry.side.value,
        "entry_id": entry.entry_id,
        "entity_id": entity_id,
        "opened_at": opened_at,
    }
    if outcome.server_lost_data is not None:  # the gap may be the lost data's, not a real one
        alert["server_lost_data"] = outcome.server_lost_data
    return json.dumps(alert)


def late_resolution(outcome: Outcome, resolved_at: str) -> str:
    """What a late arrival adds to its alert: how late, and how the late pair compares."""
    entry = outcome.settles[0]
    late = outcome.late_record
    return json.dumps(
        {
            "resolution": "late",
            "resolved_at": resolved_at,
            "late_by_ms": outcome.late_by_ms,
            "late_entry_id": entry.entry_id,
            # None: the earlier entry had left its stream (trimmed) before the late one came.
            "late_comparison": json.loads(record_to_json(late.bounded(LATE_BOUNDS)))
            if late
            else None,
        }
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    since_ms: int | None = None  # opened (resolved) at or after
    missing_on: Side | None = None
    entity_id: str | None = None

    def accepts(self, alert: dict[str, Any]) -> bool:
        missing_on = self.missing_on
        if missing_on is not None and alert.get("verdict") != MISSING_ON[missing_on].value:
            return False
        return self.entity_id is None or alert.get("entity_id") == self.entity_id


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[dict[str, Any]]
    next_cursor: str | None  # None: nothing further


CURSOR_PATTERN = r"^\d{1,16}:.{1,256}$"
_CURSOR = re.compile(CURSOR_PATTERN, re.DOTALL)


def encode_cursor(score: int, event_id: bytes) -> str:
    """`<ms>:<event_id>` of the last alert looked at: plain, so any such text is a cursor."""
    return f"{score}:{event_id.decode('utf-8', 'surrogateescape')}"


def decode_cursor(cursor: str) -> tuple[int, bytes]:
    if not _CURSOR.match(cursor):
        raise BadCursor(f"a cursor is <ms>:<event_id>, not {cursor[:40]!r}")
    score, _, event_id = cursor.partition(":")
    return int(score), event_id.encode("utf-8", "surrogateescape")


# The store's client is a bytes client (no decode_responses), so a sorted set's members
# come back as bytes; redis-py annotates one reply type for every client mode.
def _members(reply: ZSetRangeResponse) -> list[bytes]:
    """A ZRANGE-family reply without scores."""
    return cast("list[bytes]", reply)


def _scored_members(reply: ZSetRangeResponse) -> list[tuple[bytes, float]]:
    """A ZRANGE-family reply WITHSCORES: (member, score) pairs."""
    return cast("list[tuple[bytes, float]]", reply)


class AlertStore:
    def __init__(self, client: AsyncClient, keys: WorkerKeys) -> None:
        self._client = client
        self._keys = keys

    def _keys_of(self, state: AlertState) -> tuple[str, str]:
        k = self._keys
        if state is AlertState.OPEN:
            return k.alerts_open, k.alerts_open_index
        return k.alerts_resolved, k.alerts_resolved_index

    async def page(
        self,
        state: AlertState = AlertState.OPEN,
        where: AlertFilter = AlertFilter(),  # frozen: a shared default is safe
        limit: int = 100,
        cursor: str | None = None,
    ) -> AlertPage:
        """Alerts oldest first, from the cursor (or `where.since_ms`) on."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        hash_key, index_key = self._keys_of(state)
        after = decode_cursor(cursor) if cursor else None
        rank = await self._start_rank(index_key, where.since_ms, after)
        found: list[dict[str, Any]] = []
        scanned = 0
        while scanned < SCAN_BUDGET:
            chunk = _scored_members(
                await self._client.zrange(index_key, rank, rank + CHUNK - 1, withscores=True)
            )
            if not chunk:
                return AlertPage(found, None)
            rank += len(chunk)
            values = await self._client.hmget(hash_key, [member for member, _ in chunk])
            for (member, score), value in zip(chunk, values, strict=True):
                scanned += 1
                position = (int(score), member)
                if value is None or (after is not None and position <= after):
                    continue  # resolved or pruned meanwhile; or shifted into this page
                alert = json.loads(value)
                if where.since_ms is not None and position[0] < where.since_ms:
                    continue
                if where.accepts(alert):
                    found.append(alert)
                    if len(found) == limit:
                        return AlertPage(found, encode_cursor(*position))
                if scanned >= SCAN_BUDGET:
                    return AlertPage(found, encode_cursor(*position))
        return AlertPage(found, None)  # pragma: no cover (loop returns)

    async def _start_rank(
        self, index_key: str, since_ms: int | None, after: tuple[int, bytes] | None
    ) -> int:
        client = self._client
        if after is None:
            if since_ms is None:
                return 0
            return int(await client.zcount(index_key, "-inf", f"({since_ms}"))
        score, member = after
        current = await client.zscore(index_key, member)
        if current is not None and int(current) == score:
            rank = await client.zrank(index_key, member)
            if isinstance(rank, int):  # without WITHSCORE: an int, or None
                return rank + 1
        # The cursor's alert is gone: count what sorts before it instead.
        before = int(await client.zcount(index_key, "-inf", f"({score}"))
        ties = _members(await client.zrangebyscore(index_key, score, score))
        return before + sum(1 for m in ties if m <= member)

    async def open_summary(self) -> tuple[int, float | None]:
        """(open alerts, seconds since the oldest was opened, or None when none is open)."""
        _, index_key = self._keys_of(AlertState.OPEN)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(index_key)
            pipe.zrange(index_key, 0, 0, withscores=True)
            count, oldest = await pipe.execute()
        age = max(0.0, time.time() - oldest[0][1] / 1000) if oldest else None
        return int(count), age

    async def newest(self, state: AlertState, count: int) -> list[dict[str, Any]]:
        hash_key, index_key = self._keys_of(state)
        event_ids = _members(await self._client.zrevrange(index_key, 0, count - 1))
        values = await self._client.hmget(hash_key, event_ids) if event_ids else []
        return [json.loads(v) for v in values if v is not None]

    async def get(self, event_id: str) -> tuple[AlertState, dict[str, Any]] | None:
        for state in AlertState:
            value = await self._client.hget(self._keys_of(state)[0], event_id)
            if value is not None:
                return state, json.loads(value)
        return None

    async def gap_entries(self, event_ids: Sequence[str]) -> dict[str, tuple[Side, str]]:
        """For open alerts: the side and entry id of the entry each gap was about."""
        if not event_ids:
            return {}
        values = await self._client.hmget(self._keys.alerts_open, list(event_ids))
        found = {}
        for event_id, value in zip(event_ids, values, strict=True):
            if value is not None:
                alert = json.loads(value)
                found[event_id] = (Side(alert["present_on"]), alert["entry_id"])
        return found


async def query_alerts(
    settings: Settings, state: AlertState, where: AlertFilter, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` alerts, oldest first, and whether more match (the CLI's query).
    Raises NoState when the group has no state on the server (not "no alerts")."""
    server = settings.server(Role.STATE)
    client = await open_client(server)
    try:
        keys = WorkerKeys.from_settings(settings, cluster=is_cluster(client))
        await require_state(client, keys, settings.counter_retention, server.redacted_url())
        store = AlertStore(client, keys)
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await store.page(state, where, min(1000, limit - len(found) + 1), cursor)
            found.extend(page.alerts)
            cursor = page.next_cursor
            if cursor is None or len(found) > limit:
                break
    finally:
        await client.aclose()
    return found[:limit], len(found) > limit
