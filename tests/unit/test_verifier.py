from __future__ import annotations

import random
from collections import Counter

import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.outcome import Decision, OutcomeKind
from cdc_verify.core.position import ReadPosition
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

GRACE = 1000


def comment(**overrides):
    c = sample_comment(random.Random(7), "t1_abc")
    c.update(overrides)
    return c


def entry(side, ms, event_id="E1", seq=0, version=1, **overrides):
    fields = {
        b"event_id": event_id.encode(),
        b"entity": b"comment",
        b"op": b"update",
        b"entity_id": b"t1_abc",
        b"version": str(version).encode(),
        b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack",
        b"payload": encode_msgpack(comment(**overrides)),
    }
    return StreamEntry(side, f"{ms}-{seq}", fields)


def verifier(**config):
    return Verifier(decode_event, VerifierConfig(grace_ms=GRACE, **config))


def records(outcomes):
    return [o.record.as_json() for o in outcomes if o.record is not None]


def test_pair_within_grace_matches_and_settles_both_entries():
    v = verifier()
    p, s = entry(PRODUCTION, 1000), entry(SISTER, 1000 + GRACE)
    assert v.ingest([p]) == []
    [outcome] = v.ingest([s])
    assert outcome.record.as_json() == {"event_id": "E1", "verdict": "match"}
    assert outcome.settles == (p, s)
    assert outcome.kind is OutcomeKind.PRIMARY
    assert v.waiting_count(PRODUCTION) == v.waiting_count(SISTER) == 0


def test_mismatch_lists_differences_and_race_needs_different_versions():
    v = verifier()
    v.ingest([entry(PRODUCTION, 1000, score=1)])
    [mismatch] = records(v.ingest([entry(SISTER, 1001, score=2)]))
    assert mismatch["verdict"] == "mismatch"
    assert mismatch["differences"] == [
        {"path": "/score", "kind": "value", "production": 1, "sister": 2}
    ]
    v.ingest([entry(PRODUCTION, 2000, "E2", version=3, score=1)])
    [race] = records(v.ingest([entry(SISTER, 2001, "E2", version=4, score=2)]))
    assert race["verdict"] == "race"
    v.ingest([entry(PRODUCTION, 3000, "E3", version=3)])
    assert records(v.ingest([entry(SISTER, 3001, "E3", version=4)]))[0]["verdict"] == "match"


def test_undecodable_keeps_side_entry_and_error():
    v = verifier()
    bad = entry(SISTER, 1001)
    bad.fields[b"encoding"] = b"xml"
    v.ingest([entry(PRODUCTION, 1000)])
    [record] = records(v.ingest([bad]))
    assert record["verdict"] == "undecodable"
    assert record["side"] == "sister" and record["entry_id"] == "1001-0"
    assert "xml" in record["error"]


def test_undecodable_on_both_sides():
    v = verifier()
    p, s = entry(PRODUCTION, 1000), entry(SISTER, 1001)
    p.fields[b"payload"] = s.fields[b"payload"] = b"\xc1"
    [record] = records(v.ingest([p, s]))
    assert record["side"] == "both" and record["error"].startswith("production: ")


def test_gap_waits_for_the_other_sides_watermark():
    v = verifier()
    v.ingest([entry(PRODUCTION, 1000)])
    v.advance(SISTER, ReadPosition(1000 + GRACE))  # partner could still have id == 1000 + grace
    assert v.expire() == []
    v.advance(SISTER, ReadPosition(1000 + GRACE + 1))
    [gap] = v.expire()
    assert gap.record.as_json() == {
        "event_id": "E1",
        "verdict": "missing_in_sister",
        "entry_id": "1000-0",
    }
    # Production racing ahead proves nothing about the sister side.
    v.ingest([entry(SISTER, 5000, "E2")])
    v.advance(PRODUCTION, ReadPosition(5000 + GRACE + 1))
    assert records(v.expire())[0]["verdict"] == "missing_in_production"


def test_late_partner_in_the_same_batch_is_still_a_gap_then_a_late_arrival():
    v = verifier()
    outcomes = v.ingest([entry(PRODUCTION, 1000), entry(SISTER, 1000 + GRACE + 1)])
    assert [o.kind for o in outcomes] == [OutcomeKind.PRIMARY, OutcomeKind.LATE]
    assert outcomes[0].record.verdict is Verdict.MISSING_IN_SISTER
    assert outcomes[1].late_by_ms == GRACE + 1
    assert outcomes[1].decision.sides == "ps"
    # A further sister copy is now a duplicate.
    assert records(v.ingest([entry(SISTER, 3000, seq=1)]))[0]["verdict"] == "duplicate"


def test_sister_first_late_production():
    v = verifier()
    outcomes = v.ingest([entry(SISTER, 1000), entry(PRODUCTION, 1000 + GRACE + 5)])
    assert outcomes[0].record.verdict is Verdict.MISSING_IN_PRODUCTION
    assert outcomes[1].kind is OutcomeKind.LATE


def test_a_late_pair_is_compared_but_the_first_verdict_stands():
    v = verifier()
    gap = v.ingest([entry(PRODUCTION, 1000)])
    v.advance(SISTER, ReadPosition(1000 + GRACE + 1))
    (expired,) = v.expire()
    assert gap == [] and expired.record.verdict is Verdict.MISSING_IN_SISTER
    # Another batch: the twin is still in the core's memory.
    (late,) = v.ingest([entry(SISTER, 5000, score=999)])
    assert late.kind is OutcomeKind.LATE and late.record is None
    assert late.late_record.verdict is Verdict.MISMATCH
    assert [d.path for d in late.late_record.differences] == ["/score"]
    assert late.decision.verdict is Verdict.MISSING_IN_SISTER


def test_compare_late_with_a_twin_fetched_by_the_runner():
    v = verifier()
    v.ingest([entry(PRODUCTION, 1000, event_id="E2")])
    v.advance(SISTER, ReadPosition(3000))
    v.expire()
    v.reset()  # a restart: memory gone; the durable store remembers the decision
    prior = {"E2": Decision(Verdict.MISSING_IN_SISTER, "p", 1000)}
    (late,) = v.ingest([entry(SISTER, 9000, event_id="E2")], prior)
    assert late.kind is OutcomeKind.LATE and late.late_record is None
    with pytest.raises(ValueError):
        v.compare_late(late, entry(SISTER, 1000, event_id="E2"))  # same side: not its twin
    v.compare_late(late, entry(PRODUCTION, 1000, event_id="E2"))
    assert late.late_record.verdict is Verdict.MATCH


def test_duplicates_while_waiting_and_after_the_verdict():
    v = verifier()
    p1, p2 = entry(PRODUCTION, 1000), entry(PRODUCTION, 1001)
    [dup] = v.ingest([p1, p2])
    assert dup.record.as_json() == {
        "event_id": "E1",
        "verdict": "duplicate",
        "side": "production",
        "entry_id": "1001-0",
    }
    assert dup.settles == (p2,)
    [match] = v.ingest([entry(SISTER, 1002)])
    assert match.record.verdict is Verdict.MATCH
    later = v.ingest([entry(SISTER, 1003, seq=1), entry(PRODUCTION, 1004)])
    assert [r["side"] for r in records(later)] == ["sister", "production"]


def test_redelivered_entry_is_not_a_duplicate():
    v = verifier()
    p = entry(PRODUCTION, 1000)
    v.ingest([p])
    assert v.ingest([entry(PRODUCTION, 1000)]) == []


def test_malformed_entries():
    v = verifier()
    cases = [
        {b"op": b"create"},
        {b"event_id": b""},
        {b"event_id": b"\xff\xfe"},
        {b"event_id": b"has space"},
        {b"event_id": b"x" * 300},
    ]
    outs = v.ingest([StreamEntry(SISTER, f"{i}-0", f) for i, f in enumerate(cases)])
    assert [r["verdict"] for r in records(outs)] == ["malformed"] * len(cases)
    assert all(
        r["event_id"] is None and r["side"] == "sister" and r["error"] for r in records(outs)
    )
    deleted = StreamEntry.from_redis(PRODUCTION, b"9-0", {})
    assert "deleted" in records(v.ingest([deleted]))[0]["error"]


def test_prior_decisions_from_a_durable_store():
    v = verifier()
    e = entry(SISTER, 5000)
    assert v.lookup_needed([e]) == {"E1": 5000}  # with the time to look near
    prior = {"E1": Decision(Verdict.MISSING_IN_SISTER, "p", 1000)}
    [late] = v.ingest([e], prior)
    assert late.kind is OutcomeKind.LATE and late.late_by_ms == 4000
    assert v.lookup_needed([entry(PRODUCTION, 6000)]) == {}  # now known in memory


def test_flush_turns_every_waiting_event_into_a_gap():
    v = verifier()
    v.ingest([entry(PRODUCTION, 1000, "A"), entry(SISTER, 1000, "B")])
    assert sorted(r["verdict"] for r in records(v.flush())) == [
        "missing_in_production",
        "missing_in_sister",
    ]
    assert v.waiting_count(PRODUCTION) == 0


def test_decisions_are_forgotten_after_retention():
    v = verifier(decided_retention_ms=10_000)
    v.ingest([entry(PRODUCTION, 1000), entry(SISTER, 1001)])
    assert v.lookup_needed([entry(PRODUCTION, 2000)]) == {}
    v.advance(PRODUCTION, ReadPosition(20_000))
    v.expire()
    assert v.lookup_needed([entry(PRODUCTION, 20_001)]) == {"E1": 20_001}


def test_negative_grace_is_rejected():
    with pytest.raises(ValueError):
        Verifier(decode_event, VerifierConfig(grace_ms=-1))


def _entries(corpus, side, base_ms=10_000_000):
    return [
        StreamEntry(side, entry_id, e.fields)
        for e, entry_id in zip(corpus.side(side), corpus.entry_ids(side, base_ms), strict=True)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verdicts_do_not_depend_on_batching_or_interleaving(seed):
    """Any read order that keeps each stream's order gives the corpus' known answers."""
    corpus = generate(1500, seed=seed, grace_ms=GRACE)
    rng = random.Random(seed)
    prod, sis = _entries(corpus, PRODUCTION), _entries(corpus, SISTER)
    v = verifier()
    got = []
    while prod or sis:
        takes = [rng.randint(0, 300), rng.randint(0, 300)]
        parts = [prod[: takes[0]], sis[: takes[1]]]
        del prod[: takes[0]], sis[: takes[1]]
        batch = []  # a random interleaving that keeps each side's order
        while parts[0] or parts[1]:
            pick = rng.choice([i for i in (0, 1) if parts[i]])
            batch.append(parts[pick].pop(0))
        got += v.ingest(batch)
        if rng.random() < 0.5:
            got += v.expire()
    got += v.flush()
    actual = Counter(
        (r["event_id"], r["verdict"], r.get("side"), r.get("entry_id")) for r in records(got)
    )
    expected = Counter(
        (r["event_id"], r["verdict"], r.get("side"), r.get("entry_id"))
        for r in corpus.expected_records(10_000_000)
    )
    assert actual == expected
    primaries = Counter(o.record.event_id for o in got if o.kind is OutcomeKind.PRIMARY)
    assert set(primaries.values()) == {1} and len(primaries) == len(corpus.expected)


def test_entries_before_the_horizon_are_partners_only():
    v = verifier()
    v.reset(horizon_ms=5000)
    # A twin from before the start pairs with one after it: verified.
    v.ingest([entry(PRODUCTION, 4500, "CUT")])
    [pair] = v.ingest([entry(SISTER, 5100, "CUT")])
    assert pair.record.verdict is Verdict.MATCH and len(pair.settles) == 2
    # Wholly before the start, or unmatched before it: settled without a verdict.
    skipped = v.ingest([entry(PRODUCTION, 4000, "OLD"), entry(SISTER, 4001, "OLD")])
    v.ingest([entry(PRODUCTION, 4200, "ALONE"), entry(PRODUCTION, 4300, "ALONE")])
    v.advance(SISTER, ReadPosition(9000))
    skipped += v.expire()
    assert {o.kind for o in skipped} == {OutcomeKind.SKIP} and len(skipped) == 2
    assert records(skipped) == []
    # An in-scope event whose pre-start twin is too early still needs a partner in time.
    v.ingest([entry(SISTER, 3000, "EARLY")])
    outcomes = v.ingest([entry(PRODUCTION, 5500, "EARLY")])
    assert [o.kind for o in outcomes] == [OutcomeKind.SKIP]
    v.advance(SISTER, ReadPosition(5500 + GRACE + 1))
    assert records(v.expire())[0]["verdict"] == "missing_in_sister"


def test_a_short_memory_window_defers_older_decisions_to_the_durable_store():
    v = verifier(decided_retention_ms=3_600_000, decided_in_memory_ms=5_000)
    v.ingest([entry(PRODUCTION, 1000), entry(SISTER, 1001)])
    v.advance(SISTER, ReadPosition(7_000))
    v.expire()
    assert v.lookup_needed([entry(PRODUCTION, 7_001)]) == {"E1": 7_001}  # ask Redis, not memory


def test_bare_match_records_use_the_same_json_as_the_generic_encoder():
    import json

    from cdc_verify.core.outcome import VerdictRecord, record_to_json

    for event_id in ("01HF7YAV1DA71SX8NYBX4XSSCK", 'q"uo\\te é \u2028 \x01'):
        record = VerdictRecord(event_id, Verdict.MATCH)
        generic = json.dumps(record.as_json(), ensure_ascii=False, separators=(",", ":"))
        assert record_to_json(record) == generic


def identical_pair(event_id="E9", **overrides):
    p = entry(PRODUCTION, 5000, event_id, **overrides)
    return p, StreamEntry(SISTER, "5000-0", dict(p.fields))


def test_a_pair_with_byte_identical_fields_is_decoded_once_and_matches():
    calls = []

    def counting(fields):
        calls.append(fields)
        return decode_event(fields)

    v = Verifier(counting, VerifierConfig(grace_ms=GRACE))
    v.ingest([identical_pair()[0]])
    [record] = records(v.ingest([identical_pair()[1]]))
    assert record == {"event_id": "E9", "verdict": "match"}
    assert len(calls) == 1
    # Fields that differ anywhere (here ts_ms) are decoded on both sides.
    v.ingest([entry(PRODUCTION, 6000, "E10")])
    v.ingest([entry(SISTER, 6001, "E10")])
    assert len(calls) == 3


def test_byte_identical_fields_a_consumer_rejects_are_undecodable_on_both_sides():
    p, s = identical_pair()
    p.fields[b"encoding"] = s.fields[b"encoding"] = b"xml"
    v = verifier()
    v.ingest([p])
    [record] = records(v.ingest([s]))
    assert record["verdict"] == "undecodable"
    assert record["side"] == "both"
    assert record["error"].startswith("production: LegacyDecodeError: unknown encoding")
    assert "; sister: LegacyDecodeError: unknown encoding" in record["error"]


def test_decode_each_side_runs_the_consumer_twice_and_catches_one_that_is_not_deterministic():
    calls = []

    def drifting(fields):  # a consumer whose output depends on more than its input
        calls.append(fields)
        return {**decode_event(fields), "decoded_at": len(calls)}

    for each_side, verdict in ((False, "match"), (True, "mismatch")):
        calls.clear()
        v = Verifier(drifting, VerifierConfig(grace_ms=GRACE, decode_each_side=each_side))
        p, s = identical_pair()
        v.ingest([p])
        [record] = records(v.ingest([s]))
        assert (record["verdict"], len(calls)) == (verdict, 1 + each_side)
