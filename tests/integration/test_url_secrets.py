"""Secrets in server URLs and TLS settings: a `?password=` never shows anywhere the URL
does, and TLS files given with a URL that is not TLS are refused, not ignored."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from cdc_verify.config.servers import RedisServer, Role, redact
from cdc_verify.embedded_redis import EmbeddedRedis, free_port
from cdc_verify.pipeline.redis.connection import client_options
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, VERDICTS, wait_for

SECRET = "qp-5e1f9a"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env={**cli_env(), **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_redact_hides_query_passwords_and_userinfo():
    assert redact(f"redis://h:1/0?password={SECRET}&db=1") == "redis://h:1/0?password=***&db=1"
    assert redact(f"rediss://u:{SECRET}@h:1/0?ssl_password={SECRET}") == (
        "rediss://u:***@h:1/0?ssl_password=***"
    )
    assert redact(f"unix:///run/r.sock?Password={SECRET}") == "unix:///run/r.sock?Password=***"
    assert redact(f":{SECRET}@h:1") == "***@h:1" and redact("redis://h:1/0") == "redis://h:1/0"


def test_a_query_password_shows_in_no_log_answer_output_or_file(tmp_path):
    with EmbeddedRedis(tmp_path / "r", extra_args=("--requirepass", SECRET)) as server:
        url = f"{server.url}?password={SECRET}"
        shown = f"{server.url}?password=***"
        admin = redis.Redis.from_url(url)
        corpus = generate(60, seed=3, grace_ms=1000)
        write_corpus(admin, corpus, PROD, SIS, past_base_ms(admin, corpus))
        seen: list[str] = []  # everything the tool showed

        port = free_port()
        log = tmp_path / "run.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                cli_command("run", "--production", PROD, "--sister", SIS, "--start-id", "0",
                            "--grace", "1", "--http-port", str(port)),
                env={**cli_env(), "CDC_VERIFY_REDIS_URL": url}, stdout=out, stderr=out,
            )  # fmt: skip
        try:
            wait_for(lambda: admin.exists(VERDICTS) or worker.poll() is not None, 30, "verdicts")
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(f"{base}/readyz"), 30, "the HTTP server")
            for path in ("/api/status", "/api/gate", "/api/alerts", "/metrics", "/"):
                seen.append(httpx.get(base + path, timeout=10).text)
            assert shown in json.dumps(httpx.get(f"{base}/api/gate", timeout=10).json())
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()
        seen.append(log.read_text())
        assert shown in seen[-1]

        for args in (["gate", "--since", "1h"], ["gate", "--since", "1h", "--json"],
                     ["alerts"], ["coverage"]):  # fmt: skip
            done = cli(*args, "--redis", url)
            seen += [done.stdout, done.stderr]
        out = tmp_path / "report"
        done = cli("backfill", "--redis", url, "--production", PROD, "--sister", SIS,
                   "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen += [done.stdout, done.stderr, *(f.read_text() for f in out.iterdir())]
        assert shown in (out / "report.html").read_text()
        capture = tmp_path / "p.cap"
        done = cli("capture", "--redis", url, "--stream", PROD, "--out", str(capture))
        assert done.returncode == 0, done.stderr
        header = capture.read_bytes().decode("latin-1")  # the header is plain JSON
        assert f'"source": "{shown}"' in header
        seen += [done.stdout, done.stderr, header]
        # An error about the server names it, redacted.
        done = cli("capture", "--redis", url, "--stream", "typo", "--out", str(capture))
        assert f"stream 'typo' does not exist on {shown}" in done.stderr
        seen.append(done.stderr)
        admin.close()
    leaks = [text[max(0, text.find(SECRET) - 80) :][:160] for text in seen if SECRET in text]
    assert not leaks, leaks


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 600
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        (["--sister-redis-tls-ca-file", "{ca}"], {}, "--sister-redis-tls-ca-file"),
        ([], {"CDC_VERIFY_REDIS_TLS_CERT_FILE": "{ca}"},
         "--redis-tls-cert-file (from CDC_VERIFY_REDIS_TLS_CERT_FILE)"),
    ],
    ids=["flag", "env"],
)  # fmt: skip
def test_tls_files_with_a_url_that_is_not_tls_are_refused(tmp_path, flags, env, named):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read: refused before\n")
    url = f"redis://:{SECRET}@127.0.0.1:1/0"
    done = cli("backfill", "--redis", url, *(f.format(ca=ca) for f in flags),
               "--out", str(tmp_path / "o"),
               env={k: v.format(ca=ca) for k, v in env.items()})  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.partition("Error: ")[2].strip().splitlines()
    assert line.startswith(f"{named}: a TLS file, but the ")
    assert "redis://***@127.0.0.1:1/0 is not TLS (rediss://)" in line
    assert "use 'rediss://***@127.0.0.1:1/0' to connect with TLS" in line
    assert SECRET not in done.stderr


def test_a_verified_tls_connection_checks_the_certificates_name():
    # redis-py 5 (which the pins allow) leaves the name unchecked unless told.
    server = RedisServer(Role.STATE, "rediss://db.internal:6380/0")
    assert client_options(server)["ssl_check_hostname"] is True
    unverified = RedisServer(Role.STATE, "rediss://db.internal:6380/0", tls_verify=False)
    assert client_options(unverified)["ssl_check_hostname"] is False


def test_read_only_production_with_the_state_on_its_server_is_refused(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "p") as production, EmbeddedRedis(tmp_path / "s") as sister:
        admin = redis.Redis.from_url(production.url)
        admin.xadd(PROD, {"event_id": "E1"})
        admin.config_resetstat()
        own = production.url.removesuffix("/0")
        cases = [
            ["--redis", production.url],
            ["--production-redis", production.url, "--sister-redis", sister.url,
             "--state-redis", f"{own}/0"],
            ["--production-redis", production.url, "--sister-redis", sister.url,
             "--state-redis", f"{own}/3"],  # another database: still production's server
        ]  # fmt: skip
        for flags in cases:
            done = cli("run", *flags, "--production-read-only", "--http-port", "0")
            assert done.returncode == 2, done.stderr
            [line] = done.stderr.partition("Error: ")[2].strip().splitlines()
            assert line.startswith(f"--production-read-only: the state server {own}/")
            assert (
                f"is production's own server ({production.url}, 127.0.0.1:{production.port})"
                in line
            )
            assert "give the state a server of its own: --state-redis URL" in line
        # Nothing reached production but our own CONFIG RESETSTAT and INFO.
        stats = admin.info("commandstats")
        assert set(stats) <= {"cmdstat_config|resetstat", "cmdstat_config", "cmdstat_info"}
        assert admin.keys("*") == [PROD.encode()]
        admin.close()
