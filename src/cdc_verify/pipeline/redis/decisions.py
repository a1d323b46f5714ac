"""Where the remembered decision of an event lives on the state server, compactly.

A key per decision costs Redis about 200 bytes (the key, its object, its expiry). Most
event_ids are ULIDs, whose first ten characters are the millisecond they were made, so
decisions are kept in small hashes instead: one per second of ULID time and shard
(`<prefix>:decisions:<second>:<shard>`, field = event_id, value = Decision.encode). A hash
of up to 128 short fields is stored as one listpack, a few bytes per field over its
data, and it expires as a whole once its second is older than --decided-retention.

An event_id that is not a ULID keeps a key of its own (`<prefix>:decided:<event_id>`),
as every decision did before; lookups read both, so decisions written by an earlier
version are still found after an upgrade.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.outcome import Decision
from cdc_verify.pipeline.redis.connection import AsyncClient

# Hashes per second of ULID time: at 10k events/s each holds ~80 fields, under Redis'
# default hash-max-listpack-entries (128); faster streams want that raised (docs).
SHARDS = 128
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Crockford base 32 (case-insensitive) -> the digits int(..., 32) reads.
_TO_INT32 = str.maketrans(_CROCKFORD + _CROCKFORD.lower(), "0123456789abcdefghijklmnopqrstuv" * 2)
_ULID_CHARS = frozenset(_CROCKFORD + _CROCKFORD.lower())


def ulid_ms(event_id: str) -> int | None:
    """The millisecond a ULID was made, or None if `event_id` is no ULID."""
    if len(event_id) != 26 or event_id[0] > "7" or not _ULID_CHARS.issuperset(event_id):
        return None
    return int(event_id[:10].translate(_TO_INT32), 32)


def bucket_of(decisions_prefix: str, event_id: str) -> tuple[str, int]:
    """(the hash holding the event's decision, its second), or ("", 0) for a key of its own."""
    ms = ulid_ms(event_id)
    if ms is None:
        return "", 0
    second = ms // 1000
    shard = zlib.crc32(event_id.encode()) % SHARDS
    return f"{decisions_prefix}{second}:{shard}", second


def bucket_expire_at_ms(second: int, now_ms: int, retention_ms: int) -> int:
    """When a bucket may go: `retention_ms` after its second, or after now for ULIDs from a
    clock far behind; a ULID from the far future keeps its bucket no longer than twice that."""
    end = min(max((second + 1) * 1000, now_ms), now_ms + retention_ms)
    return end + retention_ms


# KEYS[1]: a state key, which routes the call on a Cluster (every decision key shares
# its hash tag); ARGV: the prefix of a key of its own, then (bucket or '', event_id) pairs.
LOOKUP_SCRIPT = """
local prefix, out = ARGV[1], {}
for i = 2, #ARGV, 2 do
  local bucket, eid = ARGV[i], ARGV[i + 1]
  local value = false
  if bucket ~= '' then value = redis.call('HGET', bucket, eid) end
  if not value then value = redis.call('GET', prefix .. eid) end
  table.insert(out, value or '')
end
return out
"""


class DecisionStore:
    """Reads remembered decisions (the commit script writes them)."""

    def __init__(self, client: AsyncClient, keys: WorkerKeys) -> None:
        self._prefix = keys.decided_prefix
        self._buckets = keys.decisions_prefix
        self._route = [keys.lock]
        self._script = client.register_script(LOOKUP_SCRIPT)

    async def lookup(self, event_ids: Sequence[str]) -> dict[str, Decision | ValueError]:
        """Each known decision; a ValueError for a value we did not write."""
        if not event_ids:
            return {}
        args: list[str] = [self._prefix]
        for event_id in event_ids:
            args += (bucket_of(self._buckets, event_id)[0], event_id)
        values = await self._script(keys=self._route, args=args)
        found: dict[str, Decision | ValueError] = {}
        for event_id, value in zip(event_ids, values, strict=True):
            if not value:
                continue
            try:
                found[event_id] = Decision.decode(value)
            except ValueError as exc:
                found[event_id] = exc
        return found
