"""The HTTP server's bounds (docs/topology.md#the-http-server-and-its-bounds), on real sockets
against a live worker: idle, half-sent, slow and greedy clients neither starve the probes nor
the verifier; the token and the Host header are checked."""

from __future__ import annotations

import json
import logging
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.embedded_redis import free_port
from cdc_verify.simulate.legacy_writer import sample_comment

from ..conftest import cli_command, cli_env
from .support import PROD, SIS, ServedWorker, primary_count, settings, wait_for
from .test_api import _entry

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def closed_by_server(sock: socket.socket, wait: float = 0.0) -> bool:
    """True once the server has closed the connection (EOF or reset); reads past any answer."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            sock.settimeout(0)
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def non_reader(url: str, path: str) -> socket.socket:
    """A client that asks for `path` and never reads the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # far below the answer
    sock.connect(address(url))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def write_pairs(client: redis.Redis, prefix: str, n: int) -> None:
    rng = random.Random(prefix)
    for i in range(n):
        event_id = f"{prefix}{i:08d}"
        entry = _entry(event_id, sample_comment(rng, f"t1_{prefix}{i}"))
        client.xadd(PROD, entry)
        client.xadd(SIS, entry)


class LockWatch:
    """Samples the worker's readiness and its lock on the state server, on a thread."""

    def __init__(self, served: ServedWorker, client: redis.Redis) -> None:
        self._served, self._client = served, client
        self._key = WorkerKeys.from_settings(served.worker.settings).lock
        self.holders: set[bytes | None] = set()
        self.not_ready = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.holders.add(self._client.get(self._key))
            self.not_ready += not self._served.worker.ready.is_set()

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture()
def lock_errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    with caplog.at_level(logging.WARNING):
        found: list[str] = []
        yield found
        found += [r.getMessage() for r in caplog.records if "lock" in r.getMessage()]


def test_400_idle_and_half_sent_connections_starve_neither_the_probes_nor_the_worker(
    redis_url, redis_client, lock_errors
):
    cfg = settings(redis_url, http_max_connections=32, http_request_timeout=2.0)
    with ServedWorker(cfg) as served, LockWatch(served, redis_client) as watch:
        write_pairs(redis_client, "01BEFORE", 50)
        wait_for(lambda: primary_count(redis_client) == 50, what="the first verdicts")
        held: list[socket.socket] = []
        for i in range(400):
            sock = socket.create_connection(address(served.url), timeout=10)
            if i % 2:  # half a request: the headers never end
                sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            held.append(sock)
        # The probes answer while the 400 are open, and the worker verifies new events.
        for _ in range(5):
            reply = httpx.get(f"{served.url}/healthz", timeout=10)
            assert reply.status_code == 200, reply.text
        write_pairs(redis_client, "01DURING", 200)
        wait_for(lambda: primary_count(redis_client) == 250, what="verdicts during the flood")
        # Past the cap the oldest waiting connections were closed at once; the rest once
        # their request time ran out.
        wait_for(lambda: all(closed_by_server(s) for s in held), timeout=20,
                 what="the server closing all 400")  # fmt: skip
        guard = served.service._http.guard  # type: ignore[union-attr]
        assert guard.evicted + guard.timed_out >= 400 - 32 and guard.evicted > 0
        assert len(guard.open) <= 32
        for sock in held:
            sock.close()
    assert len(watch.holders) == 1 and None not in watch.holders  # one holder, throughout
    assert watch.not_ready == 0
    assert not lock_errors


def test_a_slowloris_client_is_dropped_after_the_request_timeout(redis_url):
    cfg = settings(redis_url, http_request_timeout=1.5)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"
    body = b"POST /api/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with ServedWorker(cfg) as served:
        for start in (b"", body):
            sock = socket.create_connection(address(served.url), timeout=10)
            sock.sendall(start)
            sent, began = 0, time.monotonic()
            # One byte every 0.1 s: the whole request would take 20 s.
            while not closed_by_server(sock, 0.1):
                try:
                    sock.sendall(request[sent : sent + 1] if not start else b"x")
                except OSError:
                    break
                sent += 1
                assert time.monotonic() - began < 10, "the slow client was never dropped"
            dropped_after = time.monotonic() - began
            assert 1.0 < dropped_after < 10 and sent < len(request)
            sock.close()
        # A client that sends its request at once is answered, and may keep its connection.
        with httpx.Client(base_url=served.url) as http:
            for _ in range(3):
                assert http.get("/healthz").status_code == 200
                time.sleep(0.3)


def test_big_answers_are_capped_and_a_greedy_client_starves_neither_probes_nor_worker(
    redis_url, redis_client, lock_errors
):
    """12 requests at once for a 6 MB record: the worker's loop stays free (the API has its
    own thread and connections), at most http_max_requests are answered at once, the probes
    always; under a smaller cap the record is refused unread."""
    keys = WorkerKeys.from_settings(settings(redis_url))
    record = {"event_id": "01BIGRECORD", "verdict": "undecodable", "side": "sister",
              "error": "x" * 6_000_000}  # fmt: skip
    redis_client.set(keys.record_prefix + "01BIGRECORD", json.dumps(record))
    cfg = settings(redis_url, http_max_requests=4, http_max_answer_bytes="64MiB")
    with ServedWorker(cfg) as served, LockWatch(served, redis_client) as watch:
        url = f"{served.url}/api/events/01BIGRECORD"
        write_pairs(redis_client, "01GREEDY", 200)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: httpx.get(url, timeout=60), range(12)))
            assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
        wait_for(lambda: primary_count(redis_client) == 200, what="verdicts beside the reads")
        assert {a.status_code for a in answers} <= {200, 503}
        for a in answers:
            if a.status_code == 200:
                assert a.json()["record"]["error"] == record["error"]
            else:
                assert a.headers["retry-after"] == "1" and "http_max_requests" in a.text
        assert any(a.status_code == 200 for a in answers)
        # Clients that do not read their answer hold their requests: past the cap the API
        # answers 503, the probes still 200.
        readers = [non_reader(served.url, "/api/events/01BIGRECORD") for _ in range(4)]
        wait_for(lambda: httpx.get(f"{served.url}/api/groups").status_code == 503,
                 what="the API at its cap")  # fmt: skip
        assert httpx.get(f"{served.url}/healthz").status_code == 200
        for sock in readers:
            sock.close()
        wait_for(lambda: httpx.get(f"{served.url}/api/groups").status_code == 200,
                 what="the API free again")  # fmt: skip
    assert len(watch.holders) == 1 and None not in watch.holders and watch.not_ready == 0
    assert not lock_errors

    # A reader that never reads is disconnected after http_answer_timeout.
    cfg = settings(redis_url, http_max_requests=1, http_answer_timeout=1.5)
    with ServedWorker(cfg) as served:
        stuck = non_reader(served.url, "/api/events/01BIGRECORD")
        wait_for(lambda: httpx.get(f"{served.url}/api/groups").status_code == 503,
                 what="the API at its cap")  # fmt: skip
        wait_for(lambda: closed_by_server(stuck), what="the non-reader disconnected")
        assert httpx.get(f"{served.url}/api/groups").status_code == 200
        stuck.close()

    with ServedWorker(settings(redis_url, http_max_answer_bytes="1MiB")) as served:
        refused = httpx.get(f"{served.url}/api/events/01BIGRECORD")
        assert refused.status_code == 413
        assert "6,000,0" in refused.json()["detail"] and "http_max_answer_bytes" in refused.text
    # Every answer is capped, not only records: /openapi.json is over 1 KiB.
    with ServedWorker(settings(redis_url, http_max_answer_bytes="1KiB")) as tiny:
        assert httpx.get(f"{tiny.url}/openapi.json").status_code == 413
        assert httpx.get(f"{tiny.url}/healthz").status_code == 200


def test_an_empty_token_is_refused_with_the_fix(redis_url):
    port = free_port()  # not 0, which means: no HTTP server
    done = subprocess.run(
        cli_command("run", "--redis", redis_url, "--production", PROD, "--sister", SIS,
                    "--http-port", str(port)),
        env={**cli_env(), "CDC_VERIFY_HTTP_TOKEN": ""}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "CDC_VERIFY_HTTP_TOKEN is set but empty" in done.stderr
    assert "unset it" in done.stderr and "Traceback" not in done.stderr


def test_a_non_loopback_bind_without_a_token_is_warned_of(redis_url, caplog):
    cases = [("0.0.0.0", None, True), ("0.0.0.0", "t0k3n", False),
             ("127.0.0.1", None, False), ("localhost", None, False)]  # fmt: skip
    for host, token, warned in cases:
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING),
            ServedWorker(settings(redis_url, http_host=host, http_token=token)) as served,
        ):
            port = served.url.rpartition(":")[2]
            said = [r for r in caplog.records if "no bearer token" in r.getMessage()]
        assert bool(said) == warned, (host, token)
        if warned:
            assert said[0].levelno == logging.WARNING
            assert f"{host}:{port}" in said[0].getMessage()
            assert "CDC_VERIFY_HTTP_TOKEN" in said[0].getMessage()


def test_the_host_header_is_checked_against_dns_rebinding(redis_url):
    cfg = settings(redis_url, http_allowed_hosts=["verifier.internal"])
    with ServedWorker(cfg) as served:
        port = served.url.rpartition(":")[2]

        def status(host: str, path: str = "/api/status") -> int:
            return httpx.get(served.url + path, headers={"Host": host}).status_code

        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                     "localhost.evil.example", "verifier.internal.evil"):  # fmt: skip
            assert status(host) == 400, host
            assert status(host, "/") == 400, host
        reply = httpx.get(f"{served.url}/api/status", headers={"Host": "evil.example"})
        assert "evil.example" in reply.json()["detail"]
        assert "--http-allowed-hosts" in reply.json()["detail"]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                     "10.1.2.3:9464", "[fd00::1]", f"verifier.internal:{port}"):  # fmt: skip
            assert status(host) == 200, host
    # * lets any name through (behind a proxy that checks it).
    with ServedWorker(settings(redis_url, http_allowed_hosts=["*"])) as served:
        assert httpx.get(f"{served.url}/healthz", headers={"Host": "any.example"}).is_success
