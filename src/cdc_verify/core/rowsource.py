"""The source block of a Debezium record, kept in its verdict record (docs/verdicts.md).

Where a change came from (the LSN, the transaction, the commit time, the database, the
table) differs between any two databases by nature: the row consumer leaves it out of
the row, so it is never compared, and a record that names entries (a mismatch, a race,
an undecodable event, a gap, a duplicate) keeps it per side, to find the change in
each database's log. Read again from the entry only for those records: a match pays
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdc_verify.consumers.row import RowDecodeError, open_record
from cdc_verify.core.bounds import cut_text
from cdc_verify.core.entry import StreamEntry

#: What of the source block a record keeps, in this order.
SOURCE_KEYS = ("lsn", "txId", "ts_ms", "db", "schema", "table", "snapshot")
SOURCE_TEXT_BYTES = 256  # of one string of it (a database or table name is 63 bytes)
_INT_RANGE = range(-(2**63), 2**64)  # an LSN is an unsigned 64-bit number


def source_of(fields: Mapping[bytes, bytes]) -> dict[str, Any] | None:
    """The kept part of a Debezium record's source block; None for an entry of another
    encoding, or one whose payload has no source block to read."""
    if fields.get(b"encoding") != b"debezium":
        return None
    try:
        envelope, _ = open_record(fields.get(b"payload", b""))
    except (RowDecodeError, RecursionError):
        return None
    source = envelope.get("source")
    if type(source) is not dict:
        return None
    out: dict[str, Any] = {}
    for key in SOURCE_KEYS:
        value = source.get(key)
        if isinstance(value, str):
            out[key] = cut_text(value, SOURCE_TEXT_BYTES)
        elif (type(value) is int and value in _INT_RANGE) or type(value) is bool:
            out[key] = value
    return out


def sources_of(*entries: StreamEntry) -> dict[str, dict[str, Any]] | None:
    """Side name -> source_of its entry, for the entries that are Debezium records;
    None when none is."""
    out = {}
    for entry in entries:
        source = source_of(entry.fields)
        if source is not None:
            out[entry.side.value] = source
    return out or None
