"""What the forwarders put on the entries topic, msgpack-encoded.

Two kinds, on the same topic so that Kafka's per-partition order carries the
promise a watermark makes: a partition sees a forwarder's watermark only after
every entry that forwarder sent to it before.

  batch   the entries one forwarder read in one round that belong to this
          partition, then (optionally) its watermarks: "I have nothing left to
          send on side S up to ms M". One Kafka message carries many entries
          because Faust's cost is per message, not per byte.
  retire  "forwarder F is gone; its entries were re-sent by someone else"

A partition is chosen by event_id, so both sides of an event meet in one join.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import msgpack

from cdc_verify.core.entry import StreamEntry
from cdc_verify.schemas.verdicts import SIDE_CODE, STREAM_SIDES, Side

# An entry or a watermark is of one stream: the SIDE_CODEs of those two only.
SIDE_OF = {SIDE_CODE[side]: side for side in STREAM_SIDES}
# A batch is cut into messages of about this size; an entry bigger than it goes alone.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Watermark:
    """A forwarder's promise: it sends no more entries of `side` from before `ms`
    (a ReadPosition's before_ms; -1 when it has not read anything yet)."""

    forwarder: str
    side: Side
    ms: int


@dataclass(frozen=True, slots=True)
class Batch:
    forwarder: str
    entries: list[StreamEntry]
    marks: list[Watermark]  # applied after the entries


@dataclass(frozen=True, slots=True)
class Retire:
    forwarders: tuple[str, ...]


Message = Batch | Retire


def partition_of(entry: StreamEntry, partitions: int) -> int:
    # Entries with no usable event_id still need a partition: their own id spreads them.
    key = entry.event_id or f"{entry.side.value}/{entry.entry_id}"
    return zlib.crc32(key.encode()) % partitions


def encode_batches(
    forwarder: str, entries: Sequence[StreamEntry], marks: Mapping[Side, int] | None
) -> Iterator[bytes]:
    """Messages for one partition: the entries in chunks, the marks on the last one.

    Yields nothing when there are neither entries nor marks.
    """
    chunk: list[list[object]] = []
    size = 0
    for entry in entries:
        item: list[object] = [SIDE_CODE[entry.side], entry.entry_id, entry.fields]
        if entry.event_id is None:
            # Another envelope's reason ("" for a tombstone): the fields alone lack it.
            item.append(entry.problem or "")
        chunk.append(item)
        size += len(entry.entry_id) + sum(len(k) + len(v) for k, v in entry.fields.items())
        if size >= CHUNK_BYTES:
            yield msgpack.packb(["b", forwarder, chunk, []])
            chunk, size = [], 0
    if chunk or marks:
        coded = [[SIDE_CODE[side], ms] for side, ms in (marks or {}).items()]
        yield msgpack.packb(["b", forwarder, chunk, coded])


def _entry(side: int, entry_id: bytes, fields: dict[bytes, bytes], *problem: bytes) -> StreamEntry:
    """An entry as the forwarder read it: its fields are canonical (core/envelope.py) or,
    for a malformed one, come with the reason the forwarder's envelope gave (empty: a
    tombstone)."""
    entry = StreamEntry.from_redis(SIDE_OF[side], entry_id, fields)
    if problem:
        entry.event_id, entry.problem = None, problem[0].decode("utf-8", "replace") or None
    return entry


def encode_retire(retire: Retire) -> bytes:
    return msgpack.packb(["r", list(retire.forwarders)])


def decode(raw: bytes) -> Message:
    """Raises ValueError on anything a forwarder did not write."""
    try:
        kind, *rest = msgpack.unpackb(raw, raw=True, strict_map_key=False)
        if kind == b"b":
            name, entries, marks = rest
            forwarder = name.decode()
            return Batch(
                forwarder,
                [_entry(*item) for item in entries],
                [Watermark(forwarder, SIDE_OF[s], int(ms)) for s, ms in marks],
            )
        if kind == b"r":
            (forwarders,) = rest
            return Retire(tuple(f.decode() for f in forwarders))
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a forwarder message: {exc}") from exc
    raise ValueError(f"unknown message kind {kind!r}")
