"""Events waiting for their partner, held compactly: the memory target is 1M in < 1 GiB.

Most partners arrive within moments, so a young waiting entry stays an object.
Once it has waited a while (or young ones pile up), it is packed into one bytes
object (arrival time, entry id and field values) instead of a StreamEntry with a
dict of eight bytes objects: a third of the memory. It is rebuilt when it leaves.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import msgpack

from cdc_verify.pipeline.core.entry import StreamEntry
from cdc_verify.schemas.verdicts import Side

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


def _unpack(side: Side, event_id: str, blob: bytes) -> StreamEntry:
    entry_id, stored = msgpack.unpackb(blob[_PREFIX:], raw=False, strict_map_key=False)
    if type(stored) is list:
        fields = dict(zip(STANDARD_FIELDS, stored, strict=True))
        fields[b"event_id"] = event_id.encode()
    else:
        fields = stored
    arrival_ms = int.from_bytes(blob[:_PREFIX], "big")
    return StreamEntry.restore(side, entry_id, arrival_ms, fields, event_id)


class WaitingRoom:
    """One side's waiting events by event_id, oldest arrival first.

    `_packed` holds the older events and `_young` the newer ones; entries move
    from the front of `_young` to the back of `_packed`, so order is kept.
    """

    def __init__(self, side: Side, young_limit: int = 20_000) -> None:
        self.side = side
        self._young: OrderedDict[str, StreamEntry] = OrderedDict()
        self._packed: OrderedDict[str, bytes] = OrderedDict()
        self._young_limit = young_limit

    def __len__(self) -> int:
        return len(self._young) + len(self._packed)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._young or event_id in self._packed

    def put(self, entry: StreamEntry) -> None:
        assert entry.event_id is not None and entry.side is self.side
        self._young[entry.event_id] = entry
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
            self._packed[event_id] = _pack(entry)

    def entry_id(self, event_id: str) -> str | None:
        """The waiting entry's id, without taking it out."""
        entry = self._young.get(event_id)
        if entry is not None:
            return entry.entry_id
        blob = self._packed.get(event_id)
        return None if blob is None else _unpack(self.side, event_id, blob).entry_id

    def take(self, event_id: str) -> StreamEntry | None:
        entry = self._young.pop(event_id, None)
        if entry is not None:
            return entry
        blob = self._packed.pop(event_id, None)
        return None if blob is None else _unpack(self.side, event_id, blob)

    def oldest_arrival(self) -> int | None:
        if self._packed:
            return int.from_bytes(next(iter(self._packed.values()))[:_PREFIX], "big")
        if self._young:
            return next(iter(self._young.values())).arrival_ms
        return None

    def take_oldest(self) -> StreamEntry:
        if self._packed:
            event_id, blob = self._packed.popitem(last=False)
            return _unpack(self.side, event_id, blob)
        return self._young.popitem(last=False)[1]

    def drain(self) -> Iterator[StreamEntry]:
        while self:
            yield self.take_oldest()
