"""`cdc-verify simulate`: the demo's traffic on servers the user names, and the verdicts
it says `backfill` must give it."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import redis

from cdc_verify.embedded_redis import EmbeddedRedis, free_port

from ..conftest import cli_command, cli_env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=env or cli_env(), capture_output=True, text=True,
                          timeout=240)  # fmt: skip


def expected_verdicts(out: str) -> dict[str, int]:
    line = out.strip().splitlines()[-1]
    listed = line.partition("expected verdicts: ")[2]
    return {name: int(n.replace(",", "")) for name, n in re.findall(r"(\w+) ([\d,]+)", listed)}


def backfill_verdicts(tmp_path, *args: str) -> dict[str, int]:
    done = cli("backfill", *args, "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    return {verdict: n for verdict, n in summary["verdicts"].items() if n}


def test_simulate_writes_both_servers_and_backfill_gives_the_verdicts_it_said(
    redis_url, own_redis, tmp_path
):
    servers = ("--production-redis", redis_url, "--sister-redis", own_redis.url)
    streams = ("--production", "p:sim", "--sister", "s:sim", "--grace", "1")
    done = cli("simulate", *servers, *streams, "--events", "2000", "--rate", "1000")
    assert done.returncode == 0, done.stderr
    written = re.search(r"wrote ([\d,]+) entries \(production ([\d,]+), sister ([\d,]+)\)",
                        done.stdout)  # fmt: skip
    assert written, done.stdout
    total, production, sister = (int(n.replace(",", "")) for n in written.groups())
    with redis.Redis.from_url(redis_url) as p, redis.Redis.from_url(own_redis.url) as s:
        assert (p.xlen("p:sim"), s.xlen("s:sim")) == (production, sister)
        assert not p.exists("s:sim") and not s.exists("p:sim")
    assert total == production + sister and production >= 2000 and sister >= 1900
    expected = expected_verdicts(done.stdout)
    # Every kind of fault: each verdict shows up in 2,000 events.
    assert set(expected) == {"match", "mismatch", "race", "undecodable", "missing_in_sister",
                             "missing_in_production", "duplicate", "malformed"}  # fmt: skip
    assert backfill_verdicts(tmp_path, *servers, *streams) == expected


def test_no_faults_on_one_server_are_matches_only(redis_url, redis_client, tmp_path):
    done = cli("simulate", "--redis", redis_url, "--events", "300", "--rate", "2000",
               "--no-faults", "--entities", "account")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert expected_verdicts(done.stdout) == {"match": 300}
    assert redis_client.xlen("cdc:production") == redis_client.xlen("cdc:sister") == 300
    _, fields = redis_client.xrange("cdc:production", count=1)[0]
    assert fields[b"entity"] == b"account"
    assert backfill_verdicts(tmp_path, "--redis", redis_url) == {"match": 300}


def test_servers_that_cannot_be_reached_or_refuse_are_named_in_one_line(own_redis):
    port = free_port()
    done = cli("simulate", "--production-redis", own_redis.url, "--sister-redis",
               f"redis://127.0.0.1:{port}/0", "--events", "10")  # fmt: skip
    assert done.returncode == 1
    assert f"Error: cannot reach the sister server redis://127.0.0.1:{port}/0" in done.stderr
    assert "Traceback" not in done.stderr

    own_redis.acl_user("writer", "right-password", ("~*", "+@all"))
    env = {**cli_env(), "CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": "wrong-password"}
    done = cli("simulate", "--redis", own_redis.url, "--production-redis", own_redis.url,
               "--production-redis-username", "writer", "--events", "10", env=env)  # fmt: skip
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"Error: the production server {own_redis.url} refused the credentials of user writer"
    ), done.stderr
    assert "wrong-password" not in done.stdout + done.stderr

    done = cli("simulate", "--events", "10")
    assert done.returncode == 2
    assert "no server for the production and sister stream" in done.stderr


def test_sigint_stops_the_writer_and_says_what_it_wrote(redis_url, redis_client):
    with subprocess.Popen(
        cli_command("simulate", "--redis", redis_url, "--events", "100000", "--rate", "1000"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        seen = []  # "writing ...", then a progress line every PROGRESS_S
        while not (seen and seen[-1].startswith("written ")):
            seen.append(process.stderr.readline())
            assert seen[-1], seen  # not ended
        assert seen[0].startswith("writing "), seen
        assert re.match(r"written [\d,]+/[\d,]+ entries \([\d,]+ entries/s\)", seen[-1])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGINT, err
    stopped = re.search(r"stopped by SIGINT: wrote ([\d,]+) of ([\d,]+) entries", out)
    assert stopped, out
    written = int(stopped.group(1).replace(",", ""))
    assert 0 < written < int(stopped.group(2).replace(",", ""))
    landed = redis_client.xlen("cdc:production") + redis_client.xlen("cdc:sister")
    assert written <= landed <= written + 1000  # a pipeline in flight may land unseen
    assert "Traceback" not in err


def test_help_of_simulate_names_no_password_flag():
    out = cli("simulate", "--help").stdout
    assert "--production-redis-password-file" in out and "--sister-redis" in out
    assert not re.search(r"--[\w-]*password(?!-file)", out)


def test_the_stream_keys_default_as_for_run(own_redis: EmbeddedRedis):
    done = cli("simulate", "--redis", own_redis.url, "--events", "5", "--no-faults")
    assert done.returncode == 0, done.stderr
    with redis.Redis.from_url(own_redis.url) as client:
        assert sorted(client.keys("*")) == [b"cdc:production", b"cdc:sister"]
