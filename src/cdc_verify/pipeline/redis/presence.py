"""Whether a worker group has state on a server, so that a command pointed at the wrong
server or group says so instead of reporting "none" (no alerts, no counts).

A group "has state" when one of the keys every worker of it writes exists (WorkerKeys):
the start horizon (written once, before its consumer groups, by either engine), its
lock, its alert indexes, its read positions or its shape counts. Per-minute counters
and decisions expire; these do not, or not before the alerts they would speak for.
"""

from __future__ import annotations

import asyncio
import time

from redis import exceptions as redis_errors

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.counters import MINUTE_MS, counts_key

# How long listing the groups that do have state may take (a SCAN of the keyspace).
LIST_TIMEOUT_S = 5.0
LISTED = 20  # groups named at most
HORIZON = "horizon_ms"  # the last part of WorkerKeys.horizon


class NoState(Exception):
    """The state server holds nothing of the group asked for (the reason is the message)."""


def marker_keys(keys: WorkerKeys) -> list[str]:
    return [
        keys.horizon, keys.lock, keys.alerts_open_index, keys.alerts_resolved_index,
        keys.positions, keys.shapes, keys.shape_counts,
    ]  # fmt: skip


async def has_state(client: AsyncClient, keys: WorkerKeys, counter_retention: float) -> bool:
    """Any marker key, else any per-minute counter still kept (a group from before
    horizons were stored has counters). On a Cluster they share one slot: EXISTS works."""
    if int(await client.exists(*marker_keys(keys))):
        return True
    now = int(time.time() * 1000)
    minutes = [
        counts_key(keys, now - m * MINUTE_MS) for m in range(int(counter_retention) // 60 + 2)
    ]
    for start in range(0, len(minutes), 2000):
        if int(await client.exists(*minutes[start : start + 2000])):
            return True
    return False


async def groups_with_state(client: AsyncClient, prefix: str) -> list[str] | None:
    """The groups under `prefix` with a horizon on this server, sorted (at most LISTED);
    None when they cannot be listed (the ACL refuses SCAN)."""
    found: set[str] = set()

    async def scan() -> None:
        for pattern in (f"{prefix}:*:{HORIZON}", f"{{{prefix}:*}}:{HORIZON}"):
            async for raw in client.scan_iter(match=pattern, count=1000):
                key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                found.add(key.removesuffix(f":{HORIZON}").strip("{}")[len(prefix) + 1 :])
                if len(found) >= LISTED:
                    return

    try:
        await asyncio.wait_for(scan(), LIST_TIMEOUT_S)
    except TimeoutError:
        pass  # a huge keyspace: name what was found
    except redis_errors.NoPermissionError:
        return None
    return sorted(found)


async def require_state(
    client: AsyncClient, keys: WorkerKeys, counter_retention_s: float, url: str
) -> None:
    """Raise NoState, naming the server and the groups that do have state there, unless
    the group of `keys` has state on it."""
    if await has_state(client, keys, counter_retention_s):
        return
    prefix = keys.key_prefix
    others = await groups_with_state(client, prefix)
    where = f"no state for group {keys.group!r} on the state server {url}"
    if others is None:
        hint = "(the ACL refuses SCAN, so the groups that have state there are not listed)"
    elif others:
        named = ", ".join(repr(g) for g in others)
        hint = f"groups with state there: {named}; give --group NAME"
    else:
        hint = (
            f"no worker with key prefix {prefix!r} has run there: is it the worker's "
            "state server (--state-redis URL, or the sister server it defaults to)?"
        )
    raise NoState(f"{where}: {hint}")
