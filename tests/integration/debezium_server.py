"""A real Debezium Server for the row CDC tests: a Postgres server's changes, read through a
replication slot (pgoutput), written by its Redis sink to one stream per table,
`<prefix>.<schema>.<table>`.

The distribution and the Java 21+ it runs on come from scripts/debezium-server (fetched by
`bash scripts/setup test`). Each server gets its own directory, its working directory:
`config/application.properties` (where Debezium Server looks) written from the arguments,
its offsets in `data/offsets.dat`, its log in `debezium.log`.

    with DebeziumServer(tmp_path / "dbz", pg, redis_port, ["public.items"], prefix="prod"):
        ...  # entries appear in the Redis stream "prod.public.items"

At the end the server is stopped and its replication slot and publication dropped, so the
next test's server starts from a snapshot again and the cluster keeps no WAL for it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

from cdc_verify.embedded_redis import _die_with_parent, free_port

from .postgres_server import PostgresServer, end

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "debezium-server"
# A JVM start, Quarkus, the connector and the snapshot: ~10-20 s on two cores.
START_TIMEOUT = 120.0
# Logged (ChangeEventSourceCoordinator) once the snapshot is written and the connector
# turns to its slot: a change committed after it reaches the stream. (The slot is made
# before the snapshot, so one committed during it does too.)
STREAMING = "Starting streaming"
HEAP = os.environ.get("CDC_VERIFY_DEBEZIUM_HEAP_OPTS", "-Xms128m -Xmx512m")

MessageFormat = Literal["extended", "compact"]
_serial = itertools.count(1)


def _script(command: str) -> str:
    result = subprocess.run(
        ["bash", str(SCRIPT), command], capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.strip()  # it says what is missing and how
    return result.stdout.strip()


def debezium_home() -> Path:
    return Path(_script("home"))


def java_home() -> Path:
    return Path(_script("java-home"))


def properties(
    postgres: PostgresServer,
    redis_address: str,
    tables: Sequence[str],
    prefix: str,
    slot: str,
    offsets: Path,
    http_port: int,
    message_format: MessageFormat = "extended",
    schemas: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The server's application.properties: Postgres source (pgoutput, a publication of
    `tables` made by the connector), Redis sink, JSON keys and values."""
    props = {
        "debezium.sink.type": "redis",
        "debezium.sink.redis.address": redis_address,
        "debezium.sink.redis.message.format": message_format,
        "debezium.format.key": "json",
        "debezium.format.value": "json",
        "debezium.format.key.schemas.enable": str(schemas).lower(),
        "debezium.format.value.schemas.enable": str(schemas).lower(),
        "debezium.source.connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "debezium.source.database.hostname": "127.0.0.1",
        "debezium.source.database.port": str(postgres.port),
        "debezium.source.database.user": "postgres",
        "debezium.source.database.password": "postgres",  # trusted: any password does
        "debezium.source.database.dbname": "postgres",
        "debezium.source.topic.prefix": prefix,
        "debezium.source.plugin.name": "pgoutput",
        "debezium.source.slot.name": slot,
        "debezium.source.publication.name": f"{slot}_pub",
        "debezium.source.publication.autocreate.mode": "filtered",  # only `tables`
        "debezium.source.table.include.list": ",".join(tables),
        "debezium.source.snapshot.mode": "initial",
        "debezium.source.skipped.operations": "none",  # TRUNCATE too (skipped by default)
        "debezium.source.offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "debezium.source.offset.storage.file.filename": str(offsets),
        "debezium.source.offset.flush.interval.ms": "0",
        "debezium.source.poll.interval.ms": "100",  # the queue's poll: less latency in tests
        "quarkus.http.port": str(http_port),
        "quarkus.http.host": "127.0.0.1",
        "quarkus.log.console.json": "false",
        "quarkus.banner.enabled": "false",
    }
    props.update(extra or {})
    return props


class DebeziumServer:
    def __init__(
        self,
        work_dir: Path,
        postgres: PostgresServer,
        redis_port: int,
        tables: Sequence[str],
        prefix: str = "cdc",
        message_format: MessageFormat = "extended",
        schemas: bool = False,
        slot: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.postgres = postgres
        self.prefix = prefix
        # Unique per server in this process, and per process: tests may share a cluster.
        self.slot = slot or f"dbz_{os.getpid()}_{next(_serial)}"
        self.http_port = free_port()
        self.props = properties(
            postgres, f"127.0.0.1:{redis_port}", tables, prefix, self.slot,
            self.work_dir / "data" / "offsets.dat", self.http_port, message_format, schemas,
            extra,
        )  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self._log_from = 0
        self.start_seconds = 0.0

    @property
    def log_path(self) -> Path:
        return self.work_dir / "debezium.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stream(self, table: str) -> str:
        """The Redis stream of `table` ("schema.table")."""
        return f"{self.prefix}.{table}"

    def start(self) -> DebeziumServer:
        home, java = debezium_home(), java_home()
        (self.work_dir / "config").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "data").mkdir(exist_ok=True)
        (self.work_dir / "config" / "application.properties").write_text(
            "".join(f"{name}={value}\n" for name, value in self.props.items())
        )
        runner = next(home.glob("debezium-server-*runner.jar"))
        # The distribution's run.sh, less its optional agents (JMX, metrics exporters).
        classpath = os.pathsep.join([str(runner), f"{home}/config/lib", f"{home}/lib/*"])
        env = {**os.environ, "JAVA_HOME": str(java)}
        started = time.monotonic()
        # A restart appends (the first run's log stays); only what this start logs counts.
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(java / "bin" / "java"), *HEAP.split(), "-cp", classpath,
                 "io.debezium.server.Main"],
                cwd=self.work_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(),
            )  # fmt: skip
        deadline = started + START_TIMEOUT
        while STREAMING not in self.log():
            if self._process.poll() is not None:
                raise AssertionError(
                    f"Debezium Server exited ({self._process.returncode}) at start:\n"
                    f"{self.log()[-5000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"Debezium Server not streaming in {START_TIMEOUT}s:\n{self.log()[-5000:]}"
                )
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - started
        return self

    def log(self) -> str:
        """What the server logged since its latest start."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self._log_from)
            return f.read().decode(errors="replace")

    def rss_bytes(self) -> int:
        """The JVM's resident memory now."""
        assert self._process is not None
        status = Path(f"/proc/{self._process.pid}/status").read_text()
        kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kb) * 1024

    def stop(self) -> None:
        """SIGTERM (Quarkus stops the connector, which flushes its offsets), SIGKILL if stuck."""
        end(self._process, signal.SIGTERM)

    def kill(self) -> None:
        end(self._process, signal.SIGKILL)

    def drop_slot(self) -> None:
        """The replication slot and publication this server's connector made."""
        self.postgres.drop_slot(self.slot)
        self.postgres.sql(f"DROP PUBLICATION IF EXISTS {self.slot}_pub")

    def __enter__(self) -> DebeziumServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            self.drop_slot()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.drop_slot()
