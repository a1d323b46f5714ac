"""Where the remembered decision of an event lives on the state server, compactly.

A key per decision costs Redis about 200 bytes (the key, its object, its expiry), so
decisions are kept as fields of small hashes (field = event_id, value = Decision.encode),
each stored as one listpack, a few bytes per field over its data, while it holds at most
128 fields:

- A ULID event_id, whose first ten characters are the millisecond it was made, goes to
  one hash per second of ULID time and shard (`<prefix>:decisions:<second>:<shard>`).
- Any other event_id (a row version such as `comments/42@7` carries no time) goes to a
  *generation*: a span of first-seen time whose shard count is sized from the rate it
  met (`<prefix>:decisions:g<start ms>:<shard>`, listed in `<prefix>:decisions:index`).
  decisions.lua holds that rule, shared by the lookup below and the commit script; a
  lookup names the time of an entry of the event, and looks in the generations within
  --decided-retention of it (and a clock margin).
- An event_id longer than a listpack's values may be (64 bytes) would turn its whole
  hash into a hash table, and keeps a key of its own (`<prefix>:decided:<event_id>`).

Hashes expire as a whole --decided-retention after the span they cover. Lookups also
read a key of its own, so decisions an earlier version kept so are still found.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any

import msgpack

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.outcome import Decision
from cdc_verify.native import NATIVE
from cdc_verify.pipeline.redis.connection import AsyncClient

# Hashes per second of ULID time: at 10k events/s each holds ~80 fields, under Redis'
# default hash-max-listpack-entries (128); faster streams want that raised (docs).
SHARDS = 128
# Redis' default hash-max-listpack-value: a longer field turns its hash into a hash table.
LISTPACK_MAX_VALUE = 64
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_BYTES = _CROCKFORD + _CROCKFORD.lower()
# Crockford base 32 (case-insensitive) -> the digits int(..., 32) reads (byte tables:
# this runs twice per event, and bytes.translate is a C loop).
_TO_INT32 = bytes.maketrans(_ULID_BYTES, b"0123456789abcdefghijklmnopqrstuv" * 2)
# The generations' rule, which both scripts begin with.
GENERATIONS_LUA = files(__package__).joinpath("decisions.lua").read_text(encoding="utf-8")
OWN_KEY = -1  # filing()'s shard hash of an event_id that keeps a key of its own


def ulid_ms(event_id: str) -> int | None:
    """The millisecond a ULID was made, or None if `event_id` is no ULID."""
    return _ulid_ms(event_id.encode("utf-8", "surrogatepass"))


def _ulid_ms(raw: bytes) -> int | None:
    """`ulid_ms` of an event_id's UTF-8: any other character than the 32 of a ULID is
    a byte the translation leaves, and so is each byte of a non-ASCII one."""
    if len(raw) != 26 or raw[0] > 0x37 or raw.translate(None, _ULID_BYTES):  # 0x37: "7"
        return None
    return int(raw[:10].translate(_TO_INT32), 32)


Filing = tuple[str, int, int]  # filing()'s answer


def pure_filing(decisions_prefix: str, event_id: str) -> Filing:
    """Where the event's decision is kept: (its ULID hash, the end of that hash's second,
    -1); or ("", 0, crc32) for a generation's hash (decisions.lua picks it); or
    ("", 0, OWN_KEY) for a key of its own.

    The pure path of `filing`, and the reference of the native module's Filer, which
    mirrors it with these constants (and hands it an event_id that is no UTF-8)."""
    raw = event_id.encode()
    ms = _ulid_ms(raw)
    if ms is not None:
        second = ms // 1000
        return f"{decisions_prefix}{second}:{zlib.crc32(raw) % SHARDS}", second * 1000 + 1000, -1
    if len(raw) > LISTPACK_MAX_VALUE:
        return "", 0, OWN_KEY
    return "", 0, zlib.crc32(raw)


def native_filing(native: Any) -> Callable[[str, str], Filing]:
    """`pure_filing` by the compiled module `native` (native/src/lib.rs): its Filer is
    given this module's constants and hands back to `pure_filing` what it cannot file."""
    filing: Callable[[str, str], Filing] = native.Filer(
        pure_filing, SHARDS, LISTPACK_MAX_VALUE, OWN_KEY, _CROCKFORD
    ).filing
    return filing


# Once per event: the native one takes about a fifth of the time (bench/native.py).
filing = pure_filing if NATIVE is None else native_filing(NATIVE)


# KEYS[1]: the generations' registry (a state key: it routes the call on a Cluster, where
# every decision key shares its hash tag). ARGV: the prefix of a key of its own, of the
# hashes, the retention, and the event_ids as one flat msgpack array (redis-py encodes
# each ARGV in Python; msgpack packs them all in C): per event_id a ULID's (hash,
# event_id), or another's ('', event_id, shard hash, entry ms or '': at any time), or
# ('', event_id, '', '') for a key of its own. Returns the decisions found only, each
# after its event's place in the array (1, 2, ...): most lookups find none.
LOOKUP_SCRIPT = (
    GENERATIONS_LUA
    + """
local prefix, hashes, retention, out = ARGV[1], ARGV[2], tonumber(ARGV[3]), {}
local L = cmsgpack.unpack(ARGV[4])
local gens, i, n = nil, 1, 0
while i <= #L do
  n = n + 1
  local bucket, eid = L[i], L[i + 1]
  local value = false
  if bucket ~= '' then
    value = redis.call('HGET', bucket, eid)
    i = i + 2
  else
    if L[i + 2] ~= '' then
      gens = gens or gen_load(KEYS[1], hashes)
      value = gen_find(gens, eid, L[i + 2], L[i + 3], retention)
    end
    i = i + 4
  end
  if not value then value = redis.call('GET', prefix .. eid) end
  if value and value ~= '' then
    out[#out + 1] = n
    out[#out + 1] = value
  end
end
return out
"""
)
# The events' array: strings as msgpack's str type (Lua reads both the same).
_pack = msgpack.Packer(use_bin_type=False).pack


class DecisionStore:
    """Reads remembered decisions (the commit script writes them)."""

    def __init__(self, client: AsyncClient, keys: WorkerKeys, retention_ms: int = 0) -> None:
        """`retention_ms`: --decided-retention, for lookups that name an entry's time."""
        self._prefix = keys.decided_prefix
        self._buckets = keys.decisions_prefix
        self._route = [keys.decision_generations]
        self._retention_ms = retention_ms
        self._script = client.register_script(LOOKUP_SCRIPT)

    async def lookup(
        self, events: Mapping[str, int | None], filed: dict[str, Filing] | None = None
    ) -> dict[str, Decision | ValueError]:
        """Each known decision of `events` (event_id -> the entry-id ms of an entry of it,
        or None: at any time); a ValueError for a value we did not write. `filed`: where
        to keep each event's filing (the commit needs it again)."""
        if not events:
            return {}
        flat: list[str | int] = []
        buckets = self._buckets
        for event_id, at_ms in events.items():
            filed_as = filing(buckets, event_id)
            if filed is not None:
                filed[event_id] = filed_as
            bucket, _, shard_hash = filed_as
            if bucket:  # a ULID's, as fast as before generations
                flat += (bucket, event_id)
            elif shard_hash == OWN_KEY:
                flat += ("", event_id, "", "")
            else:
                flat += ("", event_id, shard_hash, "" if at_ms is None else at_ms)
        args = (self._prefix, self._buckets, self._retention_ms, _pack(flat))
        replies = await self._script(keys=self._route, args=args)
        found: dict[str, Decision | ValueError] = {}
        if not replies:
            return found
        ids = list(events)
        for place, value in zip(replies[::2], replies[1::2], strict=True):
            event_id = ids[int(place) - 1]
            try:
                found[event_id] = Decision.decode(value)
            except ValueError as exc:
                found[event_id] = exc
        return found
