"""The compose file and the Kubernetes manifests are valid against the real schemas of
what would run them (tests/deploy/schemas.py says which, and from where). Neither Docker
nor a cluster runs here: these checks are what `docker compose config` and
`kubectl apply --validate=strict` would say first. test_consistency.py checks that the
files agree with the worker and with each other."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from .schemas import KUBERNETES_VERSION, compose_errors, crd_errors
from .support import COMPOSE, k8s_objects, load_yaml

KUBERNETES_KINDS = {"ConfigMap", "Deployment", "Service"}
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}


def kubernetes_errors(document: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"/{'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    return []


def test_every_manifest_has_a_schema_here():
    # Kustomization is kustomize's, not the API server's: test_consistency checks its list.
    assert set(k8s_objects()) == KUBERNETES_KINDS | OPERATOR_KINDS | {"Kustomization"}


@pytest.mark.parametrize("kind", sorted(KUBERNETES_KINDS))
def test_kubernetes_objects_are_valid_for_the_named_release(kind):
    assert kubernetes_errors(k8s_objects()[kind]) == []


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_prometheus_operator_objects_are_valid_against_its_crds(kind):
    assert crd_errors(k8s_objects()[kind]) == []


def test_the_compose_file_is_valid_against_the_compose_specification():
    assert compose_errors(load_yaml(COMPOSE)) == []


# The checks above could pass by checking nothing: each schema must also refuse a file
# with one mistake of the kind people make.


def test_a_misspelt_or_mistyped_kubernetes_field_is_refused():
    deployment = copy.deepcopy(k8s_objects()["Deployment"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = container.pop("imagePullPolicy")
    assert kubernetes_errors(deployment)
    deployment = copy.deepcopy(k8s_objects()["Deployment"])
    deployment["spec"]["replicas"] = "one"
    [error] = kubernetes_errors(deployment)
    assert error.startswith("/spec/replicas:")


def test_a_misspelt_or_mistyped_operator_field_is_refused():
    monitor = copy.deepcopy(k8s_objects()["PodMonitor"])
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    endpoint["intervall"] = endpoint.pop("interval")
    assert any(e.startswith("/spec/podMetricsEndpoints/0:") for e in crd_errors(monitor))
    rules = copy.deepcopy(k8s_objects()["PrometheusRule"])
    rules["spec"]["groups"][0]["rules"][0]["for"] = 300  # a duration is a string
    assert any(e.startswith("/spec/groups/0/rules/0/for:") for e in crd_errors(rules))


def test_a_misspelt_or_mistyped_compose_key_is_refused():
    document = load_yaml(COMPOSE)
    worker = document["services"]["worker"]
    worker["restart_policy"] = worker.pop("restart")
    assert any(e.startswith("/services/worker:") for e in compose_errors(document))
    document = load_yaml(COMPOSE)
    document["services"]["worker"]["ports"] = {"9464": "9464"}  # a list, in Compose
    assert "/services/worker/ports: {'9464': '9464'} is not of type 'array'" in compose_errors(
        document
    )
