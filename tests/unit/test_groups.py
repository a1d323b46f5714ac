"""Mismatch groups and the Markdown summary, on a corpus with known faults."""

from __future__ import annotations

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_bounded
from cdc_verify.pipeline.sinks.base import CallbackSink
from cdc_verify.pipeline.sinks.groups import MismatchGroups
from cdc_verify.pipeline.sinks.markdown import render_markdown
from cdc_verify.pipeline.sinks.summary import SummaryCounter
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.faults import UNDECODABLE_RULES


def run(corpus):
    def entries(side):
        ids = corpus.entry_ids(side, 10**12)
        return [StreamEntry(side, i, e.fields) for e, i in zip(corpus.side(side), ids, strict=True)]

    groups, counter = MismatchGroups(), SummaryCounter()
    verifier = Verifier(decode_event, VerifierConfig(grace_ms=corpus.grace_ms))

    def emit(outcomes):
        groups.add(outcomes)
        counter.add(outcomes)

    verify_bounded(verifier, entries(Side.PRODUCTION), entries(Side.SISTER), CallbackSink(emit))
    return groups.sorted(), counter.summary


def test_one_group_per_fault_sorted_by_count():
    corpus = generate(4000, seed=61, grace_ms=1000)
    groups, _ = run(corpus)
    as_json = [g.as_json() for g in groups]
    assert [g["count"] for g in as_json] == sorted((g["count"] for g in as_json), reverse=True)
    # The nested award difference groups under a wildcard index, with its own fingerprint:
    # one group per write endpoint (entity/op) it was seen in.
    nested = [g for g in as_json if g["differences"][:1]
              and g["differences"][0]["path"] == "/awards/*/count"]  # fmt: skip
    assert sorted((g["entity"], g["op"]) for g in nested) == [
        ("comment", "create"), ("comment", "update")]  # fmt: skip
    assert sum(g["count"] for g in nested) == corpus.faults["nested_value_difference"]
    int_for_float = [g for g in as_json if g["differences"][:1]
                     and g["differences"][0]["path"] == "/created_utc"]  # fmt: skip
    assert all(g["differences"][0]["sister_wire"] == "int" for g in int_for_float)
    assert sum(g["count"] for g in int_for_float) == corpus.faults["int_for_float"]
    # Gaps and duplicates are groups too; matches are not.
    assert {g["verdict"] for g in as_json} >= {"missing_in_sister", "duplicate", "undecodable"}
    assert "match" not in {g["verdict"] for g in as_json}
    assert all(g["first_seen"] <= g["last_seen"] and 1 <= len(g["examples"]) <= 5 for g in as_json)
    # Every undecodable rule is its own group.
    undecodable = {g["error"] for g in as_json if g["verdict"] == "undecodable"}
    assert len(undecodable) >= len(UNDECODABLE_RULES)


def test_markdown_summary_reads_well():
    groups, summary = run(generate(2000, seed=62, grace_ms=1000))
    text = render_markdown(summary, groups)
    assert text.startswith("### cdc-verify: 2,000 events, ")
    assert "| `mismatch` |" in text and "`/created_utc` type (float64 vs int)" in text
    assert text.count("\n| ") >= 10
