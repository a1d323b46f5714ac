"""The command line on three servers: production (read-only ACL user), sister and state.

Each test starts its own redis-servers. Passwords come from the environment or a file,
never a flag: `ps` (here /proc/PID/cmdline) shows none, and logs redact URLs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cdc_verify.config.servers import Role
from cdc_verify.config.settings import load_settings
from cdc_verify.embedded_redis import EmbeddedRedis, free_port
from cdc_verify.simulate.corpus import Corpus, generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .acl_users import make_user
from .support import PROD, SIS, VERDICTS, assert_records_match, primary_count, verdict_records

READER, READER_PASSWORD = "reader", "reader-pw-7c1e"
VERIFIER, SISTER_PASSWORD, STATE_PASSWORD = "verifier", "sister-pw-93ad", "state-pw-4b0f"
PASSWORDS = (READER_PASSWORD, SISTER_PASSWORD, STATE_PASSWORD)
# The worker's users get the ACL rules of docs/topology.md, read from the page itself.
# The commands a read-only production server may receive: reads and the handshake.
READ_COMMANDS = {"xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping"}
HANDSHAKE = {"auth", "hello", "client"}
THROWAWAY = "throwaway:other-side"


@dataclass
class Servers:
    production: EmbeddedRedis
    sister: EmbeddedRedis
    state: EmbeddedRedis
    admin: dict[str, redis.Redis]  # role -> a client with every right


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Production with the read-only user `reader`; the sister and state servers with a
    user `verifier` each, holding no more rights than docs/topology.md asks for."""
    production = EmbeddedRedis(tmp_path / "production")
    sister = EmbeddedRedis(tmp_path / "sister")
    state = EmbeddedRedis(tmp_path / "state")
    with production, sister, state:
        admin = {role: redis.Redis(port=server.port)
                 for role, server in (("production", production), ("sister", sister),
                                      ("state", state))}  # fmt: skip
        make_user(admin["production"], READER, READER_PASSWORD, "~*", "read_only")
        make_user(admin["sister"], VERIFIER, SISTER_PASSWORD, f"~{SIS} ~cdc-verify:*", "stream")
        make_user(admin["state"], VERIFIER, STATE_PASSWORD, "~cdc-verify:*", "state")
        yield Servers(production, sister, state, admin)
        for client in admin.values():
            client.close()


def write_split(servers: Servers, corpus: Corpus, base_ms: int) -> None:
    """The production side on the production server, the sister side on the sister's."""
    for role, production, sister in (("production", PROD, THROWAWAY),
                                     ("sister", THROWAWAY, SIS)):  # fmt: skip
        write_corpus(servers.admin[role], corpus, production, sister, base_ms)
        servers.admin[role].delete(THROWAWAY)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env={**cli_env(), **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.partition("Error: ")[2].strip().splitlines()


def commands_received(client: redis.Redis) -> dict[str, dict[str, int]]:
    """INFO commandstats by command (subcommands folded in): calls, rejected_calls, ..."""
    out: dict[str, dict[str, int]] = {}
    for name, stats in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_").partition("|")[0]
        totals = out.setdefault(command, {})
        for key, value in stats.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return out


def assert_only_reads(client: redis.Redis, *, attempted: bool = True) -> None:
    """Since the CONFIG RESETSTAT (the one `config` call), production got only reads.

    `attempted` False: only what Redis ran counts (a command the ACL refused did not run).
    """
    got = commands_received(client)
    assert got.pop("config", {}).get("calls") == 1  # our own RESETSTAT
    if not attempted:
        got = {name: s for name, s in got.items() if s["calls"] > s.get("rejected_calls", 0)}
    others = set(got) - READ_COMMANDS - HANDSHAKE
    assert not others, f"the read-only production server received {sorted(others)}"
    refused = {name: s for name, s in got.items() if s.get("rejected_calls")}
    assert not refused, f"the ACL refused {refused}"


def split_flags(servers: Servers) -> list[str]:
    return [
        "--production-redis", servers.production.url, "--production-redis-username", READER,
        "--sister-redis", servers.sister.url, "--sister-redis-username", VERIFIER,
        "--production-read-only",
    ]  # fmt: skip


def backfill(out: Path, *flags: str, env: dict[str, str] | None = None):
    return cli("backfill", *flags, "--production", PROD, "--sister", SIS, "--grace", "1",
               "--out", str(out), env=env)  # fmt: skip


def test_backfill_on_two_servers_read_only_gives_the_one_server_verdicts(
    servers, redis_url, redis_client, tmp_path
):
    corpus = generate(400, seed=12, grace_ms=1000)
    base = 1_790_000_000_000
    write_corpus(redis_client, corpus, PROD, SIS, base)  # both streams on one server
    write_split(servers, corpus, base)
    servers.admin["production"].config_resetstat()

    one = backfill(tmp_path / "one", "--redis", redis_url)
    split = backfill(
        tmp_path / "split", *split_flags(servers),
        "--sister-redis-password-file", str(_file(tmp_path / "sister.pw", SISTER_PASSWORD)),
        env={"CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": READER_PASSWORD},
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert split.returncode == 0, split.stderr
    for name in ("verdicts.jsonl", "summary.json", "groups.json"):
        assert (tmp_path / "split" / name).read_text() == (tmp_path / "one" / name).read_text()
    records = [json.loads(line) for line in (tmp_path / "split" / "verdicts.jsonl").open()]
    assert_records_match(records, corpus.expected_records(base))
    assert_only_reads(servers.admin["production"], attempted=False)  # strictly: see below
    assert not any(p in split.stdout + split.stderr for p in PASSWORDS)


def _file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")  # a trailing newline, as `echo` leaves it, is not part of it
    return path


def test_a_password_file_works_and_a_missing_one_names_its_flag(servers, tmp_path):
    corpus = generate(100, seed=5, grace_ms=1000)
    write_split(servers, corpus, 1_790_000_000_000)
    sister_pw = str(_file(tmp_path / "sister.pw", SISTER_PASSWORD))
    done = backfill(tmp_path / "o", *split_flags(servers), "--sister-redis-password-file",
                    sister_pw, "--production-redis-password-file",
                    str(_file(tmp_path / "reader.pw", READER_PASSWORD)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(corpus.expected):,} events" in done.stdout

    missing = tmp_path / "no-such.pw"
    done = backfill(tmp_path / "o2", *split_flags(servers), "--sister-redis-password-file",
                    sister_pw, "--production-redis-password-file", str(missing))  # fmt: skip
    assert done.returncode == 2
    assert error_lines(done) == [
        f"--production-redis-password-file: '{missing}' is not a readable file"
    ]
    done = backfill(tmp_path / "o3", *split_flags(servers),
                    env={"CDC_VERIFY_SISTER_REDIS_PASSWORD_FILE": str(missing)})  # fmt: skip
    assert done.returncode == 2
    assert error_lines(done) == [
        f"--sister-redis-password-file (from CDC_VERIFY_SISTER_REDIS_PASSWORD_FILE): "
        f"'{missing}' is not a readable file"
    ]


def _cmdline(pid: int) -> list[str]:
    """What `ps` shows of a process, once it runs the command (not the fork before exec)."""
    proc = Path(f"/proc/{pid}/cmdline")
    _wait(lambda: "cdc_verify.cli" in proc.read_bytes().decode(), 10, "the command to start")
    return proc.read_bytes().decode().split("\0")


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_run_on_three_servers_with_a_read_only_production(servers, tmp_path):
    admin = servers.admin
    corpus = generate(300, seed=8, grace_ms=1000)
    base = past_base_ms(admin["production"], corpus)
    write_split(servers, corpus, base)
    admin["production"].config_resetstat()
    env = {
        **cli_env(),
        "CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": READER_PASSWORD,
        "CDC_VERIFY_STATE_REDIS_PASSWORD": STATE_PASSWORD,
    }
    log = tmp_path / "run.log"
    args = cli_command(
        "run", *split_flags(servers),
        "--sister-redis-password-file", str(_file(tmp_path / "sister.pw", SISTER_PASSWORD)),
        "--state-redis", servers.state.url,
        "--production", PROD, "--sister", SIS, "--grace", "1", "--start-id", "0",
        "--consumer-name", "topology", "--http-port", "0", "--lock-ttl", "1", "--block-ms", "20",
    )  # fmt: skip
    with log.open("w") as stderr:
        worker = subprocess.Popen(args, env=env, stdout=stderr, stderr=stderr)
    try:
        # What `ps` shows: the servers and the user, no password.
        shown = _cmdline(worker.pid)
        assert servers.production.url in shown and "--production-read-only" in shown
        assert not any(p in arg for p in PASSWORDS for arg in shown), shown
        expected = corpus.expected_records(base)
        _wait(lambda: admin["state"].xlen(VERDICTS) >= len(expected) or
              worker.poll() is not None, 60, "every verdict record")  # fmt: skip
        assert worker.poll() is None, log.read_text()
        assert primary_count(admin["state"]) == len(corpus.expected)
        assert_records_match(verdict_records(admin["state"]), expected)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text

    # Production: only reads ran (strictly: see below), no key and no group of the verifier's.
    assert_only_reads(admin["production"], attempted=False)
    assert admin["production"].keys("*") == [PROD.encode()]
    assert admin["production"].xinfo_groups(PROD) == []
    # The worker's users had every right they needed, and no more than documented.
    for role in ("sister", "state"):
        assert admin[role].acl_log() == [], role
    # Sister: read through the group and acked after each commit; state: the rest.
    assert admin["sister"].xpending(SIS, "cdc-verify")["pending"] == 0
    assert admin["state"].exists(VERDICTS)
    assert any(k.endswith(b":positions") for k in admin["state"].keys("*"))

    # The log names every server, by its URL, and no password; no embedded Redis.
    for url in (servers.production.url, servers.sister.url, servers.state.url):
        assert url in text
    assert "(read-only)" in text and "started an embedded Redis" not in text
    assert not any(p in text for p in PASSWORDS)

    # `alerts` reads the state server.
    done = cli("alerts", "--state-redis", servers.state.url, "--json",
               env={"CDC_VERIFY_STATE_REDIS_PASSWORD": STATE_PASSWORD})  # fmt: skip
    assert done.returncode == 0, done.stderr
    open_alerts = sum(admin["state"].hlen(k) for k in admin["state"].keys("*:alerts:open"))
    assert len(json.loads(done.stdout)) == open_alerts > 0


def test_run_logs_urls_with_their_passwords_redacted(tmp_path):
    # URLs with passwords are accepted (the README advises against them): from the
    # environment here, so that ps does not show them; the log must not either.
    # Nothing listens: the worker logs its servers, then waits. Two ports: a state server
    # on production's own (read-only) one is refused.
    port, other = free_port(), free_port()
    env = {
        **cli_env(),
        "CDC_VERIFY_PRODUCTION_REDIS_URL": f"redis://{READER}:{READER_PASSWORD}@127.0.0.1:{port}/0",
        "CDC_VERIFY_SISTER_REDIS_URL": f"redis://:{SISTER_PASSWORD}@127.0.0.1:{other}/1",
    }
    log = tmp_path / "run.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            cli_command("run", "--http-port", "0", "--production-read-only"),
            env=env, stdout=stderr, stderr=stderr,
        )  # fmt: skip
    try:
        assert not any(p in arg for p in PASSWORDS for arg in _cmdline(worker.pid))
        _wait(lambda: "Redis unavailable" in log.read_text() or worker.poll() is not None, 30,
              "the worker to try its servers")  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert f"production on redis://{READER}:***@127.0.0.1:{port}/0 (read-only)" in text
    assert f"state on redis://***@127.0.0.1:{other}/1" in text  # the sister server's
    assert not any(p in text for p in PASSWORDS) and "started an embedded Redis" not in text


def test_run_without_a_server_for_some_role_says_which():
    done = cli("run", "--production-redis", "redis://127.0.0.1:1/0", "--http-port", "0")
    assert done.returncode == 2
    [line] = error_lines(done)
    assert line.startswith("no Redis URL for the sister and state servers: give --sister-redis")
    assert "started an embedded Redis" not in done.stderr

    done = cli("run", "--sister-redis", "redis://127.0.0.1:1/0", "--http-port", "0")
    assert done.returncode == 2
    [line] = error_lines(done)
    assert line.startswith("no Redis URL for the production server: give --production-redis")

    done = cli("run", "--production-redis", "redis://127.0.0.1:1/0", "--state-redis",
               "redis://127.0.0.1:2/0", "--http-port", "0")  # fmt: skip
    assert done.returncode == 2
    [line] = error_lines(done)
    assert line.startswith("no Redis URL for the sister server: give --sister-redis URL, or")


@pytest.mark.parametrize(
    ("flags", "refusal"),
    [
        (["--redis", "redis://127.0.0.1:1/0", "--production-read-only"],
         "--engine faust cannot read production read-only: its forwarders share the streams "
         "through a consumer group (XREADGROUP, XACK), which a read-only ACL user may not run; "
         "use the single engine (the default) for --production-read-only"),
        (["--redis", "redis://127.0.0.1:1/0", "--sister-redis", "redis://127.0.0.1:2/0"],
         "--engine faust keeps both streams and its state on one Redis (--redis); "
         "--sister-redis is for the single engine (the default)"),
        (["--sister-redis", "redis://127.0.0.1:2/0"],
         "--engine faust keeps both streams and its state on one Redis (--redis); "
         "--sister-redis is for the single engine (the default)"),
    ],
    ids=["read-only", "sister-redis", "sister-redis-alone"],
)  # fmt: skip
def test_the_faust_engine_refuses_other_topologies_in_one_line(flags, refusal):
    done = cli("run", "--engine", "faust", "--kafka", "kafka://127.0.0.1:1", *flags)
    assert done.returncode == 2
    assert error_lines(done) == [refusal]


def test_capture_reads_the_stream_from_the_server_of_its_side(servers, tmp_path):
    admin = servers.admin
    write_split(servers, generate(50, seed=2, grace_ms=1000), 1_790_000_000_000)
    count = admin["sister"].xlen(SIS)
    env = {"CDC_VERIFY_SISTER_REDIS_PASSWORD": SISTER_PASSWORD}
    for side in (["--side", "sister"], []):  # only --sister-redis given: sister by default
        out = tmp_path / f"sister{len(side)}.cap"
        done = cli("capture", *side, "--sister-redis", servers.sister.url, "--stream", SIS,
                   "--sister-redis-username", VERIFIER, "--out", str(out), env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"captured {count:,} entries of {SIS} on {servers.sister.url}" in done.stdout
    # With both servers given, production is the default; the sister key is not there.
    done = cli("capture", "--production-redis", servers.production.url,
               "--production-redis-username", READER, "--sister-redis", servers.sister.url,
               "--stream", SIS, "--out", str(tmp_path / "p.cap"),
               env={**env, "CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": READER_PASSWORD})  # fmt: skip
    assert done.returncode == 1
    assert error_lines(done) == [f"stream '{SIS}' does not exist on {servers.production.url}"]


@pytest.mark.parametrize("command", ["backfill", "run"])
def test_a_read_only_production_is_sent_nothing_but_reads(command, servers, tmp_path):
    write_split(servers, generate(20, seed=4, grace_ms=1000), 1_790_000_000_000)
    servers.admin["production"].config_resetstat()
    env = {
        "CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": READER_PASSWORD,
        "CDC_VERIFY_SISTER_REDIS_PASSWORD": SISTER_PASSWORD,
        "CDC_VERIFY_STATE_REDIS_PASSWORD": STATE_PASSWORD,
    }
    if command == "backfill":
        assert backfill(tmp_path / "o", *split_flags(servers), env=env).returncode == 0
    else:
        log = tmp_path / "run.log"
        state = ["--state-redis", servers.state.url, "--state-redis-username", VERIFIER]
        with log.open("w") as stderr:
            worker = subprocess.Popen(
                cli_command("run", *split_flags(servers), *state, "--production", PROD,
                            "--sister", SIS, "--start-id", "0", "--http-port", "0",
                            "--lock-ttl", "1"),
                env={**cli_env(), **env}, stdout=stderr, stderr=stderr,
            )  # fmt: skip
        try:
            _wait(lambda: servers.admin["state"].xlen(VERDICTS) > 0 or worker.poll() is not None,
                  30, "a verdict")  # fmt: skip
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()
    assert_only_reads(servers.admin["production"])


def test_a_roles_own_password_file_wins_over_an_inherited_password(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("CDC_VERIFY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CDC_VERIFY_REDIS_PASSWORD", "inherited")
    settings = load_settings(
        None, redis_url="redis://one:6379/0", production_redis_url="redis://prod:6379/0",
        production_redis_password_file=_file(tmp_path / "prod.pw", "its-own"),
    )  # fmt: skip
    password = settings.server(Role.PRODUCTION).password
    assert password is not None and password.get_secret_value() == "its-own"
