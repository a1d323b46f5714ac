"""Every wrong input the command line can get is one clear line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from cdc_verify.config.settings import InvalidSettings, load_settings
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.pipeline.redis.ranges import missing_streams

from ..conftest import cli_command, cli_env
from .support import PROD, SIS

NOT_A_URL = (
    "'localhost:6379' is not a Redis URL; expected redis://HOST:PORT, rediss:// (TLS) "
    "or unix:///path"
)
# `import faust` fails and importlib.util.find_spec("faust") is None, as without the extra.
WITHOUT_FAUST = "import sys; sys.modules['faust'] = None; from cdc_verify.cli import main; main()"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env={**cli_env(), **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """What follows click's `Error: `, asserting there is no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    _, _, message = done.stderr.partition("Error: ")
    return message.strip().splitlines()


def test_a_redis_url_without_a_scheme_is_named_from_flag_env_and_file(tmp_path):
    done = cli("backfill", "--redis", "localhost:6379", "--out", str(tmp_path))
    assert done.returncode == 2
    assert error_lines(done) == [f"--redis: {NOT_A_URL}"]

    done = cli("capture", "--stream", PROD, "--out", str(tmp_path / "c.cap"),
               env={"CDC_VERIFY_REDIS_URL": "localhost:6379"})  # fmt: skip
    assert done.returncode == 2
    assert error_lines(done) == [f"--redis (from CDC_VERIFY_REDIS_URL): {NOT_A_URL}"]

    config = tmp_path / "cdc.toml"
    config.write_text('redis_url = "localhost:6379"\n')
    done = cli("alerts", "--config", str(config))
    assert done.returncode == 2
    assert error_lines(done) == [f"--redis (from redis_url in {config}): {NOT_A_URL}"]


def test_a_role_url_without_a_scheme_is_named_by_its_flag(tmp_path):
    done = cli("backfill", "--sister-redis", "localhost:6379", "--out", str(tmp_path))
    assert done.returncode == 2
    assert error_lines(done) == [f"--sister-redis: {NOT_A_URL}"]

    done = cli("alerts", env={"CDC_VERIFY_STATE_REDIS_URL": "localhost:6379"})
    assert done.returncode == 2
    assert error_lines(done) == [f"--state-redis (from CDC_VERIFY_STATE_REDIS_URL): {NOT_A_URL}"]

    # A setting the command has no flag for is named by its variable.
    done = cli("alerts", env={"CDC_VERIFY_PRODUCTION_REDIS_URL": "app:s3cret@db:6379"})
    assert done.returncode == 2 and "s3cret" not in done.stderr
    [line] = error_lines(done)
    assert line.startswith("CDC_VERIFY_PRODUCTION_REDIS_URL: 'app:***@db:6379' is not a Redis URL")


def test_commands_without_a_server_for_a_role_name_it(tmp_path):
    done = cli("backfill", "--production-redis", "redis://127.0.0.1:1/0", "--out", str(tmp_path))
    assert done.returncode == 2
    [line] = error_lines(done)
    assert "no server for the sister stream; give --redis URL" in line
    assert line.endswith("or --sister-redis URL")

    done = cli("capture", "--side", "sister", "--production-redis", "redis://127.0.0.1:1/0",
               "--stream", SIS, "--out", str(tmp_path / "c.cap"))  # fmt: skip
    assert done.returncode == 2
    assert "no server for the sister stream" in error_lines(done)[0]

    done = cli("alerts")
    assert done.returncode == 2
    assert error_lines(done) == [
        "alerts reads the worker's state server: give --state-redis URL or --redis URL "
        "(or CDC_VERIFY_STATE_REDIS_URL, CDC_VERIFY_REDIS_URL)"
    ]


def test_a_rejected_redis_url_does_not_show_its_password(tmp_path):
    done = cli("backfill", "--redis", "app:s3cret@db:6379", "--out", str(tmp_path))
    assert done.returncode == 2 and "s3cret" not in done.stderr
    assert "'app:***@db:6379' is not a Redis URL" in error_lines(done)[0]


def test_an_ignore_path_that_is_not_a_json_pointer_suggests_one(tmp_path):
    done = cli("backfill", "--ignore-path", "/score", "--ignore-path", "edited",
               "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 2
    [line] = error_lines(done)
    assert line.startswith("--ignore-path: 'edited' is not a JSON pointer")
    assert "did you mean '/edited'?" in line
    done = cli("replay", "--production", __file__, "--sister", __file__, "--out", str(tmp_path),
               env={"CDC_VERIFY_IGNORE_PATHS": "/score,edited"})  # fmt: skip
    assert done.returncode == 2
    assert error_lines(done)[0].startswith("--ignore-path (from CDC_VERIFY_IGNORE_PATHS): 'edited'")


def test_bad_numbers_name_the_flag_the_variable_and_the_reason(tmp_path):
    done = cli("backfill", "--grace", "-1", "--out", str(tmp_path))
    assert done.returncode == 2
    assert error_lines(done) == ["--grace: must be >= 0"]

    done = cli("backfill", "--out", str(tmp_path), env={"CDC_VERIFY_GRACE": "abc"})
    assert done.returncode == 2
    assert error_lines(done) == [
        "--grace (from CDC_VERIFY_GRACE): 'abc' is not a duration: give seconds (90) or a "
        "number and a unit: 30s, 10m, 2h, 7d"
    ]

    # One line per bad field, each from wherever its value came; no flag: the origin alone.
    env = {"CDC_VERIFY_BATCH_SIZE": "0", "CDC_VERIFY_REDIS_SOCKET_TIMEOUT": "0"}
    done = cli("run", "--http-port", "-5", "--float-tolerance", "-1", env=env)
    assert done.returncode == 2
    assert sorted(error_lines(done)) == [
        "--batch-size (from CDC_VERIFY_BATCH_SIZE): must be >= 1",
        "--float-tolerance: must be >= 0",
        "--http-port: must be >= 0",
        "CDC_VERIFY_REDIS_SOCKET_TIMEOUT: must be > 0",
    ]


def test_a_config_file_names_its_bad_keys(tmp_path):
    config = tmp_path / "cdc.toml"
    config.write_text("grace = -2\nsurprise = 1\n")
    done = cli("backfill", "--config", str(config), "--out", str(tmp_path))
    assert done.returncode == 2
    assert sorted(error_lines(done)) == [
        f"--grace (from grace in {config}): must be >= 0",
        f"surprise in {config}: not a setting",
    ]
    config.write_text("grace = \n")
    done = cli("backfill", "--config", str(config), "--out", str(tmp_path))
    assert done.returncode == 2
    assert error_lines(done)[0].startswith(f"config file {config} is not valid TOML")


def test_invalid_settings_carry_where_each_value_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_VERIFY_LOCK_TTL", "x")
    with pytest.raises(InvalidSettings) as caught:
        load_settings(grace=-1.0, redis_url="localhost:6379")
    by_field = {p.field: p for p in caught.value.problems}
    assert set(by_field) == {"grace", "redis_url", "lock_ttl"}
    assert by_field["grace"].origin is None and by_field["lock_ttl"].origin == "CDC_VERIFY_LOCK_TTL"
    # Outside the command line, a field's flag is --field-name.
    assert "--lock-ttl (from CDC_VERIFY_LOCK_TTL): 'x' is not a duration" in str(caught.value)
    assert "--redis-url: 'localhost:6379' is not a Redis URL" in str(caught.value)


def test_capture_into_a_missing_directory_names_it(redis_url, redis_client, tmp_path):
    redis_client.xadd(PROD, {"event_id": "E1"})
    out = tmp_path / "missing" / "p.cap"
    done = cli("capture", "--redis", redis_url, "--stream", PROD, "--out", str(out))
    assert done.returncode == 2
    assert error_lines(done) == [f"Invalid value for --out: directory {out.parent} does not exist"]


@pytest.fixture()
def secured_redis(tmp_path):
    with EmbeddedRedis(tmp_path / "r", extra_args=("--requirepass", "pw-9f3a")) as server:
        yield server, server.url.replace("redis://", "redis://:pw-9f3a@")


def test_streams_that_do_not_exist_are_named_with_their_server(secured_redis, tmp_path):
    server, url = secured_redis
    shown = f"redis://***@127.0.0.1:{server.port}/0"  # password redacted
    admin = redis.Redis.from_url(url)
    admin.xadd(PROD, {"event_id": "E1"})
    admin.hset(SIS, "event_id", "E1")  # a key, but not a stream

    done = cli("backfill", "--redis", url, "--production", PROD, "--sister", "typo:sister",
               "--out", str(tmp_path / "o"))  # fmt: skip
    assert done.returncode == 1 and "pw-9f3a" not in done.stderr
    assert error_lines(done) == [f"stream 'typo:sister' does not exist on {shown}"]
    assert not (tmp_path / "o").exists()  # no empty "0 events" report

    done = cli("backfill", "--redis", url, "--production", "typo:production", "--sister", SIS,
               "--out", str(tmp_path / "o"))  # fmt: skip
    assert done.returncode == 1
    assert error_lines(done) == [
        f"stream 'typo:production' does not exist on {shown}",
        f"'{SIS}' on {shown} is a hash, not a stream",
    ]

    done = cli("capture", "--redis", url, "--stream", "typo", "--out", str(tmp_path / "c.cap"))
    assert done.returncode == 1 and "pw-9f3a" not in done.stderr
    assert error_lines(done) == [f"stream 'typo' does not exist on {shown}"]
    assert not (tmp_path / "c.cap").exists()
    admin.close()


def test_missing_streams_tells_absent_from_another_type(redis_client):
    redis_client.xadd("s", {"f": "v"})
    redis_client.set("str", "x")
    redis_client.rpush("list", "x")
    got = missing_streams(redis_client, ["s", "str", "absent", "list"])
    assert got == {"str": "string", "absent": "none", "list": "list"}
    assert missing_streams(redis_client, ["s"]) == {}


@pytest.mark.parametrize("command", ["backfill", "capture"])
def test_reading_commands_without_redis_say_a_fresh_one_has_nothing(command, tmp_path):
    args = ["--out", str(tmp_path / "o")] + (["--stream", PROD] if command == "capture" else [])
    done = cli(command, *args)
    assert done.returncode == 2
    [line] = error_lines(done)
    assert "a fresh embedded Redis has nothing to read" in line and "--redis URL" in line
    assert "started an embedded Redis" not in done.stderr


def test_engine_faust_without_faust_names_the_pip_command():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FAUST, "run", "--engine", "faust",
         "--kafka", "kafka://127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0"],
        env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert error_lines(done) == [
        "--engine faust needs Faust, which is not installed: from the cdc-verify checkout, "
        "pip install -e '.[faust]'"
    ]


def test_everything_but_the_faust_engine_works_without_faust(redis_url, redis_client, tmp_path):
    redis_client.xadd(PROD, {"event_id": "E1", "payload": "x"})
    redis_client.xadd(SIS, {"event_id": "E1", "payload": "x"})
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FAUST, "backfill", "--redis", redis_url,
         "--production", PROD, "--sister", SIS, "--out", str(tmp_path / "o")],
        env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules = "cdc_verify.cli, cdc_verify.demo, cdc_verify.api.service, cdc_verify.pipeline"
    imports = f"import sys; sys.modules['faust'] = None; import {modules}.runners.worker"
    done = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
