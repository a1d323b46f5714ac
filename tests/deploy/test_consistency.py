"""docker-compose, Dockerfile, Grafana provisioning and Kubernetes manifests agree with the
worker (its flags, settings, port, probe paths) and with each other. Docker and a cluster are
not needed: the files are read, the worker's own CLI parses their commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cdc_verify.config.settings import Settings, load_settings

from .support import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    DOCKERFILE,
    K8S,
    PROMETHEUS_CONFIG,
    PROVISIONING,
    REPO,
    k8s_objects,
    load_yaml,
    parse_run_args,
    run_flags,
)

SECRETS = {"CDC_VERIFY_REDIS_PASSWORD", "CDC_VERIFY_HTTP_TOKEN"}


@pytest.fixture(autouse=True)
def _no_worker_env(monkeypatch):
    # The settings the files describe, not the ones of whoever runs the tests.
    for key in list(os.environ):
        if key.startswith("CDC_VERIFY_"):
            monkeypatch.delenv(key)


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (resolved against deploy/) of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (DEPLOY / source).resolve()
    return out


def container_port(published: str) -> int:
    return int(str(published).split(":")[-1].split("/")[0])


# --- docker-compose ----------------------------------------------------------------------


def worker_settings() -> Settings:
    return load_settings(None, **parse_run_args(compose()["services"]["worker"]["command"]))


def test_compose_runs_the_worker_with_real_flags_next_to_its_redis():
    services = compose()["services"]
    assert {"redis", "worker", "prometheus", "grafana"} <= services.keys()
    assert services["redis"]["image"].split(":")[1].startswith("7")
    settings = worker_settings()  # unknown flags or bad values fail here
    assert urlsplit(settings.redis_url).hostname == "redis"
    assert settings.http_host == "0.0.0.0", "127.0.0.1 is unreachable from Prometheus"
    assert settings.log_format == "json"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_publishes_and_probes_the_workers_http_port():
    worker = compose()["services"]["worker"]
    port = worker_settings().http_port
    assert [container_port(p) for p in worker["ports"]] == [port]
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe, probe
    # The probe runs with the image's own Python: it must at least compile.
    code = worker["healthcheck"]["test"][-1]
    compile(code, "healthcheck", "exec")


def test_compose_builds_the_image_from_the_project():
    build = compose()["services"]["worker"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    assert (context / "pyproject.toml").is_file()
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_prometheus_scrapes_the_compose_worker_and_loads_the_mounted_rules():
    services = compose()["services"]
    config = load_yaml(PROMETHEUS_CONFIG)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cdc-verify")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    (worker,) = [name for name, service in services.items() if "build" in service]
    assert targets == [f"{worker}:{worker_settings().http_port}"]
    mounted = mounts(services["prometheus"])
    assert mounted["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    for rule_file in config["rule_files"]:
        # Relative to the config file: next to it, both in the container and in the repo.
        inside = f"/etc/prometheus/{rule_file}"
        assert mounted.get(inside) == PROMETHEUS_CONFIG.parent / rule_file, inside
        assert mounted[inside].is_file()


def test_grafana_provisions_the_mounted_dashboard_from_the_compose_prometheus():
    services = compose()["services"]
    mounted = mounts(services["grafana"])
    assert mounted["/etc/grafana/provisioning"] == PROVISIONING
    providers = load_yaml(PROVISIONING / "dashboards" / "cdc-verify.yml")["providers"]
    folder = providers[0]["options"]["path"]
    assert mounted[f"{folder}/{DASHBOARD.name}"] == DASHBOARD
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{folder}/{DASHBOARD.name}"
    (datasource,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and "prometheus" in services
    assert [container_port(p) for p in services["prometheus"]["ports"]] == [url.port]


# --- Dockerfile --------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_the_image_installs_the_project_and_runs_the_worker_as_non_root():
    instructions = dockerfile()
    first = {}
    for name, arg in instructions:
        first.setdefault(name, arg)
    assert first["FROM"] == "python:3.11-slim"
    copied = [arg.split()[:-1] for name, arg in instructions if name == "COPY"]
    sources = [s for group in copied for s in group]
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the build context"
    # pyproject.toml names its readme: setuptools needs it to build.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert {"pyproject.toml", pyproject["project"]["readme"], "src"} <= set(sources)
    assert any(re.search(r"\bpip install \.(\s|$)", arg) for n, arg in instructions if n == "RUN")
    user = [arg for name, arg in instructions if name == "USER"][-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert re.fullmatch(r"\d+(:\d+)?", user), "numeric, so runAsNonRoot can check it"
    assert first["ENTRYPOINT"] == '["cdc-verify"]'
    assert "cdc-verify" in pyproject["project"]["scripts"]
    cmd = parse_run_args(json.loads([arg for name, arg in instructions if name == "CMD"][-1]))
    assert cmd["http_host"] == "0.0.0.0"
    assert first["EXPOSE"] == str(cmd["http_port"])


def dockerignore() -> list[str]:
    """The dockerignore's patterns, in order (no blank lines, no comments)."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dockerignored_names() -> list[str]:
    """The names the dockerignore keeps out at any depth (its `**/name` lines), as
    shutil.ignore_patterns takes them: a build's leftovers in src/ stay out of the image."""
    return [pattern[3:] for pattern in dockerignore() if pattern.startswith("**/")]


def test_the_dockerignore_keeps_what_the_image_copies():
    ignore = dockerignore()
    assert ignore[0] == "*", "everything is ignored but what is re-included"
    sources = [a.split()[:-1] for n, a in dockerfile() if n == "COPY"]
    for source in [s for group in sources for s in group]:
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def test_what_the_image_copies_builds_a_wheel_with_the_command(tmp_path):
    # pip install . in the image sees only the COPYed files: build from exactly those.
    context = tmp_path / "context"
    for name, arg in dockerfile():
        if name == "COPY":
            *sources, _ = arg.split()
            for source in sources:
                src, dst = REPO / source, context / source
                if src.is_dir():
                    ignore = shutil.ignore_patterns(*dockerignored_names())
                    shutil.copytree(src, dst, ignore=ignore)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dst)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("cdc_verify-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "cdc-verify = cdc_verify.cli:main" in entry_points
    # The image runs from the installed wheel, not a source tree: package data (the status
    # page, the .proto) must be declared in pyproject.toml or the image lacks it.
    package = context / "src"
    files = {
        str(p.relative_to(package))
        for p in (package / "cdc_verify").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = sorted(files - set(names))
    assert not missing, f"not in the wheel (package-data in pyproject.toml?): {missing}"


# --- Kubernetes --------------------------------------------------------------------------


def k8s_container() -> dict[str, Any]:
    (container,) = k8s_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def k8s_settings(tmp_path: Path) -> Settings:
    """What the pod's worker runs with: the ConfigMap's file, then the args (flags win)."""
    objects = k8s_objects()
    container = k8s_container()
    env = {e["name"]: e for e in container["env"]}
    config_path = Path(env["CDC_VERIFY_CONFIG"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volumes = objects["Deployment"]["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    toml = tmp_path / config_path.name
    toml.write_text(objects["ConfigMap"]["data"][config_path.name])
    return load_settings(toml, **parse_run_args(container["args"]))


def test_the_configmap_is_a_valid_settings_file(tmp_path):
    (name, text), *more = k8s_objects()["ConfigMap"]["data"].items()
    assert not more
    path = tmp_path / name
    path.write_text(text)
    settings = load_settings(path)  # unknown keys or bad values raise
    assert set(tomllib.loads(text)) <= set(Settings.model_fields)
    assert settings.redis_password is None and settings.http_token is None, "no secrets here"


def test_the_configmap_check_catches_an_unknown_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(k8s_objects()["ConfigMap"]["data"]["cdc-verify.toml"] + "metrics_prot = 1\n")
    with pytest.raises(ValueError, match="metrics_prot"):
        load_settings(path)


def test_the_deployment_serves_probes_and_metrics_on_the_workers_port(tmp_path):
    settings = k8s_settings(tmp_path)
    container = k8s_container()
    assert settings.http_host == "0.0.0.0"
    assert "--http-host" in container["args"], "explicit, whatever the ConfigMap says"
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.http_port)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    template = k8s_objects()["Deployment"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.http_port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_deployment_takes_secrets_from_a_secret_and_names_real_settings():
    env = k8s_container()["env"]
    for var in env:
        name = var["name"]
        assert name.startswith("CDC_VERIFY_"), name
        field = name.removeprefix("CDC_VERIFY_").lower()
        assert name == "CDC_VERIFY_CONFIG" or field in Settings.model_fields, name
        if name in SECRETS:
            assert "value" not in var, f"{name}: a secret value in the manifest"
            assert var["valueFrom"]["secretKeyRef"]["name"] == "cdc-verify"
    assert {var["name"] for var in env} >= SECRETS
    # No Secret object is shipped: its values are the operator's.
    assert "Secret" not in k8s_objects()


def test_the_deployment_is_one_locked_worker_with_room_for_its_joins():
    deployment = k8s_objects()["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] in (1, 2)
    if spec["replicas"] == 1:
        # A rolling update's new pod would wait for the old pod's lock and never be ready.
        assert spec["strategy"]["type"] == "Recreate"
    resources = k8s_container()["resources"]
    limit = resources["limits"]["memory"]
    mebibytes = int(limit[:-2]) * {"Mi": 1, "Gi": 1024}[limit[-2:]]
    assert 1024 < mebibytes <= 2048, "1M waiting events take ~950 MiB"
    assert resources["requests"]["memory"] and resources["requests"]["cpu"]


def test_the_pod_runs_as_the_images_non_root_user_on_a_read_only_root():
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    container = k8s_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = [a for n, a in dockerfile() if n == "USER"][-1]
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The image's working directory must be writable (a Python may want to write there).
    workdir = [a for n, a in dockerfile() if n == "WORKDIR"][-1]
    assert workdir in {m["mountPath"] for m in container["volumeMounts"]}


def test_the_service_and_podmonitor_reach_the_pods_http_port(tmp_path):
    objects = k8s_objects()
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    port = k8s_settings(tmp_path).http_port
    service = objects["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    (service_port,) = service["ports"]
    assert service_port["port"] == port and service_port["targetPort"] == "http"
    monitor = objects["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    # The rules expect job="cdc-verify": the job comes from this pod label's value.
    assert pod_labels[spec["jobLabel"]] == "cdc-verify"
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    # /metrics asks for the token the Deployment gives the worker.
    token = next(e for e in k8s_container()["env"] if e["name"] == "CDC_VERIFY_HTTP_TOKEN")
    ref = token["valueFrom"]["secretKeyRef"]
    credentials = endpoint["authorization"]["credentials"]
    assert (credentials["name"], credentials["key"]) == (ref["name"], ref["key"])


def test_kustomize_applies_every_manifest():
    kustomization = load_yaml(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


# --- README ------------------------------------------------------------------------------


def test_the_readme_explains_every_file():
    readme = (DEPLOY / "README.md").read_text()
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"]
    missing = [str(p.relative_to(DEPLOY)) for p in files if p.name not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"
    for command in ["docker compose up", "kubectl apply", "promtool test rules"]:
        assert command in readme, command
    # The commands it shows for the worker use real flags.
    for line in re.findall(r"cdc-verify run [^\n`]*", readme.replace("\\\n", " ")):
        flags = [w for w in shlex.split(line.rstrip("\\")) if w.startswith("--")]
        assert set(flags) <= run_flags(), line
