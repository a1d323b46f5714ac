from cdc_verify.pipeline.core.entry import PRODUCTION, StreamEntry
from cdc_verify.pipeline.core.waiting import STANDARD_FIELDS, WaitingRoom


def standard(event_id: str, ms: int) -> StreamEntry:
    fields = {k: b"v-" + k for k in reversed(STANDARD_FIELDS)}  # producer's own order
    fields[b"event_id"] = event_id.encode()
    fields[b"payload"] = bytes(range(256))
    return StreamEntry(PRODUCTION, f"{ms}-3", fields)


def test_entries_come_back_exactly_as_they_went_in():
    room = WaitingRoom(PRODUCTION)
    odd = StreamEntry(PRODUCTION, "200-0", {b"event_id": "é1".encode(), b"\xff": b"\x00"})
    first, second = standard("A", 100), standard("B", 150)
    for entry in (first, second, odd):
        room.put(entry)
    assert len(room) == 3 and "B" in room and room.entry_id("B") == "150-3"
    assert room.oldest_arrival() == 100
    assert room.take("B") == second
    assert room.take("B") is None
    assert room.take_oldest() == first
    assert list(room.drain()) == [odd]
    assert room.oldest_arrival() is None and len(room) == 0


def test_old_and_surplus_entries_are_packed_and_order_is_kept():
    room = WaitingRoom(PRODUCTION, young_limit=2)
    entries = [standard(f"E{i}", 100 + i) for i in range(5)]
    for e in entries:
        room.put(e)
    assert len(room._young) == 2 and len(room._packed) == 3  # surplus packed
    room.pack_older_than(104)
    assert len(room._young) == 1 and len(room._packed) == 4
    assert room.entry_id("E2") == "102-3"
    assert room.take("E4") == entries[4]  # young
    assert room.take("E1") == entries[1]  # packed
    assert [e.event_id for e in room.drain()] == ["E0", "E2", "E3"]
