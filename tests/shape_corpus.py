"""A corpus of known shapes: four kinds of comment, ten events each, ids and texts all
different (so they are no part of any shape). The sister never delivers the comments
with a GIF, mismatches one link comment and half of the removed ones."""

from __future__ import annotations

import random
from typing import Any

from cdc_verify.core.entry import PRODUCTION, SISTER, Side, StreamEntry
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

KINDS = {
    "plain": {},
    "gif": {"media": [{"type": "gif", "url": "u", "width": 1, "height": 1,
                       "content_type": "image/gif"}]},
    "link": {"rich_text": [{"e": "link", "t": "see", "u": "https://example.com"}]},
    "removed": {"approval_state": "removed"},
}  # fmt: skip

# What coverage says of each kind.
EXPECTED = {
    "plain": {"status": "verified", "production": 10, "match": 10, "mismatch": 0,
              "unverified": 0},
    "gif": {"status": "never_verified", "production": 10, "match": 0, "mismatch": 0,
            "unverified": 10},
    "link": {"status": "mismatched", "production": 10, "match": 9, "mismatch": 1,
             "unverified": 0},
    "removed": {"status": "mismatched", "production": 10, "match": 5, "mismatch": 5,
                "unverified": 0},
}  # fmt: skip


def comment(kind: str, n: int) -> dict:
    base = sample_comment(random.Random(n), f"t1_{kind}{n}")
    base.update(
        rich_text=None, media=None, awards=[], distinguished=None, edited=False, gilded=0,
        approval_state="approved", automod_filtered=False, stickied=False,
    )  # fmt: skip
    base.update(KINDS[kind])
    return base


def stream_fields(ms: int, event_id: str, value: dict) -> dict[bytes, bytes]:
    return {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": b"t1_x", b"version": b"1", b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack", b"payload": encode_msgpack(value),
    }  # fmt: skip


def entry(side: Side, ms: int, event_id: str, value: dict) -> StreamEntry:
    return StreamEntry(side, f"{ms}-0", stream_fields(ms, event_id, value))


def known_shapes(start_ms: int = 1000) -> tuple[list[StreamEntry], list[StreamEntry]]:
    """(production's entries, the sister's), in stream order."""
    production, sister = [], []
    ms = start_ms
    for kind in KINDS:
        for n in range(10):
            ms += 10
            event_id = f"{kind}-{n}"
            value = comment(kind, n)
            production.append(entry(PRODUCTION, ms, event_id, value))
            if kind == "gif":
                continue
            twin = dict(value)
            if kind == "link" and n == 3:
                twin["score"] = value["score"] + 1
            if kind == "removed" and n >= 5:
                twin["body"] = twin["body"][:-1] + "?"
            sister.append(entry(SISTER, ms + 1, event_id, twin))
    return production, sister


def kind_of(parts: Any) -> str:
    """Which kind a shape (its parts, described) is."""
    parts = set(parts)
    return ("gif" if "/media/*/type str=gif" in parts else
            "link" if "/rich_text/*/e str=link" in parts else
            "removed" if "/approval_state str=removed" in parts else "plain")  # fmt: skip


def by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """coverage.json's shapes (or `coverage --json`'s) as EXPECTED is written."""
    keys = ("status", "production", "match", "mismatch", "unverified")
    return {kind_of(row["parts"]): {k: row[k] for k in keys} for row in rows}
