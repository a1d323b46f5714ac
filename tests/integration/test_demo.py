"""`cdc-verify demo` runs start to finish and its summary matches what it injected."""

from __future__ import annotations

import subprocess

from ..conftest import cli_command, cli_env


def test_demo_ends_with_a_summary_matching_the_injected_faults():
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
