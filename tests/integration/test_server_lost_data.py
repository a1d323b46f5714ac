"""A server that comes back empty (restarted without persistence) is reported: at ERROR
naming it, in cdc_verify_server_data_lost_total, on /api/status, and in the alerts of
the gaps it causes."""

from __future__ import annotations

import json
import logging
import random
import shutil
import time

import httpx
import pytest

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.legacy_writer import encode_msgpack, sample_comment

from .support import PROD, SIS, ServedWorker, primary_count, wait_for
from .test_status_page import Page, render
from .topology_servers import servers_fixture  # noqa: F401 (the `servers` fixture)

PAYLOAD = encode_msgpack(sample_comment(random.Random(8), "t1_lost"))


def restart_empty(server: EmbeddedRedis) -> None:
    """SIGKILL, then start without its append-only file: it comes back with no data."""
    server.kill()
    for path in server.data_dir.iterdir():
        if path.name.startswith("appendonly") or path.name == "dump.rdb":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    server.start()


def lost_total(served: ServedWorker, role: Role) -> float:
    value = served.worker.metrics.registry.get_sample_value(
        "cdc_verify_server_data_lost_total", {"role": role.value}
    )
    return value or 0.0


def write(client, stream: str, *event_ids: str) -> None:
    for event_id in event_ids:
        client.xadd(stream, {"event_id": event_id, "encoding": "msgpack", "payload": PAYLOAD})


@pytest.mark.timeout(90)
def test_a_sister_server_back_empty_is_reported_and_marks_the_gaps_it_causes(
    servers, caplog, tmp_path
):
    cfg = servers.settings(grace=1.0)
    keys = WorkerKeys.from_settings(cfg)
    production, sister, state = (servers.client(r) for r in Role)
    lost = [f"LOST{i:03d}" for i in range(20)]
    with caplog.at_level(logging.ERROR), ServedWorker(cfg) as served:
        # Sister copies the worker reads and holds (pending) for their production twin...
        write(sister, SIS, *lost)
        wait_for(lambda: served.worker.pending_joins()[Side.SISTER] == 20, what="20 waiting")
        restart_empty(servers.sister)  # ...when the sister server loses them
        sister.close()
        sister = servers.client(Role.SISTER)
        wait_for(lambda: lost_total(served, Role.SISTER) == 1, what="the loss to be counted")
        found = time.time()
        # The twins come: their sister copies are gone with the server's data.
        write(production, PROD, *lost)
        for i in range(30):  # pairs after the loss are verified as ever
            write(production, PROD, f"AFTER{i:03d}")
            write(sister, SIS, f"AFTER{i:03d}")
        # A real gap, written when no entry it could pair with was on the lost server.
        time.sleep(max(0.0, found + 2.5 - time.time()))
        write(production, PROD, "REALGAP")
        wait_for(lambda: primary_count(state) == 51, what="51 primary verdicts")
        status = httpx.get(f"{served.url}/api/status").json()
        page = Page(render(f"{served.url}/", tmp_path))
    alerts = {k.decode(): json.loads(v) for k, v in state.hgetall(keys.alerts_open).items()}
    assert sorted(alerts) == sorted([*lost, "REALGAP"])
    expected = {"role": "sister", "server": servers.sister.url}
    for event_id in lost:
        marked = alerts[event_id].get("server_lost_data")
        assert marked is not None and {k: marked[k] for k in expected} == expected, event_id
        assert marked["at"].endswith("Z")
    assert "server_lost_data" not in alerts["REALGAP"]
    [shown] = status["servers_lost_data"]
    assert {k: shown[k] for k in expected} == expected
    assert repr(SIS) in shown["what"] and "consumer group" in shown["what"]
    assert "lost-data" not in page.hidden
    shown_line = page.text["lost-data"]
    assert f"The sister server {servers.sister.url} lost its data" in shown_line, shown_line
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    said = [m for m in errors if f"sister server {servers.sister.url} lost its data" in m]
    assert len(said) == 1, errors
    assert "server_lost_data" in said[0]
    for client in (production, sister, state):
        client.close()


@pytest.mark.timeout(90)
def test_a_state_and_a_read_only_production_server_back_empty_are_each_reported(servers, caplog):
    cfg = servers.settings(grace=1.0)
    keys = WorkerKeys.from_settings(cfg)
    production, sister, state = (servers.client(r) for r in Role)
    with caplog.at_level(logging.ERROR), ServedWorker(cfg) as served:
        write(production, PROD, "BEFORE")
        write(sister, SIS, "BEFORE")
        wait_for(lambda: primary_count(state) == 1, what="the first verdict")
        horizon = state.get(keys.horizon)
        restart_empty(servers.state)
        restart_empty(servers.production)
        for client in (production, state):
            client.close()
        production, state = servers.client(Role.PRODUCTION), servers.client(Role.STATE)
        wait_for(lambda: lost_total(served, Role.STATE) == 1, what="the state's loss")
        wait_for(lambda: lost_total(served, Role.PRODUCTION) == 1, what="production's loss")
        time.sleep(2.5)  # sessions that find production's stream missing and wait
        write(production, PROD, "AFTER")  # the stream is back: the worker goes on
        write(sister, SIS, "AFTER")
        wait_for(lambda: primary_count(state) == 1, what="the verdict after")
        status = httpx.get(f"{served.url}/api/status").json()
    assert state.get(keys.horizon) == horizon  # the run's start horizon is kept
    # Each once, though the worker waited some sessions for production's stream.
    assert lost_total(served, Role.STATE) == lost_total(served, Role.PRODUCTION) == 1
    assert {s["role"] for s in status["servers_lost_data"]} == {"state", "production"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for role in (Role.STATE, Role.PRODUCTION):
        url = servers[role].url
        assert [m for m in errors if f"the {role.value} server {url} lost its data" in m], errors
    for client in (production, sister, state):
        client.close()
