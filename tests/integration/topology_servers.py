"""Three real Redis servers, one per role (production, sister, state), for the topology
tests: production reached through a read-only ACL user, as another team would give it."""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.embedded_redis import EmbeddedRedis
from cdc_verify.schemas.verdicts import Side
from cdc_verify.simulate.corpus import Corpus
from cdc_verify.simulate.writer import PacedWrite, paced_client, write_paced

from ..conftest import cli_env
from .support import PROD, SIS
from .support import settings as one_server_settings

READER = "reader"
# The ACL of a read-only production user (docs/topology.md).
READ_ONLY_RULES = ("~*", "-@all", "+@read", "+@connection", "+ping", "+time")
# What a read-only verifier may send production: read commands and the handshake.
READ_COMMANDS = frozenset(
    {"xread", "xrange", "xrevrange", "xinfo", "xlen", "type", "time", "ping"}
    | {"hello", "auth", "client", "select", "command"}
)
# What the tests themselves send production (the writer's XADDs, resetting and reading
# the statistics, the ACL file).
TEST_COMMANDS = frozenset({"xadd", "xtrim", "config", "info", "acl"})

# Every server fsyncs each write before answering (appendfsync always): a server
# SIGKILLed mid-run then loses nothing it acknowledged or let a reader see, so the
# final streams are what the worker read. The state server needs it in any case: the
# sister server acks its entries after the state commit.
DURABLE = ("--appendfsync", "always")


@dataclass
class Servers:
    production: EmbeddedRedis
    sister: EmbeddedRedis
    state: EmbeddedRedis
    password: str = field(repr=False)

    def __getitem__(self, role: Role) -> EmbeddedRedis:
        return {Role.PRODUCTION: self.production, Role.SISTER: self.sister,
                Role.STATE: self.state}[role]  # fmt: skip

    def client(self, role: Role) -> redis.Redis:
        """An admin client (the default user) of the role's server."""
        return redis.Redis.from_url(self[role].url, socket_timeout=10)

    def settings(self, **overrides: Any) -> Settings:
        """In-process worker settings: three servers, production read-only."""
        base: dict[str, Any] = dict(
            production_redis_url=self.production.url, production_redis_username=READER,
            production_redis_password=self.password, production_read_only=True,
            state_redis_url=self.state.url,
        )  # fmt: skip
        base.update(overrides)
        return one_server_settings(self.sister.url, **base)

    def worker_env(self) -> dict[str, str]:
        """The environment of a `cdc-verify run` subprocess (with --redis left out): the
        sister server as the plain one, production read-only, state on its own."""
        env = cli_env()
        env.update({
            "CDC_VERIFY_REDIS_URL": self.sister.url,
            "CDC_VERIFY_PRODUCTION_REDIS_URL": self.production.url,
            "CDC_VERIFY_PRODUCTION_REDIS_USERNAME": READER,
            "CDC_VERIFY_PRODUCTION_REDIS_PASSWORD": self.password,
            "CDC_VERIFY_PRODUCTION_READ_ONLY": "true",
            "CDC_VERIFY_STATE_REDIS_URL": self.state.url,
        })  # fmt: skip
        return env

    def command_stats(self, role: Role) -> dict[str, dict[str, float]]:
        """INFO commandstats by command name (Redis 7 names subcommands `client|setinfo`)."""
        with self.client(role) as client:
            raw = client.info("commandstats")
        stats: dict[str, dict[str, float]] = {}
        for name, values in raw.items():
            command = name.removeprefix("cmdstat_").partition("|")[0]
            into = stats.setdefault(command, {})
            for k, v in values.items():
                if isinstance(v, int | float):
                    into[k] = into.get(k, 0) + v
        return stats

    def error_counts(self, role: Role) -> dict[str, int]:
        """INFO errorstats: error replies by their prefix (NOPERM, LOADING, ...)."""
        with self.client(role) as client:
            raw = client.info("errorstats")
        return {name.removeprefix("errorstat_"): int(v["count"]) for name, v in raw.items()}


def start_servers(base: Path) -> Servers:
    password = secrets.token_urlsafe(16)
    servers = Servers(
        *(EmbeddedRedis(data_dir=base / role.value, extra_args=DURABLE) for role in Role),
        password=password,
    )
    for role in Role:
        servers[role].start()
    servers.production.acl_user(READER, password, READ_ONLY_RULES)
    with servers.client(Role.PRODUCTION) as client:
        # The stream exists before any worker starts (a read-only worker never creates
        # it); empty, as a fresh deployment's would be. Then count from zero.
        client.xadd(PROD, {"setup": "1"})
        client.xtrim(PROD, maxlen=0)
        client.config_resetstat()
    return servers


@pytest.fixture(name="servers")
def servers_fixture(tmp_path: Path) -> Iterator[Servers]:
    """Three fresh servers under tmp_path; a test module imports this to use `servers`."""
    s = start_servers(tmp_path / "servers")
    try:
        yield s
    finally:
        for role in Role:
            s[role].close()


class PacedWriter:
    """`write_paced` of a corpus, production to its server and sister to its own, in a
    thread with its own event loop (the worker may be a subprocess or in-process).

    The two sides are written in step: a side's server slowed by a worker's reads or an
    fsync fell a second behind the other's (2,272 healthy pairs landed past the grace
    window). What was really written can still differ from the plan (the whole writer
    behind it): tests judge by `PacedWrite.expected`, on the entry ids written."""

    def __init__(self, servers: Servers, corpus: Corpus, in_step: bool = True) -> None:
        self._servers, self._corpus, self._in_step = servers, corpus, in_step
        self.result: PacedWrite | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0  # how long writing took (the corpus plans corpus.duration_ms)
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def write() -> PacedWrite:
            clients = {
                Side.PRODUCTION: paced_client(self._servers.production.url),
                Side.SISTER: paced_client(self._servers.sister.url),
            }
            try:
                return await write_paced(clients, self._corpus, PROD, SIS, in_step=self._in_step)
            finally:
                for client in clients.values():
                    await client.aclose()

        started = time.monotonic()
        try:
            self.result = asyncio.run(write())
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        self.seconds = time.monotonic() - started

    def start(self) -> PacedWriter:
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 120) -> PacedWrite:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            samples[match[1]] = float(match[2])
    return samples
