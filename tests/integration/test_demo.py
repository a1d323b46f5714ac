"""`cdc-verify demo` runs start to finish and its summary matches what it injected."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psutil
import pytest
import redis

from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.schemas.verdicts import PRIMARY_VERDICTS, Side
from cdc_verify.simulate.corpus import generate
from cdc_verify.simulate.writer import past_base_ms, write_corpus

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, run_worker_until_done, settings, verdict_records

# What a read-only verifier may send production (docs/topology.md), handshake included.
READ_COMMANDS = {"xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping",
                 "hello", "auth", "client", "select", "command"}  # fmt: skip


def test_demo_ends_with_a_summary_matching_the_injected_faults_on_the_real_topology():
    done = subprocess.run(
        cli_command("demo", "--events", "3000", "--rate", "3000", "--grace", "0.5"),
        env=cli_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for verdict in ("match", "mismatch", "race", "undecodable", "missing_in_sister",
                    "missing_in_production", "duplicate", "malformed"):  # fmt: skip
        assert f"{verdict}:" in out  # an example record of every kind was shown
    assert "got the verdict its entries imply" in out and "≠" not in out
    # Both models through every write endpoint, decoded by their own consumers, and
    # counted per entity and op exactly as injected.
    assert "per entity and op too" in out
    # The shapes the live worker counted on its state server.
    said = " ".join(out.split())  # the console wraps long lines
    shapes = re.search(r"Shape coverage \(docs/coverage.md\): ([\d,]+) shapes of production "
                       r"event, ([\d,]+) verified", said)  # fmt: skip
    assert shapes and int(shapes[1].replace(",", "")) >= int(shapes[2].replace(",", "")) > 0
    for entity in ("comment", "account"):
        for op in ("create", "update", "increment"):
            row = re.search(rf"^ {entity}/{op} +│ +([\d,]+) .*│ ok $", out, re.MULTILINE)
            assert row and int(row[1].replace(",", "")) > 0, (entity, op, out[-3000:])
    # Two servers: production reached through the read-only user, state on the sister's.
    topology = re.search(
        r"Topology \(2 embedded Redis servers\):\n"
        r"  production \(read-only ACL user reader\) +redis://127\.0\.0\.1:(\d+)/0\n"
        r"  sister +redis://127\.0\.0\.1:(\d+)/0\n"
        r"  state \(verdicts, alerts, positions\) +on the sister server\n",
        out,
    )
    assert topology, out[:2000]
    assert topology[1] != topology[2]
    assert "reader:" not in out and "***" not in out  # the password is in no URL shown
    # Everything production received, the writer's XADDs aside, was a read command.
    received = re.search(
        r"^The production server received read commands only, the writer's ([\d,]+) XADDs "
        r"aside: (.*)\.$",
        out,
        re.MULTILINE,
    )
    assert received, out[-2000:]
    commands = dict(part.rsplit(" ", 1) for part in received[2].split(", "))
    assert set(commands) <= READ_COMMANDS, commands
    assert int(commands["xread"].replace(",", "")) > 0
    assert int(received[1].replace(",", "")) >= 3000  # every production entry, by the writer
    assert out.rstrip().splitlines()[-1].startswith("PASS: 3,000 events, each with the verdict")


def test_expectations_follow_the_entry_ids_really_written(redis_url, redis_client):
    """A writer behind its schedule moves entries: late partners land within the grace
    window and healthy ones past it. The verdicts the worker gives are those of the entry
    ids written, and `expected_as_written` says so, event by event."""
    corpus = generate(2000, seed=22, grace_ms=500)
    clean = 0
    for entry in corpus.sister:  # faults with one sister entry only
        fault = entry.label.rpartition(":")[2]
        if fault == "late_sister":
            entry.at_ms -= corpus.grace_ms  # from 200-1,000 ms past the grace to -300-+500
        elif fault == "clean" and (clean := clean + 1) % 10 == 0:
            entry.at_ms += 3 * corpus.grace_ms  # past it
    corpus.sister.sort(key=lambda e: e.at_ms)
    base = past_base_ms(redis_client, corpus)
    write_corpus(redis_client, corpus, PROD, SIS, base)
    entry_ms = {side: [int(i.partition("-")[0]) for i in corpus.entry_ids(side, base)]
                for side in (Side.PRODUCTION, Side.SISTER)}  # fmt: skip
    want = corpus.expected_as_written(entry_ms)
    changed = Counter(
        (corpus.expected[e].verdict.value, exp.verdict.value)
        for e, exp in want.items() if exp != corpus.expected[e]
    )  # fmt: skip
    assert changed[("missing_in_sister", "match")] > 5, changed  # late, but within the grace
    assert changed[("match", "missing_in_sister")] > 50, changed  # healthy, but past it
    run_worker_until_done(settings(redis_url, grace=0.5), redis_client, len(corpus.expected))
    records = verdict_records(redis_client)
    got = {r["event_id"]: r["verdict"] for r in records if r["verdict"] in
           {v.value for v in PRIMARY_VERDICTS}}  # fmt: skip
    assert got == {e: exp.verdict.value for e, exp in want.items()}
    counts = Counter(r["verdict"] for r in records)
    assert {v.value: n for v, n in corpus.expected_counts(want).items() if n} == dict(counts)


def test_the_demo_passes_beside_a_cpu_hog():
    """Three busy loops on a two-core machine: the writer falls behind its schedule, the
    servers wait for a core, and the run still ends on PASS, its expectations following
    what was really written."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        done = subprocess.run(
            cli_command("demo", "--events", "4000", "--rate", "4000", "--grace", "0.3"),
            env=cli_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    last = done.stdout.rstrip().splitlines()[-1]
    assert done.returncode == 0 and last.startswith("PASS: 4,000 events"), (
        done.stdout[-3000:] + done.stderr[-3000:]
    )
    assert "ERROR" not in done.stderr, done.stderr[-3000:]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_demo_stopped_while_it_lingers_leaves_no_redis_server_and_shows_its_summary(sig):
    """Ctrl-C reaches a terminal's whole foreground process group, a hang-up its session:
    the demo alone decides, ends the linger, shows its summary and stops its servers. A
    SIGKILLed demo cannot, and the kernel stops them (PR_SET_PDEATHSIG)."""
    demo = subprocess.Popen(
        cli_command("demo", "--events", "100", "--rate", "1000", "--grace", "0.2",
                    "--linger", "120"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a group of its own, as a shell's job
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "Done; the status page stays up" in line:
                break
        servers = [p for p in psutil.Process(demo.pid).children() if "redis-server" in p.name()]
        assert len(servers) == 2, "".join(lines)
        signum = signal.Signals[sig]
        if signum in (signal.SIGINT, signal.SIGHUP):
            os.killpg(demo.pid, signum)  # as the terminal sends them
        else:
            os.kill(demo.pid, signum)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    deadline = time.monotonic() + 15
    while not all(_gone(s.pid) for s in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(s.pid) for s in servers), [s.pid for s in servers]
    if signum is signal.SIGKILL:
        return
    assert demo.returncode == 0, out[-3000:] + err[-3000:]
    assert "cannot reach Redis" not in err
    assert "Verdict records by entity and op" in out
    assert out.rstrip().splitlines()[-1].startswith("PASS: 100 events"), out[-3000:]


def test_a_server_started_from_a_thread_outlives_that_thread_not_the_process():
    """The kernel's safety net (PR_SET_PDEATHSIG) fires when the *thread* that started a
    server ends: one started from a short-lived thread must not die with it."""
    server = EmbeddedRedis()
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.3)  # a SIGTERM from the ended thread would have stopped it by now
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.close()
