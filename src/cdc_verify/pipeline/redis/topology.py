"""The servers of one run: a client per role, shared where two roles are one server.

Roles are production (its stream), sister (its stream) and state (verdicts, alerts,
decisions, read positions). `--redis` alone puts all three on one server; see
docs/topology.md for the separate-server and read-only cases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import RedisServer, Role
from cdc_verify.config.settings import Settings
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster, open_client


@dataclass
class Topology:
    servers: dict[Role, RedisServer]
    clients: dict[Role, AsyncClient]
    production_read_only: bool
    keys: WorkerKeys  # state keys hash-tagged when the state server is a Cluster

    @classmethod
    async def open(cls, settings: Settings, *, lenient: bool = False) -> Topology:
        """Clients for every role; a URL naming a Redis Cluster node gets a cluster client.

        `lenient`: see `open_client` (the HTTP API's own clients)."""
        servers = {role: settings.server(role) for role in Role}
        missing = [role.value for role, server in servers.items() if not server.url]
        if missing:
            raise ValueError(f"no Redis URL for the {', '.join(missing)} server(s)")
        # Roles configured alike (same URL, user, password and TLS) share one client.
        by_config: dict[RedisServer, AsyncClient] = {}
        clients: dict[Role, AsyncClient] = {}
        try:
            for role, server in servers.items():
                config = replace(server, role=Role.STATE)
                if config not in by_config:
                    by_config[config] = await open_client(server, lenient=lenient)
                clients[role] = by_config[config]
        except BaseException:
            for client in by_config.values():
                await client.aclose()
            raise
        keys = WorkerKeys.from_settings(settings, cluster=is_cluster(clients[Role.STATE]))
        return cls(servers, clients, settings.production_read_only, keys)

    @property
    def state(self) -> AsyncClient:
        return self.clients[Role.STATE]

    def on_state_server(self, role: Role) -> bool:
        """Whether one script can reach both `role`'s stream and the state keys: the same
        plain server (on a Cluster they sit in different slots)."""
        return not self.keys.cluster and self.servers[role].same_server(self.servers[Role.STATE])

    def distinct_clients(self) -> list[AsyncClient]:
        seen: dict[int, AsyncClient] = {}
        for client in self.clients.values():
            seen.setdefault(id(client), client)
        return list(seen.values())

    async def aclose(self) -> None:
        for client in self.distinct_clients():
            await client.aclose()
