"""Sister events written by a real Go service stack (go-redis, vmihailenco/msgpack,
google.golang.org/protobuf), verified against the Python legacy writer's production events.

The Go writer is built from tests/gowriter with the machine's Go toolchain; CI has Go,
so nothing here is skipped. Expected verdicts are derived in Python from docs/verdicts.md,
independently of what the Go side claims.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdc_verify.config.settings import Settings
from cdc_verify.consumers.reference import decode_event
from cdc_verify.core.scope import in_sample
from cdc_verify.pipeline.runners.backfill import run_backfill
from cdc_verify.simulate.models import ENTITIES, new_entity_id
from cdc_verify.simulate.scenario import (
    generate_changes,
    read_scenario,
    write_production,
    write_scenario,
)

from ..conftest import REPO, cli_command, cli_env

GOWRITER = REPO / "tests" / "gowriter"
PROD, SIS = "go:production", "go:sister"


@pytest.fixture(scope="session")
def gowriter(tmp_path_factory) -> Path:
    go = shutil.which("go")
    assert go, "Go is required: the sister side is written by real Go libraries"
    binary = tmp_path_factory.mktemp("gowriter") / "gowriter"
    done = subprocess.run([go, "build", "-o", str(binary), "."], cwd=GOWRITER,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return binary


def go_write(binary: Path, url: str, scenario: Path, *flags: str) -> str:
    done = subprocess.run(
        [str(binary), "-redis", url, "-stream", SIS, "-scenario", str(scenario), *flags],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_backfill(url: str, out: Path, *flags: str) -> tuple[dict[str, Any], list[dict]]:
    """`cdc-verify backfill` in its own process, with the default consumers (one per
    entity); summary.json and the records of verdicts.jsonl."""
    done = subprocess.run(
        cli_command("backfill", "--redis", url, "--production", PROD, "--sister", SIS,
                    "--out", str(out), *flags),
        env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    return summary, records


def float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def has_zero(value: Any) -> bool:
    """Whether omitempty would drop something: a zero value anywhere."""
    if isinstance(value, dict):
        return any(has_zero(v) for v in value.values())
    if isinstance(value, list):
        return not value or any(has_zero(v) for v in value)
    return value in (0, False, None, "") and value is not True


def expected(switch: str, change: dict) -> tuple[str, str | None, list[tuple[str, str]]]:
    """(verdict, side, [(path, kind)]) docs/verdicts.md implies for a switch and a change."""
    c = change["comment"]
    undecodable = ("undecodable", "sister", [])
    if switch in ("", "-encoding=protobuf"):
        return "match", None, []
    if switch in ("-nil-awards", "-time-created", "-bytes-body", "-untagged"):
        return undecodable
    if switch == "-omitempty":
        return undecodable if has_zero(c) else ("match", None, [])
    if switch == "-int-created":
        return "mismatch", None, [("/created_utc", "type")]
    if switch == "-edited-zero":
        return (
            ("mismatch", None, [("/edited", "type")])
            if c["edited"] is False
            else ("match", None, [])
        )
    if switch == "-float32":
        diffs = []
        for key in ("created_utc", "edited"):
            if isinstance(c[key], float):
                diffs.append((f"/{key}", "type" if float32(c[key]) == c[key] else "value"))
        return ("mismatch", None, diffs) if diffs else ("match", None, [])
    raise AssertionError(switch)


def backfill(url: str, out: Path) -> dict[str, dict]:
    settings = Settings(redis_url=url, production=PROD, sister=SIS, grace=2.0)
    run_backfill(settings, decode_event, out)
    lines = (out / "verdicts.jsonl").read_text().splitlines()
    return {r["event_id"]: r for r in map(json.loads, lines)}


SWITCHES = ["", "-encoding=protobuf", "-nil-awards", "-time-created", "-float32", "-omitempty",
            "-bytes-body", "-int-created", "-edited-zero", "-untagged"]  # fmt: skip


@pytest.mark.parametrize("switch", SWITCHES, ids=[s.strip("-") or "default" for s in SWITCHES])
def test_each_divergence_switch_gets_the_verdict_design_implies(
    switch, gowriter, redis_url, redis_client, tmp_path
):
    changes = list(generate_changes(300, seed=5))
    changes[0]["comment"]["created_utc"] = 1_700_000_000.0  # exact in float32
    changes[1]["comment"]["edited"] = 1_700_000_100.5  # not exact in float32: a value difference
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    write_production(redis_client, PROD, changes)
    go_write(gowriter, redis_url, scenario, *([switch] if switch else []))

    records = backfill(redis_url, tmp_path / "out")
    assert len(records) == len(changes)
    for change in changes:
        verdict, side, diffs = expected(switch, change)
        record = records[change["event_id"]]
        got = (record["verdict"], record.get("side"),
               sorted((d["path"], d["kind"]) for d in record.get("differences", [])))  # fmt: skip
        assert got == (verdict, side, sorted(diffs)), (change["event_id"], record)
        for d in record.get("differences", []):
            if switch in ("-float32", "-int-created"):  # both wire types are named
                assert d["production_wire"] == "float64"
                assert d["sister_wire"] == ("float32" if switch == "-float32" else "int")
    kinds = Counter(r["verdict"] for r in records.values())
    assert kinds[expected(switch, changes[0])[0]] > 0


def test_a_clean_scenario_of_100k_changes_verifies_as_all_match(
    gowriter, redis_url, redis_client, tmp_path
):
    changes = generate_changes(100_000, seed=7)
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    assert write_production(redis_client, PROD, read_scenario(scenario)) == 100_000
    go_write(gowriter, redis_url, scenario)
    done = subprocess.run(
        cli_command("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                    "--out", str(tmp_path / "out")),
        env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["events"] == 100_000
    assert summary["verdicts"]["match"] == 100_000, summary


def test_committed_vectors_are_what_the_go_writer_writes(gowriter, tmp_path):
    vectors = REPO / "tests" / "vectors"
    done = subprocess.run(
        [str(gowriter), "-scenario", str(vectors / "scenario.jsonl"), "-vectors", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(vectors) for p in vectors.rglob("*") if p.is_file() and p.suffix != ".py"
        and p.name != "scenario.jsonl"
    )  # fmt: skip
    assert fresh == committed
    for path in fresh:
        assert (tmp_path / path).read_bytes() == (vectors / path).read_bytes(), path


def mixed_changes(count: int, seed: int, entities_per_model: int) -> list[dict]:
    """Comments and accounts, creates, updates and increments, each entity changed many
    times (a pool of `entities_per_model` ids per model), so a sticky share by entity_id
    keeps or leaves all of an entity's changes together."""
    changes = list(
        generate_changes(count, seed=seed, entities=("comment", "account"), increments=0.3)
    )
    rng = random.Random(seed)
    pools = {e: [new_entity_id(rng, e) for _ in range(entities_per_model)] for e in ENTITIES}
    for change in changes:
        entity_id = rng.choice(pools[change["entity"]])
        change["entity_id"] = entity_id
        change[change["entity"]]["id"] = entity_id[3:]
    return changes


def test_comments_and_accounts_with_three_ops_from_both_writers_all_match(
    gowriter, redis_url, redis_client, tmp_path
):
    changes = mixed_changes(6000, seed=11, entities_per_model=800)
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    write_production(redis_client, PROD, read_scenario(scenario))  # the legacy writer
    go_write(gowriter, redis_url, scenario)  # the new service, every change

    summary, records = cli_backfill(redis_url, tmp_path / "out")
    assert Counter(r["verdict"] for r in records) == {"match": len(changes)}, records[:3]
    expected = {
        key: {"match": n} for key, n in Counter(f"{c['entity']}/{c['op']}" for c in changes).items()
    }
    assert set(expected) == {
        f"{entity}/{op}" for entity in ("comment", "account")
        for op in ("create", "update", "increment")
    }  # fmt: skip
    assert summary["by_entity_op"] == expected
    assert summary["events"] == len(changes) and summary["out_of_scope"] == 0


def test_protobuf_comments_beside_msgpack_accounts_all_match(
    gowriter, redis_url, redis_client, tmp_path
):
    changes = mixed_changes(1000, seed=12, entities_per_model=100)
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    write_production(redis_client, PROD, changes)
    go_write(gowriter, redis_url, scenario, "-encoding", "protobuf")

    encodings = Counter(
        (f[b"entity"], f[b"encoding"]) for _, f in redis_client.xrange(SIS, count=len(changes))
    )
    assert set(encodings) == {(b"comment", b"protobuf"), (b"account", b"msgpack")}
    summary, _ = cli_backfill(redis_url, tmp_path / "out")
    assert summary["verdicts"]["match"] == len(changes), summary


@pytest.mark.parametrize("share_key", ["entity_id", "event_id"])
def test_the_go_router_share_and_the_verifier_scope_agree_event_by_event(
    share_key, gowriter, redis_url, redis_client, tmp_path
):
    changes = mixed_changes(20_000, seed=13, entities_per_model=2000)
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    write_production(redis_client, PROD, changes)  # the legacy service writes everything
    out = go_write(gowriter, redis_url, scenario, "-share", "5", "-share-key", share_key)

    # The router's sticky set, computed here with the verifier's own rule.
    routed = [c for c in changes if in_sample(c[share_key].encode(), 5)]
    routed_events = {c["event_id"] for c in routed}
    left_out = len(changes) - len(routed)
    assert 0.035 < len(routed) / len(changes) < 0.065
    assert redis_client.xlen(SIS) == len(routed)
    assert re.search(rf"\b{left_out} changes outside the share\b", out), out
    if share_key == "entity_id":  # sticky: an entity's changes are all routed, or none
        routed_ids = {c["entity_id"] for c in routed}
        assert all(
            c["entity_id"] not in routed_ids for c in changes if c["event_id"] not in routed_events
        )
        assert max(Counter(c["entity_id"] for c in routed).values()) > 1

    # entity_id is --scope-key's default: left out, as an operator would.
    flags = ["--scope", "sample:5"] + (
        ["--scope-key", "event_id"] if share_key == "event_id" else []
    )
    summary, records = cli_backfill(redis_url, tmp_path / "out", *flags)
    verdicts = Counter(r["verdict"] for r in records)
    assert verdicts == {"match": len(routed)}, verdicts  # no missing_in_sister, nothing else
    assert summary["out_of_scope"] == left_out
    assert {r["event_id"] for r in records} == routed_events
    expected: dict[str, dict[str, int]] = {}
    for change in changes:
        counts = expected.setdefault(f"{change['entity']}/{change['op']}", {})
        name = "match" if change["event_id"] in routed_events else "out_of_scope"
        counts[name] = counts.get(name, 0) + 1
    assert summary["by_entity_op"] == expected


def test_cases_from_production_written_again_by_the_go_writer_all_match(
    gowriter, redis_url, redis_client, tmp_path
):
    # Real production data from the legacy writer, captured as an operator would.
    changes = mixed_changes(3000, seed=12, entities_per_model=400)
    scenario = tmp_path / "scenario.jsonl"
    write_scenario(scenario, changes)
    write_production(redis_client, PROD, read_scenario(scenario))
    capture = tmp_path / "production.capture"
    for args in (("capture", "--redis", redis_url, "--stream", PROD, "--out", str(capture)),
                 ("cases", "--production", str(capture), "--out", str(tmp_path / "cases"),
                  "--redact", "/body", "--redact", "/name")):  # fmt: skip
        done = subprocess.run(cli_command(*args), env=cli_env(), capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "cases" / "cases.json").read_text())
    cases = document["cases"]
    assert {c["entity"] for c in cases} == {"comment", "account"}
    assert len(cases) == document["shapes"] < len(changes)  # one per shape, no sister given

    # The cases' production entries, and the same events written by the Go service.
    redis_client.delete(PROD, SIS)
    for case in cases:
        fields = {k.encode(): base64.b64decode(v) for k, v in case["fields"].items()}
        redis_client.xadd(PROD, fields)
    go_write_cases = subprocess.run(
        [str(gowriter), "-redis", redis_url, "-stream", SIS, "-cases",
         str(tmp_path / "cases" / "cases.json"), "-ids", "auto"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert go_write_cases.returncode == 0, go_write_cases.stderr
    summary, records = cli_backfill(redis_url, tmp_path / "out", "--grace", "30")
    assert Counter(r["verdict"] for r in records) == {"match": len(cases)}, records[:3]
    assert summary["events"] == len(cases) > 10
    assert all(c["decoded"].get("body", "<redacted>") == "<redacted>" for c in cases)
