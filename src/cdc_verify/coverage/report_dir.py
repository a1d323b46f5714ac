"""`cdc-verify coverage --report DIR`: the coverage a backfill or replay wrote, read back
(docs/coverage.md)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from cdc_verify.core.coverage import CoverageReport, CoverageUnavailable
from cdc_verify.schemas.models import Summary


def read_report(directory: Path) -> CoverageReport:
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CoverageUnavailable(f"report directory {directory} {what}")
    try:
        summary = Summary.model_validate_json((directory / "summary.json").read_bytes())
        document = json.loads((directory / "coverage.json").read_text(encoding="utf-8"))
        shapes, parts = document["shapes"], document["parts"]
        pairs = document.get("pairs", [])  # none in a coverage.json of an older version
    except FileNotFoundError as exc:
        name = Path(str(exc.filename)).name
        hint = (
            "is it the --out of a backfill or replay?"
            if name == "summary.json"
            else "the run had coverage = false, or was made by an older cdc-verify"
        )
        raise CoverageUnavailable(f"{directory} holds no {name}: {hint}") from None
    except OSError as exc:
        raise CoverageUnavailable(f"cannot read {directory}: {exc.strerror or exc}") from None
    except (ValueError, ValidationError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CoverageUnavailable(f"{directory}: not a coverage report ({first})") from None
    if summary.coverage is None:
        raise CoverageUnavailable(f"{directory}/summary.json has no coverage figures")
    return CoverageReport(summary.coverage, shapes, parts, pairs)
