from cdc_verify.core.entry import PRODUCTION, StreamEntry
from cdc_verify.core.waiting import STANDARD_FIELDS, WaitingRoom
from cdc_verify.pipeline.runners.spill import SpillDirectory


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


def big(event_id: str, ms: int, size: int = 100_000) -> StreamEntry:
    entry = standard(event_id, ms)
    entry.fields[b"payload"] = bytes([ms % 256]) * size
    return entry


def test_big_entries_past_the_byte_cap_are_spilled_oldest_first_and_come_back(tmp_path):
    spill = SpillDirectory(tmp_path)
    room = WaitingRoom(PRODUCTION, young_limit=3, max_bytes=250_000, spill=spill)
    entries = [big(f"B{i}", 100 + i) for i in range(8)]
    small = standard("S", 90)
    room.put(small)  # small entries are not counted: never spilled
    for entry in entries:
        room.put(entry)
    assert room.big_bytes <= 250_000 and room.spilled == 6 and spill.files == 6
    assert spill.path is not None and (spill.path.stat().st_mode & 0o777) == 0o700
    assert spill.bytes > 6 * 100_000
    # Spilled entries keep their place and their id without being read back.
    assert room.oldest_arrival() == 90 and room.entry_id("B0") == "100-3"
    room.pack_older_than(103)  # spilled ones move from young to packed as they are
    assert room.take("B2") == entries[2] and spill.files == 5
    assert room.take("B7") == entries[7]  # in memory
    assert [e.event_id for e in room.drain()] == ["S", "B0", "B1", "B3", "B4", "B5", "B6"]
    assert spill.files == 0 and spill.bytes == 0 and room.big_bytes == 0
    assert list(spill.path.iterdir()) == []
    spill.close()
    assert not any(tmp_path.iterdir())


def test_without_a_spill_nothing_is_capped():
    room = WaitingRoom(PRODUCTION, max_bytes=1)
    for i in range(3):
        room.put(big(f"B{i}", 100 + i))
    assert room.spilled == 0 and len(room) == 3


def test_a_spill_that_cannot_write_keeps_the_entries_in_memory(tmp_path, caplog):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    spill = SpillDirectory(not_a_directory)
    room = WaitingRoom(PRODUCTION, max_bytes=150_000, spill=spill)
    entries = [big(f"B{i}", 100 + i) for i in range(4)]
    for entry in entries:
        room.put(entry)
    assert spill.failed and room.spilled == 0 and spill.files == 0
    assert "cannot spill waiting entries" in caplog.text
    assert list(room.drain()) == entries


def test_a_packed_entry_gives_its_id_without_its_fields_being_unpacked():
    room = WaitingRoom(PRODUCTION, young_limit=0)
    longest = f"{2**64 - 1}-{2**64 - 1}"  # the longest id Redis makes: 41 characters
    big = standard("A", 100)
    big.fields[b"payload"] = bytes(1_000_000)
    odd = StreamEntry(PRODUCTION, longest, {b"event_id": b"B", b"\xff": b"\x00"})
    room.put(big)
    room.put(odd)
    assert len(room._packed) == 2
    assert (room.entry_id("A"), room.entry_id("B")) == ("100-3", longest)
    assert room.take("A") == big and room.take("B") == odd
