"""`cdc-verify coverage` from the state server: the shapes the live workers counted
(pipeline/redis/shapes.py, docs/coverage.md)."""

from __future__ import annotations

from cdc_verify.config.keys import WorkerKeys
from cdc_verify.config.servers import Role
from cdc_verify.config.settings import Settings
from cdc_verify.core.coverage import CoverageReport, CoverageTally, CoverageUnavailable
from cdc_verify.pipeline.redis.connection import AsyncClient
from cdc_verify.pipeline.redis.shapes import ShapeReader
from cdc_verify.pipeline.redis.state_read import read_state_server


def read_tally(settings: Settings) -> CoverageTally:
    """The live coverage of the worker group in `settings`; any Redis failure is
    CoverageUnavailable, with the reason."""

    async def read(client: AsyncClient, keys: WorkerKeys) -> CoverageTally:
        return await ShapeReader(client, keys).tally()

    return read_state_server(settings, read, "the shape counts", CoverageUnavailable)


def read_live(settings: Settings) -> CoverageReport:
    tally = read_tally(settings)
    if not tally.entities:
        raise CoverageUnavailable(
            f"the state server {settings.server(Role.STATE).redacted_url()} holds no shape "
            f"counts for group {settings.group!r} (key prefix {settings.key_prefix!r}): no "
            "worker with coverage = true has verified an event there yet"
        )
    return CoverageReport.of_tally(tally)
