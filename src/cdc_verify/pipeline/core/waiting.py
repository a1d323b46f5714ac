"""Events waiting for their partner, held compactly: the memory target is 1M in < 1 GiB.

A waiting event is one bytes object (arrival time, entry id and field values)
instead of a StreamEntry with a dict of eight bytes objects: a third of the
memory. Entries are rebuilt when they leave, which happens once per event.
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
    return StreamEntry(side, entry_id, fields)


class WaitingRoom:
    """One side's waiting events by event_id, oldest arrival first."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self._events: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def put(self, entry: StreamEntry) -> None:
        assert entry.event_id is not None and entry.side is self.side
        self._events[entry.event_id] = _pack(entry)

    def entry_id(self, event_id: str) -> str | None:
        """The waiting entry's id, without taking it out."""
        blob = self._events.get(event_id)
        if blob is None:
            return None
        return _unpack(self.side, event_id, blob).entry_id

    def take(self, event_id: str) -> StreamEntry | None:
        blob = self._events.pop(event_id, None)
        return None if blob is None else _unpack(self.side, event_id, blob)

    def oldest_arrival(self) -> int | None:
        if not self._events:
            return None
        blob = next(iter(self._events.values()))
        return int.from_bytes(blob[:_PREFIX], "big")

    def take_oldest(self) -> StreamEntry:
        event_id, blob = self._events.popitem(last=False)
        return _unpack(self.side, event_id, blob)

    def drain(self) -> Iterator[StreamEntry]:
        while self._events:
            yield self.take_oldest()
