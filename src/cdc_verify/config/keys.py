"""Names of the Redis keys a worker owns, derived from its settings in one place.

On a Redis Cluster every state key carries the hash tag `{<prefix>:<group>}`, so that
they share one slot and one script can write them together; a stream's fence lock
carries the stream's own tag, so that it sits in the stream's slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdc_verify.config.settings import Settings


@dataclass(frozen=True, slots=True)
class WorkerKeys:
    production: str
    sister: str
    key_prefix: str
    group: str
    verdicts: str
    decided_prefix: str  # + event_id: a remembered verdict kept in a key of its own
    # + "<second>:<shard>": hashes of ULID events' verdicts; + "g<start ms>:<shard>": of
    # others, by generation (pipeline/redis/decisions.py)
    decisions_prefix: str
    decision_generations: str  # hash: the generations (decisions.lua)
    record_prefix: str  # + event_id: its verdict record, unless a plain match
    settled_prefix: str  # + "<1|2>:<entry id>": entries settled (runners that cannot XACK)
    alive_prefix: str  # + consumer name: a forwarder's heartbeat (Faust runner)
    retired: str  # set of consumer names whose entries others took over (Faust runner)
    alerts_open: str  # hash event_id -> alert JSON
    alerts_open_index: str  # sorted set event_id by opened_at ms: --since and retention
    alerts_resolved: str
    alerts_resolved_index: str  # sorted set event_id by resolved_at ms
    lock: str
    horizon: str  # ms of the declared start; older entries are partners only
    positions: str  # hash side -> last entry id read and committed (a read-only side)
    production_waiting: str  # sorted set: read-only production's waiting entry ids
    # + minute (epoch ms // 60000): hash "<verdict>|<entity>|<op>" -> count (docs/rollouts.md)
    counts_prefix: str
    # Shape coverage (pipeline/redis/shapes.py): hash "<entity>|<shape id>" -> its parts;
    # hash "<entity>|<shape id>|<status>" -> events; set of the paths gone wide
    shapes: str
    shape_counts: str
    shape_wide: str
    cluster: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, cluster: bool = False) -> WorkerKeys:
        """`cluster`: the state server is a Redis Cluster (see the module's docstring)."""
        return cls.named(
            key_prefix=settings.key_prefix,
            group=settings.group,
            production=settings.production,
            sister=settings.sister,
            verdict_stream=settings.verdict_stream,
            verdict_stream_given="verdict_stream" in settings.model_fields_set,
            cluster=cluster,
        )

    @classmethod
    def named(
        cls,
        *,
        key_prefix: str,
        group: str,
        production: str,
        sister: str,
        verdict_stream: str,
        verdict_stream_given: bool = False,
        cluster: bool = False,
    ) -> WorkerKeys:
        """`cluster`: the state server is a Redis Cluster (see the module's docstring);
        `verdict_stream_given`: the user named the verdict stream (not the default)."""
        base = f"{key_prefix}:{group}"
        verdicts = verdict_stream
        if cluster:
            base = "{" + base + "}"
            if hash_tag(verdicts) != hash_tag(base):
                if verdict_stream_given:
                    raise ValueError(
                        f"on a Redis Cluster the verdict stream must share the state keys' "
                        f"slot: name it with the hash tag {base}, e.g. {base}:verdicts"
                    )
                verdicts = f"{base}:verdicts"
        return cls(
            production=production,
            sister=sister,
            key_prefix=key_prefix,
            group=group,
            verdicts=verdicts,
            decided_prefix=f"{base}:decided:",
            decisions_prefix=f"{base}:decisions:",
            decision_generations=f"{base}:decisions:index",
            record_prefix=f"{base}:record:",
            settled_prefix=f"{base}:settled:",
            alive_prefix=f"{base}:alive:",
            retired=f"{base}:retired",
            alerts_open=f"{base}:alerts:open",
            alerts_open_index=f"{base}:alerts:open:by-time",
            alerts_resolved=f"{base}:alerts:resolved",
            alerts_resolved_index=f"{base}:alerts:resolved:by-time",
            lock=f"{base}:lock",
            horizon=f"{base}:horizon_ms",
            positions=f"{base}:positions",
            production_waiting=f"{base}:waiting:production",
            counts_prefix=f"{base}:counts:",
            shapes=f"{base}:shapes",
            shape_counts=f"{base}:shapes:counts",
            shape_wide=f"{base}:shapes:wide",
            cluster=cluster,
        )

    def fence_lock(self, stream: str) -> str:
        """The lock that fences reads of `stream`: on a Cluster, one beside the stream."""
        if not self.cluster:
            return self.lock
        return "{" + hash_tag(stream) + "}:" + self.lock.replace("{", "").replace("}", "")


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the first non-empty {...} of the key, else all of it."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key
