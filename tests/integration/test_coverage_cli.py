"""`cdc-verify coverage --report DIR` on the output of a real backfill."""

from __future__ import annotations

import json
import subprocess

from cdc_verify.core.coverage import combination_gaps
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .support import PROD, SIS


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=env or cli_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_coverage_shows_what_a_backfill_counted_and_filters_it(redis_url, redis_client, tmp_path):
    corpus = generate(1500, seed=4, grace_ms=1000)
    write_corpus(redis_client, corpus, PROD, SIS, past_base_ms(redis_client, corpus))
    out = tmp_path / "report"
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--grace", "1", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(out / "coverage.json") in done.stdout  # listed with the files written
    figures = json.loads((out / "summary.json").read_text())["coverage"]
    assert (
        figures["shapes"] == figures["verified"] + figures["mismatched"] + figures["never_verified"]
    )
    assert figures["by_entity"]["comment"]["shapes"] == figures["shapes"] > 10

    shown = cli("coverage", "--report", str(out), "--limit", "3")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(
        f"{figures['shapes']:,} shapes of production event: {figures['verified']:,} verified"
    )
    assert "/media/*/type str=gif" in shown.stdout  # a part of the simulator's comments
    # Pairs of the parts that vary, and the combinations whose parts were each verified.
    document = json.loads((out / "coverage.json").read_text())
    described = {p["part"] for p in document["parts"]}
    assert document["pairs"] and all(set(p["parts"]) <= described for p in document["pairs"])
    gaps = combination_gaps(document["pairs"])
    assert gaps, "the simulator's comments have combinations never verified"
    assert "combinations never matched, although each part matched" in shown.stdout
    assert " with ".join(gaps[0]["parts"]) in shown.stdout.replace("\n", " ")
    assert f"and {figures['shapes'] - 3:,} more (--limit 0 lists all)" in shown.stdout

    never = json.loads(cli("coverage", "--report", str(out), "--status", "never_verified",
                           "--json").stdout)  # fmt: skip
    assert never["coverage"] == figures
    assert len(never["shapes"]) == figures["never_verified"]
    assert {s["status"] for s in never["shapes"]} == {"never_verified"}
    assert all(s["match"] == s["mismatch"] == 0 < s["production"] for s in never["shapes"])
    assert cli("coverage", "--report", str(out), "--entity", "account",
               "--json").stdout.count('"entity"') == 0  # fmt: skip


def test_coverage_says_why_a_directory_has_none(redis_url, redis_client, tmp_path):
    redis_client.xadd(PROD, {"event_id": "E1", "payload": "x"})
    redis_client.xadd(SIS, {"event_id": "E1", "payload": "x"})
    out = tmp_path / "off"
    env = cli_env() | {"CDC_VERIFY_COVERAGE": "false"}
    assert cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--out", str(out), env=env).returncode == 0  # fmt: skip
    assert not (out / "coverage.json").exists()
    assert json.loads((out / "summary.json").read_text())["coverage"] is None
    done = cli("coverage", "--report", str(out))
    assert done.returncode == 2
    assert "holds no coverage.json: the run had coverage = false" in done.stderr
    missing = cli("coverage", "--report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in done.stderr + missing.stderr
