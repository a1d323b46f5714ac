"""A real Postgres 15 server for the row CDC tests: Debian's binaries, a fresh cluster in a
temporary directory, loopback only, `wal_level=logical` so Debezium can read its changes.

`with PostgresServer() as pg: pg.sql("CREATE TABLE ...")`. The cluster trusts every local
connection (user `postgres`, any password), replication ones included. initdb and postgres
refuse to run as root: as root (here and in CI) they run as the `postgres` user Debian's
package creates. The server is this process's child and dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from cdc_verify.embedded_redis import _die_with_parent, free_port

# Debian's postgresql-15 (scripts/setup installs it); not whatever is first on PATH.
PG_BIN = Path(os.environ.get("CDC_VERIFY_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
USER = "postgres"


def end(process: subprocess.Popen[bytes] | None, sig: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stops a server child with `sig` (its own clean stop), SIGKILL when it takes longer
    than `timeout`; nothing when it is not running."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def require_postgres() -> None:
    """Fail (not skip) with a clear message when the server cannot be run."""
    missing = [tool for tool in ("initdb", "postgres", "psql") if not (PG_BIN / tool).exists()]
    assert not missing, (
        f"{', '.join(missing)} not in {PG_BIN}: the row CDC tests run Debian's Postgres 15 "
        "(apt-get install postgresql-15, or bash scripts/setup test; CDC_VERIFY_PG_BIN "
        "names another bin directory)"
    )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            raise AssertionError(
                f"no user {USER!r} to run Postgres as (it refuses root): Debian's "
                "postgresql-common package creates it"
            ) from None


class PostgresServer:
    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.settings = {
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "fsync": "off",  # a test's cluster: no crash to survive, less disk wait
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        self.data_dir = Path()
        self._tmp = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}  # Popen's user/group: the postgres user when root
        self.start_seconds = 0.0

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> PostgresServer:
        require_postgres()
        started = time.monotonic()
        # Not pytest's tmp_path: its parents are root's and closed to the postgres user.
        self._tmp = tempfile.mkdtemp(prefix="cdc-verify-pg-")
        self.data_dir = Path(self._tmp) / "data"
        if os.geteuid() == 0:
            user = pwd.getpwnam(USER)
            os.chown(self._tmp, user.pw_uid, user.pw_gid)
            self._as = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", USER, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, stdin=subprocess.DEVNULL, **self._as,
        )  # fmt: skip
        conf = "".join(f"{name} = '{value}'\n" for name, value in self.settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write(conf)
        with (Path(self._tmp) / "postgres.log").open("wb") as log:
            self._process = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._tmp}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True, preexec_fn=_die_with_parent(), **self._as,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise AssertionError(f"postgres exited at start:\n{self.log_tail()}")
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"postgres not ready in {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - started
        return self

    def sql(self, statements: str, database: str = "postgres") -> str:
        """Runs `statements` with psql (stopping at the first error): their output, rows as
        `|`-separated lines."""
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
             "-c", statements],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, f"psql failed: {result.stderr}\n{statements}"
        return result.stdout.strip()

    def drop_slot(self, slot: str, timeout: float = 30.0) -> None:
        """Drops a replication slot once nothing holds it (a stopped reader's walsender
        can linger a moment); fine when it does not exist."""
        deadline = time.monotonic() + timeout
        while True:
            active = self.sql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'")
            if not active:
                return
            if active == "f":
                self.sql(f"SELECT pg_drop_replication_slot('{slot}')")
                return
            assert time.monotonic() < deadline, f"replication slot {slot} still in use"
            time.sleep(0.2)

    def slots(self) -> list[str]:
        return self.sql("SELECT slot_name FROM pg_replication_slots ORDER BY 1").split()

    def log_tail(self) -> str:
        log = Path(self._tmp) / "postgres.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients disconnected, a clean checkpoint), SIGKILL if stuck;
        then the cluster's directory goes."""
        end(self._process, signal.SIGINT)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
