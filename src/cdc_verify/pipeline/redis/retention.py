"""Drops alerts and verdict stream entries older than their retention.

Decisions, per-event records and settled markers expire by TTL, set by the commit
(commit.py); the alert hashes and the verdict stream are trimmed here, so Redis memory
stays bounded.
"""

from __future__ import annotations

import time

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.pipeline.redis.connection import AsyncClient

# KEYS: pairs of (alert hash, its index by time); ARGV[1]: the cutoff in epoch ms.
# At most 500 alerts per pair and call: the caller calls again until none is left.
PRUNE_SCRIPT = """
local cutoff, removed = ARGV[1], 0
for i = 1, #KEYS, 2 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i + 1], '-inf', cutoff, 'LIMIT', 0, 500)
  if #ids > 0 then
    redis.call('HDEL', KEYS[i], unpack(ids))
    redis.call('ZREM', KEYS[i + 1], unpack(ids))
    removed = removed + #ids
  end
end
return removed
"""


class RetentionPruner:
    """Trims the alert hashes and the verdict stream to their retention."""

    def __init__(
        self,
        client: AsyncClient,
        keys: WorkerKeys,
        alert_retention_ms: int,
        verdict_retention_ms: int,
    ) -> None:
        self._client = client
        self._alert_keys = [
            keys.alerts_open, keys.alerts_open_index,
            keys.alerts_resolved, keys.alerts_resolved_index,
        ]  # fmt: skip
        self._verdicts = keys.verdicts
        self._alert_retention_ms = alert_retention_ms
        self._verdict_retention_ms = verdict_retention_ms
        self._script = client.register_script(PRUNE_SCRIPT)

    async def prune(self) -> tuple[int, int]:
        """(alerts dropped, verdict records dropped)."""
        now = int(time.time() * 1000)
        cutoff = now - self._alert_retention_ms
        alerts = 0
        while batch := int(await self._script(keys=self._alert_keys, args=[cutoff])):
            alerts += batch
        # Approximate (~) trimming frees whole stream nodes only: cheap, bounded.
        verdicts = await self._client.xtrim(
            self._verdicts, minid=f"{now - self._verdict_retention_ms}-0", approximate=True
        )
        return alerts, int(verdicts)
