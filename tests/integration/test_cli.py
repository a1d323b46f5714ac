"""The promised command line: commands, flags, errors, settings sources."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import click
import pytest
from pydantic import ByteSize

from cdc_verify.cli import main
from cdc_verify.cli.options import SettingOption
from cdc_verify.config.settings import ConfigFileError, Settings, load_settings
from cdc_verify.pipeline.reports.files import REPORT_FILES

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, run_worker_until_done, settings


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=kw.pop("env", cli_env()), capture_output=True,
                          text=True, timeout=120, **kw)  # fmt: skip


def test_help_lists_all_six_commands():
    out = cli("--help").stdout
    for command in ("demo", "run", "backfill", "capture", "replay", "alerts"):
        assert f"  {command} " in out
    run_help = cli("run", "--help").stdout
    for flag in ("--redis", "--production", "--sister", "--grace", "--verdict-stream",
                 "--consumer", "--start-id", "--http-port", "--http-host"):  # fmt: skip
        assert flag in run_help


def test_every_option_of_every_command_has_help_and_settings_show_their_default():
    commands = {"": main, **main.commands}
    for name, command in commands.items():
        for param in command.params:
            assert isinstance(param, click.Option), (name, param.name)
            assert param.help and param.help.strip(), f"{name} {param.opts[0]} has no help"
            if isinstance(param, SettingOption):
                field = Settings.model_fields[param.name]
                default = field.get_default(call_default_factory=True)
                shown = "none" if default in (None, []) else str(default)
                if isinstance(default, ByteSize):  # 64.0 MiB, not 67108864
                    shown = default.human_readable(separator=" ")
                assert f"(default: {shown}; env CDC_VERIFY_{param.name.upper()})" in param.help
    backfill = " ".join(cli("backfill", "--help").stdout.split())  # unwrapped
    grace = Settings.model_fields["grace"].default
    assert f"--grace DURATION how long a partner may lag before it is a gap (default: {grace}; " \
        "env CDC_VERIFY_GRACE)" in backfill  # fmt: skip
    assert "(default: cdc:production; env CDC_VERIFY_PRODUCTION)" in backfill
    assert "(default: cdc:sister; env CDC_VERIFY_SISTER)" in backfill
    for command in ("backfill", "replay"):
        out = next(p for p in main.commands[command].params if p.name == "out")
        assert all(name in (out.help or "") for name in REPORT_FILES)
    alerts = next(p for p in main.commands["alerts"].params if p.name == "redis_url")
    assert "the Redis the worker writes its alerts to (its state" in (alerts.help or "")
    demo = {p.name: p.help for p in main.commands["demo"].params}
    assert all(demo[name] for name in ("events", "grace", "seed"))


SERVER_FLAGS = ("", "-username", "-password-file", "-tls-ca-file", "-tls-cert-file",
                "-tls-key-file")  # fmt: skip


def test_every_role_has_its_server_flags_and_no_password_flag():
    def options(command: str) -> dict[str, click.Option]:
        params = main.commands[command].params
        return {p.opts[0]: p for p in params if isinstance(p, click.Option)}

    roles = {command: ("redis", "production-redis", "sister-redis", "state-redis")
             for command in ("run", "backfill", "capture")}  # fmt: skip
    roles["alerts"] = ("redis", "state-redis")
    for command, prefixes in roles.items():
        flags = options(command)
        for prefix in prefixes:
            assert all(f"--{prefix}{tail}" in flags for tail in SERVER_FLAGS), (command, prefix)
        others = {f for f in flags if f.endswith(SERVER_FLAGS[1:]) or f.endswith("-redis")}
        assert others == {f"--{p}{t}" for p in prefixes for t in SERVER_FLAGS}, command
        # A password is never a flag (ps would show it): the environment or a file.
        assert not [f for f in flags if "password" in f and not f.endswith("-password-file")]
        assert ("--production-read-only" in flags) == (command in ("run", "backfill"))
    run = options("run")
    for role in ("production", "sister", "state"):
        variable = f"CDC_VERIFY_{role.upper()}_REDIS_PASSWORD"
        for tail in ("-username", "-password-file"):
            assert variable in (run[f"--{role}-redis{tail}"].help or ""), (role, tail)
    assert "CDC_VERIFY_REDIS_PASSWORD" in (run["--redis-password-file"].help or "")
    side = options("capture")["--side"]
    assert isinstance(side.type, click.Choice) and list(side.type.choices) == [
        "production",
        "sister",
    ]


def test_backfill_and_replay_print_the_grace_window_and_every_file(
    redis_url, redis_client, tmp_path
):
    for stream, event_id in ((PROD, "E1"), (SIS, "E1"), (PROD, "E2")):
        redis_client.xadd(stream, {"event_id": event_id, "payload": "x"})
    captures = []
    for stream in (PROD, SIS):
        captures.append(str(tmp_path / f"{stream}.cap"))
        assert cli("capture", "--redis", redis_url, "--stream", stream, "--out",
                   captures[-1]).returncode == 0  # fmt: skip
    backfill = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                   "--grace", "2.5", "--out", str(tmp_path / "b"))  # fmt: skip
    replay = cli("replay", "--production", captures[0], "--sister", captures[1],
                 "--grace", "2.5", "--out", str(tmp_path / "r"))  # fmt: skip
    for done, out in ((backfill, tmp_path / "b"), (replay, tmp_path / "r")):
        assert done.returncode == 0, done.stderr
        assert "2 events, grace window 2.5 s; wrote:" in done.stdout
        printed = [line.split(" (")[0].strip() for line in done.stdout.splitlines()
                   if line.startswith(f"  {out}")]  # fmt: skip
        assert printed == [str(out / name) for name in REPORT_FILES]
        assert sorted(printed) == sorted(str(p) for p in out.iterdir())  # every file written


def test_bad_consumer_is_a_clear_usage_error(tmp_path):
    done = cli("backfill", "--consumer", "no_such_module:decode", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "no_such_module" in done.stderr and "Traceback" not in done.stderr


def test_bad_setting_is_a_clear_usage_error(tmp_path):
    done = cli("backfill", "--grace", "-3", "--out", str(tmp_path))
    assert done.returncode == 2 and "grace" in done.stderr and "Traceback" not in done.stderr


def test_user_consumer_plugs_in(redis_url, redis_client, tmp_path):
    (tmp_path / "my_consumer.py").write_text(
        "def decode(fields):\n"
        "    if fields[b'payload'] == b'boom':\n"
        "        raise ValueError('cannot read boom')\n"
        "    return {'payload': fields[b'payload'].decode()}\n"
    )
    for stream, event_id, payload in ((PROD, "Ea", "a"), (SIS, "Ea", "a"), (PROD, "Ex", "x"),
                                      (PROD, "Eb", "b"), (SIS, "Eb", "boom")):  # fmt: skip
        redis_client.xadd(stream, {"event_id": event_id, "payload": payload})
    env = {**cli_env(), "PYTHONPATH": str(tmp_path)}
    out = str(tmp_path / "out")
    done = cli("backfill", "--redis", redis_url, "--production", PROD, "--sister", SIS,
               "--consumer", "my_consumer:decode", "--out", out, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [
        json.loads(x) for x in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()
    ]
    assert sorted((r["event_id"], r["verdict"], r.get("error")) for r in records) == [
        ("Ea", "match", None),
        ("Eb", "undecodable", "ValueError: cannot read boom"),
        ("Ex", "missing_in_sister", None),
    ]


def test_settings_precedence_flags_env_file(tmp_path, monkeypatch):
    config = tmp_path / "cdc.toml"
    config.write_text('production = "from-file"\nsister = "file-sister"\ngrace = 9.0\n'
                      'ignore_paths = ["/score"]\n')  # fmt: skip
    monkeypatch.setenv("CDC_VERIFY_SISTER", "from-env")
    monkeypatch.setenv("CDC_VERIFY_REDIS_PASSWORD", "s3cret")
    s = load_settings(config, grace=2.5, production=None)
    assert (s.production, s.sister, s.grace, s.ignore_paths) == (
        "from-file",
        "from-env",
        2.5,
        ["/score"],
    )
    assert s.redis_password.get_secret_value() == "s3cret" and "s3cret" not in repr(s)
    with pytest.raises(ConfigFileError):
        load_settings(tmp_path / "nope.toml")


def test_alerts_lists_open_gaps_as_json(redis_url, redis_client):
    redis_client.xadd(PROD, {"event_id": "GAP", "entity_id": "t1_z", "payload": "x"})
    run_worker_until_done(settings(redis_url, grace=0.2), redis_client, 1)
    done = cli("alerts", "--redis", redis_url, "--json", "--since", "10m")
    assert done.returncode == 0, done.stderr
    [alert] = json.loads(done.stdout)
    assert alert["event_id"] == "GAP" and alert["verdict"] == "missing_in_sister"
    assert alert["entity_id"] == "t1_z" and alert["opened_at"].endswith("Z")
    table = cli("alerts", "--redis", redis_url)
    assert "GAP" in table.stdout and "1 open alerts" in table.stdout
    assert "not a duration" in cli("alerts", "--redis", redis_url, "--since", "soon").stderr
    assert json.loads(cli("alerts", "--redis", redis_url, "--json", "--side", "sister").stdout)
    assert (
        json.loads(cli("alerts", "--redis", redis_url, "--json", "--side", "production").stdout)
        == []
    )
    assert json.loads(cli("alerts", "--redis", redis_url, "--json", "--resolved").stdout) == []


def test_alerts_older_than_the_retention_are_dropped(redis_url, redis_client):
    import time as clock

    from cdc_verify.config.keys import WorkerKeys

    cfg = settings(redis_url, grace=0.2, alert_retention=2.0)
    keys = WorkerKeys.from_settings(cfg)
    redis_client.xadd(PROD, {"event_id": "OLD-GAP", "payload": "x"})
    run_worker_until_done(cfg, redis_client, 1)
    assert redis_client.hkeys(keys.alerts_open) == [b"OLD-GAP"]
    assert redis_client.zscore(keys.alerts_open_index, "OLD-GAP") is not None
    clock.sleep(2.5)
    redis_client.xadd(PROD, {"event_id": "NEW-GAP", "payload": "x"})
    run_worker_until_done(cfg, redis_client, 2)  # a new run prunes at once
    assert redis_client.hkeys(keys.alerts_open) == [b"NEW-GAP"]
    assert redis_client.zrange(keys.alerts_open_index, 0, -1) == [b"NEW-GAP"]


def test_run_survives_unreachable_redis_and_stops_on_sigterm():
    proc = subprocess.Popen(
        cli_command("run", "--redis", "redis://127.0.0.1:1/0", "--http-port", "0"),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Redis unavailable" in err and "reconnecting" in err


def test_metrics_endpoint_binds_to_loopback(redis_url):
    from cdc_verify.embedded_redis import free_port

    port = free_port()
    proc = subprocess.Popen(
        cli_command("run", "--redis", redis_url, "--http-port", str(port)),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        text = body.decode()
        for name in ("cdc_verify_events_read_total", "cdc_verify_verdicts_total",
                     "cdc_verify_pending_joins", "cdc_verify_consumer_lag_seconds",
                     "cdc_verify_decode_errors_total"):  # fmt: skip
            assert name in text
        import psutil

        listening = {
            c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"
        }
        assert ("127.0.0.1", port) in listening
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_json_logs_carry_the_event_id_on_every_line_about_an_event(redis_url, redis_client):
    proc = subprocess.Popen(
        cli_command("run", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                    "--grace", "0.3", "--start-id", "0", "--http-port", "0",
                    "--log-format", "json"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        redis_client.xadd(PROD, {"event_id": "GAP", "payload": "x"})
        redis_client.xadd(PROD, {"event_id": "BAD", "encoding": "xml", "payload": "x"})
        redis_client.xadd(SIS, {"event_id": "BAD", "encoding": "xml", "payload": "x"})
        deadline = time.monotonic() + 20
        while redis_client.xlen("cdc-verify:verdicts") < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        redis_client.xadd(SIS, {"event_id": "GAP", "payload": "x"})  # late
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # all JSON
    about = {(x["event_id"], x["verdict"]) for x in lines if "event_id" in x}
    assert about == {("GAP", "missing_in_sister"), ("BAD", "undecodable"), ("GAP", "late")}
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
