"""The servers of one run: a client per role, shared where two roles are one server.

Roles are production (its stream), sister (its stream) and state (verdicts, alerts,
decisions, read positions). `--redis` alone puts all three on one server; see
docs/topology.md for the separate-server and read-only cases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import redis.asyncio as aioredis

from cdc_verify.pipeline.redis.connection import connect
from cdc_verify.schemas.servers import RedisServer, Role
from cdc_verify.schemas.settings import Settings


@dataclass
class Topology:
    servers: dict[Role, RedisServer]
    clients: dict[Role, aioredis.Redis]
    production_read_only: bool

    @classmethod
    def connect(cls, settings: Settings) -> Topology:
        servers = {role: settings.server(role) for role in Role}
        missing = [role.value for role, server in servers.items() if not server.url]
        if missing:
            raise ValueError(f"no Redis URL for the {', '.join(missing)} server(s)")
        # Roles configured alike (same URL, user, password and TLS) share one client.
        by_config: dict[RedisServer, aioredis.Redis] = {}
        clients: dict[Role, aioredis.Redis] = {}
        for role, server in servers.items():
            config = replace(server, role=Role.STATE)
            if config not in by_config:
                by_config[config] = connect(server)
            clients[role] = by_config[config]
        return cls(servers, clients, settings.production_read_only)

    @property
    def state(self) -> aioredis.Redis:
        return self.clients[Role.STATE]

    def on_state_server(self, role: Role) -> bool:
        """Whether `role`'s data lives on the state server (so one script reaches both)."""
        return self.servers[role].same_server(self.servers[Role.STATE])

    def distinct_clients(self) -> list[aioredis.Redis]:
        seen: dict[int, aioredis.Redis] = {}
        for client in self.clients.values():
            seen.setdefault(id(client), client)
        return list(seen.values())

    async def aclose(self) -> None:
        for client in self.distinct_clients():
            await client.aclose()
