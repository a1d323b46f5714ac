"""AUTH passwords and ACL users are configurable, and refusals are clear errors."""

from __future__ import annotations

import json

import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis

from ..conftest import cli_command, cli_env
from .support import PROD, SIS

ADMIN_PASSWORD = "admin-secret"
USER, USER_PASSWORD = "verifier", "verifier-secret"


@pytest.fixture()
def secured_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "r", extra_args=("--requirepass", ADMIN_PASSWORD))
    with server:
        admin = redis.Redis(port=server.port, password=ADMIN_PASSWORD)
        admin.acl_setuser(USER, enabled=True, passwords=[f"+{USER_PASSWORD}"],
                          keys=["*"], commands=["+@all"])  # fmt: skip
        admin.xadd(PROD, {"event_id": "E1", "encoding": "msgpack", "payload": b"\x80"})
        admin.xadd(SIS, {"event_id": "E1", "encoding": "msgpack", "payload": b"\x80"})
        admin.close()
        yield server


def backfill(url: str, out, password: str | None, *flags: str):
    import subprocess

    env = cli_env()
    if password is not None:
        env["CDC_VERIFY_REDIS_PASSWORD"] = password
    return subprocess.run(
        cli_command("backfill", "--redis", url, "--production", PROD, "--sister", SIS,
                    "--out", str(out), *flags),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_acl_user_with_password_from_the_environment(secured_redis, tmp_path):
    done = backfill(secured_redis.url, tmp_path / "o", USER_PASSWORD, "--redis-username", USER)
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(x) for x in (tmp_path / "o" / "verdicts.jsonl").read_text().splitlines()]
    assert record["event_id"] == "E1" and record["verdict"] == "undecodable"


def test_wrong_password_is_a_clear_error(secured_redis, tmp_path):
    done = backfill(secured_redis.url, tmp_path / "o", "wrong", "--redis-username", USER)
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr and "Traceback" not in done.stderr
    assert "wrong" not in done.stderr  # the password itself is never printed


def test_run_stops_at_once_on_wrong_credentials(secured_redis):
    import subprocess

    env = {**cli_env(), "CDC_VERIFY_REDIS_PASSWORD": "wrong"}
    done = subprocess.run(
        cli_command("run", "--redis", secured_redis.url, "--http-port", "0"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "refused the credentials" in done.stderr


def test_acl_user_without_permission_is_a_clear_error(secured_redis, tmp_path):
    admin = redis.Redis(port=secured_redis.port, password=ADMIN_PASSWORD)
    admin.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"],
                      commands=["-@all", "+auth", "+hello", "+ping"])  # fmt: skip
    done = backfill(secured_redis.url, tmp_path / "o", "pw", "--redis-username", "reader")
    assert done.returncode == 1
    assert "ACL denies" in done.stderr and "Traceback" not in done.stderr
