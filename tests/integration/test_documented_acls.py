"""Every command, run as the ACL users of docs/topology.md, taken from the page's own text
(acl_users.py): a rule the page misses fails here. Also `cdc-verify check`, and the
one-line errors that name the server and the fix."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis, free_port
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .acl_users import documented_rules, make_user, refusals
from .support import PROD, SIS, VERDICTS, primary_count, wait_for

USER, PASSWORD = "verifier", "doc-acl-pw-71"
THROWAWAY = "throwaway:other-side"


@dataclass
class Three:
    production: EmbeddedRedis
    sister: EmbeddedRedis
    state: EmbeddedRedis
    admin: dict[str, redis.Redis]

    def flags(self, read_only: bool = True) -> list[str]:
        flags = [
            "--production-redis", self.production.url, "--production-redis-username", USER,
            "--sister-redis", self.sister.url, "--sister-redis-username", USER,
            "--state-redis", self.state.url, "--state-redis-username", USER,
            "--production", PROD, "--sister", SIS,
        ]  # fmt: skip
        return flags + (["--production-read-only"] if read_only else [])


ENV = {f"CDC_VERIFY_{r}_REDIS_PASSWORD": PASSWORD for r in ("PRODUCTION", "SISTER", "STATE")}


@pytest.fixture()
def three(tmp_path: Path) -> Iterator[Three]:
    """Production with the documented read-only user, the sister server with the stream
    user (state elsewhere), the state server with the state user: all named `verifier`."""
    with (
        EmbeddedRedis(tmp_path / "p") as production,
        EmbeddedRedis(tmp_path / "s") as sister,
        EmbeddedRedis(tmp_path / "t") as state,
    ):
        admin = {n: redis.Redis(port=s.port) for n, s in
                 (("production", production), ("sister", sister), ("state", state))}  # fmt: skip
        make_user(admin["production"], USER, PASSWORD, f"~{PROD}", "read_only")
        make_user(admin["sister"], USER, PASSWORD, f"~{SIS} ~cdc-verify:*", "stream")
        make_user(admin["state"], USER, PASSWORD, "~cdc-verify:*", "state")
        yield Three(production, sister, state, admin)
        for client in admin.values():
            client.close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env={**cli_env(), **ENV, **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(cli_command("run", *args), env={**cli_env(), **ENV},
                                stdout=out, stderr=out)  # fmt: skip


def write(three: Three, count: int, seed: int) -> int:
    corpus = generate(count, seed=seed, grace_ms=1000)
    base = past_base_ms(three.admin["production"], corpus)
    for role, production, sister in (("production", PROD, THROWAWAY),
                                     ("sister", THROWAWAY, SIS)):  # fmt: skip
        write_corpus(three.admin[role], corpus, production, sister, base)
        three.admin[role].delete(THROWAWAY)
    return len(corpus.expected)


def test_the_documented_users_run_every_command_on_three_servers(three, tmp_path):
    events = write(three, 150, seed=21)
    port = free_port()
    common = [*three.flags(), "--grace", "1", "--start-id", "0", "--lock-ttl", "2",
              "--block-ms", "20"]  # fmt: skip
    first = start([*common, "--http-port", str(port), "--consumer-name", "a"], tmp_path / "a.log")
    second = None
    try:
        state = three.admin["state"]
        wait_for(lambda: primary_count(state) >= events or first.poll() is not None, 60,
                 "every verdict")  # fmt: skip
        assert first.poll() is None, (tmp_path / "a.log").read_text()
        # A second worker stands by, saying whose lock holds it and for how long.
        second = start([*common, "--http-port", "0", "--consumer-name", "b"], tmp_path / "b.log")
        b_log = tmp_path / "b.log"
        wait_for(lambda: "standing by" in b_log.read_text() or second.poll() is not None, 30,
                 "the standby")  # fmt: skip
        assert "held by a/" in b_log.read_text() and " expires in " in b_log.read_text()
        # The API as the state user: status page, status, coverage, metrics.
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/api/status", "/api/coverage", "/api/gate", "/api/alerts"):
            assert httpx.get(base + path, timeout=10).status_code == 200, path
        metrics = httpx.get(base + "/metrics", timeout=10).text
        assert "cdc_verify_shapes{" in metrics
        # The first worker dies: the standby takes over and verifies what comes next.
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wait_for(lambda: "now active" in b_log.read_text() or second.poll() is not None, 30,
                 "the takeover")  # fmt: skip
        more = write(three, 40, seed=22)
        wait_for(lambda: primary_count(state) >= events + more or second.poll() is not None,
                 60, "the standby's verdicts")  # fmt: skip
        assert second.poll() is None, b_log.read_text()
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
    # The commands that read the state, as the state user.
    done = cli("alerts", "--state-redis", three.state.url, "--state-redis-username", USER,
               "--json")  # fmt: skip
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), list), done.stderr
    done = cli("gate", "--state-redis", three.state.url, "--state-redis-username", USER,
               "--since", "1h", "--min-events", "0", "--min-coverage", "1%")  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    done = cli("coverage", "--state-redis", three.state.url, "--state-redis-username", USER)
    assert done.returncode == 0, done.stderr
    done = cli("check", *three.flags())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all servers fine" in done.stdout
    for name, client in three.admin.items():
        assert refusals(client) == [], name
    assert three.admin["production"].keys("*") == [PROD.encode()]


def test_the_documented_user_runs_every_command_on_one_server(tmp_path):
    with EmbeddedRedis(tmp_path / "one") as one:
        admin = redis.Redis(port=one.port)
        # One server for the streams and the state: both lists on one user.
        make_user(admin, USER, PASSWORD, f"~{PROD} ~{SIS} ~cdc-verify:*", "stream", "state")
        corpus = generate(120, seed=23, grace_ms=1000)
        write_corpus(admin, corpus, PROD, SIS, past_base_ms(admin, corpus))
        flags = ["--redis", one.url, "--redis-username", USER]
        env = {"CDC_VERIFY_REDIS_PASSWORD": PASSWORD}
        port = free_port()
        log = tmp_path / "run.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                cli_command("run", *flags, "--production", PROD, "--sister", SIS, "--grace", "1",
                            "--start-id", "0", "--http-port", str(port)),
                env={**cli_env(), **env}, stdout=out, stderr=out,
            )  # fmt: skip
        try:
            wait_for(lambda: primary_count(admin, VERDICTS) >= len(corpus.expected)
                     or worker.poll() is not None, 60, "every verdict")  # fmt: skip
            assert worker.poll() is None, log.read_text()
            for path in ("/", "/api/status", "/api/coverage", "/metrics"):
                assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code == 200
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, log.read_text()
        gate = ["gate", "--since", "1h", "--min-events", "0", "--min-coverage", "1%"]
        for args in (["alerts"], gate, ["coverage"],
                     ["check", "--production", PROD, "--sister", SIS]):  # fmt: skip
            done = cli(*args, *flags, env=env)
            assert done.returncode in (0, 1) if args[0] == "gate" else done.returncode == 0, (
                args, done.stdout, done.stderr,
            )  # fmt: skip
        assert refusals(admin) == []
        admin.close()


def test_check_names_what_an_acl_refuses_and_the_line_to_use(three):
    # The state user as the docs had it before +hscan, +scan and +pttl.
    rules = documented_rules()["state"]
    old = " ".join(w for w in rules.split() if w not in ("+hscan", "+scan", "+pttl"))
    three.admin["state"].execute_command("ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}",
                                         "~cdc-verify:*", *old.split())  # fmt: skip
    done = cli("check", *three.flags())
    assert done.returncode == 1
    out = " ".join(done.stdout.split())  # the table wraps its cells
    assert "refuses HSCAN, PTTL, SCAN" in out.replace(" │", "")
    assert "not fine: see the fix column" in done.stdout and "Traceback" not in done.stderr
    # Nothing the check tried was left behind.
    assert three.admin["state"].keys("*") == []


def test_a_read_only_production_user_without_the_flag_is_one_line(three):
    write(three, 10, seed=24)
    done = cli("run", *three.flags(read_only=False), "--http-port", "0")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.partition("Error: ")[2].strip().splitlines()
    assert line.startswith(f"the production server {three.production.url} (user {USER}) refuses ")
    assert "add --production-read-only" in line
    assert three.admin["production"].keys("*") == [PROD.encode()]


def test_wrong_credentials_name_the_server_and_its_user(three):
    done = cli("run", *three.flags(), "--http-port", "0",
               env={"CDC_VERIFY_STATE_REDIS_PASSWORD": "wrong"})  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.partition("Error: ")[2].strip().splitlines()
    assert line.startswith(
        f"the state server {three.state.url} refused the credentials of user {USER}"
    )
    assert "wrong" not in line
