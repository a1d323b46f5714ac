"""scripts/demo sets up only what the demo needs, and says so; scripts/test the rest.

The scripts run for real, in a copy of the checkout, with a PATH of shims that record
what they are asked to do (python3, pip, apt-get, ...) instead of installing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Real tools the scripts use for themselves.
REAL = ("bash", "sh", "dirname", "mktemp", "tail", "cut", "sleep", "cat", "rm", "touch",
        "mkdir", "tar", "chmod", "find")  # fmt: skip
RECORD = '#!/bin/bash\necho "${0##*/} $*" >> "$SHIM_LOG"\n'
# `python3 -m venv .venv` makes a venv of recording shims.
PYTHON3 = (
    RECORD
    + """
mkdir -p .venv/bin
for tool in python pip cdc-verify pytest; do
  printf '%s' "$(cat "$SHIM_DIR/.record")" > .venv/bin/$tool
  [ "$tool" = pip ] && printf '\\n%s\\n' "$SHIM_PIP_EXTRA" >> .venv/bin/$tool
  chmod +x .venv/bin/$tool
done
"""
)
# promtool's package, as `dpkg-deb --fsys-tarfile` gives it.
DPKG_DEB = (
    RECORD
    + """
tree=$(mktemp -d); mkdir -p "$tree/usr/bin"; touch "$tree/usr/bin/promtool"
tar -c -C "$tree" ./usr/bin/promtool
"""
)
APT_GET = RECORD + '[ -z "$SHIM_APT_BUSY" ] || { echo "E: Could not get lock" >&2; exit 100; }\n'


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup", "demo", "test", "debezium-server"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    # Debezium Server as if fetched before: its cache lives outside the checkout.
    debezium = tmp_path / "debezium-server"
    debezium.mkdir()
    (debezium / ".complete").write_text("fetched\n")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / "native" / "src").mkdir(parents=True)  # the native module's sources
    shutil.copy(ROOT / "native" / "src" / "lib.rs", repo / "native" / "src" / "lib.rs")
    shims = tmp_path / "bin"
    shims.mkdir()
    for tool in REAL:
        found = shutil.which(tool)
        assert found, tool
        (shims / tool).symlink_to(found)
    shims.joinpath(".record").write_text(RECORD)
    scripts = {"python3": PYTHON3, "dpkg-deb": DPKG_DEB, "apt-get": APT_GET,
               "id": '#!/bin/bash\necho 0\n',  # as root: the path that would call apt
               **{t: RECORD for t in ("install", "chown", "sudo", "pip", "pip3")}}  # fmt: skip
    for name, text in scripts.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    env = {"PATH": str(shims), "SHIM_LOG": str(tmp_path / "calls.log"),
           "SHIM_DIR": str(shims), "SHIM_PIP_EXTRA": "", "SHIM_APT_BUSY": "",
           "CDC_VERIFY_DEBEZIUM_HOME": str(debezium)}  # fmt: skip
    return repo, env


def _run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )


def _calls(env: dict[str, str]) -> list[str]:
    log = Path(env["SHIM_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_the_demo_installs_the_package_alone_says_what_it_does_and_never_calls_apt(checkout):
    repo, env = checkout
    # pip takes a while and writes as it goes: the setup shows it is still at work.
    env["SHIM_PIP_EXTRA"] = "echo 'Collecting fastapi>=0.115'; sleep 5.5"
    env["SHIM_APT_BUSY"] = "1"  # another apt holds the lock: the demo must not care
    done = _run(repo, env, "scripts/demo", "--events", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = _calls(env)
    assert calls == [
        "python3 -m venv .venv",
        "pip install --progress-bar off -e .[embedded]",  # the embedded Redis only
        "cdc-verify --version",  # its last line: which hot path the install gives
        "cdc-verify demo --events 100",
    ], calls
    assert "setup: making the virtual environment .venv" in done.stdout
    assert "setup: installing cdc-verify (its native part with cargo) and its" in done.stdout
    assert "setup:   ... 5 s: Collecting fastapi>=0.115" in done.stdout  # alive, and at what
    assert (repo / ".venv" / ".setup-demo").exists()

    # Set up once: the next demo runs at once.
    Path(env["SHIM_LOG"]).unlink()
    again = _run(repo, env, "scripts/demo")
    assert again.returncode == 0 and _calls(env) == ["cdc-verify demo"], again.stdout
    assert "setup:" not in again.stdout

    # A change of the native module's Rust sources installs (builds) again; its build
    # output (native/target) does not.
    marker = (repo / ".venv" / ".setup-demo").stat().st_mtime
    (repo / "native" / "target").mkdir()
    (repo / "native" / "target" / "out").touch()
    os.utime(repo / "native" / "target" / "out", (marker + 10, marker + 10))
    Path(env["SHIM_LOG"]).unlink()
    assert _run(repo, env, "scripts/demo").returncode == 0
    assert _calls(env) == ["cdc-verify demo"]
    os.utime(repo / "native" / "src" / "lib.rs", (marker + 10, marker + 10))
    Path(env["SHIM_LOG"]).unlink()
    assert _run(repo, env, "scripts/demo").returncode == 0
    assert "pip install --progress-bar off -e .[embedded]" in _calls(env)


def test_the_tests_install_extras_chromium_redis_tools_promtool_and_name_a_busy_apt(checkout):
    repo, env = checkout
    assert _run(repo, env, "scripts/demo").returncode == 0
    Path(env["SHIM_LOG"]).unlink()
    env["SHIM_APT_BUSY"] = "1"
    busy = _run(repo, env, "scripts/test", "-q")
    assert busy.returncode == 1
    assert "apt-get failed (another package manager busy" in busy.stderr
    assert "install chromium yourself" in busy.stderr
    assert not (repo / ".venv" / ".setup-test").exists()

    Path(env["SHIM_LOG"]).unlink()
    env["SHIM_APT_BUSY"] = ""
    done = _run(repo, env, "scripts/test", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = _calls(env)
    assert "python3 -m venv .venv" not in calls  # the demo's venv is reused
    assert "pip install --progress-bar off -e .[dev,faust]" in calls
    assert any(c.startswith("apt-get") and "install -y chromium" in c for c in calls), calls
    assert any(c.startswith("apt-get") and "install -y redis-tools" in c for c in calls), calls
    assert any(c.startswith("apt-get") and "download prometheus" in c for c in calls), calls
    assert any(c.startswith("install -m 755") and "promtool" in c for c in calls), calls
    assert calls[-1] == "pytest -q"
    assert (repo / ".venv" / ".setup-test").exists()

    # Set up for the tests is set up for the demo too.
    Path(env["SHIM_LOG"]).unlink()
    assert _run(repo, env, "scripts/demo").returncode == 0
    assert _calls(env) == ["cdc-verify demo"]
