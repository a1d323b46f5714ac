"""The dashboard and the alert rules query what the worker really exposes: every metric name
and every verdict/side label value comes from a real VerifierMetrics."""

from __future__ import annotations

import json
import re

import pytest

from .support import (
    DASHBOARD,
    K8S,
    PROVISIONING,
    RULES,
    exposition,
    load_yaml,
    name_problems,
    selectors,
)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def variable_selectors() -> list[tuple[str, str]]:
    """label_values(selector, label) of the query variables, as PromQL selectors."""
    out = []
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"variable {var['name']}: {query!r}"
            out.append((f"${var['name']}", match.group(1)))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    return [(r["alert"], r["expr"]) for g in load_yaml(RULES)["groups"] for r in g["rules"]]


def test_the_exposition_is_what_the_checks_compare_against():
    names, _, values = exposition()
    assert {"cdc_verify_verdicts_total", "cdc_verify_ready", "cdc_verify_open_alerts"} <= names
    assert {"match", "mismatch", "undecodable", "missing_in_sister"} <= values["verdict"]
    assert values["side"] == {"production", "sister"}


@pytest.mark.parametrize(
    "source", [panel_exprs, variable_selectors, rule_exprs], ids=["panels", "variables", "rules"]
)
def test_every_metric_name_and_label_value_exists(source):
    exprs = source()
    assert exprs
    problems = [f"{where}: {p}" for where, expr in exprs for p in name_problems(expr)]
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_every_metric_the_worker_exposes():
    names, _, _ = exposition()
    used = {name for _, expr in panel_exprs() for name, _ in selectors(expr)}
    unshown = {n for n in names if not n.endswith("_created")} - used
    assert not unshown, f"no panel shows {sorted(unshown)}"


def test_the_checker_catches_a_renamed_metric_and_a_wrong_label_value():
    assert not name_problems('sum(rate(cdc_verify_verdicts_total{verdict=~"mismatch"}[5m]))')
    assert name_problems("sum by (side) (rate(cdc_verify_events_read[5m]))")  # no _total
    assert name_problems('cdc_verify_verdicts_total{verdict="mismatched"}')
    assert name_problems('cdc_verify_verdicts_total{verdict=~"mismatch|missing_sister"}')
    assert name_problems('cdc_verify_pending_joins{side="sisters"}')
    assert name_problems('cdc_verify_ready{side="sister"}')  # ready has no side label
    assert not name_problems('up{job="cdc-verify"} == 0 or absent(up{job="cdc-verify"})')
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        name_problems("rat(cdc_verify_verdicts_total[5m])")


def test_the_dashboard_is_valid_json_with_unique_ids_and_one_datasource():
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    provisioned = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    uids = {d["uid"] for d in provisioned if d["type"] == "prometheus"}
    # Panels and targets use the variable, whose default is the provisioned datasource.
    assert variables["datasource"]["current"]["value"] in uids
    allowed = {"${datasource}", "$datasource", *uids}
    for panel in panels:
        for source in [panel, *panel.get("targets", [])]:
            assert source["datasource"]["uid"] in allowed, panel["title"]
        assert panel["targets"], panel["title"]


def test_the_panels_the_operators_need_are_there():
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for words in [
        "verdicts per second", "mismatch ratio", "events read", "pending joins", "consumer lag",
        "open alerts", "oldest", "late arrivals", "decode errors", "redis reconnects", "ready",
    ]:  # fmt: skip
        assert words in titles, words


def test_the_kubernetes_rules_are_the_promtool_tested_rules():
    rule = load_yaml(K8S / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"]
