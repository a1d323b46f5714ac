"""`cdc-verify gate --report DIR`: the real command on report directories with known rates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cdc_verify.api.models import Gate
from cdc_verify.cli import main
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.entry import StreamEntry
from cdc_verify.core.verifier import Verifier, VerifierConfig
from cdc_verify.pipeline.runners.bounded import verify_to_reports
from cdc_verify.schemas.models import Summary
from cdc_verify.schemas.verdicts import OUT_OF_SCOPE, PRIMARY_VERDICTS, Side, Verdict
from cdc_verify.simulate.corpus import generate

PRIMARY = {v.value for v in PRIMARY_VERDICTS}


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CDC_VERIFY_"):
            monkeypatch.delenv(name)


def gate(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, ["gate", *map(str, args)])


def report(
    tmp_path: Path, rows: dict[str, dict[str, int]], name: str = "report", breakdown=True
) -> Path:
    """A report dir whose summary.json holds `rows` ("entity/op" -> {verdict or
    out_of_scope: count}), written by the project's own Summary."""
    summary = Summary.empty()
    for entity_op, counts in rows.items():
        for name_, n in counts.items():
            for _ in range(n):
                if name_ == OUT_OF_SCOPE:
                    summary.add_out_of_scope(entity_op)
                else:
                    summary.add(Verdict(name_), entity_op)
    out = tmp_path / name
    out.mkdir()
    text = summary.to_json()
    if not breakdown:  # as cdc-verify wrote it before by_entity_op existed
        raw = json.loads(text)
        text = json.dumps({"events": raw["events"], "verdicts": raw["verdicts"]})
    (out / "summary.json").write_text(text)
    return out


def clean(events: int, mismatches: int = 0, **others: int) -> dict[str, int]:
    """`events` events, all matches but `mismatches` and those of `others`' primary verdicts."""
    primary = sum(n for name, n in others.items() if name in PRIMARY)
    return {"match": events - mismatches - primary, "mismatch": mismatches, **others}


def answer(result: Result) -> dict:
    body = json.loads(result.stdout)
    Gate.model_validate(body)  # the shape GET /api/gate documents
    return body


def test_a_rate_exactly_at_the_threshold_passes_and_one_more_mismatch_fails(tmp_path):
    at = report(tmp_path, {"comment/update": clean(10_000, mismatches=10)}, "at")
    over = report(tmp_path, {"comment/update": clean(10_000, mismatches=11)}, "over")
    passed = gate("--report", at)
    assert passed.exit_code == 0, passed.output
    assert "GO: every criterion passed on 10,000 events" in passed.stdout
    assert "0.1%" in passed.stdout and "pass" in passed.stdout
    for threshold in ("0.001", "0.1%"):  # a fraction or a percentage, the same threshold
        assert gate("--report", at, "--max-mismatch-rate", threshold).exit_code == 0
    failed = gate("--report", over)
    assert failed.exit_code == 1, failed.output
    assert "NO-GO: --max-mismatch-rate: 0.11% of events are mismatches (11), above 0.1%" in (
        failed.stdout
    )
    assert "FAIL" in failed.stdout
    assert gate("--report", over, "--max-mismatch-rate", "0.0011").exit_code == 0


def test_a_race_is_an_event_but_no_mismatch(tmp_path):
    # 10 mismatches of 10,000 events only because the 5 races count as events.
    dir_ = report(tmp_path, {"comment/update": clean(10_000, mismatches=10, race=5)})
    body = answer(gate("--report", dir_, "--json"))
    assert body["events"] == 10_000 and body["decision"] == "go"
    assert body["criteria"][0]["measured"] == 0.001


def test_undecodable_and_gaps_at_and_over_their_thresholds(tmp_path):
    dir_ = report(tmp_path, {"comment/update": clean(
        5000, undecodable=2, missing_in_sister=2, missing_in_production=1, duplicate=7,
        malformed=3,
    )})  # fmt: skip
    assert gate("--report", dir_).exit_code == 1  # the defaults allow none of either
    assert gate("--report", dir_, "--max-undecodable", "2", "--max-gaps", "3").exit_code == 0
    over = gate("--report", dir_, "--max-undecodable", "2", "--max-gaps", "2")
    assert over.exit_code == 1
    assert (
        "--max-gaps: 3 gaps (missing_in_sister 2, missing_in_production 1), more than 2"
        in over.stdout
    )
    body = answer(gate("--report", dir_, "--max-undecodable", "1", "--max-gaps", "3", "--json"))
    assert body["decision"] == "no_go" and body["exit_status"] == 1
    assert [(c["name"], c["measured"], c["passed"]) for c in body["criteria"]] == [
        ("max_mismatch_rate", 0.0, True), ("max_undecodable", 2, False),
        ("max_gaps", 3, True), ("min_events", 5000, True),
    ]  # fmt: skip
    # Duplicates and malformed entries are counted but are no events.
    assert body["events"] == 5000 and body["counts"]["duplicate"] == 7


def test_too_few_events_cannot_decide(tmp_path):
    dir_ = report(tmp_path, {"comment/update": clean(999, missing_in_sister=1)})
    result = gate("--report", dir_)
    assert result.exit_code == 2, result.output
    assert (
        "CANNOT DECIDE: 999 events, fewer than --min-events 1,000 "
        "(failing so far: --max-gaps: 1 gaps" in result.stdout
    )
    assert gate("--report", dir_, "--min-events", "999", "--max-gaps", "1").exit_code == 0
    empty = report(tmp_path, {}, "empty")
    nothing = gate("--report", empty, "--min-events", "0")
    assert nothing.exit_code == 2 and "no events for every entity and op" in nothing.stdout


def test_entity_and_op_gate_one_endpoint(tmp_path):
    dir_ = report(tmp_path, {
        "comment/update": clean(3000),
        "comment/create": clean(2000, mismatches=1),  # 0.05%: within 0.1%
        "account/create": clean(1500, mismatches=30, out_of_scope=4),
    })  # fmt: skip
    assert gate("--report", dir_).exit_code == 1  # 31 of 6,500 overall
    comment = answer(gate("--report", dir_, "--entity", "comment", "--json"))
    assert comment["decision"] == "go" and comment["events"] == 5000
    assert comment["scope"] == {"entity": "comment", "op": None}
    create = answer(gate("--report", dir_, "--op", "create", "--json"))
    assert create["decision"] == "no_go" and create["events"] == 3500
    assert create["counts"]["mismatch"] == 31
    account = answer(gate("--report", dir_, "--entity", "account", "--op", "create", "--json"))
    assert account["events"] == 1500 and account["counts"]["out_of_scope"] == 4
    assert account["criteria"][0]["measured"] == 0.02 and account["decision"] == "no_go"
    # An entity with no counts: no answer, and the reason names what there is.
    typo = gate("--report", dir_, "--entity", "commnet")
    assert typo.exit_code == 2
    assert (
        "no events for commnet/* (there are counts for account/create, comment/create, "
        "comment/update)" in typo.stdout
    )
    assert gate("--report", dir_, "--op", "delete").exit_code == 2  # not an op: usage
    assert "is not an entity name" in gate("--report", dir_, "--entity", "Bad!").output


def test_entity_on_a_report_without_a_breakdown_cannot_decide(tmp_path):
    old = report(tmp_path, {"comment/update": clean(2000)}, breakdown=False)
    assert gate("--report", old).exit_code == 0  # the whole report needs no breakdown
    result = gate("--report", old, "--entity", "comment")
    assert result.exit_code == 2
    assert "has no by_entity_op breakdown" in result.stderr
    assert result.stdout == ""


def test_the_json_answer_is_stable(tmp_path):
    dir_ = report(tmp_path, {"comment/update": clean(2000, mismatches=1, duplicate=2)})
    result = gate("--report", dir_, "--json", "--max-mismatch-rate", "0.1%")
    assert result.exit_code == 0
    body = answer(result)
    assert body == {
        "decision": "go",
        "exit_status": 0,
        "reason": "every criterion passed on 2,000 events",
        "source": {"kind": "report", "dir": str(dir_)},
        "scope": {"entity": None, "op": None},
        "events": 2000,
        "counts": {
            "match": 1999, "mismatch": 1, "race": 0, "undecodable": 0, "missing_in_sister": 0,
            "missing_in_production": 0, "duplicate": 2, "malformed": 0, "out_of_scope": 0,
            "tombstone": 0,
        },
        "criteria": [
            {"name": "max_mismatch_rate", "flag": "--max-mismatch-rate", "measured": 0.0005,
             "threshold": 0.001, "passed": True},
            {"name": "max_undecodable", "flag": "--max-undecodable", "measured": 0,
             "threshold": 0, "passed": True},
            {"name": "max_gaps", "flag": "--max-gaps", "measured": 0, "threshold": 0,
             "passed": True},
            {"name": "min_events", "flag": "--min-events", "measured": 2000,
             "threshold": 1000, "passed": True},
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "holds no summary.json"),
        (lambda d: (d.mkdir(), (d / "summary.json").write_text("{not json")), "not a valid"),
        (lambda d: (d.mkdir(), (d / "summary.json").write_text('{"events": 1}')), "not a valid"),
        (lambda d: (d.mkdir(), (d / "summary.json").mkdir()), "cannot read"),
        (lambda d: d.write_text("a file"), "is not a directory"),
    ],
    ids=["missing", "no-summary", "bad-json", "bad-shape", "unreadable", "a-file"],
)
def test_a_report_that_cannot_be_read_cannot_decide(tmp_path, make, says):
    dir_ = tmp_path / "report"
    make(dir_)
    result = gate("--report", dir_)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("CANNOT DECIDE: ") and says in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    body = answer(gate("--report", dir_, "--json"))
    assert body["decision"] == "cannot_decide" and body["exit_status"] == 2
    assert body["events"] is None and body["counts"] is None and says in body["reason"]
    assert [(c["measured"], c["passed"]) for c in body["criteria"]] == [(None, None)] * 4


def test_a_real_bounded_run_is_gated_on_its_own_counts(tmp_path):
    corpus = generate(3000, seed=71, grace_ms=1000)
    out = tmp_path / "report"

    def entries(side: Side) -> list[StreamEntry]:
        ids = corpus.entry_ids(side, 1_790_000_000_000)
        return [StreamEntry(side, i, e.fields) for e, i in zip(corpus.side(side), ids, strict=True)]

    verifier = Verifier(decode_event, VerifierConfig(grace_ms=1000))
    verify_to_reports(verifier, entries(Side.PRODUCTION), entries(Side.SISTER), out)
    want = corpus.expected_counts()
    body = answer(gate("--report", out, "--json"))
    assert body["decision"] == "no_go"  # the corpus has every fault
    assert {v: body["counts"][v.value] for v in Verdict} == {v: want.get(v, 0) for v in Verdict}
    lenient = ["--max-mismatch-rate", "1", "--max-undecodable", "100000", "--max-gaps", "100000"]
    assert gate("--report", out, *lenient).exit_code == 0


def test_settings_from_the_environment_and_a_config_file(tmp_path):
    dir_ = report(tmp_path, {"comment/update": clean(500)})
    assert gate("--report", dir_).exit_code == 2
    assert gate("--report", dir_, env={"CDC_VERIFY_GATE_MIN_EVENTS": "500"}).exit_code == 0
    config = tmp_path / "cdc.toml"
    config.write_text("gate_min_events = 100\n")
    assert gate("--report", dir_, "--config", config).exit_code == 0
    # The flag wins over both.
    flagged = gate("--report", dir_, "--config", config, "--min-events", "501")
    assert flagged.exit_code == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--redis", "redis://127.0.0.1:1/0"], "--redis is for the live counters"),
        (["--state-redis", "redis://127.0.0.1:1/0"], "--state-redis is for the live counters"),
        (["--since", "1h"], "--since is for the live counters"),
        (["--max-mismatch-rate", "1.5"], "not between 0 and 1"),
        (["--max-mismatch-rate", "abc"], "not a share of events"),
        (["--max-gaps", "-1"], "--max-gaps: must be >= 0"),
    ],
)
def test_usage_errors(tmp_path, args, says):
    dir_ = report(tmp_path, {"comment/update": clean(2000)})
    result = gate("--report", dir_, *args)
    assert result.exit_code == 2 and "Usage:" in result.output, result.output
    assert says in result.output


def test_without_a_report_or_a_server_it_says_what_to_give():
    result = gate()
    assert result.exit_code == 2 and "give --state-redis URL or --redis URL" in result.output
    assert "--since 10m" not in result.output
    bad = gate("--redis", "redis://127.0.0.1:1/0", "--since", "soon")
    assert bad.exit_code == 2 and "is not a duration" in bad.output
    # Past the counters' retention there is nothing to read: no answer (Redis not asked).
    long = gate("--redis", "redis://127.0.0.1:1/0", "--since", "9d")
    assert long.exit_code == 2 and long.stderr == (
        "CANNOT DECIDE: the window reaches 777600 s back, past counter_retention "
        "(691200 s): older counters have expired\n"
    )


def with_coverage(directory: Path, ratio: float | None, comment: float | None = None) -> Path:
    """`directory`'s summary.json with these shape coverage ratios (None: no shapes)."""
    path = directory / "summary.json"
    raw = json.loads(path.read_text())
    if ratio is not None:
        figures = {"shapes": 100, "verified": round(ratio * 100), "ratio": ratio}
        by_entity = {"comment": {**figures, "ratio": comment if comment is not None else ratio}}
        raw["coverage"] = {**figures, "by_entity": by_entity}
    path.write_text(json.dumps(raw))
    return directory


def test_min_coverage_at_its_threshold_passes_and_below_fails(tmp_path):
    dir_ = with_coverage(report(tmp_path, {"comment/update": clean(2000)}), 0.8, comment=0.5)
    passed = gate("--report", dir_, "--min-coverage", "80%")
    assert passed.exit_code == 0, passed.output
    assert "--min-coverage" in passed.stdout and "≥ 80%" in passed.stdout
    failed = gate("--report", dir_, "--min-coverage", "0.81")
    assert failed.exit_code == 1
    assert ("NO-GO: --min-coverage: 80% of production's shapes verified, below 81% "
            "(cdc-verify coverage lists them)") in failed.stdout  # fmt: skip
    body = answer(gate("--report", dir_, "--min-coverage", "0.81", "--json"))
    assert body["criteria"][-1] == {
        "name": "min_coverage", "flag": "--min-coverage", "measured": 0.8, "threshold": 0.81,
        "passed": False,
    }  # fmt: skip
    # --entity gates that entity's shapes.
    assert gate("--report", dir_, "--min-coverage", "0.6", "--entity", "comment").exit_code == 1
    assert gate("--report", dir_).exit_code == 0  # not judged unless asked for


def test_min_coverage_on_a_run_without_shapes_cannot_decide(tmp_path):
    dir_ = with_coverage(report(tmp_path, {"comment/update": clean(2000)}), None)
    result = gate("--report", dir_, "--min-coverage", "0.5")
    assert result.exit_code == 2
    assert "CANNOT DECIDE: --min-coverage: the source has no shape coverage" in result.stdout
    live = gate("--redis", "redis://127.0.0.1:1/0", "--min-coverage", "0.5")
    assert live.exit_code == 2 and "CANNOT DECIDE: cannot reach the state server" in live.output
