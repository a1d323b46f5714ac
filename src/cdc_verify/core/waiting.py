"""Events waiting for their partner, held compactly: the memory target is 1M in < 1 GiB.

Most partners arrive within moments, so a young waiting entry stays an object.
Once it has waited a while (or young ones pile up), it is packed into one bytes
object (arrival time, entry id and field values) instead of a StreamEntry with a
dict of eight bytes objects: a third of the memory. It is rebuilt when it leaves.

Big entries (BIG_BYTES and more) are also counted against a byte cap: past it, the
oldest of them are handed to a `Spill` (a runner's: the core does no I/O) and only
their arrival time and entry id stay here, until they leave. Small entries are not
spilled: packed, a million of them fit well under a GiB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple, Protocol

import msgpack

from cdc_verify.core.entry import StreamEntry, entry_bytes
from cdc_verify.schemas.verdicts import Side

BIG_BYTES = 64 * 1024


class Spill(Protocol):
    """Where a waiting room keeps the packed entries it has no room for."""

    def put(self, blob: bytes) -> int | None:
        """Keeps `blob`; returns the handle to take it back by, or None when it cannot
        (the room then keeps its big entries in memory, past the cap)."""
        ...

    def take(self, handle: int) -> bytes:
        """The blob of `handle`, which the spill forgets."""
        ...

    def clear(self) -> None:
        """Forgets every blob (the rooms that held their handles are gone)."""
        ...


class Spilled(NamedTuple):
    """What stays in memory of a spilled entry (the attributes the room reads)."""

    arrival_ms: int
    entry_id: str
    handle: int


# The fields of a well-formed entry, in a fixed order, so only their values are kept.
STANDARD_FIELDS = (
    b"event_id", b"entity", b"op", b"entity_id", b"version", b"ts_ms", b"encoding", b"payload"
)  # fmt: skip
_STANDARD_SET = frozenset(STANDARD_FIELDS)
_PREFIX = 8  # arrival ms, big-endian: the expiry check reads just this


def _pack(entry: StreamEntry) -> bytes:
    fields = entry.fields
    if fields.keys() == _STANDARD_SET:
        # The event_id value is the room's key; keep None in its place.
        values = [None, *(fields[k] for k in STANDARD_FIELDS[1:])]
        body = msgpack.packb((entry.entry_id, values), use_bin_type=True)
    else:
        body = msgpack.packb((entry.entry_id, fields), use_bin_type=True)
    return entry.arrival_ms.to_bytes(_PREFIX, "big") + body


def _arrival(blob: bytes) -> int:
    return int.from_bytes(blob[:_PREFIX], "big")


def _entry_id(blob: bytes) -> str:
    """The entry id of a packed entry, read without unpacking its fields (a 25 MB payload).

    The body is a 2-array (one byte) whose first item is the id: at most 41 characters.
    """
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(blob[_PREFIX + 1 : _PREFIX + 64])
    entry_id: str = unpacker.unpack()
    return entry_id


def _unpack(side: Side, event_id: str, blob: bytes) -> StreamEntry:
    entry_id, stored = msgpack.unpackb(blob[_PREFIX:], raw=False, strict_map_key=False)
    if type(stored) is list:
        fields = dict(zip(STANDARD_FIELDS, stored, strict=True))
        fields[b"event_id"] = event_id.encode()
    else:
        fields = stored
    return StreamEntry.restore(side, entry_id, _arrival(blob), fields, event_id)


class WaitingRoom:
    """One side's waiting events by event_id, oldest arrival first.

    `_packed` holds the older events and `_young` the newer ones; entries move
    from the front of `_young` to the back of `_packed`, so order is kept. A spilled
    entry keeps its place in either, as a `Spilled`.
    """

    def __init__(
        self,
        side: Side,
        young_limit: int = 20_000,
        *,
        max_bytes: int | None = None,
        spill: Spill | None = None,
    ) -> None:
        self.side = side
        self._young: OrderedDict[str, StreamEntry | Spilled] = OrderedDict()
        self._packed: OrderedDict[str, bytes | Spilled] = OrderedDict()
        self._young_limit = young_limit
        self._max_bytes = max_bytes if spill is not None else None
        self._spill = spill
        self._big: OrderedDict[str, int] = OrderedDict()  # in memory, oldest first: bytes
        self.big_bytes = 0  # what the byte cap counts
        self.spilled = 0

    def __len__(self) -> int:
        return len(self._young) + len(self._packed)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._young or event_id in self._packed

    def put(self, entry: StreamEntry) -> None:
        assert entry.event_id is not None and entry.side is self.side
        self._young[entry.event_id] = entry
        if self._max_bytes is not None:
            size = entry_bytes(entry)
            if size >= BIG_BYTES:
                self._big[entry.event_id] = size
                self.big_bytes += size
                while self._max_bytes is not None and self.big_bytes > self._max_bytes:
                    self._spill_oldest_big()
        if len(self._young) > self._young_limit:
            self._pack_oldest(len(self._young) - self._young_limit)

    def pack_older_than(self, arrival_ms: int) -> None:
        """Pack young entries that arrived before `arrival_ms`."""
        young = self._young
        while young:
            entry = next(iter(young.values()))
            if entry.arrival_ms >= arrival_ms:
                return
            self._pack_oldest(1)

    def _pack_oldest(self, count: int) -> None:
        for _ in range(count):
            event_id, entry = self._young.popitem(last=False)
            self._packed[event_id] = entry if isinstance(entry, Spilled) else _pack(entry)

    def _spill_oldest_big(self) -> None:
        assert self._spill is not None
        event_id, size = next(iter(self._big.items()))
        young = self._young.get(event_id)
        if young is not None:
            assert isinstance(young, StreamEntry)
            blob, entry_id = _pack(young), young.entry_id
        else:
            packed = self._packed[event_id]
            assert isinstance(packed, bytes)
            blob, entry_id = packed, _entry_id(packed)
        handle = self._spill.put(blob)
        if handle is None:  # the spill failed (it says why): no cap from now on
            self._max_bytes = None
            return
        spilled = Spilled(_arrival(blob), entry_id, handle)
        (self._young if young is not None else self._packed)[event_id] = spilled
        del self._big[event_id]
        self.big_bytes -= size
        self.spilled += 1

    def entry_id(self, event_id: str) -> str | None:
        """The waiting entry's id, without taking it out."""
        entry = self._young.get(event_id)
        if entry is not None:
            return entry.entry_id
        blob = self._packed.get(event_id)
        if blob is None:
            return None
        if isinstance(blob, Spilled):
            return blob.entry_id
        return _entry_id(blob)

    def take(self, event_id: str) -> StreamEntry | None:
        young = self._young.pop(event_id, None)
        if young is not None:
            return self._left(event_id, young)
        packed = self._packed.pop(event_id, None)
        return None if packed is None else self._left(event_id, packed)

    def oldest_arrival(self) -> int | None:
        if self._packed:
            blob = next(iter(self._packed.values()))
            return blob.arrival_ms if isinstance(blob, Spilled) else _arrival(blob)
        if self._young:
            return next(iter(self._young.values())).arrival_ms
        return None

    def take_oldest(self) -> StreamEntry:
        if self._packed:
            return self._left(*self._packed.popitem(last=False))
        return self._left(*self._young.popitem(last=False))

    def _left(self, event_id: str, held: StreamEntry | bytes | Spilled) -> StreamEntry:
        """The entry of `event_id`, which has just left the room."""
        if self._big:
            self.big_bytes -= self._big.pop(event_id, 0)
        if isinstance(held, StreamEntry):
            return held
        if isinstance(held, Spilled):
            assert self._spill is not None
            self.spilled -= 1
            return _unpack(self.side, event_id, self._spill.take(held.handle))
        assert isinstance(held, bytes)
        return _unpack(self.side, event_id, held)

    def drain(self) -> Iterator[StreamEntry]:
        while self:
            yield self.take_oldest()
