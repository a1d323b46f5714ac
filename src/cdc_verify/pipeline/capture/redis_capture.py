"""`cdc-verify capture`: a consistent snapshot of one stream, written as a capture file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from cdc_verify import __version__
from cdc_verify.pipeline.capture.format import CaptureWriter
from cdc_verify.pipeline.redis.connection import redact
from cdc_verify.pipeline.redis.ranges import last_entry_id, read_range
from cdc_verify.timestamps import iso_now


def parse_bound(text: str | None, *, end: bool) -> str:
    """--from/--to as an XRANGE bound: an entry id, epoch ms, or an ISO 8601 time."""
    if text is None or text == "":
        return "+" if end else "-"
    if re.fullmatch(r"\d+(-\d+)?", text):
        return text  # an id, or ms (XRANGE reads ms alone as the whole millisecond)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is neither an entry id (1700000000000-0), epoch ms, nor an ISO 8601 time"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def capture_stream(
    client: redis.Redis,
    key: str,
    out: Path,
    start: str = "-",
    end: str = "+",
    source: str = "",
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write `key`'s entries from `start` to `end` to `out`; returns how many.

    An open end is pinned to the stream's last entry when the capture starts, so a
    stream written to meanwhile yields a consistent snapshot, not a moving target.
    """
    if end == "+":
        end = last_entry_id(client, key) or "0-0"  # empty stream: an empty capture
    if on_start:
        on_start(client.xlen(key))
    header: dict[str, Any] = {
        "stream": key,
        "source": redact(source),
        "from": start,
        "to": end,
        "captured_at": iso_now(),
        "tool": f"cdc-verify {__version__}",
    }
    with CaptureWriter(out, header) as writer:
        for page in read_range(client, key, start, end):
            for entry_id, flat in page:
                writer.write(entry_id, flat)
            if on_progress:
                on_progress(len(page))
    return writer.count
