"""A fenced read whose reply is lost after Redis ran it: its entries must not be passed by.

On one plain server the worker reads both streams in one WATCHed MULTI/EXEC. When the
connection dies after Redis ran the EXEC, the entries it delivered are this consumer's,
pending, and the reply that named them is gone. redis-py reports that as a WatchError
(the connection died while watching); retrying the read as for a touched key would return
what came after them, and the positions it reports would pass them by: the worker then
gave their twins a false gap (seen in the fault campaign). The read must end the session
instead, so that the next one reads them from the pending list.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from cdc_verify.core.entry import PRODUCTION, SISTER
from cdc_verify.pipeline.redis.group_stream import Fence, GroupStream, read_together
from cdc_verify.pipeline.redis.read_budget import ReadBudget

PROD, SIS, GROUP, ME, LOCK, TOKEN = "t:prod", "t:sister", "g", "me", "t:lock", "tok"


def lose_the_exec_reply(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Makes the next EXEC's reply be read from Redis (so it ran) and then lost."""
    lost: list[Any] = []
    real = Pipeline.parse_response

    async def parse_response(self: Pipeline, connection: Any, command_name: Any, **options: Any):
        response = await real(self, connection, command_name, **options)
        if isinstance(response, list) and not lost:  # EXEC's array (MULTI: OK, others: QUEUED)
            lost.append(response)
            await connection.disconnect()
            raise redis.exceptions.ConnectionError("Connection reset by peer (the test's)")
        return response

    monkeypatch.setattr(Pipeline, "parse_response", parse_response)
    return lost


def test_a_lost_exec_reply_ends_the_read_and_its_entries_stay_pending(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = redis_client
    for key in (PROD, SIS):
        sync.xgroup_create(key, GROUP, id="0", mkstream=True)
    sync.set(LOCK, TOKEN)
    written = {PROD: sync.xadd(PROD, {"n": "1"}), SIS: sync.xadd(SIS, {"n": "1"})}

    async def read() -> None:
        client = aioredis.Redis.from_url(redis_url)
        fence = Fence(LOCK, TOKEN)
        readers = [
            GroupStream(PRODUCTION, client, PROD, GROUP, ME, fence),
            GroupStream(SISTER, client, SIS, GROUP, ME, fence),
        ]
        lost = lose_the_exec_reply(monkeypatch)
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await read_together(readers, 10)
            assert lost, "the EXEC ran"
            monkeypatch.undo()
            # The next session: both entries are read again, from the pending list.
            for reader in readers:
                batches = [b async for b in reader.read_pending(10, ReadBudget(1 << 20))]
                assert [e.entry_id for b in batches for e in b] == [written[reader.key].decode()]
        finally:
            await client.aclose()

    asyncio.run(read())
    pending = {key: sync.xpending(key, GROUP)["pending"] for key in (PROD, SIS)}
    assert pending == {PROD: 1, SIS: 1}, pending
