"""--scope in the core: which production events the sister must deliver (docs/rollouts.md)."""

from __future__ import annotations

import random
import zlib
from collections import Counter

import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.pipeline.core.outcome import OutcomeKind
from cdc_verify.pipeline.core.scope import Scope, ScopeError, in_sample
from cdc_verify.pipeline.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_bounded
from cdc_verify.pipeline.sinks.base import CallbackSink
from cdc_verify.pipeline.sinks.summary import SummaryCounter
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import base36
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

GRACE = 1000


@pytest.mark.parametrize(
    ("text", "kind"),
    [("all", "all"), ("sister", "sister"), ("sample:5", "sample"), ("sample:0.125", "sample"),
     ("field:entity=comment", "field"), ("field:region=", "field")],
)  # fmt: skip
def test_scopes_parse(text, kind):
    assert Scope.parse(text).kind == kind


@pytest.mark.parametrize(
    ("text", "words"),
    [("sample", "not a scope"), ("sample:x", "needs a number"), ("sample:101", "0 to 100"),
     ("field:nothing", "field:NAME=VALUE"), ("some", "not a scope"), ("all:1", "not a scope")],
)  # fmt: skip
def test_bad_scopes_say_what_is_expected(text, words):
    with pytest.raises(ScopeError, match=words):
        Scope.parse(text)


def test_the_sample_rule_is_crc32_of_the_utf8_key_mod_100000():
    # The IEEE CRC-32 check value (Go's crc32.ChecksumIEEE gives the same).
    assert zlib.crc32(b"123456789") == 0xCBF43926
    for key in (b"t1_abc", b"t1_zz", "t1_é".encode()):
        residue = zlib.crc32(key) % 100_000
        assert in_sample(key, residue / 1000 + 0.001)
        assert not in_sample(key, residue / 1000)
    share = sum(in_sample(f"t1_{base36(n)}".encode(), 5) for n in range(100_000)) / 100_000
    assert 0.045 < share < 0.055


def test_a_sampled_scope_reads_the_scope_key():
    fields = {b"entity_id": b"t1_a", b"event_id": b"E"}
    by_entity = Scope.parse("sample:50")
    by_event = Scope.parse("sample:50", "event_id")
    assert by_entity.expects(fields) == in_sample(b"t1_a", 50)
    assert by_event.expects(fields) == in_sample(b"E", 50)
    assert Scope.parse("sample:0").expects({}), "no key: expected, so it is reported"


def entry(side, ms, event_id, entity_id, region=b"eu"):
    fields = {
        b"event_id": event_id.encode(), b"entity": b"comment", b"op": b"update",
        b"entity_id": entity_id.encode(), b"version": b"2", b"ts_ms": str(ms).encode(),
        b"encoding": b"msgpack", b"region": region,
        b"payload": encode_msgpack(sample_comment(random.Random(event_id), entity_id)),
    }  # fmt: skip
    return StreamEntry(side, f"{ms}-0", fields)


def corpus(scope: Scope, seed: int = 3):
    """Production events with a known in/out-of-scope split, and what each should give.

    In scope: most twins come, some never (gaps). Out of scope: most twins never come
    (no verdict), some do (verified), one comes after the grace window (late). And sister
    events production never had.
    """
    rng = random.Random(seed)
    production, sister, expected = [], [], {}
    for n in range(3000):
        ms = 10_000 + n * 3
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
        ms = 10_000 + n * 170
        event_id = f"S{n:04d}"
        sister.append(entry(SISTER, ms, event_id, f"t1_s{n}"))
        expected[event_id] = Verdict.MISSING_IN_PRODUCTION
    sister.sort(key=lambda e: (e.arrival_ms, e.event_id))
    return production, sister, expected


@pytest.mark.parametrize("text", ["sample:5", "sample:30", "field:region=eu", "sister", "all"])
def test_every_in_scope_gap_is_found_and_no_out_of_scope_event_reported(text):
    scope = Scope.parse(text)
    production, sister, expected = corpus(scope)
    verifier = Verifier(decode_event, VerifierConfig(grace_ms=GRACE, scope=scope))
    outcomes = []
    summary = SummaryCounter()

    def collect(batch):
        outcomes.extend(batch)
        summary.add(batch)

    verify_bounded(verifier, production, sister, CallbackSink(collect))
    got: dict[str, object] = {}
    for o in outcomes:
        if o.kind is OutcomeKind.PRIMARY:
            assert o.event_id not in got, "one primary verdict per event"
            got[o.event_id] = o.record.verdict
        elif o.kind is OutcomeKind.OUT_OF_SCOPE:
            assert o.record is None and o.settles[0].side is PRODUCTION
            got[o.event_id] = "out_of_scope"
        elif o.kind is OutcomeKind.LATE:
            assert got[o.event_id] == "out_of_scope", "only an out-of-scope event is late here"
            got[o.event_id] = "late"
    assert got == expected
    counts = Counter(expected.values())
    assert summary.summary.out_of_scope == counts["out_of_scope"] + counts["late"]
    assert summary.summary.verdicts[Verdict.MISSING_IN_SISTER] == counts[Verdict.MISSING_IN_SISTER]
    assert summary.summary.by_entity_op["comment/update"].get("out_of_scope", 0) == (
        counts["out_of_scope"] + counts["late"]
    )
    if text == "all":
        assert counts["out_of_scope"] == 0
    if text == "sister":
        assert counts[Verdict.MISSING_IN_SISTER] == 0


def test_a_twin_after_an_out_of_scope_expiry_in_one_batch_is_late_not_a_gap():
    v = Verifier(decode_event, VerifierConfig(grace_ms=GRACE, scope=Scope.parse("sister")))
    p = entry(PRODUCTION, 1000, "E1", "t1_a")
    s = entry(SISTER, 1000 + GRACE + 1, "E1", "t1_a")
    out = v.ingest([p, s])
    assert [o.kind for o in out] == [OutcomeKind.OUT_OF_SCOPE, OutcomeKind.LATE]
    assert out[0].decision is not None and out[0].decision.verdict is None
