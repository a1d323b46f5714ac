"""`cdc-verify coverage --report DIR`: the coverage a backfill or replay wrote, read back
(docs/coverage.md)."""

from __future__ import annotations

from pathlib import Path

from cdc_verify.core.coverage import CoverageReport, CoverageUnavailable
from cdc_verify.pipeline.reports.folder import UnreadableReport, read_json, read_summary


def read_report(directory: Path) -> CoverageReport:
    try:
        summary, _ = read_summary(directory)
        document = read_json(
            directory, "coverage.json",
            "the run had coverage = false, or was made by an older cdc-verify",
        )  # fmt: skip
        shapes, parts = document["shapes"], document["parts"]
        pairs = document.get("pairs", [])  # none in a coverage.json of an older version
    except UnreadableReport as exc:
        raise CoverageUnavailable(str(exc)) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise CoverageUnavailable(f"{directory}: not a coverage report ({exc!r})") from None
    if summary.coverage is None:
        raise CoverageUnavailable(f"{directory}/summary.json has no coverage figures")
    return CoverageReport(summary.coverage, shapes, parts, pairs)
