"""Reading a stream with XRANGE as Redis returns it: field order and repeated names kept.

backfill and capture both read this way, so a backfill and a replay of a capture of
the same stream see the very same entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster

CHUNK = 2000

RawEntry = tuple[bytes, list[bytes]]  # (entry id, [field, value, field, value, ...])


def reply_as_sent(response: Any, **_: Any) -> Any:
    """A reply callback that keeps Redis' reply as it came (redis-py's callbacks parse)."""
    return response


def _reader(client: redis.Redis | RedisCluster, key: str) -> redis.Redis:
    """The client that reads `key` with its replies kept raw: redis-py turns each entry's
    fields into a dict, which loses order and repeats. A Cluster client parses a reply on
    the node first, so on a Cluster it is the client of the node that holds the key."""
    if isinstance(client, RedisCluster):
        client = client.get_redis_connection(client.get_node_from_key(key))
    client.set_response_callback("XRANGE", reply_as_sent)
    client.set_response_callback("XREVRANGE", reply_as_sent)
    return client


def last_entry_id(client: redis.Redis | RedisCluster, key: str) -> str | None:
    """The stream's newest entry id now (None: empty or absent), to pin a bounded read."""
    last = _reader(client, key).execute_command("XREVRANGE", key, "+", "-", "COUNT", 1)
    return last[0][0].decode() if last else None


def read_range(
    client: redis.Redis | RedisCluster,
    key: str,
    start: str = "-",
    end: str = "+",
    chunk: int = CHUNK,
) -> Iterator[list[RawEntry]]:
    """Pages of at most `chunk` entries from `start` to `end` (both inclusive)."""
    client = _reader(client, key)
    cursor = start
    while True:
        page = client.execute_command("XRANGE", key, cursor, end, "COUNT", chunk)
        if page:
            yield page
        if len(page) < chunk:
            return
        cursor = "(" + page[-1][0].decode()


def missing_streams(client: redis.Redis, keys: Sequence[str]) -> dict[str, str]:
    """The keys that hold no stream, each with its TYPE: "none" (absent) or another type.

    A bounded read of an absent key finds nothing and would report "0 events", so the
    commands check first. TYPE alone tells absent from another type: one command more
    for a read-only ACL user.
    """
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in pipe.execute()]
    return {key: kind for key, kind in zip(keys, kinds, strict=True) if kind != "stream"}
