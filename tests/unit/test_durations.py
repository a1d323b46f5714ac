"""One duration syntax everywhere (docs/commands.md, "Durations"): plain seconds or a
number and a unit, in flags, the environment, TOML, `--since` and the API's `since`."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from cdc_verify.cli import main
from cdc_verify.config.settings import InvalidSettings, load_settings
from cdc_verify.durations import DURATION_PATTERN, parse_duration, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("0.5", 0.5), (" 30s ", 30), ("10m", 600), ("1.5h", 5400), ("7d", 604800),
     ("-1", -1), (604800, 604800), (2.5, 2.5)],
)  # fmt: skip
def test_a_duration_is_seconds_or_a_number_and_a_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["7 days", "7days", "soon", "", "1w", "inf", "nan", "1e400",
                                 "\u0661\u0660", True, [1], None])  # fmt: skip
def test_anything_else_says_the_syntax(bad):
    with pytest.raises(ValueError, match=r"is not a duration: give seconds .* 30s, 10m, 2h, 7d"):
        parse_duration(bad)


def test_settings_take_it_from_flags_the_environment_and_toml(tmp_path, monkeypatch):
    config = tmp_path / "cdc.toml"
    config.write_text('grace = "2m"\nlock_ttl = 15\ngate_since = "1d"\nready_max_lag = "1.5"\n')
    monkeypatch.setenv("CDC_VERIFY_ALERT_RETENTION", "7d")
    monkeypatch.setenv("CDC_VERIFY_REDIS_SOCKET_TIMEOUT", "30s")
    s = load_settings(config, decided_retention="1h", verdict_retention=60.0)
    assert (s.grace, s.lock_ttl, s.gate_since, s.ready_max_lag) == (120, 15, 86400, 1.5)
    assert (s.alert_retention, s.redis_socket_timeout) == (604800, 30)
    assert (s.decided_retention, s.verdict_retention) == (3600, 60)
    monkeypatch.setenv("CDC_VERIFY_COUNTER_RETENTION", "30s")  # bounds still hold
    with pytest.raises(InvalidSettings, match=r"--counter-retention .*: must be >= 60"):
        load_settings(config)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner(env={}).invoke(main, list(args))
    return result.exit_code, result.output


def test_every_duration_flag_takes_the_syntax():
    # --grace -1 stops `run` once the settings are read: only it is refused, not 7d.
    code, output = invoke("run", "--alert-retention", "7d", "--verdict-retention", "2d",
                          "--decided-retention", "1h", "--lock-ttl", "15s",
                          "--ready-max-lag", "2m", "--grace", "-1")  # fmt: skip
    assert code == 2 and output.strip().endswith("--grace: must be >= 0"), output
    code, output = invoke("run", "--alert-retention", "7days")
    assert code == 2 and "'7days' is not a duration" in output
    code, output = invoke("demo", "--linger", "2d")
    assert code == 2 and "'2d' is more than 86400 s" in output
    code, output = invoke("alerts", "--since", "-5m", "--redis", "redis://127.0.0.1:1/0")
    assert code == 2 and "'-5m' is less than 0 s" in output
    code, output = invoke("gate", "--since", "1 day", "--redis", "redis://127.0.0.1:1/0")
    assert code == 2 and "'1 day' is not a duration" in output


def test_the_api_takes_the_same_syntax():
    for text in ("90", "600", "10m", "1.5h", "7d"):
        assert re.fullmatch(DURATION_PATTERN, text)
        assert parse_window(text) == timedelta(seconds=parse_duration(text))
    assert not re.fullmatch(DURATION_PATTERN, "-5m")
