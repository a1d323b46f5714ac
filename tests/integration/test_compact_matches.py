"""--compact-matches: a commit's matches are one verdict-stream entry, nothing else changes."""

from __future__ import annotations

from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import (
    PROD,
    SIS,
    VERDICTS,
    assert_exactly_one_primary,
    assert_records_match,
    run_worker_until_done,
    settings,
    verdict_records,
)


def test_compact_matches_keep_every_verdict_in_a_sixth_of_the_entries(redis_url, redis_client):
    corpus = generate(6000, seed=81, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    cfg = settings(redis_url, compact_matches=True, batch_size=200)
    run_worker_until_done(cfg, redis_client, len(corpus.expected))
    records = verdict_records(redis_client)
    assert_exactly_one_primary(records, corpus)
    assert_records_match(records, corpus.expected_records(0), with_entry_ids=False)
    entries = redis_client.xrange(VERDICTS)
    compact = [f for _, f in entries if b"event_ids" in f]
    matches = sum(1 for r in records if r["verdict"] == "match")
    assert compact and sum(int(f[b"count"]) for f in compact) == matches > 4000
    assert not any(f.get(b"verdict") == b"match" and b"record" in f for _, f in entries)
    assert len(entries) < len(records) / 3, "one entry per commit's matches"
