"""The simulators with two models: scenarios and corpora of comments and accounts, each
verified through the default consumers to exactly the verdicts and breakdown they plan."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.core.breakdown import entity_op_key
from cdc_verify.core.entry import PRODUCTION, SISTER, StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.account_faults import ACCOUNT_FAULTS
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.models import new_entity_id, sample
from cdc_verify.simulate.scenario import generate_changes, legacy_fields

BASE_MS = 10_000_000
GRACE = 1000


def verify(corpus: Corpus) -> list:
    """Every outcome of the in-process verifier over the corpus, in entry-id order."""
    entries = [
        StreamEntry(core_side, entry_id, e.fields)
        for side, core_side in ((Side.PRODUCTION, PRODUCTION), (Side.SISTER, SISTER))
        for e, entry_id in zip(corpus.side(side), corpus.entry_ids(side, BASE_MS), strict=True)
    ]
    entries.sort(key=lambda e: tuple(map(int, e.entry_id.split("-"))))
    verifier = Verifier(load_consumers(DEFAULT_CONSUMERS), VerifierConfig(grace_ms=GRACE))
    return verifier.ingest(entries) + verifier.flush()


def record_keys(records: list[dict]) -> Counter:
    return Counter(
        (r["event_id"], r["verdict"], r.get("side"), r.get("entry_id"),
         tuple((d["path"], d["kind"]) for d in r.get("differences") or ()))
        for r in records
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_a_mixed_corpus_gets_exactly_its_planned_records_and_breakdown(seed):
    corpus = generate(
        4000, seed=seed, grace_ms=GRACE, entities={"comment": 0.6, "account": 0.4},
        increments=0.3,
    )  # fmt: skip
    outcomes = verify(corpus)
    records = [o.record.as_json() for o in outcomes if o.record is not None]
    assert record_keys(records) == record_keys(corpus.expected_records(BASE_MS))

    breakdown: dict[str, Counter[str]] = {}
    for o in outcomes:
        if o.record is not None:
            breakdown.setdefault(entity_op_key(o.settles), Counter())[o.record.verdict.value] += 1
    expected = corpus.expected_by_entity_op()
    assert {k: dict(v) for k, v in breakdown.items()} == expected
    for entity in ("comment", "account"):
        for op in ("create", "update", "increment"):
            assert expected[f"{entity}/{op}"].get("match"), (entity, op)
    accounts = Counter()
    for key, counts in expected.items():
        if key.startswith("account/"):
            accounts.update(counts)
    for verdict in ("match", "mismatch", "race", "undecodable", "missing_in_sister",
                    "missing_in_production", "duplicate"):  # fmt: skip
        assert accounts[verdict] > 0, verdict


def test_every_account_fault_occurs_in_a_corpus_large_enough():
    corpus = generate(2000, seed=3, entities={"comment": 0.5, "account": 0.5})
    for name in ACCOUNT_FAULTS:
        assert corpus.faults[f"account:{name}"] > 0, name


def test_the_default_corpus_is_comments_only_and_has_no_increments():
    corpus = generate(1000, seed=4)
    ops = Counter(e.fields.get(b"op") for e in corpus.production if e.event_id)
    entities = {e.fields.get(b"entity") for e in corpus.production if e.event_id}
    assert entities == {b"comment"} and set(ops) == {b"create", b"update"}
    assert not any(":" in name for name in corpus.faults)


def test_an_unknown_entity_or_fault_is_refused():
    with pytest.raises(ValueError, match="no faults for entity 'link'"):
        generate(10, entities={"link": 1.0})
    with pytest.raises(ValueError, match="no fault 'account:nope'"):
        generate(10, mix={"account:nope": 1.0})


def test_scenario_changes_carry_their_entity_and_the_three_ops():
    changes = list(generate_changes(600, seed=2, entities=("comment", "account"), increments=0.3))
    kinds = Counter((c["entity"], c["op"]) for c in changes)
    assert {k for k in kinds} == {
        (e, op) for e in ("comment", "account") for op in ("create", "update", "increment")
    }
    for change in changes:
        entity = change["entity"]
        assert entity in change and change["entity_id"].startswith(
            "t1_" if entity == "comment" else "t2_"
        )
        fields = legacy_fields(change)
        assert fields[b"entity"] == entity.encode() and fields[b"op"] == change["op"].encode()


def test_a_scenario_line_without_entity_is_a_comment():
    change = next(generate_changes(1, seed=9))
    del change["entity"]
    assert legacy_fields(change)[b"entity"] == b"comment"
    with pytest.raises(ValueError, match="needs its map under the key 'account'"):
        legacy_fields({**change, "entity": "account"})


def test_models_refuse_an_unknown_entity():
    rng = random.Random(0)
    assert new_entity_id(rng, "account").startswith("t2_")
    with pytest.raises(ValueError, match="unknown entity 'link'"):
        sample(rng, "link", "t3_x")
