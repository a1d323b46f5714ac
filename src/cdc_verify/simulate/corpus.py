"""A generated pair of streams with every kind of fault, and the verdicts it must get."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdc_verify.core.breakdown import entity_of, op_of
from cdc_verify.schemas.verdicts import Side, Verdict
from cdc_verify.simulate.account_faults import ACCOUNT_FAULTS
from cdc_verify.simulate.faults import (
    FAULTS,
    MALFORMED_FIELDS,
    Change,
    Expected,
    Fault,
    FaultContext,
)
from cdc_verify.simulate.ids import ulid
from cdc_verify.simulate.models import new_entity_id, sample

EPOCH_MS = 1_700_000_000_000
CLEAN_SHARE = 0.8
# The traffic of the demo and `simulate`: each model's share of the changes, and the share
# of the changes past version 1 that are increments (the rest are updates).
DEMO_ENTITIES = {"comment": 0.8, "account": 0.2}
DEMO_INCREMENTS = 0.3
MISSING_ON = {
    Side.SISTER: Verdict.MISSING_IN_SISTER,
    Side.PRODUCTION: Verdict.MISSING_IN_PRODUCTION,
}


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

    def expected_as_written(self, entry_ms: Mapping[Side, Sequence[int]]) -> dict[str, Expected]:
        """The verdicts the entries must get as they were really written: `entry_ms` is the
        entry-id time of each side's entries, in corpus order.

        The plan puts a late partner well past the grace window and a healthy one well
        inside it, but a writer that falls behind its schedule moves entries. What decides
        is entry-id time (docs/guarantees.md): a pair whose first entries on each side are
        more than the grace window apart is a gap on the later side (the later entry a late
        arrival), and a pair within it is joined, whatever was planned.
        """
        first: dict[Side, dict[str, int]] = {Side.PRODUCTION: {}, Side.SISTER: {}}
        for side, times in first.items():
            for entry, ms in zip(self.side(side), entry_ms[side], strict=True):
                if entry.event_id is not None:
                    times.setdefault(entry.event_id, ms)
        out: dict[str, Expected] = {}
        for event_id, exp in self.expected.items():
            production = first[Side.PRODUCTION].get(event_id)
            sister = first[Side.SISTER].get(event_id)
            if production is None or sister is None:
                out[event_id] = exp  # one side only: a gap however late
            elif abs(sister - production) <= self.grace_ms:
                joined = exp.joined or exp.verdict
                out[event_id] = (
                    exp if joined is exp.verdict else Expected(joined, duplicates=exp.duplicates)
                )
            else:
                late = Side.SISTER if production < sister else Side.PRODUCTION
                gap = MISSING_ON[late]
                planned = (exp.verdict, exp.late) == (gap, late)
                out[event_id] = (
                    exp if planned else Expected(gap, duplicates=exp.duplicates, late=late)
                )
        return out

    def expected_counts(self, expected: Mapping[str, Expected] | None = None) -> dict[Verdict, int]:
        """Records per verdict, of the plan or of `expected` (`expected_as_written`)."""
        counts: Counter[Verdict] = Counter({v: 0 for v in Verdict})
        for exp in (self.expected if expected is None else expected).values():
            counts[exp.verdict] += 1
            counts[Verdict.DUPLICATE] += len(exp.duplicates)
        malformed = sum(
            1 for s in Side if s is not Side.BOTH for e in self.side(s) if not e.event_id
        )
        counts[Verdict.MALFORMED] += malformed
        return dict(counts)

    def expected_by_entity_op(
        self, expected: Mapping[str, Expected] | None = None
    ) -> dict[str, dict[str, int]]:
        """summary.json's `by_entity_op` the corpus must produce: `entity/op` -> {verdict:
        count} over every record (primary, duplicate, malformed), each counted under the
        fields of its production entry when it has one, else its sister entry's. Of the
        plan, or of `expected` (`expected_as_written`)."""
        counts: dict[str, Counter[str]] = {}

        def count(fields: Mapping[bytes, bytes], verdict: Verdict) -> None:
            key = f"{entity_of(fields)}/{op_of(fields)}"
            counts.setdefault(key, Counter())[verdict.value] += 1

        first: dict[str, PlannedEntry] = {}  # event_id -> its first production, else sister
        for side in (Side.PRODUCTION, Side.SISTER):
            seen: set[str] = set()
            for entry in self.side(side):
                if entry.event_id is None:
                    count(entry.fields, Verdict.MALFORMED)
                elif entry.event_id in seen:
                    count(entry.fields, Verdict.DUPLICATE)
                else:
                    seen.add(entry.event_id)
                    first.setdefault(entry.event_id, entry)
        for event_id, exp in (self.expected if expected is None else expected).items():
            count(first[event_id].fields, exp.verdict)
        return {key: dict(by_verdict) for key, by_verdict in sorted(counts.items())}

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
        """Every verdict record the corpus must produce written with explicit ids from
        `base_ms`, as verdicts.jsonl would hold it (differences reduced to their path and
        kind)."""
        ids = {s: self.entry_ids(s, base_ms) for s in (Side.PRODUCTION, Side.SISTER)}
        return self.records_of(ids, self.expected)

    def records_of(
        self, ids: Mapping[Side, Sequence[str]], expected: Mapping[str, Expected]
    ) -> list[dict[str, Any]]:
        """The verdict records of entries written with `ids` (each side's, in corpus
        order), each event with its verdict in `expected` (the plan, or what
        `expected_as_written` makes of it)."""
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
        for event_id, exp in expected.items():
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
    entities: Mapping[str, float] | None = None,
    increments: float = 0.0,
    epoch_ms: int = EPOCH_MS,
    faults: bool = True,
) -> Corpus:
    """`events` logical changes at `rate` per second of event time.

    Every fault in `mix` (default: all, with 80% clean) occurs at least once
    when there are enough events; `malformed` extra entries carry no usable id.
    `entities` is the share of each model (default: comments only); an account's
    faults are named `account:<fault>` in `mix` and `faults`. `increments` is the
    share of the changes past version 1 whose op is `increment` (default: none, every
    such change is an `update`). `epoch_ms` is the time of the event ids (ULIDs) and
    `ts_ms` (a long soak gives each segment its own, as real ids would have).
    `faults` False: every change clean and no malformed entry, whatever `mix` and
    `malformed` say.
    """
    rng = random.Random(seed)
    ctx = FaultContext(rng, grace_ms)
    weights = dict(mix) if mix and faults else _default_mix(entities or {"comment": 1.0}, faults)
    names = list(weights)
    plan = [n for n in names if weights[n] > 0][:events]
    rng.shuffle(plan)
    plan += rng.choices(names, weights=[weights[n] for n in names], k=events - len(plan))
    rng.shuffle(plan)

    corpus = Corpus(grace_ms)
    start = grace_ms  # room for sister copies that land before their production twin
    spacing = 1000.0 / rate
    for i, name in enumerate(plan):
        entity, fault = _entity_fault(name)
        at = start + int(i * spacing)
        change = Change(
            event_id=ulid(rng, epoch_ms + at),
            entity_id=new_entity_id(rng, entity),
            version=rng.randint(1, 30),
            ts_ms=epoch_ms + at,
            comment={},
            entity=entity,
        )
        change.comment = sample(rng, entity, change.entity_id)
        # Drawn only when asked for, so a corpus without increments stays as it was.
        if increments and change.version > 1 and rng.random() < increments:
            change.op = "increment"
        corpus.expected[change.event_id] = fault(change, ctx)
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
    count = count if faults else 0
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


# Each model's fault catalogue; a comment fault's name is bare, another's `entity:name`.
CATALOGUES: dict[str, Mapping[str, Fault]] = {"comment": FAULTS, "account": ACCOUNT_FAULTS}


def _entity_fault(name: str) -> tuple[str, Fault]:
    entity, sep, fault = name.partition(":")
    if not sep:
        entity, fault = "comment", name
    try:
        return entity, CATALOGUES[entity][fault]
    except KeyError:
        raise ValueError(f"no fault {name!r} (entities: {', '.join(CATALOGUES)})") from None


def _default_mix(entities: Mapping[str, float], faults: bool = True) -> dict[str, float]:
    """Per entity, its share: 80% clean, the rest spread evenly over its faults (with
    `faults` False: all clean, the faults' weight 0, so none is drawn)."""
    clean_share = CLEAN_SHARE if faults else 1.0
    out: dict[str, float] = {}
    for entity, share in entities.items():
        if entity not in CATALOGUES:
            raise ValueError(f"no faults for entity {entity!r} (known: {', '.join(CATALOGUES)})")
        prefix = "" if entity == "comment" else f"{entity}:"
        kinds = [n for n in CATALOGUES[entity] if n != "clean"]
        out[prefix + "clean"] = share * clean_share
        out.update({prefix + n: share * (1 - clean_share) / len(kinds) for n in kinds})
    return out
