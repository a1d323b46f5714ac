"""Helpers for the deploy/ tests: the files, the worker's real flags and metrics, PromQL names."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import click
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cdc_verify.cli import main
from cdc_verify.pipeline.sinks.metrics import VerifierMetrics
from cdc_verify.schemas.models import Coverage, CoverageFigures

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "cdc-verify.rules.yml"
RULE_TESTS = PROMETHEUS / "cdc-verify.rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "cdc-verify.dashboard.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"

# Labels a scrape adds to every series (static configs, PodMonitor, pod annotations).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s_objects() -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/k8s by kind (each kind appears once)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc:
                assert doc["kind"] not in objects, f"{path.name}: a second {doc['kind']}"
                objects[doc["kind"]] = doc
    return objects


def run_command() -> click.Command:
    return main.commands["run"]


def run_flags() -> set[str]:
    return {o for p in run_command().params for o in (*p.opts, *p.secondary_opts)}


def parse_run_args(args: list[str]) -> dict[str, Any]:
    """`cdc-verify run ARGS` parsed by the real command (unknown flags and bad values raise);
    the flags that were given, as keyword arguments of load_settings()."""
    assert args and args[0] == "run", f"the worker must run `cdc-verify run`, not {args[:1]}"
    unknown = [a for a in args[1:] if a.startswith("--") and a.split("=")[0] not in run_flags()]
    assert not unknown, f"`cdc-verify run` has no flag {unknown}"
    ctx = run_command().make_context("run", [str(a) for a in args[1:]])
    given = {k: v for k, v in ctx.params.items() if v is not None and v != ()}
    if "ignore_paths" in given:
        given["ignore_paths"] = list(given["ignore_paths"])
    return given


@cache
def exposition() -> tuple[frozenset[str], dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """What a real VerifierMetrics exposes: sample names, label names per sample name, and
    every value of each label."""
    # With an --ignore-path, so that its per-path counter has a series too, and shape
    # coverage as /metrics reads it from the state server.
    metrics = VerifierMetrics(ignore_paths=("/edited",))
    figures = CoverageFigures.of(3, 1, 5)
    metrics.set_coverage(Coverage(**figures.model_dump(), by_entity={"comment": figures}))
    text = generate_latest(metrics.registry).decode()
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    values: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
            for label, value in sample.labels.items():
                values.setdefault(label, set()).add(value)
    return (
        frozenset(names),
        {k: frozenset(v) for k, v in labels.items()},
        {k: frozenset(v) for k, v in values.items()},
    )


# --- PromQL: enough of a scanner to find metric names and their label matchers -----------

AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
}  # fmt: skip
FUNCTIONS = AGGREGATIONS | {
    "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "absent",
    "absent_over_time", "abs", "clamp_min", "clamp_max", "vector", "scalar", "time",
    "histogram_quantile", "label_replace", "sort", "sort_desc", "changes", "resets",
    "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "round", "ceil", "floor", "timestamp",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"and", "or", "unless", "bool", "offset"}
PROMETHEUS_BUILTINS = {"up"}

_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*")|(?P<matchers>\{[^}]*\})|(?P<range>\[[^\]]*\])"""
    r"""|(?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]*)|(?P<ident>[A-Za-z_:][\w:]*)"""
    r"""|(?P<paren>\()|(?P<other>\S)"""
)
_MATCHER = re.compile(r"""([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)\"""")


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric name, [(label, op, value)]) of every vector selector in `expr`.
    Raises AssertionError on a function name this scanner does not know (a typo, mostly)."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    found: list[tuple[str, list[tuple[str, str, str]]]] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in GROUPING:
            i += 1
            if following[0] == "paren":  # skip the label list
                while i < len(tokens) and tokens[i][1] != ")":
                    i += 1
        elif kind == "ident" and (following[0] == "paren" or text in AGGREGATIONS):
            assert text in FUNCTIONS, f"unknown PromQL function {text!r} in {expr!r}"
        elif kind == "ident" and text not in OPERATORS:
            matchers = ""
            if following[0] == "matchers":
                matchers = following[1]
                i += 1  # they belong to this name
            found.append((text, _MATCHER.findall(matchers)))
        elif kind == "matchers":
            found.append(("", _MATCHER.findall(text)))  # {__name__=...} style: no name
        i += 1
    return found


def name_problems(expr: str) -> list[str]:
    """What is wrong with the metric names and label matchers of `expr`, if anything."""
    names, labels_of, values = exposition()
    problems = []
    for name, matchers in selectors(expr):
        if name in PROMETHEUS_BUILTINS:
            continue
        if name not in names:
            problems.append(f"{name!r} is not a metric of VerifierMetrics")
            continue
        for label, op, value in matchers:
            if label not in labels_of[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
            elif label in values and label not in TARGET_LABELS:
                problems += _value_problems(name, label, op, value, values[label])
    return problems


def _value_problems(name: str, label: str, op: str, value: str, real: frozenset[str]) -> list:
    if "$" in value:  # a Grafana variable: resolved at query time
        return []
    if op in ("=", "!="):
        return [] if value in real else [f"{name}: {label}={value!r} is no real {label}"]
    # A regex: each alternative must match some real value, or it is a typo.
    return [
        f"{name}: {label}=~ alternative {alt!r} matches no real {label} ({sorted(real)})"
        for alt in value.split("|")
        if not any(re.fullmatch(alt, v) for v in real)
    ]
