"""Sister events written by a real Go service stack (go-redis, vmihailenco/msgpack,
google.golang.org/protobuf), verified against the Python legacy writer's production events.

The Go writer is built from tests/gowriter with the machine's Go toolchain; CI has Go,
so nothing here is skipped. Expected verdicts are derived in Python from docs/verdicts.md,
independently of what the Go side claims.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.runners.backfill import run_backfill
from cdc_verify.schemas.settings import Settings
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


def go_write(binary: Path, url: str, scenario: Path, *flags: str) -> None:
    done = subprocess.run(
        [str(binary), "-redis", url, "-stream", SIS, "-scenario", str(scenario), *flags],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


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
