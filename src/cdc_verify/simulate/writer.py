"""Writes a corpus to Redis: at once with explicit ids, or paced in real time."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable

import redis
import redis.asyncio as aioredis

from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import Corpus

CHUNK = 1000


def past_base_ms(client: redis.Redis, corpus: Corpus) -> int:
    """A base for `write_corpus` that puts the whole corpus in the past of Redis' clock."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000 - corpus.duration_ms - 60_000


def write_corpus(client: redis.Redis, corpus: Corpus, production: str, sister: str,
                 base_ms: int) -> None:  # fmt: skip
    """XADD every entry with the id `Corpus.entry_ids` predicts (time = base + offset)."""
    for side, key in ((Side.PRODUCTION, production), (Side.SISTER, sister)):
        ids = corpus.entry_ids(side, base_ms)
        entries = corpus.side(side)
        for start in range(0, len(entries), CHUNK):
            pipe = client.pipeline(transaction=False)
            for entry, entry_id in zip(
                entries[start : start + CHUNK], ids[start : start + CHUNK], strict=True
            ):
                # redis-py's XADD wants an invariant dict of its unions; it only reads the fields.
                pipe.xadd(key, entry.fields, id=entry_id)  # type: ignore[arg-type]
            pipe.execute()


async def write_paced(
    client: aioredis.Redis,
    corpus: Corpus,
    production: str,
    sister: str,
    on_written: Callable[[int], None] | None = None,
) -> None:
    """XADD each entry at its offset from now (ids are Redis' clock, as in production)."""
    keyed = [
        [(e.at_ms, i, key, e.fields) for i, e in enumerate(corpus.side(side))]
        for side, key in ((Side.PRODUCTION, production), (Side.SISTER, sister))
    ]
    first_ms = min((entries[0][0] for entries in keyed if entries), default=0)
    start = time.monotonic() - first_ms / 1000
    pipe = client.pipeline(transaction=False)
    pending = 0
    for at_ms, _, key, fields in heapq.merge(*keyed):
        delay = start + at_ms / 1000 - time.monotonic()
        if delay > 0.002:
            if pending:
                await pipe.execute()
                if on_written:
                    on_written(pending)
                pending = 0
            await asyncio.sleep(delay)
        # redis-py's XADD wants an invariant dict of its unions; it only reads the fields.
        pipe.xadd(key, fields)  # type: ignore[arg-type]
        pending += 1
    if pending:
        await pipe.execute()
        if on_written:
            on_written(pending)
