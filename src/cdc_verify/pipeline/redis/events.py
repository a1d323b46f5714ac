"""What Redis remembers of one event_id: its decision, its record and its alert."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.core.outcome import Decision
from cdc_verify.pipeline.redis.alerts import AlertState, AlertStore
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.decisions import DecisionStore


@dataclass(frozen=True, slots=True)
class EventVerdict:
    event_id: str
    decision: Decision | None  # None once decided_retention has passed
    record: dict[str, Any]
    alert_state: AlertState | None = None
    alert: dict[str, Any] | None = None


class EventLookup:
    def __init__(self, client: AsyncClient, keys: WorkerKeys) -> None:
        self._client = client
        self._keys = keys
        self._alerts = AlertStore(client, keys)
        self._decisions = DecisionStore(client, keys)

    async def get(self, event_id: str) -> EventVerdict | None:
        """None: no verdict known (not yet decided, or older than the retentions)."""
        found = (await self._decisions.lookup({event_id: None})).get(event_id)  # at any time
        decision = found if isinstance(found, Decision) else None
        record = await self._client.get(self._keys.record_prefix + event_id)
        if record is not None:
            body = json.loads(record)
        elif decision is not None and decision.verdict is not None:
            # a match: its decision says all there is
            body = {"event_id": event_id, "verdict": decision.verdict.value}
        else:
            return None  # unknown, or out of --scope: no verdict was given
        alert = await self._alerts.get(event_id)
        return EventVerdict(
            event_id,
            decision,
            body,
            alert[0] if alert else None,
            alert[1] if alert else None,
        )
