"""A corpus with a known in/out-of-scope split under a --scope, and what each event gives.

Shared by the core's unit test and the live-worker / backfill / replay agreement test.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.scope import Scope
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import base36
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

GRACE = 1000


def entry(side, ms: int, event_id: str, entity_id: str, region: bytes = b"eu") -> StreamEntry:
    fields = {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": entity_id.encode(), b"version": b"2", b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack", b"region": region,
        b"payload": encode_msgpack(sample_comment(random.Random(event_id), entity_id)),
    }  # fmt: skip
    return StreamEntry(side, f"{ms}-0", fields)


def scoped_corpus(
    scope: Scope, seed: int = 3, base_ms: int = 10_000, events: int = 3000
) -> tuple[list[StreamEntry], list[StreamEntry], dict[str, object]]:
    """Production events with a known in/out-of-scope split, and what each should give.

    In scope: most twins come, some never (gaps). Out of scope: most twins never come
    (no verdict), some do (verified), one comes after the grace window (late). And sister
    events production never had.
    """
    rng = random.Random(seed)
    production: list[StreamEntry] = []
    sister: list[StreamEntry] = []
    expected: dict[str, object] = {}
    for n in range(events):
        ms = base_ms + n * 3
        event_id, entity_id = f"E{n:05d}", f"t1_{base36(rng.randrange(36**7))}"
        p = entry(PRODUCTION, ms, event_id, entity_id, rng.choice([b"eu", b"us"]))
        production.append(p)
        roll = rng.random()
        if scope.expects(p.fields):
            if roll < 0.1:
                expected[event_id] = Verdict.MISSING_IN_SISTER
                continue
            expected[event_id] = Verdict.MATCH
        elif roll < 0.05:
            expected[event_id] = Verdict.MATCH  # out of scope, but its twin came: verified
        elif roll < 0.06:
            expected[event_id] = "late"  # out of scope, twin after the grace window
            sister.append(entry(SISTER, ms + GRACE + 500, event_id, entity_id, p.fields[b"region"]))
            continue
        else:
            expected[event_id] = "out_of_scope"
            continue
        region = p.fields[b"region"]
        sister.append(entry(SISTER, ms + rng.randrange(GRACE), event_id, entity_id, region))
    for n in range(50):
        ms = base_ms + n * 170
        event_id = f"S{n:04d}"
        sister.append(entry(SISTER, ms, event_id, f"t1_s{n}"))
        expected[event_id] = Verdict.MISSING_IN_PRODUCTION
    sister.sort(key=lambda e: (e.arrival_ms, e.event_id))
    # Entries of one millisecond take the next sequence numbers, as XADD * would give.
    seq: Counter[int] = Counter()
    for i, e in enumerate(sister):
        sister[i] = StreamEntry(SISTER, f"{e.arrival_ms}-{seq[e.arrival_ms]}", e.fields)
        seq[e.arrival_ms] += 1
    return production, sister, expected


def write_entries(client: Any, production: list[StreamEntry], sister: list[StreamEntry],
                  keys: tuple[str, str] = ("t:production", "t:sister")) -> None:  # fmt: skip
    """XADD both sides with their explicit entry ids."""
    for key, entries in zip(keys, (production, sister), strict=True):
        with client.pipeline(transaction=False) as pipe:
            for e in entries:
                pipe.xadd(key, e.fields, id=e.entry_id)
            pipe.execute()


@dataclass
class Written:
    """A scoped corpus written to Redis: what each event must give, and the counts."""

    expected: dict[str, object]
    counts: Counter[object]  # per verdict, and "out_of_scope", "late"
    primaries: int  # events that must get a primary verdict


def write_scoped_corpus(
    client: Any, scope: str, events: int, ago_ms: int = 120_000,
    keys: tuple[str, str] = ("t:production", "t:sister"),
) -> Written:  # fmt: skip
    """A scoped corpus ending about now on the server's clock, written to both streams."""
    now_ms = int(client.time()[0]) * 1000
    production, sister, expected = scoped_corpus(
        Scope.parse(scope), base_ms=now_ms - ago_ms, events=events
    )
    write_entries(client, production, sister, keys)
    counts = Counter(expected.values())
    primaries = sum(n for v, n in counts.items() if isinstance(v, Verdict))
    return Written(expected, counts, primaries)
