"""A real 3-master Redis Cluster on loopback, made the way an operator would make one:
three `redis-server --cluster-enabled yes` processes joined by `redis-cli --cluster create`
(the redis-cli that ships beside the redis-server in use)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from cdc_verify.embedded_redis import EmbeddedRedis, find_redis_server


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; both below 65536."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 45_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def find_redis_cli() -> str:
    cli = Path(find_redis_server()).with_name("redis-cli")
    if not cli.exists():
        raise RuntimeError(f"no redis-cli beside {find_redis_server()}")
    return str(cli)


class LocalCluster:
    def __init__(self, root: Path, masters: int = 3) -> None:
        self.nodes = []
        for i in range(masters):
            port = cluster_port()
            self.nodes.append(
                EmbeddedRedis(
                    data_dir=root / f"node-{i}",
                    port=port,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(root / f"node-{i}" / "nodes.conf"),
                        "--cluster-node-timeout", "2000",
                        "--appendfsync", "always",
                    ),
                )
            )  # fmt: skip

    @property
    def url(self) -> str:
        """Any node's URL names the cluster."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [find_redis_cli(), "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:  # every node, not one: a node that has not heard yet says CLUSTERDOWN
            infos = [redis.Redis(port=node.port).cluster("info") for node in self.nodes]
            if all(info.get("cluster_state") == "ok" for info in infos):
                return
            assert time.monotonic() < deadline, f"cluster not ok: {infos}"
            time.sleep(0.1)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster.from_url(self.url)

    def node_of(self, key: str) -> int:
        """Index of the master that holds `key`."""
        client = self.client()
        try:
            port = client.get_node_from_key(key).port
        finally:
            client.close()
        return next(i for i, node in enumerate(self.nodes) if node.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
