"""--scope in the core: which production events the sister must deliver (docs/rollouts.md)."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import PRODUCTION, SISTER
from cdc_verify.core.outcome import OutcomeKind
from cdc_verify.core.scope import Scope, ScopeError, in_sample
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_bounded
from cdc_verify.pipeline.sinks.base import CallbackSink
from cdc_verify.pipeline.sinks.summary import SummaryCounter
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.ids import base36

from ..scoped_corpus import GRACE, entry, scoped_corpus


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


@pytest.mark.parametrize("text", ["sample:5", "sample:30", "field:region=eu", "sister", "all"])
def test_every_in_scope_gap_is_found_and_no_out_of_scope_event_reported(text):
    scope = Scope.parse(text)
    production, sister, expected = scoped_corpus(scope)
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
