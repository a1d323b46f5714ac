"""`cdc-verify demo` runs start to finish and its summary matches what it injected."""

from __future__ import annotations

import re
import subprocess

from ..conftest import cli_command, cli_env

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
    assert "got the verdict its fault implies" in out and "≠" not in out
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
