"""Two models through consumer dispatch, three ops: by_entity_op exact everywhere.

A corpus of comments and accounts (creates, updates, increments, with every fault)
goes through the default consumers (comments by the reference consumer, accounts by
theirs). summary.json's by_entity_op, the live worker's durable counters and its
metrics all give exactly the corpus's expected breakdown.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from cdc_verify.config.settings import load_settings
from cdc_verify.consumers.loader import DEFAULT_CONSUMERS, load_consumers
from cdc_verify.pipeline.runners.backfill import run_backfill
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import assert_exactly_one_primary, run_worker_until_done, settings, verdict_records
from .test_scopes import counters


def test_two_entities_and_three_ops_are_counted_exactly(redis_url, redis_client, tmp_path):
    corpus = generate(
        4000, seed=71, grace_ms=1000, entities={"comment": 0.6, "account": 0.4}, increments=0.3
    )
    expected = corpus.expected_by_entity_op()
    assert {k.split("/")[0] for k in expected} >= {"comment", "account"}  # + malformed: unknown
    assert {k.split("/")[1] for k in expected} >= {"create", "update", "increment"}
    write_corpus(redis_client, corpus, "t:production", "t:sister",
                 past_base_ms(redis_client, corpus))  # fmt: skip
    cfg = settings(redis_url)
    consumer = load_consumers(DEFAULT_CONSUMERS)

    summary = run_backfill(cfg, consumer, tmp_path / "out")
    assert summary.by_entity_op == expected

    worker = run_worker_until_done(
        cfg, redis_client, len(corpus.expected), worker=StreamWorker(cfg, consumer)
    )
    assert_exactly_one_primary(verdict_records(redis_client), corpus)
    durable: dict[str, Counter[str]] = {}
    for field, count in counters(redis_client).items():
        verdict, entity, op = field.split("|")
        if verdict != "late":
            durable.setdefault(f"{entity}/{op}", Counter())[verdict] += count
    assert {k: dict(v) for k, v in durable.items()} == expected
    metric: dict[str, Counter[str]] = {}
    for family in worker.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "cdc_verify_verdicts_total" and sample.value:
                labels = sample.labels
                key = f"{labels['entity']}/{labels['op']}"
                metric.setdefault(key, Counter())[labels["verdict"]] += int(sample.value)
    assert {k: dict(v) for k, v in metric.items()} == expected


def test_the_example_config_decodes_each_model_with_its_own_consumer(
    redis_url, redis_client, tmp_path, monkeypatch
):
    """deploy/cdc-verify.example.toml's consumers: accounts get their verdicts, not an
    `undecodable` each from the comment consumer."""
    for key in list(os.environ):
        if key.startswith("CDC_VERIFY_"):
            monkeypatch.delenv(key)
    example = load_settings(Path(__file__).resolve().parents[2] / "deploy/cdc-verify.example.toml")
    corpus = generate(1500, seed=20, grace_ms=1000, entities={"comment": 0.5, "account": 0.5})
    write_corpus(redis_client, corpus, "t:production", "t:sister",
                 past_base_ms(redis_client, corpus))  # fmt: skip
    summary = run_backfill(settings(redis_url), load_consumers(example.consumer), tmp_path / "out")
    assert summary.by_entity_op == corpus.expected_by_entity_op()
