"""The real schemas the deploy files are checked against, pinned, from where their owners
publish them:

- Kubernetes' own objects: the JSON schemas of the `kubernetes-validate` package (PyPI),
  generated from Kubernetes' OpenAPI document of the release named below;
- the Prometheus Operator's PodMonitor and PrometheusRule: the CRDs of its release, from
  its Go module (the Go module proxy serves the repository as it was tagged);
- Compose: the Compose specification's JSON schema, as compose-go (the loader docker
  compose uses) embeds it, from its Go module.

`go mod download` fetches a module once into Go's module cache; later calls read it there.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

KUBERNETES_VERSION = "1.34"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"
CRD_FILES = {
    "PodMonitor": "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
}


@cache
def go_module(module_at_version: str) -> Path:
    """The directory of a Go module's source, downloaded through the Go module proxy."""
    env = os.environ | {"GOTOOLCHAIN": "local"}  # the machine's Go, as .ci/run uses
    done = subprocess.run(
        ["go", "mod", "download", "-json", module_at_version],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent,
    )  # fmt: skip
    info = json.loads(done.stdout or "{}")
    if done.returncode or "Dir" not in info:
        raise RuntimeError(f"go mod download {module_at_version}: {info.get('Error', done.stderr)}")
    return Path(info["Dir"])


@cache
def compose_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        (go_module(COMPOSE_GO) / "schema" / "compose-spec.json").read_text()
    )
    return spec


def compose_errors(document: Any) -> list[str]:
    """Where `document` breaks the Compose specification (none: it is a valid file)."""
    validator = jsonschema.Draft202012Validator(compose_spec())
    return [_where(e) for e in validator.iter_errors(document)]


@cache
def crd_schema(kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one served version of a Prometheus Operator CRD, closed."""
    crd = yaml.safe_load((go_module(PROMETHEUS_OPERATOR) / CRD_FILES[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return closed(served["schema"]["openAPIV3Schema"])


def crd_errors(document: dict[str, Any]) -> list[str]:
    group_version = document["apiVersion"]
    version = group_version.rpartition("/")[2]
    schema = crd_schema(document["kind"], version)
    return [_where(e) for e in jsonschema.Draft7Validator(schema).iter_errors(document)]


def closed(schema: Any) -> Any:
    """A structural schema that refuses unknown fields, as `kubectl apply --validate=strict`
    does (the API server would silently prune them: a typo would be lost, not reported)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: closed(s) for name, s in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = closed(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [closed(s) for s in out[key]]
    return out


def _where(error: jsonschema.ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    return f"/{path}: {error.message}"
