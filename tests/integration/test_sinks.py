"""Every sink of every runner receives every record: one interface, driven the same way."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.outcome import record_to_json
from cdc_verify.pipeline.runners.backfill import run_backfill
from cdc_verify.pipeline.runners.bounded import ReportSinks
from cdc_verify.pipeline.runners.worker import StreamWorker
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from .support import (
    PROD,
    SIS,
    run_worker_until_done,
    settings,
    verdict_records,
    verdicts_metric,
)


def as_multiset(records) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in records)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_single_worker_feeds_every_sink_every_record(redis_url, redis_client, tmp_path):
    corpus = generate(3000, seed=5, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    cfg = settings(redis_url, jsonl=tmp_path / "copy.jsonl")
    seen: list[dict] = []
    worker = StreamWorker(
        cfg, decode_event,
        on_outcomes=lambda outs: seen.extend(
            json.loads(record_to_json(o.record)) for o in outs if o.record is not None
        ),
    )  # fmt: skip
    run_worker_until_done(cfg, redis_client, len(corpus.expected), worker=worker)

    durable = verdict_records(redis_client)
    assert len(durable) == sum(corpus.expected_counts().values())
    assert as_multiset(jsonl(tmp_path / "copy.jsonl")) == as_multiset(durable)
    assert as_multiset(seen) == as_multiset(durable)
    per_verdict = Counter(r["verdict"] for r in durable)
    registry = worker.metrics.registry
    for verdict, count in per_verdict.items():
        sample = verdicts_metric(registry, verdict)
        assert sample == count, verdict
    assert worker.status.groups.sorted(), "the status board's groups saw the mismatches"


def test_a_bounded_run_writes_every_record_into_every_report(redis_url, redis_client, tmp_path):
    corpus = generate(3000, seed=6, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    out = tmp_path / "out"
    summary = run_backfill(settings(redis_url), decode_event, out)

    assert sorted(p.name for p in out.iterdir()) == sorted(ReportSinks.FILES)
    records = jsonl(out / "verdicts.jsonl")
    per_verdict = Counter(r["verdict"] for r in records)
    assert {v.value: n for v, n in summary.verdicts.items() if n} == dict(per_verdict)
    assert json.loads((out / "summary.json").read_text())["events"] == len(corpus.expected)
    groups = json.loads((out / "groups.json").read_text())
    assert sum(g["count"] for g in groups) == len(records) - per_verdict["match"]
    assert f"{len(corpus.expected):,} events" in (out / "summary.md").read_text()
    assert f"<b>{len(corpus.expected):,}</b> events" in (out / "report.html").read_text()
