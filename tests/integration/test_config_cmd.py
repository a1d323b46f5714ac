"""`cdc-verify config`: the effective settings of `run`'s flags, where each came from, and
no secret in the output."""

from __future__ import annotations

import json
import subprocess

from cdc_verify.cli.config_cmd import config
from cdc_verify.cli.run import run
from cdc_verify.config.settings import Settings

from ..conftest import cli_command, cli_env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


SECRETS = ("env-secret", "file-secret", "toml-secret", "url-secret")


def test_each_setting_says_flag_environment_file_or_default_and_no_secret(tmp_path):
    password_file = tmp_path / "production-password"
    password_file.write_text("file-secret\n")
    toml = tmp_path / "cdc.toml"
    toml.write_text('production = "p:file"\nsister = "s:file"\ngrace = 9\n'
                    'http_token = "toml-secret"\n')  # fmt: skip
    env = {"CDC_VERIFY_SISTER": "s:env", "CDC_VERIFY_REDIS_PASSWORD": "env-secret",
           "CDC_VERIFY_CONFIG": str(toml)}  # fmt: skip
    args = ("--grace", "3", "--redis", "redis://app:url-secret@db.example:6380/2",
            "--production-redis-password-file", str(password_file))  # fmt: skip

    done = cli("config", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["grace"] == {"value": 3.0, "source": "flag", "where": "--grace"}
    assert shown["sister"] == {"value": "s:env", "source": "environment",
                               "where": "CDC_VERIFY_SISTER"}  # fmt: skip
    assert shown["production"] == {"value": "p:file", "source": "file", "where": str(toml)}
    assert shown["batch_size"] == {"value": 500, "source": "default", "where": None}
    assert shown["redis_url"]["value"] == "redis://app:***@db.example:6380/2"
    assert shown["redis_password"] == {"value": "***", "source": "environment",
                                       "where": "CDC_VERIFY_REDIS_PASSWORD"}  # fmt: skip
    assert shown["http_token"] == {"value": "***", "source": "file", "where": str(toml)}
    assert shown["production_redis_password_file"]["value"] == str(password_file)
    assert shown["production_redis_password"]["value"] is None  # the file is not read
    assert list(shown) == list(Settings.model_fields)

    text = cli("config", *args, env=env)
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split()[1:] for line in text.stdout.splitlines()}
    assert lines["grace"] == ["3.0", "flag", "--grace"]
    assert lines["sister"] == ["s:env", "environment", "CDC_VERIFY_SISTER"]
    assert lines["production"] == ["p:file", "file", str(toml)]
    assert lines["batch_size"] == ["500", "default"]
    assert lines["redis_password"] == ["***", "environment", "CDC_VERIFY_REDIS_PASSWORD"]
    for out in (done, text):
        leaked = [s for s in SECRETS if s in out.stdout + out.stderr]
        assert not leaked, leaked


def test_bad_settings_are_the_usage_errors_run_gives(tmp_path):
    done = cli("config", env={"CDC_VERIFY_GRACE": "-1"})
    assert done.returncode == 2
    assert "--grace (from CDC_VERIFY_GRACE): must be >= 0" in done.stderr
    done = cli("config", "--config", str(tmp_path / "none.toml"))
    assert done.returncode == 2
    assert f"config file {tmp_path / 'none.toml'} does not exist" in done.stderr


def test_config_takes_every_flag_of_run():
    assert [p.name for p in config.params] == [*(p.name for p in run.params), "as_json"]
