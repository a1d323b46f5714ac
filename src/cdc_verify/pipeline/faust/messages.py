"""What the forwarders put on the entries topic, msgpack-encoded.

Three kinds, all on the same topic so that Kafka's per-partition order carries
the promise a watermark makes: a partition sees a forwarder's watermark only
after every entry that forwarder sent to it before.

  entry      one stream entry, keyed by event_id (the join key)
  watermark  "I, forwarder F, have nothing left to send on side S up to ms M"
  retire     "forwarder F is gone; its entries were re-sent by someone else"
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from cdc_verify.pipeline.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.schemas.verdicts import Side

SIDE_CODE = {PRODUCTION: 1, SISTER: 2}
SIDE_OF = {1: PRODUCTION, 2: SISTER}


@dataclass(frozen=True, slots=True)
class Watermark:
    forwarder: str
    side: Side
    ms: int


@dataclass(frozen=True, slots=True)
class Retire:
    forwarders: tuple[str, ...]


Message = StreamEntry | Watermark | Retire


def entry_key(entry: StreamEntry) -> bytes:
    # Entries with no usable event_id still need a partition: their own id spreads them.
    return (entry.event_id or f"{entry.side.value}/{entry.entry_id}").encode()


def encode_entry(entry: StreamEntry) -> bytes:
    return msgpack.packb(["e", SIDE_CODE[entry.side], entry.entry_id, entry.fields])


def encode_watermark(mark: Watermark) -> bytes:
    return msgpack.packb(["w", mark.forwarder, SIDE_CODE[mark.side], mark.ms])


def encode_retire(retire: Retire) -> bytes:
    return msgpack.packb(["r", list(retire.forwarders)])


def decode(raw: bytes) -> Message:
    """Raises ValueError on anything a forwarder did not write."""
    try:
        kind, *rest = msgpack.unpackb(raw, raw=True, strict_map_key=False)
        if kind == b"e":
            side, entry_id, fields = rest
            return StreamEntry.from_redis(SIDE_OF[side], entry_id, fields)
        if kind == b"w":
            forwarder, side, ms = rest
            return Watermark(forwarder.decode(), SIDE_OF[side], int(ms))
        if kind == b"r":
            (forwarders,) = rest
            return Retire(tuple(f.decode() for f in forwarders))
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a forwarder message: {exc}") from exc
    raise ValueError(f"unknown message kind {kind!r}")
