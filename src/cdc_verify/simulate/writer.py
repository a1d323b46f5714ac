"""Writes a corpus to Redis: at once with explicit ids, or paced in real time.

Both writers take one client for both streams, or one per side
(`{Side.PRODUCTION: ..., Side.SISTER: ...}`) when the streams live on two servers.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import Corpus
from cdc_verify.simulate.faults import Expected

CHUNK = 1000
BEHIND_SLICE_S = 0.02  # the most of its schedule a paced writer behind it writes at once
RETRY_S = 0.05  # how often a paced writer tries a server that went away again
# What a server going away looks like to a client (OSError: refused, reset).
CONNECTION_LOST = (redis.ConnectionError, redis.TimeoutError, OSError)

C = TypeVar("C", redis.Redis, aioredis.Redis)
T = TypeVar("T")
SIDES = (Side.PRODUCTION, Side.SISTER)


def per_side(clients: C | Mapping[Side, C]) -> dict[Side, C]:
    """One client for both sides, or one each."""
    if isinstance(clients, Mapping):
        return {side: clients[side] for side in SIDES}
    return dict.fromkeys(SIDES, clients)


def paced_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for `write_paced` that does not retry by itself: a pipeline redis-py
    resent after a lost reply could write entries twice; `write_paced` retries only
    what did not land."""
    return aioredis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 0), socket_timeout=5, socket_connect_timeout=2, **options
    )


def past_base_ms(client: redis.Redis, corpus: Corpus) -> int:
    """A base for `write_corpus` that puts the whole corpus in the past of Redis' clock."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000 - corpus.duration_ms - 60_000


def write_corpus(clients: redis.Redis | Mapping[Side, redis.Redis], corpus: Corpus,
                 production: str, sister: str, base_ms: int) -> None:  # fmt: skip
    """XADD every entry with the id `Corpus.entry_ids` predicts (time = base + offset)."""
    by_side = per_side(clients)
    for side, key in ((Side.PRODUCTION, production), (Side.SISTER, sister)):
        ids = corpus.entry_ids(side, base_ms)
        entries = corpus.side(side)
        for start in range(0, len(entries), CHUNK):
            pipe = by_side[side].pipeline(transaction=False)
            for entry, entry_id in zip(
                entries[start : start + CHUNK], ids[start : start + CHUNK], strict=True
            ):
                # redis-py's XADD wants an invariant dict of its unions; it only reads the fields.
                pipe.xadd(key, entry.fields, id=entry_id)  # type: ignore[arg-type]
            pipe.execute()


@dataclass
class PacedWrite:
    """What `write_paced` did, per side."""

    written: Counter[Side] = field(default_factory=Counter)
    # Entries written later than their time because their server was away: they got
    # later ids (Redis' clock), as a real producer's retried writes would.
    waited: Counter[Side] = field(default_factory=Counter)
    outages: Counter[Side] = field(default_factory=Counter)  # times a server went away
    # The id each entry got, by side and its index in `Corpus.side`: what was really
    # written, which a writer behind its schedule makes differ from the plan.
    entry_ids: dict[Side, dict[int, str]] = field(
        default_factory=lambda: {side: {} for side in SIDES}
    )

    def ids(self, side: Side) -> list[str]:
        """The entry ids of `side`'s entries, in corpus order (all were written)."""
        ids = self.entry_ids[side]
        return [ids[i] for i in range(len(ids))]

    def entry_ms(self, side: Side) -> list[int]:
        """The entry-id times of `side`'s entries, in corpus order (all were written)."""
        return [int(entry_id.partition("-")[0]) for entry_id in self.ids(side)]

    def expected(self, corpus: Corpus) -> dict[str, Expected]:
        """The verdict each event of `corpus` must get as it was written
        (`Corpus.expected_as_written`), not as planned."""
        return corpus.expected_as_written({side: self.entry_ms(side) for side in SIDES})

    def expected_records(self, corpus: Corpus) -> list[dict[str, Any]]:
        """Every verdict record `corpus` must produce as it was written, entry ids too."""
        ids = {side: self.ids(side) for side in SIDES}
        return corpus.records_of(ids, self.expected(corpus))


# One planned write: (due, index on its side, stream key, side, fields).
_Write = tuple[int, int, str, Side, dict[bytes, bytes]]


async def write_paced(
    clients: aioredis.Redis | Mapping[Side, aioredis.Redis],
    corpus: Corpus,
    production: str,
    sister: str,
    on_written: Callable[[int], None] | None = None,
    stats: PacedWrite | None = None,
    in_step: bool = False,
) -> PacedWrite:
    """XADD each entry at its offset from now (ids are Redis' clock, as in production).

    Sides on different clients are written independently: when one side's server
    goes away (a lost connection), that side's writes wait and are retried until it
    is back, in order, while the other side goes on. An entry that landed before the
    connection broke is not written again (the stream's tail tells), provided the
    client itself does not resend (see `paced_client`). `stats` (a new one if None) is
    filled in as it goes, so a writer cancelled half way leaves what it wrote there.

    `in_step`: sides on different clients that fall behind their schedule stay within
    BEHIND_SLICE_S of each other's (a side whose server is away excepted): left alone, one
    side can fall seconds behind the other on a loaded machine, and twins planned together
    land more than a grace window apart.
    """
    by_side = per_side(clients)
    keys = {Side.PRODUCTION: production, Side.SISTER: sister}
    planned = {
        side: [(e.at_ms, i, keys[side], side, e.fields) for i, e in enumerate(corpus.side(side))]
        for side in SIDES
    }
    first_ms = min((p[0][0] for p in planned.values() if p), default=0)
    start = time.monotonic() - first_ms / 1000
    stats = PacedWrite() if stats is None else stats
    groups: dict[int, list[Side]] = {}
    for side, client in by_side.items():
        groups.setdefault(id(client), []).append(side)
    writers = [
        _PacedSides(by_side[sides[0]], start, stats, on_written) for sides in groups.values()
    ]
    if in_step:
        for writer in writers:
            writer.peers = [w for w in writers if w is not writer]
    await asyncio.gather(
        *(
            w.run(heapq.merge(*(planned[s] for s in sides)))
            for w, sides in zip(writers, groups.values(), strict=True)
        )
    )
    return stats


class _PacedSides:
    """Writes the entries of the sides that share one client, in time order."""

    def __init__(
        self,
        client: aioredis.Redis,
        start: float,
        stats: PacedWrite,
        on_written: Callable[[int], None] | None,
    ) -> None:
        self._client, self._start, self._stats = client, start, stats
        self._on_written = on_written
        self._last_ids: dict[str, str] = {}  # per stream, the last id this writer added
        self._recovered_at = 0.0  # when the server last came back
        # In step (write_paced's in_step): the other writers, and the schedule time (s) of
        # this one's first write not yet written; inf when it is done or its server away.
        self.peers: list[_PacedSides] = []
        self.through = 0.0

    async def run(self, writes: Iterable[_Write]) -> None:
        batch: list[_Write] = []
        for write in writes:
            if not batch:
                self.through = write[0] / 1000
            due = self._start + write[0] / 1000
            delay = due - time.monotonic()
            # Behind its schedule, it writes what is due in slices of BEHIND_SLICE_S of the
            # schedule, not all at once at the end: an entry's id keeps its place in time,
            # near its twin's and apart from a late partner's.
            if batch and (
                len(batch) >= CHUNK or due - batch[0][0] / 1000 - self._start > BEHIND_SLICE_S
            ):
                await self._flush(batch)
                batch = []
                self.through = write[0] / 1000
            if delay > 0.002:
                await self._flush(batch)
                batch = []
                self.through = write[0] / 1000  # all before it written: peers may go on
                await asyncio.sleep(due - time.monotonic())
            elif due < self._recovered_at:
                self._stats.waited[write[3]] += 1  # came due while the server was away
            batch.append(write)
        await self._flush(batch)
        self.through = math.inf

    async def _in_step(self, batch: list[_Write]) -> None:
        """Waits until no peer is more than BEHIND_SLICE_S behind this batch. The writer
        furthest behind never waits, so they cannot wait on each other for ever."""
        limit = batch[0][0] / 1000 - BEHIND_SLICE_S
        while any(peer.through < limit for peer in self.peers):
            await asyncio.sleep(0.001)

    async def _flush(self, batch: list[_Write]) -> None:
        if not batch:
            return
        if self.peers:
            await self._in_step(batch)
        for key in sorted({w[2] for w in batch} - set(self._last_ids)):
            self._last_ids[key] = await self._until_up(lambda: self._tail_id(key))  # noqa: B023
        while batch:
            pipe = self._client.pipeline(transaction=False)
            for _, _, key, _, fields in batch:
                # redis-py's XADD wants an invariant dict of its unions; it only reads them.
                pipe.xadd(key, fields)  # type: ignore[arg-type]
            try:
                ids = await pipe.execute()
            except CONNECTION_LOST:
                for side in {w[3] for w in batch}:
                    self._stats.outages[side] += 1
                behind, self.through = self.through, math.inf  # away: the others go on
                batch = await self._until_up(lambda: self._not_landed(batch))  # noqa: B023
                self.through = behind
                for write in batch:
                    self._stats.waited[write[3]] += 1
                self._recovered_at = time.monotonic()
                continue
            for (_, _, key, _, _), entry_id in zip(batch, ids, strict=True):
                self._last_ids[key] = _text(entry_id)
            self._written(batch, [_text(i) for i in ids])
            batch = []

    async def _until_up(self, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await call()
            except CONNECTION_LOST:
                await asyncio.sleep(RETRY_S)

    async def _tail_id(self, key: str) -> str:
        last = await self._client.xrevrange(key, "+", "-", count=1)
        return _text(last[0][0]) if last else "0-0"

    async def _not_landed(self, batch: list[_Write]) -> list[_Write]:
        """The writes of `batch` the server does not hold (a pipeline lands in order, so
        on each stream what landed is a prefix of the batch's writes there)."""
        await asyncio.sleep(RETRY_S)
        streams = sorted({w[2] for w in batch})
        mine = {key: [n for n, w in enumerate(batch) if w[2] == key] for key in streams}
        tails = {}  # all reads first: a failure half way changes nothing
        for key in streams:
            after = f"({self._last_ids[key]}"
            tails[key] = await self._client.xrange(key, after, "+", count=len(mine[key])) or []
        landed: dict[int, str] = {}  # index in batch -> its entry id
        for key in streams:
            for n, (entry_id, fields) in zip(mine[key], tails[key], strict=False):
                if _as_bytes(fields) != _as_bytes(batch[n][4]):
                    break  # someone else's entry: ours did not land
                landed[n] = self._last_ids[key] = _text(entry_id)
        done = sorted(landed)
        self._written([batch[n] for n in done], [landed[n] for n in done])
        return [w for n, w in enumerate(batch) if n not in landed]

    def _written(self, writes: list[_Write], ids: list[str]) -> None:
        if not writes:
            return
        for write, entry_id in zip(writes, ids, strict=True):
            self._stats.written[write[3]] += 1
            self._stats.entry_ids[write[3]][write[1]] = entry_id
        if self._on_written:
            self._on_written(len(writes))


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_bytes(fields: Mapping[Any, Any] | None) -> dict[bytes, bytes]:
    def b(value: object) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode()

    return {b(k): b(v) for k, v in (fields or {}).items()}


async def cancel_writer(writer: asyncio.Task[Any]) -> None:
    """Cancel `writer` until it has ended: redis-py (8.2) can swallow a cancel that lands
    in a pipeline on a loaded machine, and the writer would go on to the end."""
    while not writer.done():
        writer.cancel()
        await asyncio.wait({writer}, timeout=0.1)
