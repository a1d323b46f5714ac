"""A server that goes away while another one is away is reported away too."""

from __future__ import annotations

import asyncio

import pytest

from cdc_verify.config.servers import Role
from cdc_verify.consumers.reference import decode_event
from cdc_verify.pipeline.runners.worker import StreamWorker

from .topology_servers import servers_fixture  # noqa: F401 (the `servers` fixture)


@pytest.mark.timeout(60)
def test_a_server_that_goes_away_while_another_is_away_is_reported_away(servers):
    """The reconnect that fails on the second server (its HELLO) must report it too."""
    worker = StreamWorker(servers.settings(), decode_event)
    seen: dict[str, float | None] = {}

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.ready.wait(), 15)
        await asyncio.to_thread(servers.production.kill)  # the worker notices at once
        await asyncio.sleep(0.5)
        await asyncio.to_thread(servers.state.kill)  # while it waits out production
        await asyncio.sleep(3.0)
        registry = worker.metrics.registry
        for role in Role:
            seen[role.value] = registry.get_sample_value(
                "cdc_verify_redis_up", {"role": role.value}
            )
        seen["servers_up[state]"] = float(worker.servers_up[Role.STATE])
        await asyncio.to_thread(servers.production.start)
        await asyncio.to_thread(servers.state.start)
        await asyncio.wait_for(worker.ready.wait(), 20)
        worker.stop()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
    assert seen == {"production": 0, "sister": 1, "state": 0, "servers_up[state]": 0}, seen
