"""The alert rules and Prometheus config as Prometheus itself reads them: promtool (Debian's
prometheus package; scripts/setup installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .support import PROMETHEUS, PROMETHEUS_CONFIG, RULE_TESTS, RULES, load_yaml

REQUIRED_ALERTS = {
    "CdcVerifyMissingEventsOpen", "CdcVerifyMismatchRateHigh", "CdcVerifyConsumerLagGrowing",
    "CdcVerifyWorkerDown",
}  # fmt: skip


def promtool(*args: str | Path, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is required: Debian's prometheus package (scripts/setup installs it)"
    return subprocess.run(
        [exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_the_rules_are_valid_and_tell_an_operator_what_to_do():
    done = promtool("check", "rules", RULES)
    rules = alert_rules()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout
    names = {rule["alert"] for rule in rules}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule.get("for"), f"{rule['alert']}: no `for`, so one bad scrape pages"
        annotations = rule["annotations"]
        assert annotations["summary"] and len(annotations["description"]) > 80, rule["alert"]
    # The way to find the missing events themselves.
    missing = next(r for r in rules if r["alert"] == "CdcVerifyMissingEventsOpen")
    assert "cdc-verify alerts" in missing["annotations"]["description"]
    assert "/api/alerts" in missing["annotations"]["description"]


def test_the_config_is_valid_and_loads_the_rules():
    done = promtool("check", "config", PROMETHEUS_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "SUCCESS: 1 rule files found" in out, out
    assert "is valid prometheus config file syntax" in out, out
    # It followed rule_files to the rules next to it, so compose mounts the checked file.
    assert f"Checking {PROMETHEUS / RULES.name}" in out, out
    assert f"SUCCESS: {len(alert_rules())} rules found" in out, out


def test_the_rule_unit_tests_pass():
    done = promtool("test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "FAILED" not in done.stdout + done.stderr, done.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not():
    cases = [case for test in load_yaml(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]
    for name in {rule["alert"] for rule in alert_rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never tested quiet"


@pytest.mark.parametrize("broken", ["vector(1)", "vector(1) < 0"], ids=["always", "never"])
def test_the_unit_tests_catch_an_alert_that_always_or_never_fires(tmp_path, broken):
    # Each alert in turn made to fire always, or never: promtool test must fail every time.
    groups = load_yaml(RULES)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    for rule in [r for g in groups["groups"] for r in g["rules"]]:
        original, rule["expr"] = rule["expr"], broken
        (tmp_path / RULES.name).write_text(yaml.safe_dump(groups))
        done = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
        rule["expr"] = original
        assert done.returncode != 0, f"the unit tests pass with {rule['alert']}: {broken}"
        assert f"alertname: {rule['alert']}" in done.stderr + done.stdout, done.stderr
