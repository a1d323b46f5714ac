"""One Redis stream entry as the core sees it: no Redis types, just bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdc_verify.core.envelope import Envelope, open_entry
from cdc_verify.native import NATIVE
from cdc_verify.schemas.verdicts import Side

PRODUCTION = Side.PRODUCTION
SISTER = Side.SISTER

MAX_EVENT_ID_BYTES = 256


@dataclass(slots=True)
class StreamEntry:
    """An entry read from one side's stream.

    `arrival_ms` is the millisecond part of the Redis entry id: the time Redis
    accepted the entry. Grace windows are measured on it rather than on the
    producer's `ts_ms`, because it is monotonic per stream and cannot be garbage.
    `event_id` is None when the entry has no usable one; `problem` then says why, or is
    None for a tombstone (an entry its envelope says stands for no change).
    """

    side: Side
    entry_id: str
    fields: dict[bytes, bytes]
    arrival_ms: int = field(init=False)
    event_id: str | None = field(init=False)
    problem: str | None = field(init=False)
    # entry_bytes', once asked for (-1: not yet): the read budget and the waiting room
    # both ask.
    size: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.arrival_ms = entry_id_ms(self.entry_id)
        self.event_id, self.problem = usable_event_id(self.fields)
        self.size = -1

    @classmethod
    def restore(
        cls, side: Side, entry_id: str, arrival_ms: int, fields: dict[bytes, bytes], event_id: str
    ) -> StreamEntry:
        """An entry that was already parsed and found usable: no checks again."""
        entry = object.__new__(cls)
        entry.side, entry.entry_id, entry.fields = side, entry_id, fields
        entry.arrival_ms, entry.event_id, entry.problem = arrival_ms, event_id, None
        entry.size = -1
        return entry

    @classmethod
    def from_redis(
        cls,
        side: Side,
        entry_id: bytes | str,
        fields: dict[bytes, bytes] | None,
        envelope: Envelope | None = None,
    ) -> StreamEntry:
        """The entry as `envelope` reads it (None: the cdc-verify envelope, as is)."""
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode("ascii")
        if not fields:
            # XADD cannot make an entry without fields: this one was trimmed away while pending.
            entry = cls(side, entry_id, {})
            entry.problem = "entry was deleted from the stream before it was verified"
            return entry
        if envelope is None:
            return cls(side, entry_id, fields)
        canonical, problem = open_entry(envelope, fields)
        if canonical is None:
            # Malformed (or a tombstone): the record shows the entry as it came, with the
            # envelope's reason.
            entry = object.__new__(cls)
            entry.side, entry.entry_id, entry.fields = side, entry_id, fields
            entry.arrival_ms, entry.event_id, entry.problem = entry_id_ms(entry_id), None, problem
            entry.size = -1
            return entry
        return cls(side, entry_id, canonical)


ENTRY_OVERHEAD_BYTES = 100  # of an entry's memory that is not its field names and values

# A read's fields: a dict as redis-py parses them, Redis' flat [name, value, ...] list as
# the reads that skip that parsing get them, or None (an entry deleted while pending).
ReplyFields = dict[bytes, bytes] | list[bytes] | None


def from_reply(
    side: Side, entry_id: bytes | str, fields: ReplyFields, envelope: Envelope | None = None
) -> StreamEntry:
    """`from_redis` of one item of a read, whatever form its fields come in."""
    if isinstance(fields, list):
        fields = fields_dict(fields)
    return StreamEntry.from_redis(side, entry_id, fields, envelope)


def native_reader(native: Any, pure: Any = from_reply) -> Any:
    """An EntryReader of the compiled module `native` (native/src/lib.rs): it mirrors
    `from_reply` without an envelope, building the common entry itself and handing any
    other to `pure` (from_reply), so the rules stay here."""
    return native.EntryReader(
        StreamEntry, object.__new__, pure, b"event_id", MAX_EVENT_ID_BYTES, ENTRY_OVERHEAD_BYTES
    )


_READER = None if NATIVE is None else native_reader(NATIVE)  # None: the pure path


def read_entries(
    side: Side,
    items: Iterable[Sequence[Any]],
    envelope: Envelope | None = None,
) -> list[StreamEntry]:
    """A read's (entry_id, fields) items as entries: `from_reply` of each."""
    if envelope is None and _READER is not None:
        items = list(items)
        try:
            entries: list[StreamEntry] = _READER.read(side, items)
            return entries
        except Exception:
            pass  # the pure path raises it again, or it was the native module's own
    return [from_reply(side, eid, fields, envelope) for eid, fields in items]


def is_tombstone(entry: StreamEntry) -> bool:
    """An entry that stands for no change: settled and counted, never verdicted."""
    return entry.event_id is None and entry.problem is None


def entry_bytes(entry: StreamEntry) -> int:
    """About how much memory the entry holds: what the byte caps count."""
    size = entry.size
    if size < 0:
        fields = entry.fields
        size = ENTRY_OVERHEAD_BYTES + sum(map(len, fields)) + sum(map(len, fields.values()))
        entry.size = size
    return size


def fields_dict(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A flat [field, value, ...] list as a dict (a repeated name: the last one wins)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def entry_sort_key(entry: StreamEntry) -> tuple[int, int, int]:
    """Order of entries across both streams: entry-id time, sequence, production first."""
    seq = entry.entry_id.partition("-")[2]
    return entry.arrival_ms, int(seq) if seq.isdigit() else 0, entry.side is not PRODUCTION


def entry_id_ms(entry_id: str) -> int:
    ms, _, _ = entry_id.partition("-")
    return int(ms)


def usable_event_id(fields: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """The entry's event_id, or None and the reason it is unusable."""
    raw = fields.get(b"event_id")
    if raw is None:
        return None, "no event_id field"
    if not raw:
        return None, "event_id is empty"
    if len(raw) > MAX_EVENT_ID_BYTES:
        return None, f"event_id is {len(raw)} bytes long (limit {MAX_EVENT_ID_BYTES})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "event_id is not valid UTF-8"
    if not text.isprintable() or text != text.strip() or " " in text:
        return None, "event_id has whitespace or control characters"
    return text, None


def parse_version(fields: dict[bytes, bytes]) -> int | None:
    """`version` as an int, or None when absent or not a decimal integer."""
    raw = fields.get(b"version")
    if raw is None or not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)
