"""`alerts`, `gate` and `coverage` pointed at a server or group that holds no verifier
state say so (exit 2, naming the server and the groups that do have state there), rather
than "no open missing-event alerts" or a go."""

from __future__ import annotations

import subprocess

import pytest

from cdc_verify.embedded_redis import EmbeddedRedis

from ..conftest import cli_command, cli_env
from .support import PROD, run_worker_until_done, settings

COMMANDS = {
    "alerts": ["alerts"],
    "gate": ["gate", "--since", "1h", "--min-events", "0"],
    "coverage": ["coverage"],
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.fixture()
def worked(redis_url, redis_client):
    """A state server where the group `live` ran and left one open alert."""
    redis_client.xadd(PROD, {"event_id": "GAP", "entity_id": "t1_z", "payload": "x"})
    run_worker_until_done(settings(redis_url, grace=0.2, group="live"), redis_client, 1)
    return redis_url


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_group_without_state_is_named_with_the_groups_that_have_some(command, worked):
    done = cli(*COMMANDS[command], "--redis", worked, "--group", "typo")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "no open" not in done.stdout + done.stderr
    assert (
        f"no state for group 'typo' on the state server {worked}: groups with state "
        "there: 'live'; give --group NAME"
    ) in done.stderr
    # The group that ran there answers as before.
    done = cli(*COMMANDS[command], "--redis", worked, "--group", "live")
    assert done.returncode in (0, 1), done.stderr  # gate: a go or a no-go, decided
    assert "no state" not in done.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_server_without_any_state_says_it_may_be_the_wrong_one(command, tmp_path):
    password = "pw-3d8c"
    with EmbeddedRedis(tmp_path / "r", extra_args=("--requirepass", password)) as empty:
        url = empty.url.replace("redis://", f"redis://:{password}@")
        done = cli(*COMMANDS[command], "--redis", url)
    assert done.returncode == 2, done.stdout + done.stderr
    shown = f"redis://***@127.0.0.1:{empty.port}/0"
    assert (
        f"no state for group 'cdc-verify' on the state server {shown}: no worker with key "
        "prefix 'cdc-verify' has run there: is it the worker's state server"
    ) in done.stderr
    assert password not in done.stdout + done.stderr
