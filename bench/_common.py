"""Helpers shared by the benchmarks (not part of the package; bench/ is not installed)."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import redis

from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side
from cdc_verify.simulate.corpus import generate

PRIMARY = frozenset(v.value for v in PRIMARY_VERDICTS)

# RFC 4648 base32 -> Crockford base32 (the ULID alphabet), for fast fresh event ids.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_TIME_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def machine_busy_s() -> float:
    """CPU seconds this machine's cores spent busy so far (/proc/stat through psutil):
    all but idle and I/O wait; guest time is already in user time on Linux."""
    import psutil

    t = psutil.cpu_times()
    counted = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(t, name, 0.0) for name in counted)


def src_digest() -> str:
    """Short hash of the package's sources, to tell which code a figure belongs to."""
    import cdc_verify

    root = Path(cdc_verify.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def versions(client: redis.Redis) -> str:
    import hiredis

    info = client.info("server")
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        f"redis-py {redis.__version__} + hiredis {hiredis.__version__}, "
        f"Redis {info['redis_version']}; {os.cpu_count()} CPUs, {platform.machine()};"
        f" cdc_verify sources {src_digest()}"
    )


def ulid_prefix(ms: int) -> str:
    """The 10-char time part of a ULID."""
    chars = []
    for _ in range(10):
        chars.append(_TIME_CHARS[ms & 31])
        ms >>= 5
    return "".join(reversed(chars))


def fresh_event_ids(rng: random.Random, ms: int | None = None) -> Iterator[bytes]:
    """Endless unique 26-char ULID texts (time part fixed, 80 random bits each)."""
    prefix = ulid_prefix(ms if ms is not None else int(time.time() * 1000)).encode()
    seen: set[bytes] = set()
    while True:
        eid = prefix + base64.b32encode(rng.randbytes(10)).translate(_CROCKFORD)
        if eid not in seen:  # 80 random bits: a repeat never happens, but be exact
            seen.add(eid)
            yield eid


def clean_pairs(events: int, seed: int) -> list[tuple[dict[bytes, bytes], dict[bytes, bytes]]]:
    """(production fields, sister fields) of `events` clean changes: realistic payloads
    (msgpack on production, Go-ordered msgpack on the sister side) that verify as `match`."""
    corpus = generate(events, seed=seed, mix={"clean": 1.0}, malformed=0)
    sister = {e.event_id: e.fields for e in corpus.side(Side.SISTER)}
    return [(e.fields, sister[e.event_id]) for e in corpus.side(Side.PRODUCTION)]


def with_event_id(fields: dict[bytes, bytes], event_id: bytes) -> dict[bytes, bytes]:
    out = dict(fields)
    out[b"event_id"] = event_id
    return out


def verdict_stream_summary(
    client: redis.Redis, stream: str, chunk: int = 10_000
) -> tuple[Counter[str], int, int]:
    """(records per verdict, primary records, distinct event_ids with a primary) in `stream`,
    the worker's durable output: the source of truth for "exactly one primary per event"."""
    counts: Counter[str] = Counter()
    primary_ids: set[bytes] = set()
    primaries = 0
    start = "-"
    while True:
        batch = client.xrange(stream, start, "+", count=chunk)
        for _, fields in batch:
            verdict = fields.get(b"verdict", b"").decode()
            counts[verdict] += 1
            if verdict in PRIMARY:
                primaries += 1
                primary_ids.add(fields.get(b"event_id", b""))
        if len(batch) < chunk:
            return counts, primaries, len(primary_ids)
        start = "(" + batch[-1][0].decode()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]
