"""The state server's writers, the commit and the retention pruner, built from `Settings`:
neither reads settings itself."""

from __future__ import annotations

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.shape import ShapeRules
from cdc_verify.pipeline.redis.commit import SettleModes, VerdictCommitter
from cdc_verify.pipeline.redis.connection import AsyncClient, is_cluster
from cdc_verify.pipeline.redis.retention import RetentionPruner
from cdc_verify.pipeline.redis.settle_mode import SettleMode


def verdict_committer(
    client: AsyncClient,
    settings: Settings,
    *,
    keys: WorkerKeys | None = None,
    settle: SettleModes = (SettleMode.ACK, SettleMode.ACK),
    lock_token: str = "",
    shapes: ShapeRules | None = None,
) -> VerdictCommitter:
    """`keys`: the group's, as the caller already named them (default: named here);
    `settle`: the production and sister settle modes; `lock_token`: commit only
    while the worker lock holds it (the single engine); `shapes`: the verifier's
    shape rules, when it takes shapes."""
    return VerdictCommitter(
        client,
        keys or WorkerKeys.from_settings(settings, cluster=is_cluster(client)),
        decided_retention_ms=round(settings.decided_retention * 1000),
        verdict_maxlen=settings.verdict_stream_maxlen,
        record_retention_ms=round(settings.verdict_retention * 1000),
        settle=settle,
        lock_token=lock_token,
        counter_retention_ms=round(settings.counter_retention * 1000),
        compact_matches=settings.compact_matches,
        shapes=shapes,
        max_shapes=settings.coverage_max_shapes,
        server=settings.server(Role.STATE).redacted_url(),
    )


def retention_pruner(
    client: AsyncClient, settings: Settings, keys: WorkerKeys | None = None
) -> RetentionPruner:
    return RetentionPruner(
        client,
        keys or WorkerKeys.from_settings(settings, cluster=is_cluster(client)),
        round(settings.alert_retention * 1000),
        round(settings.verdict_retention * 1000),
    )
