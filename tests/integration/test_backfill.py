"""`cdc-verify backfill` on a generated corpus with known answers, line by line."""

from __future__ import annotations

import json
import subprocess

from cdc_verify.schemas.models import Summary, VerdictRecordModel
from cdc_verify.schemas.verdicts import Verdict
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import write_corpus

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, assert_records_match


def backfill(url: str | None, out, *extra: str) -> subprocess.CompletedProcess:
    target = ("--redis", url) if url else ()
    return subprocess.run(
        cli_command("backfill", *target, "--production", PROD, "--sister", SIS,
                    "--grace", "1.5", "--out", str(out), *extra),
        env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_backfill_reports_every_known_answer(redis_url, redis_client, tmp_path):
    corpus = generate(20_000, seed=41, grace_ms=1500)
    base = 1_790_000_000_000
    write_corpus(redis_client, corpus, PROD, SIS, base)
    done = backfill(redis_url, tmp_path / "out")
    assert done.returncode == 0, done.stderr

    lines = (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        VerdictRecordModel.model_validate(record)
    expected = corpus.expected_records(base)
    assert len(records) == len(expected)
    assert_records_match(records, expected)
    # Every record carries exactly the promised keys, with values where promised.
    by_id = {(r["event_id"], r["verdict"], r.get("entry_id")): r for r in records}
    for want in expected:
        got = by_id[(want["event_id"], want["verdict"], want.get("entry_id"))]
        assert set(got) == set(want) | ({"error"} if got["verdict"] in ("undecodable", "malformed")
                                        else set())  # fmt: skip
        for diff in got.get("differences", []):
            wire = {"production_wire", "sister_wire"} if diff["kind"] == "type" else set()
            assert set(diff) == {"path", "kind", "production", "sister"} | wire

    summary = Summary.model_validate_json((tmp_path / "out" / "summary.json").read_text())
    counts = corpus.expected_counts()
    assert summary.events == len(corpus.expected) == 20_000
    assert {v.value: n for v, n in summary.verdicts.items()} == {
        v.value: n for v, n in counts.items()
    }
    assert "match" in done.stdout  # the terminal summary

    groups = json.loads((tmp_path / "out" / "groups.json").read_text())
    assert sum(g["count"] for g in groups) == len(records) - counts[Verdict.MATCH]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert markdown.startswith("### cdc-verify: 20,000 events") and "| `race` |" in markdown

    # Read-only: no consumer group was created, and a second run says the same.
    assert redis_client.xinfo_groups(PROD) == []
    again = backfill(redis_url, tmp_path / "again")
    assert again.returncode == 0
    assert sorted(lines) == sorted((tmp_path / "again" / "verdicts.jsonl").read_text().splitlines())
