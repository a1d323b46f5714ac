"""Which kinds (shapes) of production event were verified: `cdc-verify coverage --json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from cdc_verify.api import models
from cdc_verify.api.context import Context
from cdc_verify.gate.criteria import ENTITY_PATTERN

router = APIRouter(prefix="/api")


@router.get("/coverage", response_model=models.CoverageReport, tags=["coverage"])
async def coverage(
    context: Context,
    entity: Annotated[
        str | None, Query(pattern=ENTITY_PATTERN, description="this entity only")
    ] = None,
    status: Annotated[
        models.CoverageStatus | None, Query(description="only shapes and parts of this status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="shapes to list")] = 50,
) -> dict[str, Any]:
    """Which kinds (shapes) of production event were verified, since the worker's
    state began: `cdc-verify coverage --json` (docs/coverage.md)."""
    found = (await context.shapes.report()).only(entity, status)
    return {
        "coverage": found.totals.model_dump(mode="json"),
        "shapes": found.shapes[:limit],
        "shapes_listed": len(found.shapes),
        "parts": found.parts,
        "pairs": found.pairs,
    }
