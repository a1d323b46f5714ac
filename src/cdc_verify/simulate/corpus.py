"""A generated pair of streams with every kind of fault, and the verdicts it must get."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.faults import (
    FAULTS,
    MALFORMED_FIELDS,
    Change,
    Expected,
    FaultContext,
)
from cdc_verify.simulate.ids import base36, ulid
from cdc_verify.simulate.legacy_writer import sample_comment

EPOCH_MS = 1_700_000_000_000
CLEAN_SHARE = 0.8


@dataclass(slots=True)
class PlannedEntry:
    at_ms: int  # offset from the corpus start
    fields: dict[bytes, bytes]
    event_id: str | None
    label: str  # the fault it belongs to


@dataclass
class Corpus:
    grace_ms: int
    production: list[PlannedEntry] = field(default_factory=list)
    sister: list[PlannedEntry] = field(default_factory=list)
    expected: dict[str, Expected] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_event: dict[str, str] = field(default_factory=dict)

    def side(self, side: Side) -> list[PlannedEntry]:
        return self.production if side is Side.PRODUCTION else self.sister

    @property
    def duration_ms(self) -> int:
        last = [entries[-1].at_ms for entries in (self.production, self.sister) if entries]
        return max(last, default=0)

    def expected_counts(self) -> dict[Verdict, int]:
        counts: Counter[Verdict] = Counter({v: 0 for v in Verdict})
        for exp in self.expected.values():
            counts[exp.verdict] += 1
            counts[Verdict.DUPLICATE] += len(exp.duplicates)
        malformed = sum(
            1 for s in Side if s is not Side.BOTH for e in self.side(s) if not e.event_id
        )
        counts[Verdict.MALFORMED] += malformed
        return dict(counts)

    def entry_ids(self, side: Side, base_ms: int) -> list[str]:
        """The ids the entries get when written with explicit ids from `base_ms`."""
        ids, last_ms, seq = [], -1, 0
        for entry in self.side(side):
            ms = base_ms + entry.at_ms
            seq = seq + 1 if ms == last_ms else 0
            last_ms = ms
            ids.append(f"{ms}-{seq}")
        return ids

    def expected_records(self, base_ms: int) -> list[dict[str, Any]]:
        """Every verdict record the corpus must produce, as verdicts.jsonl would hold it
        (differences reduced to their path and kind)."""
        ids = {s: self.entry_ids(s, base_ms) for s in (Side.PRODUCTION, Side.SISTER)}
        first: dict[tuple[Side, str], str] = {}
        records: list[dict[str, Any]] = []
        for side in (Side.PRODUCTION, Side.SISTER):
            for entry, entry_id in zip(self.side(side), ids[side], strict=True):
                if entry.event_id is None:
                    records.append(
                        {"event_id": None, "verdict": "malformed", "side": side.value,
                         "entry_id": entry_id}
                    )  # fmt: skip
                elif (side, entry.event_id) in first:
                    records.append(
                        {"event_id": entry.event_id, "verdict": "duplicate",
                         "side": side.value, "entry_id": entry_id}
                    )  # fmt: skip
                else:
                    first[(side, entry.event_id)] = entry_id
        for event_id, exp in self.expected.items():
            record: dict[str, Any] = {"event_id": event_id, "verdict": exp.verdict.value}
            if exp.verdict is Verdict.MISSING_IN_SISTER:
                record["entry_id"] = first[(Side.PRODUCTION, event_id)]
            elif exp.verdict is Verdict.MISSING_IN_PRODUCTION:
                record["entry_id"] = first[(Side.SISTER, event_id)]
            elif exp.verdict is Verdict.UNDECODABLE:
                record["side"] = exp.side.value if exp.side else None
                if exp.side in (Side.PRODUCTION, Side.SISTER):
                    record["entry_id"] = first[(exp.side, event_id)]
            if exp.differences:
                record["differences"] = [{"path": p, "kind": k} for p, k in exp.differences]
            records.append(record)
        return records


def generate(
    events: int,
    *,
    seed: int = 0,
    grace_ms: int = 2000,
    rate: float = 1000.0,
    mix: Mapping[str, float] | None = None,
    malformed: int | None = None,
) -> Corpus:
    """`events` logical changes at `rate` per second of event time.

    Every fault in `mix` (default: all, with 80% clean) occurs at least once
    when there are enough events; `malformed` extra entries carry no usable id.
    """
    rng = random.Random(seed)
    ctx = FaultContext(rng, grace_ms)
    weights = dict(mix) if mix else _default_mix()
    names = list(weights)
    plan = [n for n in names if weights[n] > 0][:events]
    rng.shuffle(plan)
    plan += rng.choices(names, weights=[weights[n] for n in names], k=events - len(plan))
    rng.shuffle(plan)

    corpus = Corpus(grace_ms)
    start = grace_ms  # room for sister copies that land before their production twin
    spacing = 1000.0 / rate
    for i, name in enumerate(plan):
        at = start + int(i * spacing)
        change = Change(
            event_id=ulid(rng, EPOCH_MS + at),
            entity_id="t1_" + base36(rng.randrange(36**6, 36**8)),
            version=rng.randint(1, 30),
            ts_ms=EPOCH_MS + at,
            comment={},
        )
        change.comment = sample_comment(rng, change.entity_id)
        corpus.expected[change.event_id] = FAULTS[name](change, ctx)
        corpus.faults[name] += 1
        corpus.faults_by_event[change.event_id] = name
        for copy in change.production:
            corpus.production.append(
                PlannedEntry(at + copy.delay_ms, copy.fields, change.event_id, name)
            )
        for copy in change.sister:
            corpus.sister.append(
                PlannedEntry(at + copy.delay_ms, copy.fields, change.event_id, name)
            )

    count = malformed if malformed is not None else max(len(MALFORMED_FIELDS), events // 500)
    kinds = list(MALFORMED_FIELDS)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        side = corpus.production if i % 2 == 0 else corpus.sister
        at = start + int(rng.random() * events * spacing)
        side.append(PlannedEntry(at, dict(MALFORMED_FIELDS[kind]), None, f"malformed_{kind}"))
        corpus.faults[f"malformed_{kind}"] += 1

    corpus.production.sort(key=lambda e: e.at_ms)
    corpus.sister.sort(key=lambda e: e.at_ms)
    return corpus


def _default_mix() -> dict[str, float]:
    faults = [n for n in FAULTS if n != "clean"]
    return {"clean": CLEAN_SHARE, **{n: (1 - CLEAN_SHARE) / len(faults) for n in faults}}
